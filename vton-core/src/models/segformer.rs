//! SegFormer semantic segmentation: transformers' `SegformerForSemanticSegmentation` (any
//! size, b0-b5) and its image processor, loaded from a Hugging Face model folder
//! (`config.json` + `model.safetensors` / `pytorch_model.bin`, optional
//! `preprocessor_config.json`).
//!
//! The network is the Mix Transformer encoder and the all-MLP decode head of Xie et al.,
//! as transformers implements them:
//!
//! * per stage `i`: an overlapping patch embedding (`Conv2d(k = patch_sizes[i],
//!   stride = strides[i], padding = k / 2)` + LayerNorm), `depths[i]` transformer blocks and
//!   a final LayerNorm; the stage output is reshaped back to `[B, C, H, W]`;
//! * a block: `x + Attn(LN(x))`, then `x + MixFFN(LN(x))` (drop path and dropout are
//!   identities in eval);
//! * efficient self-attention: queries from every token, keys and values from the tokens
//!   reduced by a `Conv2d(C, C, sr, stride sr)` + LayerNorm when `sr_ratios[i] > 1`;
//!   `num_attention_heads[i]` heads, softmax(q k^T / sqrt(head_dim)) v, output projection;
//! * Mix-FFN: Linear(C, C * mlp_ratio) -> depthwise 3x3 conv -> activation -> Linear;
//! * every LayerNorm is `nn.LayerNorm(C)` with PyTorch's default eps 1e-5 (the config's
//!   `layer_norm_eps` is not used by transformers' SegFormer);
//! * decode head: per stage a Linear(C_i, decoder_hidden_size) (`linear_c.i`), upsampled
//!   bilinearly (align_corners False) to the first stage's 1/4 grid, concatenated in
//!   REVERSED stage order (last stage first), `linear_fuse` (1x1 conv, no bias), BatchNorm
//!   (eval: running statistics, eps 1e-5), ReLU, classifier (1x1 conv) -> logits at 1/4.
//!
//! Tensor names are the `state_dict` keys of the published checkpoints
//! (`segformer.encoder.patch_embeddings.0.proj.weight`,
//! `segformer.encoder.block.0.0.attention.self.sr.weight`, `decode_head.linear_c.0.proj.weight`,
//! ...; transformers 5 still writes these with `save_pretrained`). A state dict taken from a
//! transformers 5 module in memory (`segformer.stages.0.blocks.0.attention.q_proj.weight`, ...)
//! is renamed to them on load. Every width, depth, head count, ratio, patch size, stride
//! and the label count comes from `config.json` and is checked against the weights.
//!
//! [`SegformerImageProcessor`] is transformers' PIL-based `SegformerImageProcessor`
//! (4.x; `SegformerImageProcessorPil` in 5.x): PIL resize of the 8-bit image with the
//! configured filter (default bilinear, 512x512), `x * rescale_factor` in float64 then
//! float32, `(x - mean) / std` in float32.

use std::path::{Path, PathBuf};

use crate::nn::Conv2d;
use crate::nn::Linear;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;

use crate::error::{Result, VtonError};
use crate::io::RgbImage;
use crate::metrics::image::{MetricImage, PilFilter};
use crate::models::pretrained::python_json;
use crate::nn::{linear, relu, resize_bilinear, BatchNorm2d, LayerNorm};
use crate::weights::{Checkpoint, LoadReport, Loader};

/// PyTorch's `nn.LayerNorm` / `nn.BatchNorm2d` default eps, what SegFormer uses.
const NORM_EPS: f64 = 1e-5;

/// The activation of the Mix-FFN (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HiddenAct {
    /// `"gelu"`: the exact (erf) GELU.
    Gelu,
    /// `"gelu_new"`, `"gelu_pytorch_tanh"`, `"gelu_fast"`: the tanh approximation.
    GeluTanh,
    Relu,
    /// `"silu"` / `"swish"`.
    Silu,
}

impl HiddenAct {
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(match name {
            "gelu" => HiddenAct::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => HiddenAct::GeluTanh,
            "relu" => HiddenAct::Relu,
            "silu" | "swish" => HiddenAct::Silu,
            other => {
                return Err(VtonError::Unsupported {
                    what: format!("SegFormer hidden_act {other:?}"),
                })
            }
        })
    }

    fn apply<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        use burn::tensor::activation as a;
        match self {
            HiddenAct::Gelu => a::gelu(x),
            HiddenAct::GeluTanh => a::gelu_approximate(x),
            HiddenAct::Relu => a::relu(x),
            HiddenAct::Silu => a::silu(x),
        }
    }
}

/// The architecture part of a SegFormer `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct SegformerConfig {
    pub num_channels: usize,
    pub hidden_sizes: Vec<usize>,
    pub depths: Vec<usize>,
    pub num_attention_heads: Vec<usize>,
    pub sr_ratios: Vec<usize>,
    pub patch_sizes: Vec<usize>,
    pub strides: Vec<usize>,
    /// Mix-FFN width factors; the hidden width is `int(hidden_size * mlp_ratio)`.
    pub mlp_ratios: Vec<f64>,
    pub decoder_hidden_size: usize,
    pub hidden_act: HiddenAct,
    /// Label names by id (`id2label`; `LABEL_<i>` when the config only gives `num_labels`).
    pub id2label: Vec<String>,
}

fn cfg_err(what: &str, key: &str, message: impl Into<String>) -> VtonError {
    VtonError::Config {
        what: format!("{what}: {key}"),
        message: message.into(),
    }
}

fn get<'a>(v: &'a Value, what: &str, key: &str) -> Result<&'a Value> {
    v.get(key)
        .filter(|x| !x.is_null())
        .ok_or_else(|| cfg_err(what, key, "missing (a SegFormer config.json has it)"))
}

fn as_usize(v: &Value, what: &str, key: &str) -> Result<usize> {
    v.as_u64()
        .map(|x| x as usize)
        .ok_or_else(|| cfg_err(what, key, format!("{v} is not a non-negative integer")))
}

fn usize_list(v: &Value, what: &str, key: &str) -> Result<Vec<usize>> {
    let arr = get(v, what, key)?
        .as_array()
        .ok_or_else(|| cfg_err(what, key, "is not a list"))?;
    arr.iter().map(|x| as_usize(x, what, key)).collect()
}

fn f64_list(v: &Value, what: &str, key: &str) -> Result<Vec<f64>> {
    let arr = get(v, what, key)?
        .as_array()
        .ok_or_else(|| cfg_err(what, key, "is not a list"))?;
    arr.iter()
        .map(|x| {
            x.as_f64()
                .ok_or_else(|| cfg_err(what, key, format!("{x} is not a number")))
        })
        .collect()
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| VtonError::io(path, e))?;
    serde_json::from_str(&python_json(&text)).map_err(|e| VtonError::Json {
        what: path.display().to_string(),
        message: e.to_string(),
    })
}

impl SegformerConfig {
    /// Reads `config.json`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_value(&read_json(path)?, &path.display().to_string())
    }

    /// Parses the text of a `config.json`; `what` names it in messages.
    pub fn from_json(text: &str, what: &str) -> Result<Self> {
        let v: Value = serde_json::from_str(&python_json(text)).map_err(|e| VtonError::Json {
            what: what.to_string(),
            message: e.to_string(),
        })?;
        Self::from_value(&v, what)
    }

    /// From a parsed `config.json`. The architecture keys are required (transformers
    /// writes all of them); `num_channels` defaults to 3 and `hidden_act` to "gelu".
    pub fn from_value(v: &Value, what: &str) -> Result<Self> {
        if let Some(t) = v.get("model_type").and_then(Value::as_str) {
            if t != "segformer" {
                return Err(cfg_err(
                    what,
                    "model_type",
                    format!("{t:?} is not \"segformer\""),
                ));
            }
        }
        let num_channels = match v.get("num_channels").filter(|x| !x.is_null()) {
            Some(x) => as_usize(x, what, "num_channels")?,
            None => 3,
        };
        let hidden_act = match v.get("hidden_act").and_then(Value::as_str) {
            Some(s) => HiddenAct::from_name(s)?,
            None => HiddenAct::Gelu,
        };
        if v.get("reshape_last_stage").and_then(Value::as_bool) == Some(false) {
            return Err(VtonError::Unsupported {
                what: "SegFormer reshape_last_stage = false (the decode head then assumes a \
                       square last stage)"
                    .into(),
            });
        }
        let id2label = match v.get("id2label").filter(|x| !x.is_null()) {
            Some(m) => {
                let m = m
                    .as_object()
                    .ok_or_else(|| cfg_err(what, "id2label", "is not an object"))?;
                let mut names = vec![None; m.len()];
                for (k, name) in m {
                    let i: usize = k.parse().ok().filter(|&i| i < m.len()).ok_or_else(|| {
                        cfg_err(
                            what,
                            "id2label",
                            format!("key {k:?} is not an id 0..{}", m.len()),
                        )
                    })?;
                    names[i] = Some(name.as_str().unwrap_or_default().to_string());
                }
                let names: Vec<String> = names.into_iter().map(Option::unwrap_or_default).collect();
                if let Some(n) = v.get("num_labels").and_then(Value::as_u64) {
                    if n as usize != names.len() {
                        return Err(cfg_err(
                            what,
                            "num_labels",
                            format!("{n} disagrees with id2label's {} entries", names.len()),
                        ));
                    }
                }
                names
            }
            None => {
                let n = as_usize(get(v, what, "id2label")?, what, "num_labels")?;
                (0..n).map(|i| format!("LABEL_{i}")).collect()
            }
        };
        let c = SegformerConfig {
            num_channels,
            hidden_sizes: usize_list(v, what, "hidden_sizes")?,
            depths: usize_list(v, what, "depths")?,
            num_attention_heads: usize_list(v, what, "num_attention_heads")?,
            sr_ratios: usize_list(v, what, "sr_ratios")?,
            patch_sizes: usize_list(v, what, "patch_sizes")?,
            strides: usize_list(v, what, "strides")?,
            mlp_ratios: f64_list(v, what, "mlp_ratios")?,
            decoder_hidden_size: as_usize(
                get(v, what, "decoder_hidden_size")?,
                what,
                "decoder_hidden_size",
            )?,
            hidden_act,
            id2label,
        };
        if let Some(n) = v.get("num_encoder_blocks").filter(|x| !x.is_null()) {
            let n = as_usize(n, what, "num_encoder_blocks")?;
            if n != c.hidden_sizes.len() {
                return Err(cfg_err(
                    what,
                    "num_encoder_blocks",
                    format!(
                        "{n} disagrees with hidden_sizes' {} entries",
                        c.hidden_sizes.len()
                    ),
                ));
            }
        }
        c.validate(what)?;
        Ok(c)
    }

    fn validate(&self, what: &str) -> Result<()> {
        let n = self.hidden_sizes.len();
        if n == 0 {
            return Err(cfg_err(what, "hidden_sizes", "is empty"));
        }
        let lens = [
            ("depths", self.depths.len()),
            ("num_attention_heads", self.num_attention_heads.len()),
            ("sr_ratios", self.sr_ratios.len()),
            ("patch_sizes", self.patch_sizes.len()),
            ("strides", self.strides.len()),
            ("mlp_ratios", self.mlp_ratios.len()),
        ];
        for (k, l) in lens {
            if l != n {
                return Err(cfg_err(
                    what,
                    k,
                    format!("has {l} entries, hidden_sizes has {n}"),
                ));
            }
        }
        for i in 0..n {
            let (c, h) = (self.hidden_sizes[i], self.num_attention_heads[i]);
            if c == 0 || h == 0 || c % h != 0 {
                return Err(cfg_err(
                    what,
                    "num_attention_heads",
                    format!("stage {i}: hidden size {c} is not a multiple of {h} heads"),
                ));
            }
            if self.sr_ratios[i] == 0 || self.patch_sizes[i] == 0 || self.strides[i] == 0 {
                return Err(cfg_err(
                    what,
                    "sr_ratios / patch_sizes / strides",
                    format!("stage {i} has a 0"),
                ));
            }
            if self.mlp_hidden(i) == 0 {
                return Err(cfg_err(
                    what,
                    "mlp_ratios",
                    format!("stage {i} gives an empty Mix-FFN"),
                ));
            }
        }
        if self.decoder_hidden_size == 0 || self.num_channels == 0 {
            return Err(cfg_err(what, "decoder_hidden_size / num_channels", "is 0"));
        }
        if self.id2label.is_empty() {
            return Err(cfg_err(what, "id2label", "has no label"));
        }
        Ok(())
    }

    /// Number of labels (classifier outputs).
    pub fn num_labels(&self) -> usize {
        self.id2label.len()
    }

    /// Number of encoder stages.
    pub fn num_stages(&self) -> usize {
        self.hidden_sizes.len()
    }

    /// `int(hidden_sizes[i] * mlp_ratios[i])`.
    pub fn mlp_hidden(&self, i: usize) -> usize {
        (self.hidden_sizes[i] as f64 * self.mlp_ratios[i]).floor() as usize
    }

    /// The spatial sizes of the stage outputs for an `h` x `w` input, or a shape error when
    /// a convolution would see less than its kernel.
    pub fn stage_sizes(&self, h: usize, w: usize) -> Result<Vec<(usize, usize)>> {
        let mut out = Vec::new();
        let (mut h, mut w) = (h, w);
        for i in 0..self.num_stages() {
            let (k, s) = (self.patch_sizes[i], self.strides[i]);
            let p = k / 2;
            if h + 2 * p < k || w + 2 * p < k {
                return Err(VtonError::Shape {
                    what: format!("SegFormer stage {i} input"),
                    expected: format!("at least {k} pixels with padding {p}"),
                    actual: vec![h, w],
                });
            }
            h = (h + 2 * p - k) / s + 1;
            w = (w + 2 * p - k) / s + 1;
            let r = self.sr_ratios[i];
            if r > 1 && (h < r || w < r) {
                return Err(VtonError::Shape {
                    what: format!("SegFormer stage {i} tokens for sequence reduction {r}"),
                    expected: format!("a grid of at least {r}x{r}"),
                    actual: vec![h, w],
                });
            }
            out.push((h, w));
        }
        Ok(out)
    }
}

fn conv(
    l: &Loader,
    name: &str,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    padding: usize,
    groups: usize,
    bias: bool,
) -> Result<Conv2d> {
    let l = l.sub(name);
    let weight = l.param("weight", [cout, cin / groups, k, k])?;
    let bias = if bias {
        Some(l.param("bias", [cout])?)
    } else {
        None
    };
    Ok(Conv2d {
        weight,
        bias,
        stride: [stride, stride],
        kernel_size: [k, k],
        dilation: [1, 1],
        groups,
        padding: PaddingConfig2d::Explicit(padding, padding, padding, padding),
    })
}

/// `[B, N, C]` tokens of an `h` x `w` grid as `[B, C, h, w]`.
fn tokens_to_map(x: Tensor<3>, h: usize, w: usize) -> Tensor<4> {
    let [b, _, c] = x.dims();
    x.swap_dims(1, 2).reshape([b, c, h, w])
}

/// `[B, C, h, w]` as `[B, h * w, C]` tokens (`flatten(2).transpose(1, 2)`).
fn map_to_tokens(x: Tensor<4>) -> Tensor<3> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).swap_dims(1, 2)
}

/// Overlapping patch embedding: strided convolution + LayerNorm.
#[derive(Module, Debug)]
pub struct OverlapPatchEmbeddings {
    pub proj: Conv2d,
    pub layer_norm: LayerNorm,
}

/// Efficient self-attention (keys and values on a reduced token grid).
#[derive(Module, Debug)]
pub struct EfficientSelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    /// `attention.self.sr` + `attention.self.layer_norm`, when `sr_ratio > 1`.
    pub sr: Option<Conv2d>,
    pub sr_norm: Option<LayerNorm>,
    pub output: Linear,
    #[module(skip)]
    pub heads: usize,
}

impl EfficientSelfAttention {
    fn forward(&self, x: Tensor<3>, h: usize, w: usize) -> Tensor<3> {
        let [b, n, c] = x.dims();
        let d = c / self.heads;
        let q = self.query.forward(x.clone());
        let kv = match (&self.sr, &self.sr_norm) {
            (Some(sr), Some(norm)) => {
                norm.forward(map_to_tokens(sr.forward(tokens_to_map(x, h, w))))
            }
            _ => x,
        };
        let m = kv.dims()[1];
        let split = |t: Tensor<3>, len: usize| t.reshape([b, len, self.heads, d]).swap_dims(1, 2);
        let q = split(q, n);
        let k = split(self.key.forward(kv.clone()), m);
        let v = split(self.value.forward(kv), m);
        let scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (d as f64).sqrt());
        let probs = burn::tensor::activation::softmax(scores, 3);
        let out = probs.matmul(v).swap_dims(1, 2).reshape([b, n, c]);
        self.output.forward(out)
    }
}

/// Mix-FFN: Linear, depthwise 3x3 convolution, activation, Linear.
#[derive(Module, Debug)]
pub struct MixFfn {
    pub dense1: Linear,
    pub dwconv: Conv2d,
    pub dense2: Linear,
    #[module(skip)]
    pub act: HiddenAct,
}

impl MixFfn {
    fn forward(&self, x: Tensor<3>, h: usize, w: usize) -> Tensor<3> {
        let x = self.dense1.forward(x);
        let x = map_to_tokens(self.dwconv.forward(tokens_to_map(x, h, w)));
        self.dense2.forward(self.act.apply(x))
    }
}

/// One transformer block of the Mix Transformer.
#[derive(Module, Debug)]
pub struct SegformerLayer {
    pub layer_norm_1: LayerNorm,
    pub attention: EfficientSelfAttention,
    pub layer_norm_2: LayerNorm,
    pub mlp: MixFfn,
}

impl SegformerLayer {
    fn forward(&self, x: Tensor<3>, h: usize, w: usize) -> Tensor<3> {
        let x = self
            .attention
            .forward(self.layer_norm_1.forward(x.clone()), h, w)
            + x;
        self.mlp.forward(self.layer_norm_2.forward(x.clone()), h, w) + x
    }
}

/// One encoder stage: patch embedding, blocks, final LayerNorm.
#[derive(Module, Debug)]
pub struct SegformerStage {
    pub patch_embeddings: OverlapPatchEmbeddings,
    pub blocks: Vec<SegformerLayer>,
    pub layer_norm: LayerNorm,
}

impl SegformerStage {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.patch_embeddings.proj.forward(x);
        let [_, _, h, w] = x.dims();
        let mut t = self.patch_embeddings.layer_norm.forward(map_to_tokens(x));
        for block in &self.blocks {
            t = block.forward(t, h, w);
        }
        tokens_to_map(self.layer_norm.forward(t), h, w)
    }
}

/// The all-MLP decode head.
#[derive(Module, Debug)]
pub struct SegformerDecodeHead {
    /// `linear_c.<i>.proj`, one per stage.
    pub linear_c: Vec<Linear>,
    pub linear_fuse: Conv2d,
    pub batch_norm: BatchNorm2d,
    pub classifier: Conv2d,
}

impl SegformerDecodeHead {
    fn forward(&self, stages: &[Tensor<4>]) -> Tensor<4> {
        let [_, _, h0, w0] = stages[0].dims();
        let mut fused: Vec<Tensor<4>> = stages
            .iter()
            .zip(&self.linear_c)
            .map(|(s, lin)| {
                let [_, _, h, w] = s.dims();
                let t = lin.forward(map_to_tokens(s.clone()));
                resize_bilinear(tokens_to_map(t, h, w), h0, w0)
            })
            .collect();
        fused.reverse();
        let x = self.linear_fuse.forward(Tensor::cat(fused, 1));
        self.classifier.forward(relu(self.batch_norm.forward(x)))
    }
}

/// transformers' `SegformerForSemanticSegmentation` in eval mode.
#[derive(Module, Debug)]
pub struct SegformerForSemanticSegmentation {
    pub stages: Vec<SegformerStage>,
    pub decode_head: SegformerDecodeHead,
    #[module(skip)]
    config: SegformerConfig,
}

/// The files of a Hugging Face model folder.
fn find_weights(dir: &Path) -> Result<Vec<PathBuf>> {
    for index in [
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
    ] {
        let p = dir.join(index);
        if p.is_file() {
            let v = read_json(&p)?;
            let mut files: Vec<String> = v["weight_map"]
                .as_object()
                .map(|m| {
                    m.values()
                        .filter_map(|f| f.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            files.dedup();
            if files.is_empty() {
                return Err(VtonError::Json {
                    what: p.display().to_string(),
                    message: "weight_map names no file".into(),
                });
            }
            return Ok(files.into_iter().map(|f| dir.join(f)).collect());
        }
    }
    for name in ["model.safetensors", "pytorch_model.bin"] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(vec![p]);
        }
    }
    Err(VtonError::FileNotFound {
        path: dir.join("model.safetensors"),
    })
}

/// The model folder of `path` (a folder, or a file inside it such as its `config.json`).
fn model_dir(path: &Path) -> Result<PathBuf> {
    if !path.exists() {
        return Err(VtonError::FileNotFound {
            path: path.to_path_buf(),
        });
    }
    let dir = if path.is_file() {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        path.to_path_buf()
    };
    if !dir.join("config.json").is_file() {
        return Err(VtonError::FileNotFound {
            path: dir.join("config.json"),
        });
    }
    Ok(dir)
}

/// The published (transformers 4.x) name of a transformers 5 in-memory state-dict key;
/// other keys are returned unchanged.
pub fn legacy_key(key: &str) -> String {
    let mut s = key.to_string();
    if let Some(rest) = key.strip_prefix("segformer.stages.") {
        if let Some((n, tail)) = rest.split_once('.') {
            if let Some(t) = tail.strip_prefix("patch_embeddings.") {
                s = format!("segformer.encoder.patch_embeddings.{n}.{t}");
            } else if let Some(t) = tail.strip_prefix("blocks.") {
                s = format!("segformer.encoder.block.{n}.{t}");
            } else if let Some(t) = tail.strip_prefix("layer_norm.") {
                s = format!("segformer.encoder.layer_norm.{n}.{t}");
            }
        }
    }
    for (new, old) in [
        (
            ".attention.sequence_reduction.sequence_reduction.",
            ".attention.self.sr.",
        ),
        (
            ".attention.sequence_reduction.layer_norm.",
            ".attention.self.layer_norm.",
        ),
        (".attention.q_proj.", ".attention.self.query."),
        (".attention.k_proj.", ".attention.self.key."),
        (".attention.v_proj.", ".attention.self.value."),
        (".attention.o_proj.", ".attention.output.dense."),
        (".mlp.fc1.", ".mlp.dense1."),
        (".mlp.fc2.", ".mlp.dense2."),
        (".layernorm_before.", ".layer_norm_1."),
        (".layernorm_after.", ".layer_norm_2."),
    ] {
        if s.starts_with("segformer.encoder.block.") {
            s = s.replace(new, old);
        }
    }
    if let Some(t) = s.strip_prefix("decode_head.linear_projections.") {
        s = format!("decode_head.linear_c.{t}");
    }
    s
}

impl SegformerForSemanticSegmentation {
    /// Loads a Hugging Face model folder (or a file in it): `config.json` and
    /// `model.safetensors`, `pytorch_model.bin` or a sharded index of either.
    pub fn from_pretrained(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = model_dir(path.as_ref())?;
        let config = SegformerConfig::from_file(dir.join("config.json"))?;
        let ck = Checkpoint::open_all(&find_weights(&dir)?)?;
        Self::load(&config, &ck, device)
    }

    /// Builds the model from a checkpoint holding exactly its tensors (strict: missing,
    /// unexpected and mis-shaped tensors are errors naming the key).
    pub fn load(config: &SegformerConfig, ck: &Checkpoint, device: &Device) -> Result<Self> {
        let (model, _) = Self::load_with_report(config, ck, device, true)?;
        Ok(model)
    }

    /// [`Self::load`], optionally lenient about unused tensors (`strict = false`), with
    /// the load report.
    pub fn load_with_report(
        config: &SegformerConfig,
        ck: &Checkpoint,
        device: &Device,
        strict: bool,
    ) -> Result<(Self, LoadReport)> {
        config.validate("SegFormer config")?;
        let renamed;
        let ck = if ck.keys().any(|k| {
            k.starts_with("segformer.stages.") || k.starts_with("decode_head.linear_projections.")
        }) {
            renamed = ck.clone().map_keys(|k| Some(legacy_key(k)));
            &renamed
        } else {
            ck
        };
        let root = Loader::new(ck, device, false);
        let enc = root.sub("segformer").sub("encoder");
        let mut stages = Vec::new();
        let mut cin = config.num_channels;
        for i in 0..config.num_stages() {
            let c = config.hidden_sizes[i];
            let (k, s) = (config.patch_sizes[i], config.strides[i]);
            let pe = enc.sub("patch_embeddings").sub(i);
            let patch_embeddings = OverlapPatchEmbeddings {
                proj: conv(&pe, "proj", cin, c, k, s, k / 2, 1, true)?,
                layer_norm: LayerNorm::load(&pe, "layer_norm", c, NORM_EPS)?,
            };
            let r = config.sr_ratios[i];
            let hidden = config.mlp_hidden(i);
            let blocks = (0..config.depths[i])
                .map(|j| {
                    let b = enc.sub("block").sub(i).sub(j);
                    let a = b.sub("attention");
                    let sa = a.sub("self");
                    Ok(SegformerLayer {
                        layer_norm_1: LayerNorm::load(&b, "layer_norm_1", c, NORM_EPS)?,
                        attention: EfficientSelfAttention {
                            query: linear(&sa, "query", c, c, true)?,
                            key: linear(&sa, "key", c, c, true)?,
                            value: linear(&sa, "value", c, c, true)?,
                            sr: if r > 1 {
                                Some(conv(&sa, "sr", c, c, r, r, 0, 1, true)?)
                            } else {
                                None
                            },
                            sr_norm: if r > 1 {
                                Some(LayerNorm::load(&sa, "layer_norm", c, NORM_EPS)?)
                            } else {
                                None
                            },
                            output: linear(&a.sub("output"), "dense", c, c, true)?,
                            heads: config.num_attention_heads[i],
                        },
                        layer_norm_2: LayerNorm::load(&b, "layer_norm_2", c, NORM_EPS)?,
                        mlp: MixFfn {
                            dense1: linear(&b.sub("mlp"), "dense1", c, hidden, true)?,
                            dwconv: conv(
                                &b.sub("mlp").sub("dwconv"),
                                "dwconv",
                                hidden,
                                hidden,
                                3,
                                1,
                                1,
                                hidden,
                                true,
                            )?,
                            dense2: linear(&b.sub("mlp"), "dense2", hidden, c, true)?,
                            act: config.hidden_act,
                        },
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let layer_norm = LayerNorm::load(&enc.sub("layer_norm"), &i.to_string(), c, NORM_EPS)?;
            stages.push(SegformerStage {
                patch_embeddings,
                blocks,
                layer_norm,
            });
            cin = c;
        }
        let dh = root.sub("decode_head");
        let d = config.decoder_hidden_size;
        let n = config.num_stages();
        let decode_head = SegformerDecodeHead {
            linear_c: (0..n)
                .map(|i| {
                    linear(
                        &dh.sub("linear_c").sub(i),
                        "proj",
                        config.hidden_sizes[i],
                        d,
                        true,
                    )
                })
                .collect::<Result<Vec<_>>>()?,
            linear_fuse: conv(&dh, "linear_fuse", d * n, d, 1, 1, 0, 1, false)?,
            batch_norm: BatchNorm2d::load(&dh, "batch_norm", d, NORM_EPS)?,
            classifier: conv(&dh, "classifier", d, config.num_labels(), 1, 1, 0, 1, true)?,
        };
        let report = root.finish(strict)?;
        Ok((
            SegformerForSemanticSegmentation {
                stages,
                decode_head,
                config: config.clone(),
            },
            report,
        ))
    }

    pub fn config(&self) -> &SegformerConfig {
        &self.config
    }

    pub fn num_labels(&self) -> usize {
        self.config.num_labels()
    }

    /// Checks `[B, num_channels, H, W]` and that every stage gets a non-empty grid.
    pub fn check_input(&self, x: &Tensor<4>) -> Result<()> {
        let [b, c, h, w] = x.dims();
        if b == 0 || c != self.config.num_channels {
            return Err(VtonError::Shape {
                what: "SegFormer pixel_values".into(),
                expected: format!("[B >= 1, {}, H, W]", self.config.num_channels),
                actual: vec![b, c, h, w],
            });
        }
        self.config.stage_sizes(h, w).map(|_| ())
    }

    /// Logits `[B, num_labels, H1, W1]` on the first stage's grid (1/4 of the input for the
    /// published configs) and the stage outputs `[B, hidden_sizes[i], Hi, Wi]`.
    pub fn forward_with_stages(&self, x: Tensor<4>) -> Result<(Tensor<4>, Vec<Tensor<4>>)> {
        self.check_input(&x)?;
        let mut outs = Vec::with_capacity(self.stages.len());
        let mut x = x;
        for stage in &self.stages {
            x = stage.forward(x);
            outs.push(x.clone());
        }
        Ok((self.decode_head.forward(&outs), outs))
    }

    /// `model(pixel_values).logits`.
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        Ok(self.forward_with_stages(x)?.0)
    }
}

/// transformers' `SegformerImageProcessor` (the PIL one) for inference images.
#[derive(Debug, Clone, PartialEq)]
pub struct SegformerImageProcessor {
    pub do_resize: bool,
    /// Output `(height, width)`.
    pub size: (usize, usize),
    pub resample: PilFilter,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f64; 3],
    pub image_std: [f64; 3],
    /// Only changes segmentation maps (labels), never the image; kept for completeness.
    pub do_reduce_labels: bool,
}

impl Default for SegformerImageProcessor {
    /// transformers' defaults: bilinear resize to 512x512, rescale 1/255, ImageNet mean/std.
    fn default() -> Self {
        SegformerImageProcessor {
            do_resize: true,
            size: (512, 512),
            resample: PilFilter::Bilinear,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: [0.485, 0.456, 0.406],
            image_std: [0.229, 0.224, 0.225],
            do_reduce_labels: false,
        }
    }
}

/// PIL's `Image.Resampling` codes (`resample` in `preprocessor_config.json`).
pub fn pil_filter_from_code(code: u64) -> Result<PilFilter> {
    match code {
        1 => Ok(PilFilter::Lanczos),
        2 => Ok(PilFilter::Bilinear),
        3 => Ok(PilFilter::Bicubic),
        0 | 4 | 5 => Err(VtonError::Unsupported {
            what: format!(
                "PIL resample filter {code} ({}); bilinear (2), bicubic (3) and lanczos (1) are \
                 implemented",
                ["NEAREST", "", "", "", "BOX", "HAMMING"][code as usize]
            ),
        }),
        other => Err(VtonError::invalid(
            "resample",
            format!("{other} is not a PIL resampling filter (0..=5)"),
        )),
    }
}

impl SegformerImageProcessor {
    /// The processor of a model folder: its `preprocessor_config.json`, or the defaults
    /// when the folder has none (what `SegformerImageProcessor()` gives).
    pub fn from_pretrained(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let dir = if path.is_file() {
            path.parent().unwrap_or(Path::new(".")).to_path_buf()
        } else {
            path.to_path_buf()
        };
        let file = dir.join("preprocessor_config.json");
        if file.is_file() {
            Self::from_file(file)
        } else if dir.is_dir() {
            Ok(Self::default())
        } else {
            Err(VtonError::FileNotFound { path: dir })
        }
    }

    /// Reads a `preprocessor_config.json`; absent keys take transformers' defaults.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Self::from_value(&read_json(path)?, &path.display().to_string())
    }

    /// From a parsed `preprocessor_config.json`.
    pub fn from_value(v: &Value, what: &str) -> Result<Self> {
        let mut p = Self::default();
        let flag = |key: &str, default: bool| -> Result<bool> {
            match v.get(key).filter(|x| !x.is_null()) {
                None => Ok(default),
                Some(x) => x
                    .as_bool()
                    .ok_or_else(|| cfg_err(what, key, format!("{x} is not a boolean"))),
            }
        };
        p.do_resize = flag("do_resize", p.do_resize)?;
        p.do_rescale = flag("do_rescale", p.do_rescale)?;
        p.do_normalize = flag("do_normalize", p.do_normalize)?;
        // `reduce_labels` is the older spelling.
        p.do_reduce_labels = flag("reduce_labels", p.do_reduce_labels)?;
        p.do_reduce_labels = flag("do_reduce_labels", p.do_reduce_labels)?;
        if let Some(s) = v.get("size").filter(|x| !x.is_null()) {
            p.size = if let Some(n) = s.as_u64() {
                (n as usize, n as usize)
            } else if let (Some(h), Some(w)) = (
                s.get("height").and_then(Value::as_u64),
                s.get("width").and_then(Value::as_u64),
            ) {
                (h as usize, w as usize)
            } else {
                return Err(VtonError::Unsupported {
                    what: format!("{what}: size {s} (SegFormer resizes to {{height, width}})"),
                });
            };
            if p.size.0 == 0 || p.size.1 == 0 || p.size.0 > 16384 || p.size.1 > 16384 {
                return Err(cfg_err(
                    what,
                    "size",
                    format!("{:?} is outside 1..=16384", p.size),
                ));
            }
        }
        if let Some(r) = v.get("resample").filter(|x| !x.is_null()) {
            let code = r.as_u64().ok_or_else(|| {
                cfg_err(what, "resample", format!("{r} is not a PIL filter code"))
            })?;
            p.resample = pil_filter_from_code(code)?;
        }
        if let Some(f) = v.get("rescale_factor").filter(|x| !x.is_null()) {
            p.rescale_factor = f
                .as_f64()
                .ok_or_else(|| cfg_err(what, "rescale_factor", format!("{f} is not a number")))?;
        }
        let triple = |key: &str, default: [f64; 3]| -> Result<[f64; 3]> {
            match v.get(key).filter(|x| !x.is_null()) {
                None => Ok(default),
                Some(x) => {
                    if let Some(f) = x.as_f64() {
                        return Ok([f; 3]);
                    }
                    let l = f64_list(v, what, key)?;
                    <[f64; 3]>::try_from(l.as_slice())
                        .map_err(|_| cfg_err(what, key, format!("needs 3 values, has {}", l.len())))
                }
            }
        };
        p.image_mean = triple("image_mean", p.image_mean)?;
        p.image_std = triple("image_std", p.image_std)?;
        if p.do_normalize && p.image_std.contains(&0.0) {
            return Err(cfg_err(what, "image_std", "contains 0"));
        }
        Ok(p)
    }

    /// The 8-bit image the network sees before rescaling: PIL's resize of the interleaved
    /// RGB bytes (`width` x `height`), or the bytes themselves without `do_resize`.
    /// Returns `(width, height, bytes)`.
    pub fn resize_rgb8(
        &self,
        width: usize,
        height: usize,
        rgb: &[u8],
    ) -> Result<(usize, usize, Vec<u8>)> {
        if width == 0 || height == 0 || rgb.len() != width * height * 3 {
            return Err(VtonError::Shape {
                what: "RGB image".into(),
                expected: "width * height * 3 bytes, non-empty".into(),
                actual: vec![height, width, rgb.len()],
            });
        }
        if !self.do_resize {
            return Ok((width, height, rgb.to_vec()));
        }
        let (oh, ow) = self.size;
        let img =
            MetricImage::from_u8_hwc(height, width, 3, rgb)?.resize_pil(ow, oh, self.resample)?;
        let plane = oh * ow;
        let mut out = vec![0u8; plane * 3];
        for c in 0..3 {
            for (i, &v) in img.plane(c).iter().enumerate() {
                out[i * 3 + c] = v as u8;
            }
        }
        Ok((ow, oh, out))
    }

    /// `pixel_values[0]` for interleaved RGB bytes: CHW float32 and its `(height, width)`.
    pub fn pixel_values_rgb8(
        &self,
        width: usize,
        height: usize,
        rgb: &[u8],
    ) -> Result<(Vec<f32>, usize, usize)> {
        let (w, h, px) = self.resize_rgb8(width, height, rgb)?;
        let plane = w * h;
        let mean = self.image_mean.map(|m| m as f32);
        let std = self.image_std.map(|s| s as f32);
        let mut chw = vec![0f32; 3 * plane];
        for (i, p) in px.chunks_exact(3).enumerate() {
            for c in 0..3 {
                // numpy: astype(float64) * factor, then float32; (x - mean) / std in float32.
                let mut v = if self.do_rescale {
                    (p[c] as f64 * self.rescale_factor) as f32
                } else {
                    p[c] as f32
                };
                if self.do_normalize {
                    v = (v - mean[c]) / std[c];
                }
                chw[c * plane + i] = v;
            }
        }
        Ok((chw, h, w))
    }

    /// `processor(images=image, return_tensors="pt").pixel_values`: `[1, 3, H, W]`. The
    /// image is taken as the 8-bit picture it came from (values rounded to 1/255).
    pub fn preprocess(&self, image: &RgbImage, device: &Device) -> Result<Tensor<4>> {
        if image.data.len() != image.width * image.height * 3 {
            return Err(VtonError::Shape {
                what: "RGB image".into(),
                expected: "width * height * 3 values".into(),
                actual: vec![image.height, image.width, image.data.len()],
            });
        }
        let (chw, h, w) = self.pixel_values_rgb8(image.width, image.height, &image.to_rgb8())?;
        Ok(Tensor::from_data(
            TensorData::new(chw, [1, 3, h, w]),
            device,
        ))
    }
}

/// `F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)`.
pub fn upsample_logits(logits: Tensor<4>, height: usize, width: usize) -> Tensor<4> {
    resize_bilinear(logits, height, width)
}
