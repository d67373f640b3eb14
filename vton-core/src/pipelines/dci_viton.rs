//! DanMenCas/DCI-VITON inference as its `viton_pipeline.py` composes it (`WarpingCloth`
//! then `VitonPipeline.__call__`), with the detectors replaced by vton's inputs.
//!
//! 1. Preprocessing (`parsehuman.py`, `WarpingCloth.__call__`), on the person photo at its
//!    own size: the agnostic image (torso, neck and arms grey 128; arm pixels outside the
//!    arm drawings, the face and glasses (13, 4) and the lower body (9, 12, 16-19) kept),
//!    the agnostic mask (the same shapes, 0 on face and lower-body labels), the parse
//!    agnostic (the LIP parse with the drawn area set to 0, hair also kept). The shapes
//!    are VITON-HD's ([`crate::masks::viton_hd`]), drawn from COCO keypoints with the
//!    shoulder midpoint as the neck; vton takes them from its BODY_25 pose.
//! 2. Every image is resized with PIL's bilinear filter to `warp_size` x `warp_size`
//!    (256: the aspect ratio is not kept, as in the original), scaled to `[0, 1]`, and the
//!    warping network gets `input_1 = cat(cloth, cloth_mask)` and `input_2 =
//!    cat(densepose, parse_agnostic * 15)` (the parse as 8-bit label values / 255, three
//!    equal channels, bilinearly resized like an image: labels blend at edges).
//! 3. The warped cloth replaces the agnostic image wherever the warped mask is above 0.5;
//!    the result is resized bilinearly (no antialiasing) to `image_size` (512) and mapped to
//!    `[-1, 1]`; the VAE encodes it (a posterior sample) times 0.18215: `z_cond`.
//! 4. The agnostic mask, PIL-resized to `image_size`, mapped to `[-1, 1]` and
//!    nearest-resized to the latent size, is the U-Net's last input channel.
//! 5. The start latent is `z_cond` noised to the first timestep; the 200-step loop of
//!    [`DciVitonSampler`]; the last `x0` prediction decoded and clamped to `[-1, 1]`. Or
//!    vton's DDIM / DPM-Solver on the same betas ([`DciSampler`]).
//!
//! DensePose is the caller's: an RGB image as the original's `open_pose()` gives it to
//! the network (its fine-segmentation drawing, min-max scaled). The garment mask is the
//! caller's or vton's estimate (the original uses rembg's u2net).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::io::pil::{pil_resize_bilinear, U8Image};
use crate::io::{Joint, Mask, ParseMap, Pose, RgbImage};
use crate::masks::viton_hd::{agnostic_shapes, AgnosticBody};
use crate::models::dci_viton::{DciVitonUNet, DciVitonUNetOptions, DciVitonWarping};
use crate::models::AutoencoderKL;
use crate::nn;
use crate::pipelines::diffusion::{Control, Progress};
use crate::schedulers::dci_viton::{
    sample_with_scheduler, DciBetaSchedule, DciSampler, DciVitonSampler, DciVitonScheduler,
};

/// LIP labels kept from the photo in the agnostic image: glasses, face, pants, skirt,
/// legs, shoes.
const KEEP_IMAGE: [u8; 8] = [4, 13, 9, 12, 16, 17, 18, 19];
/// LIP labels kept in the parse agnostic: those and hair.
const KEEP_PARSE: [u8; 9] = [2, 4, 13, 9, 12, 16, 17, 18, 19];
/// Stable Diffusion's latent scaling, as `viton_pipeline.py` writes it.
const LATENT_SCALE: f32 = 0.18215;

/// The person-side inputs, at the photo's size.
#[derive(Debug, Clone, Copy)]
pub struct DciVitonInputs<'a> {
    pub person: &'a RgbImage,
    /// A 20-label LIP parse of the person at the photo's size (SCHP's, or SegFormer's
    /// 24 labels mapped with [`crate::pipelines::parsing::segformer24_map_to_lip`]).
    pub parse: &'a ParseMap,
    pub pose: &'a Pose,
    /// The DensePose drawing the original feeds the network (any size; resized).
    pub densepose: &'a RgbImage,
    pub garment: &'a RgbImage,
    pub garment_mask: &'a Mask,
}

/// What the preprocessing builds, on the photo's grid (8-bit, as PIL holds it).
#[derive(Debug, Clone)]
pub struct DciVitonAgnostic {
    /// RGB, grey 128 over the area the garment will cover.
    pub agnostic: RgbImage,
    /// 1 inside the area to repaint.
    pub agnostic_mask: Mask,
    /// The LIP parse with the drawn area set to background.
    pub parse_agnostic: ParseMap,
}

fn to_u8(v: f32) -> u8 {
    (v * 255.0).round().clamp(0.0, 255.0) as u8
}

fn rgb_u8(img: &RgbImage) -> U8Image {
    U8Image {
        width: img.width,
        height: img.height,
        channels: 3,
        data: img.data.iter().map(|&v| to_u8(v)).collect(),
    }
}

fn mask_u8(m: &Mask) -> U8Image {
    U8Image {
        width: m.width,
        height: m.height,
        channels: 1,
        data: m.data.iter().map(|&v| to_u8(v)).collect(),
    }
}

/// The body points from a BODY_25 pose, the neck at the shoulder midpoint (the original
/// appends `(kp[5] + kp[6]) / 2` to its COCO keypoints); missing points are `(0, 0)`.
pub fn dci_body(pose: &Pose) -> AgnosticBody {
    let q = |j: Joint| pose.get(j).unwrap_or((0.0, 0.0));
    let (rs, ls) = (q(Joint::RShoulder), q(Joint::LShoulder));
    AgnosticBody {
        r_shoulder: rs,
        r_elbow: q(Joint::RElbow),
        r_wrist: q(Joint::RWrist),
        l_shoulder: ls,
        l_elbow: q(Joint::LElbow),
        l_wrist: q(Joint::LWrist),
        r_hip: q(Joint::RHip),
        l_hip: q(Joint::LHip),
        neck: ((rs.0 + ls.0) / 2.0, (rs.1 + ls.1) / 2.0),
    }
}

/// `get_agnostic_and_mask` and `get_parse_agnostic` (with `WarpingCloth`'s zeroing of
/// the drawn area) on the photo's grid. The original draws its arm masks on a fixed
/// 768x1024 canvas, so it only runs on VITON-HD-sized photos; here they follow the photo.
pub fn dci_agnostic(person: &RgbImage, parse: &ParseMap, pose: &Pose) -> Result<DciVitonAgnostic> {
    if parse.num_labels != 20 {
        return Err(VtonError::invalid(
            "parse",
            format!(
                "DCI-VITON needs a 20-label LIP parse, got a {}-label map",
                parse.num_labels
            ),
        ));
    }
    if (parse.width, parse.height) != (person.width, person.height) {
        return Err(VtonError::SizeMismatch {
            what: "DCI-VITON parse vs person photo".into(),
            expected: format!("{}x{}", person.width, person.height),
            actual: format!("{}x{}", parse.width, parse.height),
        });
    }
    let (w, h) = (person.width, person.height);
    let shapes = agnostic_shapes(w, h, &dci_body(pose), "DCI-VITON agnostic")?;
    let keep_image = shapes.kept(&parse.labels, &KEEP_IMAGE);
    let keep_parse = shapes.kept(&parse.labels, &KEEP_PARSE);
    let mut agnostic = person.clone();
    let mut mask = Mask::zeros(w, h);
    let mut labels = parse.labels.clone();
    for k in 0..w * h {
        let grey = shapes.grey.data[k] >= 0.5;
        if grey && !keep_image[k] {
            for ch in 0..3 {
                agnostic.data[k * 3 + ch] = 128.0 / 255.0;
            }
        }
        if grey && !KEEP_IMAGE.contains(&parse.labels[k]) {
            mask.data[k] = 1.0;
        }
        if grey && !keep_parse[k] {
            labels[k] = 0;
        }
    }
    Ok(DciVitonAgnostic {
        agnostic,
        agnostic_mask: mask,
        parse_agnostic: ParseMap::new(w, h, labels, 20)?,
    })
}

/// An 8-bit image PIL-resized to `size` x `size`, as a `[1, C, size, size]` tensor in
/// `[0, 1]` (`transforms.Resize((size, size))` then `ToTensor()`), times `scale`.
fn pil_tensor(img: &U8Image, size: usize, scale: f32, device: &Device) -> Tensor<4> {
    let r = pil_resize_bilinear(img, size, size);
    let c = r.channels;
    let mut chw = vec![0f32; c * size * size];
    for (k, px) in r.data.chunks_exact(c).enumerate() {
        for (ch, &v) in px.iter().enumerate() {
            chw[ch * size * size + k] = v as f32 / 255.0 * scale;
        }
    }
    Tensor::from_data(TensorData::new(chw, [1, c, size, size]), device)
}

/// The warping network's inputs, the agnostic image and the agnostic mask, at the sizes
/// the original uses them.
#[derive(Debug, Clone)]
pub struct DciVitonWarpInputs {
    /// `[1, 4, S, S]`: cloth RGB and its mask, in `[0, 1]`.
    pub input_1: Tensor<4>,
    /// `[1, 6, S, S]`: DensePose RGB in `[0, 1]` and the parse agnostic (label / 255 * 15).
    pub input_2: Tensor<4>,
    /// `[1, 3, S, S]` in `[0, 1]`.
    pub agnostic: Tensor<4>,
    /// `[1, 1, I, I]` in `[-1, 1]` (`image_size`).
    pub agnostic_mask: Tensor<4>,
}

/// Steps 1 and 2 of the module docs.
pub fn dci_warp_inputs(
    inputs: &DciVitonInputs,
    warp_size: usize,
    image_size: usize,
    device: &Device,
) -> Result<(DciVitonAgnostic, DciVitonWarpInputs)> {
    let g = inputs.garment;
    let gm = inputs.garment_mask;
    if (gm.width, gm.height) != (g.width, g.height) {
        return Err(VtonError::SizeMismatch {
            what: "DCI-VITON garment mask vs garment".into(),
            expected: format!("{}x{}", g.width, g.height),
            actual: format!("{}x{}", gm.width, gm.height),
        });
    }
    let agn = dci_agnostic(inputs.person, inputs.parse, inputs.pose)?;
    let parse3 = U8Image {
        width: agn.parse_agnostic.width,
        height: agn.parse_agnostic.height,
        channels: 3,
        data: agn
            .parse_agnostic
            .labels
            .iter()
            .flat_map(|&l| [l, l, l])
            .collect(),
    };
    let cloth = pil_tensor(&rgb_u8(g), warp_size, 1.0, device);
    let cloth_mask = pil_tensor(&mask_u8(gm), warp_size, 1.0, device);
    let dense = pil_tensor(&rgb_u8(inputs.densepose), warp_size, 1.0, device);
    let parse_t = pil_tensor(&parse3, warp_size, 15.0, device);
    let agnostic = pil_tensor(&rgb_u8(&agn.agnostic), warp_size, 1.0, device);
    let mask = pil_tensor(&mask_u8(&agn.agnostic_mask), image_size, 1.0, device)
        .mul_scalar(2.0)
        .sub_scalar(1.0);
    let w = DciVitonWarpInputs {
        input_1: Tensor::cat(vec![cloth, cloth_mask], 1),
        input_2: Tensor::cat(vec![dense, parse_t], 1),
        agnostic,
        agnostic_mask: mask,
    };
    Ok((agn, w))
}

/// `warped_cloth_into_agnostic`: the warped cloth wherever the warped mask is above 0.5
/// (the original sets those mask values to 1, then copies where the mask equals 1: the
/// same set, as a 1 is above 0.5).
pub fn dci_composite(agnostic: Tensor<4>, warped_c: Tensor<4>, warped_cm: Tensor<4>) -> Tensor<4> {
    let dims = agnostic.dims();
    let on = warped_cm.greater_elem(0.5).expand(dims);
    agnostic.mask_where(on, warped_c)
}

/// Sampling options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DciVitonOptions {
    /// Warping size (the original: 256).
    pub warp_size: usize,
    /// Diffusion image size (the original: 512; the latent is a eighth of it).
    pub image_size: usize,
    /// Sampler steps (the original: 200).
    pub steps: usize,
    /// Seed of the VAE posterior sample (`seed`) and of the start noise (`seed + 1`); the
    /// original draws both from torch's global generator. DDIM with `eta > 0` draws its
    /// step noise from `seed + 2 + step`.
    pub seed: u64,
    /// The sampling loop: the original's (default), or vton's DDIM / DPM-Solver on the
    /// same betas.
    pub sampler: DciSampler,
}

impl Default for DciVitonOptions {
    fn default() -> Self {
        DciVitonOptions {
            warp_size: 256,
            image_size: 512,
            steps: 200,
            seed: 0,
            sampler: DciSampler::Original,
        }
    }
}

/// A DCI-VITON result.
#[derive(Debug, Clone)]
pub struct DciVitonOutput {
    /// `image_size` x `image_size`, in `[0, 1]` (the original returns it in `[-1, 1]`).
    pub image: RgbImage,
    /// The warped cloth pasted into the agnostic image, `warp_size` square, `[0, 1]`.
    pub warped: RgbImage,
    /// The preprocessing, on the photo's grid.
    pub agnostic: DciVitonAgnostic,
}

/// The two DCI-VITON networks, the Stable Diffusion VAE and the noise schedule.
#[derive(Debug)]
pub struct DciVitonPipeline {
    pub warping: DciVitonWarping,
    pub unet: DciVitonUNet,
    pub vae: AutoencoderKL,
    pub scheduler: DciVitonScheduler,
    pub device: Device,
}

fn tensor_to_rgb(x: Tensor<4>) -> Result<RgbImage> {
    let [_, c, h, w] = x.dims();
    if c != 3 {
        return Err(VtonError::Shape {
            what: "DCI-VITON image".into(),
            expected: "[1, 3, H, W]".into(),
            actual: vec![1, c, h, w],
        });
    }
    let v = crate::io::image::tensor_to_vec(x)?;
    let mut data = vec![0f32; h * w * 3];
    for ch in 0..3 {
        for k in 0..h * w {
            data[k * 3 + ch] = v[ch * h * w + k].clamp(0.0, 1.0);
        }
    }
    Ok(RgbImage {
        width: w,
        height: h,
        data,
    })
}

impl DciVitonPipeline {
    /// Loads the warping network and the U-Net from the original's checkpoints and the
    /// VAE from a diffusers folder (`vae/` inside it is looked for too). The schedule is
    /// the original's: 1000 linear betas.
    pub fn from_checkpoints(
        warping: impl AsRef<Path>,
        unet: impl AsRef<Path>,
        vae: impl AsRef<Path>,
        unet_options: &DciVitonUNetOptions,
        device: &Device,
    ) -> Result<Self> {
        let vae = vae.as_ref();
        let vae_dir = if vae.join("vae").join("config.json").is_file() {
            vae.join("vae")
        } else {
            vae.to_path_buf()
        };
        Ok(DciVitonPipeline {
            warping: DciVitonWarping::from_checkpoint(warping, device)?,
            unet: DciVitonUNet::from_checkpoint(unet, unet_options, device)?,
            vae: AutoencoderKL::from_pretrained(vae_dir, device)?,
            scheduler: DciVitonScheduler::new(1000, DciBetaSchedule::Linear)?,
            device: device.clone(),
        })
    }

    /// Loads the pipeline from the parts
    /// [`find_checkpoints`](crate::models::dci_viton::find_checkpoints) finds in a weights
    /// folder `dir`. `num_groups`: the U-Net's GroupNorm groups (not stored in its
    /// checkpoint; the original: 8); the SE reduction is read from the weights.
    pub fn from_dir(dir: impl AsRef<Path>, num_groups: usize, device: &Device) -> Result<Self> {
        let f = crate::models::dci_viton::find_checkpoints(dir.as_ref())?;
        Self::from_checkpoints(
            &f.warping,
            &f.unet,
            &f.vae,
            &DciVitonUNetOptions {
                num_groups,
                se_reduction: None,
            },
            device,
        )
    }

    /// The whole try-on; `progress` sees each sampler step and may cancel.
    pub fn run(
        &self,
        inputs: &DciVitonInputs,
        opts: &DciVitonOptions,
        mut progress: impl FnMut(Progress) -> Control,
    ) -> Result<DciVitonOutput> {
        if opts.image_size % 8 != 0 || opts.image_size == 0 {
            return Err(VtonError::invalid(
                "image_size",
                format!("{} is not a positive multiple of 8", opts.image_size),
            ));
        }
        if opts.steps == 0 {
            return Err(VtonError::invalid("steps", "must be at least 1"));
        }
        let device = self.device.clone();
        let (agn, w) = dci_warp_inputs(inputs, opts.warp_size, opts.image_size, &device)?;
        let (warped_c, warped_cm, _) = self.warping.forward(w.input_1, w.input_2)?;
        let composite = dci_composite(w.agnostic, warped_c, warped_cm);
        let warped = tensor_to_rgb(composite.clone())?;
        let posterior_noise = |dims: [usize; 4]| crate::rng::randn(dims, opts.seed, &device);
        let z_cond = self.condition(composite, opts.image_size, posterior_noise)?;
        let [_, _, lh, lw] = z_cond.dims();
        let mask = nn::resize_nearest(w.agnostic_mask, lh, lw);
        let noise = crate::rng::randn(z_cond.dims(), opts.seed.wrapping_add(1), &device);
        let image = self
            .sample_with(
                &z_cond,
                &mask,
                &noise,
                opts.steps,
                opts.sampler,
                opts.seed.wrapping_add(2),
                &mut progress,
            )?
            .add_scalar(1.0)
            .div_scalar(2.0);
        let image = tensor_to_rgb(image)?;
        Ok(DciVitonOutput {
            image,
            warped,
            agnostic: agn,
        })
    }

    /// Step 3's end: the composite (`[1, 3, S, S]` in `[0, 1]`) resized to `image_size`,
    /// mapped to `[-1, 1]`, encoded, a posterior sample (`noise` gets the latent's shape
    /// and returns standard-normal noise) times 0.18215: `z_cond`.
    pub fn condition(
        &self,
        composite: Tensor<4>,
        image_size: usize,
        noise: impl FnOnce([usize; 4]) -> Tensor<4>,
    ) -> Result<Tensor<4>> {
        let big = nn::resize_bilinear(composite, image_size, image_size)
            .mul_scalar(2.0)
            .sub_scalar(1.0);
        let posterior = self.vae.encode(big)?;
        let n = noise(posterior.mean.dims());
        Ok(posterior.sample_with(n)?.mul_scalar(LATENT_SCALE))
    }

    /// Step 5: `steps` sampler steps from `z_cond` noised with `noise` to the first
    /// timestep, with the latent-size mask; the last `x0` decoded and clamped to
    /// `[-1, 1]` (`[1, 3, H, W]`).
    pub fn sample(
        &self,
        z_cond: &Tensor<4>,
        mask: &Tensor<4>,
        noise: &Tensor<4>,
        steps: usize,
        progress: impl FnMut(Progress) -> Control,
    ) -> Result<Tensor<4>> {
        self.sample_with(
            z_cond,
            mask,
            noise,
            steps,
            DciSampler::Original,
            0,
            progress,
        )
    }

    /// [`DciVitonPipeline::sample`] with a choice of sampler: the original loop, or vton's
    /// DDIM / DPM-Solver on the same betas ([`sample_with_scheduler`], final latent
    /// decoded and clamped the same way). `seed` feeds DDIM's stochastic steps.
    #[allow(clippy::too_many_arguments)]
    pub fn sample_with(
        &self,
        z_cond: &Tensor<4>,
        mask: &Tensor<4>,
        noise: &Tensor<4>,
        steps: usize,
        sampler: DciSampler,
        seed: u64,
        progress: impl FnMut(Progress) -> Control,
    ) -> Result<Tensor<4>> {
        if let Some(mut sched) = sampler.scheduler(&self.scheduler)? {
            let z = sample_with_scheduler(
                sched.as_mut(),
                steps,
                z_cond,
                mask,
                noise,
                sampler.eta(),
                seed,
                |x, t| self.unet.forward(x.clone(), t),
                progress,
            )?;
            return Ok(self
                .vae
                .decode(z.div_scalar(LATENT_SCALE))?
                .clamp(-1.0, 1.0));
        }
        let sampler = DciVitonSampler::new(steps);
        let x_init = sampler.initial_latent(&self.scheduler, z_cond, noise)?;
        let out = sampler.run(
            &self.scheduler,
            x_init,
            z_cond,
            mask,
            |x, t| self.unet.forward(x.clone(), t),
            progress,
        )?;
        Ok(self
            .vae
            .decode(out.x0_pred.div_scalar(LATENT_SCALE))?
            .clamp(-1.0, 1.0))
    }
}
