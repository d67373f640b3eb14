//! `vton try-on --method dci-viton`: DanMenCas/DCI-VITON (not the DCI-VTON model of the
//! paper it cites) from its two `torch.save` checkpoints and a Stable Diffusion VAE folder.

use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use vton_core::burn::tensor::Device;
use vton_core::io::{read_image, RgbImage};
use vton_core::models::dci_viton::files::{
    self, resolve_checkpoints, DciVitonFileOverrides, DciVitonFiles,
};
use vton_core::models::dci_viton::DciVitonUNetOptions;
use vton_core::pipelines::dci_viton::{DciVitonInputs, DciVitonOptions, DciVitonPipeline};
use vton_core::pipelines::diffusion::Control;
use vton_core::schedulers::dci_viton::DciSampler;
use vton_core::{Result, VtonError};

use crate::gan::{need, TryOnFiles};

#[derive(Args, Debug, Clone)]
pub struct DciArgs {
    /// dci-viton: the warping network checkpoint (default: the file in --weights whose
    /// name contains "warping").
    #[arg(long)]
    pub dci_warping: Option<PathBuf>,
    /// dci-viton: the diffusion U-Net checkpoint (default: the other .pth /
    /// .safetensors file in --weights).
    #[arg(long)]
    pub dci_unet: Option<PathBuf>,
    /// dci-viton: the Stable Diffusion VAE, a diffusers folder (default: --weights/vae).
    #[arg(long)]
    pub vae: Option<PathBuf>,
    /// dci-viton: GroupNorm groups of the U-Net (not stored in its checkpoint).
    #[arg(long, default_value_t = 8)]
    pub dci_num_groups: usize,
    /// dci-viton: squeeze-and-excitation reduction (default: read from the weights).
    #[arg(long)]
    pub dci_se_reduction: Option<usize>,
    /// dci-viton: warping size (the original: 256).
    #[arg(long, default_value_t = 256)]
    pub dci_warp_size: usize,
    /// dci-viton: diffusion image size, square (the original: 512).
    #[arg(long, default_value_t = 512)]
    pub dci_image_size: usize,
    /// dci-viton: the sampling loop: `original` (viton_pipeline.py's), `ddim` or `dpm`
    /// (vton's DDIM / DPM-Solver++ on the same betas; fewer steps do).
    #[arg(long, default_value = "original")]
    pub dci_sampler: String,
    /// dci-viton: DDIM eta (with --dci-sampler ddim).
    #[arg(long, default_value_t = 0.0)]
    pub dci_eta: f32,
}

/// The warping and U-Net checkpoints and the VAE folder, from the flags or --weights
/// ([`resolve_checkpoints`]'s rules), with its errors named by the flag to give.
fn resolve(d: &DciArgs, weights: Option<&Path>) -> Result<DciVitonFiles> {
    let overrides = DciVitonFileOverrides {
        warping: d.dci_warping.clone(),
        unet: d.dci_unet.clone(),
        vae: d.vae.clone(),
    };
    resolve_checkpoints(weights, &overrides).map_err(|e| match e {
        VtonError::InvalidArgument { name, message } => {
            let flag = match name.as_str() {
                files::WARPING_ARG => "--dci-warping",
                files::UNET_ARG => "--dci-unet",
                files::VAE_ARG => "--vae",
                _ => return VtonError::InvalidArgument { name, message },
            };
            VtonError::invalid(flag, format!("{message}; give {flag} or --weights DIR"))
        }
        other => other,
    })
}

/// Runs one DCI-VITON try-on; returns (result, garment, warped composite).
pub fn try_on(
    f: &TryOnFiles,
    d: &DciArgs,
    weights: Option<&Path>,
    steps: usize,
    seed: u64,
    device: &Device,
) -> Result<(RgbImage, RgbImage, RgbImage)> {
    let method = "dci-viton";
    let densepose = read_image(need(f.densepose, "--densepose", method)?)?;
    let partial = f.partial(need(f.person, "--person", method)?, method)?;
    let needs_parse = partial.parse.is_none();
    if needs_parse && f.parser.is_none() {
        return Err(VtonError::invalid(
            "--parse",
            "dci-viton needs a LIP parse of the person: give --parse, or --parser (an SCHP \
             checkpoint or a SegFormer folder) to estimate it",
        ));
    }
    let inputs = if partial.needs_pose() || needs_parse || partial.garment_mask.is_none() {
        let pre = f.preprocessor(device)?;
        let mut inputs = pre.complete(partial)?;
        if inputs.garment_mask.is_none() {
            inputs.garment_mask = Some(pre.garment_mask(&inputs.garment)?);
        }
        inputs
    } else {
        partial.into_inputs()?
    };
    let parse = inputs
        .parse
        .as_ref()
        .ok_or_else(|| VtonError::invalid("--parse", "no parse given or estimated"))?;
    let gmask = inputs.garment_mask.as_ref().ok_or_else(|| {
        VtonError::invalid("--garment-mask", "no garment mask given or estimated")
    })?;
    let files = resolve(d, weights)?;
    let pipe = DciVitonPipeline::from_checkpoints(
        &files.warping,
        &files.unet,
        &files.vae,
        &DciVitonUNetOptions {
            num_groups: d.dci_num_groups,
            se_reduction: d.dci_se_reduction,
        },
        device,
    )?;
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(method);
    let out = pipe.run(
        &DciVitonInputs {
            person: &inputs.person,
            parse,
            pose: &inputs.pose,
            densepose: &densepose,
            garment: &inputs.garment,
            garment_mask: gmask,
        },
        &DciVitonOptions {
            warp_size: d.dci_warp_size,
            image_size: d.dci_image_size,
            steps,
            seed,
            sampler: DciSampler::from_name(&d.dci_sampler, d.dci_eta)?,
        },
        |p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.step as u64);
            Control::Continue
        },
    )?;
    bar.finish();
    Ok((out.image, inputs.garment, out.warped))
}
