//! The building blocks diffusers' AutoencoderKL and UNet2DConditionModel share:
//! `ResnetBlock2D`, `Downsample2D`, `Upsample2D`, the spatial `Transformer2DModel` with its
//! `BasicTransformerBlock`s, and the VAE's mid-block attention.

use crate::nn::Conv2d;
use crate::nn::Linear;
use burn::module::Module;
use burn::nn::{GroupNorm, PaddingConfig2d};
use burn::tensor::activation::gelu;
use burn::tensor::Tensor;

use super::attention::{Attention, AttentionProcessor, AttnKind, AttnSite};
use crate::error::{Result, VtonError};
use crate::kernels;
use crate::nn::{conv2d, group_norm, linear, resize_nearest, silu, LayerNorm};
use crate::weights::Loader;

/// How the time embedding enters a resnet block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeShift {
    /// `h + proj(temb)` after the first convolution.
    Default,
    /// `norm2(h) * (1 + scale) + shift` with `(scale, shift) = proj(temb)`.
    ScaleShift,
}

/// diffusers `ResnetBlock2D`.
#[derive(Module, Debug)]
pub struct ResnetBlock2D {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    pub time_emb_proj: Option<Linear>,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    pub conv_shortcut: Option<Conv2d>,
    #[module(skip)]
    pub output_scale_factor: f64,
    #[module(skip)]
    pub scale_shift: bool,
    #[module(skip)]
    pub skip_time_act: bool,
}

/// Options of a resnet block that come from the model config.
#[derive(Debug, Clone, Copy)]
pub struct ResnetOptions {
    pub groups: usize,
    pub eps: f64,
    pub temb_channels: Option<usize>,
    pub output_scale_factor: f64,
    pub time_shift: TimeShift,
    pub skip_time_act: bool,
}

impl ResnetBlock2D {
    pub fn load(l: &Loader, cin: usize, cout: usize, o: &ResnetOptions) -> Result<Self> {
        let time_emb_proj = match o.temb_channels {
            Some(t) => {
                let out = match o.time_shift {
                    TimeShift::Default => cout,
                    TimeShift::ScaleShift => 2 * cout,
                };
                Some(linear(l, "time_emb_proj", t, out, true)?)
            }
            None => None,
        };
        Ok(ResnetBlock2D {
            norm1: group_norm(l, "norm1", o.groups, cin, o.eps)?,
            conv1: conv2d(l, "conv1", cin, cout, 3, 1, 1, true)?,
            time_emb_proj,
            norm2: group_norm(l, "norm2", o.groups, cout, o.eps)?,
            conv2: conv2d(l, "conv2", cout, cout, 3, 1, 1, true)?,
            conv_shortcut: if cin != cout {
                Some(conv2d(l, "conv_shortcut", cin, cout, 1, 1, 0, true)?)
            } else {
                None
            },
            output_scale_factor: o.output_scale_factor,
            scale_shift: o.time_shift == TimeShift::ScaleShift,
            skip_time_act: o.skip_time_act,
        })
    }

    pub fn forward(&self, x: Tensor<4>, temb: Option<&Tensor<2>>) -> Tensor<4> {
        let mut h = self
            .conv1
            .forward(kernels::group_norm(&self.norm1, x.clone(), true));
        let t = match (&self.time_emb_proj, temb) {
            (Some(p), Some(t)) => {
                let t = if self.skip_time_act {
                    t.clone()
                } else {
                    silu(t.clone())
                };
                let t = p.forward(t);
                let [b, c] = t.dims();
                Some(t.reshape([b, c, 1, 1]))
            }
            _ => None,
        };
        if let (Some(t), false) = (&t, self.scale_shift) {
            h = h + t.clone();
        }
        let h = match (t, self.scale_shift) {
            (Some(t), true) => {
                let c = t.dims()[1] / 2;
                let scale = t.clone().narrow(1, 0, c);
                let shift = t.narrow(1, c, c);
                silu(kernels::group_norm(&self.norm2, h, false) * scale.add_scalar(1.0) + shift)
            }
            _ => kernels::group_norm(&self.norm2, h, true),
        };
        let h = self.conv2.forward(h);
        let skip = match &self.conv_shortcut {
            Some(c) => c.forward(x),
            None => x,
        };
        let out = skip + h;
        if self.output_scale_factor != 1.0 {
            out.div_scalar(self.output_scale_factor)
        } else {
            out
        }
    }
}

/// `Downsample2D` with a convolution: stride 2; with `padding == 0` diffusers first pads
/// one pixel on the right and bottom (the VAE encoder).
pub fn load_downsample(l: &Loader, channels: usize, padding: usize) -> Result<Conv2d> {
    let mut conv = conv2d(l, "conv", channels, channels, 3, 2, padding, true)?;
    if padding == 0 {
        conv.padding = PaddingConfig2d::Explicit(0, 0, 1, 1);
    }
    Ok(conv)
}

/// `Upsample2D` with a convolution: nearest upsampling to `size` (x2 by default), 3x3 conv.
pub fn upsample(conv: &Conv2d, x: Tensor<4>, size: Option<(usize, usize)>) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let (oh, ow) = size.unwrap_or((2 * h, 2 * w));
    conv.forward(resize_nearest(x, oh, ow))
}

/// The VAE mid-block attention: GroupNorm, single-head attention over pixels, residual.
#[derive(Module, Debug)]
pub struct SpatialSelfAttention {
    pub group_norm: GroupNorm,
    pub attn: Attention,
}

impl SpatialSelfAttention {
    pub fn load(l: &Loader, channels: usize, groups: usize, eps: f64) -> Result<Self> {
        Ok(SpatialSelfAttention {
            group_norm: group_norm(l, "group_norm", groups, channels, eps)?,
            attn: Attention::load(l, channels, channels, 1, channels, true)?,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let n = kernels::group_norm(&self.group_norm, x.clone(), false);
        let seq = n.reshape([b, c, h * w]).swap_dims(1, 2);
        let q = self.attn.to_q.forward(seq.clone());
        let k = self.attn.to_k.forward(seq.clone());
        let v = self.attn.to_v.forward(seq);
        let out = self.attn.to_out.forward(self.attn.attend(q, k, v));
        out.swap_dims(1, 2).reshape([b, c, h, w]) + x
    }
}

/// GEGLU feed-forward: `proj` to `2 * inner`, `hidden * gelu(gate)`, back to `dim`.
#[derive(Module, Debug)]
pub struct FeedForward {
    pub proj: Linear,
    pub out: Linear,
}

impl FeedForward {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.proj.forward(x);
        let inner = h.dims()[2] / 2;
        let hidden = h.clone().narrow(2, 0, inner);
        let gate = h.narrow(2, inner, inner);
        self.out.forward(hidden * gelu(gate))
    }
}

/// diffusers `BasicTransformerBlock` (layer norms, self-attention, cross-attention, GEGLU).
#[derive(Module, Debug)]
pub struct BasicTransformerBlock {
    pub norm1: LayerNorm,
    pub attn1: Attention,
    pub norm2: LayerNorm,
    pub attn2: Attention,
    pub norm3: LayerNorm,
    pub ff: FeedForward,
    #[module(skip)]
    pub only_cross_attention: bool,
    #[module(skip)]
    pub path: String,
}

impl BasicTransformerBlock {
    fn load(
        l: &Loader,
        dim: usize,
        heads: usize,
        head_dim: usize,
        cross_dim: usize,
        only_cross_attention: bool,
    ) -> Result<Self> {
        let inner_ff = dim * 4;
        let ff = l.sub("ff").sub("net");
        let self_ctx = if only_cross_attention { cross_dim } else { dim };
        Ok(BasicTransformerBlock {
            norm1: LayerNorm::load(l, "norm1", dim, 1e-5)?,
            attn1: Attention::load(&l.sub("attn1"), dim, self_ctx, heads, head_dim, false)?,
            norm2: LayerNorm::load(l, "norm2", dim, 1e-5)?,
            attn2: Attention::load(&l.sub("attn2"), dim, cross_dim, heads, head_dim, false)?,
            norm3: LayerNorm::load(l, "norm3", dim, 1e-5)?,
            ff: FeedForward {
                proj: linear(&ff.sub("0"), "proj", dim, 2 * inner_ff, true)?,
                out: linear(&ff, "2", inner_ff, dim, true)?,
            },
            only_cross_attention,
            path: l.key(""),
        })
    }

    fn forward(
        &self,
        x: Tensor<3>,
        context: Option<&Tensor<3>>,
        proc: &dyn AttentionProcessor,
    ) -> Tensor<3> {
        let p1 = format!("{}attn1", self.path);
        let site1 = AttnSite {
            path: &p1,
            kind: AttnKind::SelfAttention,
        };
        let ctx1 = if self.only_cross_attention {
            context.cloned()
        } else {
            None
        };
        let x = proc.process(&site1, &self.attn1, self.norm1.forward(x.clone()), ctx1) + x;
        // Cross-attention. Without encoder states the processor decides; the default
        // passes its (normalised) input through, as CatVTON's SkipAttnProcessor does, so
        // that CatVTON's weights, trained that way, run as released: x + norm2(x).
        let p2 = format!("{}attn2", self.path);
        let site2 = AttnSite {
            path: &p2,
            kind: AttnKind::CrossAttention,
        };
        let x = proc.process(
            &site2,
            &self.attn2,
            self.norm2.forward(x.clone()),
            context.cloned(),
        ) + x;
        self.ff.forward(self.norm3.forward(x.clone())) + x
    }
}

/// How `Transformer2DModel` projects in and out.
#[derive(Module, Debug)]
pub enum Projection {
    /// 1x1 convolutions (SD 1.x).
    Conv(Conv2d),
    /// Linear layers on the flattened sequence (SD 2.x, `use_linear_projection`).
    Linear(Linear),
}

/// diffusers `Transformer2DModel` (continuous input).
#[derive(Module, Debug)]
pub struct Transformer2D {
    pub norm: GroupNorm,
    pub proj_in: Projection,
    pub transformer_blocks: Vec<BasicTransformerBlock>,
    pub proj_out: Projection,
}

/// Shape of a `Transformer2DModel`.
#[derive(Debug, Clone, Copy)]
pub struct TransformerOptions {
    pub heads: usize,
    pub layers: usize,
    pub cross_dim: usize,
    pub groups: usize,
    pub linear_projection: bool,
    pub only_cross_attention: bool,
}

impl Transformer2D {
    pub fn load(l: &Loader, channels: usize, o: &TransformerOptions) -> Result<Self> {
        if o.heads == 0 || channels % o.heads != 0 {
            return Err(VtonError::config(
                l.key(""),
                format!("{channels} channels cannot be split into {} heads", o.heads),
            ));
        }
        let head_dim = channels / o.heads;
        let inner = channels;
        let proj = |name: &str, cin: usize, cout: usize| -> Result<Projection> {
            Ok(if o.linear_projection {
                Projection::Linear(linear(l, name, cin, cout, true)?)
            } else {
                Projection::Conv(conv2d(l, name, cin, cout, 1, 1, 0, true)?)
            })
        };
        let blocks = (0..o.layers)
            .map(|i| {
                BasicTransformerBlock::load(
                    &l.sub("transformer_blocks").sub(i),
                    inner,
                    o.heads,
                    head_dim,
                    o.cross_dim,
                    o.only_cross_attention,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Transformer2D {
            norm: group_norm(l, "norm", o.groups, channels, 1e-6)?,
            proj_in: proj("proj_in", channels, inner)?,
            transformer_blocks: blocks,
            proj_out: proj("proj_out", inner, channels)?,
        })
    }

    pub fn forward(
        &self,
        x: Tensor<4>,
        context: Option<&Tensor<3>>,
        proc: &dyn AttentionProcessor,
    ) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let n = kernels::group_norm(&self.norm, x.clone(), false);
        let to_seq = |t: Tensor<4>| {
            let c = t.dims()[1];
            t.reshape([b, c, h * w]).swap_dims(1, 2)
        };
        let mut seq = match &self.proj_in {
            Projection::Conv(conv) => to_seq(conv.forward(n)),
            Projection::Linear(lin) => lin.forward(to_seq(n)),
        };
        for blk in &self.transformer_blocks {
            seq = blk.forward(seq, context, proc);
        }
        let from_seq = |s: Tensor<3>| {
            let c = s.dims()[2];
            s.swap_dims(1, 2).reshape([b, c, h, w])
        };
        let out = match &self.proj_out {
            Projection::Conv(conv) => conv.forward(from_seq(seq)),
            Projection::Linear(lin) => from_seq(lin.forward(seq)),
        };
        out + x
    }
}
