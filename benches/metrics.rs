//! Criterion benchmarks of the image-quality metrics: SSIM / MS-SSIM / PSNR of one
//! 1024x768 RGB pair (float64, on the host), FID-Inception pool3 features of 256x192
//! images (batch 1 and 8; resized to 299x299 inside, as pytorch-fid does) and LPIPS alex
//! of one 256x192 pair. scripts/bench_metrics.py times the Python packages on the same
//! files in the same run and writes the comparison table of docs/benchmarks.md.
//!
//!     cargo bench -p vton-benches --bench metrics                  # stands alone
//!     python scripts/bench_metrics.py                               # both sides
//!
//! Inputs and weights, in this order:
//! * `VTON_BENCH_METRICS_DIR` (written by scripts/bench_metrics.py): `ssim_a.png`,
//!   `ssim_b.png` (768x1024), `fid_0.png` .. `fid_7.png` (192x256),
//!   `fid_inception_full.safetensors` (random full-width pytorch-fid InceptionV3, the
//!   `pt_inception-2015-12-05` key names) and `alexnet_features_full.safetensors`
//!   (random torchvision alexnet `features.*`; LPIPS takes the bundled lpips 0.1.4 v0.1 lin
//!   layers). With that directory set the bench also writes `vton_values.json` (the metric
//!   values) and `vton_features_b8.f32` (the 8 x D features, little-endian f32) there, so
//!   the script can check both sides compute the same thing.
//! * `VTON_BENCH_INCEPTION` / `VTON_BENCH_LPIPS_ALEX`: a weight file for FID / LPIPS.
//! * Otherwise: the SSIM pair is made from examples/person/openvto_real1_fullbody.png
//!   (PIL-bicubic x2, and a copy with deterministic noise), the 256x192 images from the
//!   other example photos, and the weights are the width-reduced fixtures of
//!   tests/fixtures/metrics (Inception 256 features, alex taps / 8). Those benches are
//!   named `*_reduced_fixture`: they are much faster than the real networks and are not
//!   comparable with full-width figures.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use vton_core::burn::tensor::{Device, Tensor};
use vton_core::default_device;
use vton_core::metrics::{
    ms_ssim, psnr, ssim, Lpips, LpipsNet, MetricImage, MsSsimOptions, PilFilter, SsimConvention,
};
use vton_core::models::inception::FidInceptionV3;

const FID_BATCH: usize = 8;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn metrics_dir() -> Option<PathBuf> {
    std::env::var_os("VTON_BENCH_METRICS_DIR").map(PathBuf::from)
}

/// A file of the bench directory, when the directory is set and has it.
fn dir_file(name: &str) -> Option<PathBuf> {
    metrics_dir().map(|d| d.join(name)).filter(|p| p.exists())
}

/// Adds deterministic noise in [-24, 24] (a splitmix64 stream) and clamps to 0..255.
fn noisy(img: &MetricImage, seed: u64) -> MetricImage {
    let mut s = seed;
    let data = img
        .data
        .iter()
        .map(|&v| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let n = (z % 49) as f64 - 24.0;
            (v + n).clamp(0.0, 255.0)
        })
        .collect();
    MetricImage {
        data,
        ..img.clone()
    }
}

fn ssim_pair() -> (MetricImage, MetricImage, &'static str) {
    if let (Some(a), Some(b)) = (dir_file("ssim_a.png"), dir_file("ssim_b.png")) {
        let a = MetricImage::read(a).expect("ssim_a.png");
        let b = MetricImage::read(b).expect("ssim_b.png");
        return (a, b, "");
    }
    let photo = MetricImage::read(root().join("examples/person/openvto_real1_fullbody.png"))
        .expect("examples/person/openvto_real1_fullbody.png");
    let a = photo
        .resize_pil(768, 1024, PilFilter::Bicubic)
        .expect("resize to 768x1024");
    let b = noisy(&a, 7);
    (a, b, "_examples")
}

/// `FID_BATCH` RGB images of 192x256 (W x H).
fn fid_images() -> Vec<MetricImage> {
    let from_dir: Vec<MetricImage> = (0..FID_BATCH)
        .filter_map(|i| dir_file(&format!("fid_{i}.png")))
        .map(|p| MetricImage::read(p).expect("fid_i.png"))
        .collect();
    if from_dir.len() == FID_BATCH {
        return from_dir;
    }
    let photos = [
        "person/openvto_real1_fullbody.png",
        "person/openvto_real1_selfie.png",
        "person/openvto_ai3_selfie.png",
        "person/openvto_ai_avatar1_upper.png",
        "person/openvto_ai_avatar2_upper.png",
        "person/mpl_grace_hopper.png",
        "person/skimage_astronaut.png",
        "garment/openvto_shirt1_front.png",
    ];
    photos
        .iter()
        .map(|p| {
            MetricImage::read(root().join("examples").join(p))
                .expect("example photo")
                .resize_pil(192, 256, PilFilter::Bicubic)
                .expect("resize to 192x256")
        })
        .collect()
}

fn weights(env: &str, dir_name: &str, fixture: &str) -> (PathBuf, bool) {
    if let Some(p) = std::env::var_os(env) {
        return (PathBuf::from(p), false);
    }
    if let Some(p) = dir_file(dir_name) {
        return (p, false);
    }
    (root().join("tests/fixtures/metrics").join(fixture), true)
}

fn configure(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, secs: u64) {
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(secs));
}

fn write_values(values: &[(String, f64)], features: Option<&[f32]>) {
    let Some(dir) = metrics_dir() else { return };
    let mut json = String::from("{\n");
    for (i, (k, v)) in values.iter().enumerate() {
        let sep = if i + 1 == values.len() { "" } else { "," };
        let _ = writeln!(json, "  \"{k}\": {v:.17e}{sep}");
    }
    json.push_str("}\n");
    std::fs::write(dir.join("vton_values.json"), json).expect("write vton_values.json");
    if let Some(f) = features {
        let bytes: Vec<u8> = f.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.join("vton_features_b8.f32"), bytes).expect("write features");
    }
}

fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 data")
}

fn batch(images: &[&MetricImage], scale: f64, offset: f64, dev: &Device) -> Tensor<4> {
    MetricImage::batch_tensor(images, scale, offset, dev).expect("batch tensor")
}

fn metrics(c: &mut Criterion) {
    let dev = default_device();
    let mut values: Vec<(String, f64)> = Vec::new();
    let mut features_b8: Option<Vec<f32>> = None;

    // ---- pixel metrics, 1024x768 RGB, float64 ------------------------------------------
    let (a, b, src) = ssim_pair();
    assert_eq!((a.height, a.width, a.channels), (1024, 768, 3));
    let ms = MsSsimOptions::new(255.0);
    let gauss = SsimConvention::SkimageGaussian;
    let tm = SsimConvention::Torchmetrics;
    values.push((
        "ssim_skimage_gaussian".into(),
        ssim(&a, &b, gauss, 255.0).unwrap(),
    ));
    values.push(("ssim_torchmetrics".into(), ssim(&a, &b, tm, 255.0).unwrap()));
    values.push(("ms_ssim".into(), ms_ssim(&a, &b, &ms).unwrap()));
    values.push(("psnr".into(), psnr(&a, &b, 255.0).unwrap()));
    {
        let mut g = c.benchmark_group(format!("metrics_1024x768{src}"));
        configure(&mut g, 4);
        g.bench_function("ssim_skimage_gaussian", |bch| {
            bch.iter(|| ssim(&a, &b, gauss, 255.0).unwrap())
        });
        g.bench_function("ssim_torchmetrics", |bch| {
            bch.iter(|| ssim(&a, &b, tm, 255.0).unwrap())
        });
        g.bench_function("ms_ssim", |bch| bch.iter(|| ms_ssim(&a, &b, &ms).unwrap()));
        g.bench_function("psnr", |bch| bch.iter(|| psnr(&a, &b, 255.0).unwrap()));
        g.finish();
    }

    // ---- FID Inception pool3 features, 256x192 inputs -----------------------------------
    let images = fid_images();
    let refs: Vec<&MetricImage> = images.iter().collect();
    let (inc_path, reduced) = weights(
        "VTON_BENCH_INCEPTION",
        "fid_inception_full.safetensors",
        "metrics_weights_fid_inception.safetensors",
    );
    match FidInceptionV3::from_checkpoint(&inc_path, &dev) {
        Ok(net) => {
            let suffix = if reduced { "_reduced_fixture" } else { "" };
            let x1 = batch(&refs[..1], 1.0 / 255.0, 0.0, &dev);
            let x8 = batch(&refs, 1.0 / 255.0, 0.0, &dev);
            let f = to_vec(net.features(x8.clone()).unwrap());
            values.push(("fid_feature_dim".into(), net.feature_dim() as f64));
            features_b8 = Some(f);
            let mut g = c.benchmark_group(format!("fid_inception_256x192{suffix}"));
            configure(&mut g, if reduced { 3 } else { 20 });
            g.bench_function("batch1", |bch| {
                bch.iter(|| net.features(x1.clone()).unwrap().into_data())
            });
            g.bench_function("batch8", |bch| {
                bch.iter(|| net.features(x8.clone()).unwrap().into_data())
            });
            g.finish();
        }
        Err(e) => eprintln!("skipping FID features: {e} ({})", inc_path.display()),
    }

    // ---- LPIPS alex, one 256x192 pair ----------------------------------------------------
    let (alex_path, reduced) = weights(
        "VTON_BENCH_LPIPS_ALEX",
        "alexnet_features_full.safetensors",
        "metrics_weights_lpips_alex.safetensors",
    );
    // The fixture carries its own (reduced) lin layers; full-width files take the bundled.
    let lin = reduced.then_some(alex_path.as_path());
    match Lpips::from_checkpoint(&alex_path, LpipsNet::Alex, lin, &dev) {
        Ok(lp) => {
            let suffix = if reduced { "_reduced_fixture" } else { "" };
            let x0 = batch(&refs[..1], 2.0 / 255.0, -1.0, &dev);
            let x1 = batch(&refs[1..2], 2.0 / 255.0, -1.0, &dev);
            let d = lp.distance(x0.clone(), x1.clone()).unwrap();
            values.push(("lpips_alex".into(), d[0] as f64));
            let mut g = c.benchmark_group(format!("lpips_256x192{suffix}"));
            configure(&mut g, 4);
            g.bench_function("alex_batch1", |bch| {
                bch.iter(|| lp.distance(x0.clone(), x1.clone()).unwrap())
            });
            g.finish();
        }
        Err(e) => eprintln!("skipping LPIPS: {e} ({})", alex_path.display()),
    }

    write_values(&values, features_b8.as_deref());
}

criterion_group!(benches, metrics);
criterion_main!(benches);
