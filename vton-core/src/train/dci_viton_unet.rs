//! Training DCI-VITON's diffusion U-Net as `Train_DiffusionModel.ipynb` does.
//!
//! One [`DciUNetTrainer::step`] is the body of the notebook's training loop:
//!
//! 1. `t ~ randint(0, T)` (one timestep for the batch, shape `(1,)`, int64); the U-Net is
//!    called with `torch.tensor([t])`, which for a one-element `t` is again a `(1,)` int64
//!    tensor (checked by the fixture), broadcast over the batch;
//! 2. `z_t_original, noise = get_noisy_image(z_original, t)` (fresh standard-normal noise),
//!    `z_t_agnostic = get_noisy_image(z_input_viton, t, noise)` (the same noise);
//! 3. `out_original = unet(cat[z_t_original, z_input_viton, z_mask[:, :1]], t)` and
//!    `out_agnostic = unet(cat[z_t_agnostic, z_input_viton, z_mask[:, :1]], t)`;
//! 4. `z_denoise_agnostic = denoise_image(z_t_agnostic, t, out_agnostic)`,
//!    `denoise_agnostic = decode_latents(z_denoise_agnostic)` (`vae.decode(z / 0.18215)`);
//! 5. `loss = MSE(out_original, noise) + vgg_lambda * VGGLoss(denoise_agnostic, x_0_original)`
//!    with DCI-VITON's `VGGLoss` (VGG19 relu1_1..relu5_1, weights 1/32 .. 1, L1, the
//!    target detached, both inputs mapped `(X + 1) / 2` then ImageNet-normalised);
//! 6. `AdamW(lr 1e-5, betas (0.5, 0.999))`, the other arguments at torch's defaults
//!    (weight decay 0.01, eps 1e-8).
//!
//! The notebook's `decode_latents` runs under `torch.no_grad()`: the decoded image has no
//! graph, so the VGG term adds to the loss *value* but sends no gradient to the U-Net
//! (the fixture checks that the original's gradient is bit-identical to the MSE-only
//! one). [`DciUNetTrainOptions::perceptual_grad`] `= false` (the default) reproduces that;
//! `true` backpropagates the VGG term through the (frozen) VAE decoder and the agnostic
//! U-Net pass instead.
//!
//! Checkpoints: [`DciUNetTrainer::save_original`] writes the notebook's `torch.save`
//! dict (`epoch`, `model_state_dict`, `optimizer_state_dict` in torch's AdamW layout,
//! `loss` = the list of every step's loss), which the original `torch.load` and
//! [`DciVitonUNet::from_checkpoint`] read. The [`Trainer`] implementation (kind
//! `dci-viton-unet`) saves through [`TrainingState`] for the run loop.
//!
//! Data: [`open_dci_unet_data`] reads a VITON-HD layout folder and builds the notebook's
//! three tensors per pair (see [`DciUNetDataSource`]), then VAE-encodes them.
//!
//! Options by name (for `vton train dci-viton-unet`, the [`Opts`] pattern of
//! [`crate::train::drive`]): trainer `lr` (1e-5), `beta1` (0.5), `beta2` (0.999),
//! `weight_decay` (0.01), `eps` (1e-8), `vgg_lambda` (0.001), `timesteps` (1000),
//! `beta_schedule` (`cosine` | `linear`; `cosine`), `perceptual_grad` (false),
//! `num_groups` (8), `hidden_channels` (64) and `time_emb_dim` (256) for a fresh U-Net,
//! `vae` (a diffusers AutoencoderKL folder, required), `validation_timestep` (300);
//! data [`DCI_UNET_DATA_OPTIONS`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{Map, Value};

use crate::error::{Result, VtonError};
use crate::io::{read_image, read_keypoints, read_mask, ParseMap, PersonSelection, RgbImage};
use crate::models::dci_viton::{
    unet::DCI_UNET_DEPTH, DciVitonUNet, DciVitonUNetConfig, DciVitonUNetOptions, DciVitonWarping,
};
use crate::models::unet::Timesteps;
use crate::models::AutoencoderKL;
use crate::nn::{resize_bilinear, resize_nearest};
use crate::pipelines::dci_viton::{dci_composite, dci_warp_inputs, DciVitonInputs};
use crate::rng::{randn, Rng};
use crate::schedulers::dci_viton::{DciBetaSchedule, DciVitonScheduler};
use crate::train::checkpoint::{
    save_pth_nested, MomentState, OptimizerState, PthKey, PthValue, StateTensor, TrainingState,
};
use crate::train::data::{epoch_order, parse_pairs, DataLayout};
use crate::train::drive::{DataSpec, Opts, TrainSetup, DATA_OPTIONS};
use crate::train::drive_unet::draw_seed;
use crate::train::losses::{self, VggInputNorm, VggLoss, VggLossConfig};
use crate::train::optim::{Adam, AdamConfig, AdamState};
use crate::train::params::{tensor_to_vec, HostTensor, NamedParams};
use crate::train::run::{Batch, BatchSource, LossTerms, Trainer, Validation};
use crate::weights::Checkpoint;

/// Stable Diffusion's latent scale, as the notebook writes it.
pub const DCI_LATENT_SCALE: f32 = 0.18215;

/// The trainer kind's name in the run loop and on the command line.
pub const DCI_UNET_KIND: &str = "dci-viton-unet";

/// The notebook's settings (the defaults) and vton's additions.
#[derive(Debug, Clone, PartialEq)]
pub struct DciUNetTrainOptions {
    pub lr: f64,
    pub betas: (f64, f64),
    /// AdamW's default (the notebook does not set it).
    pub weight_decay: f64,
    pub eps: f64,
    pub vgg_lambda: f64,
    /// `NoiseScheduler(timesteps=...)`.
    pub timesteps: usize,
    pub beta_schedule: DciBetaSchedule,
    /// `false`: as the notebook (the VGG term has no gradient); `true`: through the VAE
    /// decoder and the agnostic U-Net pass.
    pub perceptual_grad: bool,
    /// The AdaGN group count (the original's literal 8).
    pub num_groups: usize,
    /// Seeds the draws of `t` and the noise (and a fresh initialisation).
    pub seed: u64,
}

impl Default for DciUNetTrainOptions {
    fn default() -> Self {
        DciUNetTrainOptions {
            lr: 1e-5,
            betas: (0.5, 0.999),
            weight_decay: 0.01,
            eps: 1e-8,
            vgg_lambda: 0.001,
            timesteps: 1000,
            beta_schedule: DciBetaSchedule::Cosine,
            perceptual_grad: false,
            num_groups: 8,
            seed: 0,
        }
    }
}

impl DciUNetTrainOptions {
    fn validate(&self) -> Result<()> {
        if !self.lr.is_finite() || self.lr <= 0.0 {
            return Err(VtonError::invalid("lr", "must be a positive number"));
        }
        if !self.vgg_lambda.is_finite() || self.vgg_lambda < 0.0 {
            return Err(VtonError::invalid(
                "vgg_lambda",
                "must be a non-negative number",
            ));
        }
        if self.timesteps == 0 {
            return Err(VtonError::invalid("timesteps", "must be at least 1"));
        }
        Ok(())
    }

    fn unet_options(&self) -> DciVitonUNetOptions {
        DciVitonUNetOptions {
            num_groups: self.num_groups,
            se_reduction: None,
        }
    }
}

/// One batch, as the notebook's loop variables: latents `[B, C, h, w]` (`z_original_image`,
/// `z_input_viton`), the latent-size mask `[B, >=1, h, w]` (`z_mask_image`; its first
/// channel is used) and the person image `[B, 3, h*f, w*f]` in `[-1, 1]` (`x_0_original`,
/// the VGG target; f the VAE's downsampling factor).
#[derive(Debug, Clone)]
pub struct DciUNetBatch {
    pub z_original: Tensor<4>,
    pub z_input: Tensor<4>,
    pub z_mask: Tensor<4>,
    pub x0_original: Tensor<4>,
}

/// The random draws of one step, given explicitly (parity with a recorded run).
#[derive(Debug, Clone)]
pub struct DciUNetDraw {
    pub t: i64,
    /// Shape of `z_original`.
    pub noise: Tensor<4>,
}

/// What one step computed.
#[derive(Debug, Clone)]
pub struct DciUNetStepOutput {
    /// `mse`, `vgg` (unweighted), `loss` (`mse + vgg_lambda * vgg`, in float32 as
    /// `loss.item()` reads it).
    pub losses: LossTerms,
    pub t: i64,
    /// Gradients of every parameter the loss reached, PyTorch layout, original keys (when
    /// asked for).
    pub grads: Option<BTreeMap<String, HostTensor>>,
}

/// What the agnostic branch gives back (validation).
#[derive(Debug, Clone)]
pub struct DciUNetPrediction {
    pub t: i64,
    /// `denoise_image(z_t_agnostic, t, unet(input_agnostic))`.
    pub z_denoise_agnostic: Tensor<4>,
    /// Its decode, `[B, 3, H, W]` (not clamped, as the notebook).
    pub denoise_agnostic: Tensor<4>,
}

/// Sets every parameter of a module on the autodiff device, frozen.
struct Frozen;

impl ModuleMapper for Frozen {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let id = param.id;
        let t = param.val().inner().autodiff();
        Param::initialized(id, t).set_require_grad(false)
    }
}

fn sha_dims(what: &str, expected: String, actual: [usize; 4]) -> VtonError {
    VtonError::Shape {
        what: what.into(),
        expected,
        actual: actual.to_vec(),
    }
}

/// `weights_init` of the notebook on a fresh U-Net state dict: every Conv2d /
/// ConvTranspose2d weight `xavier_normal_` (std `sqrt(2 / (fan_in + fan_out))`, fans from
/// torch's rule `size(1) * k * k`, `size(0) * k * k`), their biases 0; the Linear layers
/// (time MLP, AdaGN projections, SE) keep torch's default `U(-1/sqrt(fan_in), ..)`.
/// Seeded with vton's generator (the distribution is the original's, not its numbers).
pub fn dci_unet_weights_init(
    config: &DciVitonUNetConfig,
    opts: &DciVitonUNetOptions,
    seed: u64,
) -> Result<Checkpoint> {
    let base = DciVitonUNet::fresh_checkpoint(config, opts, seed)?;
    let mut rng = Rng::new(seed ^ 0x5eed_1e55_0000_0001);
    let keys: Vec<String> = base.keys().map(str::to_string).collect();
    let mut out = Vec::with_capacity(keys.len());
    let is_conv = |k: &str, base: &Checkpoint| {
        let w = k
            .strip_suffix(".bias")
            .map(|p| format!("{p}.weight"))
            .unwrap_or_else(|| k.to_string());
        base.shape(&w).is_some_and(|s| s.len() == 4)
    };
    for k in keys {
        let shape = base.shape(&k).unwrap_or(&[]).to_vec();
        let n: usize = shape.iter().product();
        let values = if is_conv(&k, &base) && k.ends_with(".weight") {
            let rf: usize = shape[2..].iter().product();
            let (fan_in, fan_out) = (shape[1] * rf, shape[0] * rf);
            let std = (2.0 / (fan_in + fan_out) as f64).sqrt() as f32;
            rng.normal_vec(n).into_iter().map(|v| v * std).collect()
        } else if is_conv(&k, &base) && k.ends_with(".bias") {
            vec![0f32; n]
        } else {
            base.read_f32(&k)?
        };
        out.push((k, shape, values));
    }
    Checkpoint::from_f32_tensors("fresh DCI-VITON UNet (weights_init)", out)
}

/// The original's `model.parameters()` order with shapes, zero-width SE bottlenecks
/// included (torch keeps them as `[0, C]` / `[C, 0]` parameters; vton's model has none).
pub fn dci_unet_torch_params(model: &DciVitonUNet) -> Vec<(String, Vec<usize>)> {
    let c = model.config();
    let temb = c.time_emb_dim;
    let h = c.hidden_channels;
    let mut v: Vec<(String, Vec<usize>)> = Vec::new();
    let lin = |v: &mut Vec<(String, Vec<usize>)>, k: &str, din: usize, dout: usize| {
        v.push((format!("{k}.weight"), vec![dout, din]));
        v.push((format!("{k}.bias"), vec![dout]));
    };
    lin(&mut v, "time_mlp.1", temb, 4 * temb);
    lin(&mut v, "time_mlp.3", 4 * temb, temb);
    let conv = |v: &mut Vec<(String, Vec<usize>)>, k: &str, cin: usize, cout: usize, ks: usize| {
        v.push((format!("{k}.weight"), vec![cout, cin, ks, ks]));
        v.push((format!("{k}.bias"), vec![cout]));
    };
    conv(&mut v, "upfeature.conv", c.input_channels, h, 1);
    let se = |v: &mut Vec<(String, Vec<usize>)>, p: &str, ch: usize, hidden: usize| {
        v.push((format!("{p}.se.fc.0.weight"), vec![hidden, ch]));
        v.push((format!("{p}.se.fc.2.weight"), vec![ch, hidden]));
    };
    let contracts = [
        &model.contract1,
        &model.contract2,
        &model.contract3,
        &model.contract4,
        &model.contract5,
        &model.contract6,
    ];
    for (i, blk) in contracts.iter().enumerate() {
        let k = i + 1;
        let (ci, co) = c.contract_channels(k);
        let p = format!("contract{k}");
        conv(&mut v, &format!("{p}.conv1"), ci, co, 3);
        lin(&mut v, &format!("{p}.norm1.time_proj"), temb, 2 * co);
        conv(&mut v, &format!("{p}.conv2"), co, co, 3);
        lin(&mut v, &format!("{p}.norm2.time_proj"), temb, 2 * co);
        conv(&mut v, &format!("{p}.residual_conv"), ci, co, 1);
        conv(&mut v, &format!("{p}.downsample"), co, co, 3);
        se(&mut v, &p, co, blk.se.hidden);
    }
    let expands = [
        &model.expand0,
        &model.expand1,
        &model.expand2,
        &model.expand3,
        &model.expand4,
        &model.expand5,
    ];
    for (j, blk) in expands.iter().enumerate() {
        let (ci, co) = c.expand_channels(j);
        let p = format!("expand{j}");
        v.push((format!("{p}.upsample.weight"), vec![ci, co, 2, 2]));
        v.push((format!("{p}.upsample.bias"), vec![co]));
        conv(&mut v, &format!("{p}.conv1"), 2 * co, co, 3);
        lin(&mut v, &format!("{p}.norm1.time_proj"), temb, 2 * co);
        conv(&mut v, &format!("{p}.conv2"), co, co, 3);
        lin(&mut v, &format!("{p}.norm2.time_proj"), temb, 2 * co);
        conv(&mut v, &format!("{p}.residual_conv"), ci, co, 1);
        se(&mut v, &p, co, blk.se.hidden);
    }
    conv(&mut v, "downfeature.conv", h, c.output_channels, 1);
    debug_assert_eq!(
        v.len(),
        2 + 2 + 2 + DCI_UNET_DEPTH * 14 + DCI_UNET_DEPTH * 14 + 2
    );
    v
}

/// Trains DCI-VITON's `UNet` with the notebook's step.
pub struct DciUNetTrainer {
    model: DciVitonUNet,
    params: NamedParams,
    /// The original's parameter list (order and shapes, zero-size ones included).
    torch_params: Vec<(String, Vec<usize>)>,
    adam: Adam,
    vae: AutoencoderKL,
    vgg: VggLoss,
    scheduler: DciVitonScheduler,
    options: DciUNetTrainOptions,
    step: usize,
    /// Every step's loss (the notebook's `losses` list, saved as `loss`).
    loss_history: Vec<f64>,
    device: Device,
}

/// DCI-VITON's `VGGLoss` settings: relu1_1..relu5_1, 1/32..1, `(X + 1) / 2` then ImageNet.
pub fn dci_vgg_config() -> VggLossConfig {
    VggLossConfig {
        input_norm: VggInputNorm::ImageNetFromSigned,
        ..VggLossConfig::cpvton()
    }
}

impl DciUNetTrainer {
    /// From the original's U-Net checkpoint (any layout [`DciVitonUNet::load`] reads),
    /// a loaded VAE (any device; moved to the training device, frozen) and a torchvision
    /// VGG19 checkpoint. The model trains on `device.autodiff()`.
    pub fn from_loaded(
        unet_ckpt: &Checkpoint,
        vae: &AutoencoderKL,
        vgg_ckpt: &Checkpoint,
        options: DciUNetTrainOptions,
        device: &Device,
    ) -> Result<Self> {
        options.validate()?;
        let adam = Adam::new(AdamConfig::adamw(
            options.betas.0,
            options.betas.1,
            options.weight_decay,
            options.eps,
        ))?;
        let ad = device.clone().autodiff();
        let (model, records) =
            DciVitonUNet::load_recorded(unet_ckpt, &options.unet_options(), &ad)?;
        let params = NamedParams::new(records)?;
        let torch_params = dci_unet_torch_params(&model);
        let vae = vae.clone().map(&mut Frozen);
        let vgg = VggLoss::from_loaded(vgg_ckpt, dci_vgg_config(), &ad)?;
        let scheduler = DciVitonScheduler::new(options.timesteps, options.beta_schedule)?;
        Ok(DciUNetTrainer {
            model,
            params,
            torch_params,
            adam,
            vae,
            vgg,
            scheduler,
            options,
            step: 0,
            loss_history: Vec::new(),
            device: ad,
        })
    }

    /// A fresh U-Net `UNet(config...)` initialised with the notebook's `weights_init`
    /// ([`dci_unet_weights_init`], seeded by `options.seed`).
    pub fn fresh(
        config: &DciVitonUNetConfig,
        vae: &AutoencoderKL,
        vgg_ckpt: &Checkpoint,
        options: DciUNetTrainOptions,
        device: &Device,
    ) -> Result<Self> {
        let ck = dci_unet_weights_init(config, &options.unet_options(), options.seed)?;
        Self::from_loaded(&ck, vae, vgg_ckpt, options, device)
    }

    pub fn model(&self) -> &DciVitonUNet {
        &self.model
    }

    pub fn params(&self) -> &NamedParams {
        &self.params
    }

    pub fn options(&self) -> &DciUNetTrainOptions {
        &self.options
    }

    pub fn scheduler(&self) -> &DciVitonScheduler {
        &self.scheduler
    }

    pub fn optimizer(&self) -> &Adam {
        &self.adam
    }

    pub fn vae(&self) -> &AutoencoderKL {
        &self.vae
    }

    /// Optimiser steps taken.
    pub fn step_count(&self) -> usize {
        self.step
    }

    /// The notebook's `losses` list (one value per step).
    pub fn loss_history(&self) -> &[f64] {
        &self.loss_history
    }

    /// The training (autodiff) device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The original's parameter names in `model.parameters()` order.
    pub fn torch_param_names(&self) -> Vec<String> {
        self.torch_params.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The draws of step `step`: `t` uniform in `0..T` and standard-normal noise of
    /// `shape`, from `(seed, step)` (a resumed run draws what an uninterrupted one would).
    pub fn draw(&self, step: usize, shape: [usize; 4]) -> DciUNetDraw {
        let s = |role| draw_seed(self.options.seed, 0x0dc1, step as u64, role);
        let mut rng = Rng::new(s(1));
        let t = ((rng.next_u32() as u64 * self.options.timesteps as u64) >> 32) as i64;
        DciUNetDraw {
            t,
            noise: randn(shape, s(2), &self.device),
        }
    }

    fn check_batch(&self, b: &DciUNetBatch) -> Result<()> {
        let zo = b.z_original.dims();
        let [n, c, h, w] = zo;
        if b.z_input.dims() != zo {
            return Err(sha_dims(
                "z_input (z_input_viton)",
                format!("{zo:?} (z_original's shape)"),
                b.z_input.dims(),
            ));
        }
        let zm = b.z_mask.dims();
        if zm[0] != n || zm[1] == 0 || zm[2] != h || zm[3] != w {
            return Err(sha_dims("z_mask", format!("[{n}, >=1, {h}, {w}]"), zm));
        }
        let cfg = self.model.config();
        if 2 * c + 1 != cfg.input_channels || c != cfg.output_channels {
            return Err(sha_dims(
                "z_original",
                format!(
                    "[B, C, h, w] with 2C + 1 = {} (the U-Net's input channels) and C = {} \
                     (its output channels)",
                    cfg.input_channels, cfg.output_channels
                ),
                zo,
            ));
        }
        let f = self.vae.downsample_factor();
        let x = b.x0_original.dims();
        if x != [n, 3, h * f, w * f] {
            return Err(sha_dims(
                "x0_original",
                format!("[{n}, 3, {}, {}] (the decoded latent's size)", h * f, w * f),
                x,
            ));
        }
        self.model.check_input([n, cfg.input_channels, h, w])
    }

    fn check_draw(&self, b: &DciUNetBatch, d: &DciUNetDraw) -> Result<()> {
        if d.t < 0 || d.t as usize >= self.options.timesteps {
            return Err(VtonError::invalid(
                "t",
                format!("{} is outside 0..{}", d.t, self.options.timesteps),
            ));
        }
        if d.noise.dims() != b.z_original.dims() {
            return Err(sha_dims(
                "noise",
                format!("{:?} (z_original's shape)", b.z_original.dims()),
                d.noise.dims(),
            ));
        }
        Ok(())
    }

    /// The forward of one step: `(mse, vgg, prediction)` tensors on the training device.
    fn forward(
        &self,
        b: &DciUNetBatch,
        d: &DciUNetDraw,
        track_agnostic: bool,
    ) -> Result<(Tensor<1>, Tensor<1>, DciUNetPrediction)> {
        self.check_batch(b)?;
        self.check_draw(b, d)?;
        let dev = &self.device;
        let zo = b.z_original.clone().inner().to_device(dev);
        let zi = b.z_input.clone().inner().to_device(dev);
        let zm = b.z_mask.clone().inner().to_device(dev).narrow(1, 0, 1);
        let x0 = b.x0_original.clone().inner().to_device(dev);
        let noise = d.noise.clone().inner().to_device(dev);
        let ts = [d.t];
        let zt_o = self.scheduler.get_noisy_image(&zo, &ts, &noise)?;
        let zt_a = self.scheduler.get_noisy_image(&zi, &ts, &noise)?;
        let tt = Timesteps::PerSample(vec![d.t as f64]);
        let in_o = Tensor::cat(vec![zt_o, zi.clone(), zm.clone()], 1);
        let in_a = Tensor::cat(vec![zt_a.clone(), zi, zm], 1);
        let out_o = self.model.forward(in_o, tt.clone())?;
        let mut out_a = self.model.forward(in_a, tt)?;
        if !track_agnostic {
            out_a = out_a.detach();
        }
        let z_den = self.scheduler.denoise_image(&zt_a, &ts, &out_a)?;
        let z_den = if track_agnostic {
            z_den
        } else {
            z_den.detach()
        };
        let img = self
            .vae
            .decode(z_den.clone().div_scalar(DCI_LATENT_SCALE))?;
        let vgg = self.vgg.forward(img.clone(), x0)?;
        let mse = losses::mse(out_o, noise);
        Ok((
            mse,
            vgg,
            DciUNetPrediction {
                t: d.t,
                z_denoise_agnostic: z_den,
                denoise_agnostic: img,
            },
        ))
    }

    /// One training step with the trainer's own draws ([`DciUNetTrainer::draw`]).
    pub fn step(&mut self, batch: &DciUNetBatch, keep_grads: bool) -> Result<DciUNetStepOutput> {
        let d = self.draw(self.step, batch.z_original.dims());
        self.step_with(batch, &d, keep_grads)
    }

    /// One training step with given draws (see the module documentation).
    pub fn step_with(
        &mut self,
        batch: &DciUNetBatch,
        draw: &DciUNetDraw,
        keep_grads: bool,
    ) -> Result<DciUNetStepOutput> {
        let (mse_t, vgg_t, _) = self.forward(batch, draw, self.options.perceptual_grad)?;
        let mse = tensor_to_vec(&mse_t)?[0];
        let vgg = tensor_to_vec(&vgg_t)?[0];
        // loss.item(): float32 `mse + (vgg_lambda * vgg)`.
        let lam = self.options.vgg_lambda as f32;
        let total = mse + lam * vgg;
        if !total.is_finite() {
            return Err(VtonError::Numerical {
                operation: format!("DCI-VITON U-Net training step {}", self.step),
                message: format!("the loss is {total} (mse {mse}, vgg {vgg})"),
            });
        }
        let loss_t = if self.options.perceptual_grad {
            mse_t + vgg_t.mul_scalar(lam)
        } else {
            // The VGG term is a constant of the graph (decode under no_grad).
            mse_t + vgg_t.detach().mul_scalar(lam)
        };
        let g = loss_t.backward();
        let grads = self.params.grads(&self.model, &g);
        drop(g);
        let kept = if keep_grads {
            let mut out = BTreeMap::new();
            for (k, t) in &grads {
                out.insert(k.clone(), self.params.to_host(k, t)?);
            }
            Some(out)
        } else {
            None
        };
        let mut values = self.params.values(&self.model);
        values.retain(|k, _| grads.contains_key(k));
        self.adam.step(self.options.lr, &mut values, &grads)?;
        self.model = self.params.set(self.model.clone(), &values)?;
        self.step += 1;
        self.loss_history.push(total as f64);
        let mut losses = LossTerms::new();
        losses.insert("mse".into(), mse as f64);
        losses.insert("vgg".into(), vgg as f64);
        losses.insert("loss".into(), total as f64);
        Ok(DciUNetStepOutput {
            losses,
            t: draw.t,
            grads: kept,
        })
    }

    /// The agnostic branch without training: the denoised prediction and its decode.
    pub fn predict(&self, batch: &DciUNetBatch, draw: &DciUNetDraw) -> Result<DciUNetPrediction> {
        let (_, _, p) = self.forward(batch, draw, false)?;
        Ok(DciUNetPrediction {
            t: p.t,
            z_denoise_agnostic: p.z_denoise_agnostic.inner(),
            denoise_agnostic: p.denoise_agnostic.inner(),
        })
    }

    /// The U-Net's state dict under the original keys (PyTorch layout), zero-width SE
    /// weights included as the original's `state_dict()` has them.
    pub fn state_dict(&self) -> Result<BTreeMap<String, HostTensor>> {
        let mut sd = self.params.state_dict(&self.model)?;
        for (k, shape) in &self.torch_params {
            if !sd.contains_key(k) {
                sd.insert(k.clone(), HostTensor::new(shape.clone(), Vec::new()));
            }
        }
        Ok(sd)
    }

    /// AdamW's state per original key (PyTorch layout): `(exp_avg, exp_avg_sq, step)`.
    /// Zero-size parameters get empty moments and the trainer's step count (torch gives
    /// them a state at every step).
    pub fn optimizer_state(&self) -> Result<BTreeMap<String, (HostTensor, HostTensor, u64)>> {
        let mut out = BTreeMap::new();
        for (k, shape) in &self.torch_params {
            if let Some(st) = self.adam.state.get(k) {
                out.insert(
                    k.clone(),
                    (
                        self.params.to_host(k, &st.exp_avg)?,
                        self.params.to_host(k, &st.exp_avg_sq)?,
                        st.step,
                    ),
                );
            } else if self.params.record(k).is_none() && self.step > 0 {
                let e = HostTensor::new(shape.clone(), Vec::new());
                out.insert(k.clone(), (e.clone(), e, self.step as u64));
            }
        }
        Ok(out)
    }

    /// Restores moments [`DciUNetTrainer::optimizer_state`] exported (zero-size entries
    /// are accepted and ignored) and the step count.
    pub fn load_optimizer_state(
        &mut self,
        state: &BTreeMap<String, (HostTensor, HostTensor, u64)>,
        step: usize,
    ) -> Result<()> {
        let mut new = BTreeMap::new();
        for (k, (m, v, n)) in state {
            if self.params.record(k).is_none() {
                if self
                    .torch_params
                    .iter()
                    .any(|(tk, s)| tk == k && s.contains(&0))
                {
                    continue;
                }
                return Err(VtonError::config(
                    k.clone(),
                    "optimiser state for a parameter the U-Net does not have",
                ));
            }
            new.insert(
                k.clone(),
                AdamState {
                    exp_avg: self.params.from_host(k, m, &self.device)?.inner(),
                    exp_avg_sq: self.params.from_host(k, v, &self.device)?.inner(),
                    step: *n,
                },
            );
        }
        self.adam.state = new;
        self.step = step;
        Ok(())
    }

    /// `viton_opt.state_dict()` as torch's AdamW lays it out: `state` keyed by the
    /// parameter's index in `model.parameters()`, `param_groups` with the settings.
    pub fn torch_optimizer_state_dict(&self) -> Result<PthValue> {
        let st = self.optimizer_state()?;
        let mut state = BTreeMap::new();
        for (i, (k, _)) in self.torch_params.iter().enumerate() {
            if let Some((m, v, n)) = st.get(k) {
                let mut e = BTreeMap::new();
                e.insert(
                    PthKey::from("step"),
                    PthValue::Tensor(StateTensor::scalar_f32(*n as f32)),
                );
                e.insert(
                    PthKey::from("exp_avg"),
                    PthValue::Tensor(StateTensor::from_host(m)?),
                );
                e.insert(
                    PthKey::from("exp_avg_sq"),
                    PthValue::Tensor(StateTensor::from_host(v)?),
                );
                state.insert(PthKey::Int(i as i64), PthValue::Dict(e));
            }
        }
        let o = &self.options;
        let mut g = BTreeMap::new();
        let s = |x: &str| PthKey::from(x);
        g.insert(s("lr"), PthValue::Float(o.lr));
        g.insert(
            s("betas"),
            PthValue::List(vec![PthValue::Float(o.betas.0), PthValue::Float(o.betas.1)]),
        );
        g.insert(s("eps"), PthValue::Float(o.eps));
        g.insert(s("weight_decay"), PthValue::Float(o.weight_decay));
        g.insert(s("amsgrad"), PthValue::Bool(false));
        g.insert(s("maximize"), PthValue::Bool(false));
        g.insert(s("foreach"), PthValue::None);
        g.insert(s("capturable"), PthValue::Bool(false));
        g.insert(s("differentiable"), PthValue::Bool(false));
        g.insert(s("fused"), PthValue::None);
        g.insert(s("decoupled_weight_decay"), PthValue::Bool(true));
        g.insert(
            s("params"),
            PthValue::List(
                (0..self.torch_params.len())
                    .map(|i| PthValue::Int(i as i64))
                    .collect(),
            ),
        );
        let mut top = BTreeMap::new();
        top.insert(s("state"), PthValue::Dict(state));
        top.insert(s("param_groups"), PthValue::List(vec![PthValue::Dict(g)]));
        Ok(PthValue::Dict(top))
    }

    /// Writes the notebook's checkpoint: `torch.save({'epoch', 'model_state_dict',
    /// 'optimizer_state_dict', 'loss'}, path)` (`loss` = every step's loss so far).
    pub fn save_original(&self, path: impl AsRef<Path>, epoch: usize) -> Result<()> {
        let mut sd = BTreeMap::new();
        for (k, h) in self.state_dict()? {
            sd.insert(k, StateTensor::from_host(&h)?);
        }
        let mut top = BTreeMap::new();
        top.insert("epoch".to_string(), PthValue::Int(epoch as i64));
        top.insert("model_state_dict".to_string(), PthValue::StateDict(sd));
        top.insert(
            "optimizer_state_dict".to_string(),
            self.torch_optimizer_state_dict()?,
        );
        top.insert(
            "loss".to_string(),
            PthValue::List(
                self.loss_history
                    .iter()
                    .map(|&v| PthValue::Float(v))
                    .collect(),
            ),
        );
        save_pth_nested(path, &top)
    }
}

// ---------------------------------------------------------------------------------------
// The run loop's trainer
// ---------------------------------------------------------------------------------------

/// Data option names [`open_dci_unet_data`] reads (accepted by the trainer's option check).
pub const DCI_UNET_DATA_OPTIONS: &[&str] = &[
    "vae",
    "warping",
    "image_size",
    "warp_size",
    "latent_dist",
    "validation_timestep",
    "shuffle",
    "val_count",
];

/// The trainer options by name (the notebook's defaults).
pub fn dci_unet_train_options(o: &Opts, seed: u64) -> Result<DciUNetTrainOptions> {
    let d = DciUNetTrainOptions::default();
    Ok(DciUNetTrainOptions {
        lr: o.f64("lr", d.lr)?,
        betas: (o.f64("beta1", d.betas.0)?, o.f64("beta2", d.betas.1)?),
        weight_decay: o.f64("weight_decay", d.weight_decay)?,
        eps: o.f64("eps", d.eps)?,
        vgg_lambda: o.f64("vgg_lambda", d.vgg_lambda)?,
        timesteps: o.usize("timesteps", d.timesteps)?,
        beta_schedule: DciBetaSchedule::from_name(&o.string("beta_schedule", "cosine")?)?,
        perceptual_grad: o.bool("perceptual_grad", d.perceptual_grad)?,
        num_groups: o.usize("num_groups", d.num_groups)?,
        seed,
    })
}

fn vae_dir(p: &Path) -> PathBuf {
    if p.join("vae").join("config.json").is_file() {
        p.join("vae")
    } else {
        p.to_path_buf()
    }
}

/// `vton train dci-viton-unet`: [`DciUNetTrainer`] behind the run loop's [`Trainer`].
/// Batch keys: `z_original`, `z_input`, `z_mask`, `x0_original` (what
/// [`open_dci_unet_data`] yields), optional `t` (`[1, 1, 1, 1]`) and `noise` to replay draws.
pub struct DciUNetDrive {
    trainer: DciUNetTrainer,
    raw_options: Map<String, Value>,
    validation_timestep: usize,
    vae: AutoencoderKL,
    vgg: Checkpoint,
    device: Device,
}

impl DciUNetDrive {
    /// From a setup: `weights` the original's U-Net checkpoint (none: a fresh `UNet(9, 4,
    /// hidden_channels, time_emb_dim)` with `weights_init`), `vgg` the torchvision VGG19
    /// (required), the option `vae` (required).
    pub fn new(setup: &TrainSetup, device: &Device) -> Result<Self> {
        let o = Opts::new(&setup.options);
        let options = dci_unet_train_options(&o, setup.seed)?;
        let hidden = o.usize("hidden_channels", 64)?;
        let temb = o.usize("time_emb_dim", 256)?;
        let validation_timestep = o.usize("validation_timestep", 300)?;
        let vae_path = o.string("vae", "")?;
        let mut also: Vec<&str> = DATA_OPTIONS.to_vec();
        also.extend_from_slice(DCI_UNET_DATA_OPTIONS);
        o.finish(DCI_UNET_KIND, &also)?;
        if vae_path.is_empty() {
            return Err(VtonError::invalid(
                "vae",
                "training dci-viton-unet needs --opt vae=<AutoencoderKL folder>",
            ));
        }
        if validation_timestep >= options.timesteps {
            return Err(VtonError::invalid(
                "validation_timestep",
                format!(
                    "{validation_timestep} is not below timesteps {}",
                    options.timesteps
                ),
            ));
        }
        let vgg_path = setup.vgg.as_ref().ok_or_else(|| {
            VtonError::invalid(
                "vgg",
                "training dci-viton-unet needs --vgg (torchvision VGG19)",
            )
        })?;
        let vgg = Checkpoint::open(vgg_path)?;
        let vae = AutoencoderKL::from_pretrained(vae_dir(Path::new(&vae_path)), device)?;
        let trainer = match setup.initial_weights("upfeature.conv.weight")? {
            Some(ck) => DciUNetTrainer::from_loaded(&ck, &vae, &vgg, options, device)?,
            None => {
                let cfg = DciVitonUNetConfig {
                    input_channels: 2 * vae.config.latent_channels + 1,
                    output_channels: vae.config.latent_channels,
                    hidden_channels: hidden,
                    time_emb_dim: temb,
                };
                DciUNetTrainer::fresh(&cfg, &vae, &vgg, options, device)?
            }
        };
        Ok(DciUNetDrive {
            trainer,
            raw_options: setup.options.clone(),
            validation_timestep,
            vae,
            vgg,
            device: device.clone(),
        })
    }

    pub fn trainer(&self) -> &DciUNetTrainer {
        &self.trainer
    }

    pub fn trainer_mut(&mut self) -> &mut DciUNetTrainer {
        &mut self.trainer
    }

    /// A run-loop batch as a [`DciUNetBatch`] (+ the draws it carries, if any).
    pub fn batch(&self, batch: &Batch) -> Result<(DciUNetBatch, Option<DciUNetDraw>)> {
        let get = |k: &str| {
            batch.get(k).cloned().ok_or_else(|| {
                VtonError::invalid(
                    "batch",
                    format!(
                        "no '{k}' in the batch (it has {})",
                        batch.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })
        };
        let b = DciUNetBatch {
            z_original: get("z_original")?,
            z_input: get("z_input")?,
            z_mask: get("z_mask")?,
            x0_original: get("x0_original")?,
        };
        let draw = match (batch.get("t"), batch.get("noise")) {
            (Some(t), Some(n)) => {
                let v = tensor_to_vec(t)?;
                let t = *v.first().ok_or_else(|| VtonError::invalid("t", "empty"))?;
                Some(DciUNetDraw {
                    t: t as i64,
                    noise: n.clone(),
                })
            }
            _ => None,
        };
        Ok((b, draw))
    }
}

impl Trainer for DciUNetDrive {
    fn kind(&self) -> &'static str {
        DCI_UNET_KIND
    }

    /// `diffusion_unet.pth`: the notebook's `{'epoch', 'model_state_dict',
    /// 'optimizer_state_dict', 'loss'}` (`epoch` holds the optimiser steps done: the loop
    /// counts steps, not passes).
    fn export_original(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir).map_err(|e| VtonError::io(dir, e))?;
        let path = dir.join("diffusion_unet.pth");
        self.trainer.save_original(&path, self.steps_done())?;
        Ok(vec![path])
    }

    fn train_step(&mut self, batch: &Batch) -> Result<LossTerms> {
        let (b, d) = self.batch(batch)?;
        let out = match d {
            Some(d) => self.trainer.step_with(&b, &d, false)?,
            None => self.trainer.step(&b, false)?,
        };
        let mut l = out.losses;
        l.insert("t".into(), out.t as f64);
        Ok(l)
    }

    fn steps_done(&self) -> usize {
        self.trainer.step_count()
    }

    fn current_lr(&self) -> f64 {
        self.trainer.options.lr
    }

    fn validate(&self, batch: &Batch) -> Result<Validation> {
        let (b, d) = self.batch(batch)?;
        let d = match d {
            Some(d) => d,
            None => {
                // A fixed timestep and noise: validation panels are comparable over a run.
                let mut d = self.trainer.draw(0, b.z_original.dims());
                d.t = self.validation_timestep as i64;
                d
            }
        };
        let p = self.trainer.predict(&b, &d)?;
        let pred = p.denoise_agnostic.clamp(-1.0, 1.0);
        let target = b.x0_original.clone().inner();
        let mut panel = Vec::new();
        if let Some(x) = batch.get("input_viton") {
            panel.push(("input (agnostic + cloth)".to_string(), x.clone().inner()));
        }
        if let Some(m) = batch.get("mask") {
            panel.push(("agnostic mask".to_string(), m.clone().inner()));
        }
        panel.push((format!("denoised agnostic (t={})", d.t), pred.clone()));
        panel.push(("target".to_string(), target.clone()));
        Ok(Validation {
            prediction: pred,
            target,
            panel,
        })
    }

    fn training_state(&self) -> Result<TrainingState> {
        let t = &self.trainer;
        let mut model = BTreeMap::new();
        for (k, h) in t.state_dict()? {
            model.insert(k, StateTensor::from_host(&h)?);
        }
        let mut state = BTreeMap::new();
        for (k, (m, v, n)) in t.optimizer_state()? {
            state.insert(
                k,
                MomentState {
                    exp_avg: StateTensor::from_host(&m)?,
                    exp_avg_sq: StateTensor::from_host(&v)?,
                    step: n,
                },
            );
        }
        let o = &t.options;
        let mut optimizers = BTreeMap::new();
        optimizers.insert(
            "adamw".to_string(),
            OptimizerState {
                state,
                config: serde_json::json!({"class": "AdamW", "lr": o.lr, "betas": [o.betas.0, o.betas.1],
                    "eps": o.eps, "weight_decay": o.weight_decay}),
            },
        );
        let mut models = BTreeMap::new();
        models.insert("model".to_string(), model);
        Ok(TrainingState {
            global_step: t.step as u64,
            models,
            optimizers,
            lr_step: t.step as u64,
            rng: BTreeMap::new(),
            options: Value::Object(self.raw_options.clone()),
            extra: serde_json::json!({"kind": DCI_UNET_KIND, "loss": t.loss_history}),
        })
    }

    fn restore(&mut self, state: TrainingState) -> Result<()> {
        let sd = state
            .models
            .get("model")
            .ok_or_else(|| VtonError::config("model", "the checkpoint has no such model"))?;
        let ck = Checkpoint::from_f32_tensors(
            "checkpoint model",
            sd.iter()
                .map(|(k, t)| (k.clone(), t.shape().to_vec(), t.to_f32_vec())),
        )?;
        let mut trainer = DciUNetTrainer::from_loaded(
            &ck,
            &self.vae,
            &self.vgg,
            self.trainer.options.clone(),
            &self.device,
        )?;
        let adam = state
            .optimizers
            .get("adamw")
            .ok_or_else(|| VtonError::config("adamw", "the checkpoint has no optimiser state"))?;
        let mut st = BTreeMap::new();
        for (k, m) in &adam.state {
            st.insert(
                k.clone(),
                (m.exp_avg.to_host(), m.exp_avg_sq.to_host(), m.step),
            );
        }
        trainer.load_optimizer_state(&st, state.global_step as usize)?;
        if let Some(l) = state.extra.get("loss").and_then(Value::as_array) {
            trainer.loss_history = l.iter().filter_map(Value::as_f64).collect();
        }
        self.trainer = trainer;
        Ok(())
    }
}

/// Builds the run loop's trainer for a setup (what `drive::build_trainer` calls).
pub fn build_dci_unet_trainer(setup: &TrainSetup, device: &Device) -> Result<Box<dyn Trainer>> {
    Ok(Box::new(DciUNetDrive::new(setup, device)?))
}

// ---------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------

/// Where the pasted cloth of `inputs_viton` comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum DciClothSource {
    /// The warping network (the original's checkpoint): the pair's cloth warped onto the
    /// person and pasted where the warped mask is above 0.5, as `viton_pipeline.py` does.
    Warping(PathBuf),
    /// The person's own garment: the agnostic image with the pixels of the parse's
    /// upper-clothes, dress and coat labels (LIP 5, 6, 7) put back (a perfect warp).
    GroundTruth,
}

/// Data-side settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DciUNetDataOptions {
    /// `image_size` (512 in the original; the VAE's factor must divide it).
    pub image_size: usize,
    /// `warp_size` (256 in the original).
    pub warp_size: usize,
    pub cloth: DciClothSource,
    /// The AutoencoderKL folder.
    pub vae: PathBuf,
    /// `latent_dist=sample` (the notebook's `latent_dist.sample()`, seeded) or `mean`.
    pub latent_mean: bool,
    pub shuffle: bool,
    pub val_count: usize,
    pub validation_timestep: usize,
}

/// Parses the data options (unknown names are left to the trainer's check).
pub fn dci_unet_data_options(map: &Map<String, Value>) -> Result<DciUNetDataOptions> {
    let o = Opts::new(map);
    let vae = o.string("vae", "")?;
    if vae.is_empty() {
        return Err(VtonError::invalid(
            "vae",
            "the dci-viton-unet data needs --opt vae=<AutoencoderKL folder>",
        ));
    }
    let warping = o.string("warping", "")?;
    let latent_mean = match o.string("latent_dist", "sample")?.as_str() {
        "sample" => false,
        "mean" | "mode" => true,
        other => {
            return Err(VtonError::invalid(
                "latent_dist",
                format!("'{other}' is not one of sample, mean"),
            ))
        }
    };
    Ok(DciUNetDataOptions {
        image_size: o.usize("image_size", 512)?,
        warp_size: o.usize("warp_size", 256)?,
        cloth: if warping.is_empty() {
            DciClothSource::GroundTruth
        } else {
            DciClothSource::Warping(PathBuf::from(warping))
        },
        vae: vae_dir(Path::new(&vae)),
        latent_mean,
        shuffle: o.bool("shuffle", true)?,
        val_count: o.usize("val_count", 4)?,
        validation_timestep: o.usize("validation_timestep", 300)?,
    })
}

/// One pair's notebook tensors at `image_size` (`[1, C, S, S]`, `[-1, 1]`).
#[derive(Debug, Clone)]
pub struct DciUNetSample {
    /// `original_images`: the person.
    pub original: Tensor<4>,
    /// `inputs_viton`: the agnostic person with the cloth pasted in.
    pub input_viton: Tensor<4>,
    /// `mask_images`: the agnostic mask (one channel).
    pub mask: Tensor<4>,
}

/// VITON-HD pairs turned into the notebook's batches and VAE-encoded:
///
/// * `original_images`: `image/<person>` resized to `image_size` square (bilinear, the
///   aspect not kept, as the pipeline resizes), `[-1, 1]`;
/// * `inputs_viton`: DCI-VITON's agnostic image (from `image-parse-v3/` and
///   `openpose_json/`, [`crate::pipelines::dci_viton::dci_agnostic`]) with the cloth
///   pasted in ([`DciClothSource`]; the warping network also reads `image-densepose/`,
///   `cloth/`, `cloth-mask/`), resized to `image_size`, `[-1, 1]`;
/// * `mask_images`: the agnostic mask at `image_size`, `[-1, 1]` (the pipeline's mask);
///
/// then `z = vae.encode(x).latent_dist.sample() * 0.18215` (seeded per batch and role)
/// and the mask resized `nearest` to the latent size. Batch keys: `z_original`,
/// `z_input`, `z_mask`, `x0_original`, `input_viton`, `mask` (the images, for panels).
pub struct DciUNetDataSource {
    layout: DataLayout,
    pairs: Vec<(String, String)>,
    vae: AutoencoderKL,
    warping: Option<DciVitonWarping>,
    options: DciUNetDataOptions,
    device: Device,
    batch_size: usize,
    seed: u64,
    stream: u64,
    shuffle: bool,
    /// The index of the next sample slot (batch * batch_size + i, skips included).
    cursor: usize,
    next_batch: u64,
    skip_bad: bool,
    skipped: Vec<(String, String)>,
    limit: Option<usize>,
}

const GT_CLOTH_LABELS: [u8; 3] = [5, 6, 7];

fn u8_rgb(img: &RgbImage) -> crate::io::pil::U8Image {
    crate::io::pil::U8Image {
        width: img.width,
        height: img.height,
        channels: 3,
        data: img
            .data
            .iter()
            .map(|&v| (v * 255.0).round().clamp(0.0, 255.0) as u8)
            .collect(),
    }
}

/// PIL-bilinear resize of an RGB image to `size` square, as `[1, 3, S, S]` in `[-1, 1]`.
fn pil_signed(img: &RgbImage, size: usize, device: &Device) -> Tensor<4> {
    let r = crate::io::pil::pil_resize_bilinear(&u8_rgb(img), size, size);
    let n = size * size;
    let mut chw = vec![0f32; 3 * n];
    for (k, px) in r.data.chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            chw[c * n + k] = v as f32 / 255.0 * 2.0 - 1.0;
        }
    }
    Tensor::from_data(TensorData::new(chw, [1, 3, size, size]), device)
}

impl DciUNetDataSource {
    pub fn options(&self) -> &DciUNetDataOptions {
        &self.options
    }

    pub fn len(&self) -> usize {
        self.limit.unwrap_or(self.pairs.len()).min(self.pairs.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The notebook's three images for pair `index` (no encoding).
    pub fn sample(&self, index: usize) -> Result<DciUNetSample> {
        let (p, c) = self.pairs.get(index).ok_or_else(|| {
            VtonError::invalid(
                "index",
                format!("{index} is outside 0..{}", self.pairs.len()),
            )
        })?;
        let d = &self.layout.data;
        let stem = |n: &str| {
            Path::new(n)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let person = read_image(d.join("image").join(p))?;
        let parse = ParseMap::read(d.join("image-parse-v3").join(format!("{}.png", stem(p))))?;
        let pose = read_keypoints(
            d.join("openpose_json")
                .join(format!("{}_keypoints.json", stem(p))),
            PersonSelection::Largest,
        )?;
        let dense = read_image(d.join("image-densepose").join(format!("{}.jpg", stem(p))))?;
        let cloth = read_image(d.join("cloth").join(c))?;
        let cloth_mask = read_mask(d.join("cloth-mask").join(c))?;
        let dev = &self.device;
        let size = self.options.image_size;
        let inputs = DciVitonInputs {
            person: &person,
            parse: &parse,
            pose: &pose,
            densepose: &dense,
            garment: &cloth,
            garment_mask: &cloth_mask,
        };
        let (agn, w) = dci_warp_inputs(&inputs, self.options.warp_size, size, dev)?;
        let input_viton = match &self.warping {
            Some(net) => {
                let (wc, wcm, _) = net.forward(w.input_1, w.input_2)?;
                let comp = dci_composite(w.agnostic, wc, wcm);
                resize_bilinear(comp, size, size)
                    .mul_scalar(2.0)
                    .sub_scalar(1.0)
            }
            None => {
                let mut img = agn.agnostic.clone();
                for (k, &l) in parse.labels.iter().enumerate() {
                    if GT_CLOTH_LABELS.contains(&l) {
                        img.data[k * 3..k * 3 + 3].copy_from_slice(&person.data[k * 3..k * 3 + 3]);
                    }
                }
                pil_signed(&img, size, dev)
            }
        };
        Ok(DciUNetSample {
            original: pil_signed(&person, size, dev),
            input_viton,
            mask: w.agnostic_mask,
        })
    }

    fn latents(&self, x: Tensor<4>, seed: u64) -> Result<Tensor<4>> {
        let post = self.vae.encode(x)?;
        let z = if self.options.latent_mean {
            post.mode()
        } else {
            post.sample(seed)
        };
        Ok(z.mul_scalar(DCI_LATENT_SCALE))
    }

    /// Encodes samples as batch `k` (the notebook's `encode_latents` and mask resize).
    pub fn encode(&self, samples: &[DciUNetSample], k: u64) -> Result<Batch> {
        if samples.is_empty() {
            return Err(VtonError::invalid("batch", "no sample"));
        }
        let cat = |f: &dyn Fn(&DciUNetSample) -> Tensor<4>| {
            Tensor::cat(samples.iter().map(f).collect::<Vec<_>>(), 0)
        };
        let orig = cat(&|s| s.original.clone());
        let inp = cat(&|s| s.input_viton.clone());
        let mask = cat(&|s| s.mask.clone());
        let s = |role| draw_seed(self.seed, self.stream, k, role);
        let z_o = self.latents(orig.clone(), s(11))?;
        let z_i = self.latents(inp.clone(), s(12))?;
        let [_, _, lh, lw] = z_o.dims();
        let z_m = resize_nearest(mask.clone(), lh, lw);
        let mut b = Batch::new();
        b.insert("z_original".into(), z_o);
        b.insert("z_input".into(), z_i);
        b.insert("z_mask".into(), z_m);
        b.insert("x0_original".into(), orig);
        b.insert("input_viton".into(), inp);
        b.insert("mask".into(), mask);
        Ok(b)
    }
}

impl BatchSource for DciUNetDataSource {
    fn next_batch(&mut self) -> Result<Batch> {
        let n = self.len();
        if n == 0 {
            return Err(VtonError::invalid("dataset", "no pair to train on"));
        }
        let mut samples = Vec::with_capacity(self.batch_size);
        let mut failures = 0usize;
        while samples.len() < self.batch_size {
            let slot = self.cursor;
            self.cursor += 1;
            let (epoch, pos) = (slot / n, slot % n);
            let idx = epoch_order(n, self.shuffle, self.seed, epoch)[pos];
            match self.sample(idx) {
                Ok(s) => samples.push(s),
                Err(e) if self.skip_bad => {
                    self.skipped
                        .push((format!("#{idx} {}", self.pairs[idx].0), e.to_string()));
                    failures += 1;
                    if failures >= n {
                        return Err(VtonError::invalid(
                            "dataset",
                            format!("every pair failed to load; last: {e}"),
                        ));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let k = self.next_batch;
        self.next_batch += 1;
        self.encode(&samples, k)
    }

    fn skipped(&self) -> Vec<(String, String)> {
        self.skipped.clone()
    }
}

/// The training batches (shuffled by `spec.seed`, resumed at `spec.start_batch`) and a
/// validation source (the first `val_count` pairs in order, one batch), from a VITON-HD
/// layout folder. `setup_options` is the run's option map (the trainer's names are
/// accepted); it must name the `vae`, and may name a `warping` checkpoint.
#[allow(clippy::type_complexity)] // the signature drive::open_data returns
pub fn open_dci_unet_data(
    spec: &DataSpec,
    setup_options: &Map<String, Value>,
    device: &Device,
) -> Result<(Box<dyn BatchSource>, Option<Box<dyn BatchSource>>)> {
    let mut merged = setup_options.clone();
    for (k, v) in &spec.options {
        merged.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let options = dci_unet_data_options(&merged)?;
    if spec.batch_size == 0 {
        return Err(VtonError::invalid("batch_size", "must be at least 1"));
    }
    let open = |stream: u64, shuffle: bool, bs: usize, limit: Option<usize>, start: usize| {
        DciUNetDataSource::open(
            &spec.root,
            options.clone(),
            bs,
            spec.seed,
            stream,
            shuffle,
            spec.skip_bad,
            limit,
            start,
            device,
        )
    };
    let train = open(0, options.shuffle, spec.batch_size, None, spec.start_batch)?;
    let val_count = options.val_count.min(train.pairs.len()).max(1);
    let val = open(1, false, val_count, Some(val_count), 0)?;
    Ok((Box::new(train), Some(Box::new(val))))
}

impl DciUNetDataSource {
    /// Opens a VITON-HD layout folder ([`DataLayout::detect`]).
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        root: impl AsRef<Path>,
        options: DciUNetDataOptions,
        batch_size: usize,
        seed: u64,
        stream: u64,
        shuffle: bool,
        skip_bad: bool,
        limit: Option<usize>,
        start_batch: usize,
        device: &Device,
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(VtonError::invalid("batch_size", "must be at least 1"));
        }
        let layout = DataLayout::detect(root)?;
        let bytes =
            std::fs::read(&layout.pairs_file).map_err(|e| VtonError::io(&layout.pairs_file, e))?;
        let pairs = parse_pairs(&bytes, &layout.pairs_file.display().to_string())?;
        let vae = AutoencoderKL::from_pretrained(&options.vae, device)?;
        let f = vae.downsample_factor();
        if options.image_size == 0 || !options.image_size.is_multiple_of(f) {
            return Err(VtonError::invalid(
                "image_size",
                format!(
                    "{} is not a positive multiple of the VAE's downsampling factor {f}",
                    options.image_size
                ),
            ));
        }
        let warping = match &options.cloth {
            DciClothSource::Warping(p) => Some(DciVitonWarping::from_checkpoint(p, device)?),
            DciClothSource::GroundTruth => None,
        };
        Ok(DciUNetDataSource {
            layout,
            pairs,
            vae,
            warping,
            options,
            device: device.clone(),
            batch_size,
            seed,
            stream,
            shuffle,
            cursor: start_batch * batch_size,
            next_batch: start_batch as u64,
            skip_bad,
            skipped: Vec::new(),
            limit,
        })
    }
}

/// Keys of the trainer's state that are not parameters of vton's model (zero-width SE).
pub fn zero_size_keys(trainer: &DciUNetTrainer) -> BTreeSet<String> {
    trainer
        .torch_params
        .iter()
        .filter(|(_, s)| s.contains(&0))
        .map(|(k, _)| k.clone())
        .collect()
}
