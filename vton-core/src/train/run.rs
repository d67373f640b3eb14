//! The training loop shared by every trainer: steps over a batch source, a JSONL log of
//! every loss term, validation (SSIM / PSNR) with sample panels, checkpoints
//! ([`crate::train::checkpoint::TrainingState`], written atomically) every `save_every` steps, resume from the newest complete checkpoint,
//! and a clean stop (a save first) when the cancel flag is raised.
//!
//! burn-train's `Learner` is not used for the loop: it drives one model with one
//! optimiser through `TrainStep`, and owns checkpoint naming and its own record format.
//! The reference scripts need two optimisers stepped in a fixed order (the HR-VITON
//! GAN), gradient taps for teacher-forced checks, PyTorch-layout state dicts under the
//! original keys and `.pth` files the original repositories load. The loop here is
//! small and keeps those properties; the trainers themselves are plain structs that a
//! notebook can step by hand.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::Tensor;

use crate::error::{Result, VtonError};
use crate::io::image::{RgbImage, ValueRange};
use crate::metrics::image::MetricImage;
use crate::metrics::ssim::{psnr, ssim, SsimConvention};
use crate::train::checkpoint::{
    complete_checkpoints, load_latest, step_dir, SaveOptions, TrainingState,
};

/// A batch: NCHW tensors under the dataset class's keys.
pub type Batch = BTreeMap<String, Tensor<4>>;

/// Loss terms of one step, by the names the reference script gives them.
pub type LossTerms = BTreeMap<String, f64>;

/// What a trainer shows for validation: its prediction and the target, both images in
/// [-1, 1] `[B, 3, H, W]`, and the panel columns (inputs, intermediates, output, target).
pub struct Validation {
    pub prediction: Tensor<4>,
    pub target: Tensor<4>,
    pub panel: Vec<(String, Tensor<4>)>,
}

/// A trainer the loop can drive.
pub trait Trainer: Send {
    /// `gmm`, `tom`, `tocg`, `unet`.
    fn kind(&self) -> &'static str;
    /// One optimiser step (all optimisers of the method) on a batch.
    fn train_step(&mut self, batch: &Batch) -> Result<LossTerms>;
    /// Optimiser steps done so far.
    fn steps_done(&self) -> usize;
    /// The learning rate of the next step.
    fn current_lr(&self) -> f64;
    /// Prediction and target on a batch, without training.
    fn validate(&self, batch: &Batch) -> Result<Validation>;
    /// Everything resume needs: the model(s) under the original keys, optimiser state,
    /// step, options.
    fn training_state(&self) -> Result<TrainingState>;
    /// Continues from a state [`Trainer::training_state`] produced.
    fn restore(&mut self, state: TrainingState) -> Result<()>;
    /// Writes the trained model(s) into `dir` in the original repository's own file format
    /// when that differs from the loop's checkpoints (DCI-VITON saves
    /// `{'model_state_dict', 'optimizer_state_dict'}` dicts); returns the files written.
    /// The default writes nothing: the loop's `<model>.pth` already is the original format.
    fn export_original(&self, _dir: &Path) -> Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
    /// Trains data-parallel over these devices from the next step on (one replica per
    /// device, the batch split along dim 0, gradients averaged; see
    /// [`crate::train::cpvton::data_parallel`]). One device is the plain step.
    fn set_devices(&mut self, devices: Vec<burn::tensor::Device>) -> Result<()> {
        if devices.len() <= 1 {
            return Ok(());
        }
        Err(VtonError::Unsupported {
            what: format!("data-parallel training of {} (use one device)", self.kind()),
        })
    }
}

/// A source of batches (the data loader, or recorded batches in tests).
pub trait BatchSource {
    fn next_batch(&mut self) -> Result<Batch>;
    /// Samples skipped as unreadable so far: `(description, message)`.
    fn skipped(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

/// Loop settings (`vton train`'s flags).
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub out_dir: PathBuf,
    /// Total optimiser steps of the run (a resumed run stops at the same total).
    pub steps: usize,
    /// 0 = only at the end.
    pub save_every: usize,
    /// 0 = never.
    pub val_every: usize,
    /// Continue from the newest complete checkpoint in `out_dir/checkpoints`.
    pub resume: bool,
    /// How many checkpoints to keep (0 = all).
    pub keep_checkpoints: usize,
}

/// Progress reported to the caller (progress bar, notebook callback).
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        step: usize,
        total: usize,
        resumed_from: Option<PathBuf>,
    },
    Step {
        step: usize,
        total: usize,
        losses: LossTerms,
        lr: f64,
        seconds: f64,
    },
    Validated {
        step: usize,
        ssim: f64,
        psnr: f64,
        panel: PathBuf,
    },
    Saved {
        step: usize,
        dir: PathBuf,
    },
    Stopped {
        step: usize,
        cancelled: bool,
    },
}

/// What a finished (or stopped) run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub steps_done: usize,
    pub cancelled: bool,
    pub last_checkpoint: Option<PathBuf>,
    pub skipped_samples: Vec<(String, String)>,
    pub mean_step_seconds: f64,
}

fn io_err(path: &Path, e: std::io::Error) -> VtonError {
    VtonError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

fn save_checkpoint(trainer: &dyn Trainer, out: &Path, keep: usize) -> Result<PathBuf> {
    let state = trainer.training_state()?;
    state.save_with(
        out,
        &SaveOptions {
            pth: true,
            keep_last: (keep > 0).then_some(keep),
        },
    )
}

/// Appends one JSON line and flushes it (the log survives a crash up to the last step).
struct JsonlLog {
    file: fs::File,
    path: PathBuf,
}

impl JsonlLog {
    fn open(path: PathBuf) -> Result<Self> {
        let file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        Ok(JsonlLog { file, path })
    }

    fn write(&mut self, v: serde_json::Value) -> Result<()> {
        writeln!(self.file, "{v}")
            .and_then(|_| self.file.flush())
            .map_err(|e| io_err(&self.path, e))
    }
}

/// SSIM (scikit-image Gaussian convention) and PSNR over a validation batch, both
/// images mapped from [-1, 1] to [0, 1].
pub fn validation_scores(v: &Validation) -> Result<(f64, f64)> {
    let to01 = |t: &Tensor<4>| {
        t.clone()
            .inner()
            .add_scalar(1.0)
            .div_scalar(2.0)
            .clamp(0.0, 1.0)
    };
    let p = MetricImage::from_tensor(to01(&v.prediction))?;
    let t = MetricImage::from_tensor(to01(&v.target))?;
    let (mut s, mut q) = (0.0, 0.0);
    for (a, b) in p.iter().zip(&t) {
        s += ssim(a, b, SsimConvention::SkimageGaussian, 1.0)?;
        q += psnr(a, b, 1.0)?;
    }
    let n = p.len().max(1) as f64;
    Ok((s / n, q / n))
}

/// Writes the first sample of each panel column side by side as one PNG; 1-channel
/// columns are shown grey, every column in [-1, 1].
pub fn write_panel(v: &Validation, path: &Path) -> Result<()> {
    let mut cols = Vec::new();
    let mut hw = None;
    for (_, t) in &v.panel {
        let [_, c, h, w] = t.dims();
        let first = t.clone().inner().slice([0..1, 0..c, 0..h, 0..w]);
        let rgb = match c {
            3 => first,
            1 => Tensor::cat(vec![first.clone(), first.clone(), first], 1),
            _ => first.slice([0..1, 0..3.min(c), 0..h, 0..w]),
        };
        let rgb = if rgb.dims()[1] == 3 { rgb } else { continue };
        let (h0, w0) = *hw.get_or_insert((h, w));
        let rgb = if (h, w) == (h0, w0) {
            rgb
        } else {
            crate::nn::resize_bilinear(rgb, h0, w0)
        };
        cols.push(rgb.clamp(-1.0, 1.0));
    }
    if cols.is_empty() {
        return Err(VtonError::invalid("panel", "no image column to show"));
    }
    let img = RgbImage::from_tensor(Tensor::cat(cols, 3), ValueRange::MinusOneOne)?;
    img.save_png(path)
}

/// Runs `trainer` until `config.steps` optimiser steps are done, or `cancel` is raised
/// (then it saves first and returns with `cancelled`).
pub fn run(
    trainer: &mut dyn Trainer,
    data: &mut dyn BatchSource,
    mut val: Option<&mut dyn BatchSource>,
    config: &RunConfig,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(&Event),
) -> Result<RunSummary> {
    let out = &config.out_dir;
    fs::create_dir_all(out).map_err(|e| io_err(out, e))?;
    let mut resumed_from = None;
    if config.resume {
        if let Some(found) = load_latest(out)? {
            trainer.restore(found.state)?;
            resumed_from = Some(found.dir);
        }
    } else if !complete_checkpoints(out)?.is_empty() {
        return Err(VtonError::invalid(
            "out",
            format!(
                "{} already holds checkpoints: pass --resume to continue, or choose another directory",
                out.display()
            ),
        ));
    }
    let mut log = JsonlLog::open(out.join("log.jsonl"))?;
    let total = config.steps;
    on_event(&Event::Started {
        step: trainer.steps_done(),
        total,
        resumed_from: resumed_from.clone(),
    });
    let samples = out.join("samples");
    let mut last_checkpoint = resumed_from;
    let mut cancelled = false;
    let (mut time_sum, mut time_n) = (0.0, 0usize);
    while trainer.steps_done() < total {
        if cancel.load(Ordering::SeqCst) {
            cancelled = true;
            break;
        }
        let batch = data.next_batch()?;
        let lr = trainer.current_lr();
        let t0 = Instant::now();
        let losses = trainer.train_step(&batch)?;
        let seconds = t0.elapsed().as_secs_f64();
        time_sum += seconds;
        time_n += 1;
        let step = trainer.steps_done();
        log.write(serde_json::json!({
            "step": step, "lr": lr, "seconds": seconds, "losses": losses,
        }))?;
        on_event(&Event::Step {
            step,
            total,
            losses,
            lr,
            seconds,
        });
        if config.val_every > 0 && step % config.val_every == 0 {
            if let Some(v) = val.as_deref_mut() {
                let vb = v.next_batch()?;
                let res = trainer.validate(&vb)?;
                let (s, p) = validation_scores(&res)?;
                fs::create_dir_all(&samples).map_err(|e| io_err(&samples, e))?;
                let panel = samples.join(format!("step_{step:08}.png"));
                write_panel(&res, &panel)?;
                log.write(serde_json::json!({
                    "step": step, "validation": {"ssim": s, "psnr": p, "panel": panel.file_name().map(|f| f.to_string_lossy().to_string())},
                }))?;
                on_event(&Event::Validated {
                    step,
                    ssim: s,
                    psnr: p,
                    panel,
                });
            }
        }
        if config.save_every > 0 && step % config.save_every == 0 && step < total {
            let dir = save_checkpoint(trainer, out, config.keep_checkpoints)?;
            on_event(&Event::Saved {
                step,
                dir: dir.clone(),
            });
            last_checkpoint = Some(dir);
        }
    }
    let step = trainer.steps_done();
    let already = last_checkpoint
        .as_ref()
        .is_some_and(|p| *p == step_dir(out, step as u64));
    if !already && step > 0 {
        let dir = save_checkpoint(trainer, out, config.keep_checkpoints)?;
        on_event(&Event::Saved {
            step,
            dir: dir.clone(),
        });
        last_checkpoint = Some(dir);
    }
    on_event(&Event::Stopped { step, cancelled });
    let skipped = data.skipped();
    if !skipped.is_empty() {
        log.write(serde_json::json!({"skipped_samples": skipped}))?;
    }
    Ok(RunSummary {
        steps_done: step,
        cancelled,
        last_checkpoint,
        skipped_samples: skipped,
        mean_step_seconds: if time_n > 0 {
            time_sum / time_n as f64
        } else {
            0.0
        },
    })
}
