//! The latent-diffusion methods of `vton try-on`, with a progress bar.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use vton_core::burn::tensor::Device;
use vton_core::pipelines::diffusion::{
    Control, DiffusionMethod, DiffusionTryOn, DiffusionTryOnSettings, Progress, SamplingOptions,
};
use vton_core::pipelines::geometric::{TryOnInputs, TryOnOutput};
use vton_core::weights::{LoadOptions, WeightDtype};
use vton_core::{Result, VtonError};

use crate::TryOnArgs;

fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || VtonError::invalid("--size", format!("'{s}' is not HEIGHTxWIDTH"));
    let (h, w) = s.split_once('x').ok_or_else(bad)?;
    Ok((h.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?))
}

/// Runs catvton or inpaint; the result is at the person's size.
pub fn run(
    args: &TryOnArgs,
    weights: &Path,
    inputs: &TryOnInputs,
    device: &Device,
) -> Result<TryOnOutput> {
    let method = DiffusionMethod::from_name(&args.method)?;
    let settings = DiffusionTryOnSettings {
        sampling: SamplingOptions {
            steps: args.steps.unwrap_or(50),
            guidance_scale: args.guidance,
            seed: args.seed,
            ..Default::default()
        },
        size: args.size.as_deref().map(parse_size).transpose()?,
        strength: args.strength,
    };
    let dtype = match &args.dtype {
        Some(d) => WeightDtype::from_arg("--dtype", d)?,
        None => WeightDtype::F32,
    };
    let options = LoadOptions::dtype(dtype).with_variant(args.variant.as_deref());
    let mut pipe = DiffusionTryOn::load_with_options(
        method,
        weights,
        args.unet.as_deref(),
        args.attn_checkpoint.as_deref(),
        &options,
        device,
    )?;
    let bar = ProgressBar::new(args.steps.unwrap_or(50) as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(args.method.clone());
    let mut cb = |p: Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.step as u64);
        Control::Continue
    };
    let out = pipe.try_on(inputs, &settings, &mut cb)?;
    bar.finish();
    Ok(out)
}
