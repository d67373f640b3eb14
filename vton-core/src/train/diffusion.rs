//! Latent-diffusion U-Net fine-tuning (diffusers' training loop).
//!
//! One [`UNetTrainer::step`] is the loop body of diffusers'
//! `examples/text_to_image/train_text_to_image.py`, with the inpainting input of
//! `train_dreambooth_inpaint.py` when the U-Net takes more channels than the latents:
//!
//! 1. `noisy = sqrt(acp[t]) * latents + sqrt(1 - acp[t]) * noise` (`add_noise`, with the
//!    scheduler's float32 `alphas_cumprod`, one timestep per sample);
//! 2. `target = noise` (epsilon) or `sqrt(acp[t]) * noise - sqrt(1 - acp[t]) * latents`
//!    (`get_velocity`, v-prediction);
//! 3. `pred = unet(cat([noisy, mask, masked_latents], 1), t, encoder_hidden_states)`;
//!    the mask and masked latents are optional (a 4-channel text-to-image U-Net takes
//!    `noisy` alone), the concatenation order is diffusers' SD-inpainting order;
//! 4. `loss = mse(pred, target)` (mean over every element), backward;
//! 5. `grad_norm = clip_grad_norm_(params, max_grad_norm)` (global, pre-clip norm
//!    returned, coefficient `min(1, max / (norm + 1e-6))`), AdamW step at the scheduled
//!    learning rate (decoupled decay on every trainable parameter first), optional EMA.
//!
//! CatVTON's layout is the 9-channel inpainting U-Net run without encoder states (the
//! cross-attentions are skipped, as CatVTON's `SkipAttnProcessor` does) on person and
//! garment latents concatenated along the height by the caller; CatVTON trains only the
//! self-attention modules ([`TrainableSubset::SelfAttention`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param, ParamId};
use burn::tensor::{Device, Tensor};

use crate::error::{Result, VtonError};
use crate::models::unet::{Timesteps, UNet2DConditionConfig, UNet2DConditionModel};
use crate::schedulers::{add_noise_with, velocity_with, BetaConfig, PredictionType};
use crate::train::cpvton::{data_parallel, scalar, shard_ranges, LossTerms};
use crate::train::losses;
use crate::train::optim::{clip_grad_norm, Adam, AdamConfig, AdamState, LrSchedule};
use crate::train::params::{HostTensor, NamedParams};
use crate::weights::Checkpoint;

/// Which parameters are trained; the others are frozen (no gradient, not in the
/// optimiser, unchanged by a step).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrainableSubset {
    /// Every parameter (`train_text_to_image.py`; CatVTON's `trainable_module_name="unet"`).
    #[default]
    All,
    /// CatVTON's `"attention"` subset: every parameter of a module whose name contains
    /// `attn1` (`model/utils.py: get_trainable_module`: `for name, m in
    /// unet.named_modules(): if "attn1" in name`). In diffusers' U-Net these are the
    /// self-attention projections `*.transformer_blocks.<j>.attn1.{to_q,to_k,to_v,to_out.0}`
    /// of every transformer block. Rule on a state-dict key: the module path (the key
    /// without its last `.`-segment) contains the substring `attn1`.
    SelfAttention,
    /// CatVTON's `"transformer"` subset: every parameter of the `attentions` of the down,
    /// mid and up blocks (keys `down_blocks.<i>.attentions.*`, `mid_block.attentions.*`,
    /// `up_blocks.<i>.attentions.*`).
    Transformers,
}

impl TrainableSubset {
    /// Whether the parameter under `key` (a diffusers state-dict key) is trained.
    pub fn contains(&self, key: &str) -> bool {
        match self {
            TrainableSubset::All => true,
            TrainableSubset::SelfAttention => key
                .rsplit_once('.')
                .is_some_and(|(module, _)| module.contains("attn1")),
            TrainableSubset::Transformers => {
                let seg: Vec<&str> = key.split('.').collect();
                match seg.first() {
                    Some(&"mid_block") => seg.get(1) == Some(&"attentions"),
                    Some(&"down_blocks") | Some(&"up_blocks") => seg.get(2) == Some(&"attentions"),
                    _ => false,
                }
            }
        }
    }
}

/// diffusers' `EMAModel` settings (`diffusers.training_utils`, the defaults there).
///
/// Decay at optimisation step `n` (1 after the first `step`):
/// `k = max(0, n - update_after_step - 1)`; `k == 0` gives decay 0 (the shadow copies the
/// parameters); otherwise `d = 1 - (1 + k / inv_gamma)^-power` with `use_ema_warmup`, else
/// `d = decay`; then `d = max(min(d, decay), min_decay)`. The update is
/// `shadow -= (1 - d) * (shadow - param)` in float32 for trained parameters; frozen ones
/// are copied. (Older diffusers releases used `(1 + k) / (10 + k)` without warmup; the
/// current one, followed here, uses the constant `decay`.)
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EmaOptions {
    pub decay: f64,
    pub min_decay: f64,
    pub update_after_step: u64,
    pub use_ema_warmup: bool,
    pub inv_gamma: f64,
    pub power: f64,
}

impl Default for EmaOptions {
    fn default() -> Self {
        EmaOptions {
            decay: 0.9999,
            min_decay: 0.0,
            update_after_step: 0,
            use_ema_warmup: false,
            inv_gamma: 1.0,
            power: 2.0 / 3.0,
        }
    }
}

impl EmaOptions {
    /// `EMAModel.get_decay(optimization_step)`.
    pub fn decay_at(&self, optimization_step: u64) -> f64 {
        let k = optimization_step.saturating_sub(self.update_after_step + 1);
        if k == 0 {
            return 0.0;
        }
        let d = if self.use_ema_warmup {
            1.0 - (1.0 + k as f64 / self.inv_gamma).powf(-self.power)
        } else {
            self.decay
        };
        d.min(self.decay).max(self.min_decay)
    }

    fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.decay) || !(0.0..=1.0).contains(&self.min_decay) {
            return Err(VtonError::invalid(
                "ema decay / min_decay",
                "must lie in [0, 1]",
            ));
        }
        if self.inv_gamma.is_nan()
            || self.inv_gamma <= 0.0
            || self.power.is_nan()
            || self.power < 0.0
        {
            return Err(VtonError::invalid(
                "ema inv_gamma / power",
                "inv_gamma must be positive, power non-negative",
            ));
        }
        Ok(())
    }
}

/// Options of [`UNetTrainer`]; the defaults are `train_text_to_image.py`'s.
#[derive(Debug, Clone, PartialEq)]
pub struct UNetTrainOptions {
    pub lr: f64,
    pub betas: (f64, f64),
    pub weight_decay: f64,
    pub eps: f64,
    /// Global gradient clipping (`clip_grad_norm_`); `None` only measures the norm.
    pub max_grad_norm: Option<f64>,
    /// `None`: the scheduler config's `prediction_type` (as the script does without
    /// `--prediction_type`; epsilon when there is no config).
    pub prediction_type: Option<PredictionType>,
    pub trainable: TrainableSubset,
    pub ema: Option<EmaOptions>,
    pub lr_schedule: LrSchedule,
    /// The training noise schedule; overrides `<folder>/scheduler/scheduler_config.json`.
    pub scheduler: Option<BetaConfig>,
}

impl Default for UNetTrainOptions {
    fn default() -> Self {
        UNetTrainOptions {
            lr: 1e-4,
            betas: (0.9, 0.999),
            weight_decay: 1e-2,
            eps: 1e-8,
            max_grad_norm: Some(1.0),
            prediction_type: None,
            trainable: TrainableSubset::All,
            ema: None,
            lr_schedule: LrSchedule::Constant,
            scheduler: None,
        }
    }
}

/// One training batch: latents `[B, C, h, w]` (VAE latents times the scaling factor),
/// optional `mask [B, 1, h, w]` and `masked_latents [B, C', h, w]`, the noise draw
/// (shape of `latents`), one timestep per sample (or one for all) and optional encoder
/// hidden states `[B, seq, cross_attention_dim]`.
#[derive(Debug, Clone)]
pub struct UNetBatch {
    pub latents: Tensor<4>,
    pub masked_latents: Option<Tensor<4>>,
    pub mask: Option<Tensor<4>>,
    pub noise: Tensor<4>,
    pub timesteps: Vec<i64>,
    pub encoder_hidden_states: Option<Tensor<3>>,
}

/// What one step computed.
#[derive(Debug, Clone)]
pub struct UNetStepOutput {
    pub loss: f64,
    /// The global gradient norm before clipping.
    pub grad_norm: f64,
    /// The learning rate the optimiser step used.
    pub lr: f64,
    /// Gradients before clipping (flat, burn layout), when asked for.
    pub grads: Option<BTreeMap<String, Tensor<1>>>,
}

/// diffusers' `EMAModel`: shadow copies of the trained parameters.
#[derive(Debug, Clone)]
pub struct Ema {
    pub options: EmaOptions,
    /// Flat, burn layout, trained keys only (frozen ones equal the model's).
    pub shadow: BTreeMap<String, Tensor<1>>,
    pub optimization_step: u64,
    /// The decay the last step used.
    pub cur_decay: Option<f64>,
}

impl Ema {
    fn step(&mut self, params: &BTreeMap<String, Tensor<1>>) {
        self.optimization_step += 1;
        let d = self.options.decay_at(self.optimization_step);
        self.cur_decay = Some(d);
        let omd = 1.0 - d;
        for (k, s) in self.shadow.iter_mut() {
            if let Some(p) = params.get(k) {
                let p = p.clone().inner();
                let cur = s.clone();
                *s = cur.clone() - (cur - p).mul_scalar(omd as f32);
            }
        }
    }
}

/// Sets `require_grad = false` on the frozen parameter slots.
struct Freeze<'a> {
    frozen: &'a HashSet<ParamId>,
}

impl ModuleMapper for Freeze<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        if self.frozen.contains(&param.id) {
            param.set_require_grad(false)
        } else {
            param
        }
    }
}

/// Fine-tunes a diffusers `UNet2DConditionModel` with diffusers' training step.
pub struct UNetTrainer {
    model: UNet2DConditionModel,
    params: NamedParams,
    trainable: BTreeSet<String>,
    adam: Adam,
    options: UNetTrainOptions,
    prediction_type: PredictionType,
    alphas_cumprod: Vec<f32>,
    scheduler_source: String,
    ema: Option<Ema>,
    step: usize,
    device: Device,
}

/// What training reads from a `scheduler_config.json` (any diffusers scheduler class).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct SchedulerFile {
    #[serde(flatten)]
    betas: BetaConfig,
    prediction_type: PredictionType,
}

/// The scheduler config beside a U-Net folder: `<path>/scheduler/scheduler_config.json`,
/// or, for `<pipeline>/unet`, `<pipeline>/scheduler/scheduler_config.json`.
fn find_scheduler_config(path: &Path) -> Option<PathBuf> {
    let dir = if path.is_file() {
        path.parent()?.to_path_buf()
    } else {
        path.to_path_buf()
    };
    let own = dir.join("scheduler").join("scheduler_config.json");
    if own.is_file() {
        return Some(own);
    }
    let up = dir
        .parent()?
        .join("scheduler")
        .join("scheduler_config.json");
    up.is_file().then_some(up)
}

impl UNetTrainer {
    /// From a diffusers U-Net folder (`config.json` + `diffusion_pytorch_model.*`) or a
    /// pipeline folder with `unet/`. The noise schedule comes from `options.scheduler`, else
    /// `scheduler/scheduler_config.json` (in the folder or the pipeline folder), else
    /// diffusers' `DDPMScheduler()` defaults ([`UNetTrainer::scheduler_source`] says which).
    pub fn from_pretrained(
        path: impl AsRef<Path>,
        options: UNetTrainOptions,
        device: &Device,
    ) -> Result<Self> {
        let path = path.as_ref();
        let (config, ckpt): (UNet2DConditionConfig, Checkpoint) =
            crate::models::pretrained::pretrained(path, "unet")?;
        let mut options = options;
        let mut source = "options".to_string();
        if options.scheduler.is_none() {
            let unet_dir = if path.join("config.json").is_file() {
                path.to_path_buf()
            } else {
                path.join("unet")
            };
            if let Some(f) = find_scheduler_config(&unet_dir) {
                let v = crate::schedulers::read_config_json(&f)?;
                let c: SchedulerFile = crate::schedulers::parse(&v, "scheduler config")?;
                options.scheduler = Some(c.betas);
                if options.prediction_type.is_none() {
                    options.prediction_type = Some(c.prediction_type);
                }
                source = f.display().to_string();
            } else {
                source = "DDPMScheduler defaults".into();
            }
        }
        let mut t = Self::from_loaded(&config, &ckpt, options, device)?;
        t.scheduler_source = source;
        Ok(t)
    }

    /// From a config and a checkpoint with diffusers keys (strict load); the model lives on
    /// `device.autodiff()`.
    pub fn from_loaded(
        config: &UNet2DConditionConfig,
        ckpt: &Checkpoint,
        options: UNetTrainOptions,
        device: &Device,
    ) -> Result<Self> {
        if !options.lr.is_finite() || options.lr <= 0.0 {
            return Err(VtonError::invalid("lr", "must be a positive number"));
        }
        if let Some(m) = options.max_grad_norm {
            if m.is_nan() || m <= 0.0 {
                return Err(VtonError::invalid("max_grad_norm", "must be positive"));
            }
        }
        if let Some(e) = &options.ema {
            e.validate()?;
        }
        let adam = Adam::new(AdamConfig::adamw(
            options.betas.0,
            options.betas.1,
            options.weight_decay,
            options.eps,
        ))?;
        let sched = options.scheduler.clone().unwrap_or_default();
        let alphas_cumprod = sched.schedule()?.alphas_cumprod;
        let prediction_type = options.prediction_type.unwrap_or_default();
        if prediction_type == PredictionType::Sample {
            return Err(VtonError::Unsupported {
                what: "training with prediction_type sample (diffusers' script supports epsilon and v_prediction)".into(),
            });
        }
        let ad = device.clone().autodiff();
        let (model, _report, records) =
            UNet2DConditionModel::load_recorded(config, ckpt, &ad, false)?;
        let params = NamedParams::new(records)?;
        let trainable: BTreeSet<String> = params
            .trainable_keys()
            .into_iter()
            .filter(|k| options.trainable.contains(k))
            .collect();
        if trainable.is_empty() {
            return Err(VtonError::config(
                "trainable subset",
                format!("{:?} selects no parameter of this U-Net", options.trainable),
            ));
        }
        let frozen: HashSet<ParamId> = params
            .records()
            .iter()
            .filter(|r| !trainable.contains(&r.key))
            .map(|r| r.id)
            .collect();
        let model = model.map(&mut Freeze { frozen: &frozen });
        let ema = options.ema.map(|o| {
            let mut shadow = params.values(&model);
            shadow.retain(|k, _| trainable.contains(k));
            Ema {
                options: o,
                shadow,
                optimization_step: 0,
                cur_decay: None,
            }
        });
        Ok(UNetTrainer {
            model,
            params,
            trainable,
            adam,
            options,
            prediction_type,
            alphas_cumprod,
            scheduler_source: "options".into(),
            ema,
            step: 0,
            device: ad,
        })
    }

    pub fn model(&self) -> &UNet2DConditionModel {
        &self.model
    }

    pub fn params(&self) -> &NamedParams {
        &self.params
    }

    /// The trained keys (the subset), sorted.
    pub fn trainable_keys(&self) -> &BTreeSet<String> {
        &self.trainable
    }

    pub fn options(&self) -> &UNetTrainOptions {
        &self.options
    }

    pub fn prediction_type(&self) -> PredictionType {
        self.prediction_type
    }

    /// The float32 `alphas_cumprod` the noise is added with.
    pub fn alphas_cumprod(&self) -> &[f32] {
        &self.alphas_cumprod
    }

    /// Where the noise schedule came from (a file path, `options` or the defaults).
    pub fn scheduler_source(&self) -> &str {
        &self.scheduler_source
    }

    pub fn optimizer(&self) -> &Adam {
        &self.adam
    }

    pub fn ema(&self) -> Option<&Ema> {
        self.ema.as_ref()
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
        self.options.lr_schedule.lr(self.options.lr, self.step)
    }

    /// The device the model trains on (an autodiff device).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The shared pieces of a forward: model, schedule and prediction type.
    fn forward_ctx(&self) -> Forward<'_> {
        Forward {
            model: &self.model,
            alphas_cumprod: &self.alphas_cumprod,
            prediction_type: self.prediction_type,
        }
    }

    /// The model prediction on a batch (no training; for validation).
    pub fn predict(&self, batch: &UNetBatch) -> Result<Tensor<4>> {
        let (input, _) = self.forward_ctx().inputs(batch, &self.device)?;
        let ehs = batch
            .encoder_hidden_states
            .as_ref()
            .map(|e| e.clone().to_device(&self.device));
        let t = Timesteps::PerSample(per_sample(&batch.timesteps, input.dims()[0])?);
        Ok(self.model.forward(input, t, ehs.as_ref())?.inner())
    }

    /// One training step (see the module documentation). With `keep_grads` the
    /// gradients before clipping are returned too.
    pub fn step(&mut self, batch: &UNetBatch, keep_grads: bool) -> Result<UNetStepOutput> {
        let loss_t = self.forward_ctx().loss(batch, &self.device)?;
        let loss = scalar(&loss_t)?;
        check_loss(loss, self.step)?;
        let g = loss_t.backward();
        let grads = self.params.grads(&self.model, &g);
        drop(g);
        self.apply(grads, loss, keep_grads)
    }

    /// One training step data-parallel over `devices` (see
    /// [`crate::train::cpvton::data_parallel`]): the batch is split along dim 0 into one
    /// contiguous shard per device (latents, noise, mask, masked latents, per-sample
    /// timesteps and encoder states alike; a single timestep or a batch-1 encoder state
    /// is shared by every shard), each replica computes its shard's mean-squared-error
    /// gradient, and the gradients are averaged weighted by shard size. The loss is a mean
    /// over every element and the U-Net normalises per sample (GroupNorm), so `k` devices
    /// with `B/k` samples each compute the step of one device with `B` (up to the order
    /// of the reductions). Clipping, AdamW and EMA then run once on the main device, as
    /// in [`Self::step`]. The gradients before clipping are returned. A batch smaller
    /// than the device count is refused.
    pub fn step_data_parallel(
        &mut self,
        batch: &UNetBatch,
        devices: &[Device],
    ) -> Result<UNetStepOutput> {
        let n = batch.latents.dims()[0];
        let ranges = shard_ranges(n, devices.len())?;
        per_sample(&batch.timesteps, n)?;
        let cut4 = |name: &str, t: &Tensor<4>, r: &std::ops::Range<usize>| {
            let d = t.dims();
            if d[0] != n {
                return Err(VtonError::Shape {
                    what: name.into(),
                    expected: format!("batch dimension {n} (the latents')"),
                    actual: d.to_vec(),
                });
            }
            Ok(t.clone().narrow(0, r.start, r.len()))
        };
        let mut shards = Vec::with_capacity(ranges.len());
        for (r, d) in ranges.iter().zip(devices) {
            let opt4 = |name: &str, t: &Option<Tensor<4>>| {
                t.as_ref().map(|t| cut4(name, t, r)).transpose()
            };
            let encoder_hidden_states = match &batch.encoder_hidden_states {
                Some(e) if e.dims()[0] == n => Some(e.clone().narrow(0, r.start, r.len())),
                Some(e) if e.dims()[0] == 1 => Some(e.clone()),
                Some(e) => {
                    return Err(VtonError::Shape {
                        what: "encoder_hidden_states".into(),
                        expected: format!("batch dimension 1 or {n}"),
                        actual: e.dims().to_vec(),
                    })
                }
                None => None,
            };
            let shard = UNetBatch {
                latents: cut4("latents", &batch.latents, r)?,
                masked_latents: opt4("masked_latents", &batch.masked_latents)?,
                mask: opt4("mask", &batch.mask)?,
                noise: cut4("noise", &batch.noise, r)?,
                timesteps: if batch.timesteps.len() == 1 {
                    batch.timesteps.clone()
                } else {
                    batch.timesteps[r.clone()].to_vec()
                },
                encoder_hidden_states,
            };
            shards.push((shard, r.len(), d.clone().autodiff()));
        }
        let (alphas_cumprod, prediction_type) = (&self.alphas_cumprod, self.prediction_type);
        let (terms, grads, _) = data_parallel(
            &self.model,
            &self.params,
            &self.device,
            shards,
            |model, b, dev| {
                let fwd = Forward {
                    model,
                    alphas_cumprod,
                    prediction_type,
                };
                let loss_t = fwd.loss(b, dev)?;
                let mut terms = LossTerms::new();
                terms.insert("loss".into(), scalar(&loss_t)?);
                Ok((loss_t, terms, Vec::new()))
            },
        )?;
        let loss = terms.get("loss").copied().unwrap_or(f64::NAN);
        check_loss(loss, self.step)?;
        self.apply(grads, loss, true)
    }

    /// The tail of a step, on the main device: the trained keys' gradients clipped
    /// (global norm), AdamW at the scheduled learning rate, EMA, the step count.
    fn apply(
        &mut self,
        mut grads: BTreeMap<String, Tensor<1>>,
        loss: f64,
        keep_grads: bool,
    ) -> Result<UNetStepOutput> {
        grads.retain(|k, _| self.trainable.contains(k));
        let kept = keep_grads.then(|| grads.clone());
        let grad_norm = clip_grad_norm(
            &mut grads,
            self.options.max_grad_norm.unwrap_or(f64::INFINITY),
        )?;
        let lr = self.lr();
        let mut values = self.params.values(&self.model);
        values.retain(|k, _| grads.contains_key(k));
        self.adam.step(lr, &mut values, &grads)?;
        self.model = self.params.set(self.model.clone(), &values)?;
        if let Some(ema) = &mut self.ema {
            ema.step(&values);
        }
        self.step += 1;
        Ok(UNetStepOutput {
            loss,
            grad_norm,
            lr,
            grads: kept,
        })
    }

    /// The U-Net's state dict under the diffusers keys (PyTorch layout).
    pub fn state_dict(&self) -> Result<BTreeMap<String, HostTensor>> {
        self.params.state_dict(&self.model)
    }

    /// Replaces every parameter from a state dict (diffusers keys, PyTorch layout), e.g.
    /// to resume; every key of the model must be present and no other.
    pub fn load_state_dict(&mut self, sd: &BTreeMap<String, HostTensor>) -> Result<()> {
        let values = self.host_to_values(sd, "state dict")?;
        self.model = self.params.set(self.model.clone(), &values)?;
        Ok(())
    }

    fn host_to_values(
        &self,
        sd: &BTreeMap<String, HostTensor>,
        what: &str,
    ) -> Result<BTreeMap<String, Tensor<1>>> {
        let mut values = BTreeMap::new();
        for (k, h) in sd {
            values.insert(k.clone(), self.params.from_host(k, h, &self.device)?);
        }
        let missing: Vec<String> = self
            .params
            .records()
            .iter()
            .filter(|r| !values.contains_key(&r.key))
            .map(|r| r.key.clone())
            .collect();
        if !missing.is_empty() {
            return Err(VtonError::config(
                what,
                format!(
                    "lacks {} keys: {}",
                    missing.len(),
                    crate::weights::list_keys(&missing)
                ),
            ));
        }
        Ok(values)
    }

    /// The EMA weights as a full state dict (frozen parameters as the model has them).
    pub fn ema_state_dict(&self) -> Result<Option<BTreeMap<String, HostTensor>>> {
        let Some(ema) = &self.ema else {
            return Ok(None);
        };
        let mut sd = self.state_dict()?;
        for (k, s) in &ema.shadow {
            sd.insert(k.clone(), self.params.to_host(k, s)?);
        }
        Ok(Some(sd))
    }

    /// Restores the EMA shadow (a full or trained-keys-only state dict) and its step.
    pub fn load_ema_state(
        &mut self,
        sd: &BTreeMap<String, HostTensor>,
        optimization_step: u64,
    ) -> Result<()> {
        let Some(ema) = &self.ema else {
            return Err(VtonError::config(
                "ema",
                "this trainer was built without EMA",
            ));
        };
        let mut shadow = BTreeMap::new();
        for k in ema.shadow.keys() {
            let h = sd
                .get(k)
                .ok_or_else(|| VtonError::config(k.clone(), "missing from the EMA state"))?;
            shadow.insert(
                k.clone(),
                self.params.from_host(k, h, &self.device)?.inner(),
            );
        }
        let ema = self.ema.as_mut().expect("checked above");
        ema.shadow = shadow;
        ema.optimization_step = optimization_step;
        Ok(())
    }

    /// AdamW's state in PyTorch's layout under `<key>.exp_avg`, `<key>.exp_avg_sq` and
    /// `<key>.step` (0-dim, float32 as torch keeps it), and the trainer's step count.
    pub fn optimizer_state(&self) -> Result<(BTreeMap<String, HostTensor>, usize)> {
        let mut out = BTreeMap::new();
        for (k, st) in &self.adam.state {
            out.insert(format!("{k}.exp_avg"), self.params.to_host(k, &st.exp_avg)?);
            out.insert(
                format!("{k}.exp_avg_sq"),
                self.params.to_host(k, &st.exp_avg_sq)?,
            );
            out.insert(
                format!("{k}.step"),
                HostTensor::new(vec![], vec![st.step as f32]),
            );
        }
        Ok((out, self.step))
    }

    /// Restores what [`UNetTrainer::optimizer_state`] exported.
    pub fn load_optimizer_state(
        &mut self,
        state: &BTreeMap<String, HostTensor>,
        step: usize,
    ) -> Result<()> {
        let mut keys = BTreeSet::new();
        for k in state.keys() {
            let base = k
                .strip_suffix(".exp_avg_sq")
                .or_else(|| k.strip_suffix(".exp_avg"))
                .or_else(|| k.strip_suffix(".step"))
                .ok_or_else(|| {
                    VtonError::config(
                        k.clone(),
                        "not an optimiser state key (exp_avg, exp_avg_sq, step)",
                    )
                })?;
            if !self.trainable.contains(base) {
                return Err(VtonError::config(
                    base.to_string(),
                    "optimiser state for a parameter this trainer does not train",
                ));
            }
            keys.insert(base.to_string());
        }
        let mut new = BTreeMap::new();
        for k in keys {
            let get = |s: &str| {
                state.get(&format!("{k}.{s}")).ok_or_else(|| {
                    VtonError::config(format!("{k}.{s}"), "missing from the optimiser state")
                })
            };
            let st = get("step")?;
            let n = st.data.first().copied().unwrap_or(-1.0);
            if st.data.len() != 1 || n.is_nan() || n < 0.0 || n.fract() != 0.0 {
                return Err(VtonError::config(
                    format!("{k}.step"),
                    "must hold one non-negative integer",
                ));
            }
            new.insert(
                k.clone(),
                AdamState {
                    exp_avg: self
                        .params
                        .from_host(&k, get("exp_avg")?, &self.device)?
                        .inner(),
                    exp_avg_sq: self
                        .params
                        .from_host(&k, get("exp_avg_sq")?, &self.device)?
                        .inner(),
                    step: n as u64,
                },
            );
        }
        self.adam.state = new;
        self.step = step;
        Ok(())
    }
}

fn per_sample(ts: &[i64], b: usize) -> Result<Vec<f64>> {
    match ts.len() {
        1 => Ok(vec![ts[0] as f64; b]),
        n if n == b => Ok(ts.iter().map(|&t| t as f64).collect()),
        n => Err(VtonError::Shape {
            what: "timesteps".into(),
            expected: format!("1 or {b}"),
            actual: vec![n],
        }),
    }
}

/// A non-finite loss stops the step before any update.
fn check_loss(loss: f64, step: usize) -> Result<()> {
    if !loss.is_finite() {
        return Err(VtonError::Numerical {
            operation: format!("training step {step}"),
            message: format!("the loss is {loss}"),
        });
    }
    Ok(())
}

/// What a U-Net training forward reads: the model (the trainer's or a replica), the
/// schedule's float32 `alphas_cumprod` and the prediction type.
struct Forward<'a> {
    model: &'a UNet2DConditionModel,
    alphas_cumprod: &'a [f32],
    prediction_type: PredictionType,
}

impl Forward<'_> {
    /// The U-Net input (`cat([noisy, mask, masked_latents], 1)`) and the loss target, on
    /// `dev`.
    fn inputs(&self, b: &UNetBatch, dev: &Device) -> Result<(Tensor<4>, Tensor<4>)> {
        let latents = b.latents.clone().to_device(dev);
        let noise = b.noise.clone().to_device(dev);
        let [n, _, h, w] = latents.dims();
        let noisy = add_noise_with(
            self.alphas_cumprod,
            latents.clone(),
            noise.clone(),
            &b.timesteps,
        )?;
        let target = match self.prediction_type {
            PredictionType::Epsilon => noise,
            PredictionType::VPrediction => {
                velocity_with(self.alphas_cumprod, latents, noise, &b.timesteps)?
            }
            PredictionType::Sample => {
                return Err(VtonError::Unsupported {
                    what: "training with prediction_type sample".into(),
                })
            }
        };
        let mut parts = vec![noisy];
        for (name, t) in [("mask", &b.mask), ("masked_latents", &b.masked_latents)] {
            if let Some(t) = t {
                let d = t.dims();
                if d[0] != n || d[2] != h || d[3] != w {
                    return Err(VtonError::Shape {
                        what: name.into(),
                        expected: format!("({n}, c, {h}, {w})"),
                        actual: d.to_vec(),
                    });
                }
                parts.push(t.clone().to_device(dev));
            }
        }
        let input = Tensor::cat(parts, 1);
        let c = input.dims()[1];
        if c != self.model.config.in_channels {
            return Err(VtonError::Shape {
                what: "U-Net input (latents, mask, masked_latents concatenated)".into(),
                expected: format!(
                    "{} channels (config in_channels)",
                    self.model.config.in_channels
                ),
                actual: input.dims().to_vec(),
            });
        }
        Ok((input, target))
    }

    /// The training loss `mse(unet(input, t, ehs), target)` on `dev` (a tracked tensor).
    fn loss(&self, batch: &UNetBatch, dev: &Device) -> Result<Tensor<1>> {
        let (input, target) = self.inputs(batch, dev)?;
        let ehs = batch
            .encoder_hidden_states
            .as_ref()
            .map(|e| e.clone().to_device(dev));
        let t = Timesteps::PerSample(per_sample(&batch.timesteps, input.dims()[0])?);
        let pred = self.model.forward(input, t, ehs.as_ref())?;
        if pred.dims() != target.dims() {
            return Err(VtonError::Shape {
                what: "U-Net output vs target".into(),
                expected: format!("{:?}", target.dims()),
                actual: pred.dims().to_vec(),
            });
        }
        Ok(losses::mse(pred, target))
    }
}
