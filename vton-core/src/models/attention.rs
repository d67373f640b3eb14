//! Multi-head attention as diffusers' `Attention` computes it, and the replaceable
//! processor that decides what an attention layer sees.
//!
//! A processor receives the layer (its projections are public), the site it runs at
//! (the module path, self or cross attention) and the hidden states plus the optional
//! context. The default, [`DefaultProcessor`], is diffusers' `AttnProcessor2_0`; a pipeline
//! that concatenates reference features into self-attention keys and values, or that
//! attends across views, supplies its own processor to `UNet2DConditionModel::forward_with`
//! instead of rewriting the U-Net.

use crate::nn::Linear;
use burn::module::Module;
use burn::tensor::Tensor;

use crate::error::Result;
use crate::nn::linear;
use crate::weights::Loader;

/// Which attention a site is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttnKind {
    /// `attn1` of a transformer block (or the VAE mid-block attention).
    SelfAttention,
    /// `attn2`: queries from the image, keys and values from `encoder_hidden_states`.
    CrossAttention,
}

/// Where an attention layer sits.
#[derive(Debug, Clone, Copy)]
pub struct AttnSite<'a> {
    /// diffusers module path, e.g. `down_blocks.0.attentions.0.transformer_blocks.0.attn1`.
    pub path: &'a str,
    pub kind: AttnKind,
}

/// Decides what an attention layer computes.
pub trait AttentionProcessor: Send + Sync {
    /// `hidden`: `(B, N, C)`; `context`: `(B, M, C_ctx)` for cross attention (or for a
    /// self-attention layer built with `only_cross_attention`). Returns `(B, N, C)`, before
    /// the block's residual addition.
    fn process(
        &self,
        site: &AttnSite<'_>,
        attn: &Attention,
        hidden: Tensor<3>,
        context: Option<Tensor<3>>,
    ) -> Tensor<3>;
}

/// diffusers' standard processor: project, scaled dot-product attention, output projection.
/// A cross-attention called without encoder states returns its input unchanged, which is
/// what CatVTON's `SkipAttnProcessor` does (and what its released weights expect).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultProcessor;

impl AttentionProcessor for DefaultProcessor {
    fn process(
        &self,
        site: &AttnSite<'_>,
        attn: &Attention,
        hidden: Tensor<3>,
        context: Option<Tensor<3>>,
    ) -> Tensor<3> {
        if site.kind == AttnKind::CrossAttention && context.is_none() {
            // No encoder states: skip the attention and return its input (CatVTON's
            // SkipAttnProcessor; the block then adds it to the residual).
            return hidden;
        }
        let ctx = context.unwrap_or_else(|| hidden.clone());
        let q = attn.to_q.forward(hidden);
        let k = attn.to_k.forward(ctx.clone());
        let v = attn.to_v.forward(ctx);
        let out = attn.attend(q, k, v);
        attn.to_out.forward(out)
    }
}

/// diffusers' `Attention` (projections `to_q`, `to_k`, `to_v`, `to_out.0`).
#[derive(Module, Debug)]
pub struct Attention {
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    pub to_out: Linear,
    #[module(skip)]
    pub heads: usize,
    #[module(skip)]
    pub head_dim: usize,
}

impl Attention {
    /// `query_dim` in and out, `heads * head_dim` inside, keys/values from `context_dim`.
    pub fn load(
        l: &Loader,
        query_dim: usize,
        context_dim: usize,
        heads: usize,
        head_dim: usize,
        qkv_bias: bool,
    ) -> Result<Self> {
        let inner = heads * head_dim;
        Ok(Attention {
            to_q: linear(l, "to_q", query_dim, inner, qkv_bias)?,
            to_k: linear(l, "to_k", context_dim, inner, qkv_bias)?,
            to_v: linear(l, "to_v", context_dim, inner, qkv_bias)?,
            to_out: linear(&l.sub("to_out"), "0", inner, query_dim, true)?,
            heads,
            head_dim,
        })
    }

    /// Softmax(q k^T / sqrt(head_dim)) v over heads, on projected `(B, N, heads*head_dim)`
    /// queries and `(B, M, heads*head_dim)` keys and values; returns `(B, N, heads*head_dim)`.
    pub fn attend(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let split = |t: Tensor<3>| {
            let [b, n, _] = t.dims();
            t.reshape([b, n, self.heads, self.head_dim]).swap_dims(1, 2)
        };
        let [b, n, _] = q.dims();
        let out = crate::kernels::attention(
            split(q),
            split(k),
            split(v),
            1.0 / (self.head_dim as f64).sqrt(),
        );
        out.swap_dims(1, 2)
            .reshape([b, n, self.heads * self.head_dim])
    }
}
