//! CP-VTON+ end to end, as its `test.py` runs it: GMM on the GMM-stage agnostic and the
//! cloth mask, TPS warp of cloth and mask, TOM on the TOM-stage agnostic and the warped
//! pair, composite `p_rendered * (1 - m) + warped_cloth * m`.
//!
//! The agnostic representation is built the way CP-VTON+'s `cp_dataset.py` builds it:
//! body shape (the body mask shrunk 16x and grown back with PIL's bilinear filter),
//! the head region of the photo (GMM stage: hat, sunglasses, face; TOM stage also hair,
//! pants, skirt and legs), and 18 pose channels with an 11x11 square per keypoint
//! (radius 5), all in [-1, 1].

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::io::pose::COCO18_TO_BODY25;
use crate::io::{Joint, Mask, ParseMap, Pose, RgbImage, ValueRange};
use crate::masks::draw::disc;
use crate::models::cpvton::{Gmm, GmmConfig, Tom, TomConfig};
use crate::warp::grid::{grid_sample, GridSampleOptions, PaddingMode, SampleMode};

/// LIP labels of the head region in the GMM-stage agnostic.
pub const GMM_HEAD_LABELS: [u8; 3] = [1, 4, 13];
/// LIP labels kept from the photo in the TOM-stage agnostic.
pub const TOM_HEAD_LABELS: [u8; 8] = [1, 2, 4, 9, 12, 13, 16, 17];

/// Options of the CP-VTON+ chain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpvtonOptions {
    /// `align_corners` of the warp's `grid_sample`. The released checkpoints were
    /// trained with torch 0.4.1, whose `grid_sample` behaves as `align_corners=True`
    /// (the default here); running the repository on torch >= 1.3 gives `False`.
    pub align_corners: bool,
    /// Half side of the pose squares (`opt.radius`, 5 in test.py).
    pub radius: usize,
}

impl Default for CpvtonOptions {
    fn default() -> Self {
        CpvtonOptions {
            align_corners: true,
            radius: 5,
        }
    }
}

/// A person prepared at the model's fine size.
#[derive(Debug, Clone)]
pub struct CpvtonPerson {
    pub image: RgbImage,
    /// Body shape (CP-VTON+'s `image-mask`, or parse > 0).
    pub body_mask: Mask,
    pub gmm_head: Mask,
    pub tom_head: Mask,
    /// Keypoints in fine-size pixels.
    pub pose: Pose,
}

/// Where a photo lands when letterboxed into `w x h`: scale and offsets.
#[derive(Debug, Clone, Copy)]
struct Letterbox {
    s: f64,
    ox: f64,
    oy: f64,
    w: usize,
    h: usize,
}

impl Letterbox {
    fn new(sw: usize, sh: usize, w: usize, h: usize) -> Self {
        let s = (w as f64 / sw as f64).min(h as f64 / sh as f64);
        let (nw, nh) = ((sw as f64 * s).round(), (sh as f64 * s).round());
        Letterbox {
            s,
            ox: ((w as f64 - nw) / 2.0).floor(),
            oy: ((h as f64 - nh) / 2.0).floor(),
            w,
            h,
        }
    }

    fn inner(&self, sw: usize, sh: usize) -> (usize, usize) {
        (
            ((sw as f64 * self.s).round() as usize).clamp(1, self.w),
            ((sh as f64 * self.s).round() as usize).clamp(1, self.h),
        )
    }

    /// The photo placed on a white canvas (PIL-style antialiased resampling, so a
    /// 1024x768 photo shrinks to 256x192 without aliasing).
    fn image(&self, im: &RgbImage) -> RgbImage {
        let (iw, ih) = self.inner(im.width, im.height);
        let small = im.resize_pil_bilinear(iw, ih);
        let mut out = RgbImage::filled(self.w, self.h, [1.0, 1.0, 1.0]);
        for y in 0..ih {
            let d = ((y + self.oy as usize) * self.w + self.ox as usize) * 3;
            out.data[d..d + iw * 3].copy_from_slice(&small.data[y * iw * 3..(y + 1) * iw * 3]);
        }
        out
    }

    fn mask(&self, m: &Mask) -> Mask {
        let (iw, ih) = self.inner(m.width, m.height);
        let small = m.resize_pil_bilinear(iw, ih);
        let mut out = Mask::zeros(self.w, self.h);
        for y in 0..ih {
            for x in 0..iw {
                out.data[(y + self.oy as usize) * self.w + x + self.ox as usize] =
                    small.data[y * iw + x];
            }
        }
        out
    }

    fn parse(&self, p: &ParseMap) -> ParseMap {
        let (iw, ih) = self.inner(p.width, p.height);
        let small = p.resize_nearest(iw, ih);
        let mut labels = vec![0u8; self.w * self.h];
        for y in 0..ih {
            for x in 0..iw {
                labels[(y + self.oy as usize) * self.w + x + self.ox as usize] =
                    small.labels[y * iw + x];
            }
        }
        ParseMap {
            width: self.w,
            height: self.h,
            labels,
            num_labels: p.num_labels,
        }
    }

    fn pose(&self, p: &Pose) -> Pose {
        let mut out = p.clone();
        for k in out.keypoints.iter_mut().filter(|k| k.present()) {
            k.x = (k.x as f64 * self.s + self.ox) as f32;
            k.y = (k.y as f64 * self.s + self.oy) as f32;
        }
        out
    }
}

/// A head region from keypoints, for photos without a parse map: a disc around the face
/// (TOM stage: a larger one, with the hair) inside the person mask; the TOM stage also
/// keeps the body below the hips (trousers, legs).
fn head_from_pose(pose: &Pose, person: &Mask, tom: bool) -> Result<Mask> {
    let neck = pose.get(Joint::Neck);
    let face: Vec<(f32, f32)> = [
        Joint::Nose,
        Joint::REye,
        Joint::LEye,
        Joint::REar,
        Joint::LEar,
    ]
    .iter()
    .filter_map(|&j| pose.get(j))
    .collect();
    let (Some(neck), false) = (neck, face.is_empty()) else {
        return Err(VtonError::MissingKeypoints {
            operation: "CP-VTON+ head region without a parse map".into(),
            missing: "Neck and at least one of Nose, eyes, ears".into(),
        });
    };
    let n = face.len() as f32;
    let c = (
        face.iter().map(|p| p.0).sum::<f32>() / n,
        face.iter().map(|p| p.1).sum::<f32>() / n,
    );
    let d = ((c.0 - neck.0).powi(2) + (c.1 - neck.1).powi(2))
        .sqrt()
        .max(2.0);
    let mut m = Mask::zeros(person.width, person.height);
    disc(&mut m, c, if tom { 1.1 * d } else { 0.8 * d });
    if tom {
        let hips: Vec<f32> = [Joint::RHip, Joint::LHip, Joint::MidHip]
            .iter()
            .filter_map(|&j| pose.get(j).map(|p| p.1))
            .collect();
        if let Some(y0) = hips.iter().copied().reduce(f32::max) {
            for y in (y0.max(0.0) as usize)..m.height {
                for x in 0..m.width {
                    m.data[y * m.width + x] = 1.0;
                }
            }
        }
    }
    Ok(m.and(&person.binarized()))
}

impl CpvtonPerson {
    /// Letterboxes a person photo into `width x height` (white margins) and derives the
    /// body mask and head regions from the parse map when given (the original's inputs),
    /// else from the person mask and the keypoints.
    pub fn prepare(
        image: &RgbImage,
        pose: &Pose,
        parse: Option<&ParseMap>,
        person_mask: Option<&Mask>,
        width: usize,
        height: usize,
    ) -> Result<Self> {
        let lb = Letterbox::new(image.width, image.height, width, height);
        let img = lb.image(image);
        let pose = lb.pose(pose);
        let parse = parse.map(|p| {
            if (p.width, p.height) != (image.width, image.height) {
                return Err(VtonError::SizeMismatch {
                    what: "parse map vs person image".into(),
                    expected: format!("{}x{}", image.width, image.height),
                    actual: format!("{}x{}", p.width, p.height),
                });
            }
            Ok(lb.parse(p))
        });
        let parse = parse.transpose()?;
        let body_mask = match (person_mask, &parse) {
            (Some(m), _) => {
                if (m.width, m.height) != (image.width, image.height) {
                    return Err(VtonError::SizeMismatch {
                        what: "person mask vs person image".into(),
                        expected: format!("{}x{}", image.width, image.height),
                        actual: format!("{}x{}", m.width, m.height),
                    });
                }
                lb.mask(m).binarized()
            }
            (None, Some(p)) => {
                let all: Vec<u8> = (1..p.num_labels).collect();
                p.mask_of(&all)
            }
            (None, None) => {
                return Err(VtonError::invalid(
                    "person_mask",
                    "CP-VTON+ needs a person mask or a parse map",
                ))
            }
        };
        let (gmm_head, tom_head) = match &parse {
            Some(p) => (p.mask_of(&GMM_HEAD_LABELS), p.mask_of(&TOM_HEAD_LABELS)),
            None => (
                head_from_pose(&pose, &body_mask, false)?,
                head_from_pose(&pose, &body_mask, true)?,
            ),
        };
        Ok(CpvtonPerson {
            image: img,
            body_mask,
            gmm_head,
            tom_head,
            pose,
        })
    }

    /// The body-shape plane and the 18 pose planes, which both stages share.
    fn shape_and_pose(&self, radius: usize) -> (Vec<f32>, Vec<f32>) {
        let (w, h) = (self.image.width, self.image.height);
        let n = w * h;
        // Body shape at 1/16 and back, PIL bilinear, in [-1, 1].
        let shape = self
            .body_mask
            .resize_pil_bilinear((w / 16).max(1), (h / 16).max(1))
            .resize_pil_bilinear(w, h);
        let shape = shape.data.iter().map(|v| v * 2.0 - 1.0).collect();
        // 18 COCO keypoints, an inclusive square of side 2r+1 each.
        let r = radius as i64;
        let mut pose = vec![-1f32; 18 * n];
        for (i, &b) in COCO18_TO_BODY25.iter().enumerate() {
            let plane = &mut pose[i * n..(i + 1) * n];
            if let Some(k) = self.pose.keypoints.get(b).filter(|k| k.present()) {
                if k.x > 1.0 && k.y > 1.0 {
                    let (x, y) = (k.x as i64, k.y as i64);
                    for yy in (y - r).max(0)..=(y + r).min(h as i64 - 1) {
                        for xx in (x - r).max(0)..=(x + r).min(w as i64 - 1) {
                            plane[yy as usize * w + xx as usize] = 1.0;
                        }
                    }
                }
            }
        }
        (shape, pose)
    }

    /// `cat([shape, head, pose])` with the photo inside `head`, -1 elsewhere.
    fn assemble(&self, head: &Mask, shape: &[f32], pose: &[f32], device: &Device) -> Tensor<4> {
        let (w, h) = (self.image.width, self.image.height);
        let n = w * h;
        let mut data = Vec::with_capacity(22 * n);
        data.extend_from_slice(shape);
        for c in 0..3 {
            data.extend((0..n).map(|p| {
                let m = head.data[p];
                (self.image.data[p * 3 + c] * 2.0 - 1.0) * m - (1.0 - m)
            }));
        }
        data.extend_from_slice(pose);
        Tensor::from_data(TensorData::new(data, [1, 22, h, w]), device)
    }

    /// The 22-channel agnostic `[1, 22, H, W]` with the given head region.
    pub fn agnostic(&self, head: &Mask, radius: usize, device: &Device) -> Tensor<4> {
        let (shape, pose) = self.shape_and_pose(radius);
        self.assemble(head, &shape, &pose, device)
    }

    /// The GMM-stage and TOM-stage agnostics.
    pub fn agnostics(&self, radius: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
        let (shape, pose) = self.shape_and_pose(radius);
        (
            self.assemble(&self.gmm_head, &shape, &pose, device),
            self.assemble(&self.tom_head, &shape, &pose, device),
        )
    }
}

/// Everything the chain computes.
#[derive(Debug, Clone)]
pub struct CpvtonOutputs {
    pub grid: Tensor<4>,
    pub theta: Tensor<2>,
    pub warped_cloth: Tensor<4>,
    pub warped_mask: Tensor<4>,
    pub p_rendered: Tensor<4>,
    pub m_composite: Tensor<4>,
    pub p_tryon: Tensor<4>,
}

/// The result on images, at the model's fine size.
#[derive(Debug, Clone)]
pub struct CpvtonResult {
    pub image: RgbImage,
    pub warped_cloth: RgbImage,
    pub warped_mask: Mask,
    pub rendered: RgbImage,
    pub composition_mask: Mask,
}

/// CP-VTON+: GMM then TOM.
#[derive(Debug)]
pub struct CPVTONPipeline {
    pub gmm: Gmm,
    pub tom: Tom,
    pub options: CpvtonOptions,
}

impl CPVTONPipeline {
    /// Loads `gmm_final.pth` and `tom_final.pth`.
    pub fn from_checkpoints(
        gmm_path: impl AsRef<Path>,
        tom_path: impl AsRef<Path>,
        gmm_config: GmmConfig,
        tom_config: TomConfig,
        options: CpvtonOptions,
        device: &Device,
    ) -> Result<Self> {
        Ok(CPVTONPipeline {
            gmm: Gmm::from_checkpoint(gmm_path, gmm_config, device)?,
            tom: Tom::from_checkpoint(tom_path, tom_config, device)?,
            options,
        })
    }

    /// The fine size `(height, width)`.
    pub fn fine_size(&self) -> (usize, usize) {
        let c = self.gmm.config();
        (c.fine_height, c.fine_width)
    }

    /// Warps `cloth [B, 3, H, W]` and `cloth_mask [B, 1, H, W]` by a GMM grid as test.py
    /// does: border padding for the cloth, zeros for the mask.
    pub fn warp(
        &self,
        cloth: Tensor<4>,
        cloth_mask: Tensor<4>,
        grid: Tensor<4>,
    ) -> Result<(Tensor<4>, Tensor<4>)> {
        let ac = self.options.align_corners;
        let c = grid_sample(
            cloth,
            grid.clone(),
            GridSampleOptions::new(SampleMode::Bilinear, PaddingMode::Border, ac),
        )?;
        let m = grid_sample(
            cloth_mask,
            grid,
            GridSampleOptions::new(SampleMode::Bilinear, PaddingMode::Zeros, ac),
        )?;
        Ok((c, m))
    }

    /// The chain on tensors: GMM-stage and TOM-stage agnostics `[B, 22, H, W]`, cloth
    /// `[B, 3, H, W]` in [-1, 1], cloth mask `[B, 1, H, W]` in {0, 1}. The warped mask
    /// is binarised at 0.5 before TOM, as test.py's TOM stage reads it back (>= 128).
    pub fn run(
        &self,
        agnostic_gmm: Tensor<4>,
        agnostic_tom: Tensor<4>,
        cloth: Tensor<4>,
        cloth_mask: Tensor<4>,
    ) -> Result<CpvtonOutputs> {
        let g = self.gmm.forward(agnostic_gmm, cloth_mask.clone())?;
        let (warped_cloth, warped_mask) = self.warp(cloth, cloth_mask, g.grid.clone())?;
        let mask_bin = warped_mask.clone().greater_equal_elem(0.5).float();
        let t = self
            .tom
            .forward(agnostic_tom, warped_cloth.clone(), mask_bin)?;
        Ok(CpvtonOutputs {
            grid: g.grid,
            theta: g.theta,
            warped_cloth,
            warped_mask,
            p_rendered: t.p_rendered,
            m_composite: t.m_composite,
            p_tryon: t.p_tryon,
        })
    }

    /// Try-on on images: the person prepared by [`CpvtonPerson::prepare`] at the fine
    /// size, the cloth photo letterboxed on white and its mask.
    pub fn try_on(
        &self,
        person: &CpvtonPerson,
        cloth: &RgbImage,
        cloth_mask: &Mask,
        device: &Device,
    ) -> Result<CpvtonResult> {
        let (h, w) = self.fine_size();
        if (person.image.width, person.image.height) != (w, h) {
            return Err(VtonError::SizeMismatch {
                what: "prepared person vs CP-VTON+ fine size".into(),
                expected: format!("{w}x{h}"),
                actual: format!("{}x{}", person.image.width, person.image.height),
            });
        }
        if (cloth_mask.width, cloth_mask.height) != (cloth.width, cloth.height) {
            return Err(VtonError::SizeMismatch {
                what: "cloth mask vs cloth image".into(),
                expected: format!("{}x{}", cloth.width, cloth.height),
                actual: format!("{}x{}", cloth_mask.width, cloth_mask.height),
            });
        }
        let lb = Letterbox::new(cloth.width, cloth.height, w, h);
        let c = lb.image(cloth).to_tensor(device, ValueRange::MinusOneOne);
        let cm = lb.mask(cloth_mask).binarized().to_tensor(device);
        let (agnostic_gmm, agnostic_tom) = person.agnostics(self.options.radius, device);
        let out = self.run(agnostic_gmm, agnostic_tom, c, cm)?;
        let clamp = |t: Tensor<4>| t.clamp(-1.0, 1.0);
        Ok(CpvtonResult {
            image: RgbImage::from_tensor(clamp(out.p_tryon), ValueRange::MinusOneOne)?,
            warped_cloth: RgbImage::from_tensor(clamp(out.warped_cloth), ValueRange::MinusOneOne)?,
            warped_mask: Mask::from_tensor(out.warped_mask.clamp(0.0, 1.0))?,
            rendered: RgbImage::from_tensor(clamp(out.p_rendered), ValueRange::MinusOneOne)?,
            composition_mask: Mask::from_tensor(out.m_composite)?,
        })
    }
}
