//! vton's own kernels (`vton_core::kernels`) against burn's operators on the same inputs,
//! and against a float64 reference for the convolution. The model parity tests
//! (diffusion_models, gan_models, ...) then check the kernels inside whole networks
//! against PyTorch.
//!
//! Tolerances: float32 everywhere. GroupNorm and SiLU compute the same formula as burn in
//! another order (statistics summed in 16 lanes and float64 blocks, `exp` from vton's
//! polynomial, within a few ulp): 2e-6 absolute on unit-scale values. Winograd
//! F(2x2, 3x3) sums the same products after exact-in-binary transforms (±1, ±1/2); its
//! error against float64 is held to at most 3x burn's direct convolution's own error plus
//! 1e-6 relative to the output scale.

use burn::module::Param;
use burn::nn::{GroupNorm, GroupNormConfig};
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use vton_core::kernels;

fn dev() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

fn rand<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
    vton_core::rng::randn(shape, seed, &dev())
}

fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Direct 3x3 convolution in float64 (the reference both float32 results are measured
/// against).
fn conv_f64(
    x: &[f32],
    xs: [usize; 4],
    w: &[f32],
    cout: usize,
    bias: &[f32],
    pad: usize,
) -> Vec<f64> {
    let [b, cin, h, wd] = xs;
    let (oh, ow) = (h + 2 * pad - 2, wd + 2 * pad - 2);
    let mut out = vec![0f64; b * cout * oh * ow];
    for n in 0..b {
        for co in 0..cout {
            for y in 0..oh {
                for xo in 0..ow {
                    let mut acc = bias[co] as f64;
                    for ci in 0..cin {
                        for ky in 0..3 {
                            let iy = (y + ky) as isize - pad as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for kx in 0..3 {
                                let ix = (xo + kx) as isize - pad as isize;
                                if ix < 0 || ix >= wd as isize {
                                    continue;
                                }
                                acc += x[((n * cin + ci) * h + iy as usize) * wd + ix as usize]
                                    as f64
                                    * w[((co * cin + ci) * 3 + ky) * 3 + kx] as f64;
                            }
                        }
                    }
                    out[((n * cout + co) * oh + y) * ow + xo] = acc;
                }
            }
        }
    }
    out
}

#[test]
fn winograd_conv_matches_burn_and_float64() {
    // (batch, cin, cout, h, w, pad): odd sizes, two images, pad 0 and 2, a wide sum (512
    // input channels, as in the SD VAE), a width that is not a multiple of the block.
    for (i, &(b, cin, cout, h, w, pad)) in [
        (1usize, 16usize, 16usize, 17usize, 19usize, 1usize),
        (2, 32, 24, 16, 16, 1),
        (1, 24, 16, 20, 18, 0),
        (1, 16, 16, 14, 15, 2),
        (1, 512, 16, 18, 16, 1),
    ]
    .iter()
    .enumerate()
    {
        let x = rand([b, cin, h, w], 10 + i as u64);
        let scale = 1.0 / ((cin * 9) as f64).sqrt();
        let weight = rand([cout, cin, 3, 3], 20 + i as u64).mul_scalar(scale);
        let bias = rand([cout], 30 + i as u64);
        let opts = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
        assert!(
            kernels::winograd_applies(&x, &weight, &opts),
            "case {i} should take the Winograd path"
        );
        let ours = vals(kernels::conv2d(
            x.clone(),
            weight.clone(),
            Some(bias.clone()),
            opts.clone(),
        ));
        let theirs = vals(conv2d(x.clone(), weight.clone(), Some(bias.clone()), opts));
        let exact = conv_f64(
            &vals(x),
            [b, cin, h, w],
            &vals(weight),
            cout,
            &vals(bias),
            pad,
        );
        let scale = exact.iter().fold(0f64, |m, v| m.max(v.abs()));
        let err = |got: &[f32]| {
            got.iter()
                .zip(&exact)
                .map(|(g, e)| (*g as f64 - e).abs())
                .fold(0f64, f64::max)
        };
        let (ours_err, burn_err) = (err(&ours), err(&theirs));
        assert!(
            ours_err <= 3.0 * burn_err + 1e-6 * scale,
            "case {i}: Winograd error {ours_err:e}, burn's {burn_err:e}, scale {scale}"
        );
        assert!(max_abs_diff(&ours, &theirs) as f64 <= 1e-5 * scale.max(1.0));
    }
}

#[test]
fn conv_outside_winograd_matches_burn() {
    let x = rand([1, 16, 20, 20], 1);
    let w = rand([16, 16, 3, 3], 2);
    // Stride 2, dilation 2, groups, 1x1, few channels, asymmetric padding, tiny output.
    let cases = [
        (w.clone(), ConvOptions::new([2, 2], [1, 1], [1, 1], 1)),
        (w.clone(), ConvOptions::new([1, 1], [2, 2], [2, 2], 1)),
        (
            rand([16, 8, 3, 3], 3),
            ConvOptions::new([1, 1], [1, 1], [1, 1], 2),
        ),
        (
            rand([16, 16, 1, 1], 4),
            ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
        ),
        (
            w.clone(),
            ConvOptions::new_with_padding([1, 1], [(1, 0), (1, 1)], [1, 1], 1),
        ),
    ];
    for (i, (w, o)) in cases.into_iter().enumerate() {
        assert!(!kernels::winograd_applies(&x, &w, &o), "case {i}");
        // Every case but the grouped one takes the patch-matrix kernel.
        assert_eq!(kernels::gemm_applies(&x, &w, &o), o.groups == 1, "case {i}");
        let a = vals(kernels::conv2d(x.clone(), w.clone(), None, o.clone()));
        let b = vals(conv2d(x.clone(), w, None, o));
        // The same products summed in another order: float32 rounding of 144-term sums of
        // unit-variance terms (outputs up to about 50), a few ulp of the largest output.
        let top = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let diff = max_abs_diff(&a, &b);
        assert!(diff <= 1e-6 * top, "case {i}: {diff} (outputs up to {top})");
    }
    let few = rand([1, 4, 32, 32], 5);
    let w4 = rand([16, 4, 3, 3], 6);
    assert!(!kernels::winograd_applies(
        &few,
        &w4,
        &ConvOptions::new([1, 1], [1, 1], [1, 1], 1)
    ));
    let small = rand([1, 16, 6, 6], 7);
    assert!(!kernels::winograd_applies(
        &small,
        &w,
        &ConvOptions::new([1, 1], [1, 1], [1, 1], 1)
    ));
}

fn group_norm(groups: usize, channels: usize, seed: u64) -> GroupNorm {
    let mut gn = GroupNormConfig::new(groups, channels)
        .with_epsilon(1e-6)
        .init(&dev());
    gn.gamma = Some(Param::from_tensor(rand([channels], seed).add_scalar(1.0)));
    gn.beta = Some(Param::from_tensor(rand([channels], seed + 1)));
    gn
}

#[test]
fn group_norm_and_silu_match_burn() {
    for (i, &(b, c, g, h, w)) in [
        (1usize, 32usize, 8usize, 16usize, 12usize),
        (2, 64, 32, 9, 7),
        (1, 128, 32, 64, 48),
        (3, 6, 3, 1, 5),
    ]
    .iter()
    .enumerate()
    {
        let gn = group_norm(g, c, 40 + i as u64);
        // An offset mean and a large scale: the two-pass statistics must not lose digits.
        let x = rand([b, c, h, w], 50 + i as u64)
            .mul_scalar(3.0)
            .add_scalar(5.0);
        for act in [false, true] {
            let want = gn.forward(x.clone());
            let want = vals(if act {
                burn::tensor::activation::silu(want)
            } else {
                want
            });
            // Shared input (cloned: the kernel writes a new buffer) ...
            let shared = vals(kernels::group_norm(&gn, x.clone(), act));
            assert!(max_abs_diff(&shared, &want) < 2e-5, "case {i} act {act}");
            // ... and one the call owns (the kernel works in place).
            let owned = x.clone().add_scalar(0.0);
            let inplace = vals(kernels::group_norm(&gn, owned, act));
            assert_eq!(inplace, shared, "case {i} act {act}: in place vs copy");
        }
    }
    // A transposed (non-contiguous) input.
    let gn = group_norm(4, 8, 60);
    let x = rand([1, 6, 10, 8], 61).swap_dims(1, 3); // [1, 8, 10, 6], strided
    let want = vals(burn::tensor::activation::silu(gn.forward(x.clone())));
    let got = vals(kernels::group_norm(&gn, x, true));
    assert!(max_abs_diff(&got, &want) < 2e-5);
}

#[test]
fn silu_matches_burn() {
    let x = rand([2, 3, 37, 41], 70).mul_scalar(6.0);
    let want = vals(burn::tensor::activation::silu(x.clone()));
    let got = vals(kernels::silu(x.clone()));
    assert!(max_abs_diff(&got, &want) < 2e-6);
    let strided = vals(kernels::silu(x.clone().swap_dims(2, 3)));
    let want_t = vals(burn::tensor::activation::silu(x.swap_dims(2, 3)));
    assert!(max_abs_diff(&strided, &want_t) < 2e-6);
    // Large magnitudes: no overflow to NaN or inf.
    let big = Tensor::<1>::from_floats([-1000.0, -90.0, -20.0, 0.0, 20.0, 90.0, 1000.0], &dev());
    let got = vals(kernels::silu(big.clone()));
    let want = vals(burn::tensor::activation::silu(big));
    for (g, w) in got.iter().zip(&want) {
        assert!(g.is_finite());
        assert!((g - w).abs() <= 1e-6 * w.abs().max(1.0), "{g} vs {w}");
    }
}

#[test]
fn nearest_upsampling_matches_burn() {
    let x = rand([2, 3, 5, 7], 80);
    for (h, w) in [(10, 14), (15, 7), (5, 21), (20, 28)] {
        let rows: Vec<i64> = (0..h).map(|i| (i * 5 / h) as i64).collect();
        let cols: Vec<i64> = (0..w).map(|j| (j * 7 / w) as i64).collect();
        let want = x
            .clone()
            .select(
                2,
                Tensor::<1, Int>::from_data(TensorData::new(rows, [h]), &dev()),
            )
            .select(
                3,
                Tensor::<1, Int>::from_data(TensorData::new(cols, [w]), &dev()),
            );
        let got = vton_core::nn::resize_nearest(x.clone(), h, w);
        assert_eq!(got.dims(), [2, 3, h, w]);
        assert_eq!(vals(got), vals(want), "{h}x{w}");
    }
}

#[test]
fn bilinear_resize_matches_burn() {
    use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
    let x = rand([2, 3, 9, 7], 85);
    // Up x2, down, non-integer both ways, one row/column.
    for (h, w) in [(18, 14), (4, 3), (13, 10), (1, 1), (9, 20)] {
        let want = burn::tensor::module::interpolate(
            x.clone(),
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(false)
                .with_output_size([h, w]),
        );
        let got = vton_core::nn::resize_bilinear(x.clone(), h, w);
        assert_eq!(got.dims(), [2, 3, h, w]);
        assert!(max_abs_diff(&vals(got), &vals(want)) < 2e-6, "{h}x{w}");
    }
}

#[test]
fn grid_sample_rows_in_parallel_equal_burns() {
    use burn::tensor::ops::{GridSampleOptions, GridSamplePaddingMode, InterpolateMode};
    // Large enough to be split into row blocks (2x5x64x60 out), grids reaching past the
    // borders; every mode, padding and corner convention; the result is burn's per-pixel
    // arithmetic, so it is exact.
    let x = rand([2, 5, 23, 17], 90);
    let grid = rand([2, 64, 60, 2], 91).mul_scalar(0.7);
    for mode in [0usize, 1] {
        for padding in [0usize, 1, 2] {
            for align in [false, true] {
                let opts = GridSampleOptions::new(if mode == 1 {
                    InterpolateMode::Nearest
                } else {
                    InterpolateMode::Bilinear
                })
                .with_padding_mode(match padding {
                    1 => GridSamplePaddingMode::Border,
                    2 => GridSamplePaddingMode::Reflection,
                    _ => GridSamplePaddingMode::Zeros,
                })
                .with_align_corners(align);
                let want = x.clone().grid_sample_2d(grid.clone(), opts);
                let got = kernels::grid_sample(x.clone(), grid.clone(), mode, padding, align)
                    .unwrap_or_else(|_| panic!("routed on flex"));
                assert_eq!(got.dims(), [2, 5, 64, 60]);
                assert_eq!(
                    vals(got),
                    vals(want),
                    "mode {mode} padding {padding} align {align}"
                );
            }
        }
    }
    // A small output takes burn's single call; the same values.
    let g = grid.clone().narrow(1, 0, 3);
    let got = kernels::grid_sample(x.clone(), g.clone(), 0, 0, false).unwrap_or_else(|_| panic!());
    let want = x.grid_sample_2d(
        g,
        GridSampleOptions::new(InterpolateMode::Bilinear).with_align_corners(false),
    );
    assert_eq!(vals(got), vals(want));
}

#[test]
fn autodiff_devices_use_burns_differentiable_ops() {
    let ad = dev().autodiff();
    let gn = GroupNormConfig::new(2, 4).init(&ad);
    let x = Tensor::<4>::random([1, 4, 6, 6], Distribution::Normal(0.0, 1.0), &ad).require_grad();
    assert!(!kernels::routed(&x));
    let w = Tensor::<4>::random([16, 4, 3, 3], Distribution::Normal(0.0, 0.1), &ad);
    let y = kernels::silu(kernels::group_norm(&gn, x.clone(), true));
    let y = kernels::conv2d(y, w, None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
    let grads = y.sum().backward();
    let gx = x.grad(&grads).expect("gradient reaches the input");
    assert!(vals(gx).iter().any(|v| *v != 0.0));
    // A trainer's batch is a plain flex tensor while its weights are autodiff parameters:
    // the call must take burn's differentiable path and give the weights a gradient.
    let batch = rand([1, 16, 20, 20], 91);
    let w = Tensor::<4>::random([16, 16, 3, 3], Distribution::Normal(0.0, 0.1), &ad).require_grad();
    let b = Tensor::<1>::zeros([16], &ad).require_grad();
    for o in [
        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
    ] {
        let y = kernels::conv2d(
            batch.clone().to_device(&ad),
            w.clone(),
            Some(b.clone()),
            o.clone(),
        );
        let grads = y.sum().backward();
        assert!(w.grad(&grads).is_some());
        // And with the batch left on the plain device.
        assert!(
            !kernels::winograd_applies(&batch, &w, &o) && !kernels::gemm_applies(&batch, &w, &o)
        );
    }
}
