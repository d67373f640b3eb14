//! Runs the `vton` binary as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vton(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vton"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("the vton binary runs")
}

fn example(rel: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "examples", rel]
        .iter()
        .collect();
    p.to_string_lossy().into_owned()
}

fn dims(p: &Path) -> (u32, u32) {
    image::image_dimensions(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn no_arguments_runs_the_bundled_example() {
    let dir = tempfile::tempdir().unwrap();
    let out = vton(&["try-on"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("out/tryon.png"),
        "says where it wrote: {stdout}"
    );
    let (pw, ph) = image::image_dimensions(example("person/openvto_ai_avatar1_upper.png")).unwrap();
    assert_eq!(dims(&dir.path().join("out/tryon.png")), (pw, ph));
    // The panel is person | garment | result, all at the person's height.
    let (w, h) = dims(&dir.path().join("out/panel.png"));
    assert_eq!(h, ph);
    assert!(
        w > 2 * pw,
        "panel width {w} holds three images of width ~{pw}"
    );
}

#[test]
fn explicit_inputs_write_result_and_intermediates() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("r/result.png");
    let inter = dir.path().join("inter");
    let person = example("person/openvto_ai_avatar2_upper.png");
    let out = vton(
        &[
            "try-on",
            "--person",
            &person,
            "--keypoints",
            &example("person/openvto_ai_avatar2_upper_keypoints.json"),
            "--person-mask",
            &example("person/openvto_ai_avatar2_upper_mask.png"),
            "--garment",
            &example("garment/openvto_shirt1_front.png"),
            "--garment-mask",
            &example("garment/openvto_shirt1_front_mask.png"),
            "--out",
            res.to_str().unwrap(),
            "--save-intermediates",
            inter.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = image::image_dimensions(&person).unwrap();
    assert_eq!(dims(&res), size);
    for f in ["agnostic_mask.png", "warped_garment.png", "warped_mask.png"] {
        assert_eq!(dims(&inter.join(f)), size, "{f}");
    }
    // Intermediates are real: the warped mask covers part of the frame, not none or all.
    let m = image::open(inter.join("warped_mask.png"))
        .unwrap()
        .to_luma8();
    let on = m.pixels().filter(|p| p.0[0] > 127).count() as f64 / m.len() as f64;
    assert!(on > 0.02 && on < 0.8, "warped mask covers {on}");
}

#[test]
fn errors_are_one_line_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    // A missing file.
    let out = vton(
        &[
            "try-on",
            "--person",
            "nope.png",
            "--keypoints",
            &example("person/openvto_ai_avatar1_upper_keypoints.json"),
            "--garment",
            &example("garment/openvto_shirt2_front.png"),
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: ") && err.contains("nope.png"),
        "{err}"
    );
    // An incomplete set of inputs names what is missing.
    let out = vton(&["try-on", "--person", "a.png"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--keypoints"), "{err}");
    // An unsupported category.
    let out = vton(&["try-on", "--category", "dresses"], dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dresses"));
    assert!(!dir.path().join("out/tryon.png").exists());
}

#[test]
fn diffusion_methods_run_on_a_pipeline_folder() {
    let dir = tempfile::tempdir().unwrap();
    let weights: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "tests",
        "fixtures",
        "tiny_inpaint_pipeline",
    ]
    .iter()
    .collect();
    let w = weights.to_str().unwrap();
    for (method, extra) in [("catvton", vec![]), ("inpaint", vec!["--strength", "0.5"])] {
        let out = dir.path().join(format!("{method}.png"));
        let mut args = vec![
            "try-on",
            "--method",
            method,
            "--weights",
            w,
            "--steps",
            "2",
            "--size",
            "64x48",
            "--seed",
            "3",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let o = vton(&args, dir.path());
        assert!(
            o.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (pw, ph) =
            image::image_dimensions(example("person/openvto_ai_avatar1_upper.png")).unwrap();
        assert_eq!(
            dims(&out),
            (pw, ph),
            "{method}: result at the person's size"
        );
    }
    // A missing weights folder and a bad size are one-line errors.
    let o = vton(
        &["try-on", "--method", "catvton", "--weights", "nope"],
        dir.path(),
    );
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("nope"));
    let o = vton(
        &[
            "try-on",
            "--method",
            "catvton",
            "--weights",
            w,
            "--size",
            "64by48",
        ],
        dir.path(),
    );
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--size"));
    let o = vton(&["try-on", "--method", "magic"], dir.path());
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("magic"));
}
