//! The latent-diffusion methods of `vton try-on`, with a progress bar.

use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use vton_core::burn::tensor::Device;
use vton_core::io::{Mask, RgbImage, ValueRange};
use vton_core::pipelines::diffusion::{
    CatVTONPipeline, Control, InpaintInputs, InpaintTryOnPipeline, SamplingOptions,
};
use vton_core::pipelines::geometric::{TryOnInputs, TryOnOutput};
use vton_core::{Result, VtonError};

use crate::TryOnArgs;

fn working_size(args: &TryOnArgs, person: &RgbImage) -> Result<(usize, usize)> {
    match &args.size {
        Some(s) => {
            let bad = || VtonError::invalid("--size", format!("'{s}' is not HEIGHTxWIDTH"));
            let (h, w) = s.split_once('x').ok_or_else(bad)?;
            Ok((h.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?))
        }
        None => {
            let h = person.height / 64 * 64;
            let w = person.width / 64 * 64;
            if h == 0 || w == 0 {
                return Err(VtonError::invalid("person", "is smaller than 64x64 pixels"));
            }
            Ok((h, w))
        }
    }
}

/// Runs catvton or inpaint; returns the result at the person's original size.
pub fn run(
    args: &TryOnArgs,
    weights: &Path,
    inputs: &TryOnInputs,
    geo: &TryOnOutput,
    device: &Device,
) -> Result<RgbImage> {
    let (h, w) = working_size(args, &inputs.person)?;
    let person = inputs.person.resize(w, h);
    let mask = geo.agnostic_mask.resize(w, h).binarized();
    let bar = ProgressBar::new(args.steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} steps ({elapsed}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(args.method.clone());
    let mut cb = |p: vton_core::pipelines::diffusion::Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.step as u64);
        Control::Continue
    };
    let opts = SamplingOptions {
        steps: args.steps,
        guidance_scale: args.guidance,
        seed: args.seed,
        ..Default::default()
    };
    let t = |img: &RgbImage| img.to_tensor(device, ValueRange::ZeroOne);
    let m = |mk: &Mask| mk.to_tensor(device);
    let out = if args.method == "catvton" {
        let mut pipe =
            CatVTONPipeline::from_pretrained(weights, args.attn_checkpoint.as_deref(), device)?;
        let garment = inputs.garment.fit_padded(w, h, [1.0, 1.0, 1.0]);
        pipe.run(t(&person), t(&garment), m(&mask), &opts, &mut cb)?
    } else {
        let mut pipe = InpaintTryOnPipeline::from_pretrained(weights, device)?;
        let inp = InpaintInputs {
            person: t(&person),
            mask: m(&mask),
            warped_garment: t(&geo.warped_garment.resize(w, h)),
            warped_mask: m(&geo.warped_mask.resize(w, h).binarized()),
            encoder_hidden_states: None,
            start_from_warped: args.strength,
        };
        pipe.run(&inp, &opts, &mut cb)?
    };
    bar.finish();
    let img = RgbImage::from_tensor(out, ValueRange::ZeroOne)?;
    Ok(img.resize(inputs.person.width, inputs.person.height))
}
