//! Criterion benchmarks of the GAN warping models at 256x192 and released widths, on the
//! random full-width weights written by scripts/bench/gan_reference.py (the same files the
//! PyTorch reference is timed on by scripts/bench/run.sh).
//!
//!     python scripts/bench/gan_reference.py make target/bench
//!     cargo bench -p vton-benches --bench gan
//!
//! `VTON_BENCH_DIR` overrides `target/bench`. Without the files the bench says so and
//! measures nothing.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use vton_core::models::cpvton::{Gmm, GmmConfig};
use vton_core::models::hrviton::{ConditionGenerator, ConditionGeneratorConfig};
use vton_core::{default_device, rng::randn};

fn bench_dir() -> PathBuf {
    std::env::var_os("VTON_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench"))
}

fn gan(c: &mut Criterion) {
    let dir = bench_dir();
    let dev = default_device();
    let mut g = c.benchmark_group("gan_256x192");
    g.sample_size(10);
    match Gmm::from_checkpoint(dir.join("gmm_full.pth"), GmmConfig::default(), &dev) {
        Ok(gmm) => {
            let a = randn([1, 22, 256, 192], 0, &dev);
            let m = randn([1, 1, 256, 192], 1, &dev).greater_elem(0.0).float();
            g.bench_function("cpvton_gmm", |b| {
                b.iter(|| gmm.forward(a.clone(), m.clone()).unwrap().grid.into_data())
            });
        }
        Err(e) => eprintln!("skipping cpvton_gmm: {e} (run scripts/bench/gan_reference.py make)"),
    }
    match ConditionGenerator::from_checkpoint(
        dir.join("tocg_full.pth"),
        ConditionGeneratorConfig::default(),
        &dev,
    ) {
        Ok((tocg, _)) => {
            let x1 = randn([1, 4, 256, 192], 2, &dev);
            let x2 = randn([1, 16, 256, 192], 3, &dev);
            g.bench_function("hrviton_condition_generator", |b| {
                b.iter(|| {
                    tocg.forward(x1.clone(), x2.clone())
                        .unwrap()
                        .fake_segmap
                        .into_data()
                })
            });
        }
        Err(e) => eprintln!("skipping tocg: {e} (run scripts/bench/gan_reference.py make)"),
    }
    g.finish();
}

criterion_group!(benches, gan);
criterion_main!(benches);
