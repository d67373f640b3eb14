//! Clothing-agnostic masks for upper-body garments.
//!
//! Two procedures:
//! * [`agnostic_from_parse`]: VITON-HD's `get_img_agnostic` (shadow2496/VITON-HD,
//!   `datasets.py`; HR-VITON's preprocessing uses the same drawing): grey shapes drawn
//!   from BODY_25 keypoints (shoulder line, arm lines and discs, torso lines, hip ellipses,
//!   the shoulder-hip polygon, a neck square), with sizes `r = 20` at 1024 px height
//!   scaled to the image, hips rescaled about their centre to the shoulder width, then the
//!   head (parse labels 4, 13) and lower body (9, 12, 16, 17, 18, 19) put back.
//! * [`agnostic_from_keypoints`]: for users without a parser. A body frame is built from
//!   the shoulders (and hips, when present); the torso quadrilateral, the neck base and
//!   capsules along the arms are drawn, the head column and the hands are removed, and the
//!   result is intersected with the person mask.

use crate::error::{Result, VtonError};
use crate::io::{Joint, Mask, ParseMap, Pose, RgbImage};
use crate::masks::draw::{self, Pt};

/// Which garment is being replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GarmentCategory {
    #[default]
    UpperBody,
    LowerBody,
    Dress,
}

impl GarmentCategory {
    /// Parses `"upper_body" | "lower_body" | "dresses"` (the names DressCode and CatVTON use).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "upper_body" | "upper" => Ok(GarmentCategory::UpperBody),
            "lower_body" | "lower" => Ok(GarmentCategory::LowerBody),
            "dresses" | "dress" => Ok(GarmentCategory::Dress),
            other => Err(VtonError::invalid(
                "category",
                format!("'{other}' is not one of 'upper_body', 'lower_body', 'dresses'"),
            )),
        }
    }

    /// The name [`GarmentCategory::from_name`] reads (the DressCode spelling).
    pub fn name(self) -> &'static str {
        match self {
            GarmentCategory::UpperBody => "upper_body",
            GarmentCategory::LowerBody => "lower_body",
            GarmentCategory::Dress => "dresses",
        }
    }

    fn require_upper(self) -> Result<()> {
        match self {
            GarmentCategory::UpperBody => Ok(()),
            other => Err(VtonError::Unsupported {
                what: format!(
                    "agnostic masks for '{}' garments are not implemented yet (only upper_body)",
                    other.name()
                ),
            }),
        }
    }
}

/// A body-aligned frame from the keypoints: `u` runs from the person's right shoulder
/// to the left one, `v` is perpendicular and points down the torso; lengths are in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BodyFrame {
    pub neck: Pt,
    pub r_shoulder: Pt,
    pub l_shoulder: Pt,
    pub u: Pt,
    pub v: Pt,
    /// Distance between the shoulder keypoints.
    pub shoulder_width: f32,
    /// Centre of the torso bottom: MidHip, the hips' mean, or `neck + 1.5 * shoulder_width * v`.
    pub torso_bottom: Pt,
    /// Whether `torso_bottom` comes from hip keypoints.
    pub hips_detected: bool,
}

/// Torso length (neck to mid-hip) in shoulder widths, used when no hip is detected.
pub const TORSO_LENGTH_RATIO: f32 = 1.5;

impl BodyFrame {
    /// Builds the frame; both shoulders are required.
    pub fn from_pose(pose: &Pose, operation: &str) -> Result<Self> {
        let [rs, ls] = pose.require([Joint::RShoulder, Joint::LShoulder], operation)?;
        let (dx, dy) = (ls.0 - rs.0, ls.1 - rs.1);
        let sw = (dx * dx + dy * dy).sqrt();
        if sw < 2.0 {
            return Err(VtonError::MissingKeypoints {
                operation: operation.into(),
                missing: format!(
                    "distinct shoulders (RShoulder and LShoulder are {sw:.1} px apart)"
                ),
            });
        }
        let u = (dx / sw, dy / sw);
        let mut v = (-u.1, u.0);
        let neck = pose
            .get(Joint::Neck)
            .unwrap_or(((rs.0 + ls.0) / 2.0, (rs.1 + ls.1) / 2.0));
        let hips = match (
            pose.get(Joint::MidHip),
            pose.get(Joint::RHip),
            pose.get(Joint::LHip),
        ) {
            (_, Some(r), Some(l)) => Some(((r.0 + l.0) / 2.0, (r.1 + l.1) / 2.0)),
            (Some(m), _, _) => Some(m),
            _ => None,
        };
        if let Some(h) = hips {
            if (h.0 - neck.0) * v.0 + (h.1 - neck.1) * v.1 < 0.0 {
                v = (-v.0, -v.1);
            }
        } else if v.1 < 0.0 {
            v = (-v.0, -v.1);
        }
        let torso_bottom = hips.unwrap_or((
            neck.0 + TORSO_LENGTH_RATIO * sw * v.0,
            neck.1 + TORSO_LENGTH_RATIO * sw * v.1,
        ));
        Ok(BodyFrame {
            neck,
            r_shoulder: rs,
            l_shoulder: ls,
            u,
            v,
            shoulder_width: sw,
            torso_bottom,
            hips_detected: hips.is_some(),
        })
    }

    /// The point `neck + a * sw * u + b * sw * v`.
    pub fn at(&self, a: f32, b: f32) -> Pt {
        let s = self.shoulder_width;
        (
            self.neck.0 + s * (a * self.u.0 + b * self.v.0),
            self.neck.1 + s * (a * self.u.1 + b * self.v.1),
        )
    }

    /// Coordinates of `p` in the frame, in shoulder widths.
    pub fn coords(&self, p: Pt) -> (f32, f32) {
        let (dx, dy) = (p.0 - self.neck.0, p.1 - self.neck.1);
        let s = self.shoulder_width;
        (
            (dx * self.u.0 + dy * self.u.1) / s,
            (dx * self.v.0 + dy * self.v.1) / s,
        )
    }

    /// Torso length (neck to `torso_bottom`) in pixels.
    pub fn torso_length(&self) -> f32 {
        let (dx, dy) = (
            self.torso_bottom.0 - self.neck.0,
            self.torso_bottom.1 - self.neck.1,
        );
        (dx * dx + dy * dy).sqrt()
    }
}

fn check_person_mask(person_mask: &Mask) -> Result<()> {
    if person_mask.count() == 0 {
        return Err(VtonError::EmptyMask {
            what: "person mask has no pixel >= 0.5".into(),
        });
    }
    Ok(())
}

/// Head column (above the shoulder line, near the neck axis) and hands, which a garment never covers.
pub(crate) fn protected_regions(
    frame: &BodyFrame,
    pose: &Pose,
    width: usize,
    height: usize,
) -> (Mask, Mask) {
    let mut head = Mask::zeros(width, height);
    let (w, h) = (width as f32, height as f32);
    // Everything above the line 0.15 sw over the neck, within 0.33 sw of the neck axis.
    let far = 4.0 * (w + h);
    let poly = [
        frame.at(-0.33, -0.15),
        frame.at(0.33, -0.15),
        {
            let p = frame.at(0.33, -0.15);
            (p.0 - far * frame.v.0, p.1 - far * frame.v.1)
        },
        {
            let p = frame.at(-0.33, -0.15);
            (p.0 - far * frame.v.0, p.1 - far * frame.v.1)
        },
    ];
    draw::fill_polygon(&mut head, &poly);
    let mut hands = Mask::zeros(width, height);
    let sw = frame.shoulder_width;
    for (elbow, wrist) in [
        (Joint::RElbow, Joint::RWrist),
        (Joint::LElbow, Joint::LWrist),
    ] {
        if let Some(wr) = pose.get(wrist) {
            let c = match pose.get(elbow) {
                Some(el) => (wr.0 + 0.35 * (wr.0 - el.0), wr.1 + 0.35 * (wr.1 - el.1)),
                None => wr,
            };
            draw::disc(&mut hands, c, 0.22 * sw);
        }
    }
    (head, hands)
}

/// Agnostic mask from keypoints and a person mask (procedure (b), see the module docs).
pub fn agnostic_from_keypoints(
    pose: &Pose,
    person_mask: &Mask,
    category: GarmentCategory,
) -> Result<Mask> {
    category.require_upper()?;
    check_person_mask(person_mask)?;
    let frame = BodyFrame::from_pose(pose, "keypoint agnostic mask")?;
    let (w, h) = (person_mask.width, person_mask.height);
    let sw = frame.shoulder_width;
    let mut m = Mask::zeros(w, h);
    let bottom = frame.coords(frame.torso_bottom).1.max(0.5);
    draw::fill_polygon(
        &mut m,
        &[
            frame.at(-0.75, -0.2),
            frame.at(0.75, -0.2),
            frame.at(0.8, bottom),
            frame.at(-0.8, bottom),
        ],
    );
    for (s, e, wr) in [
        (Joint::RShoulder, Joint::RElbow, Joint::RWrist),
        (Joint::LShoulder, Joint::LElbow, Joint::LWrist),
    ] {
        if let (Some(sp), Some(ep)) = (pose.get(s), pose.get(e)) {
            draw::capsule(&mut m, sp, ep, 0.2 * sw);
            if let Some(wp) = pose.get(wr) {
                draw::capsule(&mut m, ep, wp, 0.16 * sw);
            }
        } else if let Some(sp) = pose.get(s) {
            draw::disc(&mut m, sp, 0.3 * sw);
        }
    }
    let (head, hands) = protected_regions(&frame, pose, w, h);
    let m = m.minus(&head).minus(&hands).and(&person_mask.binarized());
    if m.count() == 0 {
        return Err(VtonError::EmptyMask { what: "the agnostic region does not overlap the person mask (keypoints and mask disagree?)".into() });
    }
    Ok(m)
}

/// Agnostic mask from a LIP / VITON-HD parse map and keypoints (VITON-HD `get_img_agnostic`).
///
/// Deviation: when no hip is detected (head-and-shoulder photos) the hips are placed
/// `1.5` shoulder widths below the neck instead of at the image origin.
pub fn agnostic_from_parse(
    parse: &ParseMap,
    pose: &Pose,
    category: GarmentCategory,
) -> Result<Mask> {
    category.require_upper()?;
    if parse.num_labels != 20 {
        return Err(VtonError::invalid(
            "parse",
            "the VITON-HD procedure needs a 20-label LIP map",
        ));
    }
    let frame = BodyFrame::from_pose(pose, "parse agnostic mask")?;
    let (w, h) = (parse.width, parse.height);
    let r = 20.0 * h as f32 / 1024.0;
    let (rs, ls) = (frame.r_shoulder, frame.l_shoulder);
    let (mut rh, mut lh) = match (pose.get(Joint::RHip), pose.get(Joint::LHip)) {
        (Some(a), Some(b)) => (a, b),
        _ => (
            frame.at(-0.35, TORSO_LENGTH_RATIO),
            frame.at(0.35, TORSO_LENGTH_RATIO),
        ),
    };
    let len_a = frame.shoulder_width;
    let len_b = ((lh.0 - rh.0).powi(2) + (lh.1 - rh.1).powi(2)).sqrt();
    if len_b > 1e-3 {
        let c = ((rh.0 + lh.0) / 2.0, (rh.1 + lh.1) / 2.0);
        let k = len_a / len_b;
        rh = (c.0 + (rh.0 - c.0) * k, c.1 + (rh.1 - c.1) * k);
        lh = (c.0 + (lh.0 - c.0) * k, c.1 + (lh.1 - c.1) * k);
    }
    let mut m = Mask::zeros(w, h);
    // Arms.
    draw::wide_line(&mut m, rs, ls, r * 10.0);
    for p in [rs, ls] {
        draw::fill_ellipse(
            &mut m,
            p.0 - r * 5.0,
            p.1 - r * 5.0,
            p.0 + r * 5.0,
            p.1 + r * 5.0,
        );
    }
    for (a, b) in [
        (Joint::RShoulder, Joint::RElbow),
        (Joint::RElbow, Joint::RWrist),
        (Joint::LShoulder, Joint::LElbow),
        (Joint::LElbow, Joint::LWrist),
    ] {
        if let (Some(pa), Some(pb)) = (pose.get(a), pose.get(b)) {
            draw::wide_line(&mut m, pa, pb, r * 10.0);
            draw::fill_ellipse(
                &mut m,
                pb.0 - r * 5.0,
                pb.1 - r * 5.0,
                pb.0 + r * 5.0,
                pb.1 + r * 5.0,
            );
        }
    }
    // Torso.
    for p in [rh, lh] {
        draw::fill_ellipse(
            &mut m,
            p.0 - r * 3.0,
            p.1 - r * 6.0,
            p.0 + r * 3.0,
            p.1 + r * 6.0,
        );
    }
    draw::wide_line(&mut m, rs, rh, r * 6.0);
    draw::wide_line(&mut m, ls, lh, r * 6.0);
    draw::wide_line(&mut m, rh, lh, r * 12.0);
    draw::fill_polygon(&mut m, &[rs, ls, lh, rh]);
    // Neck.
    let n = frame.neck;
    draw::fill_rect(
        &mut m,
        n.0 - r * 7.0,
        n.1 - r * 7.0,
        n.0 + r * 7.0,
        n.1 + r * 7.0,
    );
    let keep = parse
        .mask_of(&[4, 13])
        .or(&parse.mask_of(&[9, 12, 16, 17, 18, 19]));
    Ok(m.minus(&keep))
}

/// The agnostic person image: the person with the masked region painted grey (0.5),
/// as VITON-HD's `agnostic` images are.
pub fn agnostic_image(person: &RgbImage, mask: &Mask) -> Result<RgbImage> {
    if person.width != mask.width || person.height != mask.height {
        return Err(VtonError::SizeMismatch {
            what: "agnostic mask vs person image".into(),
            expected: format!("{}x{}", person.width, person.height),
            actual: format!("{}x{}", mask.width, mask.height),
        });
    }
    let mut out = person.clone();
    for (p, &a) in mask.data.iter().enumerate() {
        for c in 0..3 {
            out.data[p * 3 + c] = out.data[p * 3 + c] * (1.0 - a) + 0.5 * a;
        }
    }
    Ok(out)
}
