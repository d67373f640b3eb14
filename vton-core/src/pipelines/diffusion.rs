//! Latent-diffusion try-on pipelines on an inpainting U-Net (9 input channels: noisy
//! latents, mask, masked-image latents).
//!
//! * [`CatVTONPipeline`]: CatVTON's concatenation try-on. The masked person and the garment
//!   are encoded by the VAE and concatenated in latent space (along height, as the
//!   released code does, or width); the U-Net runs without a text encoder; the person half
//!   is decoded.
//! * [`InpaintTryOnPipeline`]: warping first, diffusion second. The agnostic person with a
//!   warped garment pasted in (from the geometric try-on or a learned warper) is the masked
//!   image; optionally the sampling starts from the noised latent of that composite
//!   (DCI-VTON), with a `strength` saying how much noise.
//!
//! Both use classifier-free guidance (the unconditional branch drops the garment), explicit
//! initial noise or a seed, any [`Scheduler`], batches, and a progress callback that can
//! cancel. Images are NCHW tensors in `[0, 1]`; masks `(B, 1, H, W)` with 1 = repaint.
//! Pixels outside the mask are the person's own in the output.

use std::path::Path;

use burn::tensor::{Device, Tensor};

use crate::error::{Result, VtonError};
use crate::models::{AutoencoderKL, UNet2DConditionModel};
use crate::nn::resize_nearest;
use crate::schedulers::{scheduler_from_pretrained, Scheduler};
use crate::weights::{Checkpoint, LoadOptions};

/// A progress report: `step` of `total` done (1-based), at `timestep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub step: usize,
    pub total: usize,
    pub timestep: i64,
}

/// Return [`Control::Cancel`] from a progress callback to stop sampling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Cancel,
}

/// Along which axis CatVTON concatenates person and garment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConcatAxis {
    /// Garment below the person (the released CatVTON code: `concat_dim = -2`).
    #[default]
    Height,
    /// Garment right of the person.
    Width,
}

/// Sampling options shared by the pipelines.
#[derive(Debug, Clone)]
pub struct SamplingOptions {
    pub steps: usize,
    /// Classifier-free guidance scale; `<= 1` runs the conditional branch only.
    pub guidance_scale: f32,
    /// Seeds the initial noise and every stochastic step (vton's own generator).
    pub seed: u64,
    /// DDIM's eta (ignored by deterministic schedulers).
    pub eta: f32,
    /// Initial latents noise instead of the seeded one: `(B, 4, h, w)` of the latent
    /// the pipeline denoises (for CatVTON, the concatenated latent).
    pub initial_noise: Option<Tensor<4>>,
    /// Paste the person back outside the mask (on by default).
    pub keep_unmasked: bool,
}

impl Default for SamplingOptions {
    fn default() -> Self {
        SamplingOptions {
            steps: 50,
            guidance_scale: 2.5,
            seed: 0,
            eta: 0.0,
            initial_noise: None,
            keep_unmasked: true,
        }
    }
}

/// The models every latent-diffusion try-on needs.
pub struct DiffusionParts {
    pub vae: AutoencoderKL,
    pub unet: UNet2DConditionModel,
    pub scheduler: Box<dyn Scheduler>,
    pub device: Device,
}

impl DiffusionParts {
    /// Loads `vae/`, `unet/` and `scheduler/` from a diffusers pipeline folder.
    pub fn from_pretrained(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::from_pretrained_with_unet(path, None, device)
    }

    /// [`DiffusionParts::from_pretrained`] with another U-Net in place of the folder's
    /// `unet/` (diffusers' `Pipeline.from_pretrained(base, unet=...)`): see [`load_unet`].
    pub fn from_pretrained_with_unet(
        path: impl AsRef<Path>,
        unet: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        Self::from_pretrained_with_options(path, unet, &LoadOptions::default(), device)
    }

    /// [`DiffusionParts::from_pretrained_with_unet`] with diffusers' `variant` and
    /// `torch_dtype` for the VAE and the U-Net ([`LoadOptions`]).
    pub fn from_pretrained_with_options(
        path: impl AsRef<Path>,
        unet: Option<&Path>,
        options: &LoadOptions,
        device: &Device,
    ) -> Result<Self> {
        let path = path.as_ref();
        let unet = match unet {
            Some(u) => load_unet_with(&path.join("unet"), u, options, device)?,
            None => UNet2DConditionModel::from_pretrained_with(path.join("unet"), options, device)?,
        };
        Self::from_models(path, unet, options, device)
    }

    /// `vae/` and `scheduler/` of the pipeline folder `path` around a U-Net loaded
    /// already.
    fn from_models(
        path: &Path,
        unet: UNet2DConditionModel,
        options: &LoadOptions,
        device: &Device,
    ) -> Result<Self> {
        let parts = DiffusionParts {
            vae: AutoencoderKL::from_pretrained_with(path.join("vae"), options, device)?,
            unet,
            scheduler: scheduler_from_pretrained(path.join("scheduler"))?,
            device: device.clone(),
        };
        parts.check()?;
        Ok(parts)
    }

    fn check(&self) -> Result<()> {
        let lc = self.vae.config.latent_channels;
        let uc = &self.unet.config;
        if uc.in_channels != 2 * lc + 1 || uc.out_channels != lc {
            return Err(VtonError::config(
                "unet",
                format!(
                    "an inpainting U-Net for {lc}-channel latents needs in_channels {} and \
                     out_channels {lc}, this one has {} and {}",
                    2 * lc + 1,
                    uc.in_channels,
                    uc.out_channels
                ),
            ));
        }
        Ok(())
    }

    /// Scaled posterior mean of an image in `[0, 1]`.
    fn encode(&self, image01: Tensor<4>) -> Result<Tensor<4>> {
        let post = self.vae.encode(image01.mul_scalar(2.0).sub_scalar(1.0))?;
        Ok(self.vae.scale_latents(post.mode()))
    }

    fn decode(&self, latents: Tensor<4>) -> Result<Tensor<4>> {
        let img = self.vae.decode(self.vae.unscale_latents(latents))?;
        Ok(img.mul_scalar(0.5).add_scalar(0.5).clamp(0.0, 1.0))
    }

    /// The denoising loop: `cond` / `uncond` are the extra U-Net channels (mask and
    /// masked-image latents); `start` skips the first timesteps.
    #[allow(clippy::too_many_arguments)]
    fn denoise(
        &mut self,
        mut latents: Tensor<4>,
        cond: Tensor<4>,
        uncond: Option<Tensor<4>>,
        timesteps: &[i64],
        opts: &SamplingOptions,
        encoder_hidden_states: Option<&Tensor<3>>,
        callback: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Tensor<4>> {
        let total = timesteps.len();
        let b = latents.dims()[0];
        let ehs_cfg = encoder_hidden_states.map(|e| Tensor::cat(vec![e.clone(), e.clone()], 0));
        for (i, &t) in timesteps.iter().enumerate() {
            let x = self.scheduler.scale_model_input(latents.clone(), t);
            let noise_pred = match &uncond {
                Some(u) => {
                    let input = Tensor::cat(
                        vec![
                            Tensor::cat(vec![x.clone(), u.clone()], 1),
                            Tensor::cat(vec![x, cond.clone()], 1),
                        ],
                        0,
                    );
                    let out = self.unet.forward(input, t, ehs_cfg.as_ref())?;
                    let un = out.clone().narrow(0, 0, b);
                    let co = out.narrow(0, b, b);
                    un.clone() + (co - un).mul_scalar(opts.guidance_scale)
                }
                None => {
                    let input = Tensor::cat(vec![x, cond.clone()], 1);
                    self.unet.forward(input, t, encoder_hidden_states)?
                }
            };
            let seed = opts.seed.wrapping_add(1 + i as u64);
            latents = self
                .scheduler
                .step(noise_pred, t, latents, opts.eta, None, seed)?
                .prev_sample;
            let p = Progress {
                step: i + 1,
                total,
                timestep: t,
            };
            if callback(p) == Control::Cancel {
                return Err(VtonError::Cancelled { step: i + 1, total });
            }
        }
        Ok(latents)
    }

    fn initial_noise(&self, shape: [usize; 4], opts: &SamplingOptions) -> Result<Tensor<4>> {
        let n = match &opts.initial_noise {
            Some(n) if n.dims() == shape => n.clone(),
            Some(n) => {
                return Err(VtonError::Shape {
                    what: "initial_noise".into(),
                    expected: format!("{shape:?}"),
                    actual: n.dims().to_vec(),
                })
            }
            None => crate::rng::randn(shape, opts.seed, &self.device),
        };
        Ok(n.mul_scalar(self.scheduler.init_noise_sigma()))
    }
}

fn check_inputs(
    person: &Tensor<4>,
    garment: &Tensor<4>,
    mask: &Tensor<4>,
    factor: usize,
) -> Result<()> {
    let [b, c, h, w] = person.dims();
    if c != 3 || h == 0 || w == 0 || h % factor != 0 || w % factor != 0 {
        return Err(VtonError::Shape {
            what: "person".into(),
            expected: format!("(B, 3, H, W) with H, W multiples of {factor}"),
            actual: person.dims().to_vec(),
        });
    }
    if garment.dims() != [b, 3, h, w] {
        return Err(VtonError::SizeMismatch {
            what: "garment".into(),
            expected: format!("{:?} (the person's shape)", [b, 3, h, w]),
            actual: format!("{:?}", garment.dims()),
        });
    }
    if mask.dims() != [b, 1, h, w] {
        return Err(VtonError::SizeMismatch {
            what: "mask".into(),
            expected: format!("{:?}", [b, 1, h, w]),
            actual: format!("{:?}", mask.dims()),
        });
    }
    Ok(())
}

fn check_steps(steps: usize) -> Result<()> {
    if steps == 0 {
        return Err(VtonError::invalid("steps", "must be at least 1"));
    }
    Ok(())
}

/// `person * (1 - mask) + generated * mask` with a binary mask.
fn keep_unmasked(person: Tensor<4>, generated: Tensor<4>, mask_bin: Tensor<4>) -> Tensor<4> {
    let inv = mask_bin.clone().neg().add_scalar(1.0);
    person * inv + generated * mask_bin
}

/// CatVTON: concatenation try-on on an SD-1.5-inpainting U-Net, no text encoder.
pub struct CatVTONPipeline {
    pub parts: DiffusionParts,
    pub concat: ConcatAxis,
}

impl CatVTONPipeline {
    /// Loads a diffusers inpainting pipeline folder (`vae/`, `unet/`, `scheduler/`) and,
    /// when given, CatVTON's attention checkpoint on top of its U-Net (see
    /// [`load_catvton_attention`]).
    pub fn from_pretrained(
        base: impl AsRef<Path>,
        attn_checkpoint: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        Self::from_pretrained_with_unet(base, None, attn_checkpoint, device)
    }

    /// [`CatVTONPipeline::from_pretrained`] with another U-Net in place of the folder's
    /// (see [`load_unet`]); an attention checkpoint, when given too, goes on top of it.
    pub fn from_pretrained_with_unet(
        base: impl AsRef<Path>,
        unet: Option<&Path>,
        attn_checkpoint: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        Self::from_pretrained_with_options(
            base,
            unet,
            attn_checkpoint,
            &LoadOptions::default(),
            device,
        )
    }

    /// [`CatVTONPipeline::from_pretrained_with_unet`] with diffusers' `variant` and
    /// `torch_dtype` ([`LoadOptions`]).
    pub fn from_pretrained_with_options(
        base: impl AsRef<Path>,
        unet: Option<&Path>,
        attn_checkpoint: Option<&Path>,
        options: &LoadOptions,
        device: &Device,
    ) -> Result<Self> {
        let base = base.as_ref();
        if let Some(a) = attn_checkpoint {
            // The U-Net is built once, with the attention weights on it.
            let unet_model = match unet {
                Some(u) => load_catvton_attention_onto(&base.join("unet"), u, a, options, device)?,
                None => load_catvton_attention_with(&base.join("unet"), a, options, device)?,
            };
            let parts = DiffusionParts::from_models(base, unet_model, options, device)?;
            return Ok(CatVTONPipeline {
                parts,
                concat: ConcatAxis::Height,
            });
        }
        let parts = DiffusionParts::from_pretrained_with_options(base, unet, options, device)?;
        Ok(CatVTONPipeline {
            parts,
            concat: ConcatAxis::Height,
        })
    }

    /// Try-on: `person`, `garment` `(B, 3, H, W)` in `[0, 1]` (the garment already laid
    /// out at the person's size), `mask` `(B, 1, H, W)` (1 = region to repaint).
    /// Returns `(B, 3, H, W)` in `[0, 1]`.
    pub fn run(
        &mut self,
        person: Tensor<4>,
        garment: Tensor<4>,
        mask: Tensor<4>,
        opts: &SamplingOptions,
        callback: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Tensor<4>> {
        let p = &mut self.parts;
        check_steps(opts.steps)?;
        check_inputs(&person, &garment, &mask, p.vae.downsample_factor())?;
        let mask_bin = mask.greater_equal_elem(0.5).float();
        let masked = person.clone() * mask_bin.clone().neg().add_scalar(1.0);
        let masked_latent = p.encode(masked)?;
        let garment_latent = p.encode(garment)?;
        let [b, _, lh, lw] = masked_latent.dims();
        let mask_latent = resize_nearest(mask_bin.clone(), lh, lw);
        let dim = match self.concat {
            ConcatAxis::Height => 2,
            ConcatAxis::Width => 3,
        };
        let cat = |a: Tensor<4>, c: Tensor<4>| Tensor::cat(vec![a, c], dim);
        let cond = Tensor::cat(
            vec![
                cat(mask_latent.clone(), mask_latent.zeros_like()),
                cat(masked_latent.clone(), garment_latent.clone()),
            ],
            1,
        );
        let uncond = (opts.guidance_scale > 1.0).then(|| {
            Tensor::cat(
                vec![
                    cat(mask_latent.clone(), mask_latent.zeros_like()),
                    cat(masked_latent.clone(), garment_latent.zeros_like()),
                ],
                1,
            )
        });
        let [_, _, ch, cw] = cond.dims();
        let latents0 = p.initial_noise([b, p.vae.config.latent_channels, ch, cw], opts)?;
        p.scheduler.set_timesteps(opts.steps)?;
        let ts = p.scheduler.timesteps().to_vec();
        let latents = p.denoise(latents0, cond, uncond, &ts, opts, None, callback)?;
        let person_latents = latents.narrow(dim, 0, if dim == 2 { lh } else { lw });
        let image = p.decode(person_latents)?;
        Ok(if opts.keep_unmasked {
            keep_unmasked(person, image, mask_bin)
        } else {
            image
        })
    }
}

/// A U-Net to use instead of a pipeline's own: a diffusers U-Net folder (`config.json`
/// + `diffusion_pytorch_model.*`), or one weights file under diffusers' keys (a
/// `vton train unet` checkpoint's `unet.safetensors` / `unet.pth`, a fine-tuned
/// `diffusion_pytorch_model.safetensors`) read with the config of the pipeline's
/// `unet_dir`. Every tensor must be present (no partial load).
pub fn load_unet(unet_dir: &Path, unet: &Path, device: &Device) -> Result<UNet2DConditionModel> {
    load_unet_with(unet_dir, unet, &LoadOptions::default(), device)
}

/// [`load_unet`] with [`LoadOptions`] (the variant applies to a U-Net folder).
pub fn load_unet_with(
    unet_dir: &Path,
    unet: &Path,
    options: &LoadOptions,
    device: &Device,
) -> Result<UNet2DConditionModel> {
    if unet.is_dir() {
        return UNet2DConditionModel::from_pretrained_with(unet, options, device);
    }
    if !unet.is_file() {
        return Err(VtonError::FileNotFound {
            path: unet.to_path_buf(),
        });
    }
    let config: crate::models::UNet2DConditionConfig =
        crate::models::pretrained::read_config(&unet_dir.join("config.json"))?;
    let ck = Checkpoint::open(unet)?;
    Ok(UNet2DConditionModel::load_as(&config, &ck, device, false, options.dtype)?.0)
}

/// Loads a U-Net folder and puts CatVTON's attention weights on it.
///
/// CatVTON publishes only its self-attention layers (`<version>/attention/model.safetensors`,
/// e.g. `mix-48k-1024`). The file is the state dict of a `ModuleList` of every module whose
/// name contains `attn1`, in `unet.named_modules()` order: down blocks, up blocks, then the
/// mid block (diffusers registers `up_blocks` before `mid_block`). Each attention
/// contributes 8 modules (the layer, `to_q`, `to_k`, `to_v`, `to_out`, `to_out.0`,
/// `to_out.1`, and CatVTON's processor). safetensors stores each shared tensor once,
/// under any one of its names, so `to_k` of attention `k` is `{8k}.to_k.weight` or
/// `{8k+2}.weight`, `to_out.0.weight` is `{8k}.to_out.0.weight`, `{8k+4}.0.weight` or
/// `{8k+5}.weight`, and so on; every alias is accepted (and a stride of 7, for a save made
/// with diffusers' own processors).
pub fn load_catvton_attention(
    unet_dir: &Path,
    attn: &Path,
    device: &Device,
) -> Result<UNet2DConditionModel> {
    load_catvton_attention_with(unet_dir, attn, &LoadOptions::default(), device)
}

/// [`load_catvton_attention`] with [`LoadOptions`] for the U-Net.
pub fn load_catvton_attention_with(
    unet_dir: &Path,
    attn: &Path,
    options: &LoadOptions,
    device: &Device,
) -> Result<UNet2DConditionModel> {
    let (config, base): (crate::models::UNet2DConditionConfig, _) =
        crate::models::pretrained::pretrained_variant(
            unet_dir,
            "unet",
            options.variant.as_deref(),
        )?;
    let attn_file = find_attention_file(attn)?;
    let ck = Checkpoint::open(&attn_file)?;
    let paths = attn1_paths(&config);
    let mapped = map_catvton_keys(&ck, &paths, &attn_file)?;
    let merged = base.overlay(mapped);
    Ok(UNet2DConditionModel::load_as(&config, &merged, device, false, options.dtype)?.0)
}

/// [`load_catvton_attention`] on another U-Net than the pipeline's (see [`load_unet`]).
fn load_catvton_attention_onto(
    unet_dir: &Path,
    unet: &Path,
    attn: &Path,
    options: &LoadOptions,
    device: &Device,
) -> Result<UNet2DConditionModel> {
    let (config, base): (crate::models::UNet2DConditionConfig, Checkpoint) = if unet.is_dir() {
        crate::models::pretrained::pretrained_variant(unet, "unet", options.variant.as_deref())?
    } else {
        (
            crate::models::pretrained::read_config(&unet_dir.join("config.json"))?,
            Checkpoint::open(unet)?,
        )
    };
    let attn_file = find_attention_file(attn)?;
    let ck = Checkpoint::open(&attn_file)?;
    let mapped = map_catvton_keys(&ck, &attn1_paths(&config), &attn_file)?;
    Ok(
        UNet2DConditionModel::load_as(
            &config,
            &base.overlay(mapped),
            device,
            false,
            options.dtype,
        )?
        .0,
    )
}

fn find_attention_file(p: &Path) -> Result<std::path::PathBuf> {
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    for c in [
        p.join("model.safetensors"),
        p.join("attention").join("model.safetensors"),
        p.join("mix-48k-1024")
            .join("attention")
            .join("model.safetensors"),
    ] {
        if c.is_file() {
            return Ok(c);
        }
    }
    Err(VtonError::FileNotFound {
        path: p.join("attention").join("model.safetensors"),
    })
}

/// Module paths of every `attn1`, in `named_modules()` order.
pub fn attn1_paths(config: &crate::models::UNet2DConditionConfig) -> Vec<String> {
    let n = config.block_out_channels.len();
    let per = |v: &crate::models::unet::PerBlock<usize>, i: usize| match v {
        crate::models::unet::PerBlock::One(x) => *x,
        crate::models::unet::PerBlock::Each(xs) => xs.get(i).copied().unwrap_or(1),
    };
    let mut out = Vec::new();
    for (i, t) in config.down_block_types.iter().enumerate() {
        if t.starts_with("CrossAttn") {
            for j in 0..per(&config.layers_per_block, i) {
                for k in 0..per(&config.transformer_layers_per_block, i) {
                    out.push(format!(
                        "down_blocks.{i}.attentions.{j}.transformer_blocks.{k}.attn1"
                    ));
                }
            }
        }
    }
    for (i, t) in config.up_block_types.iter().enumerate() {
        if t.starts_with("CrossAttn") {
            let r = n - 1 - i;
            let tl = match &config.reverse_transformer_layers_per_block {
                Some(v) => v.get(i).copied().unwrap_or(1),
                None => per(&config.transformer_layers_per_block, r),
            };
            for j in 0..=per(&config.layers_per_block, r) {
                for k in 0..tl {
                    out.push(format!(
                        "up_blocks.{i}.attentions.{j}.transformer_blocks.{k}.attn1"
                    ));
                }
            }
        }
    }
    if config.mid_block_type.is_some() {
        for k in 0..per(&config.transformer_layers_per_block, n - 1) {
            out.push(format!(
                "mid_block.attentions.0.transformer_blocks.{k}.attn1"
            ));
        }
    }
    out
}

fn map_catvton_keys(ck: &Checkpoint, paths: &[String], file: &Path) -> Result<Checkpoint> {
    // Offsets, within one attention's block of modules, of each tensor's aliases.
    const ALIASES: [(&str, &[(usize, &str)]); 5] = [
        ("to_q.weight", &[(0, "to_q.weight"), (1, "weight")]),
        ("to_k.weight", &[(0, "to_k.weight"), (2, "weight")]),
        ("to_v.weight", &[(0, "to_v.weight"), (3, "weight")]),
        (
            "to_out.0.weight",
            &[(0, "to_out.0.weight"), (4, "0.weight"), (5, "weight")],
        ),
        (
            "to_out.0.bias",
            &[(0, "to_out.0.bias"), (4, "0.bias"), (5, "bias")],
        ),
    ];
    let try_stride = |stride: usize| -> Option<Vec<(String, String)>> {
        // (file key, U-Net key) for every file key; None if a key fits nowhere or a
        // layer lacks a tensor.
        let mut pairs = Vec::new();
        let mut have = vec![[false; 5]; paths.len()];
        for k in ck.keys() {
            let (idx, rest) = k.split_once('.')?;
            let idx: usize = idx.parse().ok()?;
            let (layer, off) = (idx / stride, idx % stride);
            if layer >= paths.len() {
                return None;
            }
            let t = ALIASES
                .iter()
                .position(|(_, al)| al.iter().any(|&(o, r)| o == off && r == rest))?;
            have[layer][t] = true;
            pairs.push((k.to_string(), format!("{}.{}", paths[layer], ALIASES[t].0)));
        }
        have.iter().all(|h| h.iter().all(|&b| b)).then_some(pairs)
    };
    // 8 modules per attention with CatVTON's nn.Module processors, 7 with diffusers' own.
    let pairs = [8usize, 7]
        .into_iter()
        .find_map(try_stride)
        .ok_or_else(|| VtonError::Checkpoint {
            path: file.to_path_buf(),
            message: format!(
                "not a CatVTON attention checkpoint for this U-Net ({} self-attention layers \
                 expected; keys: {})",
                paths.len(),
                crate::weights::list_keys(&ck.keys().map(String::from).collect::<Vec<_>>())
            ),
        })?;
    let table: std::collections::HashMap<String, String> = pairs.into_iter().collect();
    Ok(ck.clone().map_keys(|k| table.get(k).cloned()))
}

/// Warping first, diffusion second: an inpainting U-Net repaints the masked region of an
/// agnostic person into which a warped garment was pasted.
pub struct InpaintTryOnPipeline {
    pub parts: DiffusionParts,
}

/// Inputs of [`InpaintTryOnPipeline::run`].
#[derive(Debug, Clone)]
pub struct InpaintInputs {
    /// The person, `(B, 3, H, W)` in `[0, 1]`.
    pub person: Tensor<4>,
    /// The region to repaint, `(B, 1, H, W)`.
    pub mask: Tensor<4>,
    /// The garment already warped onto the person, `(B, 3, H, W)`, and where it is.
    pub warped_garment: Tensor<4>,
    pub warped_mask: Tensor<4>,
    /// Optional cross-attention states (e.g. precomputed text or image embeddings);
    /// without them cross-attention is skipped.
    pub encoder_hidden_states: Option<Tensor<3>>,
    /// Start from the noised latent of the composite instead of pure noise (DCI-VTON):
    /// `Some(strength)` in `(0, 1]` runs the last `strength * steps` steps.
    pub start_from_warped: Option<f32>,
}

impl InpaintTryOnPipeline {
    pub fn from_pretrained(base: impl AsRef<Path>, device: &Device) -> Result<Self> {
        Self::from_pretrained_with(base, &LoadOptions::default(), device)
    }

    /// [`InpaintTryOnPipeline::from_pretrained`] with diffusers' `variant` and
    /// `torch_dtype` ([`LoadOptions`]).
    pub fn from_pretrained_with(
        base: impl AsRef<Path>,
        options: &LoadOptions,
        device: &Device,
    ) -> Result<Self> {
        Ok(InpaintTryOnPipeline {
            parts: DiffusionParts::from_pretrained_with_options(base, None, options, device)?,
        })
    }

    /// Runs the try-on; returns `(B, 3, H, W)` in `[0, 1]`.
    pub fn run(
        &mut self,
        inputs: &InpaintInputs,
        opts: &SamplingOptions,
        callback: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<Tensor<4>> {
        let p = &mut self.parts;
        check_steps(opts.steps)?;
        let person = inputs.person.clone();
        check_inputs(
            &person,
            &inputs.warped_garment,
            &inputs.mask,
            p.vae.downsample_factor(),
        )?;
        let wm = inputs.warped_mask.clone();
        if wm.dims() != inputs.mask.dims() {
            return Err(VtonError::SizeMismatch {
                what: "warped_mask".into(),
                expected: format!("{:?}", inputs.mask.dims()),
                actual: format!("{:?}", wm.dims()),
            });
        }
        let mask_bin = inputs.mask.clone().greater_equal_elem(0.5).float();
        let wm_bin = wm.greater_equal_elem(0.5).float();
        let agnostic = person.clone() * mask_bin.clone().neg().add_scalar(1.0);
        // The warped garment pasted into the agnostic person (inside the repaint region).
        let paste = wm_bin * mask_bin.clone();
        let composite = agnostic.clone() * paste.clone().neg().add_scalar(1.0)
            + inputs.warped_garment.clone() * paste;
        let cond_latent = p.encode(composite)?;
        let [b, lc, lh, lw] = cond_latent.dims();
        let mask_latent = resize_nearest(mask_bin.clone(), lh, lw);
        let cond = Tensor::cat(vec![mask_latent.clone(), cond_latent.clone()], 1);
        let uncond = if opts.guidance_scale > 1.0 {
            let agn_latent = p.encode(agnostic)?;
            Some(Tensor::cat(vec![mask_latent, agn_latent], 1))
        } else {
            None
        };
        p.scheduler.set_timesteps(opts.steps)?;
        let mut ts = p.scheduler.timesteps().to_vec();
        let noise = p.initial_noise([b, lc, lh, lw], opts)?;
        let latents0 = match inputs.start_from_warped {
            None => noise,
            Some(s) if s > 0.0 && s <= 1.0 => {
                let keep = ((opts.steps as f32 * s) as usize).clamp(1, ts.len());
                ts = ts[ts.len() - keep..].to_vec();
                let unit = noise.div_scalar(p.scheduler.init_noise_sigma());
                p.scheduler.add_noise(cond_latent, unit, &[ts[0]])?
            }
            Some(s) => {
                return Err(VtonError::invalid(
                    "start_from_warped",
                    format!("strength {s} must be in (0, 1]"),
                ))
            }
        };
        let ehs = inputs.encoder_hidden_states.as_ref();
        let latents = p.denoise(latents0, cond, uncond, &ts, opts, ehs, callback)?;
        let image = p.decode(latents)?;
        Ok(if opts.keep_unmasked {
            keep_unmasked(person, image, mask_bin)
        } else {
            image
        })
    }
}

/// Which latent-diffusion try-on a [`DiffusionTryOn`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffusionMethod {
    CatVTON,
    Inpaint,
}

impl DiffusionMethod {
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "catvton" => Ok(DiffusionMethod::CatVTON),
            "inpaint" => Ok(DiffusionMethod::Inpaint),
            other => Err(VtonError::invalid(
                "method",
                format!("'{other}' is not one of catvton, inpaint"),
            )),
        }
    }
}

/// Settings of [`DiffusionTryOn::try_on`] beyond [`SamplingOptions`].
#[derive(Debug, Clone, Default)]
pub struct DiffusionTryOnSettings {
    pub sampling: SamplingOptions,
    /// Working resolution `(height, width)`; `None`: the person's size rounded down to
    /// multiples of 64.
    pub size: Option<(usize, usize)>,
    /// Inpaint only: start from the noised warped composite with this strength.
    pub strength: Option<f32>,
}

/// A photo-level latent-diffusion try-on: the foundation's masks and geometric warp feed
/// the chosen pipeline, and the result comes back at the person's size, with the
/// geometric intermediates (agnostic mask, warped garment and mask).
pub enum DiffusionTryOn {
    CatVTON(CatVTONPipeline),
    Inpaint(InpaintTryOnPipeline),
}

impl DiffusionTryOn {
    /// Loads a diffusers inpainting pipeline folder (and CatVTON's attention weights).
    pub fn load(
        method: DiffusionMethod,
        weights: &Path,
        attn_checkpoint: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        Self::load_with_unet(method, weights, None, attn_checkpoint, device)
    }

    /// [`DiffusionTryOn::load`] with another U-Net in place of the folder's `unet/`
    /// (a fine-tuned one: see [`load_unet`]).
    pub fn load_with_unet(
        method: DiffusionMethod,
        weights: &Path,
        unet: Option<&Path>,
        attn_checkpoint: Option<&Path>,
        device: &Device,
    ) -> Result<Self> {
        Self::load_with_options(
            method,
            weights,
            unet,
            attn_checkpoint,
            &LoadOptions::default(),
            device,
        )
    }

    /// [`DiffusionTryOn::load_with_unet`] with diffusers' `variant` and `torch_dtype`
    /// ([`LoadOptions`]).
    pub fn load_with_options(
        method: DiffusionMethod,
        weights: &Path,
        unet: Option<&Path>,
        attn_checkpoint: Option<&Path>,
        options: &LoadOptions,
        device: &Device,
    ) -> Result<Self> {
        Ok(match method {
            DiffusionMethod::CatVTON => {
                DiffusionTryOn::CatVTON(CatVTONPipeline::from_pretrained_with_options(
                    weights,
                    unet,
                    attn_checkpoint,
                    options,
                    device,
                )?)
            }
            DiffusionMethod::Inpaint => {
                if attn_checkpoint.is_some() {
                    return Err(VtonError::invalid(
                        "attn_checkpoint",
                        "only the catvton method loads an attention checkpoint",
                    ));
                }
                DiffusionTryOn::Inpaint(InpaintTryOnPipeline {
                    parts: DiffusionParts::from_pretrained_with_options(
                        weights, unet, options, device,
                    )?,
                })
            }
        })
    }

    fn device(&self) -> Device {
        match self {
            DiffusionTryOn::CatVTON(p) => p.parts.device.clone(),
            DiffusionTryOn::Inpaint(p) => p.parts.device.clone(),
        }
    }

    /// Runs the try-on on photo inputs.
    pub fn try_on(
        &mut self,
        inputs: &crate::pipelines::geometric::TryOnInputs,
        settings: &DiffusionTryOnSettings,
        callback: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<crate::pipelines::geometric::TryOnOutput> {
        use crate::io::{RgbImage, ValueRange};
        let device = self.device();
        let mut geo =
            crate::pipelines::geometric::GeometricTryOn::default().run(inputs, &device)?;
        let (h, w) = match settings.size {
            Some((h, w)) if h > 0 && w > 0 => (h, w),
            Some(s) => return Err(VtonError::invalid("size", format!("{s:?} has a zero side"))),
            None => {
                let (h, w) = (
                    inputs.person.height / 64 * 64,
                    inputs.person.width / 64 * 64,
                );
                if h == 0 || w == 0 {
                    return Err(VtonError::invalid("person", "is smaller than 64x64 pixels"));
                }
                (h, w)
            }
        };
        let person = inputs
            .person
            .resize(w, h)
            .to_tensor(&device, ValueRange::ZeroOne);
        let mask = geo
            .agnostic_mask
            .resize(w, h)
            .binarized()
            .to_tensor(&device);
        let out = match self {
            DiffusionTryOn::CatVTON(p) => {
                let garment = inputs
                    .garment
                    .fit_padded(w, h, [1.0, 1.0, 1.0])
                    .to_tensor(&device, ValueRange::ZeroOne);
                p.run(person, garment, mask, &settings.sampling, callback)?
            }
            DiffusionTryOn::Inpaint(p) => {
                let inp = InpaintInputs {
                    person,
                    mask,
                    warped_garment: geo
                        .warped_garment
                        .resize(w, h)
                        .to_tensor(&device, ValueRange::ZeroOne),
                    warped_mask: geo.warped_mask.resize(w, h).binarized().to_tensor(&device),
                    encoder_hidden_states: None,
                    start_from_warped: settings.strength,
                };
                p.run(&inp, &settings.sampling, callback)?
            }
        };
        let img = RgbImage::from_tensor(out, ValueRange::ZeroOne)?;
        geo.image = img.resize(inputs.person.width, inputs.person.height);
        Ok(geo)
    }
}
