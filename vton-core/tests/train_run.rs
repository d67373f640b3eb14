//! The training loop end to end on small synthetic batches: fresh weights with the
//! original initialisation, JSONL log, checkpoints, resume equal to an uninterrupted
//! run, a clean stop on cancel, and the saved model loading in vton's inference code.

use std::sync::atomic::AtomicBool;

use burn::tensor::{Device, Tensor};
use serde_json::json;
use vton_core::models::cpvton::{Gmm, GmmConfig};
use vton_core::rng::randn;
use vton_core::train::checkpoint::load_latest;
use vton_core::train::drive::{build_trainer, TrainKind, TrainSetup};
use vton_core::train::run::{run, Batch, BatchSource, Event, RunConfig};
use vton_core::weights::Checkpoint;

/// Deterministic synthetic GMM batches (values in [-1, 1], masks in {0, 1}).
struct Synthetic {
    n: u64,
    h: usize,
    w: usize,
}

impl BatchSource for Synthetic {
    fn next_batch(&mut self) -> vton_core::Result<Batch> {
        let dev = Device::flex();
        self.n += 1;
        let s = self.n * 10;
        let img = |c: usize, seed: u64| -> Tensor<4> {
            randn([2, c, self.h, self.w], seed, &dev)
                .mul_scalar(0.5)
                .tanh()
        };
        let mask = randn([2, 1, self.h, self.w], s + 3, &dev)
            .greater_elem(0.0)
            .float();
        let mut b = Batch::new();
        b.insert("agnostic".into(), img(22, s));
        b.insert("cloth".into(), img(3, s + 1));
        b.insert("parse_cloth".into(), img(3, s + 2));
        b.insert("cloth_mask".into(), mask);
        Ok(b)
    }
}

fn setup() -> TrainSetup {
    let mut options = serde_json::Map::new();
    for (k, v) in [
        ("ngf", json!(4)),
        ("fine_height", json!(128)),
        ("fine_width", json!(128)),
        ("grid_size", json!(3)),
        ("lr", json!(1e-3)),
    ] {
        options.insert(k.into(), v);
    }
    TrainSetup {
        kind: TrainKind::Gmm,
        weights: None,
        discriminator: None,
        vgg: None,
        options,
        seed: 7,
        weights_checkpoint: None,
        discriminator_checkpoint: None,
    }
}

fn config(out: &std::path::Path, steps: usize, resume: bool) -> RunConfig {
    RunConfig {
        out_dir: out.to_path_buf(),
        steps,
        save_every: 2,
        val_every: 0,
        resume,
        keep_checkpoints: 0,
    }
}

fn final_weights(out: &std::path::Path) -> Vec<(String, Vec<f32>)> {
    let st = load_latest(out).unwrap().expect("a checkpoint").state;
    st.models["model"]
        .iter()
        .map(|(k, t)| (k.clone(), t.to_f32_vec()))
        .collect()
}

#[test]
fn gmm_run_resumes_exactly_and_saves_loadable_checkpoints() {
    let dev = Device::flex();
    let cancel = AtomicBool::new(false);
    let (h, w) = (128, 128);
    // One uninterrupted run of 4 steps.
    let a = tempfile::tempdir().unwrap();
    let mut t = build_trainer(&setup(), &dev).unwrap();
    let mut data = Synthetic { n: 0, h, w };
    let mut losses = Vec::new();
    let s = run(
        t.as_mut(),
        &mut data,
        None,
        &config(a.path(), 4, false),
        &cancel,
        &mut |e| {
            if let Event::Step { losses: l, .. } = e {
                losses.push(l["total"]);
            }
        },
    )
    .unwrap();
    assert_eq!(s.steps_done, 4);
    assert_eq!(losses.len(), 4);
    assert!(losses.iter().all(|l| l.is_finite()));
    let log = std::fs::read_to_string(a.path().join("log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 4, "one JSON line per step");
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    for term in ["Lwarp", "Lgic", "total"] {
        assert!(first["losses"][term].is_number(), "{term} logged");
    }

    // 2 steps, a new process (new trainer), resume, 2 more on the same data stream.
    let b = tempfile::tempdir().unwrap();
    let mut data = Synthetic { n: 0, h, w };
    let mut t1 = build_trainer(&setup(), &dev).unwrap();
    run(
        t1.as_mut(),
        &mut data,
        None,
        &config(b.path(), 2, false),
        &cancel,
        &mut |_| {},
    )
    .unwrap();
    drop(t1);
    // Without --resume an existing run directory is refused.
    let mut t2 = build_trainer(&setup(), &dev).unwrap();
    let err = run(
        t2.as_mut(),
        &mut data,
        None,
        &config(b.path(), 4, false),
        &cancel,
        &mut |_| {},
    );
    assert!(err.is_err());
    let s = run(
        t2.as_mut(),
        &mut data,
        None,
        &config(b.path(), 4, true),
        &cancel,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(s.steps_done, 4);
    let (wa, wb) = (final_weights(a.path()), final_weights(b.path()));
    assert_eq!(wa.len(), wb.len());
    for ((ka, va), (kb, vb)) in wa.iter().zip(&wb) {
        assert_eq!(ka, kb);
        assert_eq!(
            va, vb,
            "{ka}: resumed run differs from the uninterrupted one"
        );
    }
    let nbt = wa
        .iter()
        .find(|(k, _)| k == "extractionA.model.2.num_batches_tracked")
        .unwrap();
    assert_eq!(nbt.1, vec![4.0]);

    // The saved .pth loads strictly in vton's inference GMM.
    let dir = load_latest(a.path()).unwrap().unwrap().dir;
    let pth = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "pth"))
        .expect("a .pth in the checkpoint");
    let gmm = Gmm::from_checkpoint(
        &pth,
        GmmConfig {
            grid_size: 3,
            fine_height: h,
            fine_width: w,
        },
        &dev,
    )
    .unwrap();
    let mut d = Synthetic { n: 100, h, w };
    let batch = d.next_batch().unwrap();
    let out = gmm
        .forward(batch["agnostic"].clone(), batch["cloth_mask"].clone())
        .unwrap();
    assert_eq!(out.grid.dims(), [2, h, w, 2]);
    let ck = Checkpoint::open(&pth).unwrap();
    assert!(ck.contains("regression.linear.weight"));
}

#[test]
fn cancel_saves_before_stopping() {
    let dev = Device::flex();
    let out = tempfile::tempdir().unwrap();
    let cancel = AtomicBool::new(false);
    let mut t = build_trainer(&setup(), &dev).unwrap();
    let mut data = Synthetic {
        n: 0,
        h: 128,
        w: 128,
    };
    let mut seen = 0;
    let s = run(
        t.as_mut(),
        &mut data,
        None,
        &RunConfig {
            save_every: 0,
            ..config(out.path(), 100, false)
        },
        &cancel,
        &mut |e| {
            if let Event::Step { step, .. } = e {
                seen = *step;
                if *step == 3 {
                    cancel.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        },
    )
    .unwrap();
    assert!(s.cancelled);
    assert_eq!(s.steps_done, 3);
    assert_eq!(seen, 3);
    let st = load_latest(out.path())
        .unwrap()
        .expect("saved on cancel")
        .state;
    assert_eq!(st.global_step, 3);
}

#[test]
fn unknown_options_are_refused_by_name() {
    let mut s = setup();
    s.options.insert("grid_sise".into(), json!(5));
    let err = build_trainer(&s, &Device::flex()).err().expect("refused");
    assert!(err.to_string().contains("grid_sise"), "{err}");
}

/// Writes the tensors of a fixture under `prefix` (prefix stripped) as a safetensors file.
fn extract(fixture: &std::path::Path, prefix: &str, out: &std::path::Path) {
    use vton_core::train::checkpoint::{load_safetensors, save_safetensors};
    let (all, _) = load_safetensors(fixture).unwrap();
    let sub: std::collections::BTreeMap<_, _> = all
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v)))
        .collect();
    assert!(!sub.is_empty(), "{prefix}");
    save_safetensors(out, &sub, &Default::default()).unwrap();
}

/// `vton train tocg`'s trainer on the bundled VITON-HD pairs (HR-VITON's dataset class at
/// 128x96), G/D/VGG from the HR-VITON training fixture: a run, a resumed run equal to
/// the uninterrupted one (Dropout masks drawn per (seed, step)), both models saved.
#[test]
fn tocg_run_on_the_tiny_vitonhd_set_resumes_exactly() {
    use vton_core::train::drive::{open_data, DataSpec};
    let dev = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let fx = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/training/train_hrviton_tocg.safetensors");
    let (g, d, v) = (
        tmp.path().join("g.safetensors"),
        tmp.path().join("d.safetensors"),
        tmp.path().join("vgg.safetensors"),
    );
    extract(&fx, "weights.G.", &g);
    extract(&fx, "weights.D.", &d);
    extract(&fx, "vgg.", &v);
    let mut options = serde_json::Map::new();
    for (k, val) in [
        ("fine_height", json!(128)),
        ("fine_width", json!(96)),
        ("Ddownx2", json!(true)),
        ("Ddropout", json!(true)),
        ("occlusion", json!(true)),
        ("interflowloss", json!(true)),
        ("lasttvonly", json!(true)),
    ] {
        options.insert(k.into(), val);
    }
    let setup = TrainSetup {
        kind: TrainKind::Tocg,
        weights: Some(g),
        discriminator: Some(d),
        vgg: Some(v),
        options: options.clone(),
        seed: 3,
        weights_checkpoint: None,
        discriminator_checkpoint: None,
    };
    let spec = |start: usize| DataSpec {
        root: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/vitonhd_tiny"),
        batch_size: 1,
        seed: 3,
        workers: 0,
        skip_bad: false,
        options: options.clone(),
        start_batch: start,
    };
    let cancel = AtomicBool::new(false);
    let cfg = |out: &std::path::Path, steps: usize, resume: bool| RunConfig {
        out_dir: out.to_path_buf(),
        steps,
        save_every: 0,
        val_every: 2,
        resume,
        keep_checkpoints: 0,
    };
    let a = tmp.path().join("a");
    let mut t = build_trainer(&setup, &dev).unwrap();
    let (mut data, mut val) = open_data(TrainKind::Tocg, &spec(0), &dev).unwrap();
    let mut validated = 0;
    run(
        t.as_mut(),
        data.as_mut(),
        val.as_deref_mut().map(|v| v as &mut dyn BatchSource),
        &cfg(&a, 3, false),
        &cancel,
        &mut |e| {
            if let Event::Validated {
                ssim, psnr, panel, ..
            } = e
            {
                assert!(ssim.is_finite() && psnr.is_finite());
                assert!(panel.exists());
                validated += 1;
            }
        },
    )
    .unwrap();
    assert_eq!(validated, 1);
    let b = tmp.path().join("b");
    let mut t1 = build_trainer(&setup, &dev).unwrap();
    let (mut data, _) = open_data(TrainKind::Tocg, &spec(0), &dev).unwrap();
    run(
        t1.as_mut(),
        data.as_mut(),
        None,
        &cfg(&b, 1, false),
        &cancel,
        &mut |_| {},
    )
    .unwrap();
    let mut t2 = build_trainer(&setup, &dev).unwrap();
    let (mut data, _) = open_data(TrainKind::Tocg, &spec(1), &dev).unwrap();
    run(
        t2.as_mut(),
        data.as_mut(),
        None,
        &cfg(&b, 3, true),
        &cancel,
        &mut |_| {},
    )
    .unwrap();
    let (sa, sb) = (
        load_latest(&a).unwrap().unwrap().state,
        load_latest(&b).unwrap().unwrap().state,
    );
    assert_eq!(sa.global_step, 3);
    for m in ["tocg", "discriminator"] {
        let (x, y) = (&sa.models[m], &sb.models[m]);
        assert_eq!(x.len(), y.len());
        for (k, t) in x {
            assert_eq!(t.to_f32_vec(), y[k].to_f32_vec(), "{m} {k}");
        }
    }
    assert!(sa.models["discriminator"]
        .keys()
        .any(|k| k.starts_with("layer")));
}
