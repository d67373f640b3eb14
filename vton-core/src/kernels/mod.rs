//! vton's own kernels for the operators where burn's CPU backend is slow, plugged into burn
//! as a backend extension (`#[backend_extension(Flex)]`), so model code calls one function
//! and never sees a backend type.
//!
//! Routing: the kernels run on a plain flex device with float32 tensors. On every other
//! device (wgpu, cuda, and `device.autodiff()`, which the trainers use and which needs
//! burn's differentiable ops) and for other dtypes the same function composes burn's own
//! operators, so results agree everywhere up to rounding. `VTON_KERNELS=burn` in the
//! environment (or [`set_enabled`]`(false)`) makes flex use burn's operators too: the
//! "before" side of `docs/benchmarks.md`'s op table, and a switch for bisecting.

pub mod attention;
pub mod conv;
pub mod cpu;
pub mod winograd;

use std::sync::atomic::{AtomicU8, Ordering};

use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{backend_extension, DispatchDevice, Flex};
use burn::nn::GroupNorm;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Tensor, TensorData};

/// The operators vton implements itself. Shapes are checked by the callers in this module.
#[backend_extension(Flex)]
pub trait VtonKernels: burn::backend::Backend {
    /// GroupNorm over `(B, C, ...)` with per-channel `gamma` / `beta`, then SiLU if `silu`.
    fn group_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> FloatTensor<Self>;
    /// `x * sigmoid(x)`.
    fn silu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Nearest upsampling of `(B, C, H, W)` by integer factors.
    fn upsample_nearest(x: FloatTensor<Self>, fh: usize, fw: usize) -> FloatTensor<Self>;
    /// Bilinear resize of `(B, C, H, W)` to `(oh, ow)`, PyTorch's `align_corners=False`.
    fn resize_bilinear(x: FloatTensor<Self>, oh: usize, ow: usize) -> FloatTensor<Self>;
    /// `softmax(scale q k^T) v` over `(B, H, N, D)` queries, `(B, H, M, D)` keys and
    /// `(B, H, M, Dv)` values, without a mask.
    fn attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self>;
    /// Convolution (one group) plus `bias` as patch-matrix products; `geometry` is
    /// `[stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_bottom, pad_left,
    /// pad_right]`.
    fn conv2d_gemm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        geometry: [usize; 8],
    ) -> FloatTensor<Self>;
    /// `grid_sample` of `(N, C, H, W)` at `grid` `(N, Ho, Wo, 2)`: burn's own per-pixel
    /// arithmetic, over blocks of output rows in parallel (burn's runs on one thread).
    /// `mode` 0 bilinear, 1 nearest; `padding` 0 zeros, 1 border, 2 reflection.
    fn grid_sample(
        x: FloatTensor<Self>,
        grid: FloatTensor<Self>,
        mode: usize,
        padding: usize,
        align_corners: bool,
    ) -> FloatTensor<Self>;
    /// 3x3 convolution plus `bias` (`[cout]`), stride 1, `pad` zeros on every side
    /// (Winograd F(2x2, 3x3)).
    fn conv3x3(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        pad: usize,
    ) -> FloatTensor<Self>;
}

/// `Ok` for a contiguous, offset-free tensor this call owns alone, so a kernel may write
/// into it; `Err` gives it back otherwise.
fn owned(x: FlexTensor) -> Result<FlexTensor, FlexTensor> {
    let whole = x.layout().contiguous_offsets() == Some((0, x.layout().num_elements()))
        && x.bytes().len() == x.layout().num_elements() * 4;
    if whole && x.is_unique() {
        Ok(x)
    } else {
        Err(x)
    }
}

fn values(x: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match x.as_slice::<f32>() {
        Some(s) => s.into(),
        None => x.to_contiguous().storage::<f32>().to_vec().into(),
    }
}

/// A weight's values as float32: float32 storage as it is, f16 / bf16 widened (the
/// half-precision weights of [`crate::weights::WeightDtype`]).
fn widened(x: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    fn wide<E: burn::tensor::Element + bytemuck::Pod>(
        x: &FlexTensor,
        f: impl Fn(E) -> f32 + Sync,
    ) -> Vec<f32> {
        use rayon::prelude::*;
        match x.as_slice::<E>() {
            Some(s) => s.par_iter().map(|&v| f(v)).collect(),
            None => x
                .to_contiguous()
                .storage::<E>()
                .par_iter()
                .map(|&v| f(v))
                .collect(),
        }
    }
    match x.dtype() {
        DType::F16 => wide::<half::f16>(x, |v| v.to_f32()).into(),
        DType::BF16 => wide::<half::bf16>(x, |v| v.to_f32()).into(),
        _ => values(x),
    }
}

fn flex_from(v: Vec<f32>, shape: burn::tensor::Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape))
}

/// An uninitialised-free output buffer: zeroed allocation (the OS maps zero pages lazily),
/// written in full by the kernels.
fn out_buf(n: usize) -> Vec<f32> {
    vec![0f32; n]
}

impl VtonKernels for Flex {
    fn group_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> FlexTensor {
        let shape = x.layout().shape().clone();
        let dims = shape.to_vec();
        let s = cpu::GroupNormShape {
            batch: dims[0],
            channels: dims[1],
            spatial: dims[2..].iter().product(),
            groups,
        };
        let (g, b) = (values(&gamma), values(&beta));
        match owned(x) {
            Ok(mut x) => {
                cpu::group_norm_inplace(x.storage_mut::<f32>(), s, &g, &b, eps, silu);
                x
            }
            Err(x) => {
                let mut out = out_buf(shape.num_elements());
                cpu::group_norm(&values(&x), &mut out, s, &g, &b, eps, silu);
                flex_from(out, shape)
            }
        }
    }

    fn silu(x: FlexTensor) -> FlexTensor {
        let shape = x.layout().shape().clone();
        match owned(x) {
            Ok(mut x) => {
                cpu::silu_inplace(x.storage_mut::<f32>());
                x
            }
            Err(x) => {
                let mut out = out_buf(shape.num_elements());
                cpu::silu(&values(&x), &mut out);
                flex_from(out, shape)
            }
        }
    }

    fn upsample_nearest(x: FlexTensor, fh: usize, fw: usize) -> FlexTensor {
        let d = x.layout().shape().to_vec();
        let (b, c, h, w) = (d[0], d[1], d[2], d[3]);
        let mut out = out_buf(b * c * h * fh * w * fw);
        cpu::upsample_nearest(&values(&x), &mut out, h, w, fh, fw);
        flex_from(out, [b, c, h * fh, w * fw].into())
    }

    fn resize_bilinear(x: FlexTensor, oh: usize, ow: usize) -> FlexTensor {
        let d = x.layout().shape().to_vec();
        let (b, c, h, w) = (d[0], d[1], d[2], d[3]);
        let mut out = out_buf(b * c * oh * ow);
        cpu::resize_bilinear(&values(&x), &mut out, h, w, oh, ow);
        flex_from(out, [b, c, oh, ow].into())
    }

    fn grid_sample(
        x: FlexTensor,
        grid: FlexTensor,
        mode: usize,
        padding: usize,
        align_corners: bool,
    ) -> FlexTensor {
        use burn::backend::flex::ops::grid_sample::grid_sample_2d;
        use rayon::prelude::*;
        let options = grid_sample_options(mode, padding, align_corners);
        let gd = grid.layout().shape().to_vec();
        let (n, ho, wo) = (gd[0], gd[1], gd[2]);
        let c = x.layout().shape()[1];
        // A few row blocks per thread; small outputs stay in one call.
        let rows = ho.div_ceil(4 * rayon::current_num_threads()).max(1);
        if rows >= ho || n * c * ho * wo < 1 << 15 {
            return grid_sample_2d(x, grid, options);
        }
        let g = values(&grid);
        let starts: Vec<usize> = (0..ho).step_by(rows).collect();
        let blocks: Vec<(usize, usize, Vec<f32>)> = starts
            .into_par_iter()
            .map(|r0| {
                let r = rows.min(ho - r0);
                let mut gb = Vec::with_capacity(n * r * wo * 2);
                for b in 0..n {
                    gb.extend_from_slice(&g[(b * ho + r0) * wo * 2..(b * ho + r0 + r) * wo * 2]);
                }
                let block = flex_from(gb, [n, r, wo, 2].into());
                let out = grid_sample_2d(x.clone(), block, options.clone());
                (r0, r, values(&out).into_owned())
            })
            .collect();
        let mut out = out_buf(n * c * ho * wo);
        for (r0, r, v) in blocks {
            for bc in 0..n * c {
                out[(bc * ho + r0) * wo..(bc * ho + r0 + r) * wo]
                    .copy_from_slice(&v[bc * r * wo..(bc + 1) * r * wo]);
            }
        }
        flex_from(out, [n, c, ho, wo].into())
    }

    fn attention(q: FlexTensor, k: FlexTensor, v: FlexTensor, scale: f64) -> FlexTensor {
        let (qd, kd, vd) = (
            q.layout().shape().to_vec(),
            k.layout().shape().to_vec(),
            v.layout().shape().to_vec(),
        );
        let s = attention::AttentionShape {
            batch: qd[0],
            heads: qd[1],
            n: qd[2],
            m: kd[2],
            d: qd[3],
            dv: vd[3],
        };
        let mut out = out_buf(s.batch * s.heads * s.n * s.dv);
        attention::attention(
            &values(&q),
            &values(&k),
            &values(&v),
            s,
            scale as f32,
            &mut out,
        );
        flex_from(out, [s.batch, s.heads, s.n, s.dv].into())
    }

    fn conv2d_gemm(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        geometry: [usize; 8],
    ) -> FlexTensor {
        let (d, wd) = (
            x.layout().shape().to_vec(),
            weight.layout().shape().to_vec(),
        );
        let g = geometry;
        let s = conv::ConvShape {
            batch: d[0],
            cin: d[1],
            h: d[2],
            w: d[3],
            cout: wd[0],
            kh: wd[2],
            kw: wd[3],
            stride: [g[0], g[1]],
            dilation: [g[2], g[3]],
            pad: [g[4], g[5], g[6], g[7]],
        };
        let (oh, ow) = s.out_hw().expect("checked by kernels::conv2d");
        let mut out = out_buf(s.batch * s.cout * oh * ow);
        conv::conv2d(
            &values(&x),
            &widened(&weight),
            Some(&values(&bias)),
            s,
            &mut out,
        );
        flex_from(out, [s.batch, s.cout, oh, ow].into())
    }

    fn conv3x3(x: FlexTensor, weight: FlexTensor, bias: FlexTensor, pad: usize) -> FlexTensor {
        let d = x.layout().shape().to_vec();
        let cout = weight.layout().shape()[0];
        let s = winograd::Conv3x3 {
            batch: d[0],
            cin: d[1],
            cout,
            h: d[2],
            w: d[3],
            pad,
        };
        let u = winograd::transform_weights(&widened(&weight), cout, s.cin);
        let (oh, ow) = s.out_hw();
        let mut out = out_buf(s.batch * cout * oh * ow);
        winograd::conv3x3(&values(&x), &u, Some(&values(&bias)), s, &mut out);
        flex_from(out, [s.batch, cout, oh, ow].into())
    }
}

static MODE: AtomicU8 = AtomicU8::new(0); // 0: unread, 1: vton's kernels, 2: burn's ops

/// Whether vton's kernels are used on flex (default: yes, unless `VTON_KERNELS=burn`).
pub fn enabled() -> bool {
    match MODE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let on = !matches!(std::env::var("VTON_KERNELS").as_deref(), Ok("burn"));
            MODE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
            on
        }
    }
}

/// Turns vton's kernels on or off for the whole process (benchmarks, bisecting).
pub fn set_enabled(on: bool) {
    MODE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// True where vton's kernels may take this operand: a plain (not autodiff) flex tensor of
/// float32 values. Every tensor operand of a call is checked.
pub fn routed<const D: usize>(x: &Tensor<D>) -> bool {
    enabled()
        && x.dtype() == DType::F32
        && matches!(x.device().as_dispatch(), DispatchDevice::Flex(_))
}

/// [`routed`] for a layer weight, which may also be kept as f16 / bf16 (the kernels
/// widen it to float32 as they read it).
pub fn routed_weight<const D: usize>(w: &Tensor<D>) -> bool {
    enabled()
        && matches!(w.dtype(), DType::F32 | DType::F16 | DType::BF16)
        && matches!(w.device().as_dispatch(), DispatchDevice::Flex(_))
}

/// `norm(x)` followed by SiLU when `silu`, as one pass over the activation on flex.
/// The module's own fields decide everything (groups, eps, affine).
pub fn group_norm<const D: usize>(norm: &GroupNorm, x: Tensor<D>, silu: bool) -> Tensor<D> {
    let affine = match (&norm.gamma, &norm.beta) {
        (Some(g), Some(b)) if norm.affine => Some((g.val(), b.val())),
        _ => None,
    };
    let fits = D >= 3
        && x.dims()[1] == norm.num_channels
        && norm.num_groups > 0
        && norm.num_channels % norm.num_groups == 0;
    match affine {
        Some((g, b)) if fits && routed(&x) && routed(&g) && routed(&b) => {
            Tensor::from_dispatch(<burn::backend::Dispatch as VtonKernels>::group_norm(
                x.into_dispatch(),
                g.into_dispatch(),
                b.into_dispatch(),
                norm.num_groups,
                norm.epsilon,
                silu,
            ))
        }
        _ => {
            let y = norm.forward(x);
            if silu {
                burn::tensor::activation::silu(y)
            } else {
                y
            }
        }
    }
}

/// SiLU (`x * sigmoid(x)`).
pub fn silu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if routed(&x) {
        Tensor::from_dispatch(<burn::backend::Dispatch as VtonKernels>::silu(
            x.into_dispatch(),
        ))
    } else {
        burn::tensor::activation::silu(x)
    }
}

/// burn's `conv2d(x, weight, bias, options)`, through vton's Winograd kernel where it
/// applies and pays: flex, float32, 3x3, stride 1, no dilation, one group, the same
/// padding on all four sides, at least 16 input and output channels and 64 output tiles
/// (2x2 each); burn's own convolution otherwise.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    // Every operand must be a plain flex tensor: a trainer's input batch is, while its
    // weights are autodiff parameters (burn's differentiable convolution then runs).
    let bias_fits = bias
        .as_ref()
        .is_none_or(|b| b.dims()[0] == weight.dims()[0] && routed(b));
    if bias_fits && winograd_applies(&x, &weight, &options) {
        let pad = options.padding[0].0;
        let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[0]], &x.device()));
        Tensor::from_dispatch(<burn::backend::Dispatch as VtonKernels>::conv3x3(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            pad,
        ))
    } else if bias_fits && gemm_applies(&x, &weight, &options) {
        let p = options.padding;
        let geometry = [
            options.stride[0],
            options.stride[1],
            options.dilation[0],
            options.dilation[1],
            p[0].0,
            p[0].1,
            p[1].0,
            p[1].1,
        ];
        let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[0]], &x.device()));
        Tensor::from_dispatch(<burn::backend::Dispatch as VtonKernels>::conv2d_gemm(
            x.into_dispatch(),
            weight.into_dispatch(),
            bias.into_dispatch(),
            geometry,
        ))
    } else {
        let dtype = x.dtype();
        let weight = crate::nn::widen(weight, dtype);
        let bias = bias.map(|b| crate::nn::widen(b, dtype));
        burn::tensor::module::conv2d(x, weight, bias, options)
    }
}

/// Whether [`conv2d`] takes vton's patch-matrix kernel: flex, float32, one group, a
/// kernel that fits the padded input, nonzero strides and dilations.
pub fn gemm_applies(x: &Tensor<4>, weight: &Tensor<4>, options: &ConvOptions<2>) -> bool {
    let [batch, cin, h, w] = x.dims();
    let [cout, wcin, kh, kw] = weight.dims();
    let p = options.padding;
    let s = conv::ConvShape {
        batch,
        cin,
        h,
        w,
        cout,
        kh,
        kw,
        stride: options.stride,
        dilation: options.dilation,
        pad: [p[0].0, p[0].1, p[1].0, p[1].1],
    };
    options.groups == 1
        && wcin == cin
        && kh > 0
        && kw > 0
        && options.dilation.iter().all(|&d| d > 0)
        && s.out_hw().is_some_and(|(oh, ow)| oh > 0 && ow > 0)
        && routed(x)
        && routed_weight(weight)
}

/// Whether [`conv2d`] takes vton's Winograd kernel for these operands (see there).
pub fn winograd_applies(x: &Tensor<4>, weight: &Tensor<4>, options: &ConvOptions<2>) -> bool {
    let [_, cin, h, w] = x.dims();
    let [cout, wcin, kh, kw] = weight.dims();
    let p = options.padding;
    let pad = p[0].0;
    kh == 3
        && kw == 3
        && wcin == cin
        && options.stride == [1, 1]
        && options.dilation == [1, 1]
        && options.groups == 1
        && p[0] == (pad, pad)
        && p[1] == (pad, pad)
        && cin >= 16
        && cout >= 16
        && h + 2 * pad >= 3
        && w + 2 * pad >= 3
        && (h + 2 * pad - 2).div_ceil(2) * (w + 2 * pad - 2).div_ceil(2) >= 64
        && routed(x)
        && routed_weight(weight)
}

/// `softmax(scale q k^T) v` (no mask) over `(B, H, N, D)` / `(B, H, M, D)` /
/// `(B, H, M, Dv)`: vton's blocked kernel on flex, burn's `attention` elsewhere.
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, scale: f64) -> Tensor<4> {
    let ([b, h, _, d], [kb, kh, m, kd], [vb, vh, vm, _]) = (q.dims(), k.dims(), v.dims());
    let fits = (kb, kh, kd) == (b, h, d) && (vb, vh, vm) == (b, h, m) && m > 0;
    if fits && routed(&q) && routed(&k) && routed(&v) {
        Tensor::from_dispatch(<burn::backend::Dispatch as VtonKernels>::attention(
            q.into_dispatch(),
            k.into_dispatch(),
            v.into_dispatch(),
            scale,
        ))
    } else {
        burn::tensor::module::attention(
            q,
            k,
            v,
            None,
            None,
            burn::tensor::ops::AttentionModuleOptions {
                scale: Some(scale),
                softcap: None,
                is_causal: false,
            },
        )
    }
}

/// Bilinear resize of `(B, C, H, W)` to `(h, w)` with `align_corners=False` on flex;
/// `Err(x)` gives the input back elsewhere (the caller uses burn's `interpolate`).
pub fn resize_bilinear(x: Tensor<4>, h: usize, w: usize) -> Result<Tensor<4>, Tensor<4>> {
    let [_, _, ih, iw] = x.dims();
    if h > 0 && w > 0 && ih > 0 && iw > 0 && routed(&x) {
        Ok(Tensor::from_dispatch(
            <burn::backend::Dispatch as VtonKernels>::resize_bilinear(x.into_dispatch(), h, w),
        ))
    } else {
        Err(x)
    }
}

fn grid_sample_options(
    mode: usize,
    padding: usize,
    align_corners: bool,
) -> burn::tensor::ops::GridSampleOptions {
    use burn::tensor::ops::{GridSampleOptions, GridSamplePaddingMode, InterpolateMode};
    let mode = if mode == 1 {
        InterpolateMode::Nearest
    } else {
        InterpolateMode::Bilinear
    };
    let padding = match padding {
        1 => GridSamplePaddingMode::Border,
        2 => GridSamplePaddingMode::Reflection,
        _ => GridSamplePaddingMode::Zeros,
    };
    GridSampleOptions::new(mode)
        .with_padding_mode(padding)
        .with_align_corners(align_corners)
}

/// `grid_sample` (burn's arithmetic, output rows in parallel) of `x` `(N, C, H, W)` at
/// `grid` `(N, Ho, Wo, 2)` with the options coded as in [`VtonKernels::grid_sample`];
/// `Err` gives both back where vton's kernel does not run (the caller uses burn's op).
/// Shapes are checked by the caller (`warp::grid_sample`).
pub fn grid_sample(
    x: Tensor<4>,
    grid: Tensor<4>,
    mode: usize,
    padding: usize,
    align_corners: bool,
) -> Result<Tensor<4>, (Tensor<4>, Tensor<4>)> {
    if routed(&x) && routed(&grid) {
        Ok(Tensor::from_dispatch(
            <burn::backend::Dispatch as VtonKernels>::grid_sample(
                x.into_dispatch(),
                grid.into_dispatch(),
                mode,
                padding,
                align_corners,
            ),
        ))
    } else {
        Err((x, grid))
    }
}

/// Nearest upsampling of `(B, C, H, W)` by whole factors `(fh, fw)` (both at least 1);
/// `Err(x)` gives the input back where vton's kernel does not run (the caller then uses
/// burn's ops).
pub fn upsample_nearest(x: Tensor<4>, fh: usize, fw: usize) -> Result<Tensor<4>, Tensor<4>> {
    if fh >= 1 && fw >= 1 && routed(&x) {
        Ok(Tensor::from_dispatch(
            <burn::backend::Dispatch as VtonKernels>::upsample_nearest(x.into_dispatch(), fh, fw),
        ))
    } else {
        Err(x)
    }
}
