//! `vton train gmm|tom|tocg|unet|dci-viton-warp|dci-viton-unet`: the original training
//! scripts and notebooks, on vton's trainers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use vton_core::train::drive::{self, DataSpec, TrainKind, TrainSetup};
use vton_core::train::run::{run, Event, RunConfig};
use vton_core::{device_from_name, Result, VtonError};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    /// CP-VTON+ geometric matching module (train.py --stage GMM).
    Gmm,
    /// CP-VTON+ try-on module (train.py --stage TOM).
    Tom,
    /// HR-VITON condition generator with its discriminator (train_condition.py).
    Tocg,
    /// Latent-diffusion U-Net fine-tuning (a diffusers U-Net folder).
    Unet,
    /// DanMenCas/DCI-VITON warping network (Train_WarpingNetwork.ipynb); --vgg required.
    DciVitonWarp,
    /// DanMenCas/DCI-VITON diffusion U-Net (Train_DiffusionModel.ipynb); --vgg and
    /// --opt vae=<diffusers VAE folder> required, --opt warping=<checkpoint> to paste
    /// warped garments into the inputs.
    DciVitonUnet,
}

#[derive(Args)]
pub struct TrainArgs {
    /// What to train.
    #[arg(value_enum)]
    kind: Kind,
    /// Dataset root: VITON-HD / HR-VITON layout (train_pairs.txt, image/, cloth/, ...),
    /// CP-VTON+'s VITON layout, or what `vton preprocess` writes.
    #[arg(long)]
    data: PathBuf,
    /// Run directory: log.jsonl, samples/, checkpoints/step_<N>/.
    #[arg(long)]
    out: PathBuf,
    /// Initial weights under the original keys (gmm/tom: a .pth or safetensors state
    /// dict; tocg: the condition generator; unet: a diffusers U-Net folder). Without it,
    /// gmm, tom, dci-viton-warp and dci-viton-unet start from the original scripts'
    /// initialisation (seeded). dci-viton-*: the original's `torch.save` dict (its
    /// optimiser state is resumed too) or a bare state dict.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// tocg: the discriminator's initial weights.
    #[arg(long)]
    discriminator: Option<PathBuf>,
    /// tom / tocg: torchvision's vgg19-*.pth for the perceptual loss.
    #[arg(long)]
    vgg: Option<PathBuf>,
    /// Total optimiser steps (default: keep_step + decay_step for gmm/tom).
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long)]
    keep_step: Option<usize>,
    #[arg(long)]
    decay_step: Option<usize>,
    /// Save a checkpoint every N steps (and always at the end or on Ctrl-C).
    #[arg(long, default_value_t = 1000)]
    save_every: usize,
    /// Validate (SSIM/PSNR, sample panel) every N steps; 0 = never.
    #[arg(long, default_value_t = 0)]
    val_every: usize,
    /// Keep only the newest N checkpoints (0 = all).
    #[arg(long, default_value_t = 0)]
    keep_checkpoints: usize,
    /// Continue from the newest checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// Shuffle seed (and initialisation seed).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Decoding threads (0 = on the training thread).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Skip unreadable samples (listed at the end and in log.jsonl) instead of failing.
    #[arg(long)]
    skip_bad_samples: bool,
    /// Other options of the original script, by its own names: --opt grid_size=5
    /// --opt fine_height=256 --opt prediction_type=v_prediction ...
    #[arg(long = "opt", value_name = "NAME=VALUE")]
    opts: Vec<String>,
    /// cpu | wgpu | cuda[:N]
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Data-parallel training over several devices, comma-separated (cuda:0,cuda:1;
    /// cpu,cpu runs two replicas on the CPU): the batch is split between them and the
    /// gradients averaged. gmm and tom.
    #[arg(long, value_delimiter = ',')]
    devices: Vec<String>,
}

fn parse_opt(s: &str) -> Result<(String, serde_json::Value)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| VtonError::invalid("--opt", format!("'{s}' is not NAME=VALUE")))?;
    let v = v.trim();
    let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.into()));
    Ok((k.trim().to_string(), value))
}

pub fn run_train(args: TrainArgs) -> Result<()> {
    let device = device_from_name(&args.device)?;
    let mut options = serde_json::Map::new();
    for o in &args.opts {
        let (k, v) = parse_opt(o)?;
        options.insert(k, v);
    }
    for (k, v) in [
        ("lr", args.lr.map(serde_json::Value::from)),
        ("keep_step", args.keep_step.map(serde_json::Value::from)),
        ("decay_step", args.decay_step.map(serde_json::Value::from)),
    ] {
        if let Some(v) = v {
            options.insert(k.into(), v);
        }
    }
    let kind = match args.kind {
        Kind::Gmm => TrainKind::Gmm,
        Kind::Tom => TrainKind::Tom,
        Kind::Tocg => TrainKind::Tocg,
        Kind::Unet => TrainKind::Unet,
        Kind::DciVitonWarp => TrainKind::DciWarp,
        Kind::DciVitonUnet => TrainKind::DciUnet,
    };
    let setup = TrainSetup {
        kind,
        weights: args.weights.clone(),
        discriminator: args.discriminator.clone(),
        vgg: args.vgg.clone(),
        options: options.clone(),
        seed: args.seed,
        weights_checkpoint: None,
        discriminator_checkpoint: None,
    };
    let mut trainer = drive::build_trainer(&setup, &device)?;
    if !args.devices.is_empty() {
        let devices = args
            .devices
            .iter()
            .map(|d| device_from_name(d))
            .collect::<Result<Vec<_>>>()?;
        if args.batch_size < devices.len() {
            return Err(VtonError::invalid(
                "--batch-size",
                format!(
                    "{} cannot be split over {} devices",
                    args.batch_size,
                    devices.len()
                ),
            ));
        }
        trainer.set_devices(devices)?;
    }
    let steps = args.steps.unwrap_or_else(|| drive::default_steps(&setup));
    let spec = DataSpec {
        root: args.data.clone(),
        batch_size: args.batch_size,
        seed: args.seed,
        workers: args.workers,
        skip_bad: args.skip_bad_samples,
        options: drive::data_options(&setup),
        // A resumed run continues the sample order after the batches already seen.
        start_batch: if args.resume {
            vton_core::train::checkpoint::complete_checkpoints(&args.out)?
                .last()
                .map(|(s, _)| *s as usize)
                .unwrap_or(0)
        } else {
            0
        },
    };
    let (mut data, mut val) = drive::open_data(kind, &spec, &device)?;
    let config = RunConfig {
        out_dir: args.out.clone(),
        steps,
        save_every: args.save_every,
        val_every: args.val_every,
        resume: args.resume,
        keep_checkpoints: args.keep_checkpoints,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let c = cancel.clone();
        let _ = ctrlc::set_handler(move || {
            if c.swap(true, Ordering::SeqCst) {
                // A second Ctrl-C while saving: leave now (checkpoints are atomic).
                std::process::exit(130);
            }
            eprintln!("\nstopping: saving a checkpoint first (Ctrl-C again to quit now)");
        });
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("train [{bar:30}] {pos}/{len} {elapsed} (eta {eta}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    // Messages go through the bar on a terminal, to stderr otherwise (a hidden bar
    // drops its println).
    let say = |bar: &ProgressBar, m: String| {
        if bar.is_hidden() {
            eprintln!("{m}");
        } else {
            bar.println(m);
        }
    };
    let mut on_event = |e: &Event| match e {
        Event::Started {
            step, resumed_from, ..
        } => {
            bar.set_position(*step as u64);
            if let Some(p) = resumed_from {
                say(&bar, format!("resumed from {} (step {step})", p.display()));
            }
        }
        Event::Step {
            step,
            losses,
            seconds,
            lr,
            ..
        } => {
            bar.set_position(*step as u64);
            let terms: Vec<String> = losses.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
            bar.set_message(format!(
                "{} | lr {lr:.2e} | {:.2} s/step",
                terms.join(" "),
                seconds
            ));
        }
        Event::Validated {
            step,
            ssim,
            psnr,
            panel,
        } => say(
            &bar,
            format!(
                "step {step}: validation SSIM {ssim:.4} PSNR {psnr:.2} dB ({})",
                panel.display()
            ),
        ),
        Event::Saved { step, dir } => say(&bar, format!("step {step}: saved {}", dir.display())),
        Event::Stopped { .. } => bar.finish_and_clear(),
    };
    let val_source: Option<&mut dyn vton_core::train::run::BatchSource> = match val.as_mut() {
        Some(v) => Some(v.as_mut()),
        None => None,
    };
    let summary = run(
        trainer.as_mut(),
        data.as_mut(),
        val_source,
        &config,
        &cancel,
        &mut on_event,
    )?;
    for (what, why) in &summary.skipped_samples {
        eprintln!("skipped sample {what}: {why}");
    }
    println!(
        "{} {} steps ({:.3} s/step){}; checkpoint: {}",
        if summary.cancelled {
            "stopped after"
        } else {
            "trained"
        },
        summary.steps_done,
        summary.mean_step_seconds,
        if summary.skipped_samples.is_empty() {
            String::new()
        } else {
            format!(", {} samples skipped", summary.skipped_samples.len())
        },
        summary
            .last_checkpoint
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "none".into())
    );
    // Also in the original repository's own format where it differs (DCI-VITON's dicts).
    for p in trainer.export_original(&args.out)? {
        println!("original format: {}", p.display());
    }
    if summary.cancelled {
        return Err(VtonError::Cancelled {
            step: summary.steps_done,
            total: steps,
        });
    }
    Ok(())
}
