//! The weight-free geometric try-on.
//!
//! 1. Agnostic mask of the person: from the parse map (VITON-HD procedure) when one is
//!    given, otherwise from keypoints and the person mask.
//! 2. Garment mask: the given one, or estimated from the product photo's background.
//! 3. Garment landmarks ([`garment_landmarks`]) are placed on the body: torso landmarks
//!    by the similarity that maps the garment's shoulder tips onto the shoulder keypoints
//!    (widened by [`GeometricTryOn::shoulder_scale`] and lifted by
//!    [`GeometricTryOn::shoulder_lift`] shoulder widths, since keypoints are joint centres);
//!    sleeve ends are walked along the arm (shoulder, elbow, wrist) for the sleeve's length.
//! 4. A thin-plate spline from body to garment coordinates (fitted in shoulder-width
//!    units with regularisation [`GeometricTryOn::tps_lambda`]) gives a sampling grid;
//!    garment and mask are warped by grid sampling (bilinear; border padding for the
//!    garment, zeros for the mask; `align_corners = false`).
//! 5. The warped garment is composited over the person except on the head column, the
//!    hands, and the forearms when the sleeves end above the elbow. Pixels of the
//!    agnostic region the new garment does not cover keep the person's own pixels: a
//!    geometric method cannot synthesise skin (the learned pipelines do). The garment is
//!    also kept within [`GeometricTryOn::silhouette_margin`] of the person mask: the TPS
//!    is pinned only at the landmarks and can carry cloth off the body between them.

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VtonError};
use crate::io::{
    image::tensor_to_vec, read_image, read_keypoints, read_mask, Joint, Mask, ParseMap,
    PersonSelection, Pose, RgbImage,
};
use crate::masks::agnostic::protected_regions;
use crate::masks::draw::{self, Pt};
use crate::masks::morph;
use crate::masks::{
    agnostic_from_keypoints, agnostic_from_parse, agnostic_image, estimate_garment_mask,
    garment_matte, BodyFrame, GarmentCategory, GarmentMaskOptions, MatteOptions,
};
use crate::pipelines::landmarks::{dist, garment_landmarks, GarmentLandmarks};
use crate::warp::grid::{grid_sample, GridSampleOptions, PaddingMode, SampleMode};
use crate::warp::tps::ThinPlateSpline;

/// Everything a try-on needs.
#[derive(Debug, Clone)]
pub struct TryOnInputs {
    pub person: RgbImage,
    pub pose: Pose,
    /// Person segmentation (person = 1). Required unless `parse` is given.
    pub person_mask: Option<Mask>,
    /// LIP / VITON-HD 20-label parse map of the person.
    pub parse: Option<ParseMap>,
    pub garment: RgbImage,
    /// Garment mask; estimated from the photo when `None`.
    pub garment_mask: Option<Mask>,
    pub category: GarmentCategory,
}

fn same_size(what: &str, w: usize, h: usize, ow: usize, oh: usize) -> Result<()> {
    if (w, h) != (ow, oh) {
        return Err(VtonError::SizeMismatch {
            what: what.into(),
            expected: format!("{w}x{h}"),
            actual: format!("{ow}x{oh}"),
        });
    }
    Ok(())
}

impl TryOnInputs {
    /// Reads inputs from files (PNG/JPEG images, OpenPose JSON, grey masks, label PNG).
    pub fn from_paths(
        person: impl AsRef<std::path::Path>,
        keypoints: impl AsRef<std::path::Path>,
        person_mask: Option<impl AsRef<std::path::Path>>,
        parse: Option<impl AsRef<std::path::Path>>,
        garment: impl AsRef<std::path::Path>,
        garment_mask: Option<impl AsRef<std::path::Path>>,
    ) -> Result<Self> {
        Ok(TryOnInputs {
            person: read_image(person)?,
            pose: read_keypoints(keypoints, PersonSelection::Largest)?,
            person_mask: person_mask.map(read_mask).transpose()?,
            parse: parse.map(ParseMap::read).transpose()?,
            garment: read_image(garment)?,
            garment_mask: garment_mask.map(read_mask).transpose()?,
            category: GarmentCategory::UpperBody,
        })
    }

    /// Checks sizes and presence once, at the entry of the pipeline.
    pub fn validate(&self) -> Result<()> {
        let (w, h) = (self.person.width, self.person.height);
        if let Some(m) = &self.person_mask {
            same_size("person mask vs person image", w, h, m.width, m.height)?;
        }
        if let Some(p) = &self.parse {
            same_size("parse map vs person image", w, h, p.width, p.height)?;
        }
        if let Some(m) = &self.garment_mask {
            same_size(
                "garment mask vs garment image",
                self.garment.width,
                self.garment.height,
                m.width,
                m.height,
            )?;
        }
        if self.person_mask.is_none() && self.parse.is_none() {
            return Err(VtonError::invalid(
                "person_mask",
                "a person mask or a parse map is required",
            ));
        }
        Ok(())
    }
}

/// What the geometric try-on returns: the result and the intermediates to debug it.
#[derive(Debug, Clone)]
pub struct TryOnOutput {
    pub image: RgbImage,
    pub agnostic_mask: Mask,
    pub agnostic_image: RgbImage,
    pub warped_garment: RgbImage,
    pub warped_mask: Mask,
    /// The compositing alpha: `image = alpha * warped_garment + (1 - alpha) * person`.
    pub alpha: Mask,
    /// The garment mask used (given or estimated).
    pub garment_mask: Mask,
    pub garment_landmarks: GarmentLandmarks,
    /// Where each garment landmark was placed on the person, same order as [`landmark_points`].
    pub body_targets: Vec<Pt>,
}

/// Landmarks as an ordered list (collar, shoulders, armpits, hems, hem centre, sleeve ends present).
pub fn landmark_points(l: &GarmentLandmarks) -> Vec<Pt> {
    let mut v = vec![
        l.collar,
        l.r_shoulder,
        l.l_shoulder,
        l.r_armpit,
        l.l_armpit,
        l.r_hem,
        l.l_hem,
        l.hem_center,
    ];
    v.extend(l.r_sleeve_end);
    v.extend(l.l_sleeve_end);
    v
}

/// The geometric try-on and its parameters (defaults tuned on the bundled corpus).
#[derive(Debug, Clone)]
pub struct GeometricTryOn {
    /// Garment shoulder width over keypoint shoulder width.
    pub shoulder_scale: f32,
    /// How far above the shoulder keypoints the garment's shoulder tips go, in shoulder widths.
    pub shoulder_lift: f32,
    /// TPS regularisation in shoulder-width units.
    pub tps_lambda: f64,
    pub garment_mask_options: GarmentMaskOptions,
    /// How the garment is cut out of its photo (eroded, feathered, edge colours cleaned).
    pub matte_options: MatteOptions,
    /// How far the composited garment may reach beyond the person's silhouette, in
    /// shoulder widths (`f32::INFINITY`: no limit). The TPS is pinned only at the
    /// landmarks, so between them (outer sleeve edges, a long hem's flare) it can carry
    /// garment far off the body, onto the background; a worn garment stays close to it.
    pub silhouette_margin: f32,
}

/// Warped alpha below which a pixel has no garment colour.
const ALPHA_EPS: f32 = 1e-4;

impl Default for GeometricTryOn {
    fn default() -> Self {
        GeometricTryOn {
            shoulder_scale: 1.1,
            shoulder_lift: 0.08,
            tps_lambda: 1e-3,
            garment_mask_options: GarmentMaskOptions::default(),
            matte_options: MatteOptions::default(),
            silhouette_margin: 0.08,
        }
    }
}

/// Where the garment may be composited: the person mask dilated by `margin` shoulder
/// widths (square structuring element), with a one-pixel ramp at its edge (3x3 mean).
fn silhouette_allowance(person: &Mask, margin: f32, shoulder_width: f32) -> Result<Mask> {
    let (w, h) = (person.width, person.height);
    let r = (margin * shoulder_width).round().max(0.0) as usize;
    let on: Vec<bool> = person.data.iter().map(|&v| v >= 0.5).collect();
    let grown = morph::dilate(w, h, &on, r);
    let mut soft = vec![0f32; w * h];
    for y in 0..h {
        for x in 0..w {
            let (mut n, mut k) = (0u32, 0u32);
            for yy in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for xx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    n += 1;
                    k += grown[yy * w + xx] as u32;
                }
            }
            soft[y * w + x] = k as f32 / n as f32;
        }
    }
    Mask::from_f32(w, h, soft)
}

/// Walks `length` along the polyline `pts` from its first point (extrapolating the last segment).
fn walk(pts: &[Pt], length: f32) -> Pt {
    let mut left = length;
    let segments = pts.len().saturating_sub(1);
    for k in 0..segments {
        let (a, b) = (pts[k], pts[k + 1]);
        let d = dist(a, b);
        // The last segment is extended past its end when the length runs over.
        if d > 1e-3 && (left <= d || k + 1 == segments) {
            let t = left / d;
            return (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
        }
        left -= d;
    }
    pts[pts.len() - 1]
}

/// Largest lift of a shoulder tip to the silhouette, in shoulder widths.
const MAX_SILHOUETTE_LIFT: f32 = 0.25;

/// Moves `target` up (against the body frame's `v`) to the top of the person mask above
/// the shoulder `joint`, when that top is higher, by at most [`MAX_SILHOUETTE_LIFT`].
fn raise_to_silhouette(target: Pt, joint: Pt, frame: &BodyFrame, person: &Mask) -> Pt {
    let sw = frame.shoulder_width;
    let inside = |p: Pt| {
        p.0 >= 0.0
            && p.1 >= 0.0
            && (p.0 as usize) < person.width
            && (p.1 as usize) < person.height
            && person.on(p.0 as usize, p.1 as usize)
    };
    // Walk up from the joint in one-pixel steps while inside the mask.
    let steps = (MAX_SILHOUETTE_LIFT * sw).ceil() as usize;
    let mut top = 0.0f32;
    for k in 1..=steps {
        let p = (
            joint.0 - k as f32 * frame.v.0,
            joint.1 - k as f32 * frame.v.1,
        );
        if !inside(p) {
            break;
        }
        top = k as f32;
    }
    // Height of the target above the joint, along -v.
    let lift = (joint.0 - target.0) * frame.v.0 + (joint.1 - target.1) * frame.v.1;
    if top > lift {
        let d = top - lift;
        (target.0 - d * frame.v.0, target.1 - d * frame.v.1)
    } else {
        target
    }
}

impl GeometricTryOn {
    /// Places the garment landmarks on the body; returns the targets (order of
    /// [`landmark_points`]) and whether the sleeves end above the elbows.
    pub fn body_targets(
        &self,
        lm: &GarmentLandmarks,
        frame: &BodyFrame,
        pose: &Pose,
    ) -> Result<(Vec<Pt>, bool)> {
        let gsw = lm.shoulder_width();
        if gsw < 4.0 {
            return Err(VtonError::EmptyMask {
                what: "garment shoulders could not be found (shoulder tips coincide)".into(),
            });
        }
        let s = self.shoulder_scale * frame.shoulder_width / gsw;
        let origin_g = (
            (lm.r_shoulder.0 + lm.l_shoulder.0) / 2.0,
            (lm.r_shoulder.1 + lm.l_shoulder.1) / 2.0,
        );
        let origin_b = frame.at(0.0, -self.shoulder_lift);
        let sim = |p: Pt| -> Pt {
            let (a, b) = ((p.0 - origin_g.0) * s, (p.1 - origin_g.1) * s);
            (
                origin_b.0 + a * frame.u.0 + b * frame.v.0,
                origin_b.1 + a * frame.u.1 + b * frame.v.1,
            )
        };
        let mut targets: Vec<Pt> = [
            lm.collar,
            lm.r_shoulder,
            lm.l_shoulder,
            lm.r_armpit,
            lm.l_armpit,
            lm.r_hem,
            lm.l_hem,
            lm.hem_center,
        ]
        .into_iter()
        .map(sim)
        .collect();
        let mut short_sleeves = true;
        for (end, tip, target_tip, sh, el, wr) in [
            (
                lm.r_sleeve_end,
                lm.r_shoulder,
                targets[1],
                Joint::RShoulder,
                Joint::RElbow,
                Joint::RWrist,
            ),
            (
                lm.l_sleeve_end,
                lm.l_shoulder,
                targets[2],
                Joint::LShoulder,
                Joint::LElbow,
                Joint::LWrist,
            ),
        ] {
            let Some(end) = end else { continue };
            let length = dist(end, tip) * s;
            let target = match (pose.get(sh), pose.get(el)) {
                (Some(shp), Some(elp)) => {
                    let upper = dist(shp, elp);
                    if length > 0.9 * upper {
                        short_sleeves = false;
                    }
                    let mut arm = vec![target_tip, elp];
                    arm.extend(pose.get(wr));
                    walk(&arm, length)
                }
                _ => {
                    short_sleeves = false;
                    sim(end)
                }
            };
            targets.push(target);
        }
        Ok((targets, short_sleeves))
    }

    /// Runs the try-on on `device`.
    pub fn run(&self, inputs: &TryOnInputs, device: &Device) -> Result<TryOnOutput> {
        inputs.validate()?;
        if self.silhouette_margin.is_nan() || self.silhouette_margin < 0.0 {
            return Err(VtonError::invalid(
                "silhouette_margin",
                format!("must be >= 0 (or infinite), got {}", self.silhouette_margin),
            ));
        }
        let (w, h) = (inputs.person.width, inputs.person.height);
        let person_mask = match (&inputs.person_mask, &inputs.parse) {
            (Some(m), _) => m.binarized(),
            (None, Some(p)) => Mask::zeros(w, h).or(&p.mask_of(&(1..20).collect::<Vec<u8>>())),
            (None, None) => {
                return Err(VtonError::invalid(
                    "person_mask",
                    "a person mask or a parse map is required",
                ))
            }
        };
        let agnostic_mask = match &inputs.parse {
            Some(p) => agnostic_from_parse(p, &inputs.pose, inputs.category)?,
            None => agnostic_from_keypoints(&inputs.pose, &person_mask, inputs.category)?,
        };
        let garment_mask = match &inputs.garment_mask {
            Some(m) => m.binarized(),
            None => estimate_garment_mask(&inputs.garment, &self.garment_mask_options)?,
        };
        let lm = garment_landmarks(&garment_mask)?;
        let frame = BodyFrame::from_pose(&inputs.pose, "geometric try-on")?;
        let (mut targets, short_sleeves) = self.body_targets(&lm, &frame, &inputs.pose)?;
        // Shoulder tips reach the person's silhouette: clothes (hoods, thick knits) stand
        // above the shoulder joints, and the old garment showed there.
        for (i, joint) in [(1, frame.r_shoulder), (2, frame.l_shoulder)] {
            targets[i] = raise_to_silhouette(targets[i], joint, &frame, &person_mask);
        }
        let sources = landmark_points(&lm);

        // Fit body -> garment in shoulder-width units.
        let (bs, gs) = (frame.shoulder_width as f64, lm.shoulder_width() as f64);
        let tb: Vec<(f64, f64)> = targets
            .iter()
            .map(|p| (p.0 as f64 / bs, p.1 as f64 / bs))
            .collect();
        let tg: Vec<(f64, f64)> = sources
            .iter()
            .map(|p| (p.0 as f64 / gs, p.1 as f64 / gs))
            .collect();
        let tps = ThinPlateSpline::fit(&tb, &tg, self.tps_lambda)?;
        let (gwf, ghf) = (inputs.garment.width as f64, inputs.garment.height as f64);
        let mut grid = Vec::with_capacity(w * h * 2);
        for y in 0..h {
            for x in 0..w {
                let (u, v) = tps.eval(x as f64 / bs, y as f64 / bs);
                grid.push(((2.0 * u * gs + 1.0) / gwf - 1.0) as f32);
                grid.push(((2.0 * v * gs + 1.0) / ghf - 1.0) as f32);
            }
        }
        let grid: Tensor<4> = Tensor::from_data(TensorData::new(grid, [1, h, w, 2]), device);
        // Premultiplied warp: colour * alpha and alpha are sampled together and divided
        // afterwards, so bilinear taps outside the garment (alpha 0) add nothing and no
        // background colour of the product photo reaches the result.
        let matte = garment_matte(&inputs.garment, &garment_mask, &self.matte_options)?;
        let (gw, gh) = (inputs.garment.width, inputs.garment.height);
        let mut premul = vec![0f32; 4 * gw * gh];
        for (p, &a) in matte.alpha.data.iter().enumerate() {
            for c in 0..3 {
                premul[c * gw * gh + p] = a * matte.colour.data[p * 3 + c];
            }
            premul[3 * gw * gh + p] = a;
        }
        let premul: Tensor<4> = Tensor::from_data(TensorData::new(premul, [1, 4, gh, gw]), device);
        let warped = tensor_to_vec(grid_sample(
            premul,
            grid,
            GridSampleOptions::new(SampleMode::Bilinear, PaddingMode::Zeros, false),
        )?)?;
        let (mut colour, mut coverage) = (vec![0f32; 3 * w * h], vec![0f32; w * h]);
        for p in 0..w * h {
            let a = warped[3 * w * h + p].clamp(0.0, 1.0);
            coverage[p] = a;
            if a > ALPHA_EPS {
                for c in 0..3 {
                    colour[p * 3 + c] = (warped[c * w * h + p] / a).clamp(0.0, 1.0);
                }
            }
        }
        let warped_garment = RgbImage::from_f32(w, h, colour)?;
        let warped_mask = Mask::from_f32(w, h, coverage)?;

        let (head, hands) = protected_regions(&frame, &inputs.pose, w, h);
        let mut keep = head.or(&hands.and(&person_mask));
        if short_sleeves {
            let mut forearms = Mask::zeros(w, h);
            for (el, wr) in [
                (Joint::RElbow, Joint::RWrist),
                (Joint::LElbow, Joint::LWrist),
            ] {
                if let (Some(e), Some(r)) = (inputs.pose.get(el), inputs.pose.get(wr)) {
                    draw::capsule(&mut forearms, e, r, 0.13 * frame.shoulder_width);
                }
            }
            keep = keep.or(&forearms.and(&person_mask));
        }
        let mut alpha = warped_mask.minus(&keep);
        if self.silhouette_margin.is_finite() {
            let allowed =
                silhouette_allowance(&person_mask, self.silhouette_margin, frame.shoulder_width)?;
            alpha = alpha.and(&allowed);
        }
        let mut image = inputs.person.clone();
        for (p, &a) in alpha.data.iter().enumerate() {
            for c in 0..3 {
                let i = p * 3 + c;
                image.data[i] = a * warped_garment.data[i] + (1.0 - a) * image.data[i];
            }
        }
        let agnostic_image = agnostic_image(&inputs.person, &agnostic_mask)?;
        Ok(TryOnOutput {
            image,
            agnostic_mask,
            agnostic_image,
            warped_garment,
            warped_mask,
            alpha,
            garment_mask,
            garment_landmarks: lm,
            body_targets: targets,
        })
    }
}

/// Quality figures of a try-on result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TryOnQuality {
    /// Share of the warped garment mask inside the person's garment region (keypoint
    /// agnostic region: torso and arms, within the person mask).
    pub torso_share: f32,
    /// Mean distance between the warped garment mask's shoulder tips (found by
    /// [`garment_landmarks`] on the warped mask) and the shoulder keypoints, in pixels.
    pub shoulder_error_px: f32,
    /// `shoulder_error_px` over the keypoint shoulder width.
    pub shoulder_error_rel: f32,
    /// Share of the compositing alpha that falls outside the person mask.
    pub spill: f32,
    /// Share of the person's shoulders (discs of 0.2 shoulder widths around the shoulder
    /// keypoints, within the person mask, outside the head column) that the new garment
    /// covers (`alpha >= 0.5`); the rest shows the old garment.
    pub shoulder_coverage: f32,
}

/// Measures a result against the person's keypoints and mask.
pub fn evaluate_quality(
    out: &TryOnOutput,
    pose: &Pose,
    person_mask: &Mask,
) -> Result<TryOnQuality> {
    let region = agnostic_from_keypoints(pose, person_mask, GarmentCategory::UpperBody)?;
    let wm = out.warped_mask.binarized();
    let total = wm.count();
    if total == 0 {
        return Err(VtonError::EmptyMask {
            what: "warped garment mask is empty".into(),
        });
    }
    let inside = wm.and(&region).count();
    let lm = garment_landmarks(&wm)?;
    let frame = BodyFrame::from_pose(pose, "quality evaluation")?;
    let err = (dist(lm.r_shoulder, frame.r_shoulder) + dist(lm.l_shoulder, frame.l_shoulder)) / 2.0;
    let pm = person_mask.binarized();
    let (mut a_all, mut a_out) = (0f64, 0f64);
    for (&a, &m) in out.alpha.data.iter().zip(&pm.data) {
        a_all += a as f64;
        if m < 0.5 {
            a_out += a as f64;
        }
    }
    let (w, h) = (pm.width, pm.height);
    let mut shoulders = Mask::zeros(w, h);
    for c in [frame.r_shoulder, frame.l_shoulder] {
        draw::disc(&mut shoulders, c, 0.2 * frame.shoulder_width);
    }
    let (head, _) = protected_regions(&frame, pose, w, h);
    let shoulders = shoulders.and(&pm).minus(&head);
    let covered = shoulders.and(&out.alpha.binarized()).count();
    Ok(TryOnQuality {
        torso_share: inside as f32 / total as f32,
        shoulder_error_px: err,
        shoulder_error_rel: err / frame.shoulder_width,
        spill: (a_out / a_all.max(1e-9)) as f32,
        shoulder_coverage: covered as f32 / shoulders.count().max(1) as f32,
    })
}
