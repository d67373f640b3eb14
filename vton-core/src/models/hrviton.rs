//! HR-VITON (sangyun884/HR-VITON): the try-on condition generator (`ConditionGenerator`,
//! released as `mtviton.pth`) and the SPADE/ALIAS image generator (`SPADEGenerator`,
//! released as `gen.pth`), under their original keys.
//!
//! The condition generator estimates a multi-scale appearance flow for the cloth jointly
//! with the target segmentation. The image generator decodes the person from the warped
//! cloth and a 7-label parse, normalising features with SPADE-style blocks whose
//! convolutions are spectral-normalised (`weight_orig`, `weight_u`, `weight_v` as stored:
//! in eval the weight is `weight_orig / (u . (W v))`, without power iteration).

use std::collections::VecDeque;
use std::path::Path;

use crate::nn::Conv2d;
use burn::module::{Module, Param};
use burn::nn::PaddingConfig2d;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::nn::{
    check_channels, conv2d, leaky_relu, out_channels, relu, resize_bilinear, resize_nearest,
    up2_bilinear, weight_shape, BatchNorm2d, Norm2d, NormKind,
};
use crate::rng::Rng;
use crate::warp::grid::{grid_sample, identity_grid, GridSampleOptions, PaddingMode, SampleMode};
use crate::weights::{Checkpoint, LoadReport, Loader};

/// `networks.make_grid`: base grid from `linspace(-1, 1)` (the align_corners=True
/// convention), `[N, H, W, 2]`.
pub fn make_grid(n: usize, h: usize, w: usize, device: &Device) -> Tensor<4> {
    identity_grid(n, h, w, true, device)
}

/// HR-VITON's `F.grid_sample(x, grid, padding_mode='border')` (bilinear, align_corners False).
pub fn hr_grid_sample(x: Tensor<4>, grid: Tensor<4>) -> Result<Tensor<4>> {
    grid_sample(
        x,
        grid,
        GridSampleOptions::new(SampleMode::Bilinear, PaddingMode::Border, false),
    )
}

/// A flow in pixels of a `w x h` level divided into grid units the way HR-VITON does:
/// `x / ((w/2 - 1)/2)`, `y / ((h/2 - 1)/2)`.
pub fn normalize_flow(flow: Tensor<4>, w: f64, h: f64) -> Tensor<4> {
    let dev = flow.device();
    let s = Tensor::<1>::from_floats(
        [
            (1.0 / ((w / 2.0 - 1.0) / 2.0)) as f32,
            (1.0 / ((h / 2.0 - 1.0) / 2.0)) as f32,
        ],
        &dev,
    )
    .reshape([1, 1, 1, 2]);
    flow * s
}

/// Resizes an NHWC flow like an image (`permute`, interpolate, `permute` back), without
/// rescaling its values, as HR-VITON does.
fn resize_flow(flow: Tensor<4>, h: usize, w: usize, nearest: bool) -> Tensor<4> {
    let nchw = flow.permute([0, 3, 1, 2]);
    let r = if nearest {
        resize_nearest(nchw, h, w)
    } else {
        resize_bilinear(nchw, h, w)
    };
    r.permute([0, 2, 3, 1])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Down,
    Up,
    Same,
}

/// `networks.ResBlock`: `relu(r + block(r))`, `r = scale(x)`.
#[derive(Module, Debug)]
pub struct ResBlock {
    scale: Conv2d,
    conv0: Conv2d,
    norm0: Norm2d,
    conv1: Conv2d,
    norm1: Norm2d,
    #[module(skip)]
    up: bool,
}

impl ResBlock {
    fn load(l: &Loader, cin: usize, cout: usize, scale: Scale, norm: NormKind) -> Result<Self> {
        let bias = norm.conv_bias();
        let scale_conv = match scale {
            Scale::Down => conv2d(l, "scale", cin, cout, 3, 2, 1, bias)?,
            Scale::Up => conv2d(l, "scale.1", cin, cout, 1, 1, 0, true)?,
            Scale::Same => conv2d(l, "scale", cin, cout, 1, 1, 0, true)?,
        };
        Ok(ResBlock {
            scale: scale_conv,
            conv0: conv2d(l, "block.0", cout, cout, 3, 1, 1, bias)?,
            norm0: norm.load(l, "block.1", cout)?,
            conv1: conv2d(l, "block.3", cout, cout, 3, 1, 1, bias)?,
            norm1: norm.load(l, "block.4", cout)?,
            up: scale == Scale::Up,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.up { up2_bilinear(x) } else { x };
        let r = self.scale.forward(x);
        let b = relu(self.norm0.forward(self.conv0.forward(r.clone())));
        let b = self.norm1.forward(self.conv1.forward(b));
        relu(r + b)
    }
}

/// Which features the flow warps for the segmentation decoder (`opt.warp_feature`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarpFeature {
    T1,
    Encoder,
}

/// `opt.out_layer`: a ResBlock ending in ReLU, or a ResBlock then a 1x1 conv.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutLayer {
    Relu,
    Conv,
}

/// The condition generator's options, named as its constructor and `opt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConditionGeneratorConfig {
    pub input1_nc: usize,
    pub input2_nc: usize,
    pub output_nc: usize,
    pub ngf: usize,
    pub norm_layer: NormKind,
    pub warp_feature: WarpFeature,
    pub out_layer: OutLayer,
    /// `upsample` argument of `forward`: bilinear (default) or nearest.
    pub upsample_nearest: bool,
}

impl Default for ConditionGeneratorConfig {
    /// The released `mtviton.pth` options (HR-VITON's test_generator.py defaults).
    fn default() -> Self {
        ConditionGeneratorConfig {
            input1_nc: 4,
            input2_nc: 16,
            output_nc: 13,
            ngf: 96,
            norm_layer: NormKind::Batch,
            warp_feature: WarpFeature::T1,
            out_layer: OutLayer::Relu,
            upsample_nearest: false,
        }
    }
}

impl ConditionGeneratorConfig {
    /// Sets the string options by their HR-VITON names.
    pub fn with_names(
        mut self,
        norm_layer: &str,
        warp_feature: &str,
        out_layer: &str,
        upsample: &str,
    ) -> Result<Self> {
        self.norm_layer = NormKind::from_name(norm_layer)?;
        self.warp_feature = choose(
            "warp_feature",
            warp_feature,
            [("T1", WarpFeature::T1), ("encoder", WarpFeature::Encoder)],
        )?;
        self.out_layer = choose(
            "out_layer",
            out_layer,
            [("relu", OutLayer::Relu), ("conv", OutLayer::Conv)],
        )?;
        self.upsample_nearest = choose(
            "upsample",
            upsample,
            [("bilinear", false), ("nearest", true)],
        )?;
        Ok(self)
    }
}

/// The value of a named option among `choices`, or an error listing them.
fn choose<T: Copy, const N: usize>(name: &str, value: &str, choices: [(&str, T); N]) -> Result<T> {
    choices
        .iter()
        .find(|(n, _)| *n == value)
        .map(|c| c.1)
        .ok_or_else(|| {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
            VtonError::invalid(
                name,
                format!("{value:?} is not one of {}", names.join(", ")),
            )
        })
}

/// Everything `ConditionGenerator.forward` returns, in its order and units.
#[derive(Debug, Clone)]
pub struct ConditionOutput {
    /// Five flows, coarsest first, `[B, H/2^(5-i), W/2^(5-i), 2]`, `(x, y)` in the pixel
    /// units HR-VITON uses at each level (see [`normalize_flow`]).
    pub flow_list: Vec<Tensor<4>>,
    /// `[B, output_nc, H, W]`.
    pub fake_segmap: Tensor<4>,
    /// `[B, input1_nc - 1, H, W]` and `[B, 1, H, W]`: input1 warped by the final flow.
    pub warped_cloth: Tensor<4>,
    pub warped_cloth_mask: Tensor<4>,
}

/// HR-VITON's try-on condition generator (tocg).
#[derive(Module, Debug)]
pub struct ConditionGenerator {
    cloth_encoder: Vec<ResBlock>,
    pose_encoder: Vec<ResBlock>,
    conv: ResBlock,
    seg_decoder: Vec<ResBlock>,
    out_block: ResBlock,
    out_conv: Option<Conv2d>,
    conv1: Vec<Conv2d>,
    conv2: Vec<Conv2d>,
    flow_conv: Vec<Conv2d>,
    bottleneck: Vec<Conv2d>,
    #[module(skip)]
    config: ConditionGeneratorConfig,
}

impl ConditionGenerator {
    /// Loads `mtviton.pth`. Missing or mis-shaped weights are errors; keys the model does
    /// not use are returned in the report (the original loads with `strict=False`).
    pub fn from_checkpoint(
        path: impl AsRef<Path>,
        config: ConditionGeneratorConfig,
        device: &Device,
    ) -> Result<(Self, LoadReport)> {
        let ckpt = Checkpoint::open(path)?.rooted_at("ClothEncoder.0.scale.weight");
        let l = Loader::new(&ckpt, device, false);
        let m = Self::load(&l, config)?;
        let report = l.finish(false)?;
        Ok((m, report))
    }

    pub fn load(l: &Loader, config: ConditionGeneratorConfig) -> Result<Self> {
        let ConditionGeneratorConfig {
            input1_nc: in1,
            input2_nc: in2,
            output_nc,
            ngf,
            norm_layer: norm,
            ..
        } = config;
        if in1 < 2 {
            return Err(VtonError::invalid(
                "input1_nc",
                "input1 is cloth channels plus the cloth mask: at least 2",
            ));
        }
        let widths = [
            (ngf, ngf),
            (ngf, 2 * ngf),
            (2 * ngf, 4 * ngf),
            (4 * ngf, 4 * ngf),
            (4 * ngf, 4 * ngf),
        ];
        let encoder = |name: &str, cin: usize| -> Result<Vec<ResBlock>> {
            widths
                .iter()
                .enumerate()
                .map(|(i, &(a, b))| {
                    let a = if i == 0 { cin } else { a };
                    ResBlock::load(&l.sub(format!("{name}.{i}")), a, b, Scale::Down, norm)
                })
                .collect()
        };
        let cloth_encoder = encoder("ClothEncoder", in1)?;
        let pose_encoder = encoder("PoseEncoder", in2)?;
        let conv = ResBlock::load(&l.sub("conv"), 4 * ngf, 8 * ngf, Scale::Same, norm)?;
        let k = match config.warp_feature {
            WarpFeature::T1 => [
                (8 * ngf, 4 * ngf),
                (12 * ngf, 4 * ngf),
                (12 * ngf, 2 * ngf),
                (8 * ngf, ngf),
                (6 * ngf, ngf),
            ],
            WarpFeature::Encoder => [
                (8 * ngf, 4 * ngf),
                (12 * ngf, 4 * ngf),
                (12 * ngf, 2 * ngf),
                (6 * ngf, ngf),
                (3 * ngf, ngf),
            ],
        };
        let seg_decoder = k
            .iter()
            .enumerate()
            .map(|(i, &(a, b))| {
                ResBlock::load(&l.sub(format!("SegDecoder.{i}")), a, b, Scale::Up, norm)
            })
            .collect::<Result<Vec<_>>>()?;
        let head_in = ngf + in1 + in2;
        let (out_block, out_conv) = match config.out_layer {
            OutLayer::Relu => (
                ResBlock::load(&l.sub("out_layer"), head_in, output_nc, Scale::Same, norm)?,
                None,
            ),
            OutLayer::Conv => (
                ResBlock::load(&l.sub("out_layer.0"), head_in, ngf, Scale::Same, norm)?,
                Some(conv2d(l, "out_layer.1", ngf, output_nc, 1, 1, 0, true)?),
            ),
        };
        let c1_in = [ngf, 2 * ngf, 4 * ngf, 4 * ngf];
        let mut conv1 = Vec::new();
        let mut conv2 = Vec::new();
        for (i, &c) in c1_in.iter().enumerate() {
            conv1.push(conv2d(l, &format!("conv1.{i}"), c, 4 * ngf, 1, 1, 0, true)?);
            conv2.push(conv2d(l, &format!("conv2.{i}"), c, 4 * ngf, 1, 1, 0, true)?);
        }
        let flow_conv = (0..5)
            .map(|i| conv2d(l, &format!("flow_conv.{i}"), 8 * ngf, 2, 3, 1, 1, true))
            .collect::<Result<Vec<_>>>()?;
        let bn_in = [4 * ngf, 4 * ngf, 2 * ngf, ngf];
        let bottleneck = bn_in
            .iter()
            .enumerate()
            .map(|(i, &c)| conv2d(l, &format!("bottleneck.{i}.0"), c, 4 * ngf, 3, 1, 1, true))
            .collect::<Result<Vec<_>>>()?;
        Ok(ConditionGenerator {
            cloth_encoder,
            pose_encoder,
            conv,
            seg_decoder,
            out_block,
            out_conv,
            conv1,
            conv2,
            flow_conv,
            bottleneck,
            config,
        })
    }

    pub fn config(&self) -> ConditionGeneratorConfig {
        self.config
    }

    fn up(&self, x: Tensor<4>) -> Tensor<4> {
        if self.config.upsample_nearest {
            let [_, _, h, w] = x.dims();
            resize_nearest(x, 2 * h, 2 * w)
        } else {
            up2_bilinear(x)
        }
    }

    /// `tocg(opt, input1, input2)`: `input1 = cat(cloth, cloth_mask)`,
    /// `input2 = cat(parse_agnostic, densepose)`; H and W divisible by 32, at least 64
    /// (HR-VITON's flow normalisation divides by zero below that).
    pub fn forward(&self, input1: Tensor<4>, input2: Tensor<4>) -> Result<ConditionOutput> {
        let c = self.config;
        check_channels("condition generator input1", &input1, c.input1_nc)?;
        check_channels("condition generator input2", &input2, c.input2_nc)?;
        let [n, _, h, w] = input1.dims();
        let d2 = input2.dims();
        if [d2[0], d2[2], d2[3]] != [n, h, w] {
            return Err(VtonError::SizeMismatch {
                what: "condition generator input2 vs input1".into(),
                expected: format!("{n}x{}x{h}x{w}", d2[1]),
                actual: format!("{d2:?}"),
            });
        }
        if h % 32 != 0 || w % 32 != 0 || h < 64 || w < 64 {
            return Err(VtonError::invalid(
                "condition generator input size",
                format!(
                    "{h}x{w}: needs multiples of 32, at least 64 (HR-VITON runs it at 256x192)"
                ),
            ));
        }
        let dev = input1.device();
        let mut e1 = Vec::with_capacity(5);
        let mut e2 = Vec::with_capacity(5);
        let (mut a, mut b) = (input1.clone(), input2.clone());
        for i in 0..5 {
            a = self.cloth_encoder[i].forward(a);
            b = self.pose_encoder[i].forward(b);
            e1.push(a.clone());
            e2.push(b.clone());
        }
        let mut flow_list: Vec<Tensor<4>> = Vec::with_capacity(5);
        let mut t1 = e1[4].clone();
        let mut t2 = e2[4].clone();
        let flow0 = self.flow_conv[0]
            .forward(Tensor::cat(vec![t1.clone(), t2.clone()], 1))
            .permute([0, 2, 3, 1]);
        flow_list.push(flow0);
        let mut x = self.seg_decoder[0].forward(self.conv.forward(t2.clone()));
        for i in 1..5 {
            let j = 4 - i;
            let [_, _, ih, iw] = e1[j].dims();
            let grid = make_grid(n, ih, iw, &dev);
            t1 = self.up(t1) + self.conv1[j].forward(e1[j].clone());
            t2 = self.up(t2) + self.conv2[j].forward(e2[j].clone());
            let flow = resize_flow(
                flow_list[i - 1].clone(),
                ih,
                iw,
                self.config.upsample_nearest,
            );
            let grid = normalize_flow(flow.clone(), iw as f64, ih as f64) + grid;
            let warped_t1 = hr_grid_sample(t1.clone(), grid.clone())?;
            let delta = self.flow_conv[i]
                .forward(Tensor::cat(
                    vec![
                        warped_t1.clone(),
                        relu(self.bottleneck[i - 1].forward(x.clone())),
                    ],
                    1,
                ))
                .permute([0, 2, 3, 1]);
            flow_list.push(flow + delta);
            let warped = match c.warp_feature {
                WarpFeature::T1 => warped_t1,
                WarpFeature::Encoder => hr_grid_sample(e1[j].clone(), grid)?,
            };
            x = self.seg_decoder[i].forward(Tensor::cat(vec![x, e2[j].clone(), warped], 1));
        }
        let grid = make_grid(n, h, w, &dev);
        let flow = resize_flow(flow_list[4].clone(), h, w, self.config.upsample_nearest);
        let grid = normalize_flow(flow, w as f64, h as f64) + grid;
        let warped_input1 = hr_grid_sample(input1, grid)?;
        let mut seg = self
            .out_block
            .forward(Tensor::cat(vec![x, input2, warped_input1.clone()], 1));
        if let Some(conv) = &self.out_conv {
            seg = conv.forward(seg);
        }
        let k = c.input1_nc;
        let warped_cloth = warped_input1.clone().slice([0..n, 0..k - 1, 0..h, 0..w]);
        let warped_cloth_mask = warped_input1.slice([0..n, k - 1..k, 0..h, 0..w]);
        Ok(ConditionOutput {
            flow_list,
            fake_segmap: seg,
            warped_cloth,
            warped_cloth_mask,
        })
    }
}

/// The random draws SPADE/ALIAS norms add to their input (`noise_scale` per channel).
///
/// The original draws `torch.randn(b, w, h, 1)` in every norm, eval included; a seed
/// makes vton's draws reproducible (they are not torch's numbers), `Given` replays
/// recorded draws in call order, and `Zero` drops the noise.
#[derive(Debug, Clone)]
pub enum SpadeNoise {
    Zero,
    Seeded(Rng),
    /// Draws in the original layout `[b, w, h, 1]`, consumed in call order.
    Given(VecDeque<Tensor<4>>),
}

impl SpadeNoise {
    pub fn seeded(seed: u64) -> Self {
        SpadeNoise::Seeded(Rng::new(seed))
    }

    /// The next draw as `[b, 1, h, w]` (pixel (y, x) gets the draw at (x, y)).
    fn next(&mut self, b: usize, h: usize, w: usize, dev: &Device) -> Result<Option<Tensor<4>>> {
        let r = match self {
            SpadeNoise::Zero => return Ok(None),
            SpadeNoise::Seeded(rng) => Tensor::<4>::from_data(
                TensorData::new(rng.normal_vec(b * w * h), [b, w, h, 1]),
                dev,
            ),
            SpadeNoise::Given(q) => {
                let t = q.pop_front().ok_or_else(|| {
                    VtonError::invalid("noise", "fewer recorded draws than SPADE norms")
                })?;
                if t.dims() != [b, w, h, 1] {
                    return Err(VtonError::Shape {
                        what: "recorded SPADE noise".into(),
                        expected: format!("[{b}, {w}, {h}, 1]"),
                        actual: t.dims().to_vec(),
                    });
                }
                t
            }
        };
        Ok(Some(
            r.reshape([b, w, h]).swap_dims(1, 2).reshape([b, 1, h, w]),
        ))
    }
}

/// `ALIASNorm` / `SPADENorm`: `param_free_norm(x + noise) * (1 + gamma(seg)) + beta(seg)`.
#[derive(Module, Debug)]
pub struct SpadeNorm {
    noise_scale: Param<Tensor<1>>,
    /// The parameter-free norm (a BatchNorm's affine part is the identity).
    norm: Norm2d,
    conv_shared: Conv2d,
    conv_gamma: Conv2d,
    conv_beta: Conv2d,
    #[module(skip)]
    zero_noise: bool,
}

impl SpadeNorm {
    fn load(l: &Loader, channels: usize, label_nc: usize, norm: NormKind) -> Result<Self> {
        let nhidden = out_channels(l, "conv_shared.0")?;
        let noise = l.values("noise_scale", [channels])?;
        let zero_noise = noise.iter().all(|&v| v == 0.0);
        let batch = match norm {
            NormKind::Instance => None,
            NormKind::Batch => {
                let p = l.sub("param_free_norm");
                p.ignore("num_batches_tracked");
                let ones = vec![1f32; channels];
                let zeros = vec![0f32; channels];
                let dev = l.device();
                let param = |v: Vec<f32>| {
                    Param::from_tensor(Tensor::from_data(TensorData::new(v, [channels]), dev))
                };
                Some(BatchNorm2d {
                    weight: param(ones),
                    bias: param(zeros),
                    running_mean: p.buffer("running_mean", [channels])?,
                    running_var: p.buffer("running_var", [channels])?,
                    eps: 1e-5,
                    momentum: 0.1,
                })
            }
        };
        Ok(SpadeNorm {
            noise_scale: Param::from_tensor(Tensor::from_data(
                TensorData::new(noise, [channels]),
                l.device(),
            )),
            norm: Norm2d { batch },
            conv_shared: conv2d(l, "conv_shared.0", label_nc, nhidden, 3, 1, 1, true)?,
            conv_gamma: conv2d(l, "conv_gamma", nhidden, channels, 3, 1, 1, true)?,
            conv_beta: conv2d(l, "conv_beta", nhidden, channels, 3, 1, 1, true)?,
            zero_noise,
        })
    }

    fn forward(&self, x: Tensor<4>, seg: Tensor<4>, noise: &mut SpadeNoise) -> Result<Tensor<4>> {
        let [b, c, h, w] = x.dims();
        // A zero noise_scale makes the draw irrelevant: it is skipped, except that
        // recorded draws are still consumed so that they stay in step with the norms.
        let r = if self.zero_noise && !matches!(noise, SpadeNoise::Given(_)) {
            None
        } else {
            noise.next(b, h, w, &x.device())?
        };
        let x = match r {
            Some(r) if !self.zero_noise => x + r * self.noise_scale.val().reshape([1, c, 1, 1]),
            _ => x,
        };
        let normalized = self.norm.forward(x);
        let actv = relu(self.conv_shared.forward(seg));
        let gamma = self.conv_gamma.forward(actv.clone());
        let beta = self.conv_beta.forward(actv);
        Ok(normalized * gamma.add_scalar(1.0) + beta)
    }
}

/// A convolution whose weight is `weight_orig / sigma`, `sigma = u . (W v)` with the
/// stored `u`, `v` (spectral norm in eval), or a plain convolution.
fn spectral_conv(
    l: &Loader,
    name: &str,
    cin: usize,
    cout: usize,
    k: usize,
    bias: bool,
    spectral: bool,
) -> Result<Conv2d> {
    if !spectral {
        return conv2d(l, name, cin, cout, k, 1, k / 2, bias);
    }
    let s = l.sub(name);
    let w = s.values("weight_orig", [cout, cin, k, k])?;
    let cols = cin * k * k;
    let u = s.values("weight_u", [cout])?;
    let v = s.values("weight_v", [cols])?;
    let mut sigma = 0f64;
    for (o, &uo) in u.iter().enumerate() {
        let row = &w[o * cols..(o + 1) * cols];
        let wv: f64 = row.iter().zip(&v).map(|(&a, &b)| a as f64 * b as f64).sum();
        sigma += uo as f64 * wv;
    }
    if !sigma.is_finite() || sigma == 0.0 {
        return Err(VtonError::Numerical {
            operation: format!("spectral norm of {}", s.key("weight_orig")),
            message: format!("sigma = u.(W v) = {sigma}"),
        });
    }
    let scaled: Vec<f32> = w.iter().map(|&x| (x as f64 / sigma) as f32).collect();
    let dev = l.device();
    Ok(Conv2d {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(scaled, [cout, cin, k, k]),
            dev,
        )),
        bias: if bias {
            Some(s.param("bias", [cout])?)
        } else {
            None
        },
        stride: [1, 1],
        kernel_size: [k, k],
        dilation: [1, 1],
        groups: 1,
        padding: PaddingConfig2d::Explicit(k / 2, k / 2, k / 2, k / 2),
    })
}

/// `opt.norm_G` split: spectral-normalised convolutions and the parameter-free norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormG {
    pub spectral: bool,
    pub param_free: NormKind,
}

impl NormG {
    /// `"spectralaliasinstance"`, `"aliasinstance"`, `"spectralaliasbatch"`, ...
    /// (`spade` is accepted for `alias`, as in SPADE's naming).
    pub fn parse(name: &str) -> Result<Self> {
        let (spectral, rest) = match name.strip_prefix("spectral") {
            Some(r) => (true, r),
            None => (false, name),
        };
        let rest = rest
            .strip_prefix("alias")
            .or_else(|| rest.strip_prefix("spade"))
            .ok_or_else(|| {
                VtonError::invalid(
                    "norm_G",
                    format!("{name:?} must be [spectral]alias<instance|batch>"),
                )
            })?;
        let param_free = match rest {
            "instance" => NormKind::Instance,
            "batch" => NormKind::Batch,
            "mask" => {
                return Err(VtonError::Unsupported {
                    what: "norm_G 'aliasmask': HR-VITON's generator never builds MaskNorm blocks"
                        .into(),
                })
            }
            o => {
                return Err(VtonError::invalid(
                    "norm_G",
                    format!("parameter-free norm {o:?} is not one of instance, batch"),
                ))
            }
        };
        Ok(NormG {
            spectral,
            param_free,
        })
    }
}

/// `SPADEResBlock` / `ALIASResBlock` (without mask norm, as the generator builds them).
#[derive(Module, Debug)]
pub struct SpadeResBlock {
    conv_0: Conv2d,
    conv_1: Conv2d,
    conv_s: Option<Conv2d>,
    norm_0: SpadeNorm,
    norm_1: SpadeNorm,
    norm_s: Option<SpadeNorm>,
}

impl SpadeResBlock {
    pub fn load(l: &Loader, cin: usize, cout: usize, label_nc: usize, norm: NormG) -> Result<Self> {
        let middle = cin.min(cout);
        let learned = cin != cout;
        let sp = norm.spectral;
        Ok(SpadeResBlock {
            conv_0: spectral_conv(l, "conv_0", cin, middle, 3, true, sp)?,
            conv_1: spectral_conv(l, "conv_1", middle, cout, 3, true, sp)?,
            conv_s: if learned {
                Some(spectral_conv(l, "conv_s", cin, cout, 1, false, sp)?)
            } else {
                None
            },
            norm_0: SpadeNorm::load(&l.sub("norm_0"), cin, label_nc, norm.param_free)?,
            norm_1: SpadeNorm::load(&l.sub("norm_1"), middle, label_nc, norm.param_free)?,
            norm_s: if learned {
                Some(SpadeNorm::load(
                    &l.sub("norm_s"),
                    cin,
                    label_nc,
                    norm.param_free,
                )?)
            } else {
                None
            },
        })
    }

    /// `block(x, seg)`; `seg` is nearest-resized (legacy indexing) to `x`'s size.
    pub fn forward(
        &self,
        x: Tensor<4>,
        seg: Tensor<4>,
        noise: &mut SpadeNoise,
    ) -> Result<Tensor<4>> {
        let [_, _, h, w] = x.dims();
        let seg = resize_nearest(seg, h, w);
        let x_s = match (&self.conv_s, &self.norm_s) {
            (Some(conv), Some(norm)) => {
                conv.forward(norm.forward(x.clone(), seg.clone(), noise)?)
            }
            _ => x.clone(),
        };
        let dx = self
            .conv_0
            .forward(leaky_relu(self.norm_0.forward(x, seg.clone(), noise)?, 0.2));
        let dx = self
            .conv_1
            .forward(leaky_relu(self.norm_1.forward(dx, seg, noise)?, 0.2));
        Ok(x_s + dx)
    }
}

/// The image generator's options, named as HR-VITON's `opt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HRVitonGeneratorConfig {
    pub input_nc: usize,
    pub ngf: usize,
    pub norm_g: NormG,
    /// 6 for `"more"`, 7 for `"most"`.
    pub num_up_layers: usize,
    pub gen_semantic_nc: usize,
    pub fine_height: usize,
    pub fine_width: usize,
}

impl Default for HRVitonGeneratorConfig {
    /// The released `gen.pth` options (HR-VITON's test_generator.py defaults, 1024x768).
    fn default() -> Self {
        HRVitonGeneratorConfig {
            input_nc: 9,
            ngf: 64,
            norm_g: NormG {
                spectral: true,
                param_free: NormKind::Instance,
            },
            num_up_layers: 7,
            gen_semantic_nc: 7,
            fine_height: 1024,
            fine_width: 768,
        }
    }
}

impl HRVitonGeneratorConfig {
    /// `opt.num_upsampling_layers` by name.
    pub fn num_up_layers_from_name(name: &str) -> Result<usize> {
        match name {
            "more" => Ok(6),
            "most" => Ok(7),
            "normal" => Err(VtonError::Unsupported {
                what: "num_upsampling_layers 'normal': HR-VITON's generator concatenates \
                       features of mismatched sizes in that mode (the original fails too)"
                    .into(),
            }),
            o => Err(VtonError::invalid(
                "num_upsampling_layers",
                format!("{o:?} is not one of \"more\", \"most\""),
            )),
        }
    }

    /// Latent size `(sh, sw)`: the fine size divided by 2^num_up_layers.
    pub fn latent_size(&self) -> (usize, usize) {
        (
            self.fine_height >> self.num_up_layers,
            self.fine_width >> self.num_up_layers,
        )
    }

    /// The generator's output size `(sh, sw) * 2^num_up_layers`.
    pub fn output_size(&self) -> (usize, usize) {
        let (sh, sw) = self.latent_size();
        (sh << self.num_up_layers, sw << self.num_up_layers)
    }
}

/// Renames a released `gen.pth` key the way HR-VITON's `load_checkpoint_G` does
/// (`'ace' -> 'alias'`, `'.Spade' -> ''`); already-renamed keys are unchanged.
pub fn rename_generator_key(k: &str) -> String {
    k.replace("ace", "alias").replace(".Spade", "")
}

/// HR-VITON's image generator (`SPADEGenerator` / `ALIASGenerator`).
#[derive(Module, Debug)]
pub struct HRVitonGenerator {
    convs: Vec<Conv2d>,
    /// head_0, G_middle_0, G_middle_1, up_0 .. up_3 [, up_4].
    blocks: Vec<SpadeResBlock>,
    conv_img: Conv2d,
    #[module(skip)]
    config: HRVitonGeneratorConfig,
}

impl HRVitonGenerator {
    /// Loads `gen.pth` under its released key names or the renamed ones; strict, like
    /// the original `load_checkpoint_G`.
    pub fn from_checkpoint(
        path: impl AsRef<Path>,
        config: HRVitonGeneratorConfig,
        device: &Device,
    ) -> Result<Self> {
        let ckpt = Checkpoint::open(path)?
            .map_keys(|k| Some(rename_generator_key(k)))
            .rooted_at("conv_0.weight");
        let l = Loader::new(&ckpt, device, false);
        let m = Self::load(&l, config)?;
        l.finish(true)?;
        Ok(m)
    }

    pub fn load(l: &Loader, config: HRVitonGeneratorConfig) -> Result<Self> {
        let HRVitonGeneratorConfig {
            input_nc,
            ngf: nf,
            norm_g,
            num_up_layers,
            gen_semantic_nc: label_nc,
            ..
        } = config;
        if !(6..=7).contains(&num_up_layers) {
            return Err(VtonError::invalid(
                "num_up_layers",
                format!("{num_up_layers} (6 = 'more', 7 = 'most')"),
            ));
        }
        let (sh, sw) = config.latent_size();
        if sh == 0 || sw == 0 {
            return Err(VtonError::invalid(
                "fine_height/fine_width",
                format!(
                    "{}x{} is below the generator's {} upsamplings (2^{num_up_layers})",
                    config.fine_height, config.fine_width, num_up_layers
                ),
            ));
        }
        if nf < 2 || (nf % 2 != 0 && num_up_layers == 7) {
            return Err(VtonError::invalid(
                "ngf",
                format!("{nf} (must be even and >= 2)"),
            ));
        }
        let side = weight_shape(l, "conv_1")?[0];
        let mut convs = vec![conv2d(l, "conv_0", input_nc, 16 * nf, 3, 1, 1, true)?];
        for i in 1..8 {
            convs.push(conv2d(
                l,
                &format!("conv_{i}"),
                input_nc,
                side,
                3,
                1,
                1,
                true,
            )?);
        }
        let mut plan = vec![
            ("head_0", 16 * nf, 16 * nf),
            ("G_middle_0", 16 * nf + side, 16 * nf),
            ("G_middle_1", 16 * nf + side, 16 * nf),
            ("up_0", 16 * nf + side, 8 * nf),
            ("up_1", 8 * nf + side, 4 * nf),
            ("up_2", 4 * nf + side, 2 * nf),
            ("up_3", 2 * nf + side, nf),
        ];
        let mut last = nf;
        if num_up_layers == 7 {
            plan.push(("up_4", nf + side, nf / 2));
            last = nf / 2;
        }
        let blocks = plan
            .iter()
            .map(|&(name, a, b)| SpadeResBlock::load(&l.sub(name), a, b, label_nc, norm_g))
            .collect::<Result<Vec<_>>>()?;
        let conv_img = conv2d(l, "conv_img", last, 3, 3, 1, 1, true)?;
        Ok(HRVitonGenerator {
            convs,
            blocks,
            conv_img,
            config,
        })
    }

    pub fn config(&self) -> HRVitonGeneratorConfig {
        self.config
    }

    /// `generator(x, seg)` with the norms' noise drawn by `noise`; returns
    /// `[B, 3, sh * 2^k, sw * 2^k]` in [-1, 1].
    pub fn forward(
        &self,
        x: Tensor<4>,
        seg: Tensor<4>,
        noise: &mut SpadeNoise,
    ) -> Result<Tensor<4>> {
        let c = self.config;
        check_channels("generator x", &x, c.input_nc)?;
        check_channels("generator seg", &seg, c.gen_semantic_nc)?;
        if x.dims()[0] != seg.dims()[0] {
            return Err(VtonError::SizeMismatch {
                what: "generator batch (x vs seg)".into(),
                expected: x.dims()[0].to_string(),
                actual: seg.dims()[0].to_string(),
            });
        }
        let (sh, sw) = c.latent_size();
        let feature = |i: usize| {
            let s = resize_nearest(x.clone(), sh << i, sw << i);
            self.convs[i].forward(s)
        };
        let up = |t: Tensor<4>| {
            let [_, _, h, w] = t.dims();
            resize_nearest(t, 2 * h, 2 * w)
        };
        // Every block after head_0 follows a x2 upsampling (in 'more' and 'most') and
        // takes the input resized to its level, through conv_k.
        let mut h = self.blocks[0].forward(feature(0), seg.clone(), noise)?;
        for (k, block) in self.blocks.iter().enumerate().skip(1) {
            h = block.forward(Tensor::cat(vec![up(h), feature(k)], 1), seg.clone(), noise)?;
        }
        Ok(self.conv_img.forward(leaky_relu(h, 0.2)).tanh())
    }
}
