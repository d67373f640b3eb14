//! TFLite operators on burn tensors.
//!
//! Layout: a value whose TFLite shape has rank 4 (NHWC) is stored NCHW, the layout
//! burn's convolutions and pools take; lower ranks are stored in their own order,
//! padded on the left with ones to rank 4. [`to_logical`] / [`from_logical`] move
//! between the two where an operator needs the TFLite element order (RESHAPE, MEAN).
//!
//! Supported: ADD, SUB, MUL, DIV, AVERAGE_POOL_2D, MAX_POOL_2D, CONCATENATION, CONV_2D,
//! DEPTHWISE_CONV_2D, DEPTH_TO_SPACE, LOGISTIC, RELU, RELU6, RELU_N1_TO_1, TANH,
//! HARD_SWISH, PAD, RESHAPE, RESIZE_BILINEAR, MEAN, and MediaPipe's custom
//! `Convolution2DTransposeBias`; DEQUANTIZE and DENSIFY of constants are folded at load.

use burn::tensor::module::{avg_pool2d, conv2d, conv_transpose2d, max_pool2d};
use burn::tensor::ops::{
    AvgPoolOptions, ConvOptions, ConvTransposeOptions, MaxPoolOptions, PadMode,
};
use burn::tensor::Tensor;

/// A fused activation (`ActivationFunctionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    None,
    Relu,
    ReluN1To1,
    Relu6,
    Tanh,
}

impl Act {
    pub(crate) fn apply(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Act::None => x,
            Act::Relu => burn::tensor::activation::relu(x),
            Act::ReluN1To1 => x.clamp(-1.0, 1.0),
            Act::Relu6 => x.clamp(0.0, 6.0),
            Act::Tanh => x.tanh(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnaryOp {
    Logistic,
    Relu,
    Relu6,
    ReluN1To1,
    Tanh,
    HardSwish,
}

/// An operand: a graph value (by tensor index) or a constant already on the device,
/// in the stored layout of the operator's output rank.
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Value { id: usize, rank: usize },
    Const(Tensor<4>),
}

#[derive(Debug, Clone)]
pub(crate) enum Kernel {
    Conv {
        x: usize,
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        options: ConvOptions<2>,
        act: Act,
    },
    TransposeConv {
        x: usize,
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        stride: [usize; 2],
        /// Rows/cols cropped at the top/left of the full transposed output.
        crop: [usize; 2],
        out_hw: [usize; 2],
    },
    Binary {
        a: Operand,
        b: Operand,
        op: BinOp,
        act: Act,
        /// Whether the output is rank 4 (operands of lower rank are lifted to NCHW).
        out_rank4: bool,
    },
    Pad {
        x: usize,
        /// Physical (stored-layout) padding per axis.
        pads: [(usize, usize); 4],
        value: f32,
    },
    Pool {
        x: usize,
        max: bool,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [(usize, usize); 2],
        act: Act,
    },
    Reshape {
        x: usize,
        in_rank: usize,
        out_shape: Vec<usize>,
    },
    Concat {
        xs: Vec<Operand>,
        axis: usize,
        act: Act,
    },
    Resize {
        x: usize,
        /// `[in, out]` interpolation matrices (transposed), rows then columns.
        ry_t: Tensor<2>,
        rx_t: Tensor<2>,
    },
    DepthToSpace {
        x: usize,
        block: usize,
    },
    Unary {
        x: usize,
        op: UnaryOp,
    },
    Mean {
        x: usize,
        in_rank: usize,
        /// Logical axes reduced.
        axes: Vec<usize>,
        out_shape: Vec<usize>,
    },
}

/// Physical axis of logical axis `axis` of a rank-`rank` tensor.
pub(crate) fn physical_axis(axis: usize, rank: usize) -> usize {
    if rank == 4 {
        [0, 2, 3, 1][axis.min(3)]
    } else {
        axis + (4 - rank)
    }
}

/// A stored value in TFLite element order (NHWC for rank 4), padded to rank 4.
pub(crate) fn to_logical(x: Tensor<4>, rank: usize) -> Tensor<4> {
    if rank == 4 {
        x.permute([0, 2, 3, 1])
    } else {
        x
    }
}

/// Inverse of [`to_logical`].
pub(crate) fn from_logical(x: Tensor<4>, rank: usize) -> Tensor<4> {
    if rank == 4 {
        x.permute([0, 3, 1, 2])
    } else {
        x
    }
}

/// Lifts a stored value of rank < 4 to the NCHW layout of a rank-4 value it is
/// broadcast against (TFLite aligns shapes on the right: the last axis is channels).
pub(crate) fn lift_to_rank4(x: Tensor<4>, rank: usize) -> Tensor<4> {
    if rank == 4 {
        x
    } else {
        x.permute([0, 3, 1, 2])
    }
}

impl UnaryOp {
    pub(crate) fn apply(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            UnaryOp::Logistic => burn::tensor::activation::sigmoid(x),
            UnaryOp::Relu => burn::tensor::activation::relu(x),
            UnaryOp::Relu6 => x.clamp(0.0, 6.0),
            UnaryOp::ReluN1To1 => x.clamp(-1.0, 1.0),
            UnaryOp::Tanh => x.tanh(),
            // TFLite reference: x * min(6, max(0, x + 3)) / 6.
            UnaryOp::HardSwish => {
                let gate = x.clone().add_scalar(3.0).clamp(0.0, 6.0);
                x.mul(gate).div_scalar(6.0)
            }
        }
    }
}

pub(crate) fn binary(a: Tensor<4>, b: Tensor<4>, op: BinOp) -> Tensor<4> {
    match op {
        BinOp::Add => a.add(b),
        BinOp::Sub => a.sub(b),
        BinOp::Mul => a.mul(b),
        BinOp::Div => a.div(b),
    }
}

pub(crate) fn pad(x: Tensor<4>, pads: [(usize, usize); 4], value: f32) -> Tensor<4> {
    if pads.iter().all(|&(a, b)| a == 0 && b == 0) {
        return x;
    }
    x.pad(pads, PadMode::Constant(value))
}

pub(crate) fn conv(
    x: Tensor<4>,
    weight: &Tensor<4>,
    bias: &Option<Tensor<1>>,
    options: &ConvOptions<2>,
) -> Tensor<4> {
    // Explicit zero padding first: asymmetric SAME padding is common in TFLite.
    let [(t, b), (l, r)] = options.padding;
    let x = pad(x, [(0, 0), (0, 0), (t, b), (l, r)], 0.0);
    let opts = ConvOptions::new(options.stride, [0, 0], options.dilation, options.groups);
    conv2d(x, weight.clone(), bias.clone(), opts)
}

pub(crate) fn transpose_conv(
    x: Tensor<4>,
    weight: &Tensor<4>,
    bias: &Option<Tensor<1>>,
    stride: [usize; 2],
    crop: [usize; 2],
    out_hw: [usize; 2],
) -> Tensor<4> {
    let opts = ConvTransposeOptions::new(stride, [0, 0], [0, 0], [1, 1], 1);
    let full = conv_transpose2d(x, weight.clone(), bias.clone(), opts);
    let [n, c, h, w] = full.dims();
    if crop == [0, 0] && out_hw == [h, w] {
        return full;
    }
    full.slice([
        0..n,
        0..c,
        crop[0]..crop[0] + out_hw[0],
        crop[1]..crop[1] + out_hw[1],
    ])
}

pub(crate) fn pool(
    x: Tensor<4>,
    max: bool,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [(usize, usize); 2],
) -> Tensor<4> {
    let [(t, b), (l, r)] = padding;
    let padded = t + b + l + r > 0;
    if max {
        let x = pad(x, [(0, 0), (0, 0), (t, b), (l, r)], f32::NEG_INFINITY);
        return max_pool2d(x, MaxPoolOptions::new(kernel).with_stride(stride));
    }
    let opts = AvgPoolOptions::new(kernel)
        .with_stride(stride)
        .with_count_include_pad(true);
    if !padded {
        return avg_pool2d(x, opts);
    }
    // TFLite averages over the window's in-bounds elements only: sum / count.
    let ones = x.ones_like();
    let sum = avg_pool2d(pad(x, [(0, 0), (0, 0), (t, b), (l, r)], 0.0), opts.clone());
    let count = avg_pool2d(pad(ones, [(0, 0), (0, 0), (t, b), (l, r)], 0.0), opts);
    sum.div(count)
}

/// Separable interpolation: `x` NCHW times `rx_t` `[W, Wo]` on columns and `ry_t`
/// `[H, Ho]` on rows, with 2-D matmuls only.
pub(crate) fn resize(x: Tensor<4>, ry_t: &Tensor<2>, rx_t: &Tensor<2>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let [_, wo] = rx_t.dims();
    let [_, ho] = ry_t.dims();
    let cols = x.reshape([n * c * h, w]).matmul(rx_t.clone());
    let t = cols.reshape([n, c, h, wo]).swap_dims(2, 3);
    let rows = t.reshape([n * c * wo, h]).matmul(ry_t.clone());
    rows.reshape([n, c, wo, ho]).swap_dims(2, 3)
}

/// `RESIZE_BILINEAR` weights as a `[in, out]` matrix (TFLite's reference kernel:
/// `ComputeInterpolationValues`, optional half-pixel centres and aligned corners).
pub(crate) fn bilinear_matrix(
    input: usize,
    output: usize,
    align_corners: bool,
    half_pixel_centers: bool,
) -> Vec<f32> {
    let scale = if align_corners && output > 1 {
        (input as f32 - 1.0) / (output as f32 - 1.0)
    } else {
        input as f32 / output as f32
    };
    let mut m = vec![0f32; input * output];
    for o in 0..output {
        let v = if half_pixel_centers {
            (o as f32 + 0.5) * scale - 0.5
        } else {
            o as f32 * scale
        };
        let floor = v.floor();
        let lower = (floor.max(0.0) as usize).min(input - 1);
        let upper = (v.ceil().max(0.0) as usize).min(input - 1);
        let frac = v - floor;
        m[lower * output + o] += 1.0 - frac;
        m[upper * output + o] += frac;
    }
    m
}

pub(crate) fn depth_to_space(x: Tensor<4>, block: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let co = c / (block * block);
    // Channel index (i * b + j) * co + k -> out[k, h * b + i, w * b + j].
    let t: Tensor<6> = x.reshape([n, block, block, co, h, w]);
    t.permute([0, 3, 4, 1, 5, 2])
        .reshape([n, co, h * block, w * block])
}

pub(crate) fn mean(x: Tensor<4>, in_rank: usize, axes: &[usize], out_shape: &[usize]) -> Tensor<4> {
    let mut t = to_logical(x, in_rank);
    let off = 4 - in_rank;
    for &a in axes {
        t = t.mean_dim(a + off);
    }
    from_logical(t.reshape(physical_order(out_shape)), out_shape.len())
}

/// A logical shape padded to rank 4 (TFLite element order).
pub(crate) fn physical_order(shape: &[usize]) -> [usize; 4] {
    let mut d = [1usize; 4];
    let off = 4 - shape.len().min(4);
    for (i, &v) in shape.iter().take(4).enumerate() {
        d[off + i] = v;
    }
    d
}
