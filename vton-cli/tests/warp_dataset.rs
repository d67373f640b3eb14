//! `vton run-dataset --model cpvton --stage gmm` (CP-VTON+'s test.py GMM stage): train a
//! tiny GMM, write `warp-cloth/` and `warp-mask/` into a copy of the bundled VITON-HD
//! pairs, and train a TOM on that folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vton(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vton"))
        .args(args)
        .output()
        .expect("the vton binary runs")
}

fn fixtures() -> PathBuf {
    [env!("CARGO_MANIFEST_DIR"), "..", "tests", "fixtures"]
        .iter()
        .collect()
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
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn s(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The GMM's fine size (height x width) and widths, small enough for seconds.
const H: u32 = 128;
const W: u32 = 64;

#[test]
fn gmm_stage_writes_warps_that_train_tom_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    copy_dir(&fixtures().join("vitonhd_tiny"), &data);
    let fine_h = format!("fine_height={H}");
    let fine_w = format!("fine_width={W}");
    let small = ["--opt", "ngf=4", "--opt", &fine_h, "--opt", &fine_w];

    // 1. A GMM, 1 step from scratch.
    let run = tmp.path().join("gmm_run");
    let mut args = vec![
        "train",
        "gmm",
        "--data",
        &s(&data),
        "--out",
        &s(&run),
        "--steps",
        "1",
        "--batch-size",
        "2",
        "--save-every",
        "1",
        "--val-every",
        "0",
        "--workers",
        "1",
        "--opt",
        "grid_size=3",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(small.iter().map(|x| x.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = vton(&a);
    assert!(o.status.success(), "{}", text(&o));
    let gmm = run.join("checkpoints/step_1/model.pth");
    assert!(gmm.is_file(), "{}", text(&o));

    // 2. The GMM stage over the folder: warp-cloth/, warp-mask/ beside image/ (the
    // layout `vton train` detects: test_pairs.txt with the folders in test/).
    let size = format!("{H}x{W}");
    let stage = |extra: &[&str]| {
        let mut a = vec![
            "run-dataset".to_string(),
            "--model".into(),
            "cpvton".into(),
            "--stage".into(),
            "gmm".into(),
            "--gmm".into(),
            s(&gmm),
            "--fine-size".into(),
            size.clone(),
            "--align-corners".into(),
            "false".into(),
            "--data".into(),
            s(&data),
        ];
        a.extend(extra.iter().map(|x| x.to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        vton(&a)
    };
    let o = stage(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 written, 0 skipped"), "{}", text(&o));
    let split = data.join("test");
    let pairs = std::fs::read_to_string(data.join("test_pairs.txt")).unwrap();
    let persons: Vec<&str> = pairs
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(persons.len(), 2);
    for p in &persons {
        for dir in ["warp-cloth", "warp-mask"] {
            let f = split.join(dir).join(p);
            assert!(f.is_file(), "{} missing", f.display());
            // Named like the person image (.jpg), so JPEG-encoded as PIL would.
            let bytes = std::fs::read(&f).unwrap();
            assert_eq!(&bytes[..2], &[0xFF, 0xD8], "{}: not a JPEG", f.display());
            let img = image::load_from_memory(&bytes).unwrap();
            assert_eq!((img.width(), img.height()), (W, H), "{}", f.display());
        }
        // The mask is `m * 255` of a warped {0, 1} mask: mostly near 0 or 255 (JPEG
        // ringing aside), and not empty (the warped garment covers part of the frame).
        let m = image::open(split.join("warp-mask").join(p))
            .unwrap()
            .to_luma8();
        let n = m.len() as f64;
        let extreme = m.iter().filter(|&&v| !(40..=215).contains(&v)).count() as f64;
        assert!(
            extreme / n > 0.9,
            "{p}: {extreme} of {n} pixels near 0 / 255"
        );
        assert!(m.iter().any(|&v| v >= 128), "{p}: empty warped mask");
        // The warped cloth is an image, not a constant.
        let c = image::open(split.join("warp-cloth").join(p))
            .unwrap()
            .to_rgb8();
        let (lo, hi) = c
            .iter()
            .fold((255u8, 0u8), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(hi - lo > 50, "{p}: warped cloth spans {lo}..{hi}");
    }
    // Nothing left behind but the results (atomic writes).
    for dir in ["warp-cloth", "warp-mask"] {
        let names: Vec<String> = std::fs::read_dir(split.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{dir}: {names:?}");
    }
    // Resume: a second run skips both; --overwrite redoes them.
    let o = stage(&[]);
    assert!(text(&o).contains("0 written, 2 skipped"), "{}", text(&o));
    let o = stage(&["--overwrite", "--limit", "1"]);
    assert!(text(&o).contains("1 written, 0 skipped"), "{}", text(&o));
    // --out elsewhere writes there instead.
    let elsewhere = tmp.path().join("warps");
    let o = stage(&["--out", &s(&elsewhere)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(elsewhere.join("warp-mask").join(persons[0]).is_file());

    // 3. TOM opens the folder and takes a step on the warped garments.
    let vgg = fixtures().join("training/train_cpvton_tom.safetensors");
    let tom_run = tmp.path().join("tom_run");
    let mut args = vec![
        "train",
        "tom",
        "--data",
        &s(&data),
        "--out",
        &s(&tom_run),
        "--steps",
        "1",
        "--batch-size",
        "1",
        "--save-every",
        "1",
        "--val-every",
        "0",
        "--workers",
        "1",
        "--vgg",
        &s(&vgg),
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    args.extend(small.iter().map(|x| x.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = vton(&a);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("trained 1 steps"), "{}", text(&o));
    assert!(tom_run.join("checkpoints/step_1/model.pth").is_file());

    // Without the warps, TOM says what is missing.
    std::fs::remove_dir_all(split.join("warp-mask")).unwrap();
    let other_run = s(&tmp.path().join("tom_run2"));
    let a: Vec<&str> = a
        .iter()
        .map(|x| {
            if *x == s(&tom_run) {
                other_run.as_str()
            } else {
                x
            }
        })
        .collect();
    let o = vton(&a);
    assert!(!o.status.success());
    assert!(text(&o).contains("warp-mask"), "{}", text(&o));
}

#[test]
fn gmm_stage_errors_are_clear() {
    let data = s(&fixtures().join("vitonhd_tiny"));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "run-dataset",
                "--model",
                "hrviton",
                "--stage",
                "gmm",
                "--data",
                &data,
            ],
            "--model cpvton",
        ),
        (
            vec![
                "run-dataset",
                "--model",
                "cpvton",
                "--stage",
                "tom",
                "--data",
                &data,
            ],
            "all, gmm",
        ),
        (
            vec![
                "run-dataset",
                "--model",
                "cpvton",
                "--stage",
                "gmm",
                "--data",
                &data,
                "--mode",
                "paired",
                "--gmm",
                "/nonexistent.pth",
            ],
            "--pairs",
        ),
        (
            vec![
                "run-dataset",
                "--model",
                "cpvton",
                "--stage",
                "gmm",
                "--data",
                &data,
                "--gmm",
                "/nonexistent.pth",
            ],
            "nonexistent.pth",
        ),
        (
            vec!["run-dataset", "--model", "cpvton", "--data", &data],
            "--out",
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
