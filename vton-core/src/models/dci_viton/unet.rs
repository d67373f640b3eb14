//! DCI-VITON's diffusion U-Net (`diffusionmodel.py` `UNet`): a six-level encoder /
//! decoder on SD latents with AdaGN time conditioning and squeeze-excitation, trained as an
//! epsilon predictor on `cat([x_t, z_cond, mask])` (9 channels in, 4 out).
//!
//! Structure, as the original computes it:
//!
//! * time: sinusoidal features `[sin(t f) | cos(t f)]` with `f_i = exp(-i ln(10000) /
//!   (half - 1))` (note `half - 1`, not diffusers' `half`), `half = time_emb_dim / 2`, in
//!   float32; then `Linear(T, 4T) -> SiLU -> Linear(4T, T)` (`time_mlp.1`, `time_mlp.3`).
//!   The embedding goes to every AdaGN without a further activation.
//! * `upfeature`: 1x1 conv to `hidden_channels` (x0); `contract1..6`: each
//!   `residual_conv(x)` (1x1) beside `conv3x3 -> AdaGN -> SiLU -> conv3x3 -> AdaGN -> SiLU
//!   -> SE`, summed, then a stride-2 3x3 conv (the only down-sampling: output size
//!   `ceil(s / 2)`); widths `hidden * 2^k`. The skips are the *down-sampled* outputs x1..x6.
//! * `expand0..5`: `ConvTranspose2d(k=2, s=2)`, then, when that is not the skip's shape
//!   (odd sizes; 1 -> 2 -> 1), `F.interpolate(mode="nearest")` (legacy floor indexing) to
//!   it; `cat([up, skip])`; `residual_conv` (1x1) beside `conv3x3 -> AdaGN -> SiLU ->
//!   conv3x3 -> AdaGN -> SiLU -> SE`, summed (no activation after). `expand0` takes x6 with
//!   skip x5, ..., `expand5` x11 with skip x0, so the output has the input's size.
//! * `downfeature`: 1x1 conv to the output channels.
//! * AdaGN: `GroupNorm(groups, C, eps 1e-5, affine=False)`, then `x * (1 + scale) + shift`
//!   with `[scale | shift] = time_proj(temb)` (scale first). The group count (8) is a literal
//!   of the original, not in the checkpoint: [`DciVitonUNetOptions::num_groups`].
//! * SE: global mean -> `Linear(C, C // r, bias=False)` -> ReLU -> `Linear(C // r, C,
//!   bias=False)` -> sigmoid, times the input (r = 16 in the original). Below `C < r` the
//!   bottleneck has zero width (the original accepts `Linear(C, 0)`); its gate is then
//!   `sigmoid(0) = 0.5` everywhere, which is what happens here too.
//! * No dropout exists in a `UNet` (its blocks are built with `use_dropout=False`).
//!
//! Every width is read from the checkpoint: `upfeature.conv.weight` gives the input
//! channels and `hidden_channels`, `downfeature.conv.weight` the output channels,
//! `time_mlp.1.weight` `time_emb_dim`, each SE's `fc.0.weight` its bottleneck; every other
//! tensor is checked against the widths the original derives from those.
//!
//! Sizes: any `H, W >= 1` runs (the nearest fallback absorbs odd sizes; multiples of 64
//! never need it), except that PyTorch's `group_norm` refuses a group holding a single
//! value (`B * C / groups * h * w == 1` at some level), which [`DciVitonUNet::check_input`]
//! reproduces as an error.

use std::path::Path;

use crate::nn::Conv2d;
use crate::nn::Linear;
use burn::module::Module;
use burn::nn::conv::ConvTranspose2d;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::models::unet::Timesteps;
use crate::nn::{conv2d, linear, relu, resize_nearest, silu};
use crate::rng::Rng;
use crate::weights::{Checkpoint, Loader, ParamRecord};

/// Number of contracting (= expanding) blocks of the original.
pub const DCI_UNET_DEPTH: usize = 6;

/// What the checkpoint does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DciVitonUNetOptions {
    /// GroupNorm groups of every AdaGN (the original's literal: 8).
    pub num_groups: usize,
    /// SE reduction: `None` reads every SE bottleneck width from its weights; `Some(r)`
    /// requires `C // r` (and is what [`DciVitonUNet::new`] builds; 16 when `None`).
    pub se_reduction: Option<usize>,
}

impl Default for DciVitonUNetOptions {
    fn default() -> Self {
        DciVitonUNetOptions {
            num_groups: 8,
            se_reduction: None,
        }
    }
}

/// The constructor arguments of `UNet(input_channels, output_channels, hidden_channels,
/// time_emb_dim)`, as read from a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DciVitonUNetConfig {
    pub input_channels: usize,
    pub output_channels: usize,
    pub hidden_channels: usize,
    pub time_emb_dim: usize,
}

impl Default for DciVitonUNetConfig {
    /// `UNet(9, 4)` as `viton_pipeline.py` builds it (hidden 64, time_emb_dim 256).
    fn default() -> Self {
        DciVitonUNetConfig {
            input_channels: 9,
            output_channels: 4,
            hidden_channels: 64,
            time_emb_dim: 256,
        }
    }
}

impl DciVitonUNetConfig {
    /// `(in, out)` channels of `contract{k}` (k = 1..=6).
    pub fn contract_channels(&self, k: usize) -> (usize, usize) {
        let h = self.hidden_channels;
        (h << (k - 1), h << k)
    }

    /// `(in, out)` channels of `expand{j}` (j = 0..=5).
    pub fn expand_channels(&self, j: usize) -> (usize, usize) {
        let h = self.hidden_channels;
        (h << (DCI_UNET_DEPTH - j), h << (DCI_UNET_DEPTH - 1 - j))
    }

    fn validate(&self, opts: &DciVitonUNetOptions) -> Result<()> {
        let c = |m: String| Err(VtonError::config("DCI-VITON UNet", m));
        if self.input_channels == 0 || self.output_channels == 0 || self.hidden_channels == 0 {
            return c(format!("channel counts must be positive: {self:?}"));
        }
        if self.time_emb_dim < 4 || !self.time_emb_dim.is_multiple_of(2) {
            // half - 1 is a divisor of the original (ZeroDivisionError for half = 1) and an
            // odd dim gives dim - 1 features to a Linear(dim, 4 dim).
            return c(format!(
                "time_emb_dim {} must be even and at least 4",
                self.time_emb_dim
            ));
        }
        let g = opts.num_groups;
        // The narrowest AdaGN is expand5's (hidden); all widths are hidden * 2^k.
        if g == 0 || !self.hidden_channels.is_multiple_of(g) {
            return c(format!(
                "GroupNorm with {g} groups needs every AdaGN width (hidden_channels {} and its \
                 multiples) divisible by it",
                self.hidden_channels
            ));
        }
        if opts.se_reduction == Some(0) {
            return c("se_reduction must be positive".into());
        }
        Ok(())
    }
}

/// `AdaptiveGroupNorm`: affine-free GroupNorm, then `x * (1 + scale) + shift`.
#[derive(Module, Debug)]
pub struct AdaptiveGroupNorm {
    pub time_proj: Linear,
    #[module(skip)]
    pub num_groups: usize,
    #[module(skip)]
    pub num_channels: usize,
}

/// `nn.GroupNorm(groups, C, eps=1e-5, affine=False)`, biased variance as PyTorch.
fn group_norm_plain(x: Tensor<4>, groups: usize, eps: f64) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let flat = x.reshape([b, groups, (c / groups) * h * w]);
    let mean = flat.clone().mean_dim(2);
    let xc = flat - mean;
    let var = xc.clone().square().mean_dim(2);
    (xc / var.add_scalar(eps).sqrt()).reshape([b, c, h, w])
}

impl AdaptiveGroupNorm {
    fn load(l: &Loader, name: &str, groups: usize, c: usize, temb: usize) -> Result<Self> {
        let l = l.sub(name);
        Ok(AdaptiveGroupNorm {
            time_proj: linear(&l, "time_proj", temb, 2 * c, true)?,
            num_groups: groups,
            num_channels: c,
        })
    }

    pub fn forward(&self, x: Tensor<4>, temb: &Tensor<2>) -> Tensor<4> {
        let c = self.num_channels;
        let normed = group_norm_plain(x, self.num_groups, 1e-5);
        let ss = self.time_proj.forward(temb.clone());
        let bt = ss.dims()[0];
        let scale = ss.clone().narrow(1, 0, c).reshape([bt, c, 1, 1]);
        let shift = ss.narrow(1, c, c).reshape([bt, c, 1, 1]);
        normed * scale.add_scalar(1.0) + shift
    }
}

/// `SEBlock`: `fc` is the original `nn.Sequential(Linear, ReLU, Linear, Sigmoid)`, its
/// parameter-free entries `None` (so the parameter paths are `fc.0.weight`, `fc.2.weight`).
/// With a zero-width bottleneck both linears are `None` and the gate is 0.5.
#[derive(Module, Debug)]
pub struct SEBlock {
    pub fc: Vec<Option<Linear>>,
    #[module(skip)]
    pub hidden: usize,
}

impl SEBlock {
    fn load(l: &Loader, c: usize, reduction: Option<usize>) -> Result<Self> {
        let l = l.sub("se");
        let hidden = match reduction {
            Some(r) => c / r,
            None => tensor_dims(&l, "fc.0.weight", 2)?[0],
        };
        let fc = if hidden == 0 {
            // Zero-size tensors: shapes checked, nothing to read.
            expect_shape(&l, "fc.0.weight", &[0, c])?;
            expect_shape(&l, "fc.2.weight", &[c, 0])?;
            l.ignore("fc.0.weight");
            l.ignore("fc.2.weight");
            vec![None, None, None, None]
        } else {
            vec![
                Some(linear(&l, "fc.0", c, hidden, false)?),
                None,
                Some(linear(&l, "fc.2", hidden, c, false)?),
                None,
            ]
        };
        Ok(SEBlock { fc, hidden })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        match (
            self.fc.first().and_then(|f| f.as_ref()),
            self.fc.get(2).and_then(|f| f.as_ref()),
        ) {
            (Some(f0), Some(f2)) => {
                let y = x.clone().reshape([b, c, h * w]).mean_dim(2).reshape([b, c]);
                let y = burn::tensor::activation::sigmoid(f2.forward(relu(f0.forward(y))));
                x * y.reshape([b, c, 1, 1])
            }
            _ => x.mul_scalar(0.5),
        }
    }
}

/// `ContractingBlock` (dropout never built).
#[derive(Module, Debug)]
pub struct ContractingBlock {
    pub conv1: Conv2d,
    pub norm1: AdaptiveGroupNorm,
    pub conv2: Conv2d,
    pub norm2: AdaptiveGroupNorm,
    pub residual_conv: Conv2d,
    pub downsample: Conv2d,
    pub se: SEBlock,
}

impl ContractingBlock {
    fn load(
        l: &Loader,
        cin: usize,
        cout: usize,
        temb: usize,
        o: &DciVitonUNetOptions,
    ) -> Result<Self> {
        Ok(ContractingBlock {
            conv1: conv2d(l, "conv1", cin, cout, 3, 1, 1, true)?,
            norm1: AdaptiveGroupNorm::load(l, "norm1", o.num_groups, cout, temb)?,
            conv2: conv2d(l, "conv2", cout, cout, 3, 1, 1, true)?,
            norm2: AdaptiveGroupNorm::load(l, "norm2", o.num_groups, cout, temb)?,
            residual_conv: conv2d(l, "residual_conv", cin, cout, 1, 1, 0, true)?,
            downsample: conv2d(l, "downsample", cout, cout, 3, 2, 1, true)?,
            se: SEBlock::load(l, cout, o.se_reduction)?,
        })
    }

    pub fn forward(&self, x: Tensor<4>, temb: &Tensor<2>) -> Tensor<4> {
        let identity = self.residual_conv.forward(x.clone());
        let h = silu(self.norm1.forward(self.conv1.forward(x), temb));
        let h = silu(self.norm2.forward(self.conv2.forward(h), temb));
        let h = self.se.forward(h);
        self.downsample.forward(h + identity)
    }
}

/// `ExpandingBlock` (dropout never built).
#[derive(Module, Debug)]
pub struct ExpandingBlock {
    pub upsample: ConvTranspose2d,
    pub conv1: Conv2d,
    pub norm1: AdaptiveGroupNorm,
    pub conv2: Conv2d,
    pub norm2: AdaptiveGroupNorm,
    pub residual_conv: Conv2d,
    pub se: SEBlock,
}

fn conv_transpose2x2(l: &Loader, name: &str, cin: usize, cout: usize) -> Result<ConvTranspose2d> {
    let l = l.sub(name);
    Ok(ConvTranspose2d {
        weight: l.param("weight", [cin, cout, 2, 2])?,
        bias: Some(l.param("bias", [cout])?),
        stride: [2, 2],
        kernel_size: [2, 2],
        dilation: [1, 1],
        groups: 1,
        padding: [0, 0],
        padding_out: [0, 0],
        channels: [cin, cout],
    })
}

impl ExpandingBlock {
    fn load(
        l: &Loader,
        cin: usize,
        cout: usize,
        temb: usize,
        o: &DciVitonUNetOptions,
    ) -> Result<Self> {
        Ok(ExpandingBlock {
            upsample: conv_transpose2x2(l, "upsample", cin, cout)?,
            conv1: conv2d(l, "conv1", 2 * cout, cout, 3, 1, 1, true)?,
            norm1: AdaptiveGroupNorm::load(l, "norm1", o.num_groups, cout, temb)?,
            conv2: conv2d(l, "conv2", cout, cout, 3, 1, 1, true)?,
            norm2: AdaptiveGroupNorm::load(l, "norm2", o.num_groups, cout, temb)?,
            residual_conv: conv2d(l, "residual_conv", cin, cout, 1, 1, 0, true)?,
            se: SEBlock::load(l, cout, o.se_reduction)?,
        })
    }

    pub fn forward(&self, x: Tensor<4>, skip: &Tensor<4>, temb: &Tensor<2>) -> Tensor<4> {
        let mut x = self.upsample.forward(x);
        if x.dims() != skip.dims() {
            let [_, _, h, w] = skip.dims();
            x = resize_nearest(x, h, w);
        }
        let x = Tensor::cat(vec![x, skip.clone()], 1);
        let identity = self.residual_conv.forward(x.clone());
        let h = silu(self.norm1.forward(self.conv1.forward(x), temb));
        let h = silu(self.norm2.forward(self.conv2.forward(h), temb));
        self.se.forward(h) + identity
    }
}

/// `FeatureMapBlock`: a 1x1 conv.
#[derive(Module, Debug)]
pub struct FeatureMapBlock {
    pub conv: Conv2d,
}

/// Intermediate values of one forward pass (the original's local names).
#[derive(Debug, Clone)]
pub struct DciUNetFeatures {
    /// Sinusoidal features `[Bt, time_emb_dim]` (`time_mlp[0]`), Bt = 1 or B.
    pub time_features: Tensor<2>,
    /// `time_emb = time_mlp(t)`, `[Bt, time_emb_dim]`.
    pub time_emb: Tensor<2>,
    /// `x0` (upfeature), `x1..x6` (contract1..6), `x7..x12` (expand0..5).
    pub x: Vec<Tensor<4>>,
    /// `downfeature(x12)`.
    pub out: Tensor<4>,
}

/// DCI-VITON `UNet`. Field names are the original module names; `time_mlp` is the
/// original `nn.Sequential(SinusoidalPositionalEmbedding, Linear, SiLU, Linear)` with its
/// parameter-free entries `None`.
#[derive(Module, Debug)]
pub struct DciVitonUNet {
    pub time_mlp: Vec<Option<Linear>>,
    pub upfeature: FeatureMapBlock,
    pub contract1: ContractingBlock,
    pub contract2: ContractingBlock,
    pub contract3: ContractingBlock,
    pub contract4: ContractingBlock,
    pub contract5: ContractingBlock,
    pub contract6: ContractingBlock,
    pub expand0: ExpandingBlock,
    pub expand1: ExpandingBlock,
    pub expand2: ExpandingBlock,
    pub expand3: ExpandingBlock,
    pub expand4: ExpandingBlock,
    pub expand5: ExpandingBlock,
    pub downfeature: FeatureMapBlock,
    #[module(skip)]
    pub config: DciVitonUNetConfig,
    #[module(skip)]
    pub options: DciVitonUNetOptions,
}

/// The shape of `name`, which must have `rank` dimensions.
fn tensor_dims(l: &Loader, name: &str, rank: usize) -> Result<Vec<usize>> {
    let s = l.shape(name).ok_or_else(|| VtonError::MissingWeights {
        source_name: l.checkpoint().name().to_string(),
        count: 1,
        keys: l.key(name),
    })?;
    if s.len() != rank {
        return Err(VtonError::WeightShape {
            key: l.key(name),
            expected: vec![0; rank],
            found: s,
        });
    }
    Ok(s)
}

fn expect_shape(l: &Loader, name: &str, shape: &[usize]) -> Result<()> {
    let s = tensor_dims(l, name, shape.len())?;
    if s != shape {
        return Err(VtonError::WeightShape {
            key: l.key(name),
            expected: shape.to_vec(),
            found: s,
        });
    }
    Ok(())
}

/// The key every DCI-VITON U-Net checkpoint has (used to find the model's root).
const PROBE: &str = "upfeature.conv.weight";

/// `SinusoidalPositionalEmbedding(dim)(t)` as the original computes it in float32:
/// frequencies `exp(arange(half) * -(ln 10000 / (half - 1)))` (the Python float constant
/// rounded to float32, product and exp in float32), then `t * f` in float32 and
/// `[sin | cos]`. Row-major `[t.len(), 2 * half]`.
pub fn sinusoidal_features(t: &[f32], dim: usize) -> Vec<f32> {
    let freqs = sinusoidal_frequencies(dim);
    let half = freqs.len();
    let mut out = vec![0f32; t.len() * 2 * half];
    for (b, &tb) in t.iter().enumerate() {
        let row = &mut out[b * 2 * half..(b + 1) * 2 * half];
        for (i, &f) in freqs.iter().enumerate() {
            let a = (tb * f) as f64;
            row[i] = a.sin() as f32;
            row[half + i] = a.cos() as f32;
        }
    }
    out
}

/// The float32 frequencies of [`sinusoidal_features`] (`half = dim / 2` of them; `dim`
/// must be at least 4).
pub fn sinusoidal_frequencies(dim: usize) -> Vec<f32> {
    let half = dim / 2;
    let c = -((10000f64.ln() / (half as f64 - 1.0)) as f32);
    (0..half)
        .map(|i| ((i as f32 * c) as f64).exp() as f32)
        .collect()
}

impl DciVitonUNet {
    /// Opens a checkpoint file (the original `torch.save({'model_state_dict': ...,
    /// 'optimizer_state_dict': ...})`, a bare state dict, or safetensors) and loads it.
    pub fn from_checkpoint(
        path: impl AsRef<Path>,
        opts: &DciVitonUNetOptions,
        device: &Device,
    ) -> Result<Self> {
        let ck = Checkpoint::open(path)?;
        Self::load(&ck, opts, device)
    }

    /// Loads from a checkpoint: keys at the root, or under one prefix (`model_state_dict.`
    /// beside `optimizer_state_dict.`, a fixture's `weights.`); everything else in the file
    /// is ignored, and every tensor under the root must be used.
    pub fn load(ckpt: &Checkpoint, opts: &DciVitonUNetOptions, device: &Device) -> Result<Self> {
        Ok(Self::load_recorded(ckpt, opts, device)?.0)
    }

    /// [`DciVitonUNet::load`] that also returns the parameter records (every tensor under
    /// its original key), which trainers name parameters by. Zero-width SE bottlenecks
    /// have no parameters and no record.
    pub fn load_recorded(
        ckpt: &Checkpoint,
        opts: &DciVitonUNetOptions,
        device: &Device,
    ) -> Result<(Self, Vec<ParamRecord>)> {
        let ck = ckpt.clone().rooted_at(PROBE);
        let l = Loader::new(&ck, device, false);
        let up = tensor_dims(&l, PROBE, 4)?;
        let down = tensor_dims(&l, "downfeature.conv.weight", 4)?;
        let t1 = tensor_dims(&l, "time_mlp.1.weight", 2)?;
        let config = DciVitonUNetConfig {
            input_channels: up[1],
            output_channels: down[0],
            hidden_channels: up[0],
            time_emb_dim: t1[1],
        };
        config.validate(opts)?;
        let temb = config.time_emb_dim;
        let h = config.hidden_channels;
        let tl = l.sub("time_mlp");
        let time_mlp = vec![
            None,
            Some(linear(&tl, "1", temb, 4 * temb, true)?),
            None,
            Some(linear(&tl, "3", 4 * temb, temb, true)?),
        ];
        let fmap = |name: &str, cin: usize, cout: usize| -> Result<FeatureMapBlock> {
            Ok(FeatureMapBlock {
                conv: conv2d(&l.sub(name), "conv", cin, cout, 1, 1, 0, true)?,
            })
        };
        let upfeature = fmap("upfeature", config.input_channels, h)?;
        let contract = |k: usize| {
            let (ci, co) = config.contract_channels(k);
            ContractingBlock::load(&l.sub(format!("contract{k}")), ci, co, temb, opts)
        };
        let expand = |j: usize| {
            let (ci, co) = config.expand_channels(j);
            ExpandingBlock::load(&l.sub(format!("expand{j}")), ci, co, temb, opts)
        };
        let unet = DciVitonUNet {
            time_mlp,
            upfeature,
            contract1: contract(1)?,
            contract2: contract(2)?,
            contract3: contract(3)?,
            contract4: contract(4)?,
            contract5: contract(5)?,
            contract6: contract(6)?,
            expand0: expand(0)?,
            expand1: expand(1)?,
            expand2: expand(2)?,
            expand3: expand(3)?,
            expand4: expand(4)?,
            expand5: expand(5)?,
            downfeature: fmap("downfeature", h, config.output_channels)?,
            config,
            options: *opts,
        };
        l.finish(true)?;
        Ok((unet, l.param_records()))
    }

    /// A freshly initialised U-Net (PyTorch's default initialisation, drawn from vton's
    /// generator with seed 0), for training from scratch. SE reduction: `opts.se_reduction`
    /// or the original's 16.
    pub fn new(
        config: &DciVitonUNetConfig,
        opts: &DciVitonUNetOptions,
        device: &Device,
    ) -> Result<Self> {
        Self::new_seeded(config, opts, 0, device)
    }

    /// [`DciVitonUNet::new`] with a seed.
    pub fn new_seeded(
        config: &DciVitonUNetConfig,
        opts: &DciVitonUNetOptions,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let ck = Self::fresh_checkpoint(config, opts, seed)?;
        Self::load(&ck, opts, device)
    }

    /// A fresh state dict under the original keys: PyTorch's default initialisation
    /// (weights and biases `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`; for `ConvTranspose2d`,
    /// fan_in = out_channels * 4 as PyTorch computes it from the weight's dim 1).
    pub fn fresh_checkpoint(
        config: &DciVitonUNetConfig,
        opts: &DciVitonUNetOptions,
        seed: u64,
    ) -> Result<Checkpoint> {
        config.validate(opts)?;
        let r = opts.se_reduction.unwrap_or(16);
        let mut f = Fresh {
            rng: Rng::new(seed),
            tensors: Vec::new(),
        };
        let temb = config.time_emb_dim;
        let h = config.hidden_channels;
        f.linear("time_mlp.1", temb, 4 * temb, true);
        f.linear("time_mlp.3", 4 * temb, temb, true);
        f.conv("upfeature.conv", config.input_channels, h, 1);
        let common = |f: &mut Fresh, p: &str, c1in: usize, cout: usize| {
            f.conv(&format!("{p}.conv1"), c1in, cout, 3);
            f.linear(&format!("{p}.norm1.time_proj"), temb, 2 * cout, true);
            f.conv(&format!("{p}.conv2"), cout, cout, 3);
            f.linear(&format!("{p}.norm2.time_proj"), temb, 2 * cout, true);
            f.linear(&format!("{p}.se.fc.0"), cout, cout / r, false);
            f.linear(&format!("{p}.se.fc.2"), cout / r, cout, false);
        };
        for k in 1..=DCI_UNET_DEPTH {
            let (ci, co) = config.contract_channels(k);
            let p = format!("contract{k}");
            common(&mut f, &p, ci, co);
            f.conv(&format!("{p}.residual_conv"), ci, co, 1);
            f.conv(&format!("{p}.downsample"), co, co, 3);
        }
        for j in 0..DCI_UNET_DEPTH {
            let (ci, co) = config.expand_channels(j);
            let p = format!("expand{j}");
            f.uniform(format!("{p}.upsample.weight"), vec![ci, co, 2, 2], co * 4);
            f.uniform(format!("{p}.upsample.bias"), vec![co], co * 4);
            common(&mut f, &p, 2 * co, co);
            f.conv(&format!("{p}.residual_conv"), ci, co, 1);
        }
        f.conv("downfeature.conv", h, config.output_channels, 1);
        let tensors = f.tensors;
        Checkpoint::from_f32_tensors("fresh DCI-VITON UNet", tensors)
    }

    /// The constructor arguments read from the checkpoint.
    pub fn config(&self) -> DciVitonUNetConfig {
        self.config
    }

    /// The input sizes whose every level halves exactly (no nearest fallback): 2^6.
    pub fn native_multiple() -> usize {
        1 << DCI_UNET_DEPTH
    }

    /// Checks an input shape `[B, C, H, W]` as the original would run it: `C` the input
    /// channels, `B, H, W >= 1`, and no GroupNorm group with a single value at any level
    /// (PyTorch's `group_norm` raises "Expected more than 1 value per channel").
    pub fn check_input(&self, dims: [usize; 4]) -> Result<()> {
        let [b, c, h, w] = dims;
        let cfg = &self.config;
        if c != cfg.input_channels || b == 0 || h == 0 || w == 0 {
            return Err(VtonError::Shape {
                what: "DCI-VITON UNet input".into(),
                expected: format!("[B, {}, H, W] with B, H, W >= 1", cfg.input_channels),
                actual: dims.to_vec(),
            });
        }
        // Level sizes: s0 = input, s_{k+1} = ceil(s_k / 2) (3x3 conv, stride 2, padding 1).
        let mut sizes = vec![(h, w)];
        for k in 0..DCI_UNET_DEPTH {
            let (sh, sw) = sizes[k];
            sizes.push((sh.div_ceil(2), sw.div_ceil(2)));
        }
        let g = self.options.num_groups;
        // contract{k} normalises at level k-1 with hidden * 2^k channels; expand{j} at the
        // skip's level 5 - j with hidden * 2^(5-j).
        let sites = (1..=DCI_UNET_DEPTH)
            .map(|k| {
                (
                    format!("contract{k}"),
                    sizes[k - 1],
                    cfg.contract_channels(k).1,
                )
            })
            .chain((0..DCI_UNET_DEPTH).map(|j| {
                (
                    format!("expand{j}"),
                    sizes[DCI_UNET_DEPTH - 1 - j],
                    cfg.expand_channels(j).1,
                )
            }));
        for (name, (sh, sw), ch) in sites {
            if b * (ch / g) * sh * sw <= 1 {
                return Err(VtonError::invalid(
                    "DCI-VITON UNet input",
                    format!(
                        "{dims:?}: {name}'s GroupNorm ({g} groups of {ch} channels at {sh}x{sw}) \
                         would normalise single values, which PyTorch refuses; use a larger \
                         input or batch"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `time_mlp(t)`: `[Bt, time_emb_dim]` (with its sinusoidal features).
    pub fn time_embedding(&self, t: &[f32], device: &Device) -> (Tensor<2>, Tensor<2>) {
        let dim = self.config.time_emb_dim;
        let feats = Tensor::<2>::from_data(
            TensorData::new(sinusoidal_features(t, dim), [t.len(), dim]),
            device,
        );
        let l1 = self.time_mlp[1].as_ref().expect("time_mlp.1 is loaded");
        let l3 = self.time_mlp[3].as_ref().expect("time_mlp.3 is loaded");
        let emb = l3.forward(silu(l1.forward(feats.clone())));
        (feats, emb)
    }

    /// The noise prediction `[B, output_channels, H, W]` for `x` `[B, input_channels, H, W]`
    /// at timesteps `t`: one value (broadcast over the batch, as the pipeline's
    /// `torch.tensor([t])`) or one per sample.
    pub fn forward(&self, x: Tensor<4>, t: impl Into<Timesteps>) -> Result<Tensor<4>> {
        Ok(self.run(x, t.into(), false)?.out)
    }

    /// [`DciVitonUNet::forward`] keeping every intermediate (x0..x12, time embedding).
    pub fn forward_features(
        &self,
        x: Tensor<4>,
        t: impl Into<Timesteps>,
    ) -> Result<DciUNetFeatures> {
        self.run(x, t.into(), true)
    }

    fn run(&self, x: Tensor<4>, t: Timesteps, keep: bool) -> Result<DciUNetFeatures> {
        let dims = x.dims();
        self.check_input(dims)?;
        let b = dims[0];
        let tv: Vec<f32> = match t {
            Timesteps::Scalar(v) => vec![v as f32],
            Timesteps::PerSample(v) if v.len() == 1 || v.len() == b => {
                v.into_iter().map(|x| x as f32).collect()
            }
            Timesteps::PerSample(v) => {
                return Err(VtonError::Shape {
                    what: "DCI-VITON UNet timesteps".into(),
                    expected: format!("1 or {b} (the batch)"),
                    actual: vec![v.len()],
                })
            }
        };
        let device = x.device();
        let (time_features, temb) = self.time_embedding(&tv, &device);
        let contracts = [
            &self.contract1,
            &self.contract2,
            &self.contract3,
            &self.contract4,
            &self.contract5,
            &self.contract6,
        ];
        let expands = [
            &self.expand0,
            &self.expand1,
            &self.expand2,
            &self.expand3,
            &self.expand4,
            &self.expand5,
        ];
        let mut skips = vec![self.upfeature.conv.forward(x)];
        for c in contracts {
            let next = c.forward(skips.last().expect("x0").clone(), &temb);
            skips.push(next);
        }
        let mut xs = if keep { skips.clone() } else { Vec::new() };
        let mut cur = skips.pop().expect("x6");
        for e in expands {
            let skip = skips.pop().expect("one skip per expanding block");
            cur = e.forward(cur, &skip, &temb);
            if keep {
                xs.push(cur.clone());
            }
        }
        let out = self.downfeature.conv.forward(cur);
        Ok(DciUNetFeatures {
            time_features,
            time_emb: temb,
            x: xs,
            out,
        })
    }

    /// Number of parameters (zero-width SE bottlenecks count zero).
    pub fn num_params(&self) -> usize {
        Module::num_params(self)
    }
}

/// Builds a fresh state dict with PyTorch's default initialisation.
struct Fresh {
    rng: Rng,
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl Fresh {
    /// `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (zero-size tensors stay empty).
    fn uniform(&mut self, key: String, shape: Vec<usize>, fan_in: usize) {
        let n: usize = shape.iter().product();
        let bound = if fan_in > 0 {
            1.0 / (fan_in as f64).sqrt()
        } else {
            0.0
        };
        let v = (0..n)
            .map(|_| {
                let u = self.rng.next_u32() as f64 / 4_294_967_296.0;
                ((2.0 * u - 1.0) * bound) as f32
            })
            .collect();
        self.tensors.push((key, shape, v));
    }

    fn conv(&mut self, key: &str, cin: usize, cout: usize, k: usize) {
        self.uniform(format!("{key}.weight"), vec![cout, cin, k, k], cin * k * k);
        self.uniform(format!("{key}.bias"), vec![cout], cin * k * k);
    }

    fn linear(&mut self, key: &str, din: usize, dout: usize, bias: bool) {
        self.uniform(format!("{key}.weight"), vec![dout, din], din);
        if bias {
            self.uniform(format!("{key}.bias"), vec![dout], din);
        }
    }
}
