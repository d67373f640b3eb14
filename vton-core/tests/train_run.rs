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
