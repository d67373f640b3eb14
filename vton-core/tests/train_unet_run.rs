//! `vton train unet` end to end on the tiny diffusers fixtures and the two-pair VITON-HD
//! set: batches encoded through the VAE (CatVTON and inpainting layouts), a run through
//! `run::run` with validation and checkpoints, resume equal to an uninterrupted run bit
//! for bit, and the saved U-Net loading back into `UNet2DConditionModel`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use burn::tensor::Device;
use serde_json::{json, Map, Value};
use vton_core::models::unet::{Timesteps, UNet2DConditionConfig, UNet2DConditionModel};
use vton_core::train::drive::{DataSpec, TrainKind, TrainSetup};
use vton_core::train::drive_unet::{build_unet_trainer, open_unet_data, UNetDrive};
use vton_core::train::params::tensor_to_vec;
use vton_core::train::run::{run, BatchSource, Event, RunConfig};
use vton_core::weights::Checkpoint;

fn pipeline() -> PathBuf {
    common::fixture("tiny_inpaint_pipeline")
}

fn options(pairs: &[(&str, Value)]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("resolution".into(), json!("32x24"));
    m.insert("learning_rate".into(), json!(1e-3));
    m.insert("val_count".into(), json!(2));
    for (k, v) in pairs {
        m.insert((*k).into(), v.clone());
    }
    m
}

fn setup(weights: &Path, options: &Map<String, Value>) -> TrainSetup {
    let mut s = TrainSetup::new(TrainKind::Unet);
    s.weights = Some(weights.to_path_buf());
    s.options = options.clone();
    s
}

fn spec(options: &Map<String, Value>, start_batch: usize) -> DataSpec {
    DataSpec {
        root: common::fixture("vitonhd_tiny"),
        batch_size: 2,
        seed: 7,
        workers: 0,
        skip_bad: false,
        options: options.clone(),
        start_batch,
    }
}

fn config(out: &Path, steps: usize, resume: bool, val_every: usize) -> RunConfig {
    RunConfig {
        out_dir: out.to_path_buf(),
        steps,
        save_every: 2,
        val_every,
        resume,
        keep_checkpoints: 0,
    }
}

fn vals(t: &burn::tensor::Tensor<4>) -> Vec<f32> {
    tensor_to_vec(t).unwrap()
}

#[test]
fn catvton_batches_are_laid_out_and_drawn_per_batch_index() {
    let dev = Device::flex();
    // The data side finds the VAE and the schedule through the pipeline option.
    let o = options(&[(
        "pretrained_model_name_or_path",
        json!(pipeline().display().to_string()),
    )]);
    let (mut train, val) = open_unet_data(&spec(&o, 0), &o, &dev).unwrap();
    let b0 = train.next_batch().unwrap();
    let b1 = train.next_batch().unwrap();
    let b2 = train.next_batch().unwrap();
    // 32x24 through a factor-2 VAE: 16x12 latents, person | garment along the height.
    assert_eq!(b0["latents"].dims(), [2, 4, 32, 12]);
    assert_eq!(b0["masked_latents"].dims(), [2, 4, 32, 12]);
    assert_eq!(b0["mask"].dims(), [2, 1, 32, 12]);
    assert_eq!(b0["noise"].dims(), [2, 4, 32, 12]);
    assert_eq!(b0["timesteps"].dims(), [2, 1, 1, 1]);
    assert_eq!(b0["image"].dims(), [2, 3, 32, 24]);
    let mask = vals(&b0["mask"]);
    assert!(mask.iter().all(|&v| v == 0.0 || v == 1.0));
    for n in 0..2 {
        let (top, bottom) = mask[n * 32 * 12..(n + 1) * 32 * 12].split_at(16 * 12);
        // The garment half carries no mask; the person half repaints the agnostic region.
        assert!(bottom.iter().all(|&v| v == 0.0));
        let frac = top.iter().sum::<f32>() / top.len() as f32;
        assert!(
            frac > 0.05 && frac < 0.8,
            "sample {n}: masked fraction {frac}"
        );
    }
    // Garment latents appear in both the target and the condition.
    let lat = vals(&b0["latents"]);
    let cond = vals(&b0["masked_latents"]);
    for n in 0..2 {
        for c in 0..4 {
            let off = (n * 4 + c) * 32 * 12 + 16 * 12;
            assert_eq!(lat[off..off + 16 * 12], cond[off..off + 16 * 12]);
        }
    }
    // Timesteps are integers in [0, 1000); draws differ between batches.
    for b in [&b0, &b1, &b2] {
        for t in vals(&b["timesteps"]) {
            assert!(
                (0.0..1000.0).contains(&t) && t.fract() == 0.0,
                "timestep {t}"
            );
        }
    }
    assert_ne!(vals(&b0["noise"]), vals(&b1["noise"]));
    // A source opened at batch 2 emits exactly the third batch.
    let (mut resumed, _) = open_unet_data(&spec(&o, 2), &o, &dev).unwrap();
    let r2 = resumed.next_batch().unwrap();
    for k in [
        "latents",
        "masked_latents",
        "mask",
        "noise",
        "timesteps",
        "image",
    ] {
        assert_eq!(vals(&r2[k]), vals(&b2[k]), "{k}");
    }
    // Validation batches: every sample at the validation timestep (30 % of 1000).
    let mut val = val.expect("a validation source");
    let v = val.next_batch().unwrap();
    assert_eq!(vals(&v["timesteps"]), vec![300.0, 300.0]);
}

fn losses_of(events: &[Event]) -> Vec<(usize, f64, f64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Step { step, losses, .. } => Some((*step, losses["loss"], losses["grad_norm"])),
            _ => None,
        })
        .collect()
}

#[test]
fn catvton_run_resumes_bit_exactly_and_saves_a_loadable_unet() {
    let dev = Device::flex();
    let cancel = AtomicBool::new(false);
    let o = options(&[(
        "pretrained_model_name_or_path",
        json!(pipeline().display().to_string()),
    )]);
    let s = setup(&pipeline(), &o);

    // Uninterrupted: 4 steps, checkpoints at 2 and 4, validation at 2 and 4.
    let a = tempfile::tempdir().unwrap();
    let mut drive = UNetDrive::new(&s, &dev).unwrap();
    let initial = drive.trainer().state_dict().unwrap();
    let (mut data, val) = open_unet_data(&spec(&o, 0), &o, &dev).unwrap();
    let mut val = val.expect("a validation source");
    let mut ev_a = Vec::new();
    let sum = run(
        &mut drive,
        data.as_mut(),
        Some(val.as_mut() as &mut dyn BatchSource),
        &config(a.path(), 4, false, 2),
        &cancel,
        &mut |e| ev_a.push(e.clone()),
    )
    .unwrap();
    assert_eq!(sum.steps_done, 4);
    let la = losses_of(&ev_a);
    assert_eq!(la.len(), 4);
    for (step, loss, gn) in &la {
        assert!(loss.is_finite() && *loss > 0.0, "step {step}: loss {loss}");
        assert!(gn.is_finite() && *gn > 0.0, "step {step}: grad norm {gn}");
    }
    let validated: Vec<(f64, f64, PathBuf)> = ev_a
        .iter()
        .filter_map(|e| match e {
            Event::Validated {
                ssim, psnr, panel, ..
            } => Some((*ssim, *psnr, panel.clone())),
            _ => None,
        })
        .collect();
    eprintln!("catvton losses (step, loss, grad_norm): {la:?}");
    eprintln!(
        "catvton validation (ssim, psnr): {:?}",
        validated.iter().map(|v| (v.0, v.1)).collect::<Vec<_>>()
    );
    assert_eq!(validated.len(), 2);
    for (ssim, psnr, panel) in &validated {
        assert!(ssim.is_finite() && psnr.is_finite(), "{ssim} {psnr}");
        assert!(panel.is_file());
        // Four columns of 24 pixels, 32 high.
        let img = image::open(panel).unwrap();
        assert_eq!((img.width(), img.height()), (4 * 24, 32));
    }
    let ck = a.path().join("checkpoints");
    for step in [2, 4] {
        let d = ck.join(format!("step_{step}"));
        assert!(d.join("unet.safetensors").is_file(), "{}", d.display());
        assert!(d.join("unet.pth").is_file());
    }

    // Interrupted after 2 steps, then resumed to 4 in a fresh process state.
    let b = tempfile::tempdir().unwrap();
    let mut t1 = build_unet_trainer(&s, &dev).unwrap();
    let (mut d1, _) = open_unet_data(&spec(&o, 0), &o, &dev).unwrap();
    let mut ev_b = Vec::new();
    run(
        t1.as_mut(),
        d1.as_mut(),
        None,
        &config(b.path(), 2, false, 0),
        &cancel,
        &mut |e| ev_b.push(e.clone()),
    )
    .unwrap();
    drop(t1);
    let mut t2 = build_unet_trainer(&s, &dev).unwrap();
    let (mut d2, _) = open_unet_data(&spec(&o, 2), &o, &dev).unwrap();
    run(
        t2.as_mut(),
        d2.as_mut(),
        None,
        &config(b.path(), 4, true, 0),
        &cancel,
        &mut |e| ev_b.push(e.clone()),
    )
    .unwrap();
    assert_eq!(t2.steps_done(), 4);
    let lb = losses_of(&ev_b);
    assert_eq!(
        la.iter()
            .map(|x| (x.0, x.1.to_bits(), x.2.to_bits()))
            .collect::<Vec<_>>(),
        lb.iter()
            .map(|x| (x.0, x.1.to_bits(), x.2.to_bits()))
            .collect::<Vec<_>>(),
        "losses and grad norms of the resumed run"
    );
    for f in ["unet.safetensors", "optimizer.safetensors"] {
        let fa = std::fs::read(ck.join("step_4").join(f)).unwrap();
        let fb = std::fs::read(b.path().join("checkpoints/step_4").join(f)).unwrap();
        assert!(
            fa == fb,
            "{f} differs between the uninterrupted and the resumed run"
        );
    }

    // The saved U-Net: diffusers keys, loads strictly into UNet2DConditionModel.
    let saved = Checkpoint::open(ck.join("step_4/unet.safetensors")).unwrap();
    let cfg_text = std::fs::read_to_string(pipeline().join("unet/config.json")).unwrap();
    let cfg: UNet2DConditionConfig = serde_json::from_str(&cfg_text).unwrap();
    let (model, report) = UNet2DConditionModel::load(&cfg, &saved, &dev, false).unwrap();
    let _ = report;
    let now = drive.trainer().state_dict().unwrap();
    assert_eq!(saved.len(), now.len());
    let (mut changed, mut same) = (0, 0);
    for (k, h) in &now {
        let v = saved.read_f32(k).unwrap();
        assert!(v == h.data, "{k}: the saved tensor is not the trained one");
        if h.data == initial[k].data {
            same += 1;
            assert!(
                !k.contains("attn1."),
                "{k}: a trained self-attention is unchanged"
            );
        } else {
            changed += 1;
            // CatVTON trains only the self-attentions.
            assert!(k.contains("attn1."), "{k}: a frozen parameter changed");
        }
    }
    assert!(changed > 0 && same > 0, "changed {changed}, same {same}");
    // The loaded model predicts what the trainer predicts.
    let (mut vdata, _) = open_unet_data(&spec(&o, 0), &o, &dev).unwrap();
    let vb = vdata.next_batch().unwrap();
    let ub = drive.unet_batch(&vb).unwrap();
    let expected = drive.trainer().predict(&ub).unwrap();
    let acp = drive.trainer().alphas_cumprod().to_vec();
    let noisy = {
        let ts: Vec<f32> = ub.timesteps.iter().map(|&t| acp[t as usize]).collect();
        let col = |v: Vec<f32>| {
            burn::tensor::Tensor::<4>::from_data(
                burn::tensor::TensorData::new(v, [2, 1, 1, 1]),
                &dev,
            )
        };
        let sa = col(ts.iter().map(|a| a.sqrt()).collect());
        let sb = col(ts.iter().map(|a| (1.0 - a).sqrt()).collect());
        ub.latents.clone() * sa + ub.noise.clone() * sb
    };
    let input = burn::tensor::Tensor::cat(
        vec![
            noisy,
            ub.mask.clone().unwrap(),
            ub.masked_latents.clone().unwrap(),
        ],
        1,
    );
    let t = Timesteps::PerSample(ub.timesteps.iter().map(|&t| t as f64).collect());
    let got = model.forward(input, t, None).unwrap();
    let (e, g) = (vals(&expected), vals(&got));
    let scale = e.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = e
        .iter()
        .zip(&g)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= 1e-5 * scale.max(1.0),
        "max |diff| {diff} (scale {scale})"
    );
}

#[test]
fn inpaint_layout_from_a_unet_folder_with_a_vae_option() {
    let dev = Device::flex();
    let cancel = AtomicBool::new(false);
    let unet = common::fixture("diffusers_unet_inpaint_pretrained");
    let vae = common::fixture("diffusers_vae_pretrained");
    let o = options(&[
        ("mode", json!("inpaint")),
        ("vae", json!(vae.display().to_string())),
        ("latent_dist", json!("mean")),
        ("use_ema", json!(true)),
        ("ema_decay", json!(0.9)),
    ]);
    let (mut data, _) = open_unet_data(&spec(&o, 0), &o, &dev).unwrap();
    let b = data.next_batch().unwrap();
    assert_eq!(b["latents"].dims(), [2, 4, 16, 12]);
    assert_eq!(b["mask"].dims(), [2, 1, 16, 12]);
    let mut drive = UNetDrive::new(&setup(&unet, &o), &dev).unwrap();
    let ub = drive.unet_batch(&b).unwrap();
    // Zero encoder states of the config's cross_attention_dim and 77 tokens.
    let e = ub.encoder_hidden_states.as_ref().expect("inpaint states");
    assert_eq!(e.dims(), [2, 77, 32]);
    let initial = drive.trainer().state_dict().unwrap();
    let out = tempfile::tempdir().unwrap();
    let (mut data, _) = open_unet_data(&spec(&o, 0), &o, &dev).unwrap();
    let mut ev = Vec::new();
    run(
        &mut drive,
        data.as_mut(),
        None,
        &config(out.path(), 2, false, 0),
        &cancel,
        &mut |e| ev.push(e.clone()),
    )
    .unwrap();
    for (_, loss, gn) in losses_of(&ev) {
        assert!(loss.is_finite() && gn.is_finite(), "{loss} {gn}");
    }
    // trainable=all by default for inpaint: the input convolution learns too.
    let now = drive.trainer().state_dict().unwrap();
    assert_ne!(now["conv_in.weight"].data, initial["conv_in.weight"].data);
    let d = out.path().join("checkpoints/step_2");
    assert!(d.join("unet.safetensors").is_file());
    assert!(d.join("unet_ema.safetensors").is_file());
    // A resumed trainer restores the EMA shadow.
    let mut t2 = build_unet_trainer(&setup(&unet, &o), &dev).unwrap();
    let st = vton_core::train::checkpoint::TrainingState::load(&d).unwrap();
    assert_eq!(st.extra["ema_step"], json!(2));
    t2.restore(st).unwrap();
    assert_eq!(t2.steps_done(), 2);
}

#[test]
fn bad_options_are_refused_by_name() {
    let dev = Device::flex();
    let p = pipeline();
    let err = |o: Map<String, Value>| {
        build_unet_trainer(&setup(&p, &o), &dev)
            .err()
            .expect("an error")
            .to_string()
    };
    let e = err(options(&[("learning_rat", json!(1e-4))]));
    assert!(e.contains("learning_rat"), "{e}");
    let e = err(options(&[("mode", json!("tryon"))]));
    assert!(e.contains("tryon"), "{e}");
    let e = err(options(&[("resolution", json!("64xabc"))]));
    assert!(e.contains("resolution"), "{e}");
    let e = err(options(&[("trainable", json!("norms"))]));
    assert!(e.contains("norms"), "{e}");
    let e = err(options(&[
        ("lr", json!(1e-3)),
        ("learning_rate", json!(1e-4)),
    ]));
    assert!(e.contains("disagree"), "{e}");
    // The data would draw timesteps the schedule does not have.
    let e = err(options(&[("num_train_timesteps", json!(500))]));
    assert!(e.contains("num_train_timesteps"), "{e}");
    // A U-Net folder alone builds (stepping encoded batches) but the data needs a VAE.
    let o = options(&[]);
    let unet_only = common::fixture("diffusers_unet_inpaint_pretrained");
    assert!(build_unet_trainer(&setup(&unet_only, &o), &dev).is_ok());
    let mut o2 = o.clone();
    o2.insert("weights".into(), json!(unet_only.display().to_string()));
    let e = open_unet_data(&spec(&o2, 0), &o2, &dev)
        .err()
        .expect("an error")
        .to_string();
    assert!(e.contains("vae"), "{e}");
    // The data side without weights or vae.
    let o = options(&[]);
    let e = open_unet_data(&spec(&o, 0), &o, &dev)
        .err()
        .expect("an error")
        .to_string();
    assert!(e.contains("vae"), "{e}");
    // A text-to-image U-Net is not an inpainting one.
    let o = options(&[(
        "vae",
        json!(common::fixture("diffusers_vae_pretrained")
            .display()
            .to_string()),
    )]);
    let e = build_unet_trainer(
        &setup(&common::fixture("diffusers_unet_text_pretrained"), &o),
        &dev,
    )
    .err()
    .expect("an error")
    .to_string();
    assert!(e.contains("in_channels"), "{e}");
}

/// Without a VAE the drive steps already-encoded batches (a notebook's), laid out as the
/// loop's 4-d map (`timesteps [B, 1, 1, 1]`, `encoder_hidden_states [B, 1, S, D]`), and
/// gives diffusers' losses (tests/fixtures/training/train_diffusers_unet, tolerances from
/// its JSON).
#[test]
fn drive_steps_encoded_batches_as_diffusers_does() {
    let dev = Device::flex();
    let dir = common::fixture("training");
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("train_diffusers_unet.json")).unwrap(),
    )
    .unwrap();
    let t = common::read_safetensors(&dir.join("train_diffusers_unet.safetensors"));
    let opt = &json["optimizer"];
    let mut o = Map::new();
    o.insert("trainable".into(), json!("all"));
    o.insert("learning_rate".into(), opt["lr"].clone());
    o.insert("adam_beta1".into(), opt["betas"][0].clone());
    o.insert("adam_beta2".into(), opt["betas"][1].clone());
    o.insert("adam_weight_decay".into(), opt["weight_decay"].clone());
    o.insert("adam_epsilon".into(), opt["eps"].clone());
    let mut drive = build_unet_trainer(
        &setup(&dir.join("train_diffusers_unet_pretrained"), &o),
        &dev,
    )
    .unwrap();
    let k_steps = json["K"].as_u64().unwrap() as usize;
    let mut last = None;
    for s in 0..k_steps {
        let mut b = vton_core::train::run::Batch::new();
        for name in [
            "latents",
            "masked_latents",
            "mask",
            "noise",
            "timesteps",
            "encoder_hidden_states",
        ] {
            let (shape, v) = &t[&format!("batch.{s}.{name}")];
            let shape4 = match shape.len() {
                1 => [shape[0], 1, 1, 1],
                3 => [shape[0], 1, shape[1], shape[2]],
                _ => [shape[0], shape[1], shape[2], shape[3]],
            };
            b.insert(
                name.into(),
                burn::tensor::Tensor::<4>::from_data(
                    burn::tensor::TensorData::new(v.clone(), shape4),
                    &dev,
                ),
            );
        }
        let l = drive.train_step(&b).unwrap();
        for (what, key) in [("loss", "loss"), ("grad_norm", "grad_norm")] {
            let want = json["loss_values"][format!("{key}.{s}")].as_f64().unwrap();
            let rtol = json["tolerance"]["loss"][format!("step {s}")]["rtol"]
                .as_f64()
                .unwrap();
            let got = l[what];
            let rel = (got - want).abs() / want.abs();
            eprintln!("drive step {s} {what}: {got} vs {want} rel {rel:.2e} (rtol {rtol:.0e})");
            assert!(rel <= rtol, "step {s} {what}: rel {rel:.3e} > {rtol:.0e}");
        }
        last = Some(b);
    }
    assert_eq!(drive.steps_done(), k_steps);
    // Validation decodes through the VAE, which this drive does not have.
    let e = drive
        .validate(&last.unwrap())
        .err()
        .expect("an error")
        .to_string();
    assert!(e.contains("vae"), "{e}");
    // In-memory weights carry no U-Net config.
    let mut s = setup(&dir.join("train_diffusers_unet_pretrained"), &o);
    s.weights_checkpoint = Some(
        Checkpoint::open(
            dir.join("train_diffusers_unet_pretrained/diffusion_pytorch_model.safetensors"),
        )
        .unwrap(),
    );
    let e = build_unet_trainer(&s, &dev).err().expect("an error");
    assert!(
        matches!(e, vton_core::VtonError::InvalidArgument { .. }),
        "{e:?}"
    );
}
