//! Training DCI-VITON's warping network as `Train_WarpingNetwork.ipynb` does
//! (DanMenCas/DCI-VITON: the training cells, `losses.py`'s `VGGLoss` and `flow_loss`,
//! `warpingnetwork.py`'s `WarpingProcess`).
//!
//! One step ([`DciWarpTrainer::step`]):
//!
//! * `warped_c, warped_cm, flow_list = generator(input_1, input_2)`;
//! * `loss_l1_cloth = L1(warped_cm, warped_mask)`, `loss_vgg = VGGLoss(warped_cm *
//!   warped_c, warped_cloth)` (VGG19 relu1_1 .. relu5_1 weighted 1/32 .. 1, inputs `(X + 1)
//!   / 2` then ImageNet-normalised), `loss_tv = flow_loss(flow_list)` (per flow `mean |dy| +
//!   mean |dx|` on the NHWC flow);
//! * multi-scale terms for every flow but the last: the flow upsampled (bilinear,
//!   align_corners False) to the input size, divided by `((H - 1) / 2, (W - 1) / 2)` and
//!   added to `make_grid(N, H, W)`, `input_1` sampled there (border, align_corners False);
//!   its L1 and VGG terms are added divided by `2^(4 - j)`;
//! * `loss_G = 1 * loss_l1_cloth + 0.1 * loss_vgg + 1 * loss_tv`, Adam(lr 5e-5, betas
//!   (0.5, 0.999)).
//!
//! What the original computes, reproduced as it is:
//!
//! * `flow_list` already holds flows in grid units; the multi-scale terms divide them
//!   again by `(size - 1) / 2`, so those warps move by a small fraction of the network's
//!   flow;
//! * the multi-scale normalisation divides x by `(H - 1) / 2` and y by `(W - 1) / 2`
//!   (`shape[1]`, `shape[2]` of the NHWC flow) and `make_grid(N, H, W)` fills its `(iW,
//!   iH)` slots with `(H, W)`; both swaps vanish on square inputs, the only ones
//!   `WarpingProcess` accepts (the original fails on any other, see
//!   [`DciVitonWarping::forward`]);
//! * the network is in train mode, which changes nothing: its norms are
//!   `InstanceNorm2d` without running statistics, no block uses dropout, and there is no
//!   BatchNorm (so `weights_init`'s BatchNorm branch never runs: the fresh initialisation is
//!   xavier-normal conv weights and PyTorch's default biases, [`DciVitonWarping::fresh_checkpoint`]);
//! * `convs_segment_after_concat.3` gets no gradient (its output is unused): Adam skips
//!   it and keeps no state for it, as PyTorch does for `grad is None`;
//! * the biases of every `conv_1` / `conv_2` are followed by InstanceNorm: their true
//!   gradient is zero, and Adam turns the rounding noise into `+-lr` updates that change no
//!   output.
//!
//! The notebook's data preparation is not in the repository (it loads `warped_masks.pth`,
//! `inputs_1.pth`, ... and builds `warped_cloths = ((mask + 1) / 2) * images` from an
//! undefined `images`). [`DciWarpData`] builds the inputs with vton's DCI preprocessing
//! ([`dci_warp_inputs`]) and the targets from the person: `warped_mask` = the parse's
//! garment labels (LIP 5, 6, 7: upper clothes, dress, coat) as `{0, 1}` (`warped_cm` is
//! `input_1`'s mask channel resampled, in `[0, 1]`, so a `{0, 1}` target is what the L1
//! term can reach; a `{-1, 1}` mask, which `(mask + 1) / 2` suggests, gives the same
//! gradient while `warped_cm >= 0`), `warped_cloth` = the person image times that mask, in
//! `[0, 1]` by default: the range of the prediction `warped_cm * warped_c`, whose cloth
//! channels come from `input_1` in `[0, 1]`, so a perfect warp has zero loss. The option
//! `target_range = "signed"` gives the person in `[-1, 1]` times the mask instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{Map, Value};

use crate::error::{Result, VtonError};
use crate::io::pil::{pil_resize_bilinear, pil_resize_nearest, U8Image};
use crate::io::{read_image, read_keypoints, read_mask, ParseMap, PersonSelection, RgbImage};
use crate::models::dci_viton::warping::{make_grid, DciVitonWarpingConfig, PROBE_KEY};
use crate::models::dci_viton::DciVitonWarping;
use crate::pipelines::dci_viton::{dci_warp_inputs, DciVitonInputs};
use crate::train::checkpoint::{
    save_pth_nested, MomentState, OptimizerState, PthKey, PthValue, StateTensor, TrainingState,
};
use crate::train::data::{epoch_order, parse_pairs, DataLayout};
use crate::train::drive::{DataSources, Opts, TrainSetup};
use crate::train::losses::{self, VggInputNorm, VggLoss, VggLossConfig};
use crate::train::optim::{Adam, AdamConfig, AdamState};
use crate::train::params::{HostTensor, NamedParams};
use crate::train::run::{Batch, BatchSource, LossTerms, Trainer, Validation};
use crate::warp::grid::{grid_sample, GridSampleOptions, PaddingMode, SampleMode};
use crate::weights::{Checkpoint, Loader};

/// The trainer kind name (`vton train dci-viton-warp`).
pub const KIND: &str = "dci-viton-warp";

/// Option names [`DciWarpTrainer::from_setup`] reads.
pub const TRAIN_OPTIONS: &[&str] = &[
    "lr",
    "betas",
    "eps",
    "l1_lambda",
    "vgg_lambda",
    "tvlambda",
    "multiscale",
    "oc",
];

/// Option names the data source reads ([`open_dci_warp_data_with`]).
pub const DATA_OPTIONS: &[&str] = &[
    "size",
    "shuffle",
    "val_count",
    "target_range",
    "cloth_labels",
    "data_list",
];

/// How the targets' images are scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetRange {
    /// `[0, 1]`, the range of `warped_cm * warped_c` (default).
    Unit,
    /// `[-1, 1]`.
    Signed,
}

impl TargetRange {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "unit" => Ok(TargetRange::Unit),
            "signed" => Ok(TargetRange::Signed),
            o => Err(VtonError::invalid(
                "target_range",
                format!("{o:?} is not one of \"unit\", \"signed\""),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TargetRange::Unit => "unit",
            TargetRange::Signed => "signed",
        }
    }
}

/// The notebook's training options (its variable names).
#[derive(Debug, Clone, PartialEq)]
pub struct DciWarpTrainOptions {
    /// `lr = 0.00005`.
    pub lr: f64,
    /// `betas=(0.5, 0.999)`.
    pub betas: (f64, f64),
    /// Adam's default `eps` (1e-8).
    pub eps: f64,
    /// `l1_lambda = 1`.
    pub l1_lambda: f64,
    /// `vgg_lambda = 0.1`.
    pub vgg_lambda: f64,
    /// `tvlambda = 1`.
    pub tv_lambda: f64,
    /// The multi-scale flow terms (on in the notebook).
    pub multiscale: bool,
    /// How `validate` maps the batch's targets to `[-1, 1]` (the data source's
    /// `target_range`).
    pub target_range: TargetRange,
}

impl Default for DciWarpTrainOptions {
    fn default() -> Self {
        DciWarpTrainOptions {
            lr: 5e-5,
            betas: (0.5, 0.999),
            eps: 1e-8,
            l1_lambda: 1.0,
            vgg_lambda: 0.1,
            tv_lambda: 1.0,
            multiscale: true,
            target_range: TargetRange::Unit,
        }
    }
}

impl DciWarpTrainOptions {
    /// From options by name (`lr`, `betas`, `eps`, `l1_lambda`, `vgg_lambda`, `tvlambda`,
    /// `multiscale`, `target_range`); absent ones keep the notebook's values.
    pub fn from_opts(o: &Opts) -> Result<Self> {
        let d = Self::default();
        let betas = o.f64_list("betas", &[d.betas.0, d.betas.1])?;
        if betas.len() != 2 {
            return Err(VtonError::invalid(
                "betas",
                format!("{betas:?}: give two numbers"),
            ));
        }
        let opts = DciWarpTrainOptions {
            lr: o.f64("lr", d.lr)?,
            betas: (betas[0], betas[1]),
            eps: o.f64("eps", d.eps)?,
            l1_lambda: o.f64("l1_lambda", d.l1_lambda)?,
            vgg_lambda: o.f64("vgg_lambda", d.vgg_lambda)?,
            tv_lambda: o.f64("tvlambda", d.tv_lambda)?,
            multiscale: o.bool("multiscale", d.multiscale)?,
            target_range: TargetRange::from_name(&o.string("target_range", "unit")?)?,
        };
        opts.validate()?;
        Ok(opts)
    }

    fn validate(&self) -> Result<()> {
        if self.lr.is_nan() || self.lr <= 0.0 || !self.lr.is_finite() {
            return Err(VtonError::invalid(
                "lr",
                format!("{}: must be positive", self.lr),
            ));
        }
        for (n, v) in [
            ("l1_lambda", self.l1_lambda),
            ("vgg_lambda", self.vgg_lambda),
            ("tvlambda", self.tv_lambda),
        ] {
            if !v.is_finite() {
                return Err(VtonError::invalid(n, format!("{v}")));
            }
        }
        AdamConfig::adam(self.betas.0, self.betas.1, self.eps).validate()
    }

    fn adam(&self) -> AdamConfig {
        AdamConfig::adam(self.betas.0, self.betas.1, self.eps)
    }

    /// The options as a JSON object (recorded in checkpoints).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "lr": self.lr, "betas": [self.betas.0, self.betas.1], "eps": self.eps,
            "l1_lambda": self.l1_lambda, "vgg_lambda": self.vgg_lambda, "tvlambda": self.tv_lambda,
            "multiscale": self.multiscale, "target_range": self.target_range.name(),
        })
    }
}

/// `VGGLoss` of `losses.py`: VGG19 relu1_1 .. relu5_1, weights 1/32 .. 1, inputs mapped
/// from `[-1, 1]` to `[0, 1]` and ImageNet-normalised.
pub fn dci_vgg_config() -> VggLossConfig {
    VggLossConfig {
        input_norm: VggInputNorm::ImageNetFromSigned,
        ..VggLossConfig::cpvton()
    }
}

/// One step's tensors (NCHW), as the notebook's loop unpacks them.
#[derive(Debug, Clone)]
pub struct DciWarpBatch {
    /// `[B, C1, S, S]`: cloth and cloth mask (the last channel).
    pub input_1: Tensor<4>,
    /// `[B, C2, S, S]`: DensePose and parse agnostic * 15.
    pub input_2: Tensor<4>,
    /// `[B, C1 - 1, S, S]`: the target of `warped_cm * warped_c`.
    pub warped_cloth: Tensor<4>,
    /// `[B, 1, S, S]`: the target of `warped_cm`.
    pub warped_mask: Tensor<4>,
}

impl DciWarpBatch {
    /// From a loop batch (keys `input_1`, `input_2`, `warped_cloth`, `warped_mask`).
    pub fn from_batch(batch: &Batch) -> Result<Self> {
        let get = |key: &str| {
            batch.get(key).cloned().ok_or_else(|| {
                VtonError::invalid(
                    "batch",
                    format!(
                        "no '{key}' in the batch (it has {})",
                        batch.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })
        };
        Ok(DciWarpBatch {
            input_1: get("input_1")?,
            input_2: get("input_2")?,
            warped_cloth: get("warped_cloth")?,
            warped_mask: get("warped_mask")?,
        })
    }

    /// As a loop batch.
    pub fn to_batch(&self) -> Batch {
        let mut b = Batch::new();
        b.insert("input_1".into(), self.input_1.clone());
        b.insert("input_2".into(), self.input_2.clone());
        b.insert("warped_cloth".into(), self.warped_cloth.clone());
        b.insert("warped_mask".into(), self.warped_mask.clone());
        b
    }

    fn check(&self, config: &DciVitonWarpingConfig) -> Result<()> {
        let [b, c1, h, w] = self.input_1.dims();
        let want_cloth = [b, c1, h, w];
        let cloth = self.warped_cloth.dims();
        if cloth != [b, c1.saturating_sub(1), h, w] || c1 != config.input_1_channels {
            return Err(VtonError::SizeMismatch {
                what: "DCI-VITON warping batch: warped_cloth vs input_1".into(),
                expected: format!(
                    "[{b}, {}, {h}, {w}] (input_1 {:?} with {} channels)",
                    config.input_1_channels.saturating_sub(1),
                    want_cloth,
                    config.input_1_channels
                ),
                actual: format!("{cloth:?}"),
            });
        }
        let mask = self.warped_mask.dims();
        if mask != [b, 1, h, w] {
            return Err(VtonError::SizeMismatch {
                what: "DCI-VITON warping batch: warped_mask vs input_1".into(),
                expected: format!("[{b}, 1, {h}, {w}]"),
                actual: format!("{mask:?}"),
            });
        }
        Ok(())
    }

    fn to_device(&self, dev: &Device) -> Self {
        DciWarpBatch {
            input_1: self.input_1.clone().to_device(dev),
            input_2: self.input_2.clone().to_device(dev),
            warped_cloth: self.warped_cloth.clone().to_device(dev),
            warped_mask: self.warped_mask.clone().to_device(dev),
        }
    }
}

/// What one step computed.
#[derive(Debug, Clone)]
pub struct DciWarpStep {
    /// `l1_final`, `vgg_final`, `l1_scale.<j>`, `vgg_scale.<j>` (already divided by
    /// `2^(4-j)`), `loss_l1_cloth`, `loss_vgg`, `loss_tv`, `loss_G`.
    pub losses: LossTerms,
    /// The learning rate the step used.
    pub lr: f64,
    /// The gradients before the optimiser step, PyTorch layout, by parameter key (a
    /// parameter without gradient is absent), when asked for.
    pub grads: Option<BTreeMap<String, HostTensor>>,
}

/// `Train_WarpingNetwork.ipynb`'s generator, losses and Adam.
pub struct DciWarpTrainer {
    model: DciVitonWarping,
    vgg: VggLoss,
    vgg_ckpt: Checkpoint,
    params: NamedParams,
    adam: Adam,
    options: DciWarpTrainOptions,
    step: usize,
    /// The autodiff device the model lives on.
    device: Device,
    raw_options: Map<String, Value>,
}

fn scalar(t: &Tensor<1>) -> Result<f64> {
    let v = crate::train::params::tensor_to_vec(t)?;
    v.first()
        .map(|&x| x as f64)
        .ok_or_else(|| VtonError::Numerical {
            operation: "loss".into(),
            message: "empty loss tensor".into(),
        })
}

/// `optimizer_state_dict.` of a checkpoint holding one (the original save format).
fn optimizer_prefix(ckpt: &Checkpoint) -> Option<String> {
    let suffix = format!("model_state_dict.{PROBE_KEY}");
    let root = ckpt
        .keys()
        .find_map(|k| k.strip_suffix(&suffix))?
        .to_string();
    let p = format!("{root}optimizer_state_dict.state.");
    ckpt.keys().any(|k| k.starts_with(&p)).then_some(p)
}

impl DciWarpTrainer {
    /// From a warping checkpoint (any form [`DciVitonWarping::load`] reads; with the
    /// original `{'model_state_dict', 'optimizer_state_dict'}` form, Adam's state is
    /// loaded too, as `WarpingCloth.warping` does) and a torchvision VGG19 checkpoint
    /// for `VGGLoss`; widths are read from both. The model lives on `device.autodiff()`.
    pub fn from_loaded(
        ckpt: &Checkpoint,
        vgg_ckpt: &Checkpoint,
        options: DciWarpTrainOptions,
        device: &Device,
    ) -> Result<Self> {
        options.validate()?;
        let ad = device.clone().autodiff();
        let rooted = ckpt.clone().rooted_at(PROBE_KEY);
        let l = Loader::new(&rooted, &ad, false);
        let model = DciVitonWarping::from_loader(&l)?;
        l.finish(true)?;
        let params = NamedParams::new(l.param_records())?;
        let vgg = VggLoss::from_loaded(vgg_ckpt, dci_vgg_config(), &ad)?;
        let mut t = DciWarpTrainer {
            model,
            vgg,
            vgg_ckpt: vgg_ckpt.clone(),
            params,
            adam: Adam::new(options.adam())?,
            options,
            step: 0,
            device: ad,
            raw_options: Map::new(),
        };
        if let Some(prefix) = optimizer_prefix(ckpt) {
            t.load_original_optimizer_state(ckpt, &prefix)?;
        }
        Ok(t)
    }

    /// A fresh network (`WarpingProcess(oc).apply(weights_init)`, seeded; see
    /// [`DciVitonWarping::fresh_checkpoint`]) and an empty Adam.
    pub fn new_fresh(
        config: &DciVitonWarpingConfig,
        seed: u64,
        vgg_ckpt: &Checkpoint,
        options: DciWarpTrainOptions,
        device: &Device,
    ) -> Result<Self> {
        let ckpt = DciVitonWarping::fresh_checkpoint(config, seed)?;
        Self::from_loaded(&ckpt, vgg_ckpt, options, device)
    }

    /// What `vton train dci-viton-warp` builds: `setup.weights` / `weights_checkpoint`
    /// (else a fresh `WarpingProcess(oc)`, `oc` option, 96 by default, seeded by
    /// `setup.seed`), `setup.vgg` (required), options by the notebook's names
    /// ([`TRAIN_OPTIONS`]; [`DATA_OPTIONS`] and `extra_allowed` are accepted and left to
    /// the data source).
    pub fn from_setup(setup: &TrainSetup, device: &Device, extra_allowed: &[&str]) -> Result<Self> {
        let o = Opts::new(&setup.options);
        let options = DciWarpTrainOptions::from_opts(&o)?;
        let oc = o.usize("oc", 96)?;
        let mut allowed: Vec<&str> = DATA_OPTIONS.to_vec();
        allowed.extend_from_slice(extra_allowed);
        o.finish(KIND, &allowed)?;
        let vgg_path = setup.vgg.as_ref().ok_or_else(|| {
            VtonError::invalid(
                "vgg",
                format!("training {KIND} needs --vgg (torchvision VGG19)"),
            )
        })?;
        let vgg = Checkpoint::open(vgg_path)?;
        let ckpt = match (&setup.weights_checkpoint, &setup.weights) {
            (Some(c), _) => Some(c.clone()),
            (None, Some(p)) => Some(Checkpoint::open(p)?),
            (None, None) => None,
        };
        let mut t = match ckpt {
            Some(c) => Self::from_loaded(&c, &vgg, options, device)?,
            None => {
                let config = DciVitonWarpingConfig {
                    oc,
                    ..DciVitonWarpingConfig::default()
                };
                Self::new_fresh(&config, setup.seed, &vgg, options, device)?
            }
        };
        t.raw_options = setup.options.clone();
        Ok(t)
    }

    pub fn model(&self) -> &DciVitonWarping {
        &self.model
    }

    pub fn options(&self) -> &DciWarpTrainOptions {
        &self.options
    }

    pub fn params(&self) -> &NamedParams {
        &self.params
    }

    /// Optimiser steps taken.
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// The autodiff device the model trains on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The forward and every loss term of the notebook's loop (no backward).
    fn losses(&self, batch: &DciWarpBatch) -> Result<(Tensor<1>, LossTerms)> {
        let config = self.model.config();
        batch.check(&config)?;
        let b = batch.to_device(&self.device);
        let o = &self.options;
        let (wc, wcm, flows) = self.model.forward(b.input_1.clone(), b.input_2.clone())?;
        let mut terms = LossTerms::new();
        let l1_final = losses::l1(wcm.clone(), b.warped_mask.clone());
        let vgg_final = self.vgg.forward(wcm * wc, b.warped_cloth.clone())?;
        terms.insert("l1_final".into(), scalar(&l1_final)?);
        terms.insert("vgg_final".into(), scalar(&vgg_final)?);
        let mut tv: Option<Tensor<1>> = None;
        for f in &flows {
            let t = losses::total_variation_nhwc(f.clone());
            tv = Some(match tv {
                None => t,
                Some(s) => s + t,
            });
        }
        let tv = tv.ok_or_else(|| VtonError::invalid("flow_list", "empty"))?;
        let mut l1_all = l1_final;
        let mut vgg_all = vgg_final;
        if o.multiscale {
            let [n, c1, h, w] = b.input_1.dims();
            let dev = b.input_1.device();
            for (j, flow) in flows.iter().take(flows.len() - 1).enumerate() {
                // F.interpolate(flow.permute(0, 3, 1, 2), size=input size, bilinear).permute(0, 2, 3, 1)
                let f = crate::nn::resize_bilinear(flow.clone().permute([0, 3, 1, 2]), h, w)
                    .permute([0, 2, 3, 1]);
                let [_, f1, f2, _] = f.dims();
                // x / ((shape[1] - 1) / 2), y / ((shape[2] - 1) / 2), as written.
                let fx = f
                    .clone()
                    .narrow(3, 0, 1)
                    .div_scalar((f1 as f64 - 1.0) / 2.0);
                let fy = f.narrow(3, 1, 1).div_scalar((f2 as f64 - 1.0) / 2.0);
                let flow_norm = Tensor::cat(vec![fx, fy], 3);
                // make_grid(N, input_1.shape[2], input_1.shape[3]): (iW, iH) = (H, W).
                let grid = make_grid(n, h, w, &dev);
                if grid.dims() != flow_norm.dims() {
                    return Err(VtonError::invalid(
                        "DCI-VITON warping input size",
                        format!("{h}x{w}: the multi-scale terms need a square input"),
                    ));
                }
                let warped = grid_sample(
                    b.input_1.clone(),
                    grid + flow_norm,
                    GridSampleOptions::new(SampleMode::Bilinear, PaddingMode::Border, false),
                )?;
                let wc_j = warped.clone().narrow(1, 0, c1 - 1);
                let wcm_j = warped.narrow(1, c1 - 1, 1);
                let div = 2f64.powi(4 - j as i32);
                let l1_j = losses::l1(wcm_j.clone(), b.warped_mask.clone()).div_scalar(div);
                let vgg_j = self
                    .vgg
                    .forward(wcm_j * wc_j, b.warped_cloth.clone())?
                    .div_scalar(div);
                terms.insert(format!("l1_scale.{j}"), scalar(&l1_j)?);
                terms.insert(format!("vgg_scale.{j}"), scalar(&vgg_j)?);
                l1_all = l1_all + l1_j;
                vgg_all = vgg_all + vgg_j;
            }
        }
        let total = l1_all.clone().mul_scalar(o.l1_lambda)
            + vgg_all.clone().mul_scalar(o.vgg_lambda)
            + tv.clone().mul_scalar(o.tv_lambda);
        terms.insert("loss_l1_cloth".into(), scalar(&l1_all)?);
        terms.insert("loss_vgg".into(), scalar(&vgg_all)?);
        terms.insert("loss_tv".into(), scalar(&tv)?);
        terms.insert("loss_G".into(), scalar(&total)?);
        Ok((total, terms))
    }

    /// One iteration of the notebook's loop: forward, losses, `zero_grad`, `backward`,
    /// `gen_opt.step()`. With `keep_grads`, the gradients before the step are returned.
    pub fn step(&mut self, batch: &DciWarpBatch, keep_grads: bool) -> Result<DciWarpStep> {
        let (total, terms) = self.losses(batch)?;
        if let Some((k, v)) = terms.iter().find(|(_, v)| !v.is_finite()) {
            return Err(VtonError::Numerical {
                operation: format!("{KIND} training step {}", self.step),
                message: format!("loss term {k} is {v}"),
            });
        }
        let g = total.backward();
        let grads = self.params.grads(&self.model, &g);
        let host = if keep_grads {
            let mut h = BTreeMap::new();
            for (k, v) in &grads {
                h.insert(k.clone(), self.params.to_host(k, v)?);
            }
            Some(h)
        } else {
            None
        };
        let lr = self.options.lr;
        let mut values = self.params.values(&self.model);
        self.adam.step(lr, &mut values, &grads)?;
        values.retain(|k, _| grads.contains_key(k));
        self.model = self.params.set(self.model.clone(), &values)?;
        self.step += 1;
        Ok(DciWarpStep {
            losses: terms,
            lr,
            grads: host,
        })
    }

    /// The loss terms of a batch without training.
    pub fn evaluate(&self, batch: &DciWarpBatch) -> Result<LossTerms> {
        Ok(self.losses(batch)?.1)
    }

    /// `(warped_c, warped_cm)` of a batch, without autodiff.
    pub fn predict(&self, batch: &DciWarpBatch) -> Result<(Tensor<4>, Tensor<4>)> {
        let b = batch.to_device(&self.device);
        let (wc, wcm, _) = self.model.forward(b.input_1, b.input_2)?;
        Ok((wc.inner(), wcm.inner()))
    }

    /// The model's state dict under the original keys, PyTorch layout.
    pub fn state_dict(&self) -> Result<BTreeMap<String, HostTensor>> {
        self.params.state_dict(&self.model)
    }

    /// Adam's state, PyTorch layout, by parameter key (only parameters that had a
    /// gradient).
    pub fn adam_state(&self) -> Result<BTreeMap<String, (HostTensor, HostTensor, u64)>> {
        let mut out = BTreeMap::new();
        for (k, st) in &self.adam.state {
            out.insert(
                k.clone(),
                (
                    self.params.to_host(k, &st.exp_avg)?,
                    self.params.to_host(k, &st.exp_avg_sq)?,
                    st.step,
                ),
            );
        }
        Ok(out)
    }

    /// Replaces Adam's state (PyTorch layout, by parameter key; shapes checked).
    pub fn set_adam_state(
        &mut self,
        state: &BTreeMap<String, (HostTensor, HostTensor, u64)>,
    ) -> Result<()> {
        let mut adam = BTreeMap::new();
        for (k, (m, v, step)) in state {
            if *step == 0 {
                return Err(VtonError::config(k.clone(), "Adam state with step 0"));
            }
            adam.insert(
                k.clone(),
                AdamState {
                    exp_avg: self.params.from_host(k, m, &self.device)?.inner(),
                    exp_avg_sq: self.params.from_host(k, v, &self.device)?.inner(),
                    step: *step,
                },
            );
        }
        self.adam.state = adam;
        Ok(())
    }

    /// `model.parameters()` order: the index PyTorch's optimiser state uses.
    fn parameter_order(&self) -> Vec<(String, Vec<usize>)> {
        self.model.config().parameter_shapes()
    }

    fn load_original_optimizer_state(&mut self, ckpt: &Checkpoint, prefix: &str) -> Result<()> {
        let order = self.parameter_order();
        let mut state = BTreeMap::new();
        for (i, (key, shape)) in order.iter().enumerate() {
            let p = format!("{prefix}{i}.");
            let m = format!("{p}exp_avg");
            if !ckpt.contains(&m) {
                continue;
            }
            let read = |k: &str, want: &[usize]| -> Result<HostTensor> {
                let s = ckpt.shape(k).map(|s| s.to_vec()).unwrap_or_default();
                if s != want {
                    return Err(VtonError::WeightShape {
                        key: k.to_string(),
                        expected: want.to_vec(),
                        found: s,
                    });
                }
                Ok(HostTensor::new(s, ckpt.read_f32(k)?))
            };
            let exp_avg = read(&m, shape)?;
            let exp_avg_sq = read(&format!("{p}exp_avg_sq"), shape)?;
            let step = read(&format!("{p}step"), &[])?;
            let step = match step.data.as_slice() {
                [s] if *s >= 1.0 && s.fract() == 0.0 => *s as u64,
                other => {
                    return Err(VtonError::config(
                        format!("{p}step"),
                        format!("{other:?}: expected one positive whole number"),
                    ))
                }
            };
            state.insert(key.clone(), (exp_avg, exp_avg_sq, step));
        }
        let n = order.len();
        if let Some(extra) = ckpt.keys().find(|k| {
            k.strip_prefix(prefix)
                .and_then(|r| r.split('.').next())
                .and_then(|i| i.parse::<usize>().ok())
                .is_some_and(|i| i >= n)
        }) {
            return Err(VtonError::config(
                extra.to_string(),
                format!("optimiser state for parameter index >= {n} (the model has {n})"),
            ));
        }
        self.set_adam_state(&state)
    }

    /// The original checkpoint dictionary: `{'model_state_dict': state_dict,
    /// 'optimizer_state_dict': Adam.state_dict()}` (param_groups as torch 2 writes them).
    pub fn original_checkpoint(&self) -> Result<BTreeMap<String, PthValue>> {
        let mut sd = BTreeMap::new();
        for (k, h) in self.state_dict()? {
            sd.insert(k, StateTensor::from_host(&h)?);
        }
        let order = self.parameter_order();
        let adam = self.adam_state()?;
        let mut state = BTreeMap::new();
        for (i, (key, _)) in order.iter().enumerate() {
            if let Some((m, v, step)) = adam.get(key) {
                let mut s = BTreeMap::new();
                s.insert(
                    PthKey::from("step"),
                    PthValue::Tensor(StateTensor::scalar_f32(*step as f32)),
                );
                s.insert(
                    PthKey::from("exp_avg"),
                    PthValue::Tensor(StateTensor::from_host(m)?),
                );
                s.insert(
                    PthKey::from("exp_avg_sq"),
                    PthValue::Tensor(StateTensor::from_host(v)?),
                );
                state.insert(PthKey::Int(i as i64), PthValue::Dict(s));
            }
        }
        let o = &self.options;
        let mut group = BTreeMap::new();
        for (k, v) in [
            ("lr", PthValue::Float(o.lr)),
            (
                "betas",
                PthValue::List(vec![PthValue::Float(o.betas.0), PthValue::Float(o.betas.1)]),
            ),
            ("eps", PthValue::Float(o.eps)),
            ("weight_decay", PthValue::Float(0.0)),
            ("amsgrad", PthValue::Bool(false)),
            ("maximize", PthValue::Bool(false)),
            ("foreach", PthValue::None),
            ("capturable", PthValue::Bool(false)),
            ("differentiable", PthValue::Bool(false)),
            ("fused", PthValue::None),
            ("decoupled_weight_decay", PthValue::Bool(false)),
            (
                "params",
                PthValue::List((0..order.len() as i64).map(PthValue::Int).collect()),
            ),
        ] {
            group.insert(PthKey::from(k), v);
        }
        let mut opt = BTreeMap::new();
        opt.insert(PthKey::from("state"), PthValue::Dict(state));
        opt.insert(
            PthKey::from("param_groups"),
            PthValue::List(vec![PthValue::Dict(group)]),
        );
        let mut top = BTreeMap::new();
        top.insert("model_state_dict".to_string(), PthValue::StateDict(sd));
        top.insert("optimizer_state_dict".to_string(), PthValue::Dict(opt));
        Ok(top)
    }

    /// Writes [`Self::original_checkpoint`] with `torch.save`'s format (atomically): what
    /// `WarpingCloth.warping` loads (`load_state_dict` of both) and what
    /// [`DciVitonWarping::from_checkpoint`] and [`Self::from_loaded`] read back.
    pub fn save_original(&self, path: impl AsRef<Path>) -> Result<()> {
        save_pth_nested(path, &self.original_checkpoint()?)
    }
}

impl Trainer for DciWarpTrainer {
    fn kind(&self) -> &'static str {
        KIND
    }

    /// `warping_network.pth`: `{'model_state_dict', 'optimizer_state_dict'}` (the name
    /// holds "warping", so `vton try-on --method dci-viton --weights DIR` finds it).
    fn export_original(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| VtonError::io(dir, e))?;
        let path = dir.join("warping_network.pth");
        self.save_original(&path)?;
        Ok(vec![path])
    }

    fn train_step(&mut self, batch: &Batch) -> Result<LossTerms> {
        let b = DciWarpBatch::from_batch(batch)?;
        Ok(self.step(&b, false)?.losses)
    }

    fn steps_done(&self) -> usize {
        self.step
    }

    fn current_lr(&self) -> f64 {
        self.options.lr
    }

    /// Prediction `warped_cm * warped_c` against `warped_cloth`, both shown in `[-1, 1]`;
    /// the panel: cloth, warped cloth, warped mask, prediction, target.
    fn validate(&self, batch: &Batch) -> Result<Validation> {
        let b = DciWarpBatch::from_batch(batch)?;
        b.check(&self.model.config())?;
        let (wc, wcm) = self.predict(&b)?;
        let c1 = b.input_1.dims()[1];
        let signed = |t: Tensor<4>| t.mul_scalar(2.0).sub_scalar(1.0);
        let pred = signed((wcm.clone() * wc.clone()).to_device(&b.input_1.device()));
        let target = match self.options.target_range {
            TargetRange::Unit => signed(b.warped_cloth.clone()),
            TargetRange::Signed => b.warped_cloth.clone(),
        };
        let cloth = signed(b.input_1.clone().narrow(1, 0, c1 - 1));
        Ok(Validation {
            prediction: pred.clone(),
            target: target.clone(),
            panel: vec![
                ("cloth".into(), cloth),
                (
                    "warped cloth".into(),
                    signed(wc.to_device(&b.input_1.device())),
                ),
                (
                    "warped mask".into(),
                    signed(wcm.to_device(&b.input_1.device())),
                ),
                ("prediction".into(), pred),
                ("target".into(), target),
            ],
        })
    }

    fn training_state(&self) -> Result<TrainingState> {
        let mut model = BTreeMap::new();
        for (k, h) in self.state_dict()? {
            model.insert(k, StateTensor::from_host(&h)?);
        }
        let mut moments = BTreeMap::new();
        for (k, (m, v, step)) in self.adam_state()? {
            moments.insert(
                k,
                MomentState {
                    exp_avg: StateTensor::from_host(&m)?,
                    exp_avg_sq: StateTensor::from_host(&v)?,
                    step,
                },
            );
        }
        let mut models = BTreeMap::new();
        models.insert("model".to_string(), model);
        let mut optimizers = BTreeMap::new();
        let mut config = self.options.to_json();
        config["class"] = Value::String("Adam".into());
        optimizers.insert(
            "adam".to_string(),
            OptimizerState {
                state: moments,
                config,
            },
        );
        Ok(TrainingState {
            global_step: self.step as u64,
            models,
            optimizers,
            lr_step: self.step as u64,
            rng: BTreeMap::new(),
            options: Value::Object(self.raw_options.clone()),
            extra: serde_json::json!({ "kind": KIND }),
        })
    }

    fn restore(&mut self, state: TrainingState) -> Result<()> {
        let sd = state
            .models
            .get("model")
            .ok_or_else(|| VtonError::config("model", "the checkpoint has no such model"))?;
        let ckpt = Checkpoint::from_f32_tensors(
            "checkpoint model",
            sd.iter()
                .map(|(k, t)| (k.clone(), t.shape().to_vec(), t.to_f32_vec())),
        )?;
        let mut t = Self::from_loaded(&ckpt, &self.vgg_ckpt, self.options.clone(), &self.device)?;
        let adam = state
            .optimizers
            .get("adam")
            .ok_or_else(|| VtonError::config("adam", "the checkpoint has no optimiser state"))?;
        let moments = adam
            .state
            .iter()
            .map(|(k, m)| {
                (
                    k.clone(),
                    (m.exp_avg.to_host(), m.exp_avg_sq.to_host(), m.step),
                )
            })
            .collect();
        t.set_adam_state(&moments)?;
        t.step = state.global_step as usize;
        t.raw_options = self.raw_options.clone();
        *self = t;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------

/// Batches of a VITON-HD-layout folder for the warping network (paired: each person with
/// their own garment). Per sample, at `size` x `size` (the aspect ratio is not kept, as in
/// the original's `Resize((S, S))`):
///
/// * `input_1`, `input_2`: [`dci_warp_inputs`] on `image/`, `image-parse-v3/`,
///   `openpose_json/`, `image-densepose/`, `cloth/`, `cloth-mask/`;
/// * `warped_mask` `[1, 1, S, S]`: 1 where the parse (nearest-resized) has one of
///   `cloth_labels` (LIP 5, 6, 7 by default), else 0;
/// * `warped_cloth` `[1, 3, S, S]`: the person photo (PIL bilinear) in `[0, 1]`
///   ([`TargetRange::Unit`]) or `[-1, 1]`, times `warped_mask`.
pub struct DciWarpData {
    data: PathBuf,
    pairs: Vec<(String, String)>,
    size: usize,
    batch_size: usize,
    shuffle: bool,
    seed: u64,
    target_range: TargetRange,
    cloth_labels: Vec<u8>,
    device: Device,
    epoch: usize,
    pos: usize,
    order: Vec<usize>,
    skip_bad: bool,
    skipped: Vec<(String, String)>,
}

/// Settings of a [`DciWarpData`].
#[derive(Debug, Clone, PartialEq)]
pub struct DciWarpDataOptions {
    pub size: usize,
    pub batch_size: usize,
    pub shuffle: bool,
    pub seed: u64,
    pub target_range: TargetRange,
    pub cloth_labels: Vec<u8>,
    /// Skip unreadable samples (reported by [`BatchSource::skipped`]) instead of failing.
    pub skip_bad: bool,
    /// Batches already drawn (a resumed run continues the same order).
    pub start_batch: usize,
    /// The pairs file, relative to the root (default: `train_pairs.txt`, else
    /// `test_pairs.txt`, as [`DataLayout::detect`] finds them).
    pub data_list: Option<String>,
}

impl Default for DciWarpDataOptions {
    fn default() -> Self {
        DciWarpDataOptions {
            size: 256,
            batch_size: 1,
            shuffle: true,
            seed: 0,
            target_range: TargetRange::Unit,
            cloth_labels: vec![5, 6, 7],
            skip_bad: false,
            start_batch: 0,
            data_list: None,
        }
    }
}

fn to_u8(v: f32) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

fn rgb_u8(img: &RgbImage) -> U8Image {
    U8Image {
        width: img.width,
        height: img.height,
        channels: 3,
        data: img.data.iter().map(|&v| to_u8(v)).collect(),
    }
}

fn stem(name: &str) -> &str {
    Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(name)
}

impl DciWarpData {
    /// Opens `root` (`train_pairs.txt` / `test_pairs.txt`, folders in `root/train`,
    /// `root/test` or `root`).
    pub fn open(root: &Path, opts: &DciWarpDataOptions, device: &Device) -> Result<Self> {
        if opts.size < 64 || !opts.size.is_multiple_of(32) {
            return Err(VtonError::invalid(
                "size",
                format!(
                    "{}: the warping network takes square inputs, a multiple of 32 and at least 64",
                    opts.size
                ),
            ));
        }
        if opts.batch_size == 0 {
            return Err(VtonError::invalid("batch_size", "must be at least 1"));
        }
        if opts.cloth_labels.is_empty() || opts.cloth_labels.iter().any(|&l| l >= 20) {
            return Err(VtonError::invalid(
                "cloth_labels",
                format!("{:?}: give LIP labels 0..19", opts.cloth_labels),
            ));
        }
        let layout = match &opts.data_list {
            Some(list) => {
                let d = DataLayout::detect(root)?;
                DataLayout::new(root.join(list), d.data)
            }
            None => DataLayout::detect(root)?,
        };
        let bytes =
            std::fs::read(&layout.pairs_file).map_err(|e| VtonError::io(&layout.pairs_file, e))?;
        let pairs = parse_pairs(&bytes, &layout.pairs_file.display().to_string())?;
        for folder in [
            "image",
            "image-parse-v3",
            "openpose_json",
            "image-densepose",
            "cloth",
            "cloth-mask",
        ] {
            let p = layout.data.join(folder);
            if !p.is_dir() {
                return Err(VtonError::FileNotFound { path: p });
            }
        }
        let per_epoch = pairs.len().div_ceil(opts.batch_size).max(1);
        let epoch = opts.start_batch / per_epoch;
        let mut d = DciWarpData {
            data: layout.data,
            pairs,
            size: opts.size,
            batch_size: opts.batch_size,
            shuffle: opts.shuffle,
            seed: opts.seed,
            target_range: opts.target_range,
            cloth_labels: opts.cloth_labels.clone(),
            device: device.clone(),
            epoch,
            pos: 0,
            order: Vec::new(),
            skip_bad: opts.skip_bad,
            skipped: Vec::new(),
        };
        d.order = epoch_order(d.pairs.len(), d.shuffle, d.seed, d.epoch);
        d.pos = ((opts.start_batch % per_epoch) * opts.batch_size).min(d.order.len());
        Ok(d)
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn with_ext(&self, folder: &str, name: &str) -> PathBuf {
        let p = self.data.join(folder).join(name);
        if p.exists() {
            return p;
        }
        self.data.join(folder).join(format!("{}.png", stem(name)))
    }

    /// Sample `index` as a one-sample batch.
    pub fn sample(&self, index: usize) -> Result<DciWarpBatch> {
        let (name, _) = self.pairs.get(index).ok_or_else(|| {
            VtonError::invalid(
                "index",
                format!("{index} is out of range for {} pairs", self.pairs.len()),
            )
        })?;
        let d = &self.data;
        let person = read_image(d.join("image").join(name))?;
        let parse = ParseMap::read(d.join("image-parse-v3").join(format!("{}.png", stem(name))))?;
        let pose = read_keypoints(
            d.join("openpose_json")
                .join(format!("{}_keypoints.json", stem(name))),
            PersonSelection::Largest,
        )?;
        let densepose = read_image(self.with_ext("image-densepose", name))?;
        let garment = read_image(d.join("cloth").join(name))?;
        let garment_mask = read_mask(self.with_ext("cloth-mask", name))?;
        let s = self.size;
        let (_, w) = dci_warp_inputs(
            &DciVitonInputs {
                person: &person,
                parse: &parse,
                pose: &pose,
                densepose: &densepose,
                garment: &garment,
                garment_mask: &garment_mask,
            },
            s,
            s,
            &self.device,
        )?;
        let labels = U8Image {
            width: parse.width,
            height: parse.height,
            channels: 1,
            data: parse
                .labels
                .iter()
                .map(|l| if self.cloth_labels.contains(l) { 1 } else { 0 })
                .collect(),
        };
        let mask = pil_resize_nearest(&labels, s, s);
        let im = pil_resize_bilinear(&rgb_u8(&person), s, s);
        let n = s * s;
        let mut cloth = vec![0f32; 3 * n];
        for (k, px) in im.data.chunks_exact(3).enumerate() {
            let m = mask.data[k] as f32;
            for (ch, &v) in px.iter().enumerate() {
                let v = v as f32 / 255.0;
                let v = match self.target_range {
                    TargetRange::Unit => v,
                    TargetRange::Signed => v * 2.0 - 1.0,
                };
                cloth[ch * n + k] = v * m;
            }
        }
        let m: Vec<f32> = mask.data.iter().map(|&v| v as f32).collect();
        Ok(DciWarpBatch {
            input_1: w.input_1,
            input_2: w.input_2,
            warped_cloth: Tensor::from_data(TensorData::new(cloth, [1, 3, s, s]), &self.device),
            warped_mask: Tensor::from_data(TensorData::new(m, [1, 1, s, s]), &self.device),
        })
    }

    /// The next batch (of the current epoch's seeded order; the last one of an epoch may be
    /// smaller).
    pub fn next_warp_batch(&mut self) -> Result<DciWarpBatch> {
        let mut got = Vec::new();
        let mut tried = 0usize;
        while got.len() < self.batch_size {
            if self.pos >= self.order.len() {
                if !got.is_empty() {
                    break;
                }
                self.epoch += 1;
                self.order = epoch_order(self.pairs.len(), self.shuffle, self.seed, self.epoch);
                self.pos = 0;
            }
            let i = self.order[self.pos];
            self.pos += 1;
            tried += 1;
            match self.sample(i) {
                Ok(b) => got.push(b),
                Err(e) if self.skip_bad => {
                    self.skipped
                        .push((format!("#{i} {}", self.pairs[i].0), e.to_string()));
                    if tried > self.pairs.len() + self.batch_size && got.is_empty() {
                        return Err(VtonError::invalid(
                            "data",
                            "every sample of the dataset was skipped as unreadable",
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let cat = |f: fn(&DciWarpBatch) -> Tensor<4>| Tensor::cat(got.iter().map(f).collect(), 0);
        Ok(DciWarpBatch {
            input_1: cat(|b| b.input_1.clone()),
            input_2: cat(|b| b.input_2.clone()),
            warped_cloth: cat(|b| b.warped_cloth.clone()),
            warped_mask: cat(|b| b.warped_mask.clone()),
        })
    }
}

impl BatchSource for DciWarpData {
    fn next_batch(&mut self) -> Result<Batch> {
        Ok(self.next_warp_batch()?.to_batch())
    }

    fn skipped(&self) -> Vec<(String, String)> {
        self.skipped.clone()
    }
}

/// The training batches of a VITON-HD-layout folder at `size` (shuffled, seed 0), with
/// the default targets ([`DciWarpDataOptions`]).
pub fn open_dci_warp_data(
    root: &Path,
    size: usize,
    batch_size: usize,
    device: &Device,
) -> Result<DciWarpData> {
    DciWarpData::open(
        root,
        &DciWarpDataOptions {
            size,
            batch_size,
            ..Default::default()
        },
        device,
    )
}

/// `vton train`'s data for this kind: the training source and a validation source (the
/// first `val_count` pairs in order, 4 by default, one batch). Options by name
/// ([`DATA_OPTIONS`]: `size` 256, `shuffle`, `val_count`, `target_range`, `cloth_labels`,
/// `data_list`); unknown names are left to the trainer's check.
#[allow(clippy::too_many_arguments)]
pub fn open_dci_warp_data_with(
    root: &Path,
    options: &Map<String, Value>,
    batch_size: usize,
    seed: u64,
    skip_bad: bool,
    start_batch: usize,
    device: &Device,
) -> Result<DataSources> {
    let o = Opts::new(options);
    let d = DciWarpDataOptions::default();
    let labels = o.f64_list(
        "cloth_labels",
        &d.cloth_labels.iter().map(|&l| l as f64).collect::<Vec<_>>(),
    )?;
    let cloth_labels = labels
        .iter()
        .map(|&l| {
            if (0.0..20.0).contains(&l) && l.fract() == 0.0 {
                Ok(l as u8)
            } else {
                Err(VtonError::invalid(
                    "cloth_labels",
                    format!("{l} is not a LIP label 0..19"),
                ))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let data_list = match o.string("data_list", "")? {
        s if s.is_empty() => None,
        s => Some(s),
    };
    let opts = DciWarpDataOptions {
        size: o.usize("size", d.size)?,
        batch_size,
        shuffle: o.bool("shuffle", true)?,
        seed,
        target_range: TargetRange::from_name(&o.string("target_range", "unit")?)?,
        cloth_labels,
        skip_bad,
        start_batch,
        data_list,
    };
    let train = DciWarpData::open(root, &opts, device)?;
    let val_count = o.usize("val_count", 4)?.clamp(1, train.len().max(1));
    let val = DciWarpData::open(
        root,
        &DciWarpDataOptions {
            batch_size: val_count,
            shuffle: false,
            skip_bad: true,
            start_batch: 0,
            ..opts
        },
        device,
    )?;
    Ok((Box::new(train), Some(Box::new(val))))
}
