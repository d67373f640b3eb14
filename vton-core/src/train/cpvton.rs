//! CP-VTON+ training (`train.py`): the GMM stage and the TOM stage.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor};

use crate::error::{Result, VtonError};
use crate::models::cpvton::{Gmm, GmmConfig};
use crate::nn::train_mode;
use crate::train::losses;
use crate::train::optim::{Adam, AdamConfig, LrSchedule};
use crate::train::params::{HostTensor, NamedParams};
use crate::warp::grid::{grid_sample, GridSampleOptions, PaddingMode, SampleMode};
use crate::weights::{Checkpoint, Loader};

/// `train.py`'s options that the GMM and TOM stages read (named as `get_opt()` names them).
#[derive(Debug, Clone, PartialEq)]
pub struct CpvtonTrainOptions {
    pub fine_height: usize,
    pub fine_width: usize,
    pub grid_size: usize,
    pub lr: f64,
    pub keep_step: usize,
    pub decay_step: usize,
    /// `train.py` builds a `LambdaLR` but never steps it, so the recorded scripts train at
    /// a constant `lr`. `true` applies the schedule it evidently intended.
    pub step_scheduler: bool,
    /// GMM: weight of the grid-interval-consistency loss (`40` in `train.py`).
    pub gic_weight: f64,
}

impl Default for CpvtonTrainOptions {
    fn default() -> Self {
        CpvtonTrainOptions {
            fine_height: 256,
            fine_width: 192,
            grid_size: 5,
            lr: 1e-4,
            keep_step: 100_000,
            decay_step: 100_000,
            step_scheduler: false,
            gic_weight: 40.0,
        }
    }
}

impl CpvtonTrainOptions {
    fn schedule(&self) -> LrSchedule {
        if self.step_scheduler {
            LrSchedule::LinearDecay {
                keep_step: self.keep_step,
                decay_step: self.decay_step,
            }
        } else {
            LrSchedule::Constant
        }
    }

    /// The number of steps `train.py` runs (`keep_step + decay_step`).
    pub fn total_steps(&self) -> usize {
        self.keep_step + self.decay_step
    }
}

/// One GMM batch, under `cp_dataset.py`'s names: `agnostic [B, 22, H, W]`,
/// `cloth_mask [B, 1, H, W]`, `cloth [B, 3, H, W]` and `parse_cloth [B, 3, H, W]`
/// (the person's cloth region, `im_c`), values as the dataset returns them.
#[derive(Debug, Clone)]
pub struct GmmBatch {
    pub agnostic: Tensor<4>,
    pub cloth_mask: Tensor<4>,
    pub cloth: Tensor<4>,
    pub parse_cloth: Tensor<4>,
}

/// Loss terms of one step, by the names `train.py` gives them.
pub type LossTerms = BTreeMap<String, f64>;

/// What one training step computed.
#[derive(Debug, Clone)]
pub struct StepOutput {
    pub losses: LossTerms,
    /// The learning rate the optimiser step used.
    pub lr: f64,
    /// Gradients (flat, burn layout) before the optimiser step, when asked for.
    pub grads: Option<BTreeMap<String, Tensor<1>>>,
}

/// CP-VTON+ `train_gmm`: GMM in train mode, `Lwarp + 40 Lgic`, Adam(0.5, 0.999).
pub struct GmmTrainer {
    model: Gmm,
    params: NamedParams,
    adam: Adam,
    options: CpvtonTrainOptions,
    step: usize,
    num_batches_tracked: BTreeMap<String, i64>,
    device: Device,
}

impl GmmTrainer {
    /// From a checkpoint (any format [`Checkpoint::open`] reads, keys as `gmm_final.pth`).
    pub fn from_checkpoint(
        path: impl AsRef<Path>,
        options: CpvtonTrainOptions,
        device: &Device,
    ) -> Result<Self> {
        let ckpt = Checkpoint::open(path)?.rooted_at("extractionA.model.0.weight");
        Self::from_loaded(&ckpt, options, device)
    }

    /// From an opened checkpoint; the model lives on `device.autodiff()`.
    pub fn from_loaded(
        ckpt: &Checkpoint,
        options: CpvtonTrainOptions,
        device: &Device,
    ) -> Result<Self> {
        let ad = device.clone().autodiff();
        let l = Loader::new(ckpt, &ad, false);
        let config = GmmConfig {
            grid_size: options.grid_size,
            fine_height: options.fine_height,
            fine_width: options.fine_width,
        };
        let model = Gmm::load(&l, config)?;
        l.finish(true)?;
        let params = NamedParams::new(l.param_records())?;
        let mut num_batches_tracked = BTreeMap::new();
        for r in params.records() {
            if let Some(prefix) = r.key.strip_suffix(".running_mean") {
                let k = format!("{prefix}.num_batches_tracked");
                let v = ckpt
                    .read_f32(&k)
                    .ok()
                    .and_then(|v| v.first().copied())
                    .unwrap_or(0.0);
                num_batches_tracked.insert(k, v as i64);
            }
        }
        Ok(GmmTrainer {
            model,
            params,
            adam: Adam::new(AdamConfig::adam(0.5, 0.999, 1e-8))?,
            options,
            step: 0,
            num_batches_tracked,
            device: ad,
        })
    }

    pub fn model(&self) -> &Gmm {
        &self.model
    }

    pub fn params(&self) -> &NamedParams {
        &self.params
    }

    pub fn optimizer(&self) -> &Adam {
        &self.adam
    }

    pub fn optimizer_mut(&mut self) -> &mut Adam {
        &mut self.adam
    }

    /// Optimiser steps taken.
    pub fn step_count(&self) -> usize {
        self.step
    }

    pub fn set_step_count(&mut self, step: usize) {
        self.step = step;
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        self.options.schedule().lr(self.options.lr, self.step)
    }

    pub fn options(&self) -> &CpvtonTrainOptions {
        &self.options
    }

    /// The device the model trains on (an autodiff device).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Forward and losses in train mode; returns the total loss tensor, the terms and the
    /// buffer updates.
    fn losses(
        &self,
        batch: &GmmBatch,
    ) -> Result<(Tensor<1>, LossTerms, Vec<crate::nn::BufferUpdate>)> {
        let dev = &self.device;
        let b = GmmBatch {
            agnostic: batch.agnostic.clone().to_device(dev),
            cloth_mask: batch.cloth_mask.clone().to_device(dev),
            cloth: batch.cloth.clone().to_device(dev),
            parse_cloth: batch.parse_cloth.clone().to_device(dev),
        };
        let (out, updates) = train_mode(|| self.model.forward(b.agnostic, b.cloth_mask));
        let out = out?;
        let warped = grid_sample(
            b.cloth,
            out.grid.clone(),
            GridSampleOptions::new(SampleMode::Bilinear, PaddingMode::Border, false),
        )?;
        let lwarp = losses::l1(warped, b.parse_cloth);
        let [n, h, w, _] = out.grid.dims();
        let gic_raw = losses::grid_interval_consistency(out.grid);
        let lgic = gic_raw.clone().div_scalar((n * h * w) as f64);
        let total = lwarp.clone() + lgic.clone().mul_scalar(self.options.gic_weight);
        let mut terms = LossTerms::new();
        for (k, t) in [
            ("Lwarp", &lwarp),
            ("Lgic", &lgic),
            ("Lgic_raw", &gic_raw),
            ("total", &total),
        ] {
            terms.insert(k.to_string(), scalar(t)?);
        }
        Ok((total, terms, updates))
    }

    /// One `train_gmm` iteration: forward (train mode), backward, Adam step. With
    /// `keep_grads`, the gradients before the step are returned too.
    pub fn step(&mut self, batch: &GmmBatch, keep_grads: bool) -> Result<StepOutput> {
        let (total, terms, updates) = self.losses(batch)?;
        check_finite(&terms, self.step)?;
        let g = total.backward();
        let grads = self.params.grads(&self.model, &g);
        let lr = self.lr();
        let mut values = self.params.values(&self.model);
        self.adam.step(lr, &mut values, &grads)?;
        values.retain(|k, _| grads.contains_key(k));
        let model = self.params.set(self.model.clone(), &values)?;
        let (model, counted) = self.params.apply_buffer_updates(model, updates);
        self.model = model;
        for k in counted {
            let key = k.replace(".running_mean", ".num_batches_tracked");
            *self.num_batches_tracked.entry(key).or_insert(0) += 1;
        }
        self.step += 1;
        Ok(StepOutput {
            losses: terms,
            lr,
            grads: keep_grads.then_some(grads),
        })
    }

    /// The model's state dict under `gmm_final.pth`'s keys (parameters, running
    /// statistics; `num_batches_tracked` separately in [`Self::num_batches_tracked`]).
    pub fn state_dict(&self) -> Result<BTreeMap<String, HostTensor>> {
        self.params.state_dict(&self.model)
    }

    pub fn num_batches_tracked(&self) -> &BTreeMap<String, i64> {
        &self.num_batches_tracked
    }
}

/// A 0-d / 1-element tensor's value.
pub(crate) fn scalar(t: &Tensor<1>) -> Result<f64> {
    let v = crate::train::params::tensor_to_vec(t)?;
    v.first()
        .map(|&x| x as f64)
        .ok_or_else(|| VtonError::Numerical {
            operation: "loss".into(),
            message: "empty loss tensor".into(),
        })
}

pub(crate) fn check_finite(terms: &LossTerms, step: usize) -> Result<()> {
    if let Some((k, v)) = terms.iter().find(|(_, v)| !v.is_finite()) {
        return Err(VtonError::Numerical {
            operation: format!("training step {step}"),
            message: format!("loss term {k} is {v}"),
        });
    }
    Ok(())
}
