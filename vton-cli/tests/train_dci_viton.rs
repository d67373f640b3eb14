//! `vton train dci-viton-warp` and `vton train dci-viton-unet` as a user runs them on the
//! bundled VITON-HD pair (fresh, tiny widths), the original-format files they export,
//! and those files driving `vton try-on --method dci-viton`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fx(p: &str) -> String {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(p);
    p.to_string_lossy().into_owned()
}

fn vton(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vton"))
        .args(args)
        .output()
        .expect("the vton binary runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn train_both_networks_then_try_on_with_them() {
    let tmp = tempfile::tempdir().unwrap();
    let data = fx("vitonhd_tiny");
    let warp_out = tmp.path().join("warp");
    let w = warp_out.to_string_lossy().into_owned();
    let o = vton(&[
        "train",
        "dci-viton-warp",
        "--data",
        &data,
        "--out",
        &w,
        "--vgg",
        &fx("training/train_dci_viton_warp.safetensors"),
        "--steps",
        "2",
        "--batch-size",
        "1",
        "--save-every",
        "2",
        "--opt",
        "oc=3",
        "--opt",
        "size=64",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let warping = warp_out.join("warping_network.pth");
    assert!(warping.is_file(), "{}", text(&o));
    assert!(warp_out.join("checkpoints/step_2/state.json").is_file());
    assert!(std::fs::read_to_string(warp_out.join("log.jsonl"))
        .unwrap()
        .contains("loss_tv"));

    let unet_out = tmp.path().join("unet");
    let u = unet_out.to_string_lossy().into_owned();
    let vae = fx("dci_viton_pipeline_vae_pretrained");
    let warping_opt = format!("warping={}", warping.display());
    let vae_opt = format!("vae={vae}");
    let o = vton(&[
        "train",
        "dci-viton-unet",
        "--data",
        &data,
        "--out",
        &u,
        "--vgg",
        &fx("training/train_dci_viton_unet.safetensors"),
        "--steps",
        "2",
        "--batch-size",
        "1",
        "--save-every",
        "2",
        "--opt",
        &vae_opt,
        "--opt",
        &warping_opt,
        "--opt",
        "image_size=64",
        "--opt",
        "warp_size=64",
        "--opt",
        "hidden_channels=1",
        "--opt",
        "time_emb_dim=16",
        "--opt",
        "num_groups=1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let unet = unet_out.join("diffusion_unet.pth");
    assert!(unet.is_file(), "{}", text(&o));
    assert!(std::fs::read_to_string(unet_out.join("log.jsonl"))
        .unwrap()
        .contains("mse"));

    // The two exported files and the VAE as a --weights folder.
    let weights = tmp.path().join("weights");
    std::fs::create_dir_all(&weights).unwrap();
    std::fs::copy(&warping, weights.join("warping_network.pth")).unwrap();
    std::fs::copy(&unet, weights.join("diffusion_unet.pth")).unwrap();
    copy_dir(Path::new(&vae), &weights.join("vae"));
    let person = Path::new(&data).join("test");
    let p = |s: &str| person.join(s).to_string_lossy().into_owned();
    let out = tmp.path().join("out.png").to_string_lossy().into_owned();
    let o = vton(&[
        "try-on",
        "--method",
        "dci-viton",
        "--weights",
        &weights.to_string_lossy(),
        "--person",
        &p("image/00001_00.jpg"),
        "--keypoints",
        &p("openpose_json/00001_00_keypoints.json"),
        "--parse",
        &p("image-parse-v3/00001_00.png"),
        "--garment",
        &p("cloth/00001_00.jpg"),
        "--garment-mask",
        &p("cloth-mask/00001_00.jpg"),
        "--densepose",
        &p("image-densepose/00001_00.jpg"),
        "--dci-num-groups",
        "1",
        "--dci-warp-size",
        "64",
        "--dci-image-size",
        "64",
        "--dci-sampler",
        "ddim",
        "--steps",
        "2",
        "--out",
        &out,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
}

#[test]
fn dci_training_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x").to_string_lossy().into_owned();
    let data = fx("vitonhd_tiny");
    for (args, needle) in [
        // no VAE for the U-Net
        (
            vec![
                "train",
                "dci-viton-unet",
                "--data",
                &data,
                "--out",
                &out,
                "--vgg",
                "/nonexistent/vgg.pth",
            ],
            "vae",
        ),
        // a misspelt option
        (
            vec![
                "train",
                "dci-viton-warp",
                "--data",
                &data,
                "--out",
                &out,
                "--vgg",
                "/nonexistent/vgg.pth",
                "--opt",
                "ocx=3",
            ],
            "ocx",
        ),
    ] {
        let o = vton(&args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let t = text(&o);
        assert!(t.contains(needle), "{args:?}: {t}");
        assert!(!t.contains("panicked"), "{args:?}: {t}");
    }
    let o = vton(&["try-on", "--method", "dci-viton", "--dci-sampler", "euler"]);
    assert!(!o.status.success());
}
