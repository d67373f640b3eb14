//! CP-VTON+ training (`train.py`): the GMM stage and the TOM stage.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor};

use crate::error::{Result, VtonError};
use crate::models::cpvton::{Gmm, GmmConfig, Tom, TomConfig};
use crate::nn::train_mode;
use crate::nn::NormKind;
use crate::train::losses::{self, VggLoss, VggLossConfig};
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

/// What a trainer holds besides its model, as plain data for saving and resuming:
/// the optimiser state ([`GmmTrainer::optimizer_state`]'s layout), the number of steps
/// taken (the schedule's position) and every BatchNorm's `num_batches_tracked`.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerState {
    pub step: usize,
    pub optimizer: BTreeMap<String, HostTensor>,
    pub num_batches_tracked: BTreeMap<String, i64>,
}

/// The part of a trainer that does not depend on the model: named parameters, Adam,
/// the schedule position and the BatchNorm counters.
struct Optimised {
    params: NamedParams,
    adam: Adam,
    options: CpvtonTrainOptions,
    step: usize,
    num_batches_tracked: BTreeMap<String, i64>,
    /// The autodiff device the model lives on.
    device: Device,
}

impl Optimised {
    fn new(
        l: &Loader,
        ckpt: &Checkpoint,
        options: CpvtonTrainOptions,
        device: Device,
    ) -> Result<Self> {
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
        Ok(Optimised {
            params,
            // train.py: Adam(model.parameters(), lr=opt.lr, betas=(0.5, 0.999)).
            adam: Adam::new(AdamConfig::adam(0.5, 0.999, 1e-8))?,
            options,
            step: 0,
            num_batches_tracked,
            device,
        })
    }

    fn lr(&self) -> f64 {
        self.options.schedule().lr(self.options.lr, self.step)
    }

    /// One `optimizer.step()` with `grads` at `lr`, then the buffer updates of the
    /// forward; advances the step count.
    fn apply<M: burn::module::Module>(
        &mut self,
        model: M,
        grads: &BTreeMap<String, Tensor<1>>,
        updates: Vec<crate::nn::BufferUpdate>,
        lr: f64,
    ) -> Result<M> {
        let mut values = self.params.values(&model);
        self.adam.step(lr, &mut values, grads)?;
        values.retain(|k, _| grads.contains_key(k));
        let model = self.params.set(model, &values)?;
        let (model, counted) = self.params.apply_buffer_updates(model, updates);
        for k in counted {
            let key = k.replace(".running_mean", ".num_batches_tracked");
            *self.num_batches_tracked.entry(key).or_insert(0) += 1;
        }
        self.step += 1;
        Ok(model)
    }

    /// PyTorch-layout gradients to burn's flat layout (only trainable keys).
    fn host_grads(
        &self,
        grads: &BTreeMap<String, HostTensor>,
    ) -> Result<BTreeMap<String, Tensor<1>>> {
        let mut out = BTreeMap::new();
        for (k, h) in grads {
            if !self.is_trainable(k) {
                return Err(VtonError::config(
                    k.clone(),
                    "not a trainable parameter of the model",
                ));
            }
            out.insert(
                k.clone(),
                self.params.from_host(k, h, &self.device)?.inner(),
            );
        }
        Ok(out)
    }

    fn is_trainable(&self, key: &str) -> bool {
        self.params
            .record(key)
            .is_some_and(|r| r.kind == crate::weights::ParamKind::Trainable)
    }

    fn optimizer_state(&self) -> Result<BTreeMap<String, HostTensor>> {
        let mut out = BTreeMap::new();
        for (k, st) in &self.adam.state {
            out.insert(format!("{k}.exp_avg"), self.params.to_host(k, &st.exp_avg)?);
            out.insert(
                format!("{k}.exp_avg_sq"),
                self.params.to_host(k, &st.exp_avg_sq)?,
            );
            out.insert(
                format!("{k}.step"),
                HostTensor::new(Vec::new(), vec![st.step as f32]),
            );
        }
        Ok(out)
    }

    fn load_optimizer_state(&mut self, state: &BTreeMap<String, HostTensor>) -> Result<()> {
        let mut adam = BTreeMap::new();
        for (k, h) in state {
            let (param, field) = k
                .rsplit_once('.')
                .filter(|(_, f)| matches!(*f, "exp_avg" | "exp_avg_sq" | "step"))
                .ok_or_else(|| {
                    VtonError::config(
                        k.clone(),
                        "optimiser state keys are <param>.exp_avg, <param>.exp_avg_sq, <param>.step",
                    )
                })?;
            if !self.is_trainable(param) {
                return Err(VtonError::config(
                    k.clone(),
                    "optimiser state for a key that is not a trainable parameter of the model",
                ));
            }
            if field != "exp_avg" {
                continue;
            }
            let get = |f: &str| {
                state.get(&format!("{param}.{f}")).ok_or_else(|| {
                    VtonError::config(format!("{param}.{f}"), "missing from the optimiser state")
                })
            };
            let step = get("step")?;
            let step = match step.data.as_slice() {
                [s] if *s >= 1.0 && s.fract() == 0.0 => *s as u64,
                _ => {
                    return Err(VtonError::config(
                        format!("{param}.step"),
                        format!("{:?}: expected one positive whole number", step.data),
                    ))
                }
            };
            let exp_avg = self.params.from_host(param, h, &self.device)?.inner();
            let exp_avg_sq = self
                .params
                .from_host(param, get("exp_avg_sq")?, &self.device)?
                .inner();
            adam.insert(
                param.to_string(),
                crate::train::optim::AdamState {
                    exp_avg,
                    exp_avg_sq,
                    step,
                },
            );
        }
        self.adam.state = adam;
        Ok(())
    }

    fn trainer_state(&self) -> Result<TrainerState> {
        Ok(TrainerState {
            step: self.step,
            optimizer: self.optimizer_state()?,
            num_batches_tracked: self.num_batches_tracked.clone(),
        })
    }

    fn load_trainer_state(&mut self, state: &TrainerState) -> Result<()> {
        for k in state.num_batches_tracked.keys() {
            if !self.num_batches_tracked.contains_key(k) {
                return Err(VtonError::config(
                    k.clone(),
                    "the model has no BatchNorm with this counter",
                ));
            }
        }
        self.load_optimizer_state(&state.optimizer)?;
        self.step = state.step;
        self.num_batches_tracked.extend(
            state
                .num_batches_tracked
                .iter()
                .map(|(k, v)| (k.clone(), *v)),
        );
        Ok(())
    }
}

/// Methods every CP-VTON+ trainer has (the model aside).
macro_rules! trainer_common {
    () => {
        pub fn params(&self) -> &NamedParams {
            &self.core.params
        }

        pub fn optimizer(&self) -> &Adam {
            &self.core.adam
        }

        pub fn optimizer_mut(&mut self) -> &mut Adam {
            &mut self.core.adam
        }

        /// Optimiser steps taken (the schedule's position).
        pub fn step_count(&self) -> usize {
            self.core.step
        }

        pub fn set_step_count(&mut self, step: usize) {
            self.core.step = step;
        }

        /// The learning rate of the next step.
        pub fn lr(&self) -> f64 {
            self.core.lr()
        }

        pub fn options(&self) -> &CpvtonTrainOptions {
            &self.core.options
        }

        /// The device the model trains on (an autodiff device).
        pub fn device(&self) -> &Device {
            &self.core.device
        }

        /// The model's state dict under the original checkpoint keys, PyTorch layout
        /// (parameters and running statistics; `num_batches_tracked` separately in
        /// [`Self::num_batches_tracked`]).
        pub fn state_dict(&self) -> Result<BTreeMap<String, HostTensor>> {
            self.core.params.state_dict(&self.model)
        }

        /// Every BatchNorm's `num_batches_tracked`, by its state-dict key.
        pub fn num_batches_tracked(&self) -> &BTreeMap<String, i64> {
            &self.core.num_batches_tracked
        }

        /// Adam's state in PyTorch's layout: `<param>.exp_avg`, `<param>.exp_avg_sq`
        /// (the parameter's shape) and `<param>.step` (0-d, as torch >= 1.12 keeps it), for
        /// every parameter that has had a gradient.
        pub fn optimizer_state(&self) -> Result<BTreeMap<String, HostTensor>> {
            self.core.optimizer_state()
        }

        /// Replaces Adam's state with one in [`Self::optimizer_state`]'s layout (every
        /// key checked against the model's parameters and shapes).
        pub fn load_optimizer_state(&mut self, state: &BTreeMap<String, HostTensor>) -> Result<()> {
            self.core.load_optimizer_state(state)
        }

        /// Step count, optimiser state and BatchNorm counters, for a checkpoint.
        pub fn trainer_state(&self) -> Result<TrainerState> {
            self.core.trainer_state()
        }

        /// Resumes from [`Self::trainer_state`]'s data (the model's weights come from the
        /// checkpoint the trainer was built from).
        pub fn load_trainer_state(&mut self, state: &TrainerState) -> Result<()> {
            self.core.load_trainer_state(state)
        }

        /// One `optimizer.step()` with gradients computed elsewhere (PyTorch layout, by
        /// parameter key; absent keys are `grad is None`), at learning rate `lr`
        /// (`None`: the schedule's); advances the step count.
        pub fn apply_gradients(
            &mut self,
            grads: &BTreeMap<String, HostTensor>,
            lr: Option<f64>,
        ) -> Result<f64> {
            let g = self.core.host_grads(grads)?;
            let lr = lr.unwrap_or_else(|| self.core.lr());
            self.model = self.core.apply(self.model.clone(), &g, Vec::new(), lr)?;
            Ok(lr)
        }
    };
}

/// CP-VTON+ `train_gmm`: GMM in train mode, `Lwarp + 40 Lgic`, Adam(0.5, 0.999).
pub struct GmmTrainer {
    model: Gmm,
    core: Optimised,
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
        let core = Optimised::new(&l, ckpt, options, ad)?;
        Ok(GmmTrainer { model, core })
    }

    pub fn model(&self) -> &Gmm {
        &self.model
    }

    trainer_common!();

    /// Forward and losses in train mode; returns the total loss tensor, the terms and the
    /// buffer updates.
    fn losses(
        &self,
        batch: &GmmBatch,
    ) -> Result<(Tensor<1>, LossTerms, Vec<crate::nn::BufferUpdate>)> {
        gmm_losses(
            &self.model,
            self.core.options.gic_weight,
            &self.core.device,
            batch,
        )
    }

    /// One `train_gmm` iteration data-parallel over `devices` (see [`data_parallel`]):
    /// the batch is split along dim 0 into one shard per device.
    pub fn step_data_parallel(
        &mut self,
        batch: &GmmBatch,
        devices: &[Device],
    ) -> Result<StepOutput> {
        let n = batch.agnostic.dims()[0];
        let ranges = shard_ranges(n, devices.len())?;
        let shards: Vec<(GmmBatch, usize, Device)> = ranges
            .iter()
            .zip(devices)
            .map(|(r, d)| {
                let cut = |t: &Tensor<4>| t.clone().narrow(0, r.start, r.len());
                (
                    GmmBatch {
                        agnostic: cut(&batch.agnostic),
                        cloth_mask: cut(&batch.cloth_mask),
                        cloth: cut(&batch.cloth),
                        parse_cloth: cut(&batch.parse_cloth),
                    },
                    r.len(),
                    d.clone().autodiff(),
                )
            })
            .collect();
        let gic = self.core.options.gic_weight;
        let (terms, grads, updates) = data_parallel(
            &self.model,
            &self.core.params,
            &self.core.device,
            shards,
            |m, b, d| gmm_losses(m, gic, d, b),
        )?;
        check_finite(&terms, self.core.step)?;
        let lr = self.core.lr();
        self.model = self.core.apply(self.model.clone(), &grads, updates, lr)?;
        Ok(StepOutput {
            losses: terms,
            lr,
            grads: Some(grads),
        })
    }

    /// One `train_gmm` iteration: forward (train mode), backward, Adam step. With
    /// `keep_grads`, the gradients before the step are returned too.
    pub fn step(&mut self, batch: &GmmBatch, keep_grads: bool) -> Result<StepOutput> {
        let (total, terms, updates) = self.losses(batch)?;
        check_finite(&terms, self.core.step)?;
        let g = total.backward();
        let grads = self.core.params.grads(&self.model, &g);
        let lr = self.core.lr();
        self.model = self.core.apply(self.model.clone(), &grads, updates, lr)?;
        Ok(StepOutput {
            losses: terms,
            lr,
            grads: keep_grads.then_some(grads),
        })
    }
}

/// One TOM batch, under `cp_dataset.py`'s names: `agnostic [B, 22, H, W]`, the warped
/// `cloth [B, 3, H, W]` and `cloth_mask [B, 1, H, W]`, the target `image [B, 3, H, W]`
/// and `parse_cloth_mask [B, 1, H, W]` (`pcm`, the mask loss's target).
#[derive(Debug, Clone)]
pub struct TomBatch {
    pub agnostic: Tensor<4>,
    pub cloth: Tensor<4>,
    pub cloth_mask: Tensor<4>,
    pub image: Tensor<4>,
    pub parse_cloth_mask: Tensor<4>,
}

/// `UnetGenerator`'s constructor arguments read from a TOM checkpoint (keys as
/// `tom_final.pth`): `input_nc` and `ngf` from `model.model.0.weight`, `output_nc` from
/// the outermost up-convolution `model.model.4.weight`, `num_downs` from the nesting
/// depth, the norm from the presence of BatchNorm running statistics.
pub fn tom_config_from_checkpoint(ckpt: &Checkpoint) -> Result<TomConfig> {
    let shape = |k: &str| {
        ckpt.shape(k)
            .map(|s| s.to_vec())
            .ok_or_else(|| VtonError::MissingWeights {
                source_name: ckpt.name().to_string(),
                count: 1,
                keys: k.to_string(),
            })
    };
    let first = shape("model.model.0.weight")?;
    let last = shape("model.model.4.weight")?;
    if first.len() != 4 || last.len() != 4 {
        return Err(VtonError::WeightShape {
            key: "model.model.0.weight".into(),
            expected: vec![first.first().copied().unwrap_or(0), 26, 4, 4],
            found: first,
        });
    }
    // Outermost: model.model.1 is the next block; a middle block keeps its sub-block
    // at index 3 of its Sequential.
    let mut num_downs = 2;
    let mut prefix = "model.model.1.model".to_string();
    while ckpt.contains(&format!("{prefix}.3.model.1.weight")) {
        num_downs += 1;
        prefix = format!("{prefix}.3.model");
    }
    let norm_layer = if ckpt.keys().any(|k| k.ends_with(".running_mean")) {
        NormKind::Batch
    } else {
        NormKind::Instance
    };
    Ok(TomConfig {
        input_nc: first[1],
        output_nc: last[0],
        num_downs,
        ngf: first[0],
        norm_layer,
    })
}

/// CP-VTON+ `train_tom`: `UnetGenerator` on `cat[agnostic, c, cm]`,
/// `p_tryon = c m + tanh(out[:3]) (1 - m)` with `m = sigmoid(out[3])`, loss
/// `L1(p_tryon, im) + VGGLoss(p_tryon, im) + L1(m, pcm)`, Adam(0.5, 0.999).
pub struct TomTrainer {
    model: Tom,
    vgg: VggLoss,
    core: Optimised,
}

impl TomTrainer {
    /// From a TOM checkpoint (keys as `tom_final.pth`, the architecture read from it) and
    /// a torchvision VGG19 checkpoint (`vgg19-dcbb9e9d.pth`) for the perceptual loss.
    pub fn from_checkpoints(
        tom: impl AsRef<Path>,
        vgg: impl AsRef<Path>,
        vgg_config: VggLossConfig,
        options: CpvtonTrainOptions,
        device: &Device,
    ) -> Result<Self> {
        let ckpt = Checkpoint::open(tom)?.rooted_at("model.model.0.weight");
        let vgg = Checkpoint::open(vgg)?;
        Self::from_loaded(&ckpt, &vgg, vgg_config, options, device)
    }

    /// From opened checkpoints; model and VGG live on `device.autodiff()`.
    pub fn from_loaded(
        tom: &Checkpoint,
        vgg: &Checkpoint,
        vgg_config: VggLossConfig,
        options: CpvtonTrainOptions,
        device: &Device,
    ) -> Result<Self> {
        let config = tom_config_from_checkpoint(tom)?;
        let ad = device.clone().autodiff();
        let l = Loader::new(tom, &ad, false);
        let model = Tom::load(&l, config)?;
        l.finish(true)?;
        let core = Optimised::new(&l, tom, options, ad.clone())?;
        let vgg = VggLoss::from_loaded(vgg, vgg_config, &ad)?;
        Ok(TomTrainer { model, vgg, core })
    }

    pub fn model(&self) -> &Tom {
        &self.model
    }

    pub fn vgg(&self) -> &VggLoss {
        &self.vgg
    }

    trainer_common!();

    fn losses(
        &self,
        batch: &TomBatch,
    ) -> Result<(Tensor<1>, LossTerms, Vec<crate::nn::BufferUpdate>)> {
        tom_losses(&self.model, &self.vgg, &self.core.device, batch)
    }

    /// One `train_tom` iteration data-parallel over `devices` (see [`data_parallel`]).
    /// TOM's losses are batch means and InstanceNorm is per sample, so `k` devices with
    /// `B/k` each compute the gradient of one device with `B` (up to rounding).
    pub fn step_data_parallel(
        &mut self,
        batch: &TomBatch,
        devices: &[Device],
    ) -> Result<StepOutput> {
        let n = batch.agnostic.dims()[0];
        let ranges = shard_ranges(n, devices.len())?;
        let shards: Vec<(TomBatch, usize, Device)> = ranges
            .iter()
            .zip(devices)
            .map(|(r, d)| {
                let cut = |t: &Tensor<4>| t.clone().narrow(0, r.start, r.len());
                (
                    TomBatch {
                        agnostic: cut(&batch.agnostic),
                        cloth: cut(&batch.cloth),
                        cloth_mask: cut(&batch.cloth_mask),
                        image: cut(&batch.image),
                        parse_cloth_mask: cut(&batch.parse_cloth_mask),
                    },
                    r.len(),
                    d.clone().autodiff(),
                )
            })
            .collect();
        let main = self.core.device.clone();
        let vgg = &self.vgg;
        let (terms, grads, updates) = data_parallel(
            &self.model,
            &self.core.params,
            &self.core.device,
            shards,
            |m, b, d| {
                if *d == main {
                    tom_losses(m, vgg, d, b)
                } else {
                    tom_losses(m, &vgg.fork(d), d, b)
                }
            },
        )?;
        check_finite(&terms, self.core.step)?;
        let lr = self.core.lr();
        self.model = self.core.apply(self.model.clone(), &grads, updates, lr)?;
        Ok(StepOutput {
            losses: terms,
            lr,
            grads: Some(grads),
        })
    }

    /// One `train_tom` iteration: forward, backward, Adam step. The loss terms are
    /// `loss_l1`, `loss_vgg`, `loss_mask`, `total` and each VGG slice's unweighted L1
    /// `vgg_layer_l1.<i>`. With `keep_grads`, the gradients before the step are returned.
    pub fn step(&mut self, batch: &TomBatch, keep_grads: bool) -> Result<StepOutput> {
        let (total, terms, updates) = self.losses(batch)?;
        check_finite(&terms, self.core.step)?;
        let g = total.backward();
        let grads = self.core.params.grads(&self.model, &g);
        let lr = self.core.lr();
        self.model = self.core.apply(self.model.clone(), &grads, updates, lr)?;
        Ok(StepOutput {
            losses: terms,
            lr,
            grads: keep_grads.then_some(grads),
        })
    }
}

/// GMM forward (train mode) and `train_gmm`'s losses on `device`.
fn gmm_losses(
    model: &Gmm,
    gic_weight: f64,
    dev: &Device,
    batch: &GmmBatch,
) -> Result<(Tensor<1>, LossTerms, Vec<crate::nn::BufferUpdate>)> {
    let b = GmmBatch {
        agnostic: batch.agnostic.clone().to_device(dev),
        cloth_mask: batch.cloth_mask.clone().to_device(dev),
        cloth: batch.cloth.clone().to_device(dev),
        parse_cloth: batch.parse_cloth.clone().to_device(dev),
    };
    let (out, updates) = train_mode(|| model.forward(b.agnostic, b.cloth_mask));
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
    let total = lwarp.clone() + lgic.clone().mul_scalar(gic_weight);
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

/// TOM forward and `train_tom`'s losses on `device`.
fn tom_losses(
    model: &Tom,
    vgg: &VggLoss,
    dev: &Device,
    batch: &TomBatch,
) -> Result<(Tensor<1>, LossTerms, Vec<crate::nn::BufferUpdate>)> {
    let to = |t: &Tensor<4>| t.clone().to_device(dev);
    let (image, pcm) = (to(&batch.image), to(&batch.parse_cloth_mask));
    let (out, updates) =
        train_mode(|| model.forward(to(&batch.agnostic), to(&batch.cloth), to(&batch.cloth_mask)));
    let out = out?;
    if out.p_tryon.dims() != image.dims() || out.m_composite.dims() != pcm.dims() {
        return Err(VtonError::SizeMismatch {
            what: "TOM targets (image, parse cloth mask)".into(),
            expected: format!("{:?} and {:?}", out.p_tryon.dims(), out.m_composite.dims()),
            actual: format!("{:?} and {:?}", image.dims(), pcm.dims()),
        });
    }
    let loss_l1 = losses::l1(out.p_tryon.clone(), image.clone());
    let (loss_vgg, layers) = vgg.forward_terms(out.p_tryon, image)?;
    let loss_mask = losses::l1(out.m_composite, pcm);
    let total = loss_l1.clone() + loss_vgg.clone() + loss_mask.clone();
    let mut terms = LossTerms::new();
    for (k, t) in [
        ("loss_l1", &loss_l1),
        ("loss_vgg", &loss_vgg),
        ("loss_mask", &loss_mask),
        ("total", &total),
    ] {
        terms.insert(k.to_string(), scalar(t)?);
    }
    for (i, t) in layers.iter().enumerate() {
        terms.insert(format!("vgg_layer_l1.{i}"), scalar(t)?);
    }
    Ok((total, terms, updates))
}

/// Splits `n` samples into `k` contiguous shards as even as possible (the first ones
/// one larger), every shard non-empty.
pub fn shard_ranges(n: usize, k: usize) -> Result<Vec<std::ops::Range<usize>>> {
    if k == 0 {
        return Err(VtonError::invalid(
            "devices",
            "at least one device is needed",
        ));
    }
    if n < k {
        return Err(VtonError::invalid(
            "batch_size",
            format!("a batch of {n} cannot be split over {k} devices"),
        ));
    }
    let (q, r) = (n / k, n % k);
    let mut out = Vec::with_capacity(k);
    let mut start = 0;
    for i in 0..k {
        let len = q + usize::from(i < r);
        out.push(start..start + len);
        start += len;
    }
    Ok(out)
}

/// A data-parallel gradient: one replica of `model` per shard, each on its shard's
/// device and in its own thread (forward, losses, backward); the gradients are brought
/// to `main` and averaged weighted by shard size, which is the gradient of the
/// whole-batch mean loss when every loss term is a batch mean (so `k` devices with
/// `B/k` samples each equal one device with `B`). Loss terms are averaged the same way
/// (terms named `*_raw`, sums over the batch, are added). Buffer updates (BatchNorm
/// running statistics) come from the first replica, as PyTorch's
/// `DistributedDataParallel(broadcast_buffers=True)` keeps rank 0's; BatchNorm layers
/// normalise with their own shard's statistics, as there.
///
/// This is burn-train's multi-device strategy with the optimiser on the main device
/// (`MultiDeviceOptim::OptimMainDevice`), written against this crate's trainers, which
/// keep PyTorch's optimiser and state-dict keys. [`run_shards`] and [`ShardMean`] are its
/// two halves, for trainers with more than one model or backward pass (HR-VITON's GAN
/// step).
pub fn data_parallel<M, B, F>(
    model: &M,
    params: &NamedParams,
    main: &Device,
    shards: Vec<(B, usize, Device)>,
    losses: F,
) -> Result<(
    LossTerms,
    BTreeMap<String, Tensor<1>>,
    Vec<crate::nn::BufferUpdate>,
)>
where
    M: burn::module::Module + Send + Sync,
    B: Send,
    F: Fn(&M, &B, &Device) -> Result<(Tensor<1>, LossTerms, Vec<crate::nn::BufferUpdate>)> + Sync,
{
    let shards = with_replicas(model, shards);
    let results = run_shards(shards, |(batch, replica), device| {
        let m = replica.as_ref().unwrap_or(model);
        let (total, terms, updates) = losses(m, &batch, device)?;
        let g = total.backward();
        let grads = params.grads(m, &g);
        Ok((terms, grads, updates))
    })?;
    let mean = ShardMean::new(results.iter().map(|r| r.0), main)?;
    let mut terms = LossTerms::new();
    let mut grads: BTreeMap<String, Tensor<1>> = BTreeMap::new();
    let mut updates = Vec::new();
    for (i, (n, (t, g, u))) in results.into_iter().enumerate() {
        mean.add_terms(&mut terms, n, t);
        mean.add_grads(&mut grads, n, g);
        if i == 0 {
            updates = mean.to_main(u);
        }
    }
    Ok((terms, grads, updates))
}

/// Pairs every shard after the first with its own replica of `model` (a fork onto the
/// shard's device, with parameter leaves of its own even when the device is the main
/// one); the first shard runs on `model` itself. Replicas are made here, on the calling
/// thread, before any shard thread starts: two shards tracing through the same parameter
/// tensors would merge their autodiff graphs (and deadlock burn-autodiff's graph locks
/// when one shard is in backward while the other registers a step), and a fork made
/// inside a shard thread registers a step on the shared parameters in the same way.
pub fn with_replicas<M: burn::module::Module, B>(
    model: &M,
    shards: Vec<(B, usize, Device)>,
) -> Vec<((B, Option<M>), usize, Device)> {
    shards
        .into_iter()
        .enumerate()
        .map(|(i, (b, n, d))| {
            let replica = (i > 0).then(|| model.clone().fork(&d));
            ((b, replica), n, d)
        })
        .collect()
}

/// Runs `work` once per shard `(data, samples, device)`, each in its own thread (inline
/// when there is one shard), and returns `(samples, result)` in shard order; the first
/// failing shard's error (in shard order) is the result when any fails.
pub fn run_shards<B, T, F>(shards: Vec<(B, usize, Device)>, work: F) -> Result<Vec<(usize, T)>>
where
    B: Send,
    T: Send,
    F: Fn(B, &Device) -> Result<T> + Sync,
{
    if shards.len() == 1 {
        let mut shards = shards;
        let (batch, n, device) = shards.remove(0);
        return Ok(vec![(n, work(batch, &device)?)]);
    }
    let results: Vec<(usize, Result<T>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .into_iter()
            .map(|(batch, n, device)| {
                let work = &work;
                scope.spawn(move || (n, work(batch, &device)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    (
                        0,
                        Err(VtonError::Backend {
                            operation: "data-parallel replica".into(),
                            message: "a replica thread panicked".into(),
                        }),
                    )
                })
            })
            .collect()
    });
    results
        .into_iter()
        .map(|(n, r)| r.map(|t| (n, t)))
        .collect()
}

/// Shard-size-weighted means of per-shard results on the main device: a shard of `n` of
/// the `total` samples counts `n / total`.
pub struct ShardMean {
    total: usize,
    main: Device,
}

impl ShardMean {
    /// From the shard sizes; an empty batch is an error.
    pub fn new(sizes: impl IntoIterator<Item = usize>, main: &Device) -> Result<Self> {
        let total: usize = sizes.into_iter().sum();
        if total == 0 {
            return Err(VtonError::invalid("batch", "is empty"));
        }
        Ok(ShardMean {
            total,
            main: main.clone(),
        })
    }

    fn weight(&self, n: usize) -> f64 {
        n as f64 / self.total as f64
    }

    /// Adds a shard's loss terms: weighted, except `*_raw` terms (sums over the batch),
    /// which are added as they are.
    pub fn add_terms(&self, acc: &mut LossTerms, n: usize, terms: LossTerms) {
        let w = self.weight(n);
        for (k, v) in terms {
            let add = if k.ends_with("_raw") { v } else { v * w };
            *acc.entry(k).or_insert(0.0) += add;
        }
    }

    /// Adds a shard's gradients (any device), weighted, on the main device.
    pub fn add_grads(
        &self,
        acc: &mut BTreeMap<String, Tensor<1>>,
        n: usize,
        grads: BTreeMap<String, Tensor<1>>,
    ) {
        let w = self.weight(n);
        for (k, v) in grads {
            let v = v.inner().to_device(&self.main).inner().mul_scalar(w);
            match acc.remove(&k) {
                Some(a) => acc.insert(k, a + v),
                None => acc.insert(k, v),
            };
        }
    }

    /// Buffer updates of a replica moved to the main device.
    pub fn to_main(&self, updates: Vec<crate::nn::BufferUpdate>) -> Vec<crate::nn::BufferUpdate> {
        updates
            .into_iter()
            .map(|mut b| {
                b.value = b.value.to_device(&self.main).inner();
                b
            })
            .collect()
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
