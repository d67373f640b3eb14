//! One timed run of a benchmark workload with the process's peak memory, for
//! scripts/bench/run.sh (criterion gives the distribution; this gives the memory).
//!
//!     cargo run --release -p vton-core --example bench_once -- target/bench vae_decode

use std::time::Instant;

use vton_core::models::{AutoencoderKL, UNet2DConditionModel};
use vton_core::weights::{LoadOptions, WeightDtype};
use vton_core::{default_device, rng::randn};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CP-VTON+ GMM and TOM, HR-VITON condition generator at 256x192 and image generator at
/// 1024x768, on the full-width random weights of scripts/bench/gan_reference.py; also
/// reports the largest difference from the PyTorch reference output stored next to them.
fn gan(root: &str, what: &str) -> vton_core::Result<()> {
    use vton_core::burn::tensor::{Tensor, TensorData};
    use vton_core::models::cpvton::{Gmm, GmmConfig, Tom, TomConfig};
    use vton_core::models::hrviton::{
        ConditionGenerator, ConditionGeneratorConfig, HRVitonGenerator, HRVitonGeneratorConfig,
        SpadeNoise,
    };
    use vton_core::weights::Checkpoint;
    let dev = default_device();
    let io = Checkpoint::open(format!("{root}/{what}_io.safetensors"))?;
    let t = |k: &str| -> vton_core::Result<Tensor<4>> {
        let s = io.shape(k).expect("io tensor").to_vec();
        Ok(Tensor::from_data(
            TensorData::new(io.read_f32(k)?, [s[0], s[1], s[2], s[3]]),
            &dev,
        ))
    };
    let a = t("input.a")?;
    let want = io.read_f32("output")?;
    let path = format!("{root}/{what}_full.pth");
    // The same run counts as gan_reference.py (one warm-up first).
    let runs = if what == "gen" { 4 } else { 11 };
    let run: Box<dyn Fn() -> vton_core::Result<Tensor<4>>> = match what {
        "gmm" => {
            let m = Gmm::from_checkpoint(&path, GmmConfig::default(), &dev)?;
            let b = t("input.b")?;
            Box::new(move || Ok(m.forward(a.clone(), b.clone())?.grid))
        }
        "tocg" => {
            let (m, _) = ConditionGenerator::from_checkpoint(
                &path,
                ConditionGeneratorConfig::default(),
                &dev,
            )?;
            let b = t("input.b")?;
            Box::new(move || Ok(m.forward(a.clone(), b.clone())?.fake_segmap))
        }
        "tom" => {
            let m = Tom::from_checkpoint(&path, TomConfig::default(), &dev)?;
            Box::new(move || m.forward_raw(a.clone()))
        }
        _ => {
            let m =
                HRVitonGenerator::from_checkpoint(&path, HRVitonGeneratorConfig::default(), &dev)?;
            let b = t("input.b")?;
            Box::new(move || m.forward(a.clone(), b.clone(), &mut SpadeNoise::Zero))
        }
    };
    let mut times = Vec::new();
    let mut out = None;
    for _ in 0..runs {
        let t0 = Instant::now();
        let o = run()?.into_data();
        times.push(t0.elapsed().as_secs_f64());
        out = Some(o);
    }
    let got = out
        .expect("ran")
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32");
    let max_diff = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs())
        .fold(0f32, f32::max);
    let mut rest = times[1..].to_vec();
    rest.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{{\"impl\": \"vton\", \"what\": \"{what}\", \"median_s\": {}, \"peak_rss_mib\": {}, \"max_abs_diff_vs_torch\": {max_diff}}}",
        rest[rest.len() / 2],
        peak_rss_mib()
    );
    Ok(())
}

fn main() -> vton_core::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (root, what) = (
        args.get(1).map_or("target/bench", |s| s),
        args.get(2).map_or("vae_decode", |s| s),
    );
    let dev = default_device();
    // A `_bf16` suffix keeps the diffusion models' layer weights in bfloat16.
    let (what, opts) = match what.strip_suffix("_bf16") {
        Some(w) => (w, LoadOptions::dtype(WeightDtype::BF16)),
        None => (what, LoadOptions::default()),
    };
    let mut times = Vec::new();
    if what == "vae_decode" {
        let vae = AutoencoderKL::from_pretrained_with(format!("{root}/sd15_vae"), &opts, &dev)?;
        let z = randn([1, 4, 64, 48], 0, &dev);
        for _ in 0..6 {
            let t = Instant::now();
            let _ = vae.decode(z.clone())?.into_data();
            times.push(t.elapsed().as_secs_f64());
        }
    } else if matches!(what, "gmm" | "tocg" | "tom" | "gen") {
        return gan(root, what);
    } else {
        let unet = UNet2DConditionModel::from_pretrained_with(
            format!("{root}/sd15_inpaint_unet"),
            &opts,
            &dev,
        )?;
        let x = randn([1, 9, 64, 48], 1, &dev);
        let ehs = randn([1, 77, 768], 2, &dev);
        // `unet_step_notext`: no encoder states, so every cross-attention passes its input
        // through (as CatVTON's SkipAttnProcessor does).
        let text = (what != "unet_step_notext").then_some(&ehs);
        for _ in 0..6 {
            let t = Instant::now();
            let _ = unet.forward(x.clone(), 500i64, text)?.into_data();
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let mut rest = times[1..].to_vec(); // first run is the warm-up
    rest.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{{\"impl\": \"vton\", \"what\": \"{what}\", \"threads\": {}, \"median_s\": {}, \"peak_rss_mib\": {}}}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        rest[rest.len() / 2],
        peak_rss_mib()
    );
    Ok(())
}
