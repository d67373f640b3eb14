//! DCI-VITON's warping network (`warpingnetwork.py` `WarpingProcess`) against the outputs of
//! the original code on random weights (scripts/reference/gen_dci_viton_warping.py):
//! two widths (oc 6 and 3) whose sizes are read from the weights, a batch of 2, and the
//! checkpoint form the repository saves (`{'model_state_dict', 'optimizer_state_dict'}`).
//!
//! Tolerance: `|got - ref| <= atol + rtol |ref|` with the fixture JSON's atol (20x its
//! float64 floor, at least 1e-4) and rtol 1e-4.

mod common;
use common::*;

use vton_core::models::dci_viton::{DciVitonWarping, DciVitonWarpingConfig};
use vton_core::weights::Checkpoint;
use vton_core::VtonError;

type Io = std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>;

struct Case {
    t: Io,
    json: serde_json::Value,
    tol: (f32, f32),
}

fn case(name: &str) -> Case {
    let t = read_safetensors(&fixture(&format!("{name}.safetensors")));
    let text = std::fs::read_to_string(fixture(&format!("{name}.json"))).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let tol = fixture_tolerance(&format!("{name}.json"));
    Case { t, json, tol }
}

fn check(c: &Case, key: &str, got: burn::tensor::Tensor<4>) {
    let want = &c.t[&format!("output.{key}")];
    assert_eq!(got.dims().to_vec(), want.0, "{key} shape");
    let got = values(got);
    let (mut abs, mut rel) = (0f32, 0f32);
    for (&g, &w) in got.iter().zip(&want.1) {
        abs = abs.max((g - w).abs());
        rel = rel.max((g - w).abs() / w.abs().max(1e-3));
    }
    eprintln!("{key}: max abs {abs:.3e}, max rel (|ref| >= 1e-3) {rel:.3e}");
    assert_close(key, &got, &want.1, c.tol.0, c.tol.1);
}

fn run_and_check(m: &DciVitonWarping, c: &Case) {
    let dev = test_device();
    let i1 = tensor::<4>(&c.t, "input.input_1", &dev);
    let i2 = tensor::<4>(&c.t, "input.input_2", &dev);
    let (wc, wcm, flows) = m.forward(i1, i2).unwrap();
    assert_eq!(flows.len(), 5);
    check(c, "warped_c", wc);
    check(c, "warped_cm", wcm);
    for (i, f) in flows.into_iter().enumerate() {
        check(c, &format!("flow_list.{i}"), f);
    }
}

/// The fixture's weights as an in-memory checkpoint under the bare keys, after `edit`.
fn weights(c: &Case, edit: impl Fn(&str, &mut Vec<usize>, &mut Vec<f32>) -> bool) -> Checkpoint {
    let mut out = Vec::new();
    for (k, (s, v)) in &c.t {
        if let Some(key) = k.strip_prefix("weights.") {
            let (mut s, mut v) = (s.clone(), v.clone());
            if edit(key, &mut s, &mut v) {
                out.push((key.to_string(), s, v));
            }
        }
    }
    Checkpoint::from_f32_tensors("edited fixture", out).unwrap()
}

#[test]
fn warping_oc6_matches_original_with_widths_from_the_weights() {
    let dev = test_device();
    let c = case("dci_viton_warping_oc6");
    let m = DciVitonWarping::from_checkpoint(fixture("dci_viton_warping_oc6.safetensors"), &dev)
        .unwrap();
    let oc = c.json["constructor_args"]["oc"].as_u64().unwrap() as usize;
    assert_eq!(
        m.config(),
        DciVitonWarpingConfig {
            oc,
            input_1_channels: 4,
            input_2_channels: 6
        }
    );
    run_and_check(&m, &c);
    // The encoders' outputs (intermediate taps of the original's forward hooks).
    let i1 = tensor::<4>(&c.t, "input.input_1", &dev);
    let i2 = tensor::<4>(&c.t, "input.input_2", &dev);
    for (k, x) in m.clothingencoder.forward(i1).into_iter().enumerate() {
        check(&c, &format!("intermediate.clothingencoder.{k}"), x);
    }
    for (k, x) in m.posencoder.forward(i2).into_iter().enumerate() {
        check(&c, &format!("intermediate.posencoder.{k}"), x);
    }
}

#[test]
fn warping_oc3_batch2_matches_original_from_safetensors_and_the_saved_pth() {
    let dev = test_device();
    let c = case("dci_viton_warping_oc3");
    let oc = c.json["constructor_args"]["oc"].as_u64().unwrap() as usize;
    assert_eq!(c.t["input.input_1"].0[0], 2, "the fixture is a batch of 2");
    let a = DciVitonWarping::from_checkpoint(fixture("dci_viton_warping_oc3.safetensors"), &dev)
        .unwrap();
    assert_eq!(a.config().oc, oc);
    run_and_check(&a, &c);
    // torch.save({'model_state_dict': ..., 'optimizer_state_dict': Adam state}).
    let ck = Checkpoint::open(fixture("dci_viton_warping_oc3_adam.pth")).unwrap();
    assert!(ck.keys().any(|k| k.starts_with("optimizer_state_dict.")));
    let b = DciVitonWarping::load(&ck, &dev).unwrap();
    assert_eq!(b.config(), a.config());
    run_and_check(&b, &c);
}

#[test]
fn parameter_layout_matches_the_original_state_dict() {
    for name in ["dci_viton_warping_oc6", "dci_viton_warping_oc3"] {
        let c = case(name);
        let oc = c.json["constructor_args"]["oc"].as_u64().unwrap() as usize;
        let cfg = DciVitonWarpingConfig {
            oc,
            ..Default::default()
        };
        let shapes = cfg.parameter_shapes();
        let want: std::collections::BTreeMap<String, Vec<usize>> =
            c.t.iter()
                .filter_map(|(k, (s, _))| {
                    k.strip_prefix("weights.")
                        .map(|k| (k.to_string(), s.clone()))
                })
                .collect();
        let got: std::collections::BTreeMap<String, Vec<usize>> = shapes.iter().cloned().collect();
        assert_eq!(got, want, "{name}: keys and shapes");
        let count: usize = shapes
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(count as u64, c.json["parameter_count"].as_u64().unwrap());
    }
    // The repository's WarpingProcess(96): 71,466,250 parameters in 122 tensors (torch).
    let full = DciVitonWarpingConfig::default().parameter_shapes();
    assert_eq!(full.len(), 122);
    assert_eq!(
        full.iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum::<usize>(),
        71_466_250
    );
}

#[test]
fn fresh_network_runs_with_notebook_initialisation() {
    let dev = test_device();
    let cfg = DciVitonWarpingConfig {
        oc: 4,
        ..Default::default()
    };
    let m = DciVitonWarping::new(&cfg, &dev).unwrap();
    assert_eq!(m.config(), cfg);
    // xavier_normal_: std sqrt(2 / (fan_in + fan_out)); convs_segment.0 is 16 -> 16, 3x3.
    let ck = DciVitonWarping::fresh_checkpoint(&cfg, 3).unwrap();
    let w = ck.read_f32("convs_segment.0.weight").unwrap();
    let std = (w.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
    let want = (2.0f64 / (2.0 * 16.0 * 9.0)).sqrt();
    assert!((std / want - 1.0).abs() < 0.1, "std {std} vs {want}");
    let b = ck.read_f32("convs_segment.0.bias").unwrap();
    assert!(b.iter().all(|&x| x.abs() <= 1.0 / (144f32).sqrt()));
    let x1 = burn::tensor::Tensor::<4>::ones([1, 4, 64, 64], &dev);
    let x2 = burn::tensor::Tensor::<4>::ones([1, 6, 64, 64], &dev).mul_scalar(0.5);
    let (wc, wcm, flows) = m.forward(x1, x2).unwrap();
    assert_eq!(wc.dims(), [1, 3, 64, 64]);
    assert_eq!(wcm.dims(), [1, 1, 64, 64]);
    let sizes: Vec<usize> = flows.iter().map(|f| f.dims()[1]).collect();
    assert_eq!(sizes, vec![4, 8, 16, 32, 64]);
    assert!(values(wc).iter().all(|v| v.is_finite()));
    let bad = DciVitonWarpingConfig {
        input_1_channels: 1,
        ..cfg
    };
    assert!(matches!(
        DciVitonWarping::new(&bad, &dev),
        Err(VtonError::Config { .. })
    ));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let dev = test_device();
    let m = DciVitonWarping::from_checkpoint(fixture("dci_viton_warping_oc3.safetensors"), &dev)
        .unwrap();
    let t = |c: usize, h: usize, w: usize| burn::tensor::Tensor::<4>::zeros([1, c, h, w], &dev);
    // Wrong channel counts.
    assert!(matches!(
        m.forward(t(3, 64, 64), t(6, 64, 64)),
        Err(VtonError::Shape { .. })
    ));
    assert!(matches!(
        m.forward(t(4, 64, 64), t(16, 64, 64)),
        Err(VtonError::Shape { .. })
    ));
    // Inputs that disagree.
    assert!(matches!(
        m.forward(t(4, 64, 64), t(6, 128, 128)),
        Err(VtonError::SizeMismatch { .. })
    ));
    // Sizes the network cannot take: not square (the original's make_grid does not
    // broadcast), not a multiple of 32, below 64.
    for (h, w) in [(64, 96), (48, 48), (32, 32), (100, 100)] {
        let e = m.forward(t(4, h, w), t(6, h, w)).unwrap_err();
        assert!(
            matches!(e, VtonError::InvalidArgument { .. }),
            "{h}x{w}: {e}"
        );
    }
    // A multiple of 32 other than a power of two runs.
    let (wc, _, _) = m.forward(t(4, 96, 96), t(6, 96, 96)).unwrap();
    assert_eq!(wc.dims(), [1, 3, 96, 96]);
}

#[test]
fn bad_checkpoints_are_typed_errors() {
    let dev = test_device();
    let c = case("dci_viton_warping_oc3");
    // The unedited set loads strictly.
    DciVitonWarping::load(&weights(&c, |_, _, _| true), &dev).unwrap();
    // A missing tensor.
    let e = DciVitonWarping::load(&weights(&c, |k, _, _| k != "convs_segment.2.weight"), &dev)
        .unwrap_err();
    assert!(
        matches!(&e, VtonError::MissingWeights { keys, .. } if keys.contains("convs_segment.2.weight")),
        "{e}"
    );
    // A mis-shaped tensor (one output channel short).
    let e = DciVitonWarping::load(
        &weights(&c, |k, s, v| {
            if k == "posencoder.resnet6.conv_1.weight" {
                let per = v.len() / s[0];
                s[0] -= 1;
                v.truncate(v.len() - per);
            }
            true
        }),
        &dev,
    )
    .unwrap_err();
    assert!(
        matches!(&e, VtonError::WeightShape { key, .. } if key == "posencoder.resnet6.conv_1.weight"),
        "{e}"
    );
    // An encoder whose width disagrees with the other one.
    let e = DciVitonWarping::load(
        &weights(&c, |k, s, v| {
            if k == "posencoder.resnet1.scale.weight" {
                s[0] += 1;
                v.extend(vec![0.0; s[1] * 9]);
            }
            true
        }),
        &dev,
    )
    .unwrap_err();
    assert!(matches!(e, VtonError::WeightShape { .. }), "{e}");
    // A key the original module does not have (load_state_dict is strict).
    let e = DciVitonWarping::load(
        &weights(&c, |_, _, _| true).overlay(
            Checkpoint::from_f32_tensors(
                "extra",
                [("extra.weight".to_string(), vec![1], vec![0.0])],
            )
            .unwrap(),
        ),
        &dev,
    )
    .unwrap_err();
    assert!(matches!(e, VtonError::UnexpectedWeights { .. }), "{e}");
    // Not a warping checkpoint at all.
    let e = DciVitonWarping::from_checkpoint(fixture("cpvton_tps.safetensors"), &dev).unwrap_err();
    assert!(matches!(e, VtonError::MissingWeights { .. }), "{e}");
}

/// A valid `torch.save` file that burn's PyTorch reader (zip 9.4.1) refuses: its 21-character
/// stem makes the first central-directory entry (`<stem>/data.pkl`, 46 + 30 bytes) exactly as
/// long as the zip64 end records torch writes between the central directory and the EOCD;
/// the zip crate then takes the CD start implied by the CD size (76 bytes too far, where the
/// second entry happens to begin) and a 76-byte archive offset, and fails with "Invalid
/// Central Directory header". Any checkpoint saved under a 21-character stem is affected
/// (the repository's released file, `3000imgs_warping_lr5e-05_vgg0.1_tvlmabda_1epoch_30.pth`,
/// is not). Ignored until the reader is fixed; `torch.load` reads the file.
#[test]
#[ignore = "known bug in the zip reader under vton_core::weights (see doc comment)"]
fn pth_with_a_21_character_stem_loads() {
    let ck = Checkpoint::open(fixture("dci_viton_warping_zip.pth")).unwrap();
    assert_eq!(
        ck.read_f32("model_state_dict.w").unwrap(),
        vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );
}
