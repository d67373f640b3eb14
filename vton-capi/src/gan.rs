//! CP-VTON+ and HR-VITON through the C ABI: load a pipeline from its two checkpoint
//! files, fill `vton_inputs` from image buffers, run.

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use vton_core::default_device;
use vton_core::io::ParseMap;
use vton_core::models::cpvton::{GmmConfig, TomConfig};
use vton_core::models::hrviton::{ConditionGeneratorConfig, HRVitonGeneratorConfig, SpadeNoise};
use vton_core::pipelines::cpvton::{CPVTONPipeline, CpvtonOptions, CpvtonPerson};
use vton_core::pipelines::hrviton::{HRVitonImages, HRVitonOptions, HRVitonPipeline};

use crate::vton_status::*;
use crate::{
    core, guard, null, path_arg, rgb_arg, set_field, vton_inputs, vton_result, vton_status,
};

/// Which GAN try-on a `vton_gan_pipeline` runs.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum vton_gan_method {
    /// CP-VTON+: GMM (`gmm_final.pth`) then TOM (`tom_final.pth`), at 256x192.
    VTON_GAN_CPVTON = 0,
    /// HR-VITON: condition generator (`mtviton.pth`) then generator (`gen.pth`).
    VTON_GAN_HRVITON = 1,
}

/// Model options; start from [`vton_gan_params_default`]. Widths must match the
/// checkpoints (a mismatch is `VTON_STATUS_CHECKPOINT` naming the key).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct vton_gan_params {
    /// Fine size (CP-VTON+: 256x192; HR-VITON: 1024x768).
    pub fine_height: u32,
    pub fine_width: u32,
    /// TOM's / the HR-VITON generator's `ngf` (64 released).
    pub ngf: u32,
    /// HR-VITON condition generator's `ngf` (96 released).
    pub tocg_ngf: u32,
    /// CP-VTON+ warp `align_corners` (non-zero: torch 0.4.1 behaviour, the default).
    pub align_corners: i32,
    /// HR-VITON occlusion handling (non-zero: on, the default).
    pub occlusion: i32,
    /// HR-VITON generator noise: non-zero draws it from `seed`, zero drops it.
    pub use_noise: i32,
    pub seed: u64,
}

/// Released defaults for a method.
#[no_mangle]
pub extern "C" fn vton_gan_params_default(method: vton_gan_method) -> vton_gan_params {
    let (fine_height, fine_width) = match method {
        vton_gan_method::VTON_GAN_CPVTON => (256, 192),
        vton_gan_method::VTON_GAN_HRVITON => (1024, 768),
    };
    vton_gan_params {
        fine_height,
        fine_width,
        ngf: 64,
        tocg_ngf: 96,
        align_corners: 1,
        occlusion: 1,
        use_noise: 1,
        seed: 0,
    }
}

enum Gan {
    Cpvton(CPVTONPipeline),
    Hrviton(HRVitonPipeline, vton_gan_params),
}

/// A loaded CP-VTON+ or HR-VITON pipeline (opaque).
pub struct vton_gan_pipeline {
    inner: Gan,
}

/// Loads a pipeline from its two checkpoint files (CP-VTON+: GMM, TOM; HR-VITON:
/// condition generator, generator). `params` may be NULL for the released defaults.
#[no_mangle]
pub unsafe extern "C" fn vton_gan_pipeline_load(
    method: vton_gan_method,
    first_checkpoint: *const c_char,
    second_checkpoint: *const c_char,
    params: *const vton_gan_params,
    out: *mut *mut vton_gan_pipeline,
) -> vton_status {
    guard(|| {
        let a = path_arg(first_checkpoint, "first_checkpoint")?;
        let b = path_arg(second_checkpoint, "second_checkpoint")?;
        if out.is_null() {
            return Err(null("out"));
        }
        let p = params
            .as_ref()
            .copied()
            .unwrap_or_else(|| vton_gan_params_default(method));
        let dev = default_device();
        let (fh, fw) = (p.fine_height as usize, p.fine_width as usize);
        let inner = match method {
            vton_gan_method::VTON_GAN_CPVTON => {
                Gan::Cpvton(core(CPVTONPipeline::from_checkpoints(
                    Path::new(&a),
                    Path::new(&b),
                    GmmConfig {
                        fine_height: fh,
                        fine_width: fw,
                        ..GmmConfig::default()
                    },
                    TomConfig {
                        ngf: p.ngf as usize,
                        ..TomConfig::default()
                    },
                    CpvtonOptions {
                        align_corners: p.align_corners != 0,
                        ..CpvtonOptions::default()
                    },
                    &dev,
                ))?)
            }
            vton_gan_method::VTON_GAN_HRVITON => Gan::Hrviton(
                core(HRVitonPipeline::from_checkpoints(
                    Path::new(&a),
                    Path::new(&b),
                    ConditionGeneratorConfig {
                        ngf: p.tocg_ngf as usize,
                        ..ConditionGeneratorConfig::default()
                    },
                    HRVitonGeneratorConfig {
                        ngf: p.ngf as usize,
                        fine_height: fh,
                        fine_width: fw,
                        ..HRVitonGeneratorConfig::default()
                    },
                    HRVitonOptions {
                        occlusion: p.occlusion != 0,
                        ..HRVitonOptions::default()
                    },
                    &dev,
                ))?,
                p,
            ),
        };
        *out = Box::into_raw(Box::new(vton_gan_pipeline { inner }));
        Ok(())
    })
}

/// Frees a GAN pipeline (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn vton_gan_pipeline_free(pipeline: *mut vton_gan_pipeline) {
    if !pipeline.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(pipeline))));
    }
}

/// Runs the pipeline. CP-VTON+ reads person, keypoints, garment, garment mask and a person
/// mask or parse; HR-VITON reads garment, garment mask, parse-agnostic, DensePose and
/// agnostic images. The result is at the fine size; it has the warped garment and mask.
#[no_mangle]
pub unsafe extern "C" fn vton_try_on_gan(
    pipeline: *const vton_gan_pipeline,
    inputs: *const vton_inputs,
    out: *mut *mut vton_result,
) -> vton_status {
    guard(|| {
        let pipe = pipeline.as_ref().ok_or_else(|| null("pipeline"))?;
        let inp = inputs.as_ref().ok_or_else(|| null("inputs"))?;
        if out.is_null() {
            return Err(null("out"));
        }
        let missing = |what: &str| {
            (
                VTON_STATUS_INVALID_ARGUMENT,
                format!("{what} was not set on the inputs"),
            )
        };
        let garment = inp.garment.as_ref().ok_or_else(|| missing("garment"))?;
        let garment_mask = inp
            .garment_mask
            .as_ref()
            .ok_or_else(|| missing("garment mask"))?;
        let dev = default_device();
        let r = match &pipe.inner {
            Gan::Cpvton(p) => {
                let person = inp.person.as_ref().ok_or_else(|| missing("person"))?;
                let pose = inp.pose.as_ref().ok_or_else(|| missing("keypoints"))?;
                let (h, w) = p.fine_size();
                let prepared = core(CpvtonPerson::prepare(
                    person,
                    pose,
                    inp.parse.as_ref(),
                    inp.person_mask.as_ref(),
                    w,
                    h,
                ))?;
                let r = core(p.try_on(&prepared, garment, garment_mask, &dev))?;
                vton_result {
                    image: r.image,
                    warped_garment: Some(r.warped_cloth),
                    agnostic_image: None,
                    agnostic_mask: None,
                    warped_mask: Some(r.warped_mask),
                }
            }
            Gan::Hrviton(p, prm) => {
                let images = HRVitonImages {
                    cloth: garment.clone(),
                    cloth_mask: garment_mask.clone(),
                    parse_agnostic: inp
                        .parse_agnostic
                        .clone()
                        .ok_or_else(|| missing("parse-agnostic map"))?,
                    densepose: inp
                        .densepose
                        .clone()
                        .ok_or_else(|| missing("DensePose image"))?,
                    agnostic: inp
                        .agnostic
                        .clone()
                        .ok_or_else(|| missing("agnostic image"))?,
                };
                let mut noise = if prm.use_noise != 0 {
                    SpadeNoise::seeded(prm.seed)
                } else {
                    SpadeNoise::Zero
                };
                let r = core(p.try_on(&images, &mut noise, &dev))?;
                vton_result {
                    image: r.image,
                    warped_garment: Some(r.warped_cloth),
                    agnostic_image: Some(images.agnostic),
                    agnostic_mask: None,
                    warped_mask: Some(r.warped_mask),
                }
            }
        };
        *out = Box::into_raw(Box::new(r));
        Ok(())
    })
}

unsafe fn labels_arg(
    labels: *const u8,
    width: u32,
    height: u32,
) -> Result<ParseMap, (vton_status, String)> {
    if labels.is_null() {
        return Err(null("labels"));
    }
    let n = (width as usize).checked_mul(height as usize).ok_or((
        VTON_STATUS_INVALID_ARGUMENT,
        "labels: size overflows".to_string(),
    ))?;
    core(ParseMap::new(
        width as usize,
        height as usize,
        std::slice::from_raw_parts(labels, n).to_vec(),
        20,
    ))
}

/// Sets the person's LIP parse (one label 0..19 per pixel, `width * height` bytes).
#[no_mangle]
pub unsafe extern "C" fn vton_inputs_set_parse(
    inputs: *mut vton_inputs,
    labels: *const u8,
    width: u32,
    height: u32,
) -> vton_status {
    set_field(
        inputs,
        |i| &mut i.parse,
        || labels_arg(labels, width, height),
    )
}

/// Reads the person's LIP parse from a label PNG (palette or grey values are the labels).
#[no_mangle]
pub unsafe extern "C" fn vton_inputs_read_parse(
    inputs: *mut vton_inputs,
    path: *const c_char,
) -> vton_status {
    set_field(
        inputs,
        |i| &mut i.parse,
        || core(ParseMap::read(path_arg(path, "path")?)),
    )
}

/// Sets HR-VITON's parse-agnostic map (LIP labels, `width * height` bytes).
#[no_mangle]
pub unsafe extern "C" fn vton_inputs_set_parse_agnostic(
    inputs: *mut vton_inputs,
    labels: *const u8,
    width: u32,
    height: u32,
) -> vton_status {
    set_field(
        inputs,
        |i| &mut i.parse_agnostic,
        || labels_arg(labels, width, height),
    )
}

/// Reads HR-VITON's parse-agnostic map from a label PNG.
#[no_mangle]
pub unsafe extern "C" fn vton_inputs_read_parse_agnostic(
    inputs: *mut vton_inputs,
    path: *const c_char,
) -> vton_status {
    set_field(
        inputs,
        |i| &mut i.parse_agnostic,
        || core(ParseMap::read(path_arg(path, "path")?)),
    )
}

/// Sets the DensePose image (8-bit RGB) for HR-VITON.
#[no_mangle]
pub unsafe extern "C" fn vton_inputs_set_densepose_rgb(
    inputs: *mut vton_inputs,
    rgb: *const u8,
    width: u32,
    height: u32,
) -> vton_status {
    set_field(
        inputs,
        |i| &mut i.densepose,
        || rgb_arg(rgb, width, height, "rgb"),
    )
}

/// Sets the agnostic person image (8-bit RGB) for HR-VITON.
#[no_mangle]
pub unsafe extern "C" fn vton_inputs_set_agnostic_rgb(
    inputs: *mut vton_inputs,
    rgb: *const u8,
    width: u32,
    height: u32,
) -> vton_status {
    set_field(
        inputs,
        |i| &mut i.agnostic,
        || rgb_arg(rgb, width, height, "rgb"),
    )
}
