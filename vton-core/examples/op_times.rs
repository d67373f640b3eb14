//! Times the building blocks of the VAE decoder at its largest resolution (a profiling aid
//! for docs/benchmarks.md): conv 3x3, GroupNorm, SiLU, GroupNorm + SiLU, nearest x2 and
//! the mid-block attention, each with burn's flex operators ("burn") and with vton's
//! kernels ("vton"; `vton_core::kernels`). Median of 5 calls after a warm-up; each call
//! reads the result back to the host. One JSON line per operator, for scripts/bench/run.sh
//! (scripts/bench/torch_ops.py times the same operators in PyTorch).
//!   RAYON_NUM_THREADS=2 cargo run --release -p vton-core --example op_times
use std::time::Instant;

use vton_core::burn::nn::conv::Conv2dConfig;
use vton_core::burn::nn::{GroupNormConfig, PaddingConfig2d};
use vton_core::kernels;
use vton_core::{default_device, rng::randn};

fn time(name: &str, mut f: impl FnMut()) {
    let mut ms = [0f64; 2];
    for (slot, on) in [false, true].into_iter().enumerate() {
        kernels::set_enabled(on);
        f();
        let mut v: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        v.sort_by(f64::total_cmp);
        ms[slot] = v[2];
    }
    println!(
        "{{\"op\": \"{name}\", \"burn_ms\": {:.1}, \"vton_ms\": {:.1}}}",
        ms[0], ms[1]
    );
}

fn main() {
    let dev = default_device();
    let x = randn([1, 128, 512, 384], 0, &dev);
    let conv = Conv2dConfig::new([128, 128], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&dev);
    let gn = GroupNormConfig::new(32, 128).with_epsilon(1e-6).init(&dev);
    time("conv3x3 128->128 @512x384", || {
        let _ = kernels::conv2d(
            x.clone(),
            conv.weight.val(),
            conv.bias.as_ref().map(|b| b.val()),
            vton_core::burn::tensor::ops::ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        )
        .into_data();
    });
    time("groupnorm 32 @128x512x384", || {
        let _ = kernels::group_norm(&gn, x.clone(), false).into_data();
    });
    time("silu @128x512x384", || {
        let _ = kernels::silu(x.clone()).into_data();
    });
    time("groupnorm+silu @128x512x384", || {
        let _ = kernels::group_norm(&gn, x.clone(), true).into_data();
    });
    let small = randn([1, 128, 256, 192], 1, &dev);
    time("nearest x2 128@256x192", || {
        let _ = vton_core::nn::resize_nearest(small.clone(), 512, 384).into_data();
    });
    time("bilinear x2 128@256x192", || {
        let _ = vton_core::nn::resize_bilinear(small.clone(), 512, 384).into_data();
    });
    let g = randn([1, 64, 128, 96], 5, &dev);
    let w4 = randn([128, 64, 4, 4], 6, &dev);
    time("conv4x4 stride 2 64->128 @128x96", || {
        let _ = kernels::conv2d(
            g.clone(),
            w4.clone(),
            None,
            vton_core::burn::tensor::ops::ConvOptions::new([2, 2], [1, 1], [1, 1], 1),
        )
        .into_data();
    });
    // The VAE mid-block (one head of 512) and the SD U-Net's first level (8 heads of 40)
    // at a 512x384 image.
    for (heads, dim) in [(1, 512), (8, 40)] {
        let q = randn([1, heads, 3072, dim], 2, &dev);
        let k = randn([1, heads, 3072, dim], 3, &dev);
        let v = randn([1, heads, 3072, dim], 4, &dev);
        time(&format!("attention {heads}x3072x{dim}"), || {
            let _ = kernels::attention(q.clone(), k.clone(), v.clone(), 0.125).into_data();
        });
    }
}
