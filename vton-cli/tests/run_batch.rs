//! `vton run-batch` end to end: the real binary, the geometric method on the bundled
//! examples (with their keypoints and masks, so nothing is estimated), copied into a
//! temporary folder so that the catalogue's relative paths are exercised.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

const PERSONS: [&str; 2] = ["openvto_ai_avatar1_upper", "openvto_ai_avatar2_upper"];
const GARMENTS: [&str; 2] = ["openvto_shirt2_front", "openvto_shirt1_front"];

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("examples")
}

/// Runs `vton ARGS` from `/` (so that nothing resolves against the working directory).
fn vton(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vton"))
        .args(args)
        .current_dir("/")
        .output()
        .expect("the vton binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Copies the persons (with keypoints and masks) and garments (with masks) into
/// `dir/data/person` and `dir/data/garment`.
fn copy_examples(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    for (sub, names, suffixes) in [
        (
            "person",
            &PERSONS,
            &[".png", "_keypoints.json", "_mask.png"][..],
        ),
        ("garment", &GARMENTS, &[".png", "_mask.png"][..]),
    ] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
        for n in names.iter() {
            for s in suffixes {
                let f = format!("{n}{s}");
                std::fs::copy(examples().join(sub).join(&f), data.join(sub).join(&f)).unwrap();
            }
        }
    }
    data
}

/// A catalogue line of person `p` and garment `g` with all their side files, paths
/// relative to `data/`.
fn line(p: &str, g: &str) -> String {
    format!(
        "person/{p}.png garment/{g}.png keypoints=person/{p}_keypoints.json \
         person_mask=person/{p}_mask.png garment_mask=garment/{g}_mask.png"
    )
}

fn output_name(p: &str, g: &str, ext: &str) -> String {
    format!("{p}__{g}.{ext}")
}

fn decode(p: &Path) -> image::RgbImage {
    image::open(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .to_rgb8()
}

fn mtime(p: &Path) -> SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn outputs_match_try_on_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = copy_examples(dir.path());
    let mut cat = String::from("# 2 persons x 2 garments\n\n");
    for p in PERSONS {
        for g in GARMENTS {
            cat.push_str(&line(p, g));
            cat.push('\n');
        }
    }
    let pairs = data.join("pairs.txt");
    std::fs::write(&pairs, cat).unwrap();
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut a = vec!["run-batch", "--pairs", s(&pairs), "--out", s(&out)];
        a.extend_from_slice(extra);
        vton(&a)
    };

    let r = run(&["--method", "geometric", "--workers", "2"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(
        text(&r.stdout).contains("done 4, skipped 0, failed 0"),
        "{}",
        text(&r.stdout)
    );
    let names: Vec<String> = PERSONS
        .iter()
        .flat_map(|p| GARMENTS.iter().map(move |g| output_name(p, g, "png")))
        .collect();
    for (i, n) in names.iter().enumerate() {
        let img = decode(&out.join(n));
        let (pw, ph) =
            image::image_dimensions(data.join(format!("person/{}.png", PERSONS[i / 2]))).unwrap();
        assert_eq!(img.dimensions(), (pw, ph), "{n}");
    }
    assert_eq!(
        std::fs::read_to_string(out.join("errors.jsonl")).unwrap(),
        ""
    );
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = manifest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let mut listed: Vec<&str> = lines
        .iter()
        .map(|l| l["output"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut want: Vec<&str> = names.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(listed, want);

    // The same pair through `vton try-on`: the same pixels (both decode the same files
    // and run GeometricTryOn; PNG is lossless, so any difference is a real one).
    let (p, g) = (PERSONS[1], GARMENTS[0]);
    let reference = dir.path().join("try_on.png");
    let f = |rel: String| data.join(rel).to_string_lossy().into_owned();
    let r = vton(&[
        "try-on",
        "--method",
        "geometric",
        "--person",
        &f(format!("person/{p}.png")),
        "--keypoints",
        &f(format!("person/{p}_keypoints.json")),
        "--person-mask",
        &f(format!("person/{p}_mask.png")),
        "--garment",
        &f(format!("garment/{g}.png")),
        "--garment-mask",
        &f(format!("garment/{g}_mask.png")),
        "--out",
        s(&reference),
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let batch = decode(&out.join(output_name(p, g, "png")));
    let single = decode(&reference);
    assert_eq!(batch.dimensions(), single.dimensions());
    let differing = batch
        .pixels()
        .zip(single.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(differing, 0, "pixels differing from vton try-on");

    // Resume: one output deleted, a stale temporary file of a killed run left behind;
    // the others get an old mtime, which a rewrite would change.
    let redo = &names[2];
    let before = std::fs::read(out.join(redo)).unwrap();
    std::fs::remove_file(out.join(redo)).unwrap();
    let stale = out.join(format!(".{}.partial", names[0]));
    std::fs::write(&stale, b"half an image").unwrap();
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let mut kept = Vec::new();
    for n in names.iter().filter(|n| *n != redo) {
        let f = std::fs::File::options()
            .write(true)
            .open(out.join(n))
            .unwrap();
        f.set_modified(old).unwrap();
        kept.push((n.clone(), std::fs::read(out.join(n)).unwrap()));
    }
    let r = run(&["--method", "geometric"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    let stdout = text(&r.stdout);
    assert!(stdout.contains("done 1, skipped 3, failed 0"), "{stdout}");
    assert!(!stale.exists(), "the stale temporary file is removed");
    assert_eq!(
        std::fs::read(out.join(redo)).unwrap(),
        before,
        "the redone output (geometric is deterministic)"
    );
    for (n, bytes) in &kept {
        assert_eq!(&std::fs::read(out.join(n)).unwrap(), bytes, "{n}");
        assert_eq!(mtime(&out.join(n)), old, "{n} was not rewritten");
    }
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    assert_eq!(manifest.lines().count(), 5, "one more line appended");
    let leftovers: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // --overwrite redoes all.
    let r = run(&["--method", "geometric", "--overwrite"]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(
        text(&r.stdout).contains("done 4, skipped 0, failed 0"),
        "{}",
        text(&r.stdout)
    );
    for (n, _) in &kept {
        assert_ne!(mtime(&out.join(n)), old, "{n} rewritten");
    }
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    assert_eq!(
        manifest.lines().count(),
        4,
        "--overwrite starts the manifest anew"
    );
}

#[test]
fn catalogue_errors_name_the_line_and_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = copy_examples(dir.path());
    let (p, g) = (PERSONS[0], GARMENTS[0]);
    let good = line(p, g);
    let dup = output_name(p, g, "png");
    let cases = [
        (
            "missing image",
            format!("# header\n{good}\nperson/nobody.png garment/{g}.png\n"),
            vec!["line 3:", "person file not found", "nobody.png"],
        ),
        (
            "unknown key",
            format!("{good} colour=red.png\n"),
            vec!["line 1:", "unknown key \"colour\""],
        ),
        (
            "duplicate output",
            format!(
                "{good}\n\n{}\n# the same pair from a copy elsewhere\n\
                 ../data/person/{p}.png garment/{g}.png\n",
                line(PERSONS[1], g)
            ),
            vec!["line 5:", "is also line 1's", &dup],
        ),
        (
            "malformed",
            format!("{good}\nperson/{p}.png\n{good} keypoints\n"),
            vec!["line 2:", "PERSON GARMENT", "line 3:", "key=PATH"],
        ),
        (
            "missing side file",
            format!("{good} parse=person/{p}_parse.png\n"),
            vec!["line 1:", "parse file not found"],
        ),
    ];
    for (what, cat, needles) in cases {
        let pairs = data.join("pairs.txt");
        std::fs::write(&pairs, cat).unwrap();
        let out = dir.path().join(format!("out-{}", what.replace(' ', "-")));
        let r = vton(&[
            "run-batch",
            "--pairs",
            s(&pairs),
            "--out",
            s(&out),
            "--method",
            "geometric",
        ]);
        assert!(!r.status.success(), "{what}");
        assert_eq!(r.status.code(), Some(1), "{what}: an error exit, no panic");
        let stderr = text(&r.stderr);
        for n in needles {
            assert!(stderr.contains(n), "{what}: {n:?} not in {stderr}");
        }
        assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        assert!(!out.exists(), "{what}: nothing written before the check");
    }
}

#[test]
fn a_failing_pair_is_recorded_and_the_others_complete() {
    let dir = tempfile::tempdir().unwrap();
    let data = copy_examples(dir.path());
    std::fs::write(data.join("person/broken.png"), b"not an image at all").unwrap();
    let (p, g) = (PERSONS[0], GARMENTS[0]);
    let cat = format!(
        "{}\nperson/broken.png garment/{g}.png\n{}\n",
        line(p, g),
        line(PERSONS[1], GARMENTS[1])
    );
    let pairs = data.join("pairs.txt");
    std::fs::write(&pairs, cat).unwrap();
    let out = dir.path().join("out");
    let r = vton(&[
        "run-batch",
        "--pairs",
        s(&pairs),
        "--out",
        s(&out),
        "--method",
        "geometric",
        "--options",
        r#"{"output_format":"jpeg","quality":85}"#,
    ]);
    assert!(!r.status.success());
    let stdout = text(&r.stdout);
    assert!(stdout.contains("done 2, skipped 0, failed 1"), "{stdout}");
    assert!(
        text(&r.stderr).contains("errors.jsonl"),
        "{}",
        text(&r.stderr)
    );
    for name in [
        output_name(p, g, "jpg"),
        output_name(PERSONS[1], GARMENTS[1], "jpg"),
    ] {
        let bytes = std::fs::read(out.join(&name)).unwrap();
        assert_eq!(
            image::guess_format(&bytes).unwrap(),
            image::ImageFormat::Jpeg,
            "{name}"
        );
        decode(&out.join(&name));
    }
    assert!(!out.join(output_name("broken", g, "jpg")).exists());
    let errors = std::fs::read_to_string(out.join("errors.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = errors
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{errors}");
    let e = &lines[0];
    assert_eq!(e["line"], 2);
    assert_eq!(e["output"], output_name("broken", g, "jpg"));
    assert!(e["person"].as_str().unwrap().ends_with("broken.png"), "{e}");
    assert!(
        e["garment"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{g}.png")),
        "{e}"
    );
    assert!(e["error"].as_str().unwrap().contains("person_image"), "{e}");

    // errors.jsonl is rewritten each run: the pair fixed, the rerun runs only it and
    // leaves no error behind.
    std::fs::copy(
        data.join(format!("person/{}.png", PERSONS[1])),
        data.join("person/broken.png"),
    )
    .unwrap();
    let r = vton(&[
        "run-batch",
        "--pairs",
        s(&pairs),
        "--out",
        s(&out),
        "--format",
        "jpeg",
    ]);
    assert!(r.status.success(), "{}", text(&r.stderr));
    assert!(
        text(&r.stdout).contains("done 1, skipped 2, failed 0"),
        "{}",
        text(&r.stdout)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("errors.jsonl")).unwrap(),
        ""
    );
}
