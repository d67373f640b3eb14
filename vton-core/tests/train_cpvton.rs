//! CP-VTON+ training steps against the original `train.py` run
//! (tests/fixtures/training/train_cpvton_*; tolerances from each case's JSON).

mod common;

use std::collections::{BTreeMap, HashMap};

use burn::tensor::{Device, Tensor, TensorData};
use vton_core::train::cpvton::{CpvtonTrainOptions, GmmBatch, GmmTrainer};
use vton_core::weights::Checkpoint;

type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

fn case(name: &str) -> (serde_json::Value, Tensors) {
    let dir = common::fixture("training");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    let mut t = Tensors::new();
    for f in json["files"].as_array().unwrap() {
        t.extend(common::read_safetensors(
            &dir.join(f["file"].as_str().unwrap()),
        ));
    }
    (json, t)
}

/// A checkpoint holding the tensors under `prefix`, with the prefix stripped.
fn checkpoint(name: &str, json: &serde_json::Value, prefix: &str) -> Checkpoint {
    let dir = common::fixture("training");
    let paths: Vec<_> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| dir.join(f["file"].as_str().unwrap()))
        .collect();
    let _ = name;
    let p = prefix.to_string();
    Checkpoint::open_all(&paths)
        .unwrap()
        .map_keys(move |k| k.strip_prefix(&p).map(str::to_string))
}

fn batch_tensor(t: &Tensors, key: &str, dev: &Device) -> Tensor<4> {
    let (shape, codes) = &t[key];
    // uint8 codes k: value = (k - 64) / 64 (the fixture's batch_encoding).
    let v: Vec<f32> = codes.iter().map(|&k| (k - 64.0) / 64.0).collect();
    Tensor::from_data(
        TensorData::new(v, [shape[0], shape[1], shape[2], shape[3]]),
        dev,
    )
}

fn opts(json: &serde_json::Value) -> CpvtonTrainOptions {
    let o = &json["opt"];
    CpvtonTrainOptions {
        fine_height: o["fine_height"].as_u64().unwrap() as usize,
        fine_width: o["fine_width"].as_u64().unwrap() as usize,
        grid_size: o["grid_size"].as_u64().unwrap() as usize,
        lr: o["lr"].as_f64().unwrap(),
        keep_step: o["keep_step"].as_u64().unwrap() as usize,
        decay_step: o["decay_step"].as_u64().unwrap() as usize,
        ..Default::default()
    }
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0f32, |m, x| m.max(x.abs()))
}

#[test]
fn gmm_teacher_forced_steps_match_train_py() {
    let (json, t) = case("train_cpvton_gmm");
    let tol = &json["tolerance"]["teacher_forced"];
    let loss_rtol = tol["loss"]["rtol"].as_f64().unwrap();
    let grad_tol = tol["grad"]["tol_over_tensor_absmax"].as_f64().unwrap() as f32;
    let bn_atol = tol["bn_running_stats"]["atol"].as_f64().unwrap() as f32;
    let bn_rtol = tol["bn_running_stats"]["rtol"].as_f64().unwrap() as f32;
    let zero: Vec<String> = json["zero_true_grad_params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let dev = Device::flex();
    let k = json["K"].as_u64().unwrap() as usize;
    for s in 0..k {
        let prefix = if s == 0 {
            "weights.".to_string()
        } else {
            format!("after.{s}.")
        };
        let ckpt = checkpoint("train_cpvton_gmm", &json, &prefix);
        let mut tr = GmmTrainer::from_loaded(&ckpt, opts(&json), &dev).unwrap();
        let b = |n: &str| batch_tensor(&t, &format!("batch.{s}.{n}"), &dev);
        let batch = GmmBatch {
            agnostic: b("agnostic"),
            cloth_mask: b("cm"),
            cloth: b("c"),
            parse_cloth: b("im_c"),
        };
        let out = tr.step(&batch, true).unwrap();
        for (term, got) in &out.losses {
            let want = t[&format!("loss.{s}.{term}")].1[0] as f64;
            let rel = (got - want).abs() / want.abs().max(1e-30);
            assert!(
                rel <= loss_rtol,
                "step {s} {term}: {got} vs {want} (rel {rel:.2e})"
            );
        }
        let grads = out.grads.unwrap();
        let model_max = grads
            .iter()
            .map(|(k, g)| max_abs(&tr.params().to_host(k, g).unwrap().data))
            .fold(0f32, f32::max);
        let mut worst = (String::new(), 0f32);
        for (key, g) in &grads {
            let got = tr.params().to_host(key, g).unwrap().data;
            let want = &t[&format!("grad.{s}.{key}")].1;
            if zero.contains(key) {
                assert!(max_abs(&got) <= 1e-6 * model_max, "{key}: not ~0");
                continue;
            }
            let m = max_abs(want);
            let err = got
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max)
                / m;
            if err > worst.1 {
                worst = (key.clone(), err);
            }
            assert!(err <= grad_tol, "step {s} grad {key}: {err:.3e} x max");
        }
        eprintln!("step {s}: worst grad {} {:.2e}", worst.0, worst.1);
        // Running statistics after the train-mode forward.
        let sd = tr.state_dict().unwrap();
        let mut n_bn = 0;
        for (key, h) in &sd {
            if key.ends_with("running_mean") || key.ends_with("running_var") {
                let want = &t[&format!("after.{}.{key}", s + 1)].1;
                common::assert_close(key, &h.data, want, bn_atol, bn_rtol);
                n_bn += 1;
            }
        }
        assert!(n_bn > 0);
        for (key, &n) in tr.num_batches_tracked() {
            assert_eq!(n as f32, t[&format!("after.{}.{key}", s + 1)].1[0], "{key}");
        }
    }
    let _ = BTreeMap::<String, f32>::new();
}
