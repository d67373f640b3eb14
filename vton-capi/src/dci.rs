//! DanMenCas/DCI-VITON through the diffusion entry points: `vton_pipeline_load` with
//! `VTON_METHOD_DCI_VITON` finds the two checkpoints and `vae/` in the weights folder
//! (the rules of `vton_core::models::dci_viton::files`, shared with the CLI), and
//! `vton_try_on_diffusion` runs `DciVitonPipeline::run` on the inputs.

use std::ffi::c_char;
use std::path::Path;

use vton_core::default_device;
use vton_core::masks::{estimate_garment_mask, GarmentMaskOptions};
use vton_core::pipelines::dci_viton::{DciVitonInputs, DciVitonOptions, DciVitonPipeline};
use vton_core::pipelines::diffusion::{Control, Progress};
use vton_core::pipelines::preprocess::PartialInputs;

use crate::vton_status::*;
use crate::{
    core, guard, null, path_arg, vton_diffusion_params, vton_inputs, vton_pipeline, vton_result,
    vton_status, Pipeline,
};

/// The original's U-Net GroupNorm groups (`diffusionmodel.py` builds every
/// `AdaptiveGroupNorm` with 8); not stored in the checkpoint.
pub(crate) const DCI_NUM_GROUPS: usize = 8;
/// The original's warping size.
const DCI_WARP_SIZE: usize = 256;
/// The original's diffusion image size.
const DCI_IMAGE_SIZE: usize = 512;

type CResult<T> = Result<T, (vton_status, String)>;

pub(crate) fn load(dir: &str, num_groups: usize) -> CResult<DciVitonPipeline> {
    core(DciVitonPipeline::from_dir(
        Path::new(dir),
        num_groups,
        &default_device(),
    ))
}

/// Loads DCI-VITON from a weights folder as `vton_pipeline_load(VTON_METHOD_DCI_VITON, ...)`
/// does, with the U-Net's GroupNorm group count given (`num_groups`; 0 = the original's
/// 8), for checkpoints trained with another count (it is not stored in them; a count that
/// does not divide the U-Net's widths is `VTON_STATUS_CHECKPOINT`).
#[no_mangle]
pub unsafe extern "C" fn vton_pipeline_load_dci_viton(
    weights_dir: *const c_char,
    num_groups: u32,
    out: *mut *mut vton_pipeline,
) -> vton_status {
    guard(|| {
        let dir = path_arg(weights_dir, "weights_dir")?;
        if out.is_null() {
            return Err(null("out"));
        }
        let g = if num_groups == 0 {
            DCI_NUM_GROUPS
        } else {
            num_groups as usize
        };
        let p = load(&dir, g)?;
        *out = Box::into_raw(Box::new(vton_pipeline {
            inner: Pipeline::DciViton(Box::new(p)),
        }));
        Ok(())
    })
}

fn missing(what: &str, how: &str) -> (vton_status, String) {
    (
        VTON_STATUS_INVALID_ARGUMENT,
        format!("{what} was not set on the inputs: DCI-VITON needs it ({how})"),
    )
}

/// The DCI-VITON run of `vton_try_on_diffusion` (see its documentation).
pub(crate) fn try_on(
    pipe: &DciVitonPipeline,
    inp: &vton_inputs,
    prm: &vton_diffusion_params,
    progress: impl FnMut(Progress) -> Control,
) -> CResult<vton_result> {
    let person = inp
        .person
        .clone()
        .ok_or_else(|| missing("person", "vton_inputs_set_person_rgb"))?;
    let garment = inp
        .garment
        .clone()
        .ok_or_else(|| missing("garment", "vton_inputs_set_garment_rgb"))?;
    let densepose = inp.densepose.as_ref().ok_or_else(|| {
        missing(
            "DensePose image",
            "vton_inputs_set_densepose_rgb; the C API does not estimate it",
        )
    })?;
    let parse = inp.parse.clone().ok_or_else(|| {
        missing(
            "LIP parse",
            "vton_inputs_set_parse or vton_inputs_read_parse; the C API has no human parser \
             to estimate it",
        )
    })?;
    let image_size = match (prm.height, prm.width) {
        (0, 0) => DCI_IMAGE_SIZE,
        (h, w) if h == w => h as usize,
        (h, w) => {
            return Err((
                VTON_STATUS_INVALID_ARGUMENT,
                format!(
                    "DCI-VITON samples a square image: params height ({h}) and width ({w}) \
                     must be equal, or both 0 for the original's {DCI_IMAGE_SIZE}"
                ),
            ))
        }
    };
    // Keypoints estimated when not set (the parse is set, so no person mask is needed).
    let t = core(crate::estimate::complete(PartialInputs {
        person,
        pose: inp.pose.clone(),
        person_mask: inp.person_mask.clone(),
        parse: Some(parse),
        garment,
        garment_mask: inp.garment_mask.clone(),
        category: Default::default(),
    }))?;
    let garment_mask = match &t.garment_mask {
        Some(m) => m.clone(),
        None => core(estimate_garment_mask(
            &t.garment,
            &GarmentMaskOptions::default(),
        ))?,
    };
    let parse = t.parse.as_ref().ok_or_else(|| {
        (
            VTON_STATUS_OTHER,
            "the LIP parse was lost while completing the inputs (please report)".to_string(),
        )
    })?;
    let out = core(pipe.run(
        &DciVitonInputs {
            person: &t.person,
            parse,
            pose: &t.pose,
            densepose,
            garment: &t.garment,
            garment_mask: &garment_mask,
        },
        &DciVitonOptions {
            warp_size: image_size.min(DCI_WARP_SIZE),
            image_size,
            steps: prm.steps as usize,
            seed: prm.seed,
            ..Default::default()
        },
        progress,
    ))?;
    Ok(vton_result {
        image: out.image,
        warped_garment: Some(out.warped),
        agnostic_image: Some(out.agnostic.agnostic),
        agnostic_mask: Some(out.agnostic.agnostic_mask),
        warped_mask: None,
    })
}
