//! SCHP human parsing against the original code (GoGoDuck912/Self-Correction-Human-Parsing,
//! see tests/fixtures/schp/schp_lip.json): the network's outputs, the released checkpoint's
//! container, the `simple_extractor.py` procedure end to end, bad checkpoints.

mod common;

use std::collections::HashMap;

use common::{assert_close, fixture, read_safetensors, tensor, test_device, values};
use vton_core::io::RgbImage;
use vton_core::models::schp::AugmentCE2P;
use vton_core::pipelines::parsing::{HumanParser, HumanParserOptions, PersonTransform};
use vton_core::weights::Checkpoint;
use vton_core::VtonError;

type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

const PROBE: &str = "fushion.3.weight";

fn st_path() -> std::path::PathBuf {
    fixture("schp/schp_lip.safetensors")
}

fn fx() -> Tensors {
    read_safetensors(&st_path())
}

fn json() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("schp/schp_lip.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn tol(key: &str) -> f32 {
    json()["tolerance"][key].as_f64().unwrap() as f32
}

fn get<'a>(t: &'a Tensors, key: &str) -> &'a [f32] {
    &t.get(key)
        .unwrap_or_else(|| panic!("fixture has no {key}"))
        .1
}

/// The photo of an e2e case, from its stored RGB values (0..255).
fn photo(t: &Tensors, case: &str) -> RgbImage {
    let (shape, v) = t.get(&format!("input.{case}.photo_rgb")).unwrap();
    let data = v.iter().map(|x| x / 255.0).collect();
    RgbImage::from_f32(shape[1], shape[0], data).unwrap()
}

fn case_options(case: &str, flip: bool) -> HumanParserOptions {
    let hw = &json()["e2e"]["cases"][case]["input_size_hw"];
    HumanParserOptions {
        input_height: hw[0].as_u64().unwrap() as usize,
        input_width: hw[1].as_u64().unwrap() as usize,
        flip,
    }
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn network_outputs_match_original() {
    let dev = test_device();
    let t = fx();
    let net = AugmentCE2P::from_checkpoint(st_path(), &dev).unwrap();
    assert_eq!(net.num_classes(), 20);
    let blocks = [
        net.layer1.len(),
        net.layer2.len(),
        net.layer3.len(),
        net.layer4.len(),
    ];
    assert_eq!(blocks, [3, 4, 23, 3], "block counts read from the keys");
    let x = tensor::<4>(&t, "input.image", &dev);
    let (out, feats) = net.forward_with_features(x);
    let (atol, rtol) = (tol("atol"), tol("rtol"));
    for (name, got) in [
        ("intermediate.layer1", feats.layer1),
        ("intermediate.layer2", feats.layer2),
        ("intermediate.layer3", feats.layer3),
        ("intermediate.layer4", feats.layer4),
        ("intermediate.context_encoding", feats.context_encoding),
        ("parsing", out.parsing),
        ("parsing_result", out.parsing_result),
        ("edge", out.edge),
    ] {
        let key = format!("output.{name}");
        assert_eq!(got.dims().to_vec(), t[&key].0, "{key} shape");
        let got = values(got);
        let want = get(&t, &key);
        eprintln!("{key}: max |diff| {:.3e}", max_abs_diff(&got, want));
        assert_close(&key, &got, want, atol, rtol);
    }
}

#[test]
fn flip_averaging_matches_evaluate_py() {
    let dev = test_device();
    let t = fx();
    let parser = HumanParser::from_checkpoint(st_path(), &dev)
        .unwrap()
        .with_options(HumanParserOptions {
            flip: true,
            ..Default::default()
        })
        .unwrap();
    let got = values(
        parser
            .network_logits(tensor::<4>(&t, "input.image", &dev))
            .unwrap(),
    );
    let want = get(&t, "output.flip_averaged");
    eprintln!("flip_averaged: max |diff| {:.3e}", max_abs_diff(&got, want));
    assert_close("flip_averaged", &got, want, tol("atol"), tol("rtol"));
}

#[test]
fn released_pth_container_loads_like_the_fixture() {
    // {'state_dict': {'module.<key>': ...}, 'cycle_n': 3}, legacy torch pickle, as released.
    let dev = test_device();
    let t = fx();
    let net = AugmentCE2P::from_checkpoint(fixture("schp/schp_lip.pth"), &dev).unwrap();
    let got = values(net.forward(tensor::<4>(&t, "input.image", &dev)).parsing);
    assert_close(
        "parsing (.pth)",
        &got,
        get(&t, "output.parsing"),
        tol("atol"),
        tol("rtol"),
    );
}

#[test]
fn person_transform_matches_get_affine_transform() {
    let j = json();
    for (case, meta) in j["e2e"]["cases"].as_object().unwrap() {
        let wh = &meta["photo_wh"];
        let hw = &meta["input_size_hw"];
        let as_usize = |v: &serde_json::Value| v.as_u64().unwrap() as usize;
        let t = PersonTransform::new(
            as_usize(&wh[0]),
            as_usize(&wh[1]),
            as_usize(&hw[1]),
            as_usize(&hw[0]),
        );
        for i in 0..2 {
            assert_eq!(
                t.center[i] as f64,
                meta["center"][i].as_f64().unwrap(),
                "{case} center"
            );
            assert_eq!(
                t.scale[i] as f64,
                meta["scale"][i].as_f64().unwrap(),
                "{case} scale"
            );
        }
        for (name, m) in [("trans", t.trans), ("trans_inv", t.trans_inv)] {
            for r in 0..2 {
                for c in 0..3 {
                    let want = meta[name][r][c].as_f64().unwrap();
                    let got = m[r * 3 + c];
                    assert!(
                        (got - want).abs() <= 1e-9 * (1.0 + want.abs()),
                        "{case} {name}[{r}][{c}]: {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// The end-to-end cases: warp + normalisation, network, transform_logits, argmax.
fn check_end_to_end(case: &str) {
    let dev = test_device();
    let t = fx();
    let parser = HumanParser::from_checkpoint(st_path(), &dev)
        .unwrap()
        .with_options(case_options(case, false))
        .unwrap();
    let image = photo(&t, case);
    let (x, pt) = parser.preprocess(&image).unwrap();
    let net_in_key = format!("output.{case}.network_input");
    if t.contains_key(&net_in_key) {
        // cv2.warpAffine on 8-bit BGR + ToTensor/Normalize: one 8-bit level is 1/(255*0.229).
        let got = values(x.clone());
        let d = max_abs_diff(&got, get(&t, &net_in_key));
        eprintln!("{case} network input: max |diff| {d:.3e}");
        assert!(d < 1e-5, "{case}: network input differs by {d}");
        let out = values(parser.network_logits(x.clone()).unwrap());
        assert_close(
            &format!("{case} network output"),
            &out,
            get(&t, &format!("output.{case}.network_output")),
            tol("atol"),
            tol("rtol"),
        );
    }
    let logits = parser
        .logits_to_photo(parser.network_logits(x).unwrap(), &pt)
        .unwrap();
    let want = get(&t, &format!("output.{case}.logits"));
    assert_eq!(logits.data.len(), want.len());
    let d = max_abs_diff(&logits.data, want);
    eprintln!("{case} logits on the photo: max |diff| {d:.3e}");
    assert_close(
        &format!("{case} logits"),
        &logits.data,
        want,
        tol("e2e_logits_atol"),
        tol("rtol"),
    );
    let map = parser.parse(&image).unwrap();
    let want_labels = get(&t, &format!("output.{case}.labels"));
    assert_eq!((map.width, map.height), (image.width, image.height));
    let same = map
        .labels
        .iter()
        .zip(want_labels)
        .filter(|(a, b)| **a as f32 == **b)
        .count();
    let pct = 100.0 * same as f64 / want_labels.len() as f64;
    eprintln!(
        "{case} labels equal: {pct:.3}% of {} pixels",
        want_labels.len()
    );
    let min_pct = json()["tolerance"]["e2e_label_agreement_min_pct"]
        .as_f64()
        .unwrap();
    assert!(pct >= min_pct, "{case}: {pct:.3}% < {min_pct}%");
}

#[test]
fn end_to_end_matches_simple_extractor_473() {
    check_end_to_end("e2e_473");
}

#[test]
fn end_to_end_matches_simple_extractor_reduced_input() {
    check_end_to_end("e2e_121x97");
}

#[test]
fn bad_checkpoints_are_typed_errors() {
    let dev = test_device();
    let ck = Checkpoint::open(st_path()).unwrap().rooted_at(PROBE);
    let load = |c: &Checkpoint| AugmentCE2P::load(c, &dev).unwrap_err();

    // Not a checkpoint, a missing file, a truncated pickle, a pickle that runs code.
    let e = HumanParser::from_checkpoint(common::example("person/mpl_grace_hopper.png"), &dev)
        .unwrap_err();
    assert!(matches!(e, VtonError::Checkpoint { .. }), "{e}");
    let e = HumanParser::from_checkpoint(fixture("schp/nope.pth"), &dev).unwrap_err();
    assert!(matches!(e, VtonError::FileNotFound { .. }), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("schp/schp_lip.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let e = HumanParser::from_checkpoint(&cut, &dev).unwrap_err();
    assert!(matches!(e, VtonError::Checkpoint { .. }), "{e}");
    let e = HumanParser::from_checkpoint(fixture("malicious.pth"), &dev).unwrap_err();
    assert!(matches!(e, VtonError::Checkpoint { .. }), "{e}");

    // Another model's checkpoint: missing keys, named.
    let e = HumanParser::from_checkpoint(fixture("gan/cpvton_gmm.pth"), &dev).unwrap_err();
    assert!(
        matches!(e, VtonError::MissingWeights { ref keys, .. } if keys.contains("conv1.weight")),
        "{e}"
    );
    // One tensor missing.
    let e = load(
        &ck.clone()
            .map_keys(|k| (k != "decoder.conv4.bias").then(|| k.to_string())),
    );
    assert!(
        matches!(e, VtonError::MissingWeights { ref keys, .. } if keys == "decoder.conv4.bias"),
        "{e}"
    );
    // A downsample branch missing where the block changes width.
    let e = load(
        &ck.clone()
            .map_keys(|k| (!k.starts_with("layer2.0.downsample")).then(|| k.to_string())),
    );
    assert!(
        matches!(e, VtonError::MissingWeights { ref keys, .. } if keys.contains("layer2.0.downsample.0.weight")),
        "{e}"
    );
    // A pyramid stage missing.
    let e = load(
        &ck.clone()
            .map_keys(|k| (!k.starts_with("context_encoding.stages.3")).then(|| k.to_string())),
    );
    assert!(matches!(e, VtonError::Config { .. }), "{e}");
    // Wrong shape: layer3's conv2 in place of layer2's.
    let e = load(&ck.clone().map_keys(|k| match k {
        "layer2.0.conv2.weight" => None,
        "layer3.0.conv2.weight" => Some("layer2.0.conv2.weight".into()),
        _ => Some(k.to_string()),
    }));
    assert!(
        matches!(e, VtonError::WeightShape { ref key, .. } if key == "layer2.0.conv2.weight"),
        "{e}"
    );
    // An unexpected tensor.
    let extra = ck.clone().overlay(
        ck.clone()
            .map_keys(|k| (k == "edge.conv5.bias").then(|| "edge.conv6.bias".to_string())),
    );
    let e = load(&extra);
    assert!(
        matches!(e, VtonError::UnexpectedWeights { ref keys, .. } if keys.contains("edge.conv6.bias")),
        "{e}"
    );
}

#[test]
fn bad_options_and_images_are_typed_errors() {
    let dev = test_device();
    let parser = HumanParser::from_checkpoint(st_path(), &dev).unwrap();
    let e = HumanParser::from_checkpoint(st_path(), &dev)
        .unwrap()
        .with_options(HumanParserOptions {
            input_height: 8,
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(e, VtonError::InvalidArgument { .. }), "{e}");
    let tiny = RgbImage::filled(1, 5, [0.5, 0.5, 0.5]);
    let e = parser.parse(&tiny).unwrap_err();
    assert!(matches!(e, VtonError::Shape { .. }), "{e}");
    // The smallest accepted inputs run (PSP pools larger than layer4's 2x2 map).
    for (w, h) in [(32, 32), (47, 33)] {
        let img = RgbImage::filled(w, h, [0.2, 0.5, 0.7]);
        let x = img.to_tensor(&dev, vton_core::io::ValueRange::ZeroOne);
        let out = parser.network_logits(x).unwrap();
        assert_eq!(out.dims()[1], 20);
        let map = parser.parse(&img).unwrap();
        assert_eq!((map.width, map.height), (w, h));
    }
    let small = RgbImage::filled(3, 2, [0.5, 0.5, 0.5]);
    let e = parser.network_logits(small.to_tensor(&dev, vton_core::io::ValueRange::ZeroOne));
    assert!(matches!(e, Err(VtonError::Shape { .. })));
}

/// With the released checkpoint (`SCHP_CHECKPOINT=.../exp-schp-201908261155-lip.pth`):
/// an example photo at the default 473x473; labels present on a person photo.
#[test]
#[ignore]
fn released_checkpoint_parses_an_example_photo() {
    let Ok(path) = std::env::var("SCHP_CHECKPOINT") else {
        eprintln!("SCHP_CHECKPOINT not set");
        return;
    };
    let dev = test_device();
    let t0 = std::time::Instant::now();
    let parser = HumanParser::from_checkpoint(&path, &dev).unwrap();
    let load = t0.elapsed();
    let image =
        vton_core::io::read_image(common::example("person/openvto_real1_selfie.png")).unwrap();
    let t1 = std::time::Instant::now();
    let map = parser.parse(&image).unwrap();
    eprintln!("load {load:?}, parse {:?}", t1.elapsed());
    let mut hist = [0usize; 20];
    for &l in &map.labels {
        hist[l as usize] += 1;
    }
    eprintln!("label histogram {hist:?}");
    assert_eq!((map.width, map.height), (image.width, image.height));
    // background, hair, face and some clothing on a portrait photo
    for label in [0usize, 2, 13] {
        assert!(hist[label] > 0, "label {label} absent: {hist:?}");
    }
}
