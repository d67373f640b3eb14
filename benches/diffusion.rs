//! Criterion benchmarks of the latent-diffusion models at try-on sizes, on the random-weight
//! SD 1.5 VAE and SD 1.5-inpainting U-Net written by scripts/bench/make_sd15_random.py
//! (the same files diffusers is timed on by scripts/bench/run.sh).
//!
//!     python scripts/bench/make_sd15_random.py target/bench
//!     cargo bench -p vton-benches --bench diffusion
//!
//! `VTON_BENCH_DIR` overrides `target/bench`. Without the files the bench says so and
//! measures nothing.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use vton_core::burn::tensor::Tensor;
use vton_core::models::{AutoencoderKL, UNet2DConditionModel};
use vton_core::{default_device, rng::randn};

fn bench_dir() -> PathBuf {
    std::env::var_os("VTON_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench"))
}

fn diffusion(c: &mut Criterion) {
    let dir = bench_dir();
    let dev = default_device();
    let mut g = c.benchmark_group("sd15");
    g.sample_size(10);
    match AutoencoderKL::from_pretrained(dir.join("sd15_vae"), &dev) {
        Ok(vae) => {
            let z = randn([1, 4, 64, 48], 0, &dev);
            g.bench_function("vae_decode_4x64x48", |b| {
                b.iter(|| {
                    let out: Tensor<4> = vae.decode(z.clone()).unwrap();
                    out.into_data()
                })
            });
        }
        Err(e) => eprintln!("skipping vae_decode: {e} (run scripts/bench/make_sd15_random.py)"),
    }
    match UNet2DConditionModel::from_pretrained(dir.join("sd15_inpaint_unet"), &dev) {
        Ok(unet) => {
            let x = randn([1, 9, 64, 48], 1, &dev);
            let ehs = randn([1, 77, 768], 2, &dev);
            g.bench_function("unet_step_9x64x48", |b| {
                b.iter(|| {
                    unet.forward(x.clone(), 500i64, Some(&ehs))
                        .unwrap()
                        .into_data()
                })
            });
        }
        Err(e) => eprintln!("skipping unet_step: {e} (run scripts/bench/make_sd15_random.py)"),
    }
    g.finish();
}

criterion_group!(benches, diffusion);
criterion_main!(benches);
