//! pytorch-fid's InceptionV3 (pytorch-fid 0.3.0, `pytorch_fid/inception.py` on torchvision's
//! `Inception3`), the network FID and KID are computed with: the pool3 features of
//! `InceptionV3(output_blocks=[3], resize_input=True, normalize_input=True,
//! use_fid_inception=True)`.
//!
//! Loaded from `pt_inception-2015-12-05-6726825d.pth` (the TensorFlow FID graph ported to
//! PyTorch, a plain state dict) under its own keys, or from any file holding those keys under
//! one prefix (the fixtures keep them under `fid_inception.`).
//!
//! The computation, as the package runs it:
//!
//! 1. `F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)` on the
//!    `[0, 1]` input (no antialiasing), with PyTorch's float32 source coordinates, then
//!    `2x - 1`;
//! 2. block 0: `Conv2d_1a_3x3` (stride 2), `Conv2d_2a_3x3`, `Conv2d_2b_3x3` (padding 1),
//!    max pool 3 stride 2;
//! 3. block 1: `Conv2d_3b_1x1`, `Conv2d_4a_3x3`, max pool 3 stride 2;
//! 4. block 2: `Mixed_5b..5d` (FIDInceptionA), `Mixed_6a` (InceptionB), `Mixed_6b..6e`
//!    (FIDInceptionC);
//! 5. block 3: `Mixed_7a` (InceptionD), `Mixed_7b` (FIDInceptionE_1), `Mixed_7c`
//!    (FIDInceptionE_2), adaptive average pool to 1x1: the features.
//!
//! Every convolution is torchvision's `BasicConv2d`: a convolution without bias, BatchNorm2d
//! (eps 0.001, eval mode: running statistics), ReLU. The batch norm is folded into the
//! convolution at load (weights scaled by `gamma / sqrt(var + eps)`, bias
//! `beta - mean * gamma / sqrt(var + eps)`). The FID blocks differ from torchvision's in their
//! pooling branch: FIDInceptionA, FIDInceptionC and FIDInceptionE_1 average with
//! `count_include_pad=False`, FIDInceptionE_2 (`Mixed_7c`) takes a 3x3 max pool (stride 1,
//! padding 1). `AuxLogits` is not part of the network (`aux_logits=False`: a checkpoint that
//! holds it is refused as unexpected weights) and `fc` is never applied; its shape is checked
//! against the feature width when present.
//!
//! Kernel sizes, strides, paddings and the order of concatenation are the architecture's;
//! every width (each convolution's output channels, hence every block's input channels after
//! a concatenation and the feature dimension) is read from the checkpoint, so width-reduced
//! networks load as well as the real one (2048 features).

use std::path::Path;

use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d, conv2d, max_pool2d};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::nn::{check_channels, relu};
use crate::weights::{Checkpoint, Loader};

/// `nn.BatchNorm2d(out_channels, eps=0.001)` in every `BasicConv2d`.
const BN_EPS: f64 = 1e-3;
/// The side the input is resized to before block 0.
pub const INPUT_SIZE: usize = 299;
/// A key every FID Inception checkpoint holds, to find its root in a prefixed file.
const PROBE: &str = "Conv2d_1a_3x3.conv.weight";
/// [`FidInceptionV3::features`] runs larger batches in chunks of this many images, which
/// bounds the memory of the full-width network (about 30 MB of activations per image).
const FEATURE_CHUNK: usize = 32;

/// Source rows (or columns) and weights of `F.interpolate(mode='bilinear',
/// align_corners=False)` along one dimension, computed as PyTorch's CPU kernel does, in
/// float32: `scale = in / out`, `src = max(scale * (i + 0.5) - 0.5, 0)`,
/// `i0 = min(floor(src), in - 1)`, `i1 = i0 + (i0 < in - 1)`, `l1 = clamp(src - i0, 0, 1)`,
/// `l0 = 1 - l1`; an unchanged size copies (`l0 = 1`, `l1 = 0`). Computing the source
/// coordinate in float64 instead moves results by up to 1e-5 (one float32 ulp of the
/// coordinate times the image gradient).
fn linear_taps(input: usize, output: usize) -> (Vec<i64>, Vec<i64>, Vec<f32>, Vec<f32>) {
    let mut i0s = Vec::with_capacity(output);
    let mut i1s = Vec::with_capacity(output);
    let mut l0s = Vec::with_capacity(output);
    let mut l1s = Vec::with_capacity(output);
    let scale = input as f32 / output as f32;
    for i in 0..output {
        let (i0, i1, l0, l1) = if input == output {
            (i, i, 1.0, 0.0)
        } else {
            let src = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(input - 1);
            let l1 = (src - i0 as f32).clamp(0.0, 1.0);
            let i1 = if i0 < input - 1 { i0 + 1 } else { i0 };
            (i0, i1, 1.0 - l1, l1)
        };
        i0s.push(i0 as i64);
        i1s.push(i1 as i64);
        l0s.push(l0);
        l1s.push(l1);
    }
    (i0s, i1s, l0s, l1s)
}

/// `F.interpolate(x, size=(h, w), mode='bilinear', align_corners=False)` (no antialiasing)
/// with PyTorch's float32 taps and its order of operations (along W first, then
/// `t0 * l0 + t1 * l1` along H): within one or two float32 ulps of PyTorch on the CPU.
/// `x` must have non-empty spatial dimensions. ([`crate::nn::resize_bilinear`] takes the
/// source coordinates in float64 and lies up to ~1e-5 from PyTorch on sharp edges.)
pub fn resize_bilinear_torch(x: Tensor<4>, h: usize, w: usize) -> Tensor<4> {
    let [_, _, ih, iw] = x.dims();
    if (ih, iw) == (h, w) {
        return x;
    }
    let dev = x.device();
    let ints = |v: Vec<i64>, n: usize| Tensor::<1, Int>::from_data(TensorData::new(v, [n]), &dev);
    let floats =
        |v: Vec<f32>, shape: [usize; 4]| Tensor::<4>::from_data(TensorData::new(v, shape), &dev);
    let x = if iw == w {
        x
    } else {
        let (i0, i1, l0, l1) = linear_taps(iw, w);
        x.clone().select(3, ints(i0, w)) * floats(l0, [1, 1, 1, w])
            + x.select(3, ints(i1, w)) * floats(l1, [1, 1, 1, w])
    };
    if ih == h {
        return x;
    }
    let (i0, i1, l0, l1) = linear_taps(ih, h);
    x.clone().select(2, ints(i0, h)) * floats(l0, [1, 1, h, 1])
        + x.select(2, ints(i1, h)) * floats(l1, [1, 1, h, 1])
}

/// torchvision's `BasicConv2d` with its batch norm folded in: conv (+ folded bias), ReLU.
#[derive(Debug, Clone)]
struct BasicConv2d {
    weight: Tensor<4>,
    bias: Tensor<1>,
    stride: usize,
    padding: [usize; 2],
}

impl BasicConv2d {
    /// `BasicConv2d(cin, ?, kernel_size=kernel, stride, padding)` from `name.conv.weight`
    /// and `name.bn.*`; the output width is the checkpoint's.
    fn load(
        l: &Loader,
        name: &str,
        cin: usize,
        kernel: [usize; 2],
        stride: usize,
        padding: [usize; 2],
    ) -> Result<Self> {
        let m = l.sub(name);
        let key = m.key("conv.weight");
        let shape = m
            .shape("conv.weight")
            .ok_or_else(|| VtonError::MissingWeights {
                source_name: l.checkpoint().name().to_string(),
                count: 1,
                keys: key.clone(),
            })?;
        let cout = match shape.as_slice() {
            [cout, _, _, _] if *cout > 0 => *cout,
            _ => {
                return Err(VtonError::WeightShape {
                    key,
                    expected: vec![0, cin, kernel[0], kernel[1]],
                    found: shape,
                })
            }
        };
        let mut w = m.values("conv.weight", [cout, cin, kernel[0], kernel[1]])?;
        let bn = m.sub("bn");
        let gamma = bn.values("weight", [cout])?;
        let beta = bn.values("bias", [cout])?;
        let mean = bn.values("running_mean", [cout])?;
        let var = bn.values("running_var", [cout])?;
        bn.ignore("num_batches_tracked");

        let per_out = cin * kernel[0] * kernel[1];
        let mut bias = vec![0f32; cout];
        for o in 0..cout {
            let denom = (var[o] as f64 + BN_EPS).sqrt();
            let scale = gamma[o] as f64 / denom;
            if denom.is_nan() || denom <= 0.0 || !scale.is_finite() || !mean[o].is_finite() {
                return Err(VtonError::config(
                    bn.key("running_var"),
                    format!(
                        "channel {o}: running_var {} and weight {} do not give a finite \
                         batch-norm scale",
                        var[o], gamma[o]
                    ),
                ));
            }
            for v in &mut w[o * per_out..(o + 1) * per_out] {
                *v = (*v as f64 * scale) as f32;
            }
            bias[o] = (beta[o] as f64 - mean[o] as f64 * scale) as f32;
        }
        let dev = l.device();
        Ok(BasicConv2d {
            weight: Tensor::from_data(TensorData::new(w, [cout, cin, kernel[0], kernel[1]]), dev),
            bias: Tensor::from_data(TensorData::new(bias, [cout]), dev),
            stride,
            padding,
        })
    }

    fn out_channels(&self) -> usize {
        self.weight.dims()[0]
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let opts = ConvOptions::new([self.stride; 2], self.padding, [1, 1], 1);
        relu(conv2d(
            x,
            self.weight.clone(),
            Some(self.bias.clone()),
            opts,
        ))
    }
}

/// A 1x1 `BasicConv2d`.
fn conv1x1(l: &Loader, name: &str, cin: usize) -> Result<BasicConv2d> {
    BasicConv2d::load(l, name, cin, [1, 1], 1, [0, 0])
}

/// `F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)`.
fn avg_pool_3x3_exclude_pad(x: Tensor<4>) -> Tensor<4> {
    avg_pool2d(
        x,
        AvgPoolOptions::new([3, 3])
            .with_stride([1, 1])
            .with_padding([1, 1])
            .with_count_include_pad(false),
    )
}

/// `F.max_pool2d(x, 3, stride)` with `padding` (floor mode).
fn max_pool_3x3(x: Tensor<4>, stride: usize, padding: usize) -> Tensor<4> {
    max_pool2d(
        x,
        MaxPoolOptions::new([3, 3])
            .with_stride([stride, stride])
            .with_padding([padding, padding]),
    )
}

/// The pooling branch of an InceptionE block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolBranch {
    /// FIDInceptionE_1 (and A, C): average, padding excluded from the count.
    AvgExcludePad,
    /// FIDInceptionE_2 (`Mixed_7c`): 3x3 max pool, stride 1, padding 1.
    Max,
}

/// FIDInceptionA (`Mixed_5b..5d`): 1x1 | 1x1, 5x5 | 1x1, 3x3, 3x3 | avg pool, 1x1.
#[derive(Debug, Clone)]
struct InceptionA {
    branch1x1: BasicConv2d,
    branch5x5_1: BasicConv2d,
    branch5x5_2: BasicConv2d,
    branch3x3dbl_1: BasicConv2d,
    branch3x3dbl_2: BasicConv2d,
    branch3x3dbl_3: BasicConv2d,
    branch_pool: BasicConv2d,
}

impl InceptionA {
    fn load(l: &Loader, cin: usize) -> Result<Self> {
        let branch1x1 = conv1x1(l, "branch1x1", cin)?;
        let branch5x5_1 = conv1x1(l, "branch5x5_1", cin)?;
        let branch5x5_2 = BasicConv2d::load(
            l,
            "branch5x5_2",
            branch5x5_1.out_channels(),
            [5, 5],
            1,
            [2, 2],
        )?;
        let branch3x3dbl_1 = conv1x1(l, "branch3x3dbl_1", cin)?;
        let branch3x3dbl_2 = BasicConv2d::load(
            l,
            "branch3x3dbl_2",
            branch3x3dbl_1.out_channels(),
            [3, 3],
            1,
            [1, 1],
        )?;
        let branch3x3dbl_3 = BasicConv2d::load(
            l,
            "branch3x3dbl_3",
            branch3x3dbl_2.out_channels(),
            [3, 3],
            1,
            [1, 1],
        )?;
        let branch_pool = conv1x1(l, "branch_pool", cin)?;
        Ok(InceptionA {
            branch1x1,
            branch5x5_1,
            branch5x5_2,
            branch3x3dbl_1,
            branch3x3dbl_2,
            branch3x3dbl_3,
            branch_pool,
        })
    }

    fn out_channels(&self) -> usize {
        self.branch1x1.out_channels()
            + self.branch5x5_2.out_channels()
            + self.branch3x3dbl_3.out_channels()
            + self.branch_pool.out_channels()
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b5 = self
            .branch5x5_2
            .forward(self.branch5x5_1.forward(x.clone()));
        let b3 = self.branch3x3dbl_3.forward(
            self.branch3x3dbl_2
                .forward(self.branch3x3dbl_1.forward(x.clone())),
        );
        let bp = self.branch_pool.forward(avg_pool_3x3_exclude_pad(x));
        Tensor::cat(vec![b1, b5, b3, bp], 1)
    }
}

/// InceptionB (`Mixed_6a`): 3x3 s2 | 1x1, 3x3, 3x3 s2 | max pool 3 s2.
#[derive(Debug, Clone)]
struct InceptionB {
    branch3x3: BasicConv2d,
    branch3x3dbl_1: BasicConv2d,
    branch3x3dbl_2: BasicConv2d,
    branch3x3dbl_3: BasicConv2d,
    in_channels: usize,
}

impl InceptionB {
    fn load(l: &Loader, cin: usize) -> Result<Self> {
        let branch3x3 = BasicConv2d::load(l, "branch3x3", cin, [3, 3], 2, [0, 0])?;
        let branch3x3dbl_1 = conv1x1(l, "branch3x3dbl_1", cin)?;
        let branch3x3dbl_2 = BasicConv2d::load(
            l,
            "branch3x3dbl_2",
            branch3x3dbl_1.out_channels(),
            [3, 3],
            1,
            [1, 1],
        )?;
        let branch3x3dbl_3 = BasicConv2d::load(
            l,
            "branch3x3dbl_3",
            branch3x3dbl_2.out_channels(),
            [3, 3],
            2,
            [0, 0],
        )?;
        Ok(InceptionB {
            branch3x3,
            branch3x3dbl_1,
            branch3x3dbl_2,
            branch3x3dbl_3,
            in_channels: cin,
        })
    }

    fn out_channels(&self) -> usize {
        self.branch3x3.out_channels() + self.branch3x3dbl_3.out_channels() + self.in_channels
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self.branch3x3.forward(x.clone());
        let bd = self.branch3x3dbl_3.forward(
            self.branch3x3dbl_2
                .forward(self.branch3x3dbl_1.forward(x.clone())),
        );
        let bp = max_pool_3x3(x, 2, 0);
        Tensor::cat(vec![b3, bd, bp], 1)
    }
}

/// FIDInceptionC (`Mixed_6b..6e`): 1x1 | 1x1, 1x7, 7x1 | 1x1, 7x1, 1x7, 7x1, 1x7 |
/// avg pool, 1x1.
#[derive(Debug, Clone)]
struct InceptionC {
    branch1x1: BasicConv2d,
    branch7x7: [BasicConv2d; 3],
    branch7x7dbl: [BasicConv2d; 5],
    branch_pool: BasicConv2d,
}

/// `kernel_size=(1, 7), padding=(0, 3)` and `kernel_size=(7, 1), padding=(3, 0)`.
const K1X7: ([usize; 2], [usize; 2]) = ([1, 7], [0, 3]);
const K7X1: ([usize; 2], [usize; 2]) = ([7, 1], [3, 0]);
/// `kernel_size=(1, 3), padding=(0, 1)` and `kernel_size=(3, 1), padding=(1, 0)`.
const K1X3: ([usize; 2], [usize; 2]) = ([1, 3], [0, 1]);
const K3X1: ([usize; 2], [usize; 2]) = ([3, 1], [1, 0]);

/// A chain `prefix_1` (1x1 on the block input), then `prefix_2..` with the given kernels.
fn chain<const N: usize>(
    l: &Loader,
    prefix: &str,
    cin: usize,
    rest: [([usize; 2], [usize; 2]); N],
) -> Result<Vec<BasicConv2d>> {
    let mut out = Vec::with_capacity(N + 1);
    let first = conv1x1(l, &format!("{prefix}_1"), cin)?;
    let mut c = first.out_channels();
    out.push(first);
    for (i, (k, p)) in rest.into_iter().enumerate() {
        let conv = BasicConv2d::load(l, &format!("{prefix}_{}", i + 2), c, k, 1, p)?;
        c = conv.out_channels();
        out.push(conv);
    }
    Ok(out)
}

fn into_array<const N: usize>(v: Vec<BasicConv2d>) -> [BasicConv2d; N] {
    v.try_into()
        .unwrap_or_else(|_| unreachable!("chain returns its length"))
}

impl InceptionC {
    fn load(l: &Loader, cin: usize) -> Result<Self> {
        let branch1x1 = conv1x1(l, "branch1x1", cin)?;
        let branch7x7 = into_array(chain(l, "branch7x7", cin, [K1X7, K7X1])?);
        let branch7x7dbl = into_array(chain(l, "branch7x7dbl", cin, [K7X1, K1X7, K7X1, K1X7])?);
        let branch_pool = conv1x1(l, "branch_pool", cin)?;
        Ok(InceptionC {
            branch1x1,
            branch7x7,
            branch7x7dbl,
            branch_pool,
        })
    }

    fn out_channels(&self) -> usize {
        self.branch1x1.out_channels()
            + self.branch7x7[2].out_channels()
            + self.branch7x7dbl[4].out_channels()
            + self.branch_pool.out_channels()
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let b7 = self.branch7x7.iter().fold(x.clone(), |y, c| c.forward(y));
        let bd = self
            .branch7x7dbl
            .iter()
            .fold(x.clone(), |y, c| c.forward(y));
        let bp = self.branch_pool.forward(avg_pool_3x3_exclude_pad(x));
        Tensor::cat(vec![b1, b7, bd, bp], 1)
    }
}

/// InceptionD (`Mixed_7a`): 1x1, 3x3 s2 | 1x1, 1x7, 7x1, 3x3 s2 | max pool 3 s2.
#[derive(Debug, Clone)]
struct InceptionD {
    branch3x3_1: BasicConv2d,
    branch3x3_2: BasicConv2d,
    branch7x7x3: [BasicConv2d; 4],
    in_channels: usize,
}

impl InceptionD {
    fn load(l: &Loader, cin: usize) -> Result<Self> {
        let branch3x3_1 = conv1x1(l, "branch3x3_1", cin)?;
        let branch3x3_2 = BasicConv2d::load(
            l,
            "branch3x3_2",
            branch3x3_1.out_channels(),
            [3, 3],
            2,
            [0, 0],
        )?;
        let mut b7 = chain(l, "branch7x7x3", cin, [K1X7, K7X1])?;
        let c = b7[2].out_channels();
        b7.push(BasicConv2d::load(l, "branch7x7x3_4", c, [3, 3], 2, [0, 0])?);
        Ok(InceptionD {
            branch3x3_1,
            branch3x3_2,
            branch7x7x3: into_array(b7),
            in_channels: cin,
        })
    }

    fn out_channels(&self) -> usize {
        self.branch3x3_2.out_channels() + self.branch7x7x3[3].out_channels() + self.in_channels
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b3 = self
            .branch3x3_2
            .forward(self.branch3x3_1.forward(x.clone()));
        let b7 = self.branch7x7x3.iter().fold(x.clone(), |y, c| c.forward(y));
        let bp = max_pool_3x3(x, 2, 0);
        Tensor::cat(vec![b3, b7, bp], 1)
    }
}

/// FIDInceptionE_1 / _2 (`Mixed_7b`, `Mixed_7c`): 1x1 | 1x1, (1x3 | 3x1) |
/// 1x1, 3x3, (1x3 | 3x1) | pool, 1x1.
#[derive(Debug, Clone)]
struct InceptionE {
    branch1x1: BasicConv2d,
    branch3x3_1: BasicConv2d,
    branch3x3_2a: BasicConv2d,
    branch3x3_2b: BasicConv2d,
    branch3x3dbl_1: BasicConv2d,
    branch3x3dbl_2: BasicConv2d,
    branch3x3dbl_3a: BasicConv2d,
    branch3x3dbl_3b: BasicConv2d,
    branch_pool: BasicConv2d,
    pool: PoolBranch,
}

impl InceptionE {
    fn load(l: &Loader, cin: usize, pool: PoolBranch) -> Result<Self> {
        let branch1x1 = conv1x1(l, "branch1x1", cin)?;
        let branch3x3_1 = conv1x1(l, "branch3x3_1", cin)?;
        let c = branch3x3_1.out_channels();
        let branch3x3_2a = BasicConv2d::load(l, "branch3x3_2a", c, K1X3.0, 1, K1X3.1)?;
        let branch3x3_2b = BasicConv2d::load(l, "branch3x3_2b", c, K3X1.0, 1, K3X1.1)?;
        let branch3x3dbl_1 = conv1x1(l, "branch3x3dbl_1", cin)?;
        let branch3x3dbl_2 = BasicConv2d::load(
            l,
            "branch3x3dbl_2",
            branch3x3dbl_1.out_channels(),
            [3, 3],
            1,
            [1, 1],
        )?;
        let c = branch3x3dbl_2.out_channels();
        let branch3x3dbl_3a = BasicConv2d::load(l, "branch3x3dbl_3a", c, K1X3.0, 1, K1X3.1)?;
        let branch3x3dbl_3b = BasicConv2d::load(l, "branch3x3dbl_3b", c, K3X1.0, 1, K3X1.1)?;
        let branch_pool = conv1x1(l, "branch_pool", cin)?;
        Ok(InceptionE {
            branch1x1,
            branch3x3_1,
            branch3x3_2a,
            branch3x3_2b,
            branch3x3dbl_1,
            branch3x3dbl_2,
            branch3x3dbl_3a,
            branch3x3dbl_3b,
            branch_pool,
            pool,
        })
    }

    fn out_channels(&self) -> usize {
        self.branch1x1.out_channels()
            + self.branch3x3_2a.out_channels()
            + self.branch3x3_2b.out_channels()
            + self.branch3x3dbl_3a.out_channels()
            + self.branch3x3dbl_3b.out_channels()
            + self.branch_pool.out_channels()
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1x1.forward(x.clone());
        let t = self.branch3x3_1.forward(x.clone());
        let b3a = self.branch3x3_2a.forward(t.clone());
        let b3b = self.branch3x3_2b.forward(t);
        let t = self
            .branch3x3dbl_2
            .forward(self.branch3x3dbl_1.forward(x.clone()));
        let bda = self.branch3x3dbl_3a.forward(t.clone());
        let bdb = self.branch3x3dbl_3b.forward(t);
        let pooled = match self.pool {
            PoolBranch::AvgExcludePad => avg_pool_3x3_exclude_pad(x),
            PoolBranch::Max => max_pool_3x3(x, 1, 1),
        };
        let bp = self.branch_pool.forward(pooled);
        // torch.cat([b1, cat([b3a, b3b]), cat([bda, bdb]), bp]) is this flat order.
        Tensor::cat(vec![b1, b3a, b3b, bda, bdb, bp], 1)
    }
}

/// pytorch-fid's `InceptionV3` with the FID weights (`fid_inception_v3()`), returning pool3
/// features. Widths come from the checkpoint; see the module documentation.
#[derive(Debug, Clone)]
pub struct FidInceptionV3 {
    conv2d_1a: BasicConv2d,
    conv2d_2a: BasicConv2d,
    conv2d_2b: BasicConv2d,
    conv2d_3b: BasicConv2d,
    conv2d_4a: BasicConv2d,
    mixed_5: [InceptionA; 3],
    mixed_6a: InceptionB,
    mixed_6: [InceptionC; 4],
    mixed_7a: InceptionD,
    mixed_7b: InceptionE,
    mixed_7c: InceptionE,
    feature_dim: usize,
    block_channels: [usize; 4],
}

// The metrics share one network across threads.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<FidInceptionV3>();
};

impl FidInceptionV3 {
    /// Opens a checkpoint (`pt_inception-2015-12-05-6726825d.pth`, or safetensors with the
    /// same keys, possibly under one prefix) and loads the network strictly.
    pub fn from_checkpoint(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let ck = Checkpoint::open(path)?;
        Self::from_loaded(&ck, device)
    }

    /// Loads from an opened checkpoint whose keys are `Inception3`'s (`Conv2d_1a_3x3.conv.weight`,
    /// ..., `Mixed_7c.branch_pool.bn.running_var`, `fc.*`), at the root or under one prefix.
    /// Missing or mis-shaped tensors are [`VtonError::MissingWeights`] /
    /// [`VtonError::WeightShape`]; tensors the network does not have (`AuxLogits.*` of
    /// torchvision's ImageNet checkpoint, anything else) are [`VtonError::UnexpectedWeights`].
    pub fn from_loaded(ckpt: &Checkpoint, device: &Device) -> Result<Self> {
        let ck = ckpt.clone().rooted_at(PROBE);
        let l = Loader::new(&ck, device, false);
        let net = Self::load_from(&l)?;
        l.finish(true)?;
        Ok(net)
    }

    fn load_from(l: &Loader) -> Result<Self> {
        let conv2d_1a = BasicConv2d::load(l, "Conv2d_1a_3x3", 3, [3, 3], 2, [0, 0])?;
        let conv2d_2a = BasicConv2d::load(
            l,
            "Conv2d_2a_3x3",
            conv2d_1a.out_channels(),
            [3, 3],
            1,
            [0, 0],
        )?;
        let conv2d_2b = BasicConv2d::load(
            l,
            "Conv2d_2b_3x3",
            conv2d_2a.out_channels(),
            [3, 3],
            1,
            [1, 1],
        )?;
        let block0 = conv2d_2b.out_channels();
        let conv2d_3b = conv1x1(l, "Conv2d_3b_1x1", block0)?;
        let conv2d_4a = BasicConv2d::load(
            l,
            "Conv2d_4a_3x3",
            conv2d_3b.out_channels(),
            [3, 3],
            1,
            [0, 0],
        )?;
        let block1 = conv2d_4a.out_channels();

        let mut c = block1;
        let mut mixed_5 = Vec::with_capacity(3);
        for name in ["Mixed_5b", "Mixed_5c", "Mixed_5d"] {
            let m = InceptionA::load(&l.sub(name), c)?;
            c = m.out_channels();
            mixed_5.push(m);
        }
        let mixed_6a = InceptionB::load(&l.sub("Mixed_6a"), c)?;
        c = mixed_6a.out_channels();
        let mut mixed_6 = Vec::with_capacity(4);
        for name in ["Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"] {
            let m = InceptionC::load(&l.sub(name), c)?;
            c = m.out_channels();
            mixed_6.push(m);
        }
        let block2 = c;
        let mixed_7a = InceptionD::load(&l.sub("Mixed_7a"), c)?;
        let mixed_7b = InceptionE::load(
            &l.sub("Mixed_7b"),
            mixed_7a.out_channels(),
            PoolBranch::AvgExcludePad,
        )?;
        let mixed_7c =
            InceptionE::load(&l.sub("Mixed_7c"), mixed_7b.out_channels(), PoolBranch::Max)?;
        let feature_dim = mixed_7c.out_channels();

        // `fc` (1008 classes) is never applied; it must still fit the features.
        if let Some(shape) = l.shape("fc.weight") {
            if shape.len() != 2 || shape[1] != feature_dim {
                return Err(VtonError::WeightShape {
                    key: l.key("fc.weight"),
                    expected: vec![shape.first().copied().unwrap_or(0), feature_dim],
                    found: shape,
                });
            }
            if let Some(b) = l.shape("fc.bias") {
                if b != [shape[0]] {
                    return Err(VtonError::WeightShape {
                        key: l.key("fc.bias"),
                        expected: vec![shape[0]],
                        found: b,
                    });
                }
            }
            l.ignore("fc.weight");
            l.ignore("fc.bias");
        }

        let mixed_5 = mixed_5
            .try_into()
            .unwrap_or_else(|_| unreachable!("three Mixed_5 blocks"));
        let mixed_6 = mixed_6
            .try_into()
            .unwrap_or_else(|_| unreachable!("four Mixed_6 blocks"));
        Ok(FidInceptionV3 {
            conv2d_1a,
            conv2d_2a,
            conv2d_2b,
            conv2d_3b,
            conv2d_4a,
            mixed_5,
            mixed_6a,
            mixed_6,
            mixed_7a,
            mixed_7b,
            mixed_7c,
            feature_dim,
            block_channels: [block0, block1, block2, feature_dim],
        })
    }

    /// Width of the pool3 features: 2048 for the real weights.
    pub fn feature_dim(&self) -> usize {
        self.feature_dim
    }

    /// Channels of the outputs of blocks 0..=3 (64, 192, 768, 2048 for the real weights).
    pub fn block_channels(&self) -> [usize; 4] {
        self.block_channels
    }

    /// Checks an input batch: `[N, 3, H, W]` with N, H, W > 0.
    fn check_input(images: &Tensor<4>) -> Result<()> {
        check_channels("FID Inception input", images, 3)
    }

    /// The input block 0 receives: the images (`[N, 3, H, W]`, values in `[0, 1]`) resized to
    /// 299x299 (bilinear, `align_corners=False`, no antialiasing) and mapped to `[-1, 1]`.
    pub fn preprocess(&self, images: Tensor<4>) -> Result<Tensor<4>> {
        Self::check_input(&images)?;
        Ok(Self::preprocess_unchecked(images))
    }

    fn preprocess_unchecked(images: Tensor<4>) -> Tensor<4> {
        resize_bilinear_torch(images, INPUT_SIZE, INPUT_SIZE)
            .mul_scalar(2.0)
            .sub_scalar(1.0)
    }

    fn block0(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv2d_1a.forward(x);
        let x = self.conv2d_2a.forward(x);
        let x = self.conv2d_2b.forward(x);
        max_pool_3x3(x, 2, 0)
    }

    fn block1(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv2d_3b.forward(x);
        let x = self.conv2d_4a.forward(x);
        max_pool_3x3(x, 2, 0)
    }

    fn block2(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.mixed_5.iter().fold(x, |x, m| m.forward(x));
        let x = self.mixed_6a.forward(x);
        self.mixed_6.iter().fold(x, |x, m| m.forward(x))
    }

    fn block3(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.mixed_7a.forward(x);
        let x = self.mixed_7b.forward(x);
        let x = self.mixed_7c.forward(x);
        adaptive_avg_pool2d(x, [1, 1])
    }

    /// The outputs of blocks 0..=3 for images `[N, 3, H, W]` in `[0, 1]` (preprocessed as in
    /// [`FidInceptionV3::preprocess`]): block 0 ends after the first max pool
    /// (`N x 64 x 73 x 73` at full width), block 1 after the second (`N x 192 x 35 x 35`),
    /// block 2 after `Mixed_6e` (`N x 768 x 17 x 17`), block 3 is pool3 (`N x 2048 x 1 x 1`).
    pub fn blocks(&self, images: Tensor<4>) -> Result<Vec<Tensor<4>>> {
        let x = self.preprocess(images)?;
        let b0 = self.block0(x);
        let b1 = self.block1(b0.clone());
        let b2 = self.block2(b1.clone());
        let b3 = self.block3(b2.clone());
        Ok(vec![b0, b1, b2, b3])
    }

    /// Pool3 features `[N, feature_dim]` of images `[N, 3, H, W]` with values in `[0, 1]`
    /// (any H, W: resized to 299x299 inside, as pytorch-fid does). Large batches run in chunks
    /// of 32 images; every image's features are independent of the others.
    pub fn features(&self, images: Tensor<4>) -> Result<Tensor<2>> {
        Self::check_input(&images)?;
        let n = images.dims()[0];
        let run = |x: Tensor<4>| {
            let b = x.dims()[0];
            let x = Self::preprocess_unchecked(x);
            let x = self.block3(self.block2(self.block1(self.block0(x))));
            x.reshape([b, self.feature_dim])
        };
        if n <= FEATURE_CHUNK {
            return Ok(run(images));
        }
        let parts: Vec<Tensor<2>> = (0..n)
            .step_by(FEATURE_CHUNK)
            .map(|s| run(images.clone().narrow(0, s, FEATURE_CHUNK.min(n - s))))
            .collect();
        Ok(Tensor::cat(parts, 0))
    }
}
