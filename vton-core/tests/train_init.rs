//! Fresh initialisation of HR-VITON's condition generator and discriminator
//! (`train::init::{tocg_fresh, discriminator_fresh}`): the key set and shapes of the
//! original's state dicts (tests/fixtures/training/train_hrviton_tocg{,_spectral}, built
//! by `train_condition.py` with ngf 4, ndf 6), the distributions `train_condition.py`
//! leaves them with, determinism by seed, and a training step from them.

mod common;

use std::collections::{BTreeMap, HashMap};

use burn::tensor::Device;
use serde_json::Value;
use vton_core::train::drive::{condition_options, Opts};
use vton_core::train::hrviton::{ConditionBatch, ConditionGeneratorTrainer, ConditionTrainOptions};
use vton_core::train::init::{discriminator_fresh, tocg_fresh};
use vton_core::weights::Checkpoint;

/// The fixture's widths (see its JSON's `constructors`).
const FIXTURE_NGF: usize = 4;
const FIXTURE_NDF: usize = 6;

fn case(name: &str) -> Value {
    let dir = common::fixture("training");
    serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
        .unwrap()
}

/// The fixture's `opt` read by the drive's own option reader (as `vton train tocg` does).
fn options(json: &Value) -> ConditionTrainOptions {
    let map = json["opt"].as_object().unwrap().clone();
    condition_options(&Opts::new(&map)).unwrap()
}

fn fixture_checkpoint(json: &Value, prefix: &str) -> Checkpoint {
    let path = common::fixture("training").join(json["file"].as_str().unwrap());
    let p = prefix.to_string();
    Checkpoint::open(&path)
        .unwrap()
        .map_keys(move |k| k.strip_prefix(&p).map(str::to_string))
}

fn shapes(c: &Checkpoint) -> BTreeMap<String, Vec<usize>> {
    c.keys()
        .map(|k| (k.to_string(), c.shape(k).unwrap().to_vec()))
        .collect()
}

#[test]
fn fresh_keys_and_shapes_are_the_originals() {
    for name in ["train_hrviton_tocg", "train_hrviton_tocg_spectral"] {
        let json = case(name);
        let o = options(&json);
        // The constructors the fixture used, so the widths below are not guesses.
        let ctor = json["constructors"]["D"].as_str().unwrap();
        assert!(ctor.contains(&format!("ndf={FIXTURE_NDF}")), "{ctor}");
        let ctor = json["constructors"]["G"].as_str().unwrap();
        assert!(ctor.contains(&format!("ngf={FIXTURE_NGF}")), "{ctor}");
        let g = tocg_fresh(&o, FIXTURE_NGF, 1).unwrap();
        let d = discriminator_fresh(&o, FIXTURE_NDF, 1).unwrap();
        let want_g = shapes(&fixture_checkpoint(&json, "weights.G."));
        let want_d = shapes(&fixture_checkpoint(&json, "weights.D."));
        assert!(!want_g.is_empty() && !want_d.is_empty());
        assert_eq!(shapes(&g), want_g, "{name}: tocg keys / shapes");
        assert_eq!(shapes(&d), want_d, "{name}: discriminator keys / shapes");
    }
}

/// `train_condition.py`'s default widths (ngf 96, ndf 64), every option that changes the
/// architecture: the trainer loads the fresh state dicts strictly.
#[test]
fn fresh_models_load_for_every_architecture_option() {
    let json = case("train_hrviton_tocg");
    let vgg = fixture_checkpoint(&json, "vgg.");
    let dev = Device::flex();
    for (warp_feature, out_layer, spectral, dropout, num_d) in [
        ("T1", "relu", false, false, 2),
        ("encoder", "conv", true, true, 3),
        ("T1", "conv", true, false, 1),
    ] {
        let o = ConditionTrainOptions {
            warp_feature: warp_feature.into(),
            out_layer: out_layer.into(),
            spectral,
            Ddropout: dropout,
            num_D: num_d,
            ..ConditionTrainOptions::default()
        };
        let g = tocg_fresh(&o, 8, 3).unwrap();
        let d = discriminator_fresh(&o, 16, 3).unwrap();
        let t = ConditionGeneratorTrainer::from_loaded(&g, &d, &vgg, o.clone(), &dev)
            .unwrap_or_else(|e| panic!("{warp_feature}/{out_layer}/{spectral}/{dropout}: {e}"));
        assert_eq!(t.generator().config().ngf, 8);
        assert_eq!(d.keys().filter(|k| k.ends_with(".0.weight")).count(), num_d);
    }
    let bad = ConditionTrainOptions {
        warp_feature: "T2".into(),
        ..ConditionTrainOptions::default()
    };
    assert!(tocg_fresh(&bad, 8, 0).is_err());
    assert!(tocg_fresh(&ConditionTrainOptions::default(), 0, 0).is_err());
    let no_d = ConditionTrainOptions {
        num_D: 0,
        ..ConditionTrainOptions::default()
    };
    assert!(discriminator_fresh(&no_d, 64, 0).is_err());
}

fn mean_std(v: &[f32]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - m).powi(2)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// U(-b, b): every value inside the bound; for n >= 256 the mean within 6 standard errors
/// of 0 (se = b / sqrt(3 n)), the std within 6 standard errors of b / sqrt(3) (relative se
/// of a uniform sample's std: sqrt(4/45) / (2/3) / sqrt(n) = 0.447 / sqrt(n)), and the
/// largest |x| above b (1 - 20 / n) (missed with probability e^-20 if the bound is b).
fn check_uniform(key: &str, v: &[f32], b: f64) {
    let n = v.len();
    let max = v.iter().fold(0f64, |a, &x| a.max((x as f64).abs()));
    assert!(max <= b * (1.0 + 1e-6), "{key}: |x| {max} > bound {b}");
    if n >= 256 {
        let (m, s) = mean_std(v);
        let want = b / 3f64.sqrt();
        assert!(m.abs() < 6.0 * want / (n as f64).sqrt(), "{key}: mean {m}");
        let rel = (s / want - 1.0).abs();
        assert!(
            rel < 6.0 * 0.447 / (n as f64).sqrt(),
            "{key}: std {s} vs {want}"
        );
        assert!(max > b * (1.0 - 20.0 / n as f64), "{key}: max {max} vs {b}");
    }
}

/// N(mean, std): for n >= 256 the sample mean within 6 standard errors and the sample std
/// within 6 relative standard errors (1 / sqrt(2 n)).
fn check_normal(key: &str, v: &[f32], mean: f64, std: f64) {
    let n = v.len() as f64;
    assert!(v.len() >= 256, "{key}: too small to test");
    let (m, s) = mean_std(v);
    assert!((m - mean).abs() < 6.0 * std / n.sqrt(), "{key}: mean {m}");
    assert!(
        (s / std - 1.0).abs() < 6.0 / (2.0 * n).sqrt(),
        "{key}: std {s} vs {std}"
    );
}

fn fan_in(c: &Checkpoint, weight: &str) -> f64 {
    let s = c.shape(weight).unwrap();
    s[1..].iter().product::<usize>() as f64
}

#[test]
fn fresh_values_follow_the_original_initialisation() {
    // Default widths with every D option that adds tensors.
    let o = ConditionTrainOptions {
        spectral: true,
        Ddropout: true,
        ..ConditionTrainOptions::default()
    };
    let g = tocg_fresh(&o, 96, 11).unwrap();
    let (mut n_conv, mut n_bn) = (0, 0);
    for k in g.keys() {
        let v = g.read_f32(k).unwrap();
        let (prefix, leaf) = k.rsplit_once('.').unwrap();
        let bn = g.shape(&format!("{prefix}.running_mean")).is_some();
        match (bn, leaf) {
            (true, "weight" | "running_var") => assert!(v.iter().all(|&x| x == 1.0), "{k}"),
            (true, _) => assert!(v.iter().all(|&x| x == 0.0), "{k}"),
            (false, "weight") => {
                check_uniform(k, &v, 1.0 / fan_in(&g, k).sqrt());
                n_conv += 1;
            }
            (false, "bias") => {
                check_uniform(k, &v, 1.0 / fan_in(&g, &format!("{prefix}.weight")).sqrt())
            }
            _ => panic!("unexpected tocg key {k}"),
        }
        n_bn += bn as usize;
    }
    // 5 ResBlocks x 2 encoders + conv + 5 decoders + out_layer = 17 blocks of 3 convs;
    // 8 + 5 + 4 plain convs.
    assert_eq!(n_conv, 17 * 3 + 17);
    assert_eq!(n_bn, 17 * 2 * 5);
    // The original's widths: ngf = 96 reaches 8 ngf = 768 in `conv`.
    assert_eq!(g.shape("conv.scale.weight").unwrap(), &[768, 384, 1, 1]);

    let d = discriminator_fresh(&o, 64, 11).unwrap();
    let mut spectral = 0;
    for k in d.keys() {
        let v = d.read_f32(k).unwrap();
        let (prefix, leaf) = k.rsplit_once('.').unwrap();
        match leaf {
            "weight" | "weight_orig" => {
                if v.len() >= 256 {
                    check_normal(k, &v, 0.0, 0.02);
                }
            }
            "bias" => {
                let w = if d.shape(&format!("{prefix}.weight")).is_some() {
                    format!("{prefix}.weight")
                } else {
                    format!("{prefix}.weight_orig")
                };
                check_uniform(k, &v, 1.0 / fan_in(&d, &w).sqrt());
            }
            "weight_u" | "weight_v" => {
                let norm = v.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
                assert!((norm - 1.0).abs() < 1e-5, "{k}: |x| = {norm}");
                // A normalised normal vector: entries N(0, 1/n) to first order.
                if v.len() >= 256 {
                    check_normal(k, &v, 0.0, 1.0 / (v.len() as f64).sqrt());
                }
                spectral += 1;
            }
            _ => panic!("unexpected discriminator key {k}"),
        }
    }
    // num_D 2 scales x n_layers_D - 1 = 2 spectral convs x (u, v).
    assert_eq!(spectral, 2 * 2 * 2);
    // Widths 64, 128, 256, 512 and a one-channel head; dropout shifts the indices.
    assert_eq!(d.shape("layer1.0.weight").unwrap(), &[64, 33, 4, 4]);
    assert_eq!(d.shape("layer1.6.weight_orig").unwrap(), &[256, 128, 4, 4]);
    assert_eq!(d.shape("layer1.10.weight").unwrap(), &[512, 256, 4, 4]);
    assert_eq!(d.shape("layer1.13.weight").unwrap(), &[1, 512, 4, 4]);
}

fn all_values(c: &Checkpoint) -> BTreeMap<String, Vec<f32>> {
    c.keys()
        .map(|k| (k.to_string(), c.read_f32(k).unwrap()))
        .collect()
}

#[test]
fn fresh_weights_are_determined_by_the_seed() {
    let o = ConditionTrainOptions {
        spectral: true,
        ..ConditionTrainOptions::default()
    };
    let g1 = all_values(&tocg_fresh(&o, 8, 5).unwrap());
    assert_eq!(g1, all_values(&tocg_fresh(&o, 8, 5).unwrap()));
    let g2 = all_values(&tocg_fresh(&o, 8, 6).unwrap());
    assert_ne!(
        g1["ClothEncoder.0.scale.weight"],
        g2["ClothEncoder.0.scale.weight"]
    );
    let d1 = all_values(&discriminator_fresh(&o, 8, 5).unwrap());
    assert_eq!(d1, all_values(&discriminator_fresh(&o, 8, 5).unwrap()));
    let d2 = all_values(&discriminator_fresh(&o, 8, 6).unwrap());
    assert_ne!(d1["layer0.2.weight_u"], d2["layer0.2.weight_u"]);
}

type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

fn batch(t: &Tensors, dev: &Device) -> ConditionBatch {
    let b = |n: &str| common::tensor::<4>(t, &format!("batch.0.{n}"), dev);
    ConditionBatch {
        cloth: b("cloth"),
        cloth_mask: b("cloth_mask"),
        parse_agnostic: b("parse_agnostic"),
        densepose: b("densepose"),
        parse_onehot: b("parse_onehot"),
        parse: b("parse"),
        pcm: b("pcm"),
        parse_cloth: b("parse_cloth"),
    }
}

/// A trainer built from fresh weights takes a step on the fixture's first batch (the
/// fixture's options: Ddropout with drawn masks, interflow loss, occlusion; and the
/// spectral case): every loss finite, G's loss positive, and both models move.
#[test]
fn a_trainer_from_fresh_weights_takes_a_step() {
    let dev = Device::flex();
    for name in ["train_hrviton_tocg", "train_hrviton_tocg_spectral"] {
        let json = case(name);
        let t = common::read_safetensors(
            &common::fixture("training").join(json["file"].as_str().unwrap()),
        );
        let o = options(&json);
        let g = tocg_fresh(&o, FIXTURE_NGF, 2).unwrap();
        let d = discriminator_fresh(&o, FIXTURE_NDF, 2).unwrap();
        let vgg = fixture_checkpoint(&json, "vgg.");
        let mut tr = ConditionGeneratorTrainer::from_loaded(&g, &d, &vgg, o, &dev).unwrap();
        let before_g = tr.state_dict_g().unwrap();
        let before_d = tr.state_dict_d().unwrap();
        let out = tr.step(&batch(&t, &dev), None).unwrap();
        for term in [
            "l1_cloth", "vgg", "tv", "ce", "gan_g", "G", "d_fake", "d_real", "D",
        ] {
            let v = out.losses[term];
            assert!(v.is_finite() && v >= 0.0, "{name}: {term} = {v}");
        }
        assert!(out.losses["G"] > 0.0, "{name}");
        let moved = |a: &BTreeMap<_, vton_core::train::params::HostTensor>,
                     b: &BTreeMap<_, vton_core::train::params::HostTensor>,
                     k: &str| a[k].data != b[k].data;
        let after_g = tr.state_dict_g().unwrap();
        let after_d = tr.state_dict_d().unwrap();
        assert!(
            moved(&before_g, &after_g, "ClothEncoder.0.scale.weight"),
            "{name}"
        );
        assert!(moved(&before_d, &after_d, "layer0.0.weight"), "{name}");
        assert_eq!(tr.step_count(), 1);
    }
}

/// `vton train tocg` without --weights / --discriminator (the drive): fresh G and D at the
/// widths the options give, seeded, with the original keys; --vgg still required.
#[test]
fn the_drive_starts_tocg_from_fresh_weights() {
    use vton_core::train::drive::{TocgDrive, TrainKind, TrainSetup};
    let json = case("train_hrviton_tocg");
    let mut setup = TrainSetup::new(TrainKind::Tocg);
    for (k, v) in [
        ("ngf", serde_json::json!(FIXTURE_NGF)),
        ("ndf", serde_json::json!(FIXTURE_NDF)),
        ("Ddropout", serde_json::json!(true)),
        ("fine_height", json["opt"]["fine_height"].clone()),
        ("fine_width", json["opt"]["fine_width"].clone()),
    ] {
        setup.options.insert(k.into(), v);
    }
    setup.seed = 9;
    let dev = Device::flex();
    let err = TocgDrive::new(&setup, &dev)
        .err()
        .expect("no --vgg")
        .to_string();
    assert!(err.contains("--vgg"), "{err}");
    setup.vgg = Some(common::fixture("training").join(json["file"].as_str().unwrap()));
    let a = TocgDrive::new(&setup, &dev).unwrap();
    let keys = |m: &BTreeMap<String, vton_core::train::params::HostTensor>| {
        m.iter()
            .map(|(k, t)| (k.clone(), t.shape.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let sd_g = a.trainer().state_dict_g().unwrap();
    let sd_d = a.trainer().state_dict_d().unwrap();
    // The trainer's state dict has the fixture's keys (BatchNorm counters are kept apart).
    let want_g: BTreeMap<_, _> = shapes(&fixture_checkpoint(&json, "weights.G."))
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .collect();
    let got_g: BTreeMap<_, _> = keys(&sd_g)
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .collect();
    assert_eq!(got_g, want_g);
    assert_eq!(
        keys(&sd_d),
        shapes(&fixture_checkpoint(&json, "weights.D."))
    );
    // The same values as the init functions with the run's seed.
    let o = a.trainer().options().clone();
    let fresh = tocg_fresh(&o, FIXTURE_NGF, 9).unwrap();
    let k = "ClothEncoder.0.scale.weight";
    assert_eq!(sd_g[k].data, fresh.read_f32(k).unwrap());
    let fresh_d = discriminator_fresh(&o, FIXTURE_NDF, 9).unwrap();
    assert_eq!(
        sd_d["layer0.0.weight"].data,
        fresh_d.read_f32("layer0.0.weight").unwrap()
    );
    // Another seed, other weights.
    setup.seed = 10;
    let b = TocgDrive::new(&setup, &dev).unwrap();
    assert_ne!(b.trainer().state_dict_g().unwrap()[k].data, sd_g[k].data);
}
