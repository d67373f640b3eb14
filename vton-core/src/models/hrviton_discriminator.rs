//! HR-VITON's segmentation discriminator (`networks.define_D` ->
//! `MultiscaleDiscriminator` of `NLayerDiscriminator`s), under the original state-dict
//! keys (`layer{i}.{j}.weight`, `.bias`; with `--spectral` the middle convolutions as
//! `weight_orig`, `weight_u`, `weight_v`).
//!
//! One scale (`layer{i}`, a flattened `nn.Sequential`): conv k4 s2 p2, LeakyReLU(0.2);
//! `n_layers - 1` x [conv k4 s2 p2 (spectral-normalised with `--spectral`),
//! InstanceNorm2d (no affine, no running statistics), LeakyReLU(0.2) (, Dropout(0.5) with
//! `--Ddropout`)]; conv k4 s1 p2, InstanceNorm2d, LeakyReLU(0.2); conv k4 s1 p2 to one
//! channel (optionally a sigmoid). Every conv has a bias. Widths are read from the
//! checkpoint.
//!
//! The multi-scale forward returns one prediction per scale, `result[0]` from
//! `layer{num_D-1}` on the finest input, `result[num_D-1]` from `layer0` on the coarsest;
//! between scales (and once before the first with `--Ddownx2`) the input is downsampled
//! by `AvgPool2d(3, stride 2, padding 1, count_include_pad=False)`.
//!
//! Train mode ([`crate::nn::train_mode`]): spectral norm does one power iteration per
//! forward (`v = normalize(W^T u)`, `u = normalize(W v)`, reported as buffer updates
//! through [`crate::nn::record_buffer_update`]; `sigma = u . (W v)` with `u`, `v` constant
//! in backward), and Dropout multiplies by a mask from a [`DropoutMasks`] source and
//! `1 / (1 - p)`. Outside train mode sigma uses the stored `u`, `v` and Dropout is the
//! identity, as `D.eval()`.

use std::collections::VecDeque;
use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::module::{avg_pool2d, conv2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::nn::BufferUpdate;
use crate::nn::{check_channels, instance_norm, leaky_relu, record_buffer_update, training};
use crate::rng::Rng;
use crate::weights::{Checkpoint, LoadReport, Loader};

/// `define_D`'s options (`train_condition.py` names in the docs of each field).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiscriminatorConfig {
    /// `n_layers_D` (3 in HR-VITON).
    pub n_layers: usize,
    /// `--num_D`: number of scales.
    pub num_d: usize,
    /// `--Ddownx2`: downsample the input once before the first scale.
    pub downx2: bool,
    /// `--Ddropout`: Dropout after each middle LeakyReLU.
    pub dropout: bool,
    /// Dropout probability (`nn.Dropout(0.5)`).
    pub dropout_p: f64,
    /// `--spectral`: spectral norm on the `n_layers - 1` middle convolutions.
    pub spectral: bool,
    /// `use_sigmoid` (False in HR-VITON).
    pub use_sigmoid: bool,
}

impl Default for DiscriminatorConfig {
    /// `define_D(..., n_layers_D=3, num_D=2)` without the optional flags.
    fn default() -> Self {
        DiscriminatorConfig {
            n_layers: 3,
            num_d: 2,
            downx2: false,
            dropout: false,
            dropout_p: 0.5,
            spectral: false,
            use_sigmoid: false,
        }
    }
}

/// Where Dropout masks come from in train mode (values in `{0, 1}`, the layer multiplies
/// by `mask / (1 - p)`).
#[derive(Debug, Clone)]
pub enum DropoutMasks {
    /// Drawn from a seeded generator (Bernoulli(1 - p); not torch's numbers).
    Seeded(Rng),
    /// Recorded masks `[B, C, H, W]`, consumed in call order (scale by scale in output
    /// order, inside a scale the Dropout layers in order).
    Given(VecDeque<Tensor<4>>),
}

impl DropoutMasks {
    pub fn seeded(seed: u64) -> Self {
        DropoutMasks::Seeded(Rng::new(seed))
    }

    /// Masks still queued (`Given` only).
    pub fn remaining(&self) -> usize {
        match self {
            DropoutMasks::Seeded(_) => 0,
            DropoutMasks::Given(q) => q.len(),
        }
    }

    fn next(&mut self, dims: [usize; 4], p: f64, dev: &Device) -> Result<Tensor<4>> {
        match self {
            DropoutMasks::Seeded(rng) => {
                let n: usize = dims.iter().product();
                let v: Vec<f32> = (0..n)
                    .map(|_| {
                        let u = rng.next_u32() as f64 / 4_294_967_296.0;
                        if u >= p {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect();
                Ok(Tensor::from_data(TensorData::new(v, dims), dev))
            }
            DropoutMasks::Given(q) => {
                let m = q.pop_front().ok_or_else(|| {
                    VtonError::invalid("dropout masks", "fewer masks than Dropout calls")
                })?;
                if m.dims() != dims {
                    return Err(VtonError::Shape {
                        what: "dropout mask".into(),
                        expected: format!("{dims:?}"),
                        actual: m.dims().to_vec(),
                    });
                }
                Ok(m.to_device(dev))
            }
        }
    }
}

/// A discriminator convolution, optionally spectral-normalised (`weight` is then
/// `weight_orig`; `u`, `v` are the power-iteration buffers).
#[derive(Module, Debug)]
pub struct DiscConv {
    weight: Param<Tensor<4>>,
    bias: Param<Tensor<1>>,
    u: Option<Param<Tensor<1>>>,
    v: Option<Param<Tensor<1>>>,
    #[module(skip)]
    stride: usize,
}

/// torch.nn.utils.spectral_norm's eps.
const SN_EPS: f64 = 1e-12;

/// `F.normalize(x, dim=0)`: `x / max(||x||, eps)`.
fn normalize(x: Tensor<1>) -> Tensor<1> {
    let n = x.clone().square().sum().sqrt().clamp_min(SN_EPS);
    x / n
}

impl DiscConv {
    fn load(l: &Loader, cin: usize, stride: usize, spectral: bool) -> Result<(Self, usize)> {
        let wname = if spectral { "weight_orig" } else { "weight" };
        let s = l.shape(wname).ok_or_else(|| VtonError::MissingWeights {
            source_name: l.checkpoint().name().to_string(),
            count: 1,
            keys: l.key(wname),
        })?;
        if s.len() != 4 || s[1] != cin || s[2] != 4 || s[3] != 4 {
            return Err(VtonError::WeightShape {
                key: l.key(wname),
                expected: vec![s.first().copied().unwrap_or(0), cin, 4, 4],
                found: s,
            });
        }
        let cout = s[0];
        let weight = l.param(wname, [cout, cin, 4, 4])?;
        let bias = l.param("bias", [cout])?;
        let (u, v) = if spectral {
            (
                Some(l.buffer("weight_u", [cout])?),
                Some(l.buffer("weight_v", [cin * 16])?),
            )
        } else {
            (None, None)
        };
        Ok((
            DiscConv {
                weight,
                bias,
                u,
                v,
                stride,
            },
            cout,
        ))
    }

    /// The convolution weight: `weight_orig / sigma` for a spectral-normalised conv.
    fn weight(&self) -> Tensor<4> {
        let w = self.weight.val();
        let (Some(u), Some(v)) = (&self.u, &self.v) else {
            return w;
        };
        let [o, i, kh, kw] = w.dims();
        let n = i * kh * kw;
        let mat = w.clone().reshape([o, n]);
        let (u, v) = if training() {
            let m = mat.clone().detach();
            let u0 = u.val().detach();
            let v1 = normalize(
                m.clone()
                    .transpose()
                    .matmul(u0.reshape([o, 1]))
                    .reshape([n]),
            );
            let u1 = normalize(m.matmul(v1.clone().reshape([n, 1])).reshape([o]));
            record_buffer_update(BufferUpdate {
                id: v.id,
                value: v1.clone().inner(),
                counter_of: None,
            });
            record_buffer_update(BufferUpdate {
                id: u.id,
                value: u1.clone().inner(),
                counter_of: None,
            });
            (u1, v1)
        } else {
            (u.val().detach(), v.val().detach())
        };
        let wv = mat.matmul(v.reshape([n, 1])).reshape([o]);
        let sigma = (u * wv).sum();
        w / sigma.reshape([1, 1, 1, 1])
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = self.stride;
        conv2d(
            x,
            self.weight(),
            Some(self.bias.val()),
            ConvOptions::new([s, s], [2, 2], [1, 1], 1),
        )
    }
}

/// One `NLayerDiscriminator` (its flattened `model` Sequential, `layer{i}` in the
/// multi-scale module).
#[derive(Module, Debug)]
pub struct NLayerDiscriminator {
    /// First conv (no norm), the middle convs, the stride-1 conv, the output conv.
    convs: Vec<DiscConv>,
    #[module(skip)]
    dropout: bool,
    #[module(skip)]
    dropout_p: f64,
    #[module(skip)]
    use_sigmoid: bool,
    #[module(skip)]
    input_nc: usize,
}

impl NLayerDiscriminator {
    /// Loads a scale from a loader at its Sequential prefix (`layer{i}`).
    pub fn load(l: &Loader, config: &DiscriminatorConfig) -> Result<Self> {
        if config.n_layers < 1 {
            return Err(VtonError::invalid("n_layers_D", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&config.dropout_p) {
            return Err(VtonError::invalid("dropout p", "must lie in [0, 1)"));
        }
        let first = l
            .shape("0.weight")
            .ok_or_else(|| VtonError::MissingWeights {
                source_name: l.checkpoint().name().to_string(),
                count: 1,
                keys: l.key("0.weight"),
            })?;
        let input_nc = first.get(1).copied().unwrap_or(0);
        let mut convs = Vec::with_capacity(config.n_layers + 2);
        // Sequential indices as the flattened model numbers them.
        let (c, mut ch) = DiscConv::load(&l.sub(0), input_nc, 2, false)?;
        convs.push(c);
        let mut idx = 2;
        for _ in 1..config.n_layers {
            let (c, o) = DiscConv::load(&l.sub(idx), ch, 2, config.spectral)?;
            convs.push(c);
            ch = o;
            idx += if config.dropout { 4 } else { 3 };
        }
        let (c, o) = DiscConv::load(&l.sub(idx), ch, 1, false)?;
        convs.push(c);
        idx += 3;
        let (c, o1) = DiscConv::load(&l.sub(idx), o, 1, false)?;
        if o1 != 1 {
            return Err(VtonError::WeightShape {
                key: l.key(&format!("{idx}.weight")),
                expected: vec![1, o, 4, 4],
                found: vec![o1, o, 4, 4],
            });
        }
        convs.push(c);
        Ok(NLayerDiscriminator {
            convs,
            dropout: config.dropout,
            dropout_p: config.dropout_p,
            use_sigmoid: config.use_sigmoid,
            input_nc,
        })
    }

    pub fn forward(&self, x: Tensor<4>, masks: &mut DropoutMasks) -> Result<Tensor<4>> {
        let n = self.convs.len();
        let mut x = leaky_relu(self.convs[0].forward(x), 0.2);
        for (i, c) in self.convs[1..n - 1].iter().enumerate() {
            x = leaky_relu(instance_norm(c.forward(x), 1e-5), 0.2);
            let middle = i + 2 < n - 1;
            if middle && self.dropout && training() {
                let m = masks.next(x.dims(), self.dropout_p, &x.device())?;
                x = (x * m).mul_scalar(1.0 / (1.0 - self.dropout_p));
            }
        }
        let y = self.convs[n - 1].forward(x);
        Ok(if self.use_sigmoid {
            burn::tensor::activation::sigmoid(y)
        } else {
            y
        })
    }
}

/// `MultiscaleDiscriminator` (`getIntermFeat=False`).
#[derive(Module, Debug)]
pub struct MultiscaleDiscriminator {
    /// `layer0`, `layer1`, ... (module order; the forward runs them in reverse).
    layers: Vec<NLayerDiscriminator>,
    #[module(skip)]
    config: DiscriminatorConfig,
}

/// `nn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)`.
pub fn downsample(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(
        x,
        AvgPoolOptions::new([3, 3])
            .with_stride([2, 2])
            .with_padding([1, 1])
            .with_count_include_pad(false),
    )
}

impl MultiscaleDiscriminator {
    /// Loads a `D.state_dict()` (any format [`Checkpoint::open`] reads); keys not used
    /// are errors.
    pub fn from_checkpoint(
        path: impl AsRef<Path>,
        config: DiscriminatorConfig,
        device: &Device,
    ) -> Result<(Self, LoadReport)> {
        let ckpt = Checkpoint::open(path)?.rooted_at("layer0.0.weight");
        let l = Loader::new(&ckpt, device, false);
        let m = Self::load(&l, config)?;
        let report = l.finish(true)?;
        Ok((m, report))
    }

    /// Loads from a loader at the module's root (`layer0.*`, `layer1.*`, ...), in
    /// `D.parameters()` order.
    pub fn load(l: &Loader, config: DiscriminatorConfig) -> Result<Self> {
        if config.num_d < 1 {
            return Err(VtonError::invalid("num_D", "must be at least 1"));
        }
        let layers = (0..config.num_d)
            .map(|i| NLayerDiscriminator::load(&l.sub(format!("layer{i}")), &config))
            .collect::<Result<Vec<_>>>()?;
        let nc = layers[0].input_nc;
        if let Some(bad) = layers.iter().position(|d| d.input_nc != nc) {
            return Err(VtonError::config(
                l.key(&format!("layer{bad}.0.weight")),
                format!("{} input channels, layer0 has {nc}", layers[bad].input_nc),
            ));
        }
        Ok(MultiscaleDiscriminator { layers, config })
    }

    pub fn config(&self) -> DiscriminatorConfig {
        self.config
    }

    /// The input channels (`input_nc`, 33 in HR-VITON: input1, input2 and the 13-ch seg).
    pub fn input_nc(&self) -> usize {
        self.layers[0].input_nc
    }

    /// One prediction map per scale, finest first (`result[j][-1]` of the original).
    pub fn forward(&self, x: Tensor<4>, masks: &mut DropoutMasks) -> Result<Vec<Tensor<4>>> {
        check_channels("discriminator input", &x, self.input_nc())?;
        let n = self.layers.len();
        let mut x = if self.config.downx2 { downsample(x) } else { x };
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let [_, _, h, w] = x.dims();
            if h == 0 || w == 0 {
                return Err(VtonError::invalid(
                    "discriminator input size",
                    "too small for the number of scales",
                ));
            }
            out.push(self.layers[n - 1 - i].forward(x.clone(), masks)?);
            if i + 1 != n {
                x = downsample(x);
            }
        }
        Ok(out)
    }
}
