//! DCI-VITON warping-network training (`Train_WarpingNetwork.ipynb`) against the original
//! notebook run (tests/fixtures/training/train_dci_viton_warp.*; tolerances from its
//! JSON), plus other widths, the original checkpoint form, the VITON-HD data source and
//! bad batches.

mod common;

use std::collections::{BTreeMap, HashMap};

use burn::tensor::{Device, Tensor};
use vton_core::error::VtonError;
use vton_core::models::dci_viton::{DciVitonWarping, DciVitonWarpingConfig};
use vton_core::train::dci_viton_warp::{
    open_dci_warp_data, DciWarpBatch, DciWarpTrainOptions, DciWarpTrainer,
};
use vton_core::train::run::{BatchSource, Trainer};
use vton_core::weights::Checkpoint;

const NAME: &str = "train_dci_viton_warp";

type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

struct Fx {
    json: serde_json::Value,
    t: Tensors,
    dev: Device,
}

impl Fx {
    fn load() -> Fx {
        let dir = common::fixture("training");
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{NAME}.json"))).unwrap(),
        )
        .unwrap();
        let t = common::read_safetensors(&dir.join(format!("{NAME}.safetensors")));
        Fx {
            json,
            t,
            dev: common::test_device(),
        }
    }

    fn checkpoint(&self, prefix: &str) -> Checkpoint {
        let p = prefix.to_string();
        Checkpoint::open(common::fixture("training").join(format!("{NAME}.safetensors")))
            .unwrap()
            .map_keys(move |k| k.strip_prefix(&p).map(str::to_string))
    }

    fn k(&self) -> usize {
        self.json["case"]["steps"].as_u64().unwrap() as usize
    }

    fn tol(&self, key: &str) -> &serde_json::Value {
        &self.json["tolerance"][key]
    }

    fn names(&self, key: &str) -> Vec<String> {
        self.json[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    fn batch(&self, s: usize) -> DciWarpBatch {
        let t = |k: &str| common::tensor::<4>(&self.t, &format!("batch.{s}.{k}"), &self.dev);
        DciWarpBatch {
            input_1: t("input_1"),
            input_2: t("input_2"),
            warped_cloth: t("warped_cloth"),
            warped_mask: t("warped_mask"),
        }
    }

    fn trainer(&self) -> DciWarpTrainer {
        DciWarpTrainer::from_loaded(
            &self.checkpoint("weights."),
            &self.checkpoint("vgg."),
            DciWarpTrainOptions::default(),
            &self.dev,
        )
        .unwrap()
    }
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0f64, |m, &x| m.max((x as f64).abs()))
}

fn max_diff(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .fold(0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()))
}

/// Every step of the recorded run: loss terms per step, the first gradients, the weights
/// and Adam's state after the K steps; then the saved checkpoint in the original form.
#[test]
fn steps_match_the_notebook_and_save_in_the_original_form() {
    let fx = Fx::load();
    let mut tr = fx.trainer();
    assert_eq!(
        tr.model().config().oc,
        fx.json["case"]["oc"].as_u64().unwrap() as usize
    );
    let k = fx.k();
    let loss_tol = fx.tol("loss_rel_per_step").as_array().unwrap().clone();
    let zero_true = fx.names("zero_true_grad_params");
    let none_grad = fx.names("none_grad_params");
    let mut worst_loss = 0f64;
    for s in 0..k {
        let out = tr.step(&fx.batch(s), s == 0).unwrap();
        let tol = loss_tol[s].as_f64().unwrap();
        let mut n = 0;
        for (key, (_, want)) in
            fx.t.iter()
                .filter(|(k, _)| k.starts_with(&format!("loss.{s}.")))
        {
            let term = &key[format!("loss.{s}.").len()..];
            let got = *out
                .losses
                .get(term)
                .unwrap_or_else(|| panic!("no loss term {term}"));
            let rel = (got - want[0] as f64).abs() / (want[0] as f64).abs().max(1e-12);
            worst_loss = worst_loss.max(rel / tol);
            assert!(
                rel <= tol,
                "step {s} {term}: {got} vs {} (rel {rel:.3e} > {tol:.3e})",
                want[0]
            );
            n += 1;
        }
        assert_eq!(n, 14, "loss terms of step {s}");
        if s == 0 {
            let grads = out.grads.unwrap();
            let per = fx.tol("grad_rel_to_max_per_param");
            let zabs = fx.tol("grad_zero_true_abs").as_f64().unwrap();
            for name in &none_grad {
                assert!(!grads.contains_key(name), "{name} should have no gradient");
            }
            let mut checked = 0;
            let mut worst_grad = 0f64;
            for (key, (_, want)) in fx.t.iter().filter(|(k, _)| k.starts_with("grad.0.")) {
                let name = &key["grad.0.".len()..];
                let got = &grads
                    .get(name)
                    .unwrap_or_else(|| panic!("no grad {name}"))
                    .data;
                let d = max_diff(got, want);
                if zero_true.iter().any(|z| z == name) {
                    assert!(d <= zabs, "grad {name} (true zero): {d:.3e} > {zabs:.3e}");
                } else {
                    let tol = per[name].as_f64().unwrap();
                    let rel = d / max_abs(want).max(1e-30);
                    worst_grad = worst_grad.max(rel / tol);
                    assert!(rel <= tol, "grad {name}: rel to max {rel:.3e} > {tol:.3e}");
                }
                checked += 1;
            }
            assert_eq!(checked, grads.len(), "every gradient is in the fixture");
            eprintln!("worst gradient error / tolerance: {worst_grad:.3}");
        }
    }
    eprintln!("worst loss error / tolerance: {worst_loss:.3}");
    // Weights after K steps.
    let sd = tr.state_dict().unwrap();
    let max_abs_tol = fx.tol("after_max_abs").as_f64().unwrap();
    let tight = fx.tol("after_tight_abs").as_f64().unwrap();
    let frac_tol = fx.tol("after_loose_fraction").as_f64().unwrap();
    let (mut loose, mut live_n) = (0usize, 0usize);
    for (name, h) in &sd {
        let want = &fx.t[&format!("after.{k}.{name}")].1;
        let d = max_diff(&h.data, want);
        assert!(
            d <= max_abs_tol,
            "{name} after {k} steps: {d:.3e} > {max_abs_tol:.3e}"
        );
        if !zero_true.contains(name) && !none_grad.contains(name) {
            live_n += h.data.len();
            loose += h
                .data
                .iter()
                .zip(want)
                .filter(|(a, b)| (**a as f64 - **b as f64).abs() > tight)
                .count();
        }
    }
    let frac = loose as f64 / live_n as f64;
    eprintln!(
        "after {k} steps: {frac:.4} of live elements beyond {tight:.1e} (allowed {frac_tol:.4})"
    );
    assert!(frac <= frac_tol, "{frac} > {frac_tol}");
    // Untouched parameters did not move.
    for name in &none_grad {
        let init = &fx.t[&format!("weights.{name}")].1;
        assert_eq!(
            &sd[name].data, init,
            "{name} has no gradient and must not move"
        );
    }
    // Adam's state: one entry per parameter with a gradient, K steps each.
    let adam = tr.adam_state().unwrap();
    let want_keys: Vec<String> =
        fx.t.keys()
            .filter_map(|k2| {
                k2.strip_prefix(&format!("adam.{k}."))
                    .and_then(|r| r.strip_suffix(".exp_avg"))
                    .map(str::to_string)
            })
            .collect();
    assert_eq!(adam.len(), want_keys.len());
    let mut worst_adam = 0f64;
    for key in &want_keys {
        let (m, v, step) = &adam[key];
        assert_eq!(*step as usize, k);
        if !zero_true.contains(key) {
            let wv = &fx.t[&format!("adam.{k}.{key}.exp_avg_sq")].1;
            let wm = &fx.t[&format!("adam.{k}.{key}.exp_avg")].1;
            let tol = fx.tol("adam_rel_to_max_per_param")[key].as_f64().unwrap();
            let rm = max_diff(&m.data, wm) / max_abs(wm).max(1e-30);
            let rv = max_diff(&v.data, wv) / max_abs(wv).max(1e-30);
            worst_adam = worst_adam.max(rm.max(rv) / tol);
            assert!(rm <= tol, "{key} exp_avg rel {rm:.3e} > {tol:.3e}");
            assert!(rv <= tol, "{key} exp_avg_sq rel {rv:.3e} > {tol:.3e}");
        }
    }

    eprintln!("worst Adam moment error / tolerance: {worst_adam:.3}");
    // The original checkpoint form: DciVitonWarping reads it, and so does the trainer
    // (with its Adam state).
    let dir = tempdir();
    let path = dir.join("warp_ckpt.pth");
    tr.save_original(&path).unwrap();
    // For checking by hand that the original reads it (torch.load + load_state_dict of
    // the model and of Adam): VTON_KEEP_DCI_WARP_CKPT=<path> keeps a copy.
    if let Ok(keep) = std::env::var("VTON_KEEP_DCI_WARP_CKPT") {
        std::fs::copy(&path, keep).unwrap();
    }
    let ck = Checkpoint::open(&path).unwrap();
    assert!(ck
        .keys()
        .any(|k2| k2.starts_with("optimizer_state_dict.param_groups")
            || k2.starts_with("optimizer_state_dict.state.")));
    let net = DciVitonWarping::from_checkpoint(&path, &fx.dev).unwrap();
    let b = fx.batch(0);
    let (wc_a, wcm_a) = tr.predict(&b).unwrap();
    let (wc_b, wcm_b, _) = net.forward(b.input_1.clone(), b.input_2.clone()).unwrap();
    // Same weights; the trainer runs on the autodiff device (burn's operators), the loaded
    // network on the plain one (vton's kernels: Winograd convolution, fused GroupNorm), which
    // round differently: held to the tolerance of the warping network's parity with the
    // original code (dci_viton_pipeline: atol 1e-4, rtol 1e-4).
    let (a, b2) = (common::values(wc_a), common::values(wc_b));
    let (am, bm) = (common::values(wcm_a), common::values(wcm_b));
    eprintln!(
        "reloaded forward max diff: {:.3e}",
        max_diff(&a, &b2).max(max_diff(&am, &bm))
    );
    common::assert_close("reloaded warped_c", &a, &b2, 1e-4, 1e-4);
    common::assert_close("reloaded warped_cm", &am, &bm, 1e-4, 1e-4);
    let back =
        DciWarpTrainer::from_loaded(&ck, &fx.checkpoint("vgg."), Default::default(), &fx.dev)
            .unwrap();
    let adam2 = back.adam_state().unwrap();
    assert_eq!(adam2.len(), adam.len());
    for (key, (m, v, step)) in &adam {
        let (m2, v2, s2) = &adam2[key];
        assert_eq!((&m.data, &v.data, step), (&m2.data, &v2.data, s2), "{key}");
    }
    assert_eq!(back.state_dict().unwrap(), sd);

    // The loop's resume state round-trips.
    let state = tr.training_state().unwrap();
    let mut fresh = fx.trainer();
    fresh.restore(state).unwrap();
    assert_eq!(fresh.steps_done(), k);
    assert_eq!(fresh.state_dict().unwrap(), sd);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "vton_dci_warp_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The original's own Adam checkpoint (`torch.save({'model_state_dict',
/// 'optimizer_state_dict'})` after one step): the optimiser state comes along.
#[test]
fn loads_the_originals_adam_checkpoint() {
    let fx = Fx::load();
    let ck = Checkpoint::open(common::fixture("dci_viton_warping_oc3_adam.pth")).unwrap();
    let tr = DciWarpTrainer::from_loaded(&ck, &fx.checkpoint("vgg."), Default::default(), &fx.dev)
        .unwrap();
    assert_eq!(tr.model().config().oc, 3);
    let adam = tr.adam_state().unwrap();
    let n_params = tr.model().config().parameter_shapes().len();
    // convs_segment_after_concat.3 (6 tensors) had no gradient in that step.
    assert_eq!(adam.len(), n_params - 6);
    assert!(adam
        .keys()
        .all(|k| !k.starts_with("convs_segment_after_concat.3.")));
    assert!(adam
        .values()
        .all(|(_, v, s)| *s == 1 && v.data.iter().all(|x| *x >= 0.0)));
    // exp_avg after one step is (1 - beta1) * grad: not all zero.
    assert!(adam
        .values()
        .any(|(m, _, _)| m.data.iter().any(|x| *x != 0.0)));
}

/// A width other than the fixture's (read from the checkpoint) trains; the data source
/// on the VITON-HD sample yields batches of the right shapes and ranges, which train too.
#[test]
fn other_width_and_vitonhd_data() {
    let fx = Fx::load();
    let dev = &fx.dev;
    let config = DciVitonWarpingConfig {
        oc: 2,
        ..Default::default()
    };
    let ck = DciVitonWarping::fresh_checkpoint(&config, 7).unwrap();
    let mut tr =
        DciWarpTrainer::from_loaded(&ck, &fx.checkpoint("vgg."), Default::default(), dev).unwrap();
    assert_eq!(tr.model().config().oc, 2);

    let mut data = open_dci_warp_data(&common::fixture("vitonhd_tiny"), 64, 2, dev).unwrap();
    let b = data.next_warp_batch().unwrap();
    assert_eq!(b.input_1.dims(), [2, 4, 64, 64]);
    assert_eq!(b.input_2.dims(), [2, 6, 64, 64]);
    assert_eq!(b.warped_cloth.dims(), [2, 3, 64, 64]);
    assert_eq!(b.warped_mask.dims(), [2, 1, 64, 64]);
    let i1 = common::values(b.input_1.clone());
    assert!(i1.iter().all(|&v| (0.0..=1.0).contains(&v)));
    let i2 = common::values(b.input_2.clone());
    assert!(i2
        .iter()
        .all(|&v| (0.0..=15.0 * 19.0 / 255.0 + 1e-5).contains(&v)));
    let m = common::values(b.warped_mask.clone());
    assert!(m.iter().all(|&v| v == 0.0 || v == 1.0));
    let ones = m.iter().filter(|&&v| v == 1.0).count();
    assert!(
        ones > m.len() / 20 && ones < m.len() / 2,
        "garment area {ones} of {}",
        m.len()
    );
    let c = common::values(b.warped_cloth.clone());
    let n = 64 * 64;
    for s in 0..2 {
        for ch in 0..3 {
            for p in 0..n {
                let v = c[(s * 3 + ch) * n + p];
                assert!((0.0..=1.0).contains(&v));
                if m[s * n + p] == 0.0 {
                    assert_eq!(v, 0.0);
                }
            }
        }
    }
    assert!(c.iter().any(|&v| v > 0.05));

    let before = tr.state_dict().unwrap();
    let l1 = tr.step(&b, false).unwrap().losses;
    let l2 = tr
        .step(&data.next_warp_batch().unwrap(), false)
        .unwrap()
        .losses;
    assert!(l1.values().chain(l2.values()).all(|v| v.is_finite()));
    assert_eq!(tr.steps_done(), 2);
    let after = tr.state_dict().unwrap();
    let moved = before
        .iter()
        .filter(|(k, h)| after[*k].data != h.data)
        .count();
    assert_eq!(
        moved,
        before.len() - 6,
        "every parameter with a gradient moved"
    );
    // Validation through the Trainer trait (prediction and target in [-1, 1]).
    let v = tr.validate(&b.to_batch()).unwrap();
    assert_eq!(v.prediction.dims(), v.target.dims());
    assert_eq!(v.panel.len(), 5);
    let p = common::values(v.prediction);
    assert!(p.iter().all(|&x| (-1.0 - 1e-5..=1.0 + 1e-5).contains(&x)));
    assert!(data.skipped().is_empty());
}

/// Mismatched batches are typed errors, not panics.
#[test]
fn mismatched_batches_are_errors() {
    let fx = Fx::load();
    let config = DciVitonWarpingConfig {
        oc: 2,
        ..Default::default()
    };
    let mut tr = DciWarpTrainer::new_fresh(
        &config,
        1,
        &fx.checkpoint("vgg."),
        Default::default(),
        &fx.dev,
    )
    .unwrap();
    let good = fx.batch(0);
    let mut bad = good.clone();
    bad.warped_mask = Tensor::zeros([2, 1, 32, 32], &fx.dev);
    assert!(matches!(
        tr.step(&bad, false),
        Err(VtonError::SizeMismatch { .. })
    ));
    let mut bad = good.clone();
    bad.warped_cloth = Tensor::zeros([2, 4, 64, 64], &fx.dev);
    assert!(matches!(
        tr.step(&bad, false),
        Err(VtonError::SizeMismatch { .. })
    ));
    let mut bad = good.clone();
    bad.input_2 = Tensor::zeros([2, 5, 64, 64], &fx.dev);
    assert!(tr.step(&bad, false).is_err());
    let mut loop_batch = good.to_batch();
    loop_batch.remove("warped_mask");
    assert!(matches!(
        tr.train_step(&loop_batch),
        Err(VtonError::InvalidArgument { .. })
    ));
    assert_eq!(tr.steps_done(), 0);
    let _: BTreeMap<String, f64> = tr.step(&good, false).unwrap().losses;
    assert_eq!(tr.steps_done(), 1);
}
