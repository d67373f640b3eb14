//! DCI-VITON's flow-warping network (`warpingnetwork.py`: `make_grid`,
//! `ResNetEncoderBlock`, `ClothingEncoder`, `SegmentEncoder`, `WarpingProcess(oc)`), under
//! the original module names, so `torch.save` checkpoints load as saved.
//!
//! Two encoders of five stride-2 residual blocks read `input_1 = cat(cloth, cloth_mask)`
//! and `input_2 = cat(densepose, parse_agnostic * 15)` (the pose encoder adds a 1x1 block
//! and an upsampling block). A flow in pixels starts at 1/32 of the input from
//! `conv_after_concat_1(cat(ce_4, pe_4))` and is refined over four levels: each level
//! upsamples the previous flow x2 (bilinear, values not rescaled), normalises it to grid
//! units (`x / ((W - 1) / 2)`, `y / ((H - 1) / 2)` of that level), warps the clothing
//! feature of that level with it and adds a correction predicted from the pose feature and
//! the warped feature. The last flow, upsampled to the input size, warps `input_1` itself.
//!
//! The conventions, as the original computes them under PyTorch >= 1.3:
//! * `make_grid` is `linspace(-1, 1)` (the align_corners=True convention) while every
//!   `grid_sample` runs bilinear, `padding_mode='border'`, align_corners False;
//! * every x2 upsampling (`F.interpolate` and `nn.Upsample`) is bilinear, align_corners
//!   False;
//! * `ResNetEncoderBlock.batchnorm` is in fact `nn.InstanceNorm2d(c)`: no parameters, no
//!   running statistics, per-sample statistics in eval too (eps 1e-5), one module applied
//!   after both convolutions; the network has no BatchNorm and no layer whose behaviour
//!   depends on train/eval.
//! * the original calls `make_grid(1, H, W)` with its `(iW, iH)` parameters swapped, so its
//!   grid is `[1, W, H, 2]`: it only broadcasts with the `[B, H, W, 2]` flow when the input
//!   is square. Inputs must be square, a multiple of 32, and at least 64 (at 32 the deepest
//!   block is 1x1 and PyTorch's InstanceNorm refuses it).
//!
//! The original also runs `convs_segment_after_concat[3]`, whose output nothing reads; it is
//! loaded (its keys are in every checkpoint) but not evaluated.

use std::path::Path;

use crate::nn::Conv2d;
use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::error::{Result, VtonError};
use crate::nn::{conv2d, instance_norm, relu, up2_bilinear, weight_shape};
use crate::rng::Rng;
use crate::warp::grid::{grid_sample, identity_grid, GridSampleOptions, PaddingMode, SampleMode};
use crate::weights::{Checkpoint, Loader};

/// The key every DCI-VITON warping checkpoint has (used to find the model's root inside
/// a wrapper dictionary such as `{'model_state_dict': ..., 'optimizer_state_dict': ...}`).
pub const PROBE_KEY: &str = "clothingencoder.resnet1.scale.weight";

/// The widths of a [`DciVitonWarping`], as `WarpingProcess(oc)` builds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DciVitonWarpingConfig {
    /// The base width `oc` (96 in the repository).
    pub oc: usize,
    /// Channels of `input_1` (`ClothingEncoder(4, oc)`: cloth RGB + cloth mask); the last
    /// one is the mask.
    pub input_1_channels: usize,
    /// Channels of `input_2` (`SegmentEncoder(6, oc)`: densepose RGB + 3-channel parse).
    pub input_2_channels: usize,
}

impl Default for DciVitonWarpingConfig {
    /// The repository's network: `WarpingProcess(96)`, inputs of 4 and 6 channels.
    fn default() -> Self {
        DciVitonWarpingConfig {
            oc: 96,
            input_1_channels: 4,
            input_2_channels: 6,
        }
    }
}

impl DciVitonWarpingConfig {
    fn validate(&self) -> Result<()> {
        if self.oc == 0 {
            return Err(VtonError::config("DCI-VITON warping oc", "must be > 0"));
        }
        if self.input_1_channels < 2 {
            return Err(VtonError::config(
                "DCI-VITON warping input_1 channels",
                format!(
                    "{}: input_1 is cloth channels plus the cloth mask, at least 2",
                    self.input_1_channels
                ),
            ));
        }
        if self.input_2_channels == 0 {
            return Err(VtonError::config(
                "DCI-VITON warping input_2 channels",
                "must be > 0",
            ));
        }
        Ok(())
    }

    /// Every parameter of `WarpingProcess` as `(state_dict key, shape)`, in the original
    /// module's registration order (its `state_dict()` order).
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for (key, cin, cout, k) in self.convs() {
            out.push((format!("{key}.weight"), vec![cout, cin, k, k]));
            out.push((format!("{key}.bias"), vec![cout]));
        }
        out
    }

    /// `(module key, in, out, kernel)` of every convolution, in registration order.
    fn convs(&self) -> Vec<(String, usize, usize, usize)> {
        let oc = self.oc;
        let mut v = vec![("conv_after_concat_1".to_string(), 8 * oc, 2, 3)];
        for (i, cin) in [4 * oc, 4 * oc, 2 * oc, oc].into_iter().enumerate() {
            v.push((format!("convs_clothing.{i}"), cin, 4 * oc, 1));
        }
        for i in 0..4 {
            v.push((format!("convs_segment.{i}"), 4 * oc, 4 * oc, 3));
        }
        for i in 0..4 {
            v.push((format!("conv_after_concat_2.{i}"), 8 * oc, 2, 3));
        }
        for (i, cin) in [12 * oc, 12 * oc, 10 * oc, 9 * oc].into_iter().enumerate() {
            block_convs(
                &mut v,
                &format!("convs_segment_after_concat.{i}"),
                cin,
                4 * oc,
                BlockScale::Up,
            );
        }
        for (i, (cin, cout, s)) in encoder_blocks(oc, self.input_1_channels, false)
            .into_iter()
            .enumerate()
        {
            block_convs(
                &mut v,
                &format!("clothingencoder.resnet{}", i + 1),
                cin,
                cout,
                s,
            );
        }
        for (i, (cin, cout, s)) in encoder_blocks(oc, self.input_2_channels, true)
            .into_iter()
            .enumerate()
        {
            block_convs(&mut v, &format!("posencoder.resnet{}", i + 1), cin, cout, s);
        }
        v
    }
}

/// How a `ResNetEncoderBlock` changes the resolution (its `down` / `up` arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockScale {
    /// `down=True`: `scale` is a 3x3 conv, stride 2, padding 1.
    Down,
    /// `down=False, up=True`: `scale` is `Sequential(Upsample(x2, bilinear), Conv3x3)`.
    Up,
    /// `down=False, up=False`: `scale` is a 1x1 conv.
    Same,
}

impl BlockScale {
    /// The key of the scale conv and its kernel.
    fn conv(self) -> (&'static str, usize) {
        match self {
            BlockScale::Down => ("scale", 3),
            BlockScale::Up => ("scale.1", 3),
            BlockScale::Same => ("scale", 1),
        }
    }
}

fn block_convs(
    v: &mut Vec<(String, usize, usize, usize)>,
    key: &str,
    cin: usize,
    cout: usize,
    s: BlockScale,
) {
    let (name, k) = s.conv();
    v.push((format!("{key}.{name}"), cin, cout, k));
    v.push((format!("{key}.conv_1"), cout, cout, 3));
    v.push((format!("{key}.conv_2"), cout, cout, 3));
}

/// `(in, out, scale)` of `ClothingEncoder` (5 blocks) or `SegmentEncoder` (7 blocks).
fn encoder_blocks(oc: usize, cin: usize, segment: bool) -> Vec<(usize, usize, BlockScale)> {
    let mut b = vec![
        (cin, oc, BlockScale::Down),
        (oc, 2 * oc, BlockScale::Down),
        (2 * oc, 4 * oc, BlockScale::Down),
        (4 * oc, 4 * oc, BlockScale::Down),
        (4 * oc, 4 * oc, BlockScale::Down),
    ];
    if segment {
        b.push((4 * oc, 8 * oc, BlockScale::Same));
        b.push((8 * oc, 4 * oc, BlockScale::Up));
    }
    b
}

/// `make_grid(N, iW, iH)`: the `[N, iH, iW, 2]` grid of `linspace(-1, 1)` coordinates
/// (`x` along `iW`), the align_corners=True convention.
pub fn make_grid(n: usize, iw: usize, ih: usize, device: &Device) -> Tensor<4> {
    identity_grid(n, ih, iw, true, device)
}

/// `F.grid_sample(x, grid, padding_mode='border')`: bilinear, align_corners False.
fn sample(x: Tensor<4>, grid: Tensor<4>) -> Result<Tensor<4>> {
    grid_sample(
        x,
        grid,
        GridSampleOptions::new(SampleMode::Bilinear, PaddingMode::Border, false),
    )
}

/// A pixel flow `[B, 2, H, W]` divided into grid units as the original does
/// (`x / ((W - 1) / 2)`, `y / ((H - 1) / 2)`) and permuted to `[B, H, W, 2]`.
fn normalize_flow(flow: Tensor<4>) -> Tensor<4> {
    let [_, _, h, w] = flow.dims();
    let fx = flow
        .clone()
        .narrow(1, 0, 1)
        .div_scalar((w as f64 - 1.0) / 2.0);
    let fy = flow.narrow(1, 1, 1).div_scalar((h as f64 - 1.0) / 2.0);
    Tensor::cat(vec![fx, fy], 1).permute([0, 2, 3, 1])
}

/// `ResNetEncoderBlock`: `relu(IN(conv_2(relu(IN(conv_1(r))))) + r)`, `r = scale(x)`.
#[derive(Module, Debug)]
pub struct ResNetEncoderBlock {
    /// `scale` (down / same) or `scale.1` (up, after the x2 bilinear upsampling).
    pub scale: Conv2d,
    pub conv_1: Conv2d,
    pub conv_2: Conv2d,
    #[module(skip)]
    up: bool,
}

impl ResNetEncoderBlock {
    fn load(l: &Loader, cin: usize, cout: usize, s: BlockScale) -> Result<Self> {
        let (name, k) = s.conv();
        let (stride, pad) = match s {
            BlockScale::Down => (2, 1),
            BlockScale::Up => (1, 1),
            BlockScale::Same => (1, 0),
        };
        Ok(ResNetEncoderBlock {
            scale: conv2d(l, name, cin, cout, k, stride, pad, true)?,
            conv_1: conv2d(l, "conv_1", cout, cout, 3, 1, 1, true)?,
            conv_2: conv2d(l, "conv_2", cout, cout, 3, 1, 1, true)?,
            up: s == BlockScale::Up,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = if self.up { up2_bilinear(x) } else { x };
        let residual = self.scale.forward(x);
        let c1 = relu(instance_norm(self.conv_1.forward(residual.clone()), 1e-5));
        let c2 = instance_norm(self.conv_2.forward(c1), 1e-5);
        relu(c2 + residual)
    }
}

/// `ClothingEncoder(input_channels, oc)`: five down blocks; returns `x0 .. x4`.
#[derive(Module, Debug)]
pub struct ClothingEncoder {
    pub resnet1: ResNetEncoderBlock,
    pub resnet2: ResNetEncoderBlock,
    pub resnet3: ResNetEncoderBlock,
    pub resnet4: ResNetEncoderBlock,
    pub resnet5: ResNetEncoderBlock,
}

impl ClothingEncoder {
    fn load(l: &Loader, oc: usize, cin: usize) -> Result<Self> {
        let b = encoder_blocks(oc, cin, false);
        let block = |i: usize| {
            let (a, c, s) = b[i];
            ResNetEncoderBlock::load(&l.sub(format!("resnet{}", i + 1)), a, c, s)
        };
        Ok(ClothingEncoder {
            resnet1: block(0)?,
            resnet2: block(1)?,
            resnet3: block(2)?,
            resnet4: block(3)?,
            resnet5: block(4)?,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> [Tensor<4>; 5] {
        let x0 = self.resnet1.forward(x);
        let x1 = self.resnet2.forward(x0.clone());
        let x2 = self.resnet3.forward(x1.clone());
        let x3 = self.resnet4.forward(x2.clone());
        let x4 = self.resnet5.forward(x3.clone());
        [x0, x1, x2, x3, x4]
    }
}

/// `SegmentEncoder(input_channels, oc)`: five down blocks, a 1x1 block to `8 oc` and an
/// upsampling block back to `4 oc`; returns `x0 .. x6`.
#[derive(Module, Debug)]
pub struct SegmentEncoder {
    pub resnet1: ResNetEncoderBlock,
    pub resnet2: ResNetEncoderBlock,
    pub resnet3: ResNetEncoderBlock,
    pub resnet4: ResNetEncoderBlock,
    pub resnet5: ResNetEncoderBlock,
    pub resnet6: ResNetEncoderBlock,
    pub resnet7: ResNetEncoderBlock,
}

impl SegmentEncoder {
    fn load(l: &Loader, oc: usize, cin: usize) -> Result<Self> {
        let b = encoder_blocks(oc, cin, true);
        let block = |i: usize| {
            let (a, c, s) = b[i];
            ResNetEncoderBlock::load(&l.sub(format!("resnet{}", i + 1)), a, c, s)
        };
        Ok(SegmentEncoder {
            resnet1: block(0)?,
            resnet2: block(1)?,
            resnet3: block(2)?,
            resnet4: block(3)?,
            resnet5: block(4)?,
            resnet6: block(5)?,
            resnet7: block(6)?,
        })
    }

    pub fn forward(&self, x: Tensor<4>) -> [Tensor<4>; 7] {
        let x0 = self.resnet1.forward(x);
        let x1 = self.resnet2.forward(x0.clone());
        let x2 = self.resnet3.forward(x1.clone());
        let x3 = self.resnet4.forward(x2.clone());
        let x4 = self.resnet5.forward(x3.clone());
        let x5 = self.resnet6.forward(x4.clone());
        let x6 = self.resnet7.forward(x5.clone());
        [x0, x1, x2, x3, x4, x5, x6]
    }
}

/// What [`DciVitonWarping::forward`] returns: `(warped_c, warped_cm, flow_list)`.
///
/// * `warped_c` `[B, input_1_channels - 1, H, W]`, `warped_cm` `[B, 1, H, W]`: `input_1`
///   sampled at `grid + flow_list[4]`;
/// * `flow_list`: five flows `[B, H/2^(4-i), W/2^(4-i), 2]` (NHWC, `(x, y)`), already in
///   grid units (the pixel flow of each level divided by `(size - 1) / 2`).
pub type WarpingOutput = (Tensor<4>, Tensor<4>, Vec<Tensor<4>>);

/// `WarpingProcess(oc)`.
#[derive(Module, Debug)]
pub struct DciVitonWarping {
    pub conv_after_concat_1: Conv2d,
    pub convs_clothing: Vec<Conv2d>,
    pub convs_segment: Vec<Conv2d>,
    pub conv_after_concat_2: Vec<Conv2d>,
    pub convs_segment_after_concat: Vec<ResNetEncoderBlock>,
    pub clothingencoder: ClothingEncoder,
    pub posencoder: SegmentEncoder,
    #[module(skip)]
    config: DciVitonWarpingConfig,
}

impl DciVitonWarping {
    /// Loads a checkpoint as the repository saves it (`torch.save({'model_state_dict': ...,
    /// 'optimizer_state_dict': ...})`, what `WarpingCloth.warping` reads), a bare state dict
    /// (`.pth` or safetensors), or any file holding the state dict under one prefix.
    /// Strict, as `load_state_dict` is: missing, mis-shaped and unexpected keys are errors.
    pub fn from_checkpoint(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let ckpt = Checkpoint::open(path)?;
        Self::load(&ckpt, device)
    }

    /// Loads from an opened checkpoint (its model found through [`PROBE_KEY`]); widths and
    /// input channel counts are read from the weights.
    pub fn load(ckpt: &Checkpoint, device: &Device) -> Result<Self> {
        let ckpt = ckpt.clone().rooted_at(PROBE_KEY);
        let l = Loader::new(&ckpt, device, false);
        let m = Self::from_loader(&l)?;
        l.finish(true)?;
        Ok(m)
    }

    /// Reads the network through a [`Loader`] positioned at its root (trainers keep the
    /// loader for [`Loader::param_records`]); does not call [`Loader::finish`].
    pub fn from_loader(l: &Loader) -> Result<Self> {
        let config = Self::config_from(l)?;
        let oc = config.oc;
        let conv = |key: &str, cin: usize, cout: usize, k: usize| {
            conv2d(l, key, cin, cout, k, 1, k / 2, true)
        };
        let conv_after_concat_1 = conv("conv_after_concat_1", 8 * oc, 2, 3)?;
        let convs_clothing = [4 * oc, 4 * oc, 2 * oc, oc]
            .iter()
            .enumerate()
            .map(|(i, &c)| conv(&format!("convs_clothing.{i}"), c, 4 * oc, 1))
            .collect::<Result<Vec<_>>>()?;
        let convs_segment = (0..4)
            .map(|i| conv(&format!("convs_segment.{i}"), 4 * oc, 4 * oc, 3))
            .collect::<Result<Vec<_>>>()?;
        let conv_after_concat_2 = (0..4)
            .map(|i| conv(&format!("conv_after_concat_2.{i}"), 8 * oc, 2, 3))
            .collect::<Result<Vec<_>>>()?;
        let convs_segment_after_concat = [12 * oc, 12 * oc, 10 * oc, 9 * oc]
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                ResNetEncoderBlock::load(
                    &l.sub(format!("convs_segment_after_concat.{i}")),
                    c,
                    4 * oc,
                    BlockScale::Up,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let clothingencoder =
            ClothingEncoder::load(&l.sub("clothingencoder"), oc, config.input_1_channels)?;
        let posencoder = SegmentEncoder::load(&l.sub("posencoder"), oc, config.input_2_channels)?;
        Ok(DciVitonWarping {
            conv_after_concat_1,
            convs_clothing,
            convs_segment,
            conv_after_concat_2,
            convs_segment_after_concat,
            clothingencoder,
            posencoder,
            config,
        })
    }

    /// `oc` and both input channel counts, from the first block of each encoder.
    fn config_from(l: &Loader) -> Result<DciVitonWarpingConfig> {
        let first = |key: &str| -> Result<[usize; 2]> {
            let s = weight_shape(l, key)?;
            if s.len() != 4 || s[2] != 3 || s[3] != 3 {
                return Err(VtonError::WeightShape {
                    key: l.key(&format!("{key}.weight")),
                    expected: vec![0, 0, 3, 3],
                    found: s,
                });
            }
            Ok([s[0], s[1]])
        };
        let [oc, in1] = first("clothingencoder.resnet1.scale")?;
        let [oc2, in2] = first("posencoder.resnet1.scale")?;
        if oc2 != oc {
            return Err(VtonError::WeightShape {
                key: l.key("posencoder.resnet1.scale.weight"),
                expected: vec![oc, in2, 3, 3],
                found: vec![oc2, in2, 3, 3],
            });
        }
        let config = DciVitonWarpingConfig {
            oc,
            input_1_channels: in1,
            input_2_channels: in2,
        };
        config.validate()?;
        Ok(config)
    }

    /// A freshly initialised network, as `Train_WarpingNetwork.ipynb` builds it
    /// (`WarpingProcess(96).apply(weights_init)`), from seed 0; see [`Self::fresh_checkpoint`].
    pub fn new(config: &DciVitonWarpingConfig, device: &Device) -> Result<Self> {
        Self::load(&Self::fresh_checkpoint(config, 0)?, device)
    }

    /// Fresh weights under the original keys with the notebook's initialisation:
    /// `weights_init` draws every conv weight with `xavier_normal_` (std
    /// `sqrt(2 / (fan_in + fan_out))`, fans `in * k * k`, `out * k * k`), and biases keep
    /// PyTorch's default `U(-1/sqrt(fan_in), 1/sqrt(fan_in))`. Draws come from vton's
    /// seeded generator (not PyTorch's numbers).
    pub fn fresh_checkpoint(config: &DciVitonWarpingConfig, seed: u64) -> Result<Checkpoint> {
        config.validate()?;
        let mut rng = Rng::new(seed);
        let mut tensors = Vec::new();
        for (key, cin, cout, k) in config.convs() {
            let (fan_in, fan_out) = (cin * k * k, cout * k * k);
            let std = (2.0 / (fan_in + fan_out) as f64).sqrt();
            let n = cout * cin * k * k;
            let w: Vec<f32> = rng
                .normal_vec(n)
                .into_iter()
                .map(|x| (x as f64 * std) as f32)
                .collect();
            let bound = 1.0 / (fan_in as f64).sqrt();
            let b: Vec<f32> = (0..cout)
                .map(|_| (((rng.next_u32() as f64 / u32::MAX as f64) * 2.0 - 1.0) * bound) as f32)
                .collect();
            tensors.push((format!("{key}.weight"), vec![cout, cin, k, k], w));
            tensors.push((format!("{key}.bias"), vec![cout], b));
        }
        Checkpoint::from_f32_tensors("fresh DCI-VITON warping", tensors)
    }

    /// The widths read from the checkpoint.
    pub fn config(&self) -> DciVitonWarpingConfig {
        self.config
    }

    /// Checks the inputs against what the network can take.
    fn check_inputs(&self, input_1: &Tensor<4>, input_2: &Tensor<4>) -> Result<()> {
        let c = self.config;
        let (d1, d2) = (input_1.dims(), input_2.dims());
        if d1[1] != c.input_1_channels || d1.contains(&0) {
            return Err(VtonError::Shape {
                what: "DCI-VITON warping input_1 (cloth + cloth mask)".into(),
                expected: format!("[B, {}, H, W]", c.input_1_channels),
                actual: d1.to_vec(),
            });
        }
        if d2[1] != c.input_2_channels || d2.contains(&0) {
            return Err(VtonError::Shape {
                what: "DCI-VITON warping input_2 (densepose + parse)".into(),
                expected: format!("[B, {}, H, W]", c.input_2_channels),
                actual: d2.to_vec(),
            });
        }
        if [d2[0], d2[2], d2[3]] != [d1[0], d1[2], d1[3]] {
            return Err(VtonError::SizeMismatch {
                what: "DCI-VITON warping input_2 vs input_1".into(),
                expected: format!("[{}, {}, {}, {}]", d1[0], d2[1], d1[2], d1[3]),
                actual: format!("{d2:?}"),
            });
        }
        let (h, w) = (d1[2], d1[3]);
        if h != w || h % 32 != 0 || h < 64 {
            return Err(VtonError::invalid(
                "DCI-VITON warping input size",
                format!(
                    "{h}x{w}: the network takes square inputs, a multiple of 32 and at least 64 \
                     (the repository runs it at 256x256)"
                ),
            ));
        }
        Ok(())
    }

    /// `WarpingProcess.forward(input_1, input_2, device)`: `input_1 = cat(cloth, cloth_mask)`
    /// `[B, 4, S, S]`, `input_2 = cat(densepose, parse_agnostic * 15)` `[B, 6, S, S]`
    /// (channel counts as the checkpoint says), `S` a multiple of 32, at least 64.
    pub fn forward(&self, input_1: Tensor<4>, input_2: Tensor<4>) -> Result<WarpingOutput> {
        self.check_inputs(&input_1, &input_2)?;
        let [n, c1, h, w] = input_1.dims();
        let dev = input_1.device();
        let ce = self.clothingencoder.forward(input_1.clone());
        let pe = self.posencoder.forward(input_2);
        let mut flow = self
            .conv_after_concat_1
            .forward(Tensor::cat(vec![ce[4].clone(), pe[4].clone()], 1));
        let mut clothing = ce[4].clone();
        let mut pose = pe[6].clone();
        let mut flow_list = Vec::with_capacity(5);
        for i in 0..4 {
            let conv_up =
                self.convs_clothing[i].forward(ce[3 - i].clone()) + up2_bilinear(clothing);
            let up_flow = up2_bilinear(flow);
            let [_, _, fh, fw] = up_flow.dims();
            let flow_norm = normalize_flow(up_flow.clone());
            let grid = make_grid(n, fw, fh, &dev) + flow_norm.clone();
            let warped = sample(conv_up.clone(), grid)?;
            flow_list.push(flow_norm);
            let seg = self.convs_segment[i].forward(pose.clone());
            let delta =
                self.conv_after_concat_2[i].forward(Tensor::cat(vec![seg, warped.clone()], 1));
            flow = up_flow + delta;
            if i < 3 {
                // The original also runs block 3; nothing reads its output.
                pose = self.convs_segment_after_concat[i]
                    .forward(Tensor::cat(vec![pose, warped, pe[3 - i].clone()], 1));
            }
            clothing = conv_up;
        }
        let last_up = up2_bilinear(flow);
        let [_, _, fh, fw] = last_up.dims();
        let flow_norm = normalize_flow(last_up);
        let grid = make_grid(n, fw, fh, &dev) + flow_norm.clone();
        let warped = sample(input_1, grid)?;
        flow_list.push(flow_norm);
        let warped_c = warped.clone().narrow(1, 0, c1 - 1);
        let warped_cm = warped.narrow(1, c1 - 1, 1);
        debug_assert_eq!(warped_cm.dims(), [n, 1, h, w]);
        Ok((warped_c, warped_cm, flow_list))
    }
}
