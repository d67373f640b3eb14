//! Times the Fréchet distance at pytorch-fid's width (2048): `cargo run --release -p vton-core --example frechet_timing`.
use std::time::Instant;
use vton_core::metrics::{frechet_distance, FeatureStatistics};

fn main() -> vton_core::Result<()> {
    let d = 2048;
    let n = 3000;
    let mut s: u64 = 1;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32).max(0.0)
    };
    let mut a = FeatureStatistics::new(d);
    let mut b = FeatureStatistics::new(d);
    let t = Instant::now();
    for _ in 0..(n / 100) {
        let fa: Vec<f32> = (0..100 * d).map(|_| next()).collect();
        let fb: Vec<f32> = (0..100 * d).map(|_| next() * 1.1).collect();
        a.update(&fa)?;
        b.update(&fb)?;
    }
    println!(
        "statistics of 2 x {n} features: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    if std::env::var("PHASES").is_ok() {
        phases(&a.covariance()?, d);
    }
    let t = Instant::now();
    let fd = frechet_distance(a.mean(), &a.covariance()?, b.mean(), &b.covariance()?)?;
    println!(
        "Fréchet distance at d = {d}: {:.2} s (value {:.4})",
        t.elapsed().as_secs_f64(),
        fd.value
    );
    Ok(())
}

#[allow(dead_code)]
fn phases(c: &[f64], d: usize) {
    let t = Instant::now();
    let _ = vton_core::metrics::linalg::symmetric_eigen(c, d, false);
    println!("eigenvalues only: {:.2} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let _ = vton_core::metrics::linalg::symmetric_eigen(c, d, true);
    println!("with vectors: {:.2} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let _ = vton_core::metrics::linalg::matmul(c, c, d, d, d);
    println!("one matmul: {:.2} s", t.elapsed().as_secs_f64());
}
