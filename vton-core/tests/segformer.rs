//! SegFormer (transformers `SegformerForSemanticSegmentation` + `SegformerImageProcessor`)
//! against transformers itself (scripts/reference/gen_segformer.py; tests/fixtures/
//! segformer_{a,b}.json, segformer_processor.json): logits of two random tiny configs
//! loaded from their `save_pretrained` folders (safetensors and pytorch_model.bin), the
//! processor on a real photo, DCI-VITON's parsehuman.py path (processor, model, bilinear
//! upsampling to the photo, argmax), the 24 -> LIP label mapping, typed errors.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{assert_close, fixture, read_safetensors, tensor, test_device, values};
use vton_core::io::{read_image, ParseMap};
use vton_core::models::segformer::{
    legacy_key, SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor,
};
use vton_core::pipelines::parsing::{
    segformer24_map_to_lip, segformer24_to_lip, HumanParser, HumanParserOptions,
    SEGFORMER24_LABELS, SEGFORMER24_TO_LIP,
};
use vton_core::weights::Checkpoint;
use vton_core::VtonError;

type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn folder(case: &str) -> PathBuf {
    fixture(&format!("segformer_{case}_pretrained"))
}

fn photo() -> PathBuf {
    fixture("segformer_photo/openvto_ai_avatar1_upper.png")
}

fn get<'a>(t: &'a Tensors, key: &str) -> &'a [f32] {
    &t.get(key)
        .unwrap_or_else(|| panic!("fixture has no {key}"))
        .1
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Logits and every stage output of both configurations, each loaded from its folder (a:
/// model.safetensors, b: pytorch_model.bin), within atol (10x the float64 floor) + rtol 1e-4.
#[test]
fn logits_match_transformers_for_both_configs() {
    let dev = test_device();
    for case in ["a", "b"] {
        let j = json(&format!("segformer_{case}.json"));
        let fx = read_safetensors(&fixture(&format!("segformer_{case}.safetensors")));
        let weights = j["weights_file"].as_str().unwrap();
        assert!(folder(case).join(weights).is_file(), "{case}: {weights}");
        let model = SegformerForSemanticSegmentation::from_pretrained(folder(case), &dev).unwrap();
        // Widths and counts come from config.json: compare with the reference's arguments.
        let c = model.config();
        let want: Vec<usize> = j["constructor"]["hidden_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(c.hidden_sizes, want, "{case}");
        assert_eq!(c.num_labels(), j["num_labels"].as_u64().unwrap() as usize);
        let atol = j["tolerance"]["atol"].as_f64().unwrap() as f32;
        let rtol = j["tolerance"]["rtol"].as_f64().unwrap() as f32;
        let x = tensor::<4>(&fx, "input.pixel_values", &dev);
        let (logits, stages) = model.forward_with_stages(x).unwrap();
        assert_eq!(
            logits.dims().to_vec(),
            fx["output.logits"].0,
            "{case}: logits shape"
        );
        for (i, s) in stages.into_iter().enumerate() {
            let key = format!("output.intermediate.stage{i}");
            assert_eq!(s.dims().to_vec(), fx[&key].0, "{case}: {key} shape");
            assert_close(
                &format!("{case} {key}"),
                &values(s),
                get(&fx, &key),
                atol,
                rtol,
            );
        }
        let got = values(logits);
        let want = get(&fx, "output.logits");
        eprintln!(
            "segformer_{case}: logits max |got - ref| = {:.3e} (atol {atol:.2e}, |ref| <= {:.2})",
            max_abs(&got, want),
            want.iter().fold(0f32, |m, v| m.max(v.abs()))
        );
        assert_close(&format!("{case} logits"), &got, want, atol, rtol);
    }
}

/// The published key names are what the folders hold; a state dict with transformers 5's
/// in-memory names (segformer.stages.N..., q_proj, linear_projections) loads to the same
/// model.
#[test]
fn transformers5_key_names_load_too() {
    let dev = test_device();
    let ck = Checkpoint::open(folder("a").join("model.safetensors")).unwrap();
    assert!(ck.contains("segformer.encoder.patch_embeddings.0.proj.weight"));
    assert!(ck.contains("decode_head.linear_c.0.proj.weight"));
    let to_v5 = |k: &str| -> String {
        let mut s = k.to_string();
        for (old, new) in [
            (
                ".attention.self.sr.",
                ".attention.sequence_reduction.sequence_reduction.",
            ),
            (
                ".attention.self.layer_norm.",
                ".attention.sequence_reduction.layer_norm.",
            ),
            (".attention.self.query.", ".attention.q_proj."),
            (".attention.self.key.", ".attention.k_proj."),
            (".attention.self.value.", ".attention.v_proj."),
            (".attention.output.dense.", ".attention.o_proj."),
            (".mlp.dense1.", ".mlp.fc1."),
            (".mlp.dense2.", ".mlp.fc2."),
            (".layer_norm_1.", ".layernorm_before."),
            (".layer_norm_2.", ".layernorm_after."),
            ("decode_head.linear_c.", "decode_head.linear_projections."),
        ] {
            s = s.replace(old, new);
        }
        for (old, new) in [
            ("segformer.encoder.patch_embeddings.", "patch_embeddings."),
            ("segformer.encoder.block.", "blocks."),
            ("segformer.encoder.layer_norm.", "layer_norm."),
        ] {
            if let Some(rest) = s.strip_prefix(old) {
                let (n, tail) = rest.split_once('.').unwrap();
                s = format!("segformer.stages.{n}.{new}{tail}");
            }
        }
        s
    };
    let v5 = ck.clone().map_keys(|k| Some(to_v5(k)));
    assert!(v5.contains("segformer.stages.1.blocks.0.attention.q_proj.weight"));
    for k in ck.keys() {
        assert_eq!(legacy_key(&to_v5(k)), k);
    }
    let config = SegformerConfig::from_file(folder("a").join("config.json")).unwrap();
    let fx = read_safetensors(&fixture("segformer_a.safetensors"));
    let m1 = SegformerForSemanticSegmentation::load(&config, &ck, &dev).unwrap();
    let m2 = SegformerForSemanticSegmentation::load(&config, &v5, &dev).unwrap();
    let x = tensor::<4>(&fx, "input.pixel_values", &dev);
    let a = values(m1.forward(x.clone()).unwrap());
    let b = values(m2.forward(x).unwrap());
    assert_eq!(a, b);
}

/// The processor's PIL resize is bit-exact (8-bit) against PIL for the folder's config
/// (256x256 bilinear, shrinking), the defaults (512x512 bilinear: the folder without
/// preprocessor_config.json; width grows) and a bicubic non-square config with other
/// rescale/mean/std, whose float32 pixel values are compared too.
#[test]
fn processor_matches_transformers() {
    let dev = test_device();
    let fx = read_safetensors(&fixture("segformer_processor.safetensors"));
    let j = json("segformer_processor.json");
    let img = read_image(photo()).unwrap();
    let rgb = img.to_rgb8();
    let (w, h) = (img.width, img.height);

    let pa = SegformerImageProcessor::from_pretrained(folder("a")).unwrap();
    assert_eq!(pa.size, (256, 256));
    let pd = SegformerImageProcessor::from_pretrained(folder("b")).unwrap();
    assert_eq!(pd, SegformerImageProcessor::default());
    let kw = &j["cases"]["bicubic"]["kwargs"];
    let pb = SegformerImageProcessor::from_value(kw, "bicubic case").unwrap();
    assert_eq!(pb.size, (300, 120));

    for (name, p) in [("a", &pa), ("default", &pd)] {
        let (ow, oh, px) = p.resize_rgb8(w, h, &rgb).unwrap();
        let key = format!("output.{name}.resized_u8");
        assert_eq!(fx[&key].0, vec![oh, ow, 3], "{name}");
        let want: Vec<u8> = get(&fx, &key).iter().map(|&v| v as u8).collect();
        let differ = px.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{name}: {differ} resized bytes differ from PIL");
        // pixel_values = (u8 * factor (f64 -> f32) - mean) / std in float32, as numpy.
        let t = p.preprocess(&img, &dev).unwrap();
        assert_eq!(t.dims(), [1, 3, oh, ow]);
        let got = values(t);
        let plane = oh * ow;
        for c in 0..3 {
            for i in (0..plane).step_by(97) {
                let u = want[i * 3 + c] as f64;
                let v = ((u * p.rescale_factor) as f32 - p.image_mean[c] as f32)
                    / p.image_std[c] as f32;
                assert_eq!(got[c * plane + i], v);
            }
        }
    }
    let got = values(pb.preprocess(&img, &dev).unwrap());
    let want = get(&fx, "output.bicubic.pixel_values");
    assert_eq!(got.len(), want.len());
    let worst = max_abs(&got, want);
    eprintln!("bicubic processor: max |got - ref| = {worst:e}");
    assert_eq!(worst, 0.0, "bicubic pixel values are not bit-exact");
}

/// parsehuman.py on a real photo: pixel values -> logits (1/4 of 256x256) within the
/// fixture tolerance, then the upsampled argmax at the photo's 384x512.
///
/// Label bound: bilinear upsampling is a convex combination, so our upsampled logits are
/// within `e` (the largest network-logit error) of the reference's; a label can differ only
/// where our top-2 margin is <= 2e. Every differing pixel must be such a near-tie, and
/// there may be at most 0.05 % of them (98 of 196,608; the fixture counts 482 pixels with
/// a reference margin under 1e-3 and e is ~1e-5, so a handful at most is expected).
#[test]
fn photo_label_map_matches_parsehuman() {
    let dev = test_device();
    let fx = read_safetensors(&fixture("segformer_a.safetensors"));
    let j = json("segformer_a.json");
    let (atol, rtol) = (
        j["tolerance"]["atol"].as_f64().unwrap() as f32,
        j["tolerance"]["rtol"].as_f64().unwrap() as f32,
    );
    let parser = HumanParser::from_pretrained(folder("a"), &dev).unwrap();
    assert_eq!(parser.num_labels(), 24);
    assert_eq!(parser.options().input_height, 256);
    let names = parser.label_names();
    assert!(names.iter().map(String::as_str).eq(SEGFORMER24_LABELS));
    let seg = parser.segformer().expect("a SegFormer parser");
    assert!(parser.network().is_none());

    let img = read_image(photo()).unwrap();
    let logits = values(seg.logits(&img, &dev).unwrap());
    let want = get(&fx, "output.photo_logits");
    let e = max_abs(&logits, want);
    assert_close("photo logits", &logits, want, atol, rtol);

    let pl = parser.parse_logits(&img).unwrap();
    assert_eq!((pl.width, pl.height, pl.channels), (384, 512, 24));
    let map = pl.argmax().unwrap();
    assert_eq!(map, parser.parse(&img).unwrap());
    let want_labels = get(&fx, "output.photo_labels");
    assert_eq!(fx["output.photo_labels"].0, vec![512, 384]);
    let mut differ = 0;
    for (p, (&got, &want)) in map.labels.iter().zip(want_labels).enumerate() {
        if got as f32 != want {
            differ += 1;
            let px = &pl.data[p * 24..(p + 1) * 24];
            let margin = px[got as usize] - px[want as usize];
            assert!(
                margin <= 2.0 * e + 1e-6,
                "pixel {p}: label {got} vs {want} with margin {margin} > 2e = {}",
                2.0 * e
            );
        }
    }
    let n = map.labels.len();
    eprintln!(
        "photo: logits max err e = {e:.3e}; {differ} of {n} labels differ ({:.4} %)",
        100.0 * differ as f64 / n as f64
    );
    assert!(differ * 2000 <= n, "{differ} labels differ");
    // The label map is not degenerate (the fixture's histogram has 18 classes).
    let mut seen = [false; 24];
    map.labels.iter().for_each(|&l| seen[l as usize] = true);
    assert!(seen.iter().filter(|&&s| s).count() >= 10);

    // The LIP view of it, and what the pipelines do with a LIP map.
    let lip = parser.parse_lip(&img).unwrap();
    assert_eq!(lip.num_labels, 20);
    assert_eq!(lip, segformer24_map_to_lip(&map).unwrap());
    lip.to_hrviton13().unwrap();
}

#[test]
fn segformer24_to_lip_table() {
    use vton_core::io::parse::LIP_LABELS;
    assert_eq!(SEGFORMER24_TO_LIP.len(), SEGFORMER24_LABELS.len());
    let lip = |name: &str| LIP_LABELS.iter().position(|&n| n == name).unwrap() as u8;
    for (name, want) in [
        ("background", lip("background")),
        ("hat", lip("hat")),
        ("hair", lip("hair")),
        ("glove", lip("glove")),
        ("glasses", lip("sunglasses")),
        ("upper_only_torso_region", lip("upper-clothes")),
        ("dresses_only_torso_region", lip("dress")),
        ("coat_only_torso_region", lip("coat")),
        ("socks", lip("socks")),
        ("left_pants", lip("pants")),
        ("right_patns", lip("pants")),
        ("skin_around_neck_region", lip("jumpsuits/neck")),
        ("scarf", lip("scarf")),
        ("skirts", lip("skirt")),
        ("face", lip("face")),
        ("left_arm", lip("left-arm")),
        ("right_arm", lip("right-arm")),
        ("left_leg", lip("left-leg")),
        ("right_leg", lip("right-leg")),
        ("left_shoe", lip("left-shoe")),
        ("right_shoe", lip("right-shoe")),
        ("left_sleeve_for_upper", lip("upper-clothes")),
        ("right_sleeve_for_upper", lip("upper-clothes")),
        ("bag", lip("background")),
    ] {
        let id = SEGFORMER24_LABELS.iter().position(|&n| n == name).unwrap() as u8;
        assert_eq!(segformer24_to_lip(id), Some(want), "{name}");
    }
    assert_eq!(segformer24_to_lip(24), None);
    // Every LIP label is reachable (10 = VITON-HD's neck).
    for l in 0..20u8 {
        assert!(SEGFORMER24_TO_LIP.contains(&l), "LIP {l}");
    }
    let m = ParseMap::new(4, 1, vec![10, 11, 21, 23], 24).unwrap();
    let l = segformer24_map_to_lip(&m).unwrap();
    assert_eq!(
        (l.labels.as_slice(), l.num_labels),
        (&[9u8, 10, 5, 0][..], 20)
    );
    let not24 = ParseMap::new(1, 1, vec![0], 20).unwrap();
    assert!(matches!(
        segformer24_map_to_lip(&not24),
        Err(VtonError::InvalidArgument { .. })
    ));
}

/// A copy of a fixture folder in a temporary directory, with `edit` applied to its config.
fn edited_copy(case: &str, edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(folder(case)).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let cfg = dir.path().join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&cfg, serde_json::to_string(&v).unwrap()).unwrap();
    dir
}

fn load(p: &Path) -> Result<SegformerForSemanticSegmentation, VtonError> {
    SegformerForSemanticSegmentation::from_pretrained(p, &test_device())
}

#[test]
fn typed_errors() {
    let dev = test_device();
    // A missing architecture key.
    let d = edited_copy("b", |v| {
        v.as_object_mut().unwrap().remove("depths");
    });
    match load(d.path()) {
        Err(VtonError::Config { what, .. }) => assert!(what.contains("depths"), "{what}"),
        other => panic!("{other:?}"),
    }
    // Heads that do not divide the width.
    let d = edited_copy("b", |v| v["num_attention_heads"][1] = 5.into());
    assert!(matches!(load(d.path()), Err(VtonError::Config { .. })));
    // A config wider than the weights: a shape error naming the key.
    let d = edited_copy("b", |v| v["hidden_sizes"][0] = 16.into());
    match load(d.path()) {
        Err(VtonError::WeightShape { key, .. }) => {
            assert_eq!(key, "segformer.encoder.patch_embeddings.0.proj.weight")
        }
        other => panic!("{other:?}"),
    }
    // More labels than the classifier has.
    let d = edited_copy("a", |v| {
        v["id2label"]["24"] = "extra".into();
        v.as_object_mut().unwrap().remove("label2id");
    });
    match load(d.path()) {
        Err(VtonError::WeightShape { key, .. }) => assert_eq!(key, "decode_head.classifier.weight"),
        other => panic!("{other:?}"),
    }
    // One more block than the checkpoint holds: the missing key is named.
    let d = edited_copy("b", |v| v["depths"][0] = 2.into());
    match load(d.path()) {
        Err(VtonError::MissingWeights { keys, .. }) => {
            assert!(keys.starts_with("segformer.encoder.block.0.1."), "{keys}")
        }
        other => panic!("{other:?}"),
    }
    // One block fewer: the checkpoint's extra tensors are unexpected.
    let d = edited_copy("b", |v| v["depths"][1] = 2.into());
    match load(d.path()) {
        Err(VtonError::UnexpectedWeights { keys, .. }) => {
            assert!(keys.contains("segformer.encoder.block.1.2."), "{keys}")
        }
        other => panic!("{other:?}"),
    }
    // A missing tensor in the checkpoint itself.
    let config = SegformerConfig::from_file(folder("a").join("config.json")).unwrap();
    let ck = Checkpoint::open(folder("a").join("model.safetensors"))
        .unwrap()
        .map_keys(|k| (k != "decode_head.batch_norm.running_var").then(|| k.to_string()));
    match SegformerForSemanticSegmentation::load(&config, &ck, &dev) {
        Err(VtonError::MissingWeights { keys, .. }) => {
            assert_eq!(keys, "decode_head.batch_norm.running_var")
        }
        other => panic!("{other:?}"),
    }
    // A folder without weights, a path that does not exist, a non-SegFormer config.
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(
        folder("a").join("config.json"),
        d.path().join("config.json"),
    )
    .unwrap();
    assert!(matches!(
        load(d.path()),
        Err(VtonError::FileNotFound { .. })
    ));
    assert!(matches!(
        load(&fixture("segformer_nope")),
        Err(VtonError::FileNotFound { .. })
    ));
    assert!(matches!(
        SegformerConfig::from_json(r#"{"model_type": "vit"}"#, "x"),
        Err(VtonError::Config { .. })
    ));
    // Processor: unsupported filter, bad size, bad mean.
    let p = |s: &str| SegformerImageProcessor::from_value(&serde_json::from_str(s).unwrap(), "p");
    assert!(matches!(
        p(r#"{"resample": 4}"#),
        Err(VtonError::Unsupported { .. })
    ));
    assert!(matches!(
        p(r#"{"resample": 9}"#),
        Err(VtonError::InvalidArgument { .. })
    ));
    assert!(matches!(
        p(r#"{"size": {"shortest_edge": 512}}"#),
        Err(VtonError::Unsupported { .. })
    ));
    assert!(matches!(
        p(r#"{"image_mean": [0.5, 0.5]}"#),
        Err(VtonError::Config { .. })
    ));
    assert_eq!(p(r#"{"size": 320}"#).unwrap().size, (320, 320));
    // Inputs: wrong channel count, too small for the sequence reduction.
    let model = load(&folder("a")).unwrap();
    let x = burn::tensor::Tensor::<4>::zeros([1, 4, 64, 64], &dev);
    assert!(matches!(model.forward(x), Err(VtonError::Shape { .. })));
    let x = burn::tensor::Tensor::<4>::zeros([1, 3, 16, 16], &dev);
    assert!(matches!(model.forward(x), Err(VtonError::Shape { .. })));
    // Parser options: no flip for SegFormer; the input size is the processor's.
    let parser = HumanParser::from_pretrained(folder("a"), &dev).unwrap();
    let e = parser
        .clone()
        .with_options(HumanParserOptions {
            input_height: 256,
            input_width: 256,
            flip: true,
        })
        .unwrap_err();
    assert!(matches!(e, VtonError::Unsupported { .. }));
    let p2 = parser
        .with_options(HumanParserOptions {
            input_height: 128,
            input_width: 96,
            flip: false,
        })
        .unwrap();
    assert_eq!(p2.segformer().unwrap().processor.size, (128, 96));
    assert!(matches!(
        p2.preprocess(&read_image(photo()).unwrap()),
        Err(VtonError::Unsupported { .. })
    ));
    // A label set without a LIP mapping.
    let pb = HumanParser::from_pretrained(folder("b"), &dev).unwrap();
    let small = vton_core::io::RgbImage::from_rgb8(64, 64, &vec![128u8; 64 * 64 * 3]).unwrap();
    assert_eq!(pb.parse(&small).unwrap().num_labels, 7);
    assert!(matches!(
        pb.parse_lip(&small),
        Err(VtonError::Unsupported { .. })
    ));
}
