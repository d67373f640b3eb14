//! Times float32 / bf16 / f16 matrix products on the default device (a profiling aid for
//! the half-precision part of issue 14). Run: `cargo run --release -p vton-core --example
//! dtype_matmul`. Measured 2026-12-03 on the 2-core EPYC (AVX-512 BF16), burn flex 0.22.1,
//! beside torch 2.x `a @ b` with 2 threads:
//!
//! | m x k x n | flex f32 | flex bf16 | flex f16 | torch f32 | torch bf16 |
//! |---|---|---|---|---|---|
//! | 1024x1024x1024 | 13.4 ms | 19.3 ms | 15.3 ms | 17.1 ms | 5.2 ms |
//! | 3072x320x1280 | 25.1 ms | 30.9 ms | 18.3 ms | 16.5 ms | 7.4 ms |
//! | 4096x64x4096 | 135 ms | 134 ms | 92 ms | 36.7 ms | 17.4 ms |
//!
//! flex's bf16 product does not use the AVX-512 BF16 dot instructions (slower than its
//! f32); torch's bf16 is 2.2-3.3x its f32. The small-k product (attention scores' shape)
//! is 3.7x slower than torch's in f32.
use std::time::Instant;

use vton_core::burn::tensor::DType;
use vton_core::{default_device, rng::randn};

fn main() {
    let dev = default_device();
    for &(m, k, n) in &[
        (1024usize, 1024usize, 1024usize),
        (3072, 320, 1280),
        (4096, 64, 4096),
    ] {
        let a = randn([m, k], 0, &dev);
        let b = randn([k, n], 1, &dev);
        let want = a.clone().matmul(b.clone());
        for dt in [DType::F32, DType::BF16, DType::F16] {
            let (a2, b2) = (a.clone().cast(dt), b.clone().cast(dt));
            let _ = a2.clone().matmul(b2.clone()).into_data();
            let t = Instant::now();
            let reps = 3;
            let mut out = None;
            for _ in 0..reps {
                out = Some(a2.clone().matmul(b2.clone()));
                let _ = out.clone().unwrap().into_data();
            }
            let ms = t.elapsed().as_secs_f64() * 1000.0 / reps as f64;
            let got = out.unwrap().cast(DType::F32);
            let err: f32 = (got - want.clone()).abs().max().into_scalar();
            let scale: f32 = want.clone().abs().max().into_scalar();
            let gflops = 2.0 * (m * k * n) as f64 / (ms * 1e6);
            println!(
                "{m}x{k}x{n} {dt:?}: {ms:.1} ms ({gflops:.0} GFLOP/s), max err {:.2e} of {:.2e}",
                err, scale
            );
        }
    }
}
