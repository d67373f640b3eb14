//! Criterion benchmarks of vton's own operators (`vton_core::kernels`) next to burn's flex
//! operators on the same inputs, at the sizes where the try-on models spend their time:
//! the SD VAE decoder's last level (128 channels at 512x384), the SD U-Net's first level
//! (320 channels at 64x48, 8 heads of 40 over 3072 tokens) and CP-VTON+'s 4x4 stride-2
//! encoder convolutions. Each group has a `burn` and a `vton` function: the same call with
//! `kernels::set_enabled(false / true)`.
//!
//!     cargo bench -p vton-benches --bench kernels

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use vton_core::burn::nn::GroupNormConfig;
use vton_core::burn::tensor::ops::ConvOptions;
use vton_core::burn::tensor::Tensor;
use vton_core::kernels;
use vton_core::{default_device, rng::randn};

fn both(c: &mut Criterion, group: &str, mut f: impl FnMut()) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    for (name, on) in [("burn", false), ("vton", true)] {
        kernels::set_enabled(on);
        g.bench_function(BenchmarkId::from_parameter(name), |b| b.iter(&mut f));
    }
    kernels::set_enabled(true);
    g.finish();
}

fn ops(c: &mut Criterion) {
    let dev = default_device();
    let x = randn([1, 128, 512, 384], 0, &dev);
    let w3 = randn([128, 128, 3, 3], 1, &dev).mul_scalar(0.03);
    both(c, "conv3x3_128_512x384", || {
        let y: Tensor<4> = kernels::conv2d(
            x.clone(),
            w3.clone(),
            None,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        );
        y.into_data();
    });
    let u = randn([1, 320, 64, 48], 2, &dev);
    let wu = randn([320, 320, 3, 3], 3, &dev).mul_scalar(0.02);
    both(c, "conv3x3_320_64x48", || {
        let y: Tensor<4> = kernels::conv2d(
            u.clone(),
            wu.clone(),
            None,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        );
        y.into_data();
    });
    let g = randn([1, 64, 128, 96], 4, &dev);
    let w4 = randn([128, 64, 4, 4], 5, &dev).mul_scalar(0.03);
    both(c, "conv4x4s2_64_128x96", || {
        let y: Tensor<4> = kernels::conv2d(
            g.clone(),
            w4.clone(),
            None,
            ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
        );
        y.into_data();
    });
    let gn = GroupNormConfig::new(32, 128).with_epsilon(1e-6).init(&dev);
    both(c, "group_norm_silu_128_512x384", || {
        kernels::group_norm(&gn, x.clone(), true).into_data();
    });
    both(c, "silu_128_512x384", || {
        kernels::silu(x.clone()).into_data();
    });
    let small = randn([1, 128, 256, 192], 6, &dev);
    both(c, "nearest_x2_128_256x192", || {
        vton_core::nn::resize_nearest(small.clone(), 512, 384).into_data();
    });
    both(c, "bilinear_x2_128_256x192", || {
        vton_core::nn::resize_bilinear(small.clone(), 512, 384).into_data();
    });
    let q = randn([1, 8, 3072, 40], 7, &dev);
    let k = randn([1, 8, 3072, 40], 8, &dev);
    let v = randn([1, 8, 3072, 40], 9, &dev);
    both(c, "attention_8x3072x40", || {
        kernels::attention(q.clone(), k.clone(), v.clone(), 40f64.powf(-0.5)).into_data();
    });
}

criterion_group!(benches, ops);
criterion_main!(benches);
