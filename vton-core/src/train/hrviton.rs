//! HR-VITON training (`train_condition.py`): the condition generator (tocg) against the
//! multi-scale segmentation discriminator.
//!
//! One [`ConditionGeneratorTrainer::step`] is one iteration of `train()`'s loop, in its
//! order: tocg forward in train mode (BatchNorm on batch statistics), the composition of
//! the cloth channel with the warped cloth mask, occlusion handling, the warping losses
//! (L1 on the cloth mask, VGG19 perceptual loss, total variation, the intermediate-flow
//! terms), the segmentation cross entropy, the three discriminator passes (G's GAN term on
//! `softmax(S)`, then `softmax(S).detach()` and the real one-hot parse), then Adam on G
//! with `loss_G`'s gradients and Adam on D with `loss_D`'s only (`optimizer_D.zero_grad()`
//! drops what `loss_G.backward()` wrote into D). BatchNorm running statistics advance
//! once per tocg forward; spectral-norm `u`, `v` once per discriminator forward.
//!
//! ```text
//! loss_G = (10 l1_cloth + vgg + tvlambda tv) + (ce CElamda + gan_g GANlambda)
//! loss_D = d_fake + d_real                  (LSGAN, summed over D scales)
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor};

use crate::error::{Result, VtonError};
use crate::models::hrviton::{
    hr_grid_sample, make_grid, ConditionGenerator, ConditionGeneratorConfig,
};
use crate::models::hrviton_discriminator::{
    DiscriminatorConfig, DropoutMasks, MultiscaleDiscriminator,
};
use crate::nn::{resize_bilinear, resize_nearest, train_mode, BufferUpdate};
use crate::rng::Rng;
use crate::train::cpvton::{
    check_finite, run_shards, scalar, shard_ranges, with_replicas, LossTerms, ShardMean,
};
use crate::train::gan::{cross_entropy2d, gan_loss_per_scale, GanMode};
use crate::train::losses::{self, VggLoss, VggLossConfig};
use crate::train::optim::{Adam, AdamConfig, AdamState};
use crate::train::params::{HostTensor, NamedParams};
use crate::weights::{Checkpoint, Loader};

/// `train_condition.py`'s options that change a training step, under `get_opt()`'s
/// names (defaults as there).
#[allow(non_snake_case)]
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionTrainOptions {
    pub fine_height: usize,
    pub fine_width: usize,
    pub semantic_nc: usize,
    pub output_nc: usize,
    /// `"T1"` or `"encoder"`.
    pub warp_feature: String,
    /// `"relu"` or `"conv"`.
    pub out_layer: String,
    pub G_lr: f64,
    pub D_lr: f64,
    pub CElamda: f64,
    pub GANlambda: f64,
    pub tvlambda: f64,
    /// Only the intermediate-flow loss reads it (`"bilinear"` or `"nearest"`); tocg's
    /// forward is called without it and always upsamples bilinearly.
    pub upsample: String,
    /// `"no_composition"`, `"detach"` or `"warp_grad"`.
    pub clothmask_composition: String,
    /// `"no_edge"`, `"last_only"` or `"weighted"`.
    pub edgeawaretv: String,
    /// Read only with an edge-aware TV (as in the script).
    pub add_lasttv: bool,
    pub lasttvonly: bool,
    pub interflowloss: bool,
    pub occlusion: bool,
    pub no_GAN_loss: bool,
    pub G_D_seperate: bool,
    pub Ddownx2: bool,
    pub Ddropout: bool,
    pub spectral: bool,
    pub num_D: usize,
    /// `define_D`'s `n_layers_D` (3 in `train_condition.py`).
    pub n_layers_D: usize,
}

impl Default for ConditionTrainOptions {
    fn default() -> Self {
        ConditionTrainOptions {
            fine_height: 256,
            fine_width: 192,
            semantic_nc: 13,
            output_nc: 13,
            warp_feature: "T1".into(),
            out_layer: "relu".into(),
            G_lr: 2e-4,
            D_lr: 2e-4,
            CElamda: 10.0,
            GANlambda: 1.0,
            tvlambda: 2.0,
            upsample: "bilinear".into(),
            clothmask_composition: "warp_grad".into(),
            edgeawaretv: "no_edge".into(),
            add_lasttv: false,
            lasttvonly: false,
            interflowloss: false,
            occlusion: false,
            no_GAN_loss: false,
            G_D_seperate: false,
            Ddownx2: false,
            Ddropout: false,
            spectral: false,
            num_D: 2,
            n_layers_D: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Composition {
    None,
    Detach,
    WarpGrad,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EdgeTv {
    NoEdge,
    LastOnly,
    Weighted,
}

/// The parsed string options.
#[derive(Debug, Clone, Copy)]
struct Parsed {
    composition: Composition,
    edge_tv: EdgeTv,
    inter_nearest: bool,
}

fn pick<T: Copy>(name: &str, value: &str, choices: &[(&str, T)]) -> Result<T> {
    choices
        .iter()
        .find(|(n, _)| *n == value)
        .map(|c| c.1)
        .ok_or_else(|| {
            let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
            VtonError::invalid(
                name,
                format!("{value:?} is not one of {}", names.join(", ")),
            )
        })
}

impl ConditionTrainOptions {
    fn parse(&self) -> Result<Parsed> {
        if self.fine_height == 0 || self.fine_width == 0 {
            return Err(VtonError::invalid(
                "fine_height / fine_width",
                "must be positive",
            ));
        }
        for (n, v) in [
            ("G_lr", self.G_lr),
            ("D_lr", self.D_lr),
            ("CElamda", self.CElamda),
            ("GANlambda", self.GANlambda),
            ("tvlambda", self.tvlambda),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(VtonError::invalid(
                    n,
                    format!("{v}: must be a finite number >= 0"),
                ));
            }
        }
        Ok(Parsed {
            composition: pick(
                "clothmask_composition",
                &self.clothmask_composition,
                &[
                    ("no_composition", Composition::None),
                    ("detach", Composition::Detach),
                    ("warp_grad", Composition::WarpGrad),
                ],
            )?,
            edge_tv: pick(
                "edgeawaretv",
                &self.edgeawaretv,
                &[
                    ("no_edge", EdgeTv::NoEdge),
                    ("last_only", EdgeTv::LastOnly),
                    ("weighted", EdgeTv::Weighted),
                ],
            )?,
            inter_nearest: pick(
                "upsample",
                &self.upsample,
                &[("bilinear", false), ("nearest", true)],
            )?,
        })
    }

    fn discriminator(&self) -> DiscriminatorConfig {
        DiscriminatorConfig {
            n_layers: self.n_layers_D,
            num_d: self.num_D,
            downx2: self.Ddownx2,
            dropout: self.Ddropout,
            dropout_p: 0.5,
            spectral: self.spectral,
            use_sigmoid: false,
        }
    }
}

/// One batch under `cp_dataset.py`'s names (values as the dataset returns them).
#[derive(Debug, Clone)]
pub struct ConditionBatch {
    /// `cloth['paired']` `[B, 3, H, W]` in `[-1, 1]`.
    pub cloth: Tensor<4>,
    /// `cloth_mask['paired']` `[B, 1, H, W]` (thresholded at 0.5 by the step).
    pub cloth_mask: Tensor<4>,
    /// `[B, semantic_nc, H, W]` one-hot.
    pub parse_agnostic: Tensor<4>,
    /// `[B, 3, H, W]`.
    pub densepose: Tensor<4>,
    /// `[B, 1, H, W]` class-index map (float), the CE target.
    pub parse_onehot: Tensor<4>,
    /// `[B, output_nc, H, W]` one-hot, D's real input.
    pub parse: Tensor<4>,
    /// `[B, 1, H, W]` upper-cloth mask, the L1 target.
    pub pcm: Tensor<4>,
    /// `[B, 3, H, W]` person's cloth on white, the VGG target.
    pub parse_cloth: Tensor<4>,
}

/// What one step computed.
#[derive(Debug, Clone)]
pub struct ConditionStepOutput {
    /// `l1_cloth, vgg, tv, ce, gan_g, G, d_fake, d_real, D` and `sub.*` terms
    /// (`sub.l1_cloth.final`, `sub.l1_cloth.inter.<i>` (before `/2^(4-i)`),
    /// `sub.vgg.final`, `sub.vgg.final.layer<l>` (before the layer weight),
    /// `sub.vgg.inter.<i>`, `sub.tv.<flow>.{y,x}`, `sub.gan_g.<j>`, `sub.d_fake.<j>`,
    /// `sub.d_real.<j>`).
    pub losses: LossTerms,
    /// G's gradients of `loss_G` (flat, burn layout), when kept.
    pub grads_g: Option<BTreeMap<String, Tensor<1>>>,
    /// D's gradients of `loss_D`, when kept.
    pub grads_d: Option<BTreeMap<String, Tensor<1>>>,
    /// Detached intermediates: `flow_list.<i>`, `fake_segmap` (composed),
    /// `warped_clothmask_raw`, `warped_cloth`, `warped_clothmask`, `D_pred_G.<j>`,
    /// `D_pred_fake.<j>`, `D_pred_real.<j>`.
    pub taps: BTreeMap<String, Tensor<4>>,
}

/// One parameter's Adam state on the host, in PyTorch's layout (`exp_avg`, `exp_avg_sq`,
/// `step` as `optimizer.state_dict()` holds them).
/// [`ConditionGeneratorTrainer::predict`]'s outputs.
#[derive(Debug, Clone)]
pub struct ConditionPrediction {
    pub warped_cloth: Tensor<4>,
    pub warped_cloth_mask: Tensor<4>,
    pub fake_segmap: Tensor<4>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostAdamState {
    pub exp_avg: HostTensor,
    pub exp_avg_sq: HostTensor,
    pub step: u64,
}

/// `remove_overlap(seg_out, warped_cm)`: `cm - sum(seg[:, [1, 2, 5..]]) * cm`.
fn remove_overlap(seg: Tensor<4>, cm: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = seg.dims();
    let others = Tensor::cat(
        vec![
            seg.clone().slice([0..b, 1..3, 0..h, 0..w]),
            seg.slice([0..b, 5..c, 0..h, 0..w]),
        ],
        1,
    )
    .sum_dim(1);
    cm.clone() - others * cm
}

/// Channel 3 of `s` multiplied by `m` (`s * ones-with-channel-3 = m`).
fn mul_cloth_channel(s: Tensor<4>, m: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = s.dims();
    Tensor::cat(
        vec![
            s.clone().slice([0..b, 0..3, 0..h, 0..w]),
            s.clone().slice([0..b, 3..4, 0..h, 0..w]) * m,
            s.slice([0..b, 4..c, 0..h, 0..w]),
        ],
        1,
    )
}

/// `mean |f[:, 1:] - f[:, :-1]|`, `mean |f[:, :, 1:] - f[:, :, :-1]|` of an NHWC flow,
/// each optionally weighted elementwise before the mean.
fn tv_terms(flow: &Tensor<4>, mask: Option<(Tensor<4>, Tensor<4>)>) -> (Tensor<1>, Tensor<1>) {
    let [b, h, w, c] = flow.dims();
    let dy = (flow.clone().slice([0..b, 1..h, 0..w, 0..c])
        - flow.clone().slice([0..b, 0..h - 1, 0..w, 0..c]))
    .abs();
    let dx = (flow.clone().slice([0..b, 0..h, 1..w, 0..c])
        - flow.clone().slice([0..b, 0..h, 0..w - 1, 0..c]))
    .abs();
    match mask {
        None => (dy.mean(), dx.mean()),
        Some((my, mx)) => ((dy * my).mean(), (dx * mx).mean()),
    }
}

/// The edge-aware TV weights `exp(-150 |dm|)` of a mask resized to the flow's size.
fn edge_masks(mask: &Tensor<4>, fh: usize, fw: usize) -> (Tensor<4>, Tensor<4>) {
    let m = resize_bilinear(mask.clone(), fh, fw).permute([0, 2, 3, 1]);
    let [b, h, w, c] = m.dims();
    let my = (m.clone().slice([0..b, 1..h, 0..w, 0..c])
        - m.clone().slice([0..b, 0..h - 1, 0..w, 0..c]))
    .abs()
    .mul_scalar(-150.0)
    .exp();
    let mx = (m.clone().slice([0..b, 0..h, 1..w, 0..c]) - m.slice([0..b, 0..h, 0..w - 1, 0..c]))
        .abs()
        .mul_scalar(-150.0)
        .exp();
    (my, mx)
}

fn add(acc: Option<Tensor<1>>, t: Tensor<1>) -> Tensor<1> {
    match acc {
        None => t,
        Some(a) => a + t,
    }
}

/// HR-VITON `train_condition.py`: tocg + multi-scale discriminator, both with
/// Adam(lr, betas (0.5, 0.999)).
pub struct ConditionGeneratorTrainer {
    tocg: ConditionGenerator,
    d: MultiscaleDiscriminator,
    vgg: VggLoss,
    params_g: NamedParams,
    params_d: NamedParams,
    adam_g: Adam,
    adam_d: Adam,
    options: ConditionTrainOptions,
    parsed: Parsed,
    step: usize,
    num_batches_tracked: BTreeMap<String, i64>,
    dropout_rng: Rng,
    keep_grads: bool,
    device: Device,
    base_device: Device,
}

impl ConditionGeneratorTrainer {
    /// From the tocg and D state dicts and a torchvision VGG19 checkpoint (any format
    /// [`Checkpoint::open`] reads; original keys, wrappers and one prefix found).
    pub fn from_checkpoints(
        tocg: impl AsRef<Path>,
        discriminator: impl AsRef<Path>,
        vgg19: impl AsRef<Path>,
        options: ConditionTrainOptions,
        device: &Device,
    ) -> Result<Self> {
        let g = Checkpoint::open(tocg)?.rooted_at("ClothEncoder.0.scale.weight");
        let d = Checkpoint::open(discriminator)?.rooted_at("layer0.0.weight");
        let v = Checkpoint::open(vgg19)?.rooted_at("features.0.weight");
        Self::from_loaded(&g, &d, &v, options, device)
    }

    /// From opened checkpoints (G and D at their roots, loaded strictly; the VGG with a
    /// `features.*` root). The models live on `device.autodiff()`.
    pub fn from_loaded(
        g: &Checkpoint,
        d: &Checkpoint,
        vgg: &Checkpoint,
        options: ConditionTrainOptions,
        device: &Device,
    ) -> Result<Self> {
        let parsed = options.parse()?;
        let ad = device.clone().autodiff();
        let lg = Loader::new(g, &ad, false);
        let probe = "ClothEncoder.0.scale.weight";
        let s = lg.shape(probe).ok_or_else(|| VtonError::MissingWeights {
            source_name: g.name().to_string(),
            count: 1,
            keys: probe.into(),
        })?;
        if s.len() != 4 {
            return Err(VtonError::WeightShape {
                key: probe.into(),
                expected: vec![0, 4, 3, 3],
                found: s,
            });
        }
        let config = ConditionGeneratorConfig {
            input1_nc: s[1],
            input2_nc: options.semantic_nc + 3,
            output_nc: options.output_nc,
            ngf: s[0],
            ..ConditionGeneratorConfig::default()
        }
        .with_names(
            "batch",
            &options.warp_feature,
            &options.out_layer,
            "bilinear",
        )?;
        let tocg = ConditionGenerator::load(&lg, config)?;
        lg.finish(true)?;
        let params_g = NamedParams::new(lg.param_records())?;
        let mut num_batches_tracked = BTreeMap::new();
        for r in params_g.records() {
            if let Some(prefix) = r.key.strip_suffix(".running_mean") {
                let k = format!("{prefix}.num_batches_tracked");
                let v = g
                    .read_f32(&k)
                    .ok()
                    .and_then(|v| v.first().copied())
                    .unwrap_or(0.0);
                num_batches_tracked.insert(k, v as i64);
            }
        }
        let ld = Loader::new(d, &ad, false);
        let disc = MultiscaleDiscriminator::load(&ld, options.discriminator())?;
        ld.finish(true)?;
        let want_d = config.input1_nc + config.input2_nc + options.output_nc;
        if disc.input_nc() != want_d {
            return Err(VtonError::config(
                "layer0.0.weight",
                format!(
                    "the discriminator takes {} channels; input1 + input2 + output_nc = {want_d}",
                    disc.input_nc()
                ),
            ));
        }
        let params_d = NamedParams::new(ld.param_records())?;
        // networks.VGGLoss: relu1_1..relu5_1, weights 1/32..1, raw [-1, 1] input.
        let vgg = VggLoss::from_loaded(vgg, VggLossConfig::cpvton(), &ad)?;
        Ok(ConditionGeneratorTrainer {
            tocg,
            d: disc,
            vgg,
            params_g,
            params_d,
            adam_g: Adam::new(AdamConfig::adam(0.5, 0.999, 1e-8))?,
            adam_d: Adam::new(AdamConfig::adam(0.5, 0.999, 1e-8))?,
            options,
            parsed,
            step: 0,
            num_batches_tracked,
            dropout_rng: Rng::new(0),
            keep_grads: false,
            device: ad,
            base_device: device.clone(),
        })
    }

    /// Return the gradients of each step (for checks; costs a copy per parameter).
    pub fn keep_grads(mut self, keep: bool) -> Self {
        self.keep_grads = keep;
        self
    }

    /// The generator of the Dropout masks drawn when a step gets none.
    pub fn set_dropout_seed(&mut self, seed: u64) {
        self.dropout_rng = Rng::new(seed);
    }

    pub fn generator(&self) -> &ConditionGenerator {
        &self.tocg
    }

    pub fn discriminator(&self) -> &MultiscaleDiscriminator {
        &self.d
    }

    pub fn params_g(&self) -> &NamedParams {
        &self.params_g
    }

    pub fn params_d(&self) -> &NamedParams {
        &self.params_d
    }

    pub fn optimizer_g(&self) -> &Adam {
        &self.adam_g
    }

    pub fn optimizer_d(&self) -> &Adam {
        &self.adam_d
    }

    pub fn options(&self) -> &ConditionTrainOptions {
        &self.options
    }

    /// Optimiser steps taken.
    pub fn step_count(&self) -> usize {
        self.step
    }

    pub fn set_step_count(&mut self, step: usize) {
        self.step = step;
    }

    /// The device the models train on (an autodiff device).
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// How many Dropout masks one step consumes (0 without `--Ddropout`).
    pub fn dropout_masks_per_step(&self) -> usize {
        if !self.options.Ddropout || self.options.no_GAN_loss {
            return 0;
        }
        3 * self.options.num_D * self.options.n_layers_D.saturating_sub(1)
    }

    /// tocg's state dict under `tocg.state_dict()` keys (parameters, running statistics;
    /// `num_batches_tracked` in [`Self::num_batches_tracked`]).
    pub fn state_dict_g(&self) -> Result<BTreeMap<String, HostTensor>> {
        self.params_g.state_dict(&self.tocg)
    }

    /// D's state dict under `D.state_dict()` keys (spectral: `weight_orig`, `weight_u`,
    /// `weight_v`).
    pub fn state_dict_d(&self) -> Result<BTreeMap<String, HostTensor>> {
        self.params_d.state_dict(&self.d)
    }

    pub fn num_batches_tracked(&self) -> &BTreeMap<String, i64> {
        &self.num_batches_tracked
    }

    /// `optimizer_G.state_dict()['state']` by parameter key, PyTorch layout.
    pub fn optimizer_state_g(&self) -> Result<BTreeMap<String, HostAdamState>> {
        export_adam(&self.adam_g, &self.params_g)
    }

    pub fn optimizer_state_d(&self) -> Result<BTreeMap<String, HostAdamState>> {
        export_adam(&self.adam_d, &self.params_d)
    }

    /// Restores G's Adam state (resume); keys must be G's trainable parameters.
    pub fn load_optimizer_state_g(&mut self, st: &BTreeMap<String, HostAdamState>) -> Result<()> {
        self.adam_g.state = import_adam(&self.params_g, st, &self.base_device)?;
        Ok(())
    }

    pub fn load_optimizer_state_d(&mut self, st: &BTreeMap<String, HostAdamState>) -> Result<()> {
        self.adam_d.state = import_adam(&self.params_d, st, &self.base_device)?;
        Ok(())
    }

    fn check_batch(&self, b: &ConditionBatch) -> Result<()> {
        let o = &self.options;
        let (h, w) = (o.fine_height, o.fine_width);
        let n = b.cloth.dims()[0];
        let c = self.tocg.config();
        for (name, t, ch) in [
            ("cloth", &b.cloth, c.input1_nc - 1),
            ("cloth_mask", &b.cloth_mask, 1),
            ("parse_agnostic", &b.parse_agnostic, o.semantic_nc),
            ("densepose", &b.densepose, 3),
            ("parse_onehot", &b.parse_onehot, 1),
            ("parse", &b.parse, o.output_nc),
            ("pcm", &b.pcm, 1),
            ("parse_cloth", &b.parse_cloth, 3),
        ] {
            if t.dims() != [n, ch, h, w] || n == 0 {
                return Err(VtonError::Shape {
                    what: format!("batch {name}"),
                    expected: format!("[B, {ch}, {h}, {w}] (fine_height x fine_width)"),
                    actual: t.dims().to_vec(),
                });
            }
        }
        if o.output_nc < 13 {
            return Err(VtonError::invalid(
                "output_nc",
                "the composition and occlusion handling index HR-VITON's 13 labels",
            ));
        }
        Ok(())
    }

    /// tocg's BatchNorm updates and `num_batches_tracked`.
    fn apply_g_updates(&mut self, updates: Vec<BufferUpdate>) {
        let (m, counted) = self
            .params_g
            .apply_buffer_updates(self.tocg.clone(), updates);
        self.tocg = m;
        for k in counted {
            let key = k.replace(".running_mean", ".num_batches_tracked");
            *self.num_batches_tracked.entry(key).or_insert(0) += 1;
        }
    }

    /// One iteration of `train()` (see the module docs). `dropout_masks`: with
    /// `--Ddropout`, the masks `[B, C, h, w]` in `{0, 1}` for every Dropout call of the
    /// step in order (D call 0 = G's GAN pass, 1 = fake detached, 2 = real; inside a call
    /// scale by scale in output order, inside a scale the Dropout layers in order;
    /// [`Self::dropout_masks_per_step`] of them); `None` draws them from the trainer's
    /// seeded generator.
    pub fn step(
        &mut self,
        batch: &ConditionBatch,
        dropout_masks: Option<Vec<Tensor<4>>>,
    ) -> Result<ConditionStepOutput> {
        let main = self.device.clone();
        self.sharded_step(batch, &[main], dropout_masks)
    }

    /// One iteration of `train()` data-parallel over `devices` (PyTorch's
    /// `DistributedDataParallel` on G and on D, without `SyncBatchNorm`): the batch is
    /// split along dim 0 into one contiguous shard per device ([`shard_ranges`]), and the
    /// step runs in [`Self::step`]'s order in two data-parallel halves, each shard on its
    /// own replica and thread:
    ///
    /// 1. tocg forward, the warping / CE losses and G's GAN pass through D, `loss_G`
    ///    backward -> G's gradients, averaged over the shards weighted by shard size;
    ///    Adam on G on the main device;
    /// 2. D on the detached fake (with `G_D_seperate`, a fresh forward of the updated
    ///    tocg) and on the real parse, `loss_D` backward -> D's gradients, averaged the
    ///    same way; Adam on D.
    ///
    /// Loss terms are shard-size-weighted means; `taps` are the shards' concatenated
    /// along dim 0. Buffers come from the first shard's replica (DDP's
    /// `broadcast_buffers`): tocg's BatchNorm running statistics and
    /// `num_batches_tracked`, and D's spectral-norm `u`, `v` (their power iteration reads
    /// only the weights, so every replica computes the same ones). BatchNorm normalises
    /// each shard with that shard's own batch statistics, so `k` devices with `B/k`
    /// samples do **not** compute the step of one device with `B`; what holds is that the
    /// gradients are the weighted mean of the single-device gradients of the shards,
    /// taken from the same weights.
    ///
    /// Dropout masks: `Some` takes whole-batch masks in [`Self::step`]'s order and layout
    /// (`[B, C, h, w]`) and gives each shard its rows. `None` draws: first one seed per
    /// shard after the first (shard order, 64 bits from two 32-bit draws of the
    /// trainer's generator), then shard 0 draws from the trainer's generator itself
    /// (which continues from there) and shard `i >= 1` from a generator seeded with its
    /// seed; one device draws exactly what [`Self::step`] does. A batch smaller than the
    /// device count is refused.
    pub fn step_data_parallel(
        &mut self,
        batch: &ConditionBatch,
        devices: &[Device],
        dropout_masks: Option<Vec<Tensor<4>>>,
    ) -> Result<ConditionStepOutput> {
        let devices: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
        self.sharded_step(batch, &devices, dropout_masks)
    }

    /// The condition generator in eval mode on a batch (validation): the warped cloth,
    /// white outside the warped cloth mask, that mask and the segmentation logits, all
    /// without autodiff.
    pub fn predict(&self, batch: &ConditionBatch) -> Result<ConditionPrediction> {
        self.check_batch(batch)?;
        let dev = self.device.clone();
        let mv = |t: &Tensor<4>| t.clone().to_device(&dev);
        let cloth = mv(&batch.cloth);
        let cm = mv(&batch.cloth_mask).greater_elem(0.5).float();
        let input1 = Tensor::cat(vec![cloth, cm], 1);
        let input2 = Tensor::cat(vec![mv(&batch.parse_agnostic), mv(&batch.densepose)], 1);
        let fwd = self.tocg.forward(input1, input2)?;
        let wcm = fwd.warped_cloth_mask.detach().inner();
        let wc = fwd.warped_cloth.detach().inner();
        let wc = wc * wcm.clone() + wcm.clone().neg().add_scalar(1.0);
        Ok(ConditionPrediction {
            warped_cloth: wc,
            warped_cloth_mask: wcm,
            fake_segmap: fwd.fake_segmap.detach().inner(),
        })
    }

    /// Each shard's Dropout mask source (see [`Self::step_data_parallel`]).
    fn mask_sources(
        &mut self,
        ranges: &[std::ops::Range<usize>],
        n: usize,
        given: Option<Vec<Tensor<4>>>,
    ) -> Result<Vec<DropoutMasks>> {
        let need = self.dropout_masks_per_step();
        let Some(v) = given else {
            let mut seeds = Vec::with_capacity(ranges.len());
            for _ in 1..ranges.len() {
                let hi = self.dropout_rng.next_u32() as u64;
                let lo = self.dropout_rng.next_u32() as u64;
                seeds.push(hi << 32 | lo);
            }
            return Ok(
                std::iter::once(DropoutMasks::Seeded(self.dropout_rng.clone()))
                    .chain(seeds.into_iter().map(|s| DropoutMasks::Seeded(Rng::new(s))))
                    .collect(),
            );
        };
        if v.len() != need {
            return Err(VtonError::invalid(
                "dropout masks",
                format!("{} given, the step has {need} Dropout calls", v.len()),
            ));
        }
        if ranges.len() == 1 {
            return Ok(vec![DropoutMasks::Given(VecDeque::from(v))]);
        }
        if let Some(m) = v.iter().find(|m| m.dims()[0] != n) {
            return Err(VtonError::Shape {
                what: "dropout mask".into(),
                expected: format!("batch dimension {n} (the batch's)"),
                actual: m.dims().to_vec(),
            });
        }
        Ok(ranges
            .iter()
            .map(|r| {
                DropoutMasks::Given(
                    v.iter()
                        .map(|m| m.clone().narrow(0, r.start, r.len()))
                        .collect(),
                )
            })
            .collect())
    }

    /// The step of [`Self::step`] / [`Self::step_data_parallel`] over autodiff devices
    /// (one shard on the main device is the single-device step).
    fn sharded_step(
        &mut self,
        batch: &ConditionBatch,
        devices: &[Device],
        dropout_masks: Option<Vec<Tensor<4>>>,
    ) -> Result<ConditionStepOutput> {
        self.check_batch(batch)?;
        let n = batch.cloth.dims()[0];
        let ranges = shard_ranges(n, devices.len())?;
        let single = ranges.len() == 1;
        let sources = self.mask_sources(&ranges, n, dropout_masks)?;
        let cut = |t: &Tensor<4>, r: &std::ops::Range<usize>| {
            if single {
                t.clone()
            } else {
                t.clone().narrow(0, r.start, r.len())
            }
        };
        let shards: Vec<((ConditionBatch, DropoutMasks), usize, Device)> = ranges
            .iter()
            .zip(devices)
            .zip(sources)
            .map(|((r, d), m)| {
                let b = ConditionBatch {
                    cloth: cut(&batch.cloth, r),
                    cloth_mask: cut(&batch.cloth_mask, r),
                    parse_agnostic: cut(&batch.parse_agnostic, r),
                    densepose: cut(&batch.densepose, r),
                    parse_onehot: cut(&batch.parse_onehot, r),
                    parse: cut(&batch.parse, r),
                    pcm: cut(&batch.pcm, r),
                    parse_cloth: cut(&batch.parse_cloth, r),
                };
                ((b, m), r.len(), d.clone())
            })
            .collect();
        let main = self.device.clone();

        // 1. G: losses, loss_G backward on every shard.
        let halves = {
            let ctx = Ctx {
                options: &self.options,
                parsed: self.parsed,
                params_d: &self.params_d,
            };
            let (tocg, d, vgg, params_g) = (&self.tocg, &self.d, &self.vgg, &self.params_g);
            let main = &main;
            // Replicas with parameter leaves of their own for every shard after the
            // first, made before the shard threads start (see `with_replicas`).
            let shards = with_replicas(tocg, shards);
            let shards = with_replicas(d, shards);
            run_shards(shards, |(((b, mut masks), tocg_r), d_r), dev| {
                let vgg_r;
                let tocg = tocg_r.as_ref().unwrap_or(tocg);
                let mut d = d_r.unwrap_or_else(|| d.clone());
                // VGG's weights are frozen (untracked): sharing them is safe.
                let vgg = if dev == main {
                    vgg
                } else {
                    vgg_r = vgg.fork(dev);
                    &vgg_r
                };
                let half = generator_half(&ctx, tocg, &mut d, vgg, &b, dev, &mut masks)?;
                let g = half.loss_g.backward();
                let grads = params_g.grads(tocg, &g);
                Ok(ShardOut {
                    terms: half.terms,
                    sub: half.sub,
                    taps: half.taps,
                    grads,
                    g_updates: half.g_updates,
                    d_updates: half.d_updates,
                    next: half.d_inputs.map(|i| (i, masks)),
                })
            })?
        };
        let mean = ShardMean::new(halves.iter().map(|h| h.0), &main)?;
        let mut terms = LossTerms::new();
        let mut sub = LossTerms::new();
        let mut grads_g = BTreeMap::new();
        let mut taps = Vec::with_capacity(halves.len());
        let mut g_updates = Vec::new();
        let mut d_updates = Vec::new();
        let mut next = Vec::with_capacity(halves.len());
        for (i, ((n, h), dev)) in halves.into_iter().zip(devices).enumerate() {
            mean.add_terms(&mut terms, n, h.terms);
            mean.add_terms(&mut sub, n, h.sub);
            mean.add_grads(&mut grads_g, n, h.grads);
            taps.push(h.taps);
            if i == 0 {
                g_updates = mean.to_main(h.g_updates);
                d_updates = mean.to_main(h.d_updates);
            }
            if let Some(x) = h.next {
                next.push((x, n, dev.clone()));
            }
        }
        check_finite(&terms, self.step)?;
        // optimizer_G.step() with loss_G's gradients; tocg's BatchNorm updates; D's
        // spectral u, v after G's GAN pass.
        let mut values = self.params_g.values(&self.tocg);
        self.adam_g.step(self.options.G_lr, &mut values, &grads_g)?;
        values.retain(|k, _| grads_g.contains_key(k));
        self.tocg = self.params_g.set(self.tocg.clone(), &values)?;
        self.apply_g_updates(g_updates);
        let (d, _) = self
            .params_d
            .apply_buffer_updates(self.d.clone(), d_updates);
        self.d = d;
        let mut masks_0 = None;

        // 2. D on the detached fake and the real parse, loss_D backward on every shard.
        let mut grads_d_out = None;
        if !next.is_empty() {
            let halves = {
                let ctx = Ctx {
                    options: &self.options,
                    parsed: self.parsed,
                    params_d: &self.params_d,
                };
                let (tocg, d, params_d) = (&self.tocg, &self.d, &self.params_d);
                let next = with_replicas(tocg, next);
                let next = with_replicas(d, next);
                run_shards(next, |(((inputs, mut masks), tocg_r), d_r), _dev| {
                    let inputs: DInputs = inputs;
                    let tocg = tocg_r.as_ref().unwrap_or(tocg);
                    let mut d = d_r.unwrap_or_else(|| d.clone());
                    let (fake, g_updates) = match &inputs.fake {
                        Some(f) => (f.clone(), Vec::new()),
                        None => separate_fake(tocg, &inputs)?,
                    };
                    let half = discriminator_half(&ctx, &mut d, inputs, fake, &mut masks)?;
                    let g = half.loss_d.backward();
                    let grads = params_d.grads(&d, &g);
                    Ok((half, grads, g_updates, masks))
                })?
            };
            let mut grads_d = BTreeMap::new();
            let mut g_updates = Vec::new();
            let mut d_updates = Vec::new();
            for (i, (n, (h, grads, gu, masks))) in halves.into_iter().enumerate() {
                mean.add_terms(&mut terms, n, h.terms);
                mean.add_terms(&mut sub, n, h.sub);
                mean.add_grads(&mut grads_d, n, grads);
                if let Some(t) = taps.get_mut(i) {
                    t.extend(h.taps);
                }
                if i == 0 {
                    g_updates = mean.to_main(gu);
                    d_updates = mean.to_main(h.d_updates);
                    masks_0 = Some(masks);
                }
            }
            check_finite(&terms, self.step)?;
            // optimizer_D.step() with loss_D's gradients only.
            let mut values = self.params_d.values(&self.d);
            self.adam_d.step(self.options.D_lr, &mut values, &grads_d)?;
            values.retain(|k, _| grads_d.contains_key(k));
            self.d = self.params_d.set(self.d.clone(), &values)?;
            let (d, _) = self
                .params_d
                .apply_buffer_updates(self.d.clone(), d_updates);
            self.d = d;
            self.apply_g_updates(g_updates);
            if self.keep_grads {
                grads_d_out = Some(grads_d);
            }
        }
        if let Some(DropoutMasks::Seeded(rng)) = masks_0 {
            self.dropout_rng = rng;
        }
        terms.extend(sub);
        self.step += 1;
        Ok(ConditionStepOutput {
            losses: terms,
            grads_g: self.keep_grads.then_some(grads_g),
            grads_d: grads_d_out,
            taps: concat_taps(taps, &main),
        })
    }
}

/// What a step reads besides the models.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    options: &'a ConditionTrainOptions,
    parsed: Parsed,
    params_d: &'a NamedParams,
}

/// D's inputs of the second half of a step (on the shard's device).
struct DInputs {
    input1: Tensor<4>,
    input2: Tensor<4>,
    label: Tensor<4>,
    /// `softmax(S).detach()`; `None` with `G_D_seperate` (tocg runs again after G's step).
    fake: Option<Tensor<4>>,
}

/// The generator half of a step on one shard.
struct GHalf {
    loss_g: Tensor<1>,
    /// `l1_cloth, vgg, tv, ce, (gan_g), G`.
    terms: LossTerms,
    /// The `sub.*` terms of G's half.
    sub: LossTerms,
    taps: BTreeMap<String, Tensor<4>>,
    /// tocg's BatchNorm updates.
    g_updates: Vec<BufferUpdate>,
    /// D's spectral `u`, `v` updates (G's GAN pass).
    d_updates: Vec<BufferUpdate>,
    /// `None` without a GAN loss.
    d_inputs: Option<DInputs>,
}

/// The discriminator half of a step on one shard.
struct DHalf {
    loss_d: Tensor<1>,
    /// `d_fake, d_real, D`.
    terms: LossTerms,
    sub: LossTerms,
    taps: BTreeMap<String, Tensor<4>>,
    d_updates: Vec<BufferUpdate>,
}

/// What the first half returns from a shard.
struct ShardOut {
    terms: LossTerms,
    sub: LossTerms,
    taps: BTreeMap<String, Tensor<4>>,
    grads: BTreeMap<String, Tensor<1>>,
    g_updates: Vec<BufferUpdate>,
    d_updates: Vec<BufferUpdate>,
    next: Option<(DInputs, DropoutMasks)>,
}

fn scalars(named: Vec<(String, Tensor<1>)>) -> Result<LossTerms> {
    named
        .into_iter()
        .map(|(k, t)| Ok((k, scalar(&t)?)))
        .collect()
}

/// A discriminator forward in train mode on `d`; spectral `u`, `v` are written back at
/// once (the next forward sees them, as the in-place update in PyTorch) and recorded in
/// `updates`.
fn d_forward(
    params_d: &NamedParams,
    d: &mut MultiscaleDiscriminator,
    x: Tensor<4>,
    masks: &mut DropoutMasks,
    updates: &mut Vec<BufferUpdate>,
) -> Result<Vec<Tensor<4>>> {
    let (out, u) = train_mode(|| d.forward(x, masks));
    let out = out?;
    let (nd, _) = params_d.apply_buffer_updates(d.clone(), u.clone());
    *d = nd;
    updates.extend(u);
    Ok(out)
}

/// `G_D_seperate`: tocg again (train mode, no grad), the raw segmap's softmax, detached.
fn separate_fake(
    tocg: &ConditionGenerator,
    inputs: &DInputs,
) -> Result<(Tensor<4>, Vec<BufferUpdate>)> {
    let (f2, up2) = train_mode(|| tocg.forward(inputs.input1.clone(), inputs.input2.clone()));
    Ok((softmax(f2?.fake_segmap, 1).detach(), up2))
}

/// G's half of `train()`'s iteration on one batch (shard) on `dev`: tocg forward in train
/// mode, the composition, occlusion, warping losses, CE, and G's GAN pass through `d`
/// (whose `u`, `v` advance); `loss_G` and what D's half needs.
fn generator_half(
    ctx: &Ctx,
    tocg: &ConditionGenerator,
    d: &mut MultiscaleDiscriminator,
    vgg: &VggLoss,
    batch: &ConditionBatch,
    dev: &Device,
    masks: &mut DropoutMasks,
) -> Result<GHalf> {
    let o = ctx.options;
    let p = ctx.parsed;
    let mv = |t: &Tensor<4>| t.clone().to_device(dev);
    let cloth = mv(&batch.cloth);
    let cm = mv(&batch.cloth_mask).greater_elem(0.5).float();
    let pcm = mv(&batch.pcm);
    let im_c = mv(&batch.parse_cloth);
    let label = mv(&batch.parse);
    let input1 = Tensor::cat(vec![cloth.clone(), cm.clone()], 1);
    let input2 = Tensor::cat(vec![mv(&batch.parse_agnostic), mv(&batch.densepose)], 1);
    let [n, _, ih, iw] = cloth.dims();

    let mut terms = LossTerms::new();
    let mut named: Vec<(String, Tensor<1>)> = Vec::new();
    let mut taps = BTreeMap::new();
    let mut d_updates = Vec::new();

    // tocg forward (train mode).
    let (fwd, g_updates) = train_mode(|| tocg.forward(input1.clone(), input2.clone()));
    let fwd = fwd?;
    let flow_list = fwd.flow_list;
    let wcm_raw = fwd.warped_cloth_mask;
    let s = match p.composition {
        Composition::None => fwd.fake_segmap,
        Composition::Detach => mul_cloth_channel(
            fwd.fake_segmap,
            wcm_raw.clone().detach().greater_elem(0.5).float(),
        ),
        Composition::WarpGrad => mul_cloth_channel(fwd.fake_segmap, wcm_raw.clone()),
    };
    let (mut wc, mut wcm) = (fwd.warped_cloth, wcm_raw.clone());
    if o.occlusion {
        wcm = remove_overlap(softmax(s.clone(), 1), wcm);
        wc = wc * wcm.clone() + wcm.clone().neg().add_scalar(1.0);
    }

    // Warping losses.
    let l1_final = losses::l1(wcm.clone(), pcm.clone());
    let (vgg_final, vgg_layers) = vgg.forward_terms(wc.clone(), im_c.clone())?;
    named.push(("sub.l1_cloth.final".into(), l1_final.clone()));
    named.push(("sub.vgg.final".into(), vgg_final.clone()));
    for (l, t) in vgg_layers.into_iter().enumerate() {
        named.push((format!("sub.vgg.final.layer{l}"), t));
    }
    let mut l1_cloth = l1_final;
    let mut loss_vgg = vgg_final;

    let nf = flow_list.len();
    let mut tv: Option<Tensor<1>> = None;
    let tv_one = |tv: Option<Tensor<1>>,
                  named: &mut Vec<(String, Tensor<1>)>,
                  i: usize,
                  mask: Option<(Tensor<4>, Tensor<4>)>,
                  scale: f64| {
        let (y, x) = tv_terms(&flow_list[i], mask);
        let (y, x) = if scale != 1.0 {
            (y.div_scalar(scale), x.div_scalar(scale))
        } else {
            (y, x)
        };
        named.push((format!("sub.tv.{i}.y"), y.clone()));
        named.push((format!("sub.tv.{i}.x"), x.clone()));
        add(tv, y) + x
    };
    match p.edge_tv {
        EdgeTv::NoEdge => {
            let first = if o.lasttvonly { nf - 1 } else { 0 };
            for i in first..nf {
                tv = Some(tv_one(tv, &mut named, i, None, 1.0));
            }
        }
        EdgeTv::LastOnly | EdgeTv::Weighted => {
            let levels: Vec<usize> = if p.edge_tv == EdgeTv::LastOnly {
                vec![nf - 1]
            } else {
                (0..nf).collect()
            };
            for i in levels {
                let [_, fh, fw, _] = flow_list[i].dims();
                let m = edge_masks(&wcm, fh, fw);
                let scale = if p.edge_tv == EdgeTv::Weighted {
                    2f64.powi(4 - i as i32)
                } else {
                    1.0
                };
                tv = Some(tv_one(tv, &mut named, i, Some(m), scale));
            }
            if o.add_lasttv {
                tv = Some(tv_one(tv, &mut named, nf - 1, None, 1.0));
            }
        }
    }
    let loss_tv = tv.ok_or_else(|| VtonError::invalid("flow_list", "no flows"))?;

    if o.interflowloss {
        let seg_soft = softmax(s.clone(), 1);
        for (i, flow) in flow_list.iter().take(nf - 1).enumerate() {
            let flow = flow.clone();
            let [_, fh, fw, _] = flow.dims();
            let grid = make_grid(n, ih, iw, dev);
            let nchw = flow.permute([0, 3, 1, 2]);
            let up = if p.inter_nearest {
                resize_nearest(nchw, ih, iw)
            } else {
                resize_bilinear(nchw, ih, iw)
            }
            .permute([0, 2, 3, 1]);
            let fx = up.clone().slice([0..n, 0..ih, 0..iw, 0..1]);
            let fy = up.slice([0..n, 0..ih, 0..iw, 1..2]);
            let flow_norm = Tensor::cat(
                vec![
                    fx.div_scalar((fw as f64 - 1.0) / 2.0),
                    fy.div_scalar((fh as f64 - 1.0) / 2.0),
                ],
                3,
            );
            let g = flow_norm + grid;
            let warped_c = hr_grid_sample(cloth.clone(), g.clone())?;
            let warped_cm = hr_grid_sample(cm.clone(), g)?;
            let warped_cm = remove_overlap(seg_soft.clone(), warped_cm);
            let div = 2f64.powi(4 - i as i32);
            let l1_i = losses::l1(warped_cm, pcm.clone());
            let (vgg_i, _) = vgg.forward_terms(warped_c, im_c.clone())?;
            named.push((format!("sub.l1_cloth.inter.{i}"), l1_i.clone()));
            named.push((format!("sub.vgg.inter.{i}"), vgg_i.clone()));
            l1_cloth = l1_cloth + l1_i.div_scalar(div);
            loss_vgg = loss_vgg + vgg_i.div_scalar(div);
        }
    }

    // Segmentation cross entropy.
    let target = mv(&batch.parse_onehot)
        .slice([0..n, 0..1, 0..ih, 0..iw])
        .reshape([n, ih, iw])
        .detach()
        .int();
    let ce = cross_entropy2d(s.clone(), target, None, true)?;

    let warp = l1_cloth.clone().mul_scalar(10.0)
        + loss_vgg.clone()
        + loss_tv.clone().mul_scalar(o.tvlambda);
    for (i, f) in flow_list.iter().enumerate() {
        taps.insert(format!("flow_list.{i}"), f.clone().detach());
    }
    taps.insert("fake_segmap".into(), s.clone().detach());
    taps.insert("warped_clothmask_raw".into(), wcm_raw.detach());
    taps.insert("warped_cloth".into(), wc.detach());
    taps.insert("warped_clothmask".into(), wcm.detach());

    if o.no_GAN_loss {
        let loss_g = warp + ce.clone().mul_scalar(o.CElamda);
        for (k, t) in [
            ("l1_cloth", &l1_cloth),
            ("vgg", &loss_vgg),
            ("tv", &loss_tv),
            ("ce", &ce),
            ("G", &loss_g),
        ] {
            terms.insert(k.into(), scalar(t)?);
        }
        return Ok(GHalf {
            loss_g,
            terms,
            sub: scalars(named)?,
            taps,
            g_updates,
            d_updates,
            d_inputs: None,
        });
    }
    let soft = softmax(s, 1);
    let soft_detached = soft.clone().detach();
    let pred_g = d_forward(
        ctx.params_d,
        d,
        Tensor::cat(vec![input1.clone(), input2.clone(), soft], 1),
        masks,
        &mut d_updates,
    )?;
    let gan_terms = gan_loss_per_scale(&pred_g, true, false, GanMode::Lsgan)?;
    let gan_g = sum_terms(&gan_terms);
    let loss_g = warp + (ce.clone().mul_scalar(o.CElamda) + gan_g.clone().mul_scalar(o.GANlambda));
    for (j, t) in gan_terms.into_iter().enumerate() {
        named.push((format!("sub.gan_g.{j}"), t));
    }
    for (j, t) in pred_g.iter().enumerate() {
        taps.insert(format!("D_pred_G.{j}"), t.clone().detach());
    }
    // D's passes on the detached map depend on no G parameter, so running them after
    // G's update (instead of before, as the script) changes nothing; their order among
    // D's forwards (spectral u, v) is the script's.
    let fake = (!o.G_D_seperate).then_some(soft_detached);
    for (k, t) in [
        ("l1_cloth", &l1_cloth),
        ("vgg", &loss_vgg),
        ("tv", &loss_tv),
        ("ce", &ce),
        ("gan_g", &gan_g),
        ("G", &loss_g),
    ] {
        terms.insert(k.into(), scalar(t)?);
    }
    Ok(GHalf {
        loss_g,
        terms,
        sub: scalars(named)?,
        taps,
        g_updates,
        d_updates,
        d_inputs: Some(DInputs {
            input1,
            input2,
            label,
            fake,
        }),
    })
}

/// D's half of the iteration on one shard: D on `fake` (detached) and on the real parse
/// (`u`, `v` advancing per forward), LSGAN `loss_D = d_fake + d_real`.
fn discriminator_half(
    ctx: &Ctx,
    d: &mut MultiscaleDiscriminator,
    inputs: DInputs,
    fake: Tensor<4>,
    masks: &mut DropoutMasks,
) -> Result<DHalf> {
    let DInputs {
        input1,
        input2,
        label,
        ..
    } = inputs;
    let mut d_updates = Vec::new();
    let mut named: Vec<(String, Tensor<1>)> = Vec::new();
    let mut taps = BTreeMap::new();
    let pred_fake = d_forward(
        ctx.params_d,
        d,
        Tensor::cat(vec![input1.clone(), input2.clone(), fake], 1),
        masks,
        &mut d_updates,
    )?;
    let pred_real = d_forward(
        ctx.params_d,
        d,
        Tensor::cat(vec![input1, input2, label], 1),
        masks,
        &mut d_updates,
    )?;
    let fake_terms = gan_loss_per_scale(&pred_fake, false, true, GanMode::Lsgan)?;
    let real_terms = gan_loss_per_scale(&pred_real, true, true, GanMode::Lsgan)?;
    let d_fake = sum_terms(&fake_terms);
    let d_real = sum_terms(&real_terms);
    let loss_d = d_fake.clone() + d_real.clone();
    for (j, t) in fake_terms.into_iter().enumerate() {
        named.push((format!("sub.d_fake.{j}"), t));
    }
    for (j, t) in real_terms.into_iter().enumerate() {
        named.push((format!("sub.d_real.{j}"), t));
    }
    for (j, t) in pred_fake.iter().enumerate() {
        taps.insert(format!("D_pred_fake.{j}"), t.clone().detach());
    }
    for (j, t) in pred_real.iter().enumerate() {
        taps.insert(format!("D_pred_real.{j}"), t.clone().detach());
    }
    let mut terms = LossTerms::new();
    for (k, t) in [("d_fake", &d_fake), ("d_real", &d_real), ("D", &loss_d)] {
        terms.insert(k.into(), scalar(t)?);
    }
    Ok(DHalf {
        loss_d,
        terms,
        sub: scalars(named)?,
        taps,
        d_updates,
    })
}

/// The shards' taps concatenated along dim 0 on the main device (one shard: as they are).
fn concat_taps(
    mut shards: Vec<BTreeMap<String, Tensor<4>>>,
    main: &Device,
) -> BTreeMap<String, Tensor<4>> {
    if shards.len() == 1 {
        return shards.remove(0);
    }
    let mut out = BTreeMap::new();
    let keys: Vec<String> = shards
        .first()
        .map(|s| s.keys().cloned().collect())
        .unwrap_or_default();
    for k in keys {
        let parts: Vec<Tensor<4>> = shards
            .iter_mut()
            .filter_map(|s| s.remove(&k))
            .map(|t| t.to_device(main))
            .collect();
        if parts.len() == shards.len() {
            out.insert(k, Tensor::cat(parts, 0));
        }
    }
    out
}

fn sum_terms(t: &[Tensor<1>]) -> Tensor<1> {
    let mut acc: Option<Tensor<1>> = None;
    for x in t {
        acc = Some(add(acc, x.clone()));
    }
    acc.expect("at least one discriminator scale")
}

fn export_adam(adam: &Adam, params: &NamedParams) -> Result<BTreeMap<String, HostAdamState>> {
    let mut out = BTreeMap::new();
    for (k, s) in &adam.state {
        out.insert(
            k.clone(),
            HostAdamState {
                exp_avg: params.to_host(k, &s.exp_avg)?,
                exp_avg_sq: params.to_host(k, &s.exp_avg_sq)?,
                step: s.step,
            },
        );
    }
    Ok(out)
}

fn import_adam(
    params: &NamedParams,
    st: &BTreeMap<String, HostAdamState>,
    device: &Device,
) -> Result<BTreeMap<String, AdamState>> {
    let trainable = params.trainable_keys();
    let mut out = BTreeMap::new();
    for (k, s) in st {
        if !trainable.contains(k) {
            return Err(VtonError::config(
                k.clone(),
                "optimizer state for a key that is not a trainable parameter",
            ));
        }
        out.insert(
            k.clone(),
            AdamState {
                exp_avg: params.from_host(k, &s.exp_avg, device)?,
                exp_avg_sq: params.from_host(k, &s.exp_avg_sq, device)?,
                step: s.step,
            },
        );
    }
    Ok(out)
}
