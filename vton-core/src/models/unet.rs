//! diffusers `UNet2DConditionModel`, the denoiser of Stable Diffusion and of the try-on
//! models built on it (CatVTON, LaDI-VTON, DCI-VTON, StableVITON, IDM-VTON's main U-Net).

use std::path::Path;

use crate::nn::Conv2d;
use crate::nn::Linear;
use burn::module::Module;
use burn::nn::GroupNorm;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Deserialize;

use super::attention::{AttentionProcessor, DefaultProcessor};
use super::blocks::{
    load_downsample, upsample, ResnetBlock2D, ResnetOptions, TimeShift, Transformer2D,
    TransformerOptions,
};
use crate::error::{Result, VtonError};
use crate::nn::{conv2d, group_norm, linear, silu};
use crate::weights::{Checkpoint, LoadOptions, LoadReport, Loader, ParamRecord, WeightDtype};

/// A config value that diffusers accepts as one number for all blocks or one per block.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PerBlock<T> {
    One(T),
    Each(Vec<T>),
}

impl<T: Clone> PerBlock<T> {
    fn expand(&self, n: usize, what: &str) -> Result<Vec<T>> {
        match self {
            PerBlock::One(v) => Ok(vec![v.clone(); n]),
            PerBlock::Each(v) if v.len() == n => Ok(v.clone()),
            PerBlock::Each(v) => Err(VtonError::config(
                what,
                format!("has {} entries for {n} blocks", v.len()),
            )),
        }
    }
}

/// `config.json` of a `UNet2DConditionModel`; missing keys take diffusers' defaults,
/// unknown keys are ignored, and options this implementation does not cover are refused
/// by name when the model is built.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct UNet2DConditionConfig {
    pub sample_size: Option<serde_json::Value>,
    pub in_channels: usize,
    pub out_channels: usize,
    pub center_input_sample: bool,
    pub flip_sin_to_cos: bool,
    pub freq_shift: f64,
    pub down_block_types: Vec<String>,
    pub mid_block_type: Option<String>,
    pub up_block_types: Vec<String>,
    pub only_cross_attention: PerBlock<bool>,
    pub block_out_channels: Vec<usize>,
    pub layers_per_block: PerBlock<usize>,
    pub downsample_padding: usize,
    pub mid_block_scale_factor: f64,
    pub act_fn: String,
    pub norm_num_groups: Option<usize>,
    pub norm_eps: f64,
    pub cross_attention_dim: PerBlock<usize>,
    pub transformer_layers_per_block: PerBlock<usize>,
    pub reverse_transformer_layers_per_block: Option<Vec<usize>>,
    pub encoder_hid_dim: Option<usize>,
    pub encoder_hid_dim_type: Option<String>,
    /// Number of heads when `num_attention_heads` is absent (diffusers' historic naming).
    pub attention_head_dim: PerBlock<usize>,
    pub num_attention_heads: Option<PerBlock<usize>>,
    pub dual_cross_attention: bool,
    pub use_linear_projection: bool,
    pub class_embed_type: Option<String>,
    pub addition_embed_type: Option<String>,
    pub num_class_embeds: Option<usize>,
    pub upcast_attention: bool,
    pub resnet_time_scale_shift: String,
    pub resnet_skip_time_act: bool,
    pub resnet_out_scale_factor: f64,
    pub time_embedding_type: String,
    pub time_embedding_dim: Option<usize>,
    pub time_embedding_act_fn: Option<String>,
    pub timestep_post_act: Option<String>,
    pub time_cond_proj_dim: Option<usize>,
    pub conv_in_kernel: usize,
    pub conv_out_kernel: usize,
    pub attention_type: String,
    pub mid_block_only_cross_attention: Option<bool>,
    pub cross_attention_norm: Option<String>,
}

impl Default for UNet2DConditionConfig {
    fn default() -> Self {
        UNet2DConditionConfig {
            sample_size: None,
            in_channels: 4,
            out_channels: 4,
            center_input_sample: false,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            down_block_types: vec![
                "CrossAttnDownBlock2D".into(),
                "CrossAttnDownBlock2D".into(),
                "CrossAttnDownBlock2D".into(),
                "DownBlock2D".into(),
            ],
            mid_block_type: Some("UNetMidBlock2DCrossAttn".into()),
            up_block_types: vec![
                "UpBlock2D".into(),
                "CrossAttnUpBlock2D".into(),
                "CrossAttnUpBlock2D".into(),
                "CrossAttnUpBlock2D".into(),
            ],
            only_cross_attention: PerBlock::One(false),
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: PerBlock::One(2),
            downsample_padding: 1,
            mid_block_scale_factor: 1.0,
            act_fn: "silu".into(),
            norm_num_groups: Some(32),
            norm_eps: 1e-5,
            cross_attention_dim: PerBlock::One(1280),
            transformer_layers_per_block: PerBlock::One(1),
            reverse_transformer_layers_per_block: None,
            encoder_hid_dim: None,
            encoder_hid_dim_type: None,
            attention_head_dim: PerBlock::One(8),
            num_attention_heads: None,
            dual_cross_attention: false,
            use_linear_projection: false,
            class_embed_type: None,
            addition_embed_type: None,
            num_class_embeds: None,
            upcast_attention: false,
            resnet_time_scale_shift: "default".into(),
            resnet_skip_time_act: false,
            resnet_out_scale_factor: 1.0,
            time_embedding_type: "positional".into(),
            time_embedding_dim: None,
            time_embedding_act_fn: None,
            timestep_post_act: None,
            time_cond_proj_dim: None,
            conv_in_kernel: 3,
            conv_out_kernel: 3,
            attention_type: "default".into(),
            mid_block_only_cross_attention: None,
            cross_attention_norm: None,
        }
    }
}

/// Per-block values resolved from the config.
struct Resolved {
    layers: Vec<usize>,
    heads: Vec<usize>,
    cross_dim: Vec<usize>,
    tlayers: Vec<usize>,
    only_cross: Vec<bool>,
    groups: usize,
    time_shift: TimeShift,
}

impl UNet2DConditionConfig {
    fn resolve(&self) -> Result<Resolved> {
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
        let unsupported = |what: String| Err(VtonError::Unsupported { what });
        for t in &self.down_block_types {
            if t != "DownBlock2D" && t != "CrossAttnDownBlock2D" {
                return unsupported(format!("UNet down block type {t}"));
            }
        }
        for t in &self.up_block_types {
            if t != "UpBlock2D" && t != "CrossAttnUpBlock2D" {
                return unsupported(format!("UNet up block type {t}"));
            }
        }
        match self.mid_block_type.as_deref() {
            None | Some("UNetMidBlock2DCrossAttn") => {}
            Some(t) => return unsupported(format!("UNet mid block type {t}")),
        }
        if self.act_fn != "silu" {
            return unsupported(format!("UNet act_fn {}", self.act_fn));
        }
        // upcast_attention only matters in half precision; vton computes in f32.
        let checks: [(bool, &str); 9] = [
            (
                self.class_embed_type.is_some() || self.num_class_embeds.is_some(),
                "class embeddings",
            ),
            (
                self.addition_embed_type.is_some(),
                "addition_embed_type (SDXL-style added conditions)",
            ),
            (
                self.encoder_hid_dim.is_some() || self.encoder_hid_dim_type.is_some(),
                "encoder_hid_dim",
            ),
            (self.dual_cross_attention, "dual_cross_attention"),
            (
                self.time_embedding_type != "positional",
                "time_embedding_type other than positional",
            ),
            (
                self.time_embedding_act_fn.is_some() || self.timestep_post_act.is_some(),
                "time embedding activations",
            ),
            (self.time_cond_proj_dim.is_some(), "time_cond_proj_dim"),
            (
                self.attention_type != "default",
                "attention_type other than default",
            ),
            (self.cross_attention_norm.is_some(), "cross_attention_norm"),
        ];
        for (bad, what) in checks {
            if bad {
                return unsupported(format!("UNet2DConditionModel option {what}"));
            }
        }
        let groups = self.norm_num_groups.ok_or_else(|| VtonError::Unsupported {
            what: "UNet without GroupNorm (norm_num_groups null)".into(),
        })?;
        let time_shift = match self.resnet_time_scale_shift.as_str() {
            "default" => TimeShift::Default,
            "scale_shift" => TimeShift::ScaleShift,
            other => return unsupported(format!("resnet_time_scale_shift {other}")),
        };
        let heads = self
            .num_attention_heads
            .as_ref()
            .unwrap_or(&self.attention_head_dim)
            .expand(n, "num_attention_heads / attention_head_dim")?;
        Ok(Resolved {
            layers: self.layers_per_block.expand(n, "layers_per_block")?,
            heads,
            cross_dim: self.cross_attention_dim.expand(n, "cross_attention_dim")?,
            tlayers: self
                .transformer_layers_per_block
                .expand(n, "transformer_layers_per_block")?,
            only_cross: self
                .only_cross_attention
                .expand(n, "only_cross_attention")?,
            groups,
            time_shift,
        })
    }
}

/// A down block: resnets, optional transformers after each, optional downsampler.
#[derive(Module, Debug)]
pub struct DownBlock {
    pub resnets: Vec<ResnetBlock2D>,
    pub attentions: Vec<Transformer2D>,
    pub downsampler: Option<Conv2d>,
}

/// An up block: resnets on concatenated skips, optional transformers, optional upsampler.
#[derive(Module, Debug)]
pub struct UpBlock {
    pub resnets: Vec<ResnetBlock2D>,
    pub attentions: Vec<Transformer2D>,
    pub upsampler: Option<Conv2d>,
}

/// `UNetMidBlock2DCrossAttn`: resnet, then (transformer, resnet) per layer.
#[derive(Module, Debug)]
pub struct MidBlock {
    pub resnets: Vec<ResnetBlock2D>,
    pub attentions: Vec<Transformer2D>,
}

/// diffusers `UNet2DConditionModel`.
#[derive(Module, Debug)]
pub struct UNet2DConditionModel {
    pub conv_in: Conv2d,
    pub time_linear_1: Linear,
    pub time_linear_2: Linear,
    pub down_blocks: Vec<DownBlock>,
    pub mid_block: Option<MidBlock>,
    pub up_blocks: Vec<UpBlock>,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
    #[module(skip)]
    pub config: UNet2DConditionConfig,
}

/// The timesteps of one U-Net call.
#[derive(Debug, Clone)]
pub enum Timesteps {
    /// One timestep for the whole batch.
    Scalar(f64),
    /// One per batch element.
    PerSample(Vec<f64>),
}

impl From<f64> for Timesteps {
    fn from(t: f64) -> Self {
        Timesteps::Scalar(t)
    }
}
impl From<i64> for Timesteps {
    fn from(t: i64) -> Self {
        Timesteps::Scalar(t as f64)
    }
}
impl From<Vec<f64>> for Timesteps {
    fn from(t: Vec<f64>) -> Self {
        Timesteps::PerSample(t)
    }
}

/// Sinusoidal timestep features as diffusers' `get_timestep_embedding` computes them in
/// float32: `exponent = -ln(10000) * i / (half - shift)`, `[sin | cos]` (or `[cos | sin]`).
pub fn timestep_embedding(t: &[f64], dim: usize, flip_sin_to_cos: bool, shift: f64) -> Vec<f32> {
    let half = dim / 2;
    let freqs: Vec<f32> = (0..half)
        .map(|i| {
            let e = (-(10000f64.ln()) as f32) * i as f32;
            (e / (half as f32 - shift as f32)).exp()
        })
        .collect();
    let mut out = vec![0f32; t.len() * dim];
    for (b, &tb) in t.iter().enumerate() {
        let row = &mut out[b * dim..(b + 1) * dim];
        for (i, &f) in freqs.iter().enumerate() {
            let a = tb as f32 * f;
            let (s, c) = (a.sin(), a.cos());
            if flip_sin_to_cos {
                row[i] = c;
                row[half + i] = s;
            } else {
                row[i] = s;
                row[half + i] = c;
            }
        }
    }
    out
}

impl UNet2DConditionModel {
    /// Loads from a diffusers folder (`config.json` + `diffusion_pytorch_model.*`) or a
    /// pipeline folder with a `unet/` subfolder.
    pub fn from_pretrained(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::from_pretrained_with(path, &LoadOptions::default(), device)
    }

    /// [`UNet2DConditionModel::from_pretrained`] with diffusers' `variant` and
    /// `torch_dtype`: the weight files of `options.variant`, the convolution and linear
    /// weights kept as `options.dtype` (float32 computation).
    pub fn from_pretrained_with(
        path: impl AsRef<Path>,
        options: &LoadOptions,
        device: &Device,
    ) -> Result<Self> {
        let (config, ckpt): (UNet2DConditionConfig, _) = super::pretrained::pretrained_variant(
            path.as_ref(),
            "unet",
            options.variant.as_deref(),
        )?;
        Ok(Self::load_as(&config, &ckpt, device, false, options.dtype)?.0)
    }

    /// [`UNet2DConditionModel::load`] keeping the convolution and linear weights as `dtype`.
    pub fn load_as(
        config: &UNet2DConditionConfig,
        ckpt: &Checkpoint,
        device: &Device,
        partial: bool,
        dtype: WeightDtype,
    ) -> Result<(Self, LoadReport)> {
        Self::load_impl(config, ckpt, device, partial, dtype).map(|(m, r, _)| (m, r))
    }

    /// Loads from one safetensors / pickle file with diffusers keys, either bare or under a
    /// `unet.` prefix (a whole pipeline in one file). The config is `config`, else a
    /// `config.json` beside the file.
    pub fn from_single_file(
        path: impl AsRef<Path>,
        config: Option<&UNet2DConditionConfig>,
        device: &Device,
    ) -> Result<Self> {
        let (config, ckpt) = super::pretrained::single_file(path.as_ref(), config, "unet.")?;
        Ok(Self::load(&config, &ckpt, device, false)?.0)
    }

    /// Builds from a config and a checkpoint with diffusers keys. With `partial`, missing
    /// tensors are zeros and listed in the report instead of failing.
    pub fn load(
        config: &UNet2DConditionConfig,
        ckpt: &Checkpoint,
        device: &Device,
        partial: bool,
    ) -> Result<(Self, LoadReport)> {
        Self::load_recorded(config, ckpt, device, partial).map(|(m, r, _)| (m, r))
    }

    /// [`UNet2DConditionModel::load`] that also returns the loader's parameter records
    /// (every tensor under its diffusers key), which trainers name parameters by.
    pub fn load_recorded(
        config: &UNet2DConditionConfig,
        ckpt: &Checkpoint,
        device: &Device,
        partial: bool,
    ) -> Result<(Self, LoadReport, Vec<ParamRecord>)> {
        Self::load_impl(config, ckpt, device, partial, WeightDtype::F32)
    }

    fn load_impl(
        config: &UNet2DConditionConfig,
        ckpt: &Checkpoint,
        device: &Device,
        partial: bool,
        dtype: WeightDtype,
    ) -> Result<(Self, LoadReport, Vec<ParamRecord>)> {
        let r = config.resolve()?;
        let l = Loader::new(ckpt, device, partial).with_weight_dtype(dtype);
        let boc = &config.block_out_channels;
        let n = boc.len();
        let ted = config.time_embedding_dim.unwrap_or(boc[0] * 4);
        let resnet = |scale: f64| ResnetOptions {
            groups: r.groups,
            eps: config.norm_eps,
            temb_channels: Some(ted),
            output_scale_factor: scale,
            time_shift: r.time_shift,
            skip_time_act: config.resnet_skip_time_act,
        };
        let tr = |i: usize, layers: usize, only_cross: bool| TransformerOptions {
            heads: r.heads[i],
            layers,
            cross_dim: r.cross_dim[i],
            groups: r.groups,
            linear_projection: config.use_linear_projection,
            only_cross_attention: only_cross,
        };
        let ro = resnet(config.resnet_out_scale_factor);

        let mut down_blocks = Vec::new();
        let mut cin = boc[0];
        for i in 0..n {
            let cout = boc[i];
            let bl = l.sub("down_blocks").sub(i);
            let cross = config.down_block_types[i] == "CrossAttnDownBlock2D";
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..r.layers[i] {
                let rin = if j == 0 { cin } else { cout };
                resnets.push(ResnetBlock2D::load(
                    &bl.sub("resnets").sub(j),
                    rin,
                    cout,
                    &ro,
                )?);
                if cross {
                    attentions.push(Transformer2D::load(
                        &bl.sub("attentions").sub(j),
                        cout,
                        &tr(i, r.tlayers[i], r.only_cross[i]),
                    )?);
                }
            }
            let downsampler = if i + 1 < n {
                Some(load_downsample(
                    &bl.sub("downsamplers.0"),
                    cout,
                    config.downsample_padding,
                )?)
            } else {
                None
            };
            down_blocks.push(DownBlock {
                resnets,
                attentions,
                downsampler,
            });
            cin = cout;
        }

        let last = boc[n - 1];
        let mid_block = match config.mid_block_type.as_deref() {
            Some(_) => {
                let ml = l.sub("mid_block");
                let mo = resnet(config.mid_block_scale_factor);
                let layers = r.tlayers[n - 1];
                let only = config
                    .mid_block_only_cross_attention
                    .unwrap_or(r.only_cross[n - 1]);
                let mut m = MidBlock {
                    resnets: vec![ResnetBlock2D::load(&ml.sub("resnets.0"), last, last, &mo)?],
                    attentions: Vec::new(),
                };
                // diffusers' mid block has one (attention, resnet) pair; its transformer
                // holds transformer_layers_per_block[-1] blocks.
                m.attentions.push(Transformer2D::load(
                    &ml.sub("attentions.0"),
                    last,
                    &tr(n - 1, layers, only),
                )?);
                m.resnets
                    .push(ResnetBlock2D::load(&ml.sub("resnets.1"), last, last, &mo)?);
                Some(m)
            }
            None => None,
        };

        let rev: Vec<usize> = boc.iter().rev().copied().collect();
        let rev_layers: Vec<usize> = r.layers.iter().rev().copied().collect();
        let rev_tlayers: Vec<usize> = match &config.reverse_transformer_layers_per_block {
            Some(v) if v.len() == n => v.clone(),
            Some(v) => {
                return Err(VtonError::config(
                    "reverse_transformer_layers_per_block",
                    format!("has {} entries for {n} blocks", v.len()),
                ))
            }
            None => r.tlayers.iter().rev().copied().collect(),
        };
        let rev_only: Vec<bool> = r.only_cross.iter().rev().copied().collect();
        let mut up_blocks = Vec::new();
        let mut cout = rev[0];
        for i in 0..n {
            let prev = cout;
            cout = rev[i];
            let cin = rev[(i + 1).min(n - 1)];
            let bl = l.sub("up_blocks").sub(i);
            let cross = config.up_block_types[i] == "CrossAttnUpBlock2D";
            let layers = rev_layers[i] + 1;
            let mut resnets = Vec::new();
            let mut attentions = Vec::new();
            for j in 0..layers {
                let skip = if j == layers - 1 { cin } else { cout };
                let rin = if j == 0 { prev } else { cout };
                resnets.push(ResnetBlock2D::load(
                    &bl.sub("resnets").sub(j),
                    rin + skip,
                    cout,
                    &ro,
                )?);
                if cross {
                    let mut o = tr(n - 1 - i, rev_tlayers[i], rev_only[i]);
                    o.heads = r.heads[n - 1 - i];
                    o.cross_dim = r.cross_dim[n - 1 - i];
                    attentions.push(Transformer2D::load(&bl.sub("attentions").sub(j), cout, &o)?);
                }
            }
            let upsampler = if i + 1 < n {
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
            up_blocks.push(UpBlock {
                resnets,
                attentions,
                upsampler,
            });
        }

        let kin = config.conv_in_kernel;
        let kout = config.conv_out_kernel;
        let te = l.sub("time_embedding");
        let unet = UNet2DConditionModel {
            conv_in: conv2d(
                &l,
                "conv_in",
                config.in_channels,
                boc[0],
                kin,
                1,
                (kin - 1) / 2,
                true,
            )?,
            time_linear_1: linear(&te, "linear_1", boc[0], ted, true)?,
            time_linear_2: linear(&te, "linear_2", ted, ted, true)?,
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: group_norm(&l, "conv_norm_out", r.groups, boc[0], config.norm_eps)?,
            conv_out: conv2d(
                &l,
                "conv_out",
                boc[0],
                config.out_channels,
                kout,
                1,
                (kout - 1) / 2,
                true,
            )?,
            config: config.clone(),
        };
        let report = l.finish(true)?;
        Ok((unet, report, l.param_records()))
    }

    /// The time embedding MLP on sinusoidal features: `(B, 4 * block_out_channels[0])`.
    pub fn time_embedding(&self, t: &[f64], device: &Device) -> Tensor<2> {
        let dim = self.config.block_out_channels[0];
        let feats = timestep_embedding(t, dim, self.config.flip_sin_to_cos, self.config.freq_shift);
        let x = Tensor::<2>::from_data(TensorData::new(feats, [t.len(), dim]), device);
        self.time_linear_2
            .forward(silu(self.time_linear_1.forward(x)))
    }

    /// One denoising call: `sample` `(B, in_channels, h, w)`, timesteps, optional
    /// `encoder_hidden_states` `(B, seq, cross_attention_dim)`; without them every
    /// cross-attention is skipped. Returns `(B, out_channels, h, w)`.
    pub fn forward(
        &self,
        sample: Tensor<4>,
        timesteps: impl Into<Timesteps>,
        encoder_hidden_states: Option<&Tensor<3>>,
    ) -> Result<Tensor<4>> {
        self.forward_with(sample, timesteps, encoder_hidden_states, &DefaultProcessor)
    }

    /// [`UNet2DConditionModel::forward`] with a custom attention processor.
    pub fn forward_with(
        &self,
        sample: Tensor<4>,
        timesteps: impl Into<Timesteps>,
        encoder_hidden_states: Option<&Tensor<3>>,
        processor: &dyn AttentionProcessor,
    ) -> Result<Tensor<4>> {
        let [b, c, h, w] = sample.dims();
        if c != self.config.in_channels || h == 0 || w == 0 {
            return Err(VtonError::Shape {
                what: "UNet2DConditionModel sample".into(),
                expected: format!("(B, {}, h, w)", self.config.in_channels),
                actual: sample.dims().to_vec(),
            });
        }
        if let Some(e) = encoder_hidden_states {
            let [eb, _, ec] = e.dims();
            let want = self.cross_dims();
            if eb != b || !want.contains(&ec) {
                return Err(VtonError::Shape {
                    what: "encoder_hidden_states".into(),
                    expected: format!("({b}, seq, {})", want[0]),
                    actual: e.dims().to_vec(),
                });
            }
        }
        let t: Vec<f64> = match timesteps.into() {
            Timesteps::Scalar(t) => vec![t; b],
            Timesteps::PerSample(v) if v.len() == b => v,
            Timesteps::PerSample(v) => {
                return Err(VtonError::Shape {
                    what: "timesteps".into(),
                    expected: format!("one timestep or {b}"),
                    actual: vec![v.len()],
                })
            }
        };
        let device = sample.device();
        let emb = self.time_embedding(&t, &device);
        let ehs = encoder_hidden_states;

        let sample = if self.config.center_input_sample {
            sample.mul_scalar(2.0).sub_scalar(1.0)
        } else {
            sample
        };
        let mut x = self.conv_in.forward(sample);
        let mut skips = vec![x.clone()];
        for blk in &self.down_blocks {
            for (j, r) in blk.resnets.iter().enumerate() {
                x = r.forward(x, Some(&emb));
                if let Some(a) = blk.attentions.get(j) {
                    x = a.forward(x, ehs, processor);
                }
                skips.push(x.clone());
            }
            if let Some(d) = &blk.downsampler {
                x = d.forward(x);
                skips.push(x.clone());
            }
        }
        if let Some(m) = &self.mid_block {
            x = m.resnets[0].forward(x, Some(&emb));
            for (a, r) in m.attentions.iter().zip(&m.resnets[1..]) {
                x = a.forward(x, ehs, processor);
                x = r.forward(x, Some(&emb));
            }
        }
        for blk in &self.up_blocks {
            for (j, r) in blk.resnets.iter().enumerate() {
                let skip = skips.pop().ok_or_else(|| VtonError::Backend {
                    operation: "UNet up path".into(),
                    message: "ran out of skip connections".into(),
                })?;
                x = r.forward(Tensor::cat(vec![x, skip], 1), Some(&emb));
                if let Some(a) = blk.attentions.get(j) {
                    x = a.forward(x, ehs, processor);
                }
            }
            if let Some(u) = &blk.upsampler {
                // Upsample to the next skip's size (diffusers' forward_upsample_size for
                // inputs that are not multiples of 2^blocks; x2 otherwise).
                let size = skips.last().map(|s| {
                    let d = s.dims();
                    (d[2], d[3])
                });
                x = upsample(u, x, size);
            }
        }
        Ok(self
            .conv_out
            .forward(crate::kernels::group_norm(&self.conv_norm_out, x, true)))
    }

    fn cross_dims(&self) -> Vec<usize> {
        let n = self.config.block_out_channels.len();
        self.config
            .cross_attention_dim
            .expand(n, "cross_attention_dim")
            .unwrap_or_default()
    }
}
