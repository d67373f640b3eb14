//! `vton train unet`: fine-tuning a diffusers inpainting U-Net on VITON-HD-layout data
//! through the loop in [`crate::train::run`].
//!
//! Two entry points, called by [`crate::train::drive`]:
//! - [`build_unet_trainer`]: a [`UNetDrive`] (the [`Trainer`]) over [`UNetTrainer`];
//! - [`open_unet_data`]: the training and validation [`BatchSource`]s ([`UNetDataSource`]).
//!
//! # Weights
//!
//! The setup's `weights` (or the option `pretrained_model_name_or_path`, diffusers'
//! name) is a diffusers pipeline folder with `unet/`, `vae/` and `scheduler/`, or a
//! U-Net folder (`config.json` + `diffusion_pytorch_model.*`) with the option
//! `vae=<AutoencoderKL folder>`. The U-Net must be an inpainting one:
//! `in_channels = 2 * latent_channels + 1`, `out_channels = latent_channels`. The data
//! side always needs the VAE; the trainer loads it when it finds one (for validation)
//! and otherwise steps already-encoded batches (a notebook's), with `validate` refused.
//! `open_unet_data` sees only the option map, so with `--weights <pipeline>` alone it
//! finds no VAE: the caller puts the weights under `pretrained_model_name_or_path` (or
//! the user passes `--opt vae=...`).
//!
//! # Options (diffusers' training-script names)
//!
//! Trainer: `learning_rate` (or `lr`, default 1e-4), `adam_beta1` (0.9), `adam_beta2`
//! (0.999), `adam_weight_decay` (1e-2), `adam_epsilon` (1e-8), `max_grad_norm` (1.0),
//! `prediction_type` (`epsilon` | `v_prediction`; default the scheduler config's),
//! `use_ema` (false), `ema_decay` (0.9999), `trainable` (`all` | `attention` |
//! `transformer`; default `attention` for `catvton` — CatVTON trains only the
//! self-attentions — and `all` for `inpaint`), `lr_scheduler` (`constant` only),
//! `max_train_steps` (the run length, read by [`crate::train::drive::default_steps`]),
//! `text_embeddings` (inpaint: a safetensors / `.pth` file with one tensor `[L, D]` or
//! `[1, L, D]`, the encoder hidden states every sample gets).
//!
//! Data (shared by both sides, the same option map): `mode` (`catvton` | `inpaint`,
//! default `catvton`), `resolution` (`"512x384"` = height x width, or one number = the
//! height with VITON-HD's 4:3 aspect) or `height` / `width` (default 512 x 384), `vae`,
//! `latent_dist` (`sample` | `mean`, default `sample`), `num_train_timesteps` (default:
//! the scheduler config's, else 1000), `validation_timestep` (default 30 % of the
//! training timesteps), plus the loader's [`crate::train::drive::DATA_OPTIONS`].
//!
//! # Data and the batch
//!
//! The VITON-HD layout is read by [`HrVitonDataset`] with the keys `image` (person),
//! `cloth` (garment, in-shop, resized to the person's size) and `agnostic` (HR-VITON's
//! `get_agnostic` on the full-size photo from `image-parse-v3/` and `openpose_json/`:
//! torso, arms and neck painted grey, head and lower body pasted back). The repaint mask
//! is where that agnostic differs from the person: both pass through the same 8-bit
//! resize, so pixels the agnostic did not paint are bit-equal (the mask is the painted
//! region grown by the resize footprint, about one pixel). The masked person is the
//! person with the mask black, as vton's inference pipelines build it
//! (`person01 * (1 - mask)`, i.e. -1 in `[-1, 1]`).
//!
//! Each batch is encoded by the VAE without gradients. `latent_dist=sample` (the
//! default) draws `mean + std * eps` with seeded noise, as diffusers'
//! `train_text_to_image.py` and `train_dreambooth_inpaint.py` do
//! (`latent_dist.sample()`): that is the distribution Stable Diffusion's U-Nets were
//! trained on, and the draw is seeded so the run is reproducible. `mean` uses the
//! posterior mean, as vton's inference pipelines encode their conditioning. Latents are
//! scaled by the VAE's `scaling_factor` (after `shift_factor` when set); the mask is
//! resized to the latent size with PyTorch's `nearest`.
//!
//! The source emits a [`Batch`] (`BTreeMap<String, Tensor<4>>`) with the
//! [`UNetBatch`] inside:
//! - `latents` `[B, C, h', w]`, `masked_latents` `[B, C, h', w]`, `mask` `[B, 1, h', w]`,
//!   `noise` `[B, C, h', w]`;
//!   - `catvton`: person | garment latents concatenated along the height (`h' = 2h`),
//!     masked person | garment, mask | zeros (CatVTON's layout; no encoder states);
//!   - `inpaint`: `h' = h`, person latents, masked-person latents, mask;
//! - `timesteps` `[B, 1, 1, 1]`: the integer timestep of each sample as float32 (exact
//!   below 2^24), uniform in `[0, num_train_timesteps)`;
//! - optional `encoder_hidden_states` `[B, 1, L, D]` (a [`Batch`] holds only 4-d
//!   tensors): not emitted by [`UNetDataSource`]; for `inpaint` the trainer then uses
//!   the `text_embeddings` file, else zeros `[B, 77, cross_attention_dim]` (diffusers'
//!   SD-inpainting states for an empty prompt would need the text encoder, which vton
//!   does not load);
//! - for the validation panel, in pixel space `[-1, 1]`: `image`, `cloth`,
//!   `masked_image`, and `mask_image` `[B, 1, H, W]` in `{0, 1}`.
//!
//! Noise, timesteps and posterior draws of batch `k` (counted from the start of the
//! run, `DataSpec::start_batch` included) come from generators seeded by
//! `(DataSpec::seed, k, role)`, not from a running generator, so a resumed run draws
//! exactly what the uninterrupted one would (the loader resumes its sample order at the
//! same batch). Validation batches use `validation_timestep` for every sample and their
//! own seed stream.
//!
//! # Validation
//!
//! [`Trainer::validate`] runs the U-Net once on the noised validation latents and
//! decodes the one-step `x0` prediction (`(x_t - sqrt(1 - abar) eps) / sqrt(abar)`, or
//! `sqrt(abar) x_t - sqrt(1 - abar) v`) of the person latents (the upper half for
//! CatVTON), compared with the person image. Panel columns: person, masked, garment,
//! prediction.
//!
//! # Checkpoints
//!
//! [`TrainingState`] models `unet` (diffusers keys, PyTorch layout: the safetensors
//! loads with [`crate::models::unet::UNet2DConditionModel::load`]) and, with EMA, `unet_ema`; optimiser
//! `adamw` (`exp_avg`, `exp_avg_sq`, `step` per trained key); `extra.ema_step`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::{Map, Value};

use crate::error::{Result, VtonError};
use crate::models::unet::PerBlock;
use crate::models::vae::AutoencoderKL;
use crate::nn::resize_nearest;
use crate::rng::{randn, Rng};
use crate::schedulers::PredictionType;
use crate::train::checkpoint::{MomentState, OptimizerState, StateTensor, TrainingState};
use crate::train::data::{BatchLoader, DataLayout, HrVitonDataset};
use crate::train::diffusion::{
    EmaOptions, TrainableSubset, UNetBatch, UNetTrainOptions, UNetTrainer,
};
use crate::train::drive::{DataSpec, Opts, TrainSetup, DATA_OPTIONS};
use crate::train::optim::LrSchedule;
use crate::train::params::HostTensor;
use crate::train::run::{Batch, BatchSource, LossTerms, Trainer, Validation};
use crate::weights::Checkpoint;

/// Options the trainer reads (accepted, unused, by the data side).
pub const UNET_TRAIN_OPTIONS: &[&str] = &[
    "learning_rate",
    "lr",
    "adam_beta1",
    "adam_beta2",
    "adam_weight_decay",
    "adam_epsilon",
    "max_grad_norm",
    "prediction_type",
    "use_ema",
    "ema_decay",
    "trainable",
    "lr_scheduler",
    "max_train_steps",
    "text_embeddings",
];

/// Options the data side reads (accepted by the trainer, which checks some of them).
pub const UNET_DATA_OPTIONS: &[&str] = &[
    "mode",
    "resolution",
    "height",
    "width",
    "vae",
    "latent_dist",
    "num_train_timesteps",
    "validation_timestep",
    "pretrained_model_name_or_path",
    "weights",
];

/// How the U-Net input is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UNetLayout {
    /// Person | garment along the height, no encoder states.
    CatVton,
    /// SD inpainting: the person alone, encoder states (zeros or a file).
    Inpaint,
}

impl UNetLayout {
    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "catvton" => Ok(UNetLayout::CatVton),
            "inpaint" | "inpainting" => Ok(UNetLayout::Inpaint),
            other => Err(VtonError::invalid(
                "mode",
                format!("'{other}' is not one of catvton, inpaint"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            UNetLayout::CatVton => "catvton",
            UNetLayout::Inpaint => "inpaint",
        }
    }
}

/// Which latents the VAE posterior gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatentDist {
    Sample,
    Mean,
}

fn all_names() -> Vec<&'static str> {
    DATA_OPTIONS
        .iter()
        .chain(UNET_TRAIN_OPTIONS)
        .chain(UNET_DATA_OPTIONS)
        .copied()
        .collect()
}

fn layout_of(o: &Opts) -> Result<UNetLayout> {
    UNetLayout::from_name(&o.string("mode", "catvton")?)
}

/// `resolution` (`"HxW"`, `"H,W"` or a height number) or `height` / `width`.
fn resolution_of(map: &Map<String, Value>, o: &Opts) -> Result<(usize, usize)> {
    let h = o.usize("height", 0)?;
    let w = o.usize("width", 0)?;
    let _ = o.f64("resolution", 0.0).ok();
    let from_res = match map.get("resolution") {
        None => None,
        Some(Value::Number(n)) => {
            let h = n.as_u64().ok_or_else(|| {
                VtonError::invalid("resolution", format!("{n} is not a whole number"))
            })? as usize;
            Some((h, h * 3 / 4))
        }
        Some(Value::String(s)) => {
            let parts: Vec<&str> = s.split(['x', 'X', ',']).map(str::trim).collect();
            let num = |p: &str| {
                p.parse::<usize>().map_err(|_| {
                    VtonError::invalid(
                        "resolution",
                        format!("'{s}' is not HEIGHTxWIDTH (e.g. 512x384)"),
                    )
                })
            };
            match parts.as_slice() {
                [h] => {
                    let h = num(h)?;
                    Some((h, h * 3 / 4))
                }
                [h, w] => Some((num(h)?, num(w)?)),
                _ => {
                    return Err(VtonError::invalid(
                        "resolution",
                        format!("'{s}' is not HEIGHTxWIDTH (e.g. 512x384)"),
                    ))
                }
            }
        }
        Some(v) => {
            return Err(VtonError::invalid(
                "resolution",
                format!("{v} is not HEIGHTxWIDTH"),
            ))
        }
    };
    let (h, w) = match (from_res, h, w) {
        (Some(r), 0, 0) => r,
        (Some(_), _, _) => {
            return Err(VtonError::invalid(
                "resolution",
                "give either resolution or height / width, not both",
            ))
        }
        (None, 0, 0) => (512, 384),
        (None, h, w) if h > 0 && w > 0 => (h, w),
        (None, _, _) => {
            return Err(VtonError::invalid(
                "height / width",
                "give both (or resolution=HEIGHTxWIDTH)",
            ))
        }
    };
    if h == 0 || w == 0 {
        return Err(VtonError::invalid("resolution", "must be positive"));
    }
    Ok((h, w))
}

/// The pipeline / U-Net folder from the setup or the options.
fn weights_of(setup_weights: Option<&Path>, o: &Opts) -> Result<Option<PathBuf>> {
    let a = o.string("pretrained_model_name_or_path", "")?;
    let b = o.string("weights", "")?;
    Ok(setup_weights
        .map(Path::to_path_buf)
        .or_else(|| (!a.is_empty()).then(|| PathBuf::from(&a)))
        .or_else(|| (!b.is_empty()).then(|| PathBuf::from(&b))))
}

/// `(unet folder, pipeline folder if any)`.
fn unet_folder(weights: &Path) -> Result<(PathBuf, Option<PathBuf>)> {
    if weights.join("unet").join("config.json").is_file() {
        return Ok((weights.join("unet"), Some(weights.to_path_buf())));
    }
    if weights.join("config.json").is_file() {
        let parent = weights
            .parent()
            .filter(|p| p.join("vae").is_dir() || p.join("scheduler").is_dir())
            .map(Path::to_path_buf);
        return Ok((weights.to_path_buf(), parent));
    }
    Err(VtonError::invalid(
        "weights",
        format!(
            "{} is neither a diffusers pipeline folder (with unet/) nor a U-Net folder (with config.json)",
            weights.display()
        ),
    ))
}

/// The VAE folder: the option `vae`, else `<pipeline>/vae`.
fn vae_folder(o: &Opts, weights: Option<&Path>) -> Result<PathBuf> {
    let v = o.string("vae", "")?;
    if !v.is_empty() {
        return Ok(PathBuf::from(v));
    }
    if let Some(w) = weights {
        if let Ok((_, Some(pipe))) = unet_folder(w) {
            if pipe.join("vae").is_dir() {
                return Ok(pipe.join("vae"));
            }
        }
    }
    Err(VtonError::invalid(
        "vae",
        "training unet needs the VAE: give a pipeline folder with vae/ as the weights \
         (or --opt pretrained_model_name_or_path=...), or --opt vae=<AutoencoderKL folder>",
    ))
}

/// `num_train_timesteps` of a scheduler config beside the VAE or in the pipeline.
fn scheduler_timesteps(vae: Option<&Path>, weights: Option<&Path>) -> Result<Option<usize>> {
    let mut candidates = Vec::new();
    if let Some(w) = weights {
        if let Ok((unet, pipe)) = unet_folder(w) {
            candidates.push(unet.join("scheduler"));
            if let Some(p) = pipe {
                candidates.push(p.join("scheduler"));
            }
        }
    }
    if let Some(p) = vae.and_then(Path::parent) {
        candidates.push(p.join("scheduler"));
    }
    for c in candidates {
        let f = c.join("scheduler_config.json");
        if f.is_file() {
            let v = crate::schedulers::read_config_json(&f)?;
            return Ok(Some(
                v.get("num_train_timesteps")
                    .and_then(Value::as_u64)
                    .unwrap_or(1000) as usize,
            ));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------

/// splitmix64's finaliser.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of one draw: `(run seed, stream, batch index, role)`.
pub fn draw_seed(seed: u64, stream: u64, batch: u64, role: u64) -> u64 {
    mix64(mix64(mix64(seed ^ stream.wrapping_mul(0x5851_f42d_4c95_7f2d)) ^ batch) ^ role)
}

const ROLE_NOISE: u64 = 1;
const ROLE_TIMESTEPS: u64 = 2;
const ROLE_PERSON: u64 = 3;
const ROLE_GARMENT: u64 = 4;
const ROLE_MASKED: u64 = 5;
const STREAM_TRAIN: u64 = 0;
const STREAM_VAL: u64 = 1;

/// What the data side was configured with.
#[derive(Debug, Clone)]
pub struct UNetDataOptions {
    pub layout: UNetLayout,
    pub height: usize,
    pub width: usize,
    pub latent_dist: LatentDist,
    pub num_train_timesteps: usize,
    pub validation_timestep: usize,
    pub vae: PathBuf,
}

/// Parses the data options (the trainer's names accepted and ignored).
pub fn unet_data_options(
    setup_options: &Map<String, Value>,
    setup_weights: Option<&Path>,
) -> Result<UNetDataOptions> {
    let (d, vae) = data_options(setup_options, setup_weights, true)?;
    Ok(UNetDataOptions {
        vae: vae.expect("required"),
        ..d
    })
}

/// The data options; the VAE folder is `None` when not `require_vae` and none is found.
fn data_options(
    setup_options: &Map<String, Value>,
    setup_weights: Option<&Path>,
    require_vae: bool,
) -> Result<(UNetDataOptions, Option<PathBuf>)> {
    let o = Opts::new(setup_options);
    let layout = layout_of(&o)?;
    let (height, width) = resolution_of(setup_options, &o)?;
    let latent_dist = match o.string("latent_dist", "sample")?.as_str() {
        "sample" => LatentDist::Sample,
        "mean" | "mode" => LatentDist::Mean,
        other => {
            return Err(VtonError::invalid(
                "latent_dist",
                format!("'{other}' is not one of sample, mean"),
            ))
        }
    };
    let weights = weights_of(setup_weights, &o)?;
    let vae = match vae_folder(&o, weights.as_deref()) {
        Ok(v) => Some(v),
        Err(_) if !require_vae => None,
        Err(e) => return Err(e),
    };
    let found = scheduler_timesteps(vae.as_deref(), weights.as_deref())?;
    let num_train_timesteps = o.usize("num_train_timesteps", found.unwrap_or(1000))?;
    if num_train_timesteps == 0 {
        return Err(VtonError::invalid(
            "num_train_timesteps",
            "must be positive",
        ));
    }
    let validation_timestep = o.usize("validation_timestep", num_train_timesteps * 3 / 10)?;
    if validation_timestep >= num_train_timesteps {
        return Err(VtonError::invalid(
            "validation_timestep",
            format!("{validation_timestep} is not below num_train_timesteps {num_train_timesteps}"),
        ));
    }
    o.finish("unet data", &all_names())?;
    Ok((
        UNetDataOptions {
            layout,
            height,
            width,
            latent_dist,
            num_train_timesteps,
            validation_timestep,
            vae: vae.clone().unwrap_or_default(),
        },
        vae,
    ))
}

/// VITON-HD pairs encoded to the U-Net's training batch (see the module documentation).
pub struct UNetDataSource {
    loader: BatchLoader,
    vae: AutoencoderKL,
    options: UNetDataOptions,
    device: Device,
    seed: u64,
    stream: u64,
    /// The index of the next batch (from the start of the run).
    next: u64,
    /// Validation: every sample at this timestep.
    fixed_timestep: Option<usize>,
}

impl UNetDataSource {
    pub fn options(&self) -> &UNetDataOptions {
        &self.options
    }

    /// The index of the next batch, counted from the start of the run.
    pub fn next_index(&self) -> u64 {
        self.next
    }

    fn latents(&self, x: Tensor<4>, seed: u64) -> Result<Tensor<4>> {
        let post = self.vae.encode(x)?;
        let z = match self.options.latent_dist {
            LatentDist::Mean => post.mode(),
            LatentDist::Sample => post.sample(seed),
        };
        Ok(self.vae.scale_latents(z))
    }

    /// Encodes one loader batch (`image`, `cloth`, `agnostic`) as batch `k`.
    pub fn encode(&self, host: &crate::train::data::Batch, k: u64) -> Result<Batch> {
        let dev = &self.device;
        let s = |role| draw_seed(self.seed, self.stream, k, role);
        let image = host.tensor("image", dev)?;
        let cloth = host.tensor("cloth", dev)?;
        let agnostic = host.tensor("agnostic", dev)?;
        let [b, _, _, _] = image.dims();
        let mask = (agnostic - image.clone())
            .abs()
            .sum_dim(1)
            .greater_elem(0.0)
            .float();
        let keep = mask.clone().neg().add_scalar(1.0);
        let masked = (image.clone().add_scalar(1.0) * keep).sub_scalar(1.0);
        let person_l = self.latents(image.clone(), s(ROLE_PERSON))?;
        let garment_l = self.latents(cloth.clone(), s(ROLE_GARMENT))?;
        let masked_l = self.latents(masked.clone(), s(ROLE_MASKED))?;
        let [_, c, lh, lw] = person_l.dims();
        let mask_l = resize_nearest(mask.clone(), lh, lw);
        let (latents, masked_latents, mask_in) = match self.options.layout {
            UNetLayout::CatVton => (
                Tensor::cat(vec![person_l, garment_l.clone()], 2),
                Tensor::cat(vec![masked_l, garment_l], 2),
                Tensor::cat(vec![mask_l.clone(), mask_l.zeros_like()], 2),
            ),
            UNetLayout::Inpaint => (person_l, masked_l, mask_l),
        };
        let [_, _, h2, _] = latents.dims();
        let noise = randn([b, c, h2, lw], s(ROLE_NOISE), dev);
        let t_count = self.options.num_train_timesteps as u64;
        let ts: Vec<f32> = match self.fixed_timestep {
            Some(t) => vec![t as f32; b],
            None => {
                let mut rng = Rng::new(s(ROLE_TIMESTEPS));
                (0..b)
                    .map(|_| ((rng.next_u32() as u64 * t_count) >> 32) as f32)
                    .collect()
            }
        };
        let timesteps = Tensor::<4>::from_data(TensorData::new(ts, [b, 1, 1, 1]), dev);
        let mut out = Batch::new();
        out.insert("latents".into(), latents);
        out.insert("masked_latents".into(), masked_latents);
        out.insert("mask".into(), mask_in);
        out.insert("noise".into(), noise);
        out.insert("timesteps".into(), timesteps);
        out.insert("image".into(), image);
        out.insert("cloth".into(), cloth);
        out.insert("masked_image".into(), masked);
        out.insert("mask_image".into(), mask);
        Ok(out)
    }
}

impl BatchSource for UNetDataSource {
    fn next_batch(&mut self) -> Result<Batch> {
        let host = self.loader.next_batch()?;
        let k = self.next;
        let out = self.encode(&host, k)?;
        self.next += 1;
        Ok(out)
    }

    fn skipped(&self) -> Vec<(String, String)> {
        self.loader
            .bad_samples()
            .into_iter()
            .map(|(i, p, m)| (format!("#{i} {}", p.display()), m))
            .collect()
    }
}

/// The training batches (shuffled, seeded, resumed at `spec.start_batch`) and a
/// validation source (the first `val_count` pairs in order, at `validation_timestep`),
/// encoded through the VAE on `device`. `setup_options` is the option map of the run
/// (the trainer's names are accepted); the VAE is `vae`, else the `vae/` of the
/// pipeline named by `pretrained_model_name_or_path` (or `weights`).
#[allow(clippy::type_complexity)] // the signature drive::open_data returns
pub fn open_unet_data(
    spec: &DataSpec,
    setup_options: &Map<String, Value>,
    device: &Device,
) -> Result<(Box<dyn BatchSource>, Option<Box<dyn BatchSource>>)> {
    let mut merged = setup_options.clone();
    for (k, v) in &spec.options {
        merged.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let options = unet_data_options(&merged, None)?;
    let o = Opts::new(&merged);
    let shuffle = o.bool("shuffle", true)?;
    let vae = AutoencoderKL::from_pretrained(&options.vae, device)?;
    let f = vae.downsample_factor();
    if options.height % f != 0 || options.width % f != 0 {
        return Err(VtonError::invalid(
            "resolution",
            format!(
                "{}x{} is not a multiple of the VAE's downsampling factor {f}",
                options.height, options.width
            ),
        ));
    }
    let dataset = HrVitonDataset::open_layout(
        DataLayout::detect(&spec.root)?,
        options.height,
        options.width,
        o.usize("semantic_nc", 13)?,
        &["image", "cloth", "agnostic"],
    )?;
    let val_count = o.usize("val_count", 4)?.min(dataset.len()).max(1);
    let train = BatchLoader::resumed(
        dataset.clone(),
        spec.batch_size,
        shuffle,
        spec.seed,
        false,
        spec.workers,
        spec.skip_bad,
        spec.start_batch,
    )?;
    let val = BatchLoader::new(dataset, val_count, false, spec.seed, false, 0, true)?;
    let val_vae = AutoencoderKL::from_pretrained(&options.vae, device)?;
    let val_t = options.validation_timestep;
    Ok((
        Box::new(UNetDataSource {
            loader: train,
            vae,
            options: options.clone(),
            device: device.clone(),
            seed: spec.seed,
            stream: STREAM_TRAIN,
            next: spec.start_batch as u64,
            fixed_timestep: None,
        }),
        Some(Box::new(UNetDataSource {
            loader: val,
            vae: val_vae,
            options,
            device: device.clone(),
            seed: spec.seed,
            stream: STREAM_VAL,
            next: 0,
            fixed_timestep: Some(val_t),
        })),
    ))
}

// ---------------------------------------------------------------------------------------
// Trainer
// ---------------------------------------------------------------------------------------

/// `vton train unet`.
pub struct UNetDrive {
    trainer: UNetTrainer,
    /// Data-parallel over these when more than one (see
    /// [`UNetTrainer::step_data_parallel`]).
    devices: Vec<Device>,
    /// For validation (decoding the prediction); absent when no VAE was given (stepping
    /// encoded batches from a notebook).
    vae: Option<AutoencoderKL>,
    layout: UNetLayout,
    unet_dir: PathBuf,
    train_options: UNetTrainOptions,
    raw_options: Map<String, Value>,
    /// Encoder states for `inpaint` when the batch has none: `[L, D]` values.
    text_states: Option<(Vec<f32>, usize, usize)>,
    cross_attention_dim: usize,
    device: Device,
}

/// [`UNetDrive`] as the loop's trainer.
pub fn build_unet_trainer(setup: &TrainSetup, device: &Device) -> Result<Box<dyn Trainer>> {
    Ok(Box::new(UNetDrive::new(setup, device)?))
}

fn subset_of(name: &str) -> Result<TrainableSubset> {
    match name.trim().to_ascii_lowercase().as_str() {
        "all" | "unet" => Ok(TrainableSubset::All),
        "attention" => Ok(TrainableSubset::SelfAttention),
        "transformer" => Ok(TrainableSubset::Transformers),
        other => Err(VtonError::invalid(
            "trainable",
            format!("'{other}' is not one of all, attention, transformer"),
        )),
    }
}

/// The trainer's options (`UNetTrainOptions`) by diffusers' names.
pub fn unet_train_options(o: &Opts, layout: UNetLayout) -> Result<UNetTrainOptions> {
    let d = UNetTrainOptions::default();
    let a = o.f64("learning_rate", f64::NAN)?;
    let b = o.f64("lr", f64::NAN)?;
    let lr = match (a.is_nan(), b.is_nan()) {
        (true, true) => d.lr,
        (false, true) => a,
        (true, false) => b,
        (false, false) if a == b => a,
        _ => {
            return Err(VtonError::invalid(
                "learning_rate",
                format!("learning_rate {a} and lr {b} disagree"),
            ))
        }
    };
    let prediction_type = match o.string("prediction_type", "")?.as_str() {
        "" => None,
        "epsilon" => Some(PredictionType::Epsilon),
        "v_prediction" => Some(PredictionType::VPrediction),
        other => {
            return Err(VtonError::invalid(
                "prediction_type",
                format!("'{other}' is not one of epsilon, v_prediction"),
            ))
        }
    };
    let default_subset = match layout {
        UNetLayout::CatVton => "attention",
        UNetLayout::Inpaint => "all",
    };
    let trainable = subset_of(&o.string("trainable", default_subset)?)?;
    let ema = if o.bool("use_ema", false)? {
        Some(EmaOptions {
            decay: o.f64("ema_decay", EmaOptions::default().decay)?,
            ..EmaOptions::default()
        })
    } else {
        let _ = o.f64("ema_decay", 0.0)?;
        None
    };
    match o.string("lr_scheduler", "constant")?.as_str() {
        "constant" => {}
        other => {
            return Err(VtonError::Unsupported {
                what: format!("lr_scheduler '{other}' (vton's U-Net training has constant)"),
            })
        }
    }
    let max_grad_norm = o.f64("max_grad_norm", 1.0)?;
    Ok(UNetTrainOptions {
        lr,
        betas: (
            o.f64("adam_beta1", d.betas.0)?,
            o.f64("adam_beta2", d.betas.1)?,
        ),
        weight_decay: o.f64("adam_weight_decay", d.weight_decay)?,
        eps: o.f64("adam_epsilon", d.eps)?,
        max_grad_norm: Some(max_grad_norm),
        prediction_type,
        trainable,
        ema,
        lr_schedule: LrSchedule::Constant,
        scheduler: None,
    })
}

fn first_dim(p: &PerBlock<usize>) -> usize {
    match p {
        PerBlock::One(v) => *v,
        PerBlock::Each(v) => v.first().copied().unwrap_or(0),
    }
}

/// One tensor `[L, D]` / `[1, L, D]` from a safetensors / `.pth` file.
fn read_text_states(path: &Path, dim: usize) -> Result<(Vec<f32>, usize, usize)> {
    let ck = Checkpoint::open(path)?;
    let keys: Vec<String> = ck.keys().map(str::to_string).collect();
    let key = ["encoder_hidden_states", "prompt_embeds"]
        .iter()
        .find(|k| ck.contains(k))
        .map(|k| k.to_string())
        .or_else(|| (keys.len() == 1).then(|| keys[0].clone()))
        .ok_or_else(|| {
            VtonError::invalid(
                "text_embeddings",
                format!(
                    "{}: expected one tensor (or 'encoder_hidden_states' / 'prompt_embeds'), found {}",
                    path.display(),
                    keys.len()
                ),
            )
        })?;
    let shape = ck.shape(&key).unwrap_or(&[]).to_vec();
    let (l, d) = match shape.as_slice() {
        [l, d] | [1, l, d] => (*l, *d),
        _ => {
            return Err(VtonError::Shape {
                what: format!("text_embeddings '{key}'"),
                expected: format!("(L, {dim}) or (1, L, {dim})"),
                actual: shape,
            })
        }
    };
    if d != dim || l == 0 {
        return Err(VtonError::Shape {
            what: format!("text_embeddings '{key}'"),
            expected: format!("(L, {dim}) (the U-Net's cross_attention_dim)"),
            actual: shape,
        });
    }
    Ok((ck.read_f32(&key)?, l, d))
}

fn batch_get(batch: &Batch, key: &str) -> Result<Tensor<4>> {
    batch.get(key).cloned().ok_or_else(|| {
        VtonError::invalid(
            "batch",
            format!(
                "no '{key}' in the batch (it has {})",
                batch.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
    })
}

fn host_vec(t: &Tensor<4>) -> Result<Vec<f32>> {
    crate::train::params::tensor_to_vec(t)
}

impl UNetDrive {
    pub fn new(setup: &TrainSetup, device: &Device) -> Result<Self> {
        if setup.weights_checkpoint.is_some() {
            return Err(VtonError::invalid(
                "weights",
                "training unet needs a diffusers U-Net or pipeline folder (its config.json \
                 describes the model); in-memory weights carry no config",
            ));
        }
        let o = Opts::new(&setup.options);
        let layout = layout_of(&o)?;
        let train_options = unet_train_options(&o, layout)?;
        let text_file = o.string("text_embeddings", "")?;
        let _ = o.usize("max_train_steps", 0)?;
        let weights = weights_of(setup.weights.as_deref(), &o)?.ok_or_else(|| {
            VtonError::invalid(
                "weights",
                "training unet needs --weights (a diffusers pipeline or U-Net folder)",
            )
        })?;
        o.finish("unet", &all_names())?;
        // The data side's options, checked here too (the same map feeds both).
        // Without a VAE the trainer steps encoded batches (no validation decode).
        let (data, vae_dir) = data_options(&setup.options, Some(&weights), false)?;
        let (unet_dir, _) = unet_folder(&weights)?;
        let trainer = UNetTrainer::from_pretrained(&unet_dir, train_options.clone(), device)?;
        let vae = match &vae_dir {
            Some(d) => Some(AutoencoderKL::from_pretrained(d, device)?),
            None => None,
        };
        let cfg = &trainer.model().config;
        let lc = vae
            .as_ref()
            .map_or(cfg.out_channels, |v| v.config.latent_channels);
        if vae.is_some() && (cfg.in_channels != 2 * lc + 1 || cfg.out_channels != lc) {
            return Err(VtonError::config(
                "unet",
                format!(
                    "{} training needs an inpainting U-Net for {lc}-channel latents (in_channels {}, \
                     out_channels {lc}); this one has {} and {}",
                    layout.name(),
                    2 * lc + 1,
                    cfg.in_channels,
                    cfg.out_channels
                ),
            ));
        }
        let t_count = trainer.alphas_cumprod().len();
        if data.num_train_timesteps != t_count {
            return Err(VtonError::config(
                "num_train_timesteps",
                format!(
                    "the data draws timesteps below {} but the training schedule ({}) has {t_count}",
                    data.num_train_timesteps,
                    trainer.scheduler_source()
                ),
            ));
        }
        let cross_attention_dim = first_dim(&cfg.cross_attention_dim);
        let text_states = if text_file.is_empty() {
            None
        } else {
            if layout == UNetLayout::CatVton {
                return Err(VtonError::invalid(
                    "text_embeddings",
                    "catvton runs without encoder states; use mode=inpaint",
                ));
            }
            Some(read_text_states(
                Path::new(&text_file),
                cross_attention_dim,
            )?)
        };
        Ok(UNetDrive {
            trainer,
            devices: Vec::new(),
            vae,
            layout,
            unet_dir,
            train_options,
            raw_options: setup.options.clone(),
            text_states,
            cross_attention_dim,
            device: device.clone(),
        })
    }

    pub fn trainer(&self) -> &UNetTrainer {
        &self.trainer
    }

    pub fn layout(&self) -> UNetLayout {
        self.layout
    }

    /// The U-Net folder the weights came from (its `config.json` describes the saves).
    pub fn unet_dir(&self) -> &Path {
        &self.unet_dir
    }

    /// A loop [`Batch`] as the trainer's [`UNetBatch`].
    pub fn unet_batch(&self, batch: &Batch) -> Result<UNetBatch> {
        let latents = batch_get(batch, "latents")?;
        let [b, _, _, _] = latents.dims();
        let tt = batch_get(batch, "timesteps")?;
        if tt.dims() != [b, 1, 1, 1] && tt.dims() != [1, 1, 1, 1] {
            return Err(VtonError::Shape {
                what: "timesteps".into(),
                expected: format!("({b}, 1, 1, 1) or (1, 1, 1, 1)"),
                actual: tt.dims().to_vec(),
            });
        }
        let timesteps = host_vec(&tt)?
            .into_iter()
            .map(|t| {
                if t >= 0.0 && t.fract() == 0.0 {
                    Ok(t as i64)
                } else {
                    Err(VtonError::invalid(
                        "timesteps",
                        format!("{t} is not a non-negative integer"),
                    ))
                }
            })
            .collect::<Result<Vec<i64>>>()?;
        let encoder_hidden_states = match batch.get("encoder_hidden_states") {
            Some(e) => {
                let [eb, one, l, d] = e.dims();
                if eb != b || one != 1 || d != self.cross_attention_dim {
                    return Err(VtonError::Shape {
                        what: "encoder_hidden_states (B, 1, L, D)".into(),
                        expected: format!("({b}, 1, L, {})", self.cross_attention_dim),
                        actual: e.dims().to_vec(),
                    });
                }
                Some(e.clone().reshape([b, l, d]))
            }
            None => match self.layout {
                UNetLayout::CatVton => None,
                UNetLayout::Inpaint => {
                    let dev = latents.device();
                    Some(match &self.text_states {
                        Some((v, l, d)) => {
                            let one = Tensor::<3>::from_data(
                                TensorData::new(v.clone(), [1, *l, *d]),
                                &dev,
                            );
                            one.repeat_dim(0, b)
                        }
                        None => Tensor::<3>::zeros([b, 77, self.cross_attention_dim], &dev),
                    })
                }
            },
        };
        Ok(UNetBatch {
            latents,
            masked_latents: batch.get("masked_latents").cloned(),
            mask: batch.get("mask").cloned(),
            noise: batch_get(batch, "noise")?,
            timesteps,
            encoder_hidden_states,
        })
    }

    /// The one-step `x0` of the person latents, decoded to `[-1, 1]`.
    fn x0_image(&self, ub: &UNetBatch, pred: Tensor<4>) -> Result<Tensor<4>> {
        let dev = &self.device;
        let acp = self.trainer.alphas_cumprod();
        let [b, _, h, w] = ub.latents.dims();
        let mut sa = Vec::with_capacity(b);
        let mut sb = Vec::with_capacity(b);
        for i in 0..b {
            let t = ub.timesteps[if ub.timesteps.len() == 1 { 0 } else { i }];
            let a = *acp.get(t as usize).ok_or_else(|| {
                VtonError::invalid("timesteps", format!("{t} is outside the schedule"))
            })?;
            sa.push(a.sqrt());
            sb.push((1.0 - a).sqrt());
        }
        let col = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [b, 1, 1, 1]), dev);
        let (sa, sb) = (col(sa), col(sb));
        let x = ub.latents.clone().to_device(dev);
        let n = ub.noise.clone().to_device(dev);
        let pred = pred.to_device(dev);
        let noisy = x * sa.clone() + n * sb.clone();
        let x0 = match self.trainer.prediction_type() {
            PredictionType::Epsilon => (noisy - pred * sb) / sa,
            PredictionType::VPrediction => noisy * sa - pred * sb,
            PredictionType::Sample => pred,
        };
        let person = match self.layout {
            UNetLayout::CatVton => x0.narrow(2, 0, h / 2),
            UNetLayout::Inpaint => x0,
        };
        let _ = w;
        let vae = self.vae.as_ref().ok_or_else(|| {
            VtonError::invalid(
                "vae",
                "validation decodes the prediction: give a pipeline folder with vae/ or --opt vae=<folder>",
            )
        })?;
        Ok(vae.decode(vae.unscale_latents(person))?.clamp(-1.0, 1.0))
    }
}

fn state_of(sd: BTreeMap<String, HostTensor>) -> Result<BTreeMap<String, StateTensor>> {
    sd.into_iter()
        .map(|(k, h)| Ok((k, StateTensor::from_host(&h)?)))
        .collect()
}

fn host_of(sd: &BTreeMap<String, StateTensor>) -> BTreeMap<String, HostTensor> {
    sd.iter().map(|(k, t)| (k.clone(), t.to_host())).collect()
}

impl Trainer for UNetDrive {
    fn kind(&self) -> &'static str {
        "unet"
    }

    fn train_step(&mut self, batch: &Batch) -> Result<LossTerms> {
        let ub = self.unet_batch(batch)?;
        let out = if self.devices.len() > 1 {
            self.trainer.step_data_parallel(&ub, &self.devices)?
        } else {
            self.trainer.step(&ub, false)?
        };
        let mut l = LossTerms::new();
        l.insert("loss".into(), out.loss);
        l.insert("grad_norm".into(), out.grad_norm);
        Ok(l)
    }

    fn set_devices(&mut self, devices: Vec<Device>) -> Result<()> {
        self.devices = devices;
        Ok(())
    }

    fn steps_done(&self) -> usize {
        self.trainer.step_count()
    }

    fn current_lr(&self) -> f64 {
        self.trainer.lr()
    }

    fn validate(&self, batch: &Batch) -> Result<Validation> {
        let ub = self.unet_batch(batch)?;
        let pred = self.trainer.predict(&ub)?;
        let prediction = self.x0_image(&ub, pred)?;
        let image = batch_get(batch, "image")?;
        Ok(Validation {
            prediction: prediction.clone(),
            target: image.clone(),
            panel: vec![
                ("person".into(), image),
                ("masked".into(), batch_get(batch, "masked_image")?),
                ("garment".into(), batch_get(batch, "cloth")?),
                ("prediction".into(), prediction),
            ],
        })
    }

    fn training_state(&self) -> Result<TrainingState> {
        let t = &self.trainer;
        let mut models = BTreeMap::new();
        models.insert("unet".to_string(), state_of(t.state_dict()?)?);
        if let Some(sd) = t.ema_state_dict()? {
            models.insert("unet_ema".to_string(), state_of(sd)?);
        }
        let (flat, step) = t.optimizer_state()?;
        let mut state = BTreeMap::new();
        for k in t.optimizer().state.keys() {
            let get = |s: &str| {
                flat.get(&format!("{k}.{s}")).ok_or_else(|| {
                    VtonError::config(format!("{k}.{s}"), "missing from the optimiser state")
                })
            };
            state.insert(
                k.clone(),
                MomentState {
                    exp_avg: StateTensor::from_host(get("exp_avg")?)?,
                    exp_avg_sq: StateTensor::from_host(get("exp_avg_sq")?)?,
                    step: get("step")?.data.first().copied().unwrap_or(0.0) as u64,
                },
            );
        }
        let o = &self.train_options;
        let mut optimizers = BTreeMap::new();
        optimizers.insert(
            "adamw".to_string(),
            OptimizerState {
                state,
                config: serde_json::json!({
                    "class": "AdamW", "lr": o.lr, "betas": [o.betas.0, o.betas.1],
                    "eps": o.eps, "weight_decay": o.weight_decay,
                }),
            },
        );
        Ok(TrainingState {
            global_step: step as u64,
            models,
            optimizers,
            lr_step: step as u64,
            rng: BTreeMap::new(),
            options: Value::Object(self.raw_options.clone()),
            extra: serde_json::json!({
                "kind": "unet",
                "mode": self.layout.name(),
                "ema_step": t.ema().map(|e| e.optimization_step),
                "noise": "per-batch generators seeded by (data seed, batch index)",
            }),
        })
    }

    fn restore(&mut self, state: TrainingState) -> Result<()> {
        let sd = state
            .models
            .get("unet")
            .ok_or_else(|| VtonError::config("unet", "the checkpoint has no such model"))?;
        let adam = state
            .optimizers
            .get("adamw")
            .ok_or_else(|| VtonError::config("adamw", "the checkpoint has no optimiser state"))?;
        let mut flat = BTreeMap::new();
        for (p, m) in &adam.state {
            flat.insert(format!("{p}.exp_avg"), m.exp_avg.to_host());
            flat.insert(format!("{p}.exp_avg_sq"), m.exp_avg_sq.to_host());
            flat.insert(
                format!("{p}.step"),
                HostTensor::new(vec![], vec![m.step as f32]),
            );
        }
        let mut trainer =
            UNetTrainer::from_pretrained(&self.unet_dir, self.train_options.clone(), &self.device)?;
        trainer.load_state_dict(&host_of(sd))?;
        trainer.load_optimizer_state(&flat, state.global_step as usize)?;
        if trainer.ema().is_some() {
            let ema = state.models.get("unet_ema").ok_or_else(|| {
                VtonError::config(
                    "unet_ema",
                    "use_ema is on but the checkpoint has no EMA weights",
                )
            })?;
            let n = state
                .extra
                .get("ema_step")
                .and_then(Value::as_u64)
                .unwrap_or(state.global_step);
            trainer.load_ema_state(&host_of(ema), n)?;
        }
        self.trainer = trainer;
        Ok(())
    }
}
