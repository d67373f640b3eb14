//! The loaded model and one try-on on it, from decoded inputs. The pipelines are
//! vton-core's: the same entry points `vton try-on` calls (geometric, the diffusion
//! try-on, CP-VTON+ and HR-VITON), with keypoints, person mask and garment mask estimated
//! by the bundled preprocessor when the request does not carry them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use vton_core::burn::tensor::Device;
use vton_core::io::{Mask, ParseMap, Pose, RgbImage};
use vton_core::masks::{agnostic_from_parse, agnostic_image, parse_agnostic, GarmentCategory};
use vton_core::models::hrviton::SpadeNoise;
use vton_core::pipelines::cpvton::{CPVTONPipeline, CpvtonPerson};
use vton_core::pipelines::diffusion::{
    Control, DiffusionTryOn, DiffusionTryOnSettings, SamplingOptions,
};
use vton_core::pipelines::geometric::{GeometricTryOn, TryOnInputs};
use vton_core::pipelines::hrviton::{HRVitonImages, HRVitonPipeline};
use vton_core::pipelines::preprocess::{PartialInputs, Preprocessor};
use vton_core::VtonError;

use crate::error::ApiError;

/// The model a server runs, loaded once (one value a server: the variants' sizes do not
/// matter).
#[allow(clippy::large_enum_variant)]
pub enum Model {
    /// No weights.
    Geometric(GeometricTryOn),
    /// catvton or inpaint: sampling takes `&mut`, so requests take turns on it.
    Diffusion(Mutex<DiffusionTryOn>),
    Cpvton(CPVTONPipeline),
    /// HR-VITON with its generator noise seed (`None`: no noise).
    Hrviton(HRVitonPipeline, Option<u64>),
}

/// A model with the estimators and the device it runs on.
pub struct Engine {
    pub method: String,
    pub model: Model,
    pub preprocessor: Preprocessor,
    pub device: Device,
}

/// Decoded inputs of one request.
pub struct Request {
    pub person: RgbImage,
    pub garment: RgbImage,
    pub person_mask: Option<Mask>,
    pub garment_mask: Option<Mask>,
    pub keypoints: Option<Pose>,
    pub parse: Option<ParseMap>,
    /// HR-VITON only: DensePose image, and optionally the parse-agnostic map and agnostic image.
    pub densepose: Option<RgbImage>,
    pub parse_agnostic: Option<ParseMap>,
    pub agnostic: Option<RgbImage>,
    pub category: GarmentCategory,
    pub steps: usize,
    pub guidance: f32,
    pub seed: u64,
}

/// A try-on's result: the image and the mask `return_mask` sends (the agnostic mask for
/// geometric and diffusion methods, the warped garment mask for CP-VTON+ and HR-VITON).
pub struct Output {
    pub image: RgbImage,
    pub mask: Mask,
}

fn lib(field: &str) -> impl Fn(VtonError) -> ApiError + '_ {
    move |e| ApiError::from_vton(e, Some(field))
}

impl Engine {
    fn complete(&self, r: &Request) -> Result<TryOnInputs, ApiError> {
        let partial = PartialInputs {
            person: r.person.clone(),
            pose: r.keypoints.clone(),
            person_mask: r.person_mask.clone(),
            parse: r.parse.clone(),
            garment: r.garment.clone(),
            garment_mask: r.garment_mask.clone(),
            category: r.category,
        };
        let mut inputs = if partial.needs_pose() {
            self.preprocessor.complete(partial)
        } else {
            partial.into_inputs()
        }
        .map_err(lib("person_image"))?;
        if inputs.garment_mask.is_none() {
            inputs.garment_mask = Some(
                self.preprocessor
                    .garment_mask(&inputs.garment)
                    .map_err(lib("garment_image"))?,
            );
        }
        Ok(inputs)
    }

    /// Runs one try-on. `cancel` is polled between denoising steps (diffusion methods):
    /// a request past its timeout stops there instead of holding the worker.
    pub fn run(&self, r: Request, cancel: &AtomicBool) -> Result<Output, ApiError> {
        match &self.model {
            Model::Geometric(g) => {
                let inputs = self.complete(&r)?;
                let out = g.run(&inputs, &self.device)?;
                Ok(Output {
                    image: out.image,
                    mask: out.agnostic_mask,
                })
            }
            Model::Diffusion(pipe) => {
                let inputs = self.complete(&r)?;
                let settings = DiffusionTryOnSettings {
                    sampling: SamplingOptions {
                        steps: r.steps,
                        guidance_scale: r.guidance,
                        seed: r.seed,
                        ..Default::default()
                    },
                    size: None,
                    strength: None,
                };
                let mut pipe = pipe.lock().unwrap_or_else(|p| p.into_inner());
                let mut cb = |_| {
                    if cancel.load(Ordering::Relaxed) {
                        Control::Cancel
                    } else {
                        Control::Continue
                    }
                };
                let out = pipe.try_on(&inputs, &settings, &mut cb)?;
                Ok(Output {
                    image: out.image,
                    mask: out.agnostic_mask,
                })
            }
            Model::Cpvton(pipe) => {
                let inputs = self.complete(&r)?;
                let gmask = inputs
                    .garment_mask
                    .as_ref()
                    .ok_or_else(|| ApiError::Internal {
                        message: "no garment mask estimated".into(),
                    })?;
                let (h, w) = pipe.fine_size();
                let p = CpvtonPerson::prepare(
                    &inputs.person,
                    &inputs.pose,
                    inputs.parse.as_ref(),
                    inputs.person_mask.as_ref(),
                    w,
                    h,
                )
                .map_err(lib("person_image"))?;
                let out = pipe.try_on(&p, &inputs.garment, gmask, &self.device)?;
                Ok(Output {
                    image: out.image,
                    mask: out.warped_mask,
                })
            }
            Model::Hrviton(pipe, noise_seed) => {
                let densepose = r.densepose.clone().ok_or_else(|| ApiError::MissingField {
                    field: "densepose".into(),
                })?;
                let cloth_mask = match &r.garment_mask {
                    Some(m) => m.clone(),
                    None => self
                        .preprocessor
                        .garment_mask(&r.garment)
                        .map_err(lib("garment_image"))?,
                };
                // As `vton try-on --method hrviton`: the parse-agnostic map and the agnostic
                // image are made from the person's parse and pose when not sent.
                let (pa, ag) = match (r.parse_agnostic.clone(), r.agnostic.clone()) {
                    (Some(pa), Some(ag)) => (pa, ag),
                    (pa, ag) => {
                        let inputs = self.complete(&r)?;
                        let parse =
                            inputs
                                .parse
                                .as_ref()
                                .ok_or_else(|| ApiError::MissingField {
                                    field: "parse".into(),
                                })?;
                        let pa = match pa {
                            Some(pa) => pa,
                            None => parse_agnostic(parse, &inputs.pose).map_err(lib("parse"))?,
                        };
                        let ag = match ag {
                            Some(ag) => ag,
                            None => agnostic_image(
                                &inputs.person,
                                &agnostic_from_parse(
                                    parse,
                                    &inputs.pose,
                                    GarmentCategory::UpperBody,
                                )
                                .map_err(lib("parse"))?,
                            )
                            .map_err(lib("person_image"))?,
                        };
                        (pa, ag)
                    }
                };
                let images = HRVitonImages {
                    cloth: r.garment,
                    cloth_mask,
                    parse_agnostic: pa,
                    densepose,
                    agnostic: ag,
                };
                let mut noise = match noise_seed {
                    Some(s) => SpadeNoise::seeded(*s),
                    None => SpadeNoise::Zero,
                };
                let out = pipe.try_on(&images, &mut noise, &self.device)?;
                Ok(Output {
                    image: out.image,
                    mask: out.warped_mask,
                })
            }
        }
    }
}

/// What the server loads at start, on a thread of its own.
pub type Loader = Box<dyn FnOnce() -> vton_core::Result<Engine> + Send>;

/// The geometric engine (no weights): the bundled estimators only.
pub fn geometric(device: Device) -> vton_core::Result<Engine> {
    Ok(Engine {
        method: "geometric".into(),
        preprocessor: Preprocessor::bundled(&device)?,
        model: Model::Geometric(GeometricTryOn::default()),
        device,
    })
}
