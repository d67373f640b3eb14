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
    // An incomplete set of inputs names what is missing (keypoints and masks are
    // estimated when absent; the garment photo cannot be).
    let out = vton(&["try-on", "--person", "a.png"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--garment"), "{err}");
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
    // --unet: the pipeline's own U-Net weights given as a file (read with its config)
    // give the same image as the pipeline alone; a missing file and a method without a
    // U-Net are one-line errors.
    let own = weights
        .join("unet")
        .join("diffusion_pytorch_model.safetensors");
    let with_unet = dir.path().join("inpaint_unet.png");
    let o = vton(
        &[
            "try-on",
            "--method",
            "inpaint",
            "--weights",
            w,
            "--steps",
            "2",
            "--size",
            "64x48",
            "--seed",
            "3",
            "--strength",
            "0.5",
            "--unet",
            own.to_str().unwrap(),
            "--out",
            with_unet.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(
        o.status.success(),
        "--unet: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        image::open(&with_unet).unwrap().to_rgb8().into_raw(),
        image::open(dir.path().join("inpaint.png"))
            .unwrap()
            .to_rgb8()
            .into_raw(),
        "the same U-Net through --unet gives the same image"
    );
    let o = vton(
        &[
            "try-on",
            "--method",
            "inpaint",
            "--weights",
            w,
            "--unet",
            "nope.safetensors",
        ],
        dir.path(),
    );
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("nope.safetensors"));
    let o = vton(&["try-on", "--unet", own.to_str().unwrap()], dir.path());
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--unet"));
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

    // --dtype: the same run with bfloat16 / float16 weights differs from the float32 image
    // (the option reaches the models) but stays close: mean absolute difference under half
    // of one 8-bit level (measured 0.028 for bfloat16, 0.003 for float16; the weights'
    // rounding moves the tiny random U-Net's output by a few 1e-3 normwise, see
    // vton-core/tests/half_weights.rs, and only the garment region is generated).
    let f32_img = image::open(dir.path().join("catvton.png"))
        .unwrap()
        .to_rgb8()
        .into_raw();
    for dtype in ["bfloat16", "float16"] {
        let out = dir.path().join(format!("catvton_{dtype}.png"));
        let o = vton(
            &[
                "try-on",
                "--method",
                "catvton",
                "--weights",
                w,
                "--steps",
                "2",
                "--size",
                "64x48",
                "--seed",
                "3",
                "--dtype",
                dtype,
                "--out",
                out.to_str().unwrap(),
            ],
            dir.path(),
        );
        assert!(
            o.status.success(),
            "--dtype {dtype}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let img = image::open(&out).unwrap().to_rgb8().into_raw();
        let mad = img
            .iter()
            .zip(&f32_img)
            .map(|(&a, &b)| (a as f64 - b as f64).abs())
            .sum::<f64>()
            / img.len() as f64;
        assert!(
            mad > 0.0 && mad < 0.5,
            "--dtype {dtype}: mean |diff| {mad:.4} levels"
        );
    }
    // A bad dtype, a dtype for a method without diffusion weights and a variant the
    // folder lacks are one-line errors.
    let o = vton(
        &[
            "try-on",
            "--method",
            "catvton",
            "--weights",
            w,
            "--dtype",
            "int8",
        ],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--dtype") && err.contains("int8"),
        "{err}"
    );
    let o = vton(&["try-on", "--dtype", "float16"], dir.path());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--dtype"), "{err}");
    let o = vton(
        &[
            "try-on",
            "--method",
            "inpaint",
            "--weights",
            w,
            "--variant",
            "fp16",
        ],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("fp16"), "{err}");
}

fn fixture(rel: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "tests", "fixtures", rel]
        .iter()
        .collect();
    p.to_string_lossy().into_owned()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn try_on_with_cpvton_finds_checkpoints_in_a_weights_folder() {
    let dir = tempfile::tempdir().unwrap();
    // The CP-VTON+ checkpoints layout: checkpoints/GMM/gmm_final.pth, checkpoints/TOM/tom_final.pth.
    let w = dir.path().join("checkpoints");
    std::fs::create_dir_all(w.join("GMM")).unwrap();
    std::fs::create_dir_all(w.join("TOM")).unwrap();
    std::fs::copy(fixture("gan/cpvton_gmm.pth"), w.join("GMM/gmm_final.pth")).unwrap();
    std::fs::copy(fixture("gan/cpvton_tom.pth"), w.join("TOM/tom_final.pth")).unwrap();
    let args = [
        "try-on",
        "--method",
        "cpvton",
        "--weights",
        "checkpoints",
        "--ngf",
        "8",
        "--person",
        &example("person/mpl_grace_hopper.png"),
        "--keypoints",
        &example("person/mpl_grace_hopper_keypoints.json"),
        "--person-mask",
        &example("person/mpl_grace_hopper_mask.png"),
        "--garment",
        &example("garment/openvto_shirt1_front.png"),
        "--garment-mask",
        &example("garment/openvto_shirt1_front_mask.png"),
        "--out",
        "cp.png",
        "--save-intermediates",
        "inter",
    ];
    ok(&vton(&args, dir.path()));
    assert_eq!(dims(&dir.path().join("cp.png")), (192, 256));
    assert_eq!(
        dims(&dir.path().join("inter/warped_garment.png")),
        (192, 256)
    );
    // The released width against this checkpoint: one line naming the key.
    let mut bad = args.to_vec();
    bad[6] = "64";
    let out = vton(&bad, dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.starts_with("error: ") && err.contains("model.model.0.weight"),
        "{err}"
    );
    // From the two photos alone: keypoints, person mask and garment mask estimated.
    let mut raw = args[..9].to_vec();
    raw.extend_from_slice(&["--garment", &args[14], "--out", "raw.png"]);
    ok(&vton(&raw, dir.path()));
    assert_eq!(dims(&dir.path().join("raw.png")), (192, 256));
    // A missing input is named.
    let out = vton(&args[..13], dir.path());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--garment"), "{err}");
}

#[test]
fn try_on_with_hrviton() {
    let dir = tempfile::tempdir().unwrap();
    let t = |rel: &str| fixture(&format!("vitonhd_tiny/test/{rel}"));
    let out = vton(
        &[
            "try-on",
            "--method",
            "hrviton",
            "--tocg",
            &fixture("gan/hrviton_tocg.pth"),
            "--generator",
            &fixture("gan/hrviton_gen.pth"),
            "--tocg-ngf",
            "8",
            "--ngf",
            "2",
            "--fine-size",
            "256x128",
            "--garment",
            &t("cloth/00002_00.jpg"),
            "--garment-mask",
            &t("cloth-mask/00002_00.jpg"),
            "--parse-agnostic",
            &t("image-parse-agnostic-v3.2/00001_00.png"),
            "--densepose",
            &t("image-densepose/00001_00.jpg"),
            "--agnostic",
            &t("agnostic-v3.2/00001_00.jpg"),
            "--out",
            "hr.png",
        ],
        dir.path(),
    );
    ok(&out);
    assert_eq!(dims(&dir.path().join("hr.png")), (128, 256));
    // From the person photo: keypoints, parse (SCHP fixture checkpoint), parse-agnostic,
    // agnostic image and cloth mask made by vton; only DensePose is still supplied.
    let base = [
        "try-on",
        "--method",
        "hrviton",
        "--tocg",
        &fixture("gan/hrviton_tocg.pth"),
        "--generator",
        &fixture("gan/hrviton_gen.pth"),
        "--tocg-ngf",
        "8",
        "--ngf",
        "2",
        "--fine-size",
        "256x128",
        "--garment",
        &t("cloth/00002_00.jpg"),
        "--densepose",
        &t("image-densepose/00001_00.jpg"),
        "--person",
        &t("image/00001_00.jpg"),
    ];
    let mut raw = base.to_vec();
    let parser = fixture("schp/schp_lip.pth");
    raw.extend_from_slice(&["--parser", &parser, "--out", "hr_raw.png"]);
    ok(&vton(&raw, dir.path()));
    assert_eq!(dims(&dir.path().join("hr_raw.png")), (128, 256));
    // Without a parse or a parser, the error says what to give.
    let out = vton(&base, dir.path());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--parser"));
}

#[test]
fn run_dataset_writes_every_pair_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let args = |mode: &str| {
        vec![
            "run-dataset".to_string(),
            "--model".into(),
            "hrviton".into(),
            "--tocg".into(),
            fixture("gan/hrviton_tocg.pth"),
            "--generator".into(),
            fixture("gan/hrviton_gen.pth"),
            "--tocg-ngf".into(),
            "8".into(),
            "--ngf".into(),
            "2".into(),
            "--fine-size".into(),
            "256x128".into(),
            "--data".into(),
            fixture("vitonhd_tiny"),
            "--out".into(),
            format!("res_{mode}"),
            "--mode".into(),
            mode.into(),
        ]
    };
    let run = |a: Vec<String>| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        vton(&a, dir.path())
    };
    let stdout = ok(&run(args("unpaired")));
    assert!(stdout.contains("2 written, 0 skipped"), "{stdout}");
    let res = dir.path().join("res_unpaired");
    for name in ["00001_00_00002_00.png", "00002_00_00001_00.png"] {
        assert_eq!(dims(&res.join(name)), (128, 256));
    }
    // Resume: a finished run writes nothing; a missing result is redone.
    let stdout = ok(&run(args("unpaired")));
    assert!(stdout.contains("0 written, 2 skipped"), "{stdout}");
    std::fs::remove_file(res.join("00002_00_00001_00.png")).unwrap();
    let stdout = ok(&run(args("unpaired")));
    assert!(stdout.contains("1 written, 1 skipped"), "{stdout}");
    assert!(
        std::fs::read_dir(&res).unwrap().count() == 2,
        "no partial files left"
    );
    // Paired: each person with their own garment.
    ok(&run(args("paired")));
    assert!(dir
        .path()
        .join("res_paired/00001_00_00001_00.png")
        .is_file());
    // CP-VTON+ over the same set.
    let out = vton(
        &[
            "run-dataset",
            "--model",
            "cpvton",
            "--gmm",
            &fixture("gan/cpvton_gmm.pth"),
            "--tom",
            &fixture("gan/cpvton_tom.pth"),
            "--ngf",
            "8",
            "--data",
            &fixture("vitonhd_tiny"),
            "--out",
            "cp",
            "--limit",
            "1",
        ],
        dir.path(),
    );
    ok(&out);
    assert_eq!(
        dims(&dir.path().join("cp/00001_00_00002_00.png")),
        (192, 256)
    );
    // Errors are one line.
    let out = vton(
        &[
            "run-dataset",
            "--model",
            "nope",
            "--data",
            &fixture("vitonhd_tiny"),
            "--out",
            "x",
        ],
        dir.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.starts_with("error: ") && err.contains("nope"),
        "{err}"
    );
    let out = vton(
        &[
            "run-dataset",
            "--model",
            "hrviton",
            "--data",
            "/nonexistent",
            "--out",
            "x",
        ],
        dir.path(),
    );
    assert!(!out.status.success());
}

#[test]
fn try_on_from_two_raw_photos() {
    let dir = tempfile::tempdir().unwrap();
    let person = example("person/openvto_ai_avatar2_upper.png");
    let out = vton(
        &[
            "try-on",
            "--person",
            &person,
            "--garment",
            &example("garment/openvto_shirt1_front.png"),
            "--out",
            "raw.png",
        ],
        dir.path(),
    );
    let stdout = ok(&out);
    assert!(stdout.contains("estimating keypoints"), "{stdout}");
    assert_eq!(
        dims(&dir.path().join("raw.png")),
        image::image_dimensions(&person).unwrap()
    );
    // Given keypoints take precedence: a file with no person fails instead of being
    // replaced by an estimate.
    std::fs::write(dir.path().join("empty.json"), r#"{"people": []}"#).unwrap();
    let out = vton(
        &[
            "try-on",
            "--person",
            &person,
            "--keypoints",
            "empty.json",
            "--garment",
            &example("garment/openvto_shirt1_front.png"),
        ],
        dir.path(),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no person"));
}

fn keypoints_of(path: &Path) -> Vec<f64> {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["people"][0]["pose_keypoints_2d"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn preprocess_flat_folder_resumes_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let people = dir.path().join("people");
    std::fs::create_dir_all(&people).unwrap();
    for name in ["openvto_ai_avatar1_upper.png", "skimage_astronaut.png"] {
        std::fs::copy(example(&format!("person/{name}")), people.join(name)).unwrap();
    }
    // A photo with no person in it (a flat grey image) is reported and skipped.
    image::RgbImage::from_pixel(64, 48, image::Rgb([128, 128, 128]))
        .save(people.join("zz_empty.png"))
        .unwrap();
    let args = [
        "preprocess",
        "--person",
        "people",
        "--garment",
        &example("garment/openvto_shirt3_front.png"),
        "--out",
        "pre",
    ];
    let out = vton(&args, dir.path());
    assert!(!out.status.success(), "the empty photo fails the run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zz_empty.png"), "{err}");
    let pre = dir.path().join("pre");
    for stem in ["openvto_ai_avatar1_upper", "skimage_astronaut"] {
        let kp = keypoints_of(&pre.join(format!("{stem}_keypoints.json")));
        assert_eq!(kp.len(), 75);
        let lm: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(pre.join(format!("{stem}_landmarks.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(lm["landmarks"].as_array().unwrap().len(), 33);
        let (pw, ph) = image::image_dimensions(example(&format!("person/{stem}.png"))).unwrap();
        assert_eq!(dims(&pre.join(format!("{stem}_mask.png"))), (pw, ph));
    }
    // The estimate is close to the corpus keypoints (made by MediaPipe 0.10.21): neck
    // within 5% of the image height.
    let kp = keypoints_of(&pre.join("openvto_ai_avatar1_upper_keypoints.json"));
    let given = keypoints_of(Path::new(&example(
        "person/openvto_ai_avatar1_upper_keypoints.json",
    )));
    let d = ((kp[3] - given[3]).powi(2) + (kp[4] - given[4]).powi(2)).sqrt();
    assert!(d < 0.05 * 512.0, "neck {d:.1} px from the corpus keypoints");
    assert!(pre.join("openvto_shirt3_front_mask.png").exists());
    assert!(!pre.join("zz_empty_keypoints.json").exists());
    // Re-running skips what exists (files untouched).
    std::fs::remove_file(people.join("zz_empty.png")).unwrap();
    let before = std::fs::metadata(pre.join("skimage_astronaut_mask.png"))
        .unwrap()
        .modified()
        .unwrap();
    ok(&vton(&args, dir.path()));
    let after = std::fs::metadata(pre.join("skimage_astronaut_mask.png"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
}

#[test]
fn preprocess_vitonhd_layout_reads_back_as_a_dataset() {
    use vton_core::io::vitonhd::{PairMode, VitonHdDataset};
    let dir = tempfile::tempdir().unwrap();
    let out = vton(
        &[
            "preprocess",
            "--person",
            &example("person/openvto_ai_avatar2_upper.png"),
            "--garment",
            &example("garment/openvto_shirt2_front.png"),
            "--parser",
            &fixture("schp/schp_lip.pth"),
            "--layout",
            "vitonhd",
            "--out",
            "vh",
        ],
        dir.path(),
    );
    ok(&out);
    let vh = dir.path().join("vh");
    for f in [
        "image/openvto_ai_avatar2_upper.jpg",
        "cloth/openvto_shirt2_front.jpg",
        "cloth-mask/openvto_shirt2_front.jpg",
        "openpose_json/openvto_ai_avatar2_upper_keypoints.json",
        "image-parse-v3/openvto_ai_avatar2_upper.png",
        "image-parse-agnostic-v3.2/openvto_ai_avatar2_upper.png",
        "agnostic-v3.2/openvto_ai_avatar2_upper.jpg",
        "test_pairs.txt",
    ] {
        assert!(vh.join(f).exists(), "{f} missing");
    }
    let ds = VitonHdDataset::open(&vh, None).unwrap();
    let pairs = ds.pairs(PairMode::Unpaired);
    assert_eq!(pairs.len(), 1);
    let sample = ds.cpvton_sample(&pairs[0]).unwrap();
    assert_eq!((sample.person.width, sample.person.height), (384, 512));
    assert_eq!((sample.parse.width, sample.parse.height), (384, 512));
    assert_eq!(sample.cloth_mask.width, sample.cloth.width);
    assert!(sample.pose.keypoints[1].confidence > 0.0, "neck estimated");
}
