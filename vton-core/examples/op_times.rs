//! Times the building blocks of the VAE decoder at its largest resolution (a profiling aid
//! for docs/benchmarks.md): conv 3x3, GroupNorm, SiLU, nearest x2.
use std::time::Instant;

use vton_core::burn::nn::conv::Conv2dConfig;
use vton_core::burn::nn::{GroupNormConfig, PaddingConfig2d};
use vton_core::{default_device, rng::randn};

fn time(name: &str, mut f: impl FnMut()) {
    f();
    let t = Instant::now();
    for _ in 0..3 {
        f();
    }
    println!("{name}: {:.1} ms", t.elapsed().as_secs_f64() * 1000.0 / 3.0);
}

fn main() {
    let dev = default_device();
    let x = randn([1, 128, 512, 384], 0, &dev);
    let conv = Conv2dConfig::new([128, 128], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&dev);
    let gn = GroupNormConfig::new(32, 128).with_epsilon(1e-6).init(&dev);
    time("conv3x3 128->128 @512x384", || {
        let _ = conv.forward(x.clone()).into_data();
    });
    time("groupnorm 32 @128x512x384", || {
        let _ = gn.forward(x.clone()).into_data();
    });
    time("silu @128x512x384", || {
        let _ = vton_core::nn::silu(x.clone()).into_data();
    });
    let small = randn([1, 128, 256, 192], 1, &dev);
    time("nearest x2 128@256x192", || {
        let _ = vton_core::nn::resize_nearest(small.clone(), 512, 384).into_data();
    });
}
