//! `vton try-on --method dci-viton` end to end on the tiny VITON-HD sample with the
//! random-weight fixture networks (the warping network, the U-Net in the original's
//! `torch.save` dict format, a tiny diffusers VAE), found by name in `--weights`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fx(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(p)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn weights() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(
        fx("dci_viton_warping_oc3.safetensors"),
        d.path().join("warping_oc3.safetensors"),
    )
    .unwrap();
    std::fs::copy(fx("dci_viton_unet_ckpt.pth"), d.path().join("unet.pth")).unwrap();
    copy_dir(&fx("diffusers_vae_pretrained"), &d.path().join("vae"));
    d
}

fn sample_args(person_dir: &Path) -> Vec<String> {
    let s = |p: &str| person_dir.join(p).to_string_lossy().into_owned();
    [
        "--person",
        &s("image/00001_00.jpg"),
        "--keypoints",
        &s("openpose_json/00001_00_keypoints.json"),
        "--parse",
        &s("image-parse-v3/00001_00.png"),
        "--garment",
        &s("cloth/00001_00.jpg"),
        "--garment-mask",
        &s("cloth-mask/00001_00.jpg"),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

fn vton(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vton"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn try_on_dci_viton_writes_the_image() {
    let w = weights();
    let data = fx("vitonhd_tiny/test");
    let out = w.path().join("out.png");
    let mut args: Vec<String> = ["try-on", "--method", "dci-viton", "--weights"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.push(w.path().to_string_lossy().into_owned());
    args.extend(sample_args(&data));
    for a in [
        "--densepose",
        &data.join("image-densepose/00001_00.jpg").to_string_lossy(),
        "--dci-num-groups",
        "1",
        "--dci-warp-size",
        "64",
        "--dci-image-size",
        "64",
        "--steps",
        "2",
        "--out",
        &out.to_string_lossy(),
    ] {
        args.push(a.to_string());
    }
    let o = vton(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));

    // Without --densepose: a named error, exit non-zero.
    let no_dense: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| *a != "--densepose" && !(i > &0 && args[i - 1] == "--densepose"))
        .map(|(_, a)| a.clone())
        .collect();
    let o = vton(&no_dense);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--densepose"), "{err}");

    // Two U-Net candidates in --weights: refused, naming --dci-unet.
    std::fs::copy(fx("dci_viton_unet_ckpt.pth"), w.path().join("other.pth")).unwrap();
    let o = vton(&args);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--dci-unet"), "{err}");
}
