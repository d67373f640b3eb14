//! `vton train` as a user runs it: a fresh GMM on the bundled VITON-HD pairs, the run
//! folder it writes, `--resume`, data-parallel `--devices`, and the errors for bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `vton` binary; a run still going after five minutes (these runs take seconds)
/// is killed and fails the test, so a deadlock shows as a failure, not a stalled CI job.
fn vton(args: &[&str]) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let mut child = Command::new(env!("CARGO_BIN_EXE_vton"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the vton binary runs");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            r.read_to_end(&mut buf).ok();
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for vton") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(300) {
            child.kill().ok();
            panic!("`vton {}` ran for over 300 s (hung?)", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn tiny() -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tests",
        "fixtures",
        "vitonhd_tiny",
    ]
    .iter()
    .collect();
    p.to_string_lossy().into_owned()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

const SMALL: [&str; 6] = [
    "--opt",
    "ngf=4",
    "--opt",
    "fine_height=128",
    "--opt",
    "fine_width=128",
];

fn gmm(out: &Path, steps: &str, extra: &[&str]) -> Output {
    let data = tiny();
    let out = out.to_string_lossy().to_string();
    let mut args = vec![
        "train",
        "gmm",
        "--data",
        &data,
        "--out",
        &out,
        "--steps",
        steps,
        "--batch-size",
        "2",
        "--save-every",
        "2",
        "--val-every",
        "2",
        "--workers",
        "1",
        "--opt",
        "grid_size=3",
    ];
    args.extend_from_slice(&SMALL);
    args.extend_from_slice(extra);
    vton(&args)
}

#[test]
fn train_gmm_writes_a_run_folder_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = gmm(&out, "2", &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("trained 2 steps"), "{}", text(&o));
    let step2 = out.join("checkpoints/step_2");
    for f in [
        "model.pth",
        "model.safetensors",
        "optimizer.safetensors",
        "state.json",
    ] {
        assert!(step2.join(f).is_file(), "{f} missing");
    }
    assert!(out.join("samples/step_00000002.png").is_file());
    let log = std::fs::read_to_string(out.join("log.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|l| l["losses"]["Lwarp"].is_number()));
    assert!(lines.iter().any(|l| l["validation"]["ssim"].is_number()));

    // The same folder again without --resume: refused, nothing overwritten.
    let o = gmm(&out, "4", &[]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--resume"), "{}", text(&o));

    // --resume continues to 4 steps.
    let o = gmm(&out, "4", &["--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resumed from"), "{}", text(&o));
    assert!(out.join("checkpoints/step_4/model.pth").is_file());
    let steps: Vec<u64> = std::fs::read_to_string(out.join("log.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            v.get("losses").and(v["step"].as_u64())
        })
        .collect();
    assert_eq!(
        steps,
        vec![1, 2, 3, 4],
        "one log line per step across the resume"
    );
}

#[test]
fn train_gmm_on_two_cpu_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let o = gmm(&tmp.path().join("dp"), "1", &["--devices", "cpu,cpu"]);
    assert!(o.status.success(), "{}", text(&o));
    // A batch smaller than the device count is refused by name.
    let data = tiny();
    let out = tmp.path().join("dp2").to_string_lossy().to_string();
    let o = vton(&[
        "train",
        "gmm",
        "--data",
        &data,
        "--out",
        &out,
        "--steps",
        "1",
        "--batch-size",
        "1",
        "--devices",
        "cpu,cpu",
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--batch-size"), "{}", text(&o));
}

#[test]
fn train_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("e").to_string_lossy().to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["train", "gmm", "--data", "/nonexistent/data", "--out", &out],
            "/nonexistent/data",
        ),
        (
            vec![
                "train",
                "gmm",
                "--data",
                "/tmp",
                "--out",
                &out,
                "--opt",
                "grid_sise=5",
            ],
            "grid_sise",
        ),
        (
            vec![
                "train", "gmm", "--data", "/tmp", "--out", &out, "--opt", "novalue",
            ],
            "NAME=VALUE",
        ),
        (
            vec!["train", "tom", "--data", "/tmp", "--out", &out],
            "--vgg",
        ),
        (
            // tocg trains from scratch without --weights, but always needs the VGG.
            vec!["train", "tocg", "--data", "/tmp", "--out", &out],
            "--vgg",
        ),
        (
            vec![
                "train",
                "gmm",
                "--data",
                "/tmp",
                "--out",
                &out,
                "--weights",
                "/nonexistent.pth",
            ],
            "nonexistent.pth",
        ),
    ];
    for (args, needle) in cases {
        let o = vton(&args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let t = text(&o);
        assert!(t.contains(needle), "{args:?}: {t}");
        assert!(!t.contains("panicked"), "{args:?}: {t}");
    }
}

/// The bundled tiny diffusers inpainting pipeline folder.
fn tiny_pipeline() -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tests",
        "fixtures",
        "tiny_inpaint_pipeline",
    ]
    .iter()
    .collect();
    p.to_string_lossy().to_string()
}

#[test]
fn train_unet_from_a_pipeline_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("u").to_string_lossy().to_string();
    let data = tiny();
    let pipe = tiny_pipeline();
    let o = vton(&[
        "train",
        "unet",
        "--data",
        &data,
        "--out",
        &out,
        "--weights",
        &pipe,
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--save-every",
        "0",
        "--opt",
        "resolution=32x24",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = Path::new(&out).join("checkpoints/step_2");
    for f in [
        "unet.safetensors",
        "unet.pth",
        "optimizer.safetensors",
        "state.json",
    ] {
        assert!(dir.join(f).is_file(), "{f}");
    }
}

#[test]
fn train_unet_on_two_cpu_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("udp").to_string_lossy().to_string();
    let data = tiny();
    let pipe = tiny_pipeline();
    let o = vton(&[
        "train",
        "unet",
        "--data",
        &data,
        "--out",
        &out,
        "--weights",
        &pipe,
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--save-every",
        "0",
        "--opt",
        "resolution=32x24",
        "--devices",
        "cpu,cpu",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("Unsupported"), "{}", text(&o));
    let dir = Path::new(&out).join("checkpoints/step_1");
    for f in ["unet.safetensors", "optimizer.safetensors", "state.json"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    let log = std::fs::read_to_string(Path::new(&out).join("log.jsonl")).unwrap();
    assert!(
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["losses"]["loss"].as_f64().is_some_and(f64::is_finite)),
        "a finite loss is logged"
    );
}
