//! diffusers `AutoencoderKL`: the KL autoencoder of latent diffusion (downsampling 8 for
//! the Stable Diffusion configs), loaded from a diffusers folder as published.

use std::path::Path;

use crate::nn::Conv2d;
use burn::module::Module;
use burn::nn::GroupNorm;
use burn::tensor::{Device, Tensor};
use serde::Deserialize;

use super::blocks::{
    load_downsample, upsample, ResnetBlock2D, ResnetOptions, SpatialSelfAttention, TimeShift,
};
use crate::error::{Result, VtonError};
use crate::nn::{conv2d, group_norm};
use crate::weights::{Checkpoint, LoadOptions, LoadReport, Loader, WeightDtype};

/// `config.json` of an `AutoencoderKL`; missing keys take diffusers' defaults, unknown
/// keys are ignored.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct AutoencoderKLConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub down_block_types: Vec<String>,
    pub up_block_types: Vec<String>,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: usize,
    pub act_fn: String,
    pub latent_channels: usize,
    pub norm_num_groups: usize,
    pub sample_size: Option<serde_json::Value>,
    pub scaling_factor: f64,
    pub shift_factor: Option<f64>,
    pub use_quant_conv: bool,
    pub use_post_quant_conv: bool,
    pub mid_block_add_attention: bool,
    pub force_upcast: bool,
}

impl Default for AutoencoderKLConfig {
    fn default() -> Self {
        AutoencoderKLConfig {
            in_channels: 3,
            out_channels: 3,
            down_block_types: vec!["DownEncoderBlock2D".into()],
            up_block_types: vec!["UpDecoderBlock2D".into()],
            block_out_channels: vec![64],
            layers_per_block: 1,
            act_fn: "silu".into(),
            latent_channels: 4,
            norm_num_groups: 32,
            sample_size: None,
            scaling_factor: 0.18215,
            shift_factor: None,
            use_quant_conv: true,
            use_post_quant_conv: true,
            mid_block_add_attention: true,
            force_upcast: true,
        }
    }
}

impl AutoencoderKLConfig {
    fn validate(&self) -> Result<()> {
        let n = self.block_out_channels.len();
        if n == 0 {
            return Err(VtonError::config("block_out_channels", "is empty"));
        }
        if self.down_block_types.len() != n || self.up_block_types.len() != n {
            return Err(VtonError::config(
                "down_block_types / up_block_types",
                format!("need one entry per block_out_channels ({n})"),
            ));
        }
        for t in &self.down_block_types {
            if t != "DownEncoderBlock2D" {
                return Err(VtonError::Unsupported {
                    what: format!("AutoencoderKL down block type {t}"),
                });
            }
        }
        for t in &self.up_block_types {
            if t != "UpDecoderBlock2D" {
                return Err(VtonError::Unsupported {
                    what: format!("AutoencoderKL up block type {t}"),
                });
            }
        }
        if self.act_fn != "silu" {
            return Err(VtonError::Unsupported {
                what: format!("AutoencoderKL act_fn {}", self.act_fn),
            });
        }
        Ok(())
    }

    fn resnet(&self) -> ResnetOptions {
        ResnetOptions {
            groups: self.norm_num_groups,
            eps: 1e-6,
            temb_channels: None,
            output_scale_factor: 1.0,
            time_shift: TimeShift::Default,
            skip_time_act: false,
        }
    }
}

/// A down or up block of the VAE: resnets plus an optional resampling convolution.
#[derive(Module, Debug)]
pub struct VaeBlock {
    pub resnets: Vec<ResnetBlock2D>,
    pub sampler: Option<Conv2d>,
}

/// The VAE mid block: resnet, optional attention, resnet.
#[derive(Module, Debug)]
pub struct VaeMidBlock {
    pub resnet0: ResnetBlock2D,
    pub attention: Option<SpatialSelfAttention>,
    pub resnet1: ResnetBlock2D,
}

impl VaeMidBlock {
    fn load(l: &Loader, c: &AutoencoderKLConfig, ch: usize) -> Result<Self> {
        let o = c.resnet();
        Ok(VaeMidBlock {
            resnet0: ResnetBlock2D::load(&l.sub("resnets.0"), ch, ch, &o)?,
            attention: if c.mid_block_add_attention {
                Some(SpatialSelfAttention::load(
                    &l.sub("attentions.0"),
                    ch,
                    c.norm_num_groups,
                    1e-6,
                )?)
            } else {
                None
            },
            resnet1: ResnetBlock2D::load(&l.sub("resnets.1"), ch, ch, &o)?,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.resnet0.forward(x, None);
        if let Some(a) = &self.attention {
            x = a.forward(x);
        }
        self.resnet1.forward(x, None)
    }
}

/// The encoder: image to `2 * latent_channels` moments.
#[derive(Module, Debug)]
pub struct Encoder {
    pub conv_in: Conv2d,
    pub down_blocks: Vec<VaeBlock>,
    pub mid_block: VaeMidBlock,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
}

/// Encoder activations a caller may need (LaDI-VTON's mask-aware skip connections feed
/// them to its decoder).
#[derive(Debug, Clone)]
pub struct EncoderFeatures {
    /// After `conv_in`, then after each down block (before the mid block); finest first.
    pub down: Vec<Tensor<4>>,
}

impl Encoder {
    fn load(l: &Loader, c: &AutoencoderKLConfig) -> Result<Self> {
        let boc = &c.block_out_channels;
        let o = c.resnet();
        let mut blocks = Vec::new();
        let mut cin = boc[0];
        for (i, &cout) in boc.iter().enumerate() {
            let bl = l.sub("down_blocks").sub(i);
            let resnets = (0..c.layers_per_block)
                .map(|j| {
                    ResnetBlock2D::load(
                        &bl.sub("resnets").sub(j),
                        if j == 0 { cin } else { cout },
                        cout,
                        &o,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let sampler = if i + 1 < boc.len() {
                Some(load_downsample(&bl.sub("downsamplers.0"), cout, 0)?)
            } else {
                None
            };
            blocks.push(VaeBlock { resnets, sampler });
            cin = cout;
        }
        let last = *boc.last().unwrap_or(&0);
        Ok(Encoder {
            conv_in: conv2d(l, "conv_in", c.in_channels, boc[0], 3, 1, 1, true)?,
            down_blocks: blocks,
            mid_block: VaeMidBlock::load(&l.sub("mid_block"), c, last)?,
            conv_norm_out: group_norm(l, "conv_norm_out", c.norm_num_groups, last, 1e-6)?,
            conv_out: conv2d(l, "conv_out", last, 2 * c.latent_channels, 3, 1, 1, true)?,
        })
    }

    /// The encoder output and, with `keep`, the intermediate features.
    pub fn forward_features(&self, x: Tensor<4>, keep: bool) -> (Tensor<4>, Vec<Tensor<4>>) {
        let mut feats = Vec::new();
        let mut h = self.conv_in.forward(x);
        if keep {
            feats.push(h.clone());
        }
        for b in &self.down_blocks {
            for r in &b.resnets {
                h = r.forward(h, None);
            }
            if let Some(s) = &b.sampler {
                h = s.forward(h);
            }
            if keep {
                feats.push(h.clone());
            }
        }
        let h = self.mid_block.forward(h);
        let h = self
            .conv_out
            .forward(crate::kernels::group_norm(&self.conv_norm_out, h, true));
        (h, feats)
    }
}

/// The decoder: latents to an image.
#[derive(Module, Debug)]
pub struct Decoder {
    pub conv_in: Conv2d,
    pub mid_block: VaeMidBlock,
    pub up_blocks: Vec<VaeBlock>,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
}

impl Decoder {
    fn load(l: &Loader, c: &AutoencoderKLConfig) -> Result<Self> {
        let boc = &c.block_out_channels;
        let rev: Vec<usize> = boc.iter().rev().copied().collect();
        let o = c.resnet();
        let mut blocks = Vec::new();
        let mut prev = rev[0];
        for (i, &cout) in rev.iter().enumerate() {
            let bl = l.sub("up_blocks").sub(i);
            let resnets = (0..=c.layers_per_block)
                .map(|j| {
                    ResnetBlock2D::load(
                        &bl.sub("resnets").sub(j),
                        if j == 0 { prev } else { cout },
                        cout,
                        &o,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let sampler = if i + 1 < rev.len() {
                Some(conv2d(
                    &bl.sub("upsamplers.0"),
                    "conv",
                    cout,
                    cout,
                    3,
                    1,
                    1,
                    true,
                )?)
            } else {
                None
            };
            blocks.push(VaeBlock { resnets, sampler });
            prev = cout;
        }
        Ok(Decoder {
            conv_in: conv2d(l, "conv_in", c.latent_channels, rev[0], 3, 1, 1, true)?,
            mid_block: VaeMidBlock::load(&l.sub("mid_block"), c, rev[0])?,
            up_blocks: blocks,
            conv_norm_out: group_norm(l, "conv_norm_out", c.norm_num_groups, boc[0], 1e-6)?,
            conv_out: conv2d(l, "conv_out", boc[0], c.out_channels, 3, 1, 1, true)?,
        })
    }

    /// Decodes; `skips` (coarsest first, one per up block) are added to each up block's
    /// input when given: the hook for LaDI-VTON-style enhanced skip connections, whose
    /// learned projections live in the caller.
    pub fn forward_with_skips(&self, z: Tensor<4>, skips: Option<&[Tensor<4>]>) -> Tensor<4> {
        let mut h = self.conv_in.forward(z);
        h = self.mid_block.forward(h);
        for (i, b) in self.up_blocks.iter().enumerate() {
            if let Some(s) = skips.and_then(|s| s.get(i)) {
                h = h + s.clone();
            }
            for r in &b.resnets {
                h = r.forward(h, None);
            }
            if let Some(s) = &b.sampler {
                h = upsample(s, h, None);
            }
        }
        self.conv_out
            .forward(crate::kernels::group_norm(&self.conv_norm_out, h, true))
    }
}

/// The diagonal Gaussian posterior `encode` returns.
#[derive(Debug, Clone)]
pub struct DiagonalGaussian {
    pub mean: Tensor<4>,
    /// `clamp(logvar, -30, 20)`.
    pub logvar: Tensor<4>,
}

impl DiagonalGaussian {
    fn from_moments(moments: Tensor<4>) -> Self {
        let c = moments.dims()[1] / 2;
        let mean = moments.clone().narrow(1, 0, c);
        let logvar = moments.narrow(1, c, c).clamp(-30.0, 20.0);
        DiagonalGaussian { mean, logvar }
    }

    /// `exp(logvar / 2)`.
    pub fn std(&self) -> Tensor<4> {
        self.logvar.clone().mul_scalar(0.5).exp()
    }

    /// `exp(logvar)`.
    pub fn var(&self) -> Tensor<4> {
        self.logvar.clone().exp()
    }

    /// The mean.
    pub fn mode(&self) -> Tensor<4> {
        self.mean.clone()
    }

    /// `mean + std * noise` with caller-given standard-normal noise.
    pub fn sample_with(&self, noise: Tensor<4>) -> Result<Tensor<4>> {
        if noise.dims() != self.mean.dims() {
            return Err(VtonError::Shape {
                what: "posterior sample noise".into(),
                expected: format!("{:?}", self.mean.dims()),
                actual: noise.dims().to_vec(),
            });
        }
        Ok(self.mean.clone() + self.std() * noise)
    }

    /// `mean + std * noise` with noise from `seed` ([`crate::rng::randn`]).
    pub fn sample(&self, seed: u64) -> Tensor<4> {
        let noise = crate::rng::randn(self.mean.dims(), seed, &self.mean.device());
        self.mean.clone() + self.std() * noise
    }
}

/// diffusers `AutoencoderKL`.
#[derive(Module, Debug)]
pub struct AutoencoderKL {
    pub encoder: Encoder,
    pub decoder: Decoder,
    pub quant_conv: Option<Conv2d>,
    pub post_quant_conv: Option<Conv2d>,
    #[module(skip)]
    pub config: AutoencoderKLConfig,
}

impl AutoencoderKL {
    /// Loads from a diffusers folder (`config.json` + `diffusion_pytorch_model.*`), a
    /// pipeline folder with a `vae/` subfolder, or a `config.json`'s folder plus weights.
    pub fn from_pretrained(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::from_pretrained_with(path, &LoadOptions::default(), device)
    }

    /// [`AutoencoderKL::from_pretrained`] with diffusers' `variant` and `torch_dtype`: the
    /// weight files of `options.variant`, the convolution and linear weights kept as
    /// `options.dtype` (float32 computation).
    pub fn from_pretrained_with(
        path: impl AsRef<Path>,
        options: &LoadOptions,
        device: &Device,
    ) -> Result<Self> {
        let (config, ckpt): (AutoencoderKLConfig, _) = super::pretrained::pretrained_variant(
            path.as_ref(),
            "vae",
            options.variant.as_deref(),
        )?;
        Ok(Self::load_as(&config, &ckpt, device, false, options.dtype)?.0)
    }

    /// Loads from one safetensors / pickle file with diffusers keys, either bare or under a
    /// `vae.` prefix (a whole pipeline in one file). The config is `config`, else a
    /// `config.json` beside the file.
    pub fn from_single_file(
        path: impl AsRef<Path>,
        config: Option<&AutoencoderKLConfig>,
        device: &Device,
    ) -> Result<Self> {
        let (config, ckpt) = super::pretrained::single_file(path.as_ref(), config, "vae.")?;
        Ok(Self::load(&config, &ckpt, device, false)?.0)
    }

    /// Builds from a config and a checkpoint with diffusers keys (prefix-free). Old
    /// checkpoints' attention names (`query`, `key`, `value`, `proj_attn`) are accepted.
    pub fn load(
        config: &AutoencoderKLConfig,
        ckpt: &Checkpoint,
        device: &Device,
        partial: bool,
    ) -> Result<(Self, LoadReport)> {
        Self::load_as(config, ckpt, device, partial, WeightDtype::F32)
    }

    /// [`AutoencoderKL::load`] keeping the convolution and linear weights as `dtype`.
    pub fn load_as(
        config: &AutoencoderKLConfig,
        ckpt: &Checkpoint,
        device: &Device,
        partial: bool,
        dtype: WeightDtype,
    ) -> Result<(Self, LoadReport)> {
        config.validate()?;
        let ckpt = ckpt.clone().map_keys(|k| Some(rename_legacy_vae_key(k)));
        let l = Loader::new(&ckpt, device, partial).with_weight_dtype(dtype);
        let z2 = 2 * config.latent_channels;
        let z = config.latent_channels;
        let vae = AutoencoderKL {
            encoder: Encoder::load(&l.sub("encoder"), config)?,
            decoder: Decoder::load(&l.sub("decoder"), config)?,
            quant_conv: if config.use_quant_conv {
                Some(conv2d(&l, "quant_conv", z2, z2, 1, 1, 0, true)?)
            } else {
                None
            },
            post_quant_conv: if config.use_post_quant_conv {
                Some(conv2d(&l, "post_quant_conv", z, z, 1, 1, 0, true)?)
            } else {
                None
            },
            config: config.clone(),
        };
        let report = l.finish(true)?;
        Ok((vae, report))
    }

    fn check_image(&self, x: &Tensor<4>) -> Result<()> {
        let [_, c, h, w] = x.dims();
        let f = self.downsample_factor();
        if c != self.config.in_channels || h % f != 0 || w % f != 0 || h == 0 || w == 0 {
            return Err(VtonError::Shape {
                what: "AutoencoderKL input".into(),
                expected: format!(
                    "(N, {}, H, W) with H and W positive multiples of {f}",
                    self.config.in_channels
                ),
                actual: x.dims().to_vec(),
            });
        }
        Ok(())
    }

    /// `2 ^ (number of blocks - 1)`: 8 for Stable Diffusion's VAE.
    pub fn downsample_factor(&self) -> usize {
        1 << (self.config.block_out_channels.len() - 1)
    }

    /// The encoder's raw output (`2 * latent_channels` channels, before `quant_conv`).
    pub fn encoder_output(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        self.check_image(&x)?;
        Ok(self.encoder.forward_features(x, false).0)
    }

    /// Encodes an image in `[-1, 1]` (NCHW) to its posterior. `scaling_factor` is not
    /// applied (as in diffusers): pipelines multiply by it.
    pub fn encode(&self, x: Tensor<4>) -> Result<DiagonalGaussian> {
        Ok(self.encode_with_features(x, false)?.0)
    }

    /// [`AutoencoderKL::encode`] that also returns the encoder's intermediate features.
    pub fn encode_with_features(
        &self,
        x: Tensor<4>,
        keep: bool,
    ) -> Result<(DiagonalGaussian, EncoderFeatures)> {
        self.check_image(&x)?;
        let (h, feats) = self.encoder.forward_features(x, keep);
        let moments = match &self.quant_conv {
            Some(q) => q.forward(h),
            None => h,
        };
        Ok((
            DiagonalGaussian::from_moments(moments),
            EncoderFeatures { down: feats },
        ))
    }

    /// Decodes latents (unscaled) to an image in about `[-1, 1]`.
    pub fn decode(&self, z: Tensor<4>) -> Result<Tensor<4>> {
        self.decode_with_skips(z, None)
    }

    /// [`AutoencoderKL::decode`] with features added at each up block's input.
    pub fn decode_with_skips(
        &self,
        z: Tensor<4>,
        skips: Option<&[Tensor<4>]>,
    ) -> Result<Tensor<4>> {
        let [_, c, h, w] = z.dims();
        if c != self.config.latent_channels || h == 0 || w == 0 {
            return Err(VtonError::Shape {
                what: "AutoencoderKL latents".into(),
                expected: format!("(N, {}, h, w)", self.config.latent_channels),
                actual: z.dims().to_vec(),
            });
        }
        let z = match &self.post_quant_conv {
            Some(p) => p.forward(z),
            None => z,
        };
        Ok(self.decoder.forward_with_skips(z, skips))
    }

    /// `scaling_factor * (z - shift_factor)`: posterior sample to diffusion latents.
    pub fn scale_latents(&self, z: Tensor<4>) -> Tensor<4> {
        let z = match self.config.shift_factor {
            Some(s) => z.sub_scalar(s),
            None => z,
        };
        z.mul_scalar(self.config.scaling_factor)
    }

    /// Inverse of [`AutoencoderKL::scale_latents`].
    pub fn unscale_latents(&self, z: Tensor<4>) -> Tensor<4> {
        let z = z.div_scalar(self.config.scaling_factor);
        match self.config.shift_factor {
            Some(s) => z.add_scalar(s),
            None => z,
        }
    }
}

fn rename_legacy_vae_key(k: &str) -> String {
    for (old, new) in [
        (".query.", ".to_q."),
        (".key.", ".to_k."),
        (".value.", ".to_v."),
        (".proj_attn.", ".to_out.0."),
    ] {
        if k.contains("attentions.") && k.contains(old) {
            return k.replacen(old, new, 1);
        }
    }
    k.to_string()
}
