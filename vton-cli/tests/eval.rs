//! `vton eval` on folders written from the metrics fixtures (tests/fixtures/metrics):
//! the figures it prints and writes are the packages' own values (scikit-image,
//! pytorch-msssim, lpips, pytorch-fid, torch-fidelity), averaged over the pairs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn vton(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vton"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the vton binary runs")
}

fn fixture(rel: &str) -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tests",
        "fixtures",
        "metrics",
        rel,
    ]
    .iter()
    .collect();
    p.to_string_lossy().into_owned()
}

/// uint8 tensors of a safetensors file: name -> (shape, bytes).
fn u8_tensors(path: &str) -> HashMap<String, (Vec<usize>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out = HashMap::new();
    for (k, v) in header.as_object().unwrap() {
        if v.get("dtype").and_then(|d| d.as_str()) != Some("U8") {
            continue;
        }
        let shape: Vec<usize> = v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let off: Vec<usize> = v["data_offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        out.insert(k.clone(), (shape, data[off[0]..off[1]].to_vec()));
    }
    out
}

fn save(path: &Path, shape: &[usize], px: &[u8]) {
    let img = image::RgbImage::from_raw(shape[1] as u32, shape[0] as u32, px.to_vec()).unwrap();
    img.save(path).unwrap();
}

fn close(got: f64, want: f64, atol: f64, rtol: f64, what: &str) {
    assert!(
        (got - want).abs() <= atol + rtol * want.abs(),
        "{what}: got {got}, want {want}"
    );
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Pairs 0..6 of the fixture (MS-SSIM needs > 160 px: pairs 0, 3, 4, 5).
#[test]
fn paired_metrics_equal_the_packages_means() {
    let dir = tempfile::tempdir().unwrap();
    let (pred, gt) = (dir.path().join("pred"), dir.path().join("gt"));
    std::fs::create_dir_all(&pred).unwrap();
    std::fs::create_dir_all(&gt).unwrap();
    let t = u8_tensors(&fixture("metrics_pairs.safetensors"));
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("metrics_pairs.json")).unwrap())
            .unwrap();
    let chosen = [0usize, 3, 4, 5];
    for i in chosen {
        let (s, a) = &t[&format!("pair.{i}.a_u8")];
        let (_, b) = &t[&format!("pair.{i}.b_u8")];
        // the ground truth as JPEG-named PNG would be lossy: keep PNG on both sides, but a
        // different extension on one side still matches by name
        save(&gt.join(format!("p{i}.png")), s, a);
        save(&pred.join(format!("p{i}.png")), s, b);
    }
    let js = dir.path().join("m.json");
    let out = vton(
        &[
            "eval",
            "--pred",
            pred.to_str().unwrap(),
            "--gt",
            gt.to_str().unwrap(),
            "--metrics",
            "ssim,ms-ssim,psnr,lpips",
            "--lpips-backbone",
            &fixture("metrics_weights_lpips_alex.safetensors"),
            "--lpips-lin",
            &fixture("metrics_weights_lpips_alex.safetensors"),
            "--json",
            js.to_str().unwrap(),
        ],
        dir.path(),
    );
    let stdout = ok(&out);
    for word in [
        "SSIM",
        "MS-SSIM",
        "PSNR",
        "LPIPS",
        "skimage-gaussian",
        "pytorch-msssim",
        "lpips 0.1.4",
    ] {
        assert!(stdout.contains(word), "the table names {word}: {stdout}");
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&js).unwrap()).unwrap();
    let pairs = j["pairs"].as_array().unwrap();
    let mean = |key: &str| {
        chosen
            .iter()
            .map(|&i| pairs[i]["metrics"][key].as_f64().unwrap())
            .sum::<f64>()
            / chosen.len() as f64
    };
    let m = &doc["metrics"];
    close(
        m["ssim"]["value"].as_f64().unwrap(),
        mean("ssim.skimage_gaussian_rgb_u8_dr255"),
        1e-9,
        0.0,
        "SSIM",
    );
    close(
        m["ms_ssim"]["value"].as_f64().unwrap(),
        mean("msssim.pytorch_msssim_dr255"),
        5e-5,
        0.0,
        "MS-SSIM",
    );
    close(
        m["psnr"]["value"].as_f64().unwrap(),
        mean("psnr.skimage_u8_dr255"),
        1e-4,
        0.0,
        "PSNR",
    );
    close(
        m["lpips"]["value"].as_f64().unwrap(),
        mean("lpips.alex.m1p1"),
        1e-6,
        1e-4,
        "LPIPS",
    );
    assert_eq!(doc["matched"], 4);
    assert_eq!(doc["per_image"].as_array().unwrap().len(), 4);

    // HR-VITON's LPIPS (128x128 PIL bilinear) and torchmetrics' eps placement
    let lp = |extra: &[&str]| {
        let mut a = vec![
            "eval",
            "--pred",
            pred.to_str().unwrap(),
            "--gt",
            gt.to_str().unwrap(),
            "--metrics",
            "lpips",
            "--json",
            js.to_str().unwrap(),
        ];
        let backbone = fixture("metrics_weights_lpips_alex.safetensors");
        let b: &'static str = Box::leak(backbone.into_boxed_str());
        a.extend(["--lpips-backbone", b, "--lpips-lin", b]);
        a.extend(extra.iter().copied());
        ok(&vton(&a, dir.path()));
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&js).unwrap()).unwrap();
        d["metrics"]["lpips"]["value"].as_f64().unwrap()
    };
    close(
        lp(&["--lpips-size", "128x128"]),
        mean("lpips.alex.hrviton_128"),
        1e-6,
        1e-4,
        "LPIPS at 128x128",
    );
    close(
        lp(&["--lpips-eps", "torchmetrics"]),
        mean("lpips.alex.torchmetrics_1_9_m1p1"),
        1e-6,
        1e-4,
        "LPIPS torchmetrics",
    );

    // grey SSIM as HR-VITON computes it, and torchmetrics' convention
    let out = vton(
        &[
            "eval",
            "--pred",
            pred.to_str().unwrap(),
            "--gt",
            gt.to_str().unwrap(),
            "--metrics",
            "ssim",
            "--ssim-gray",
            "--json",
            js.to_str().unwrap(),
        ],
        dir.path(),
    );
    ok(&out);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&js).unwrap()).unwrap();
    close(
        doc["metrics"]["ssim"]["value"].as_f64().unwrap(),
        mean("ssim.skimage_gaussian_gray_hrviton"),
        1e-9,
        0.0,
        "grey SSIM",
    );

    // a missing prediction is an error naming it, unless --allow-unmatched
    std::fs::remove_file(pred.join("p5.png")).unwrap();
    let out = vton(
        &[
            "eval",
            "--pred",
            pred.to_str().unwrap(),
            "--gt",
            gt.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("p5") && err.contains("--allow-unmatched"),
        "{err}"
    );
    let out = vton(
        &[
            "eval",
            "--pred",
            pred.to_str().unwrap(),
            "--gt",
            gt.to_str().unwrap(),
            "--allow-unmatched",
        ],
        dir.path(),
    );
    let stdout = ok(&out);
    assert!(
        stdout.contains("3 pairs matched") && stdout.contains("1 without prediction"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("p5"));

    // another size: rejected by default, resized with PIL's filter on request
    let (s1, a1) = &t["pair.1.a_u8"];
    let (_, b1) = &t["pair.1.b_u8"];
    let (s0, _) = &t["pair.0.a_u8"];
    assert_ne!(s1, s0);
    save(&gt.join("p1.png"), s1, a1);
    // the prediction of p1 is the 128x128 PIL resize of b: gt must be resized to it
    let (s128, b128) = &t["pair.1.b_128_u8"];
    save(&pred.join("p1.png"), s128, b128);
    let _ = b1;
    let out = vton(
        &[
            "eval",
            "--pred",
            pred.to_str().unwrap(),
            "--gt",
            gt.to_str().unwrap(),
            "--allow-unmatched",
            "--metrics",
            "psnr",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("size mismatch") && err.contains("--resize"),
        "{err}"
    );
    let out = vton(
        &[
            "eval",
            "--pred",
            pred.to_str().unwrap(),
            "--gt",
            gt.to_str().unwrap(),
            "--allow-unmatched",
            "--metrics",
            "psnr",
            "--resize",
            "bilinear",
        ],
        dir.path(),
    );
    assert!(ok(&out).contains("1 ground truth resized with PIL bilinear"));

    // bad arguments
    for args in [
        vec!["--metrics", "fid"],
        vec!["--metrics", "lpips"],
        vec!["--metrics", "sharpness"],
        vec!["--ssim-convention", "box"],
        vec!["--resize", "nearest"],
    ] {
        let mut all = vec![
            "eval",
            "--pred",
            pred.to_str().unwrap(),
            "--gt",
            gt.to_str().unwrap(),
        ];
        all.extend(args.iter().copied());
        let out = vton(&all, dir.path());
        assert!(!out.status.success(), "{args:?} fails");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: "),
            "{args:?}"
        );
    }
    let out = vton(
        &[
            "eval",
            "--pred",
            "no-such-dir",
            "--gt",
            gt.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-dir"));
}

/// FID and KID over the fixture's two sets (12 and 10 images: unpaired, so no name
/// matching is needed).
#[test]
fn fid_and_kid_equal_pytorch_fid_and_torch_fidelity() {
    let dir = tempfile::tempdir().unwrap();
    let (pred, gt) = (dir.path().join("pred"), dir.path().join("gt"));
    std::fs::create_dir_all(&pred).unwrap();
    std::fs::create_dir_all(&gt).unwrap();
    let t = u8_tensors(&fixture("metrics_fid.safetensors"));
    for (set, folder) in [("set1", &gt), ("set2", &pred)] {
        let (shape, px) = &t[&format!("fid.{set}.images_u8")];
        let per = shape[1] * shape[2] * 3;
        for i in 0..shape[0] {
            save(
                &folder.join(format!("{set}_{i:02}.png")),
                &shape[1..],
                &px[i * per..(i + 1) * per],
            );
        }
    }
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("metrics_fid.json")).unwrap())
            .unwrap();
    let r = &j["results"];
    let js = dir.path().join("m.json");
    let out = vton(
        &[
            "eval",
            "--pred",
            pred.to_str().unwrap(),
            "--gt",
            gt.to_str().unwrap(),
            "--metrics",
            "fid,kid",
            "--inception",
            &fixture("metrics_weights_fid_inception.safetensors"),
            "--kid-subsets",
            "100",
            "--kid-subset-size",
            "8",
            "--batch-size",
            "5",
            "--json",
            js.to_str().unwrap(),
        ],
        dir.path(),
    );
    let stdout = ok(&out);
    assert!(
        stdout.contains("FID")
            && stdout.contains("pytorch-fid")
            && stdout.contains("torch-fidelity"),
        "{stdout}"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&js).unwrap()).unwrap();
    let m = &doc["metrics"];
    assert_eq!(m["fid"]["real"], 12);
    assert_eq!(m["fid"]["generated"], 10);
    // tolerances of metrics_fid.json (FID 1e-2 + 1e-4 rel; KID 1e-4 + 1e-3 rel)
    close(
        m["fid"]["value"].as_f64().unwrap(),
        r["fid_pytorch_fid"].as_f64().unwrap(),
        1e-2,
        1e-4,
        "FID",
    );
    close(
        m["kid"]["value"].as_f64().unwrap(),
        r["kid"]["kid_mean_float32_features"].as_f64().unwrap(),
        1e-4,
        1e-3,
        "KID",
    );
    close(
        m["kid"]["std"].as_f64().unwrap(),
        r["kid"]["kid_std_float32_features"].as_f64().unwrap(),
        1e-4,
        1e-3,
        "KID std",
    );
    // the default subset size (1000) is capped at the smaller set and says so
    let out = vton(
        &[
            "eval",
            "--pred",
            pred.to_str().unwrap(),
            "--gt",
            gt.to_str().unwrap(),
            "--metrics",
            "kid",
            "--inception",
            &fixture("metrics_weights_fid_inception.safetensors"),
        ],
        dir.path(),
    );
    assert!(ok(&out).contains("capped"));
}
