//! The shapes VITON-HD's `get_agnostic` draws (HR-VITON's data loader, and DanMenCas
//! DCI-VITON's `parsehuman.py`, which redraws them from COCO keypoints): the torso, neck
//! and arms the new garment will cover, and per arm the region along the arm that is
//! *not* kept from the photo.
//!
//! With `r = int(|LShoulder - RShoulder| / 16) + 1` and the hips first moved about their
//! centre to the shoulder width: ellipses `3r x 6r` at the hips, lines of width `6r`
//! shoulder-hip on each side and `12r` hip-hip, the shoulder-hip quadrilateral, a
//! `10r x 9r` rectangle above the neck point, a line of width `12r` between the
//! shoulders, ellipses `5r x 6r` at the shoulders, and along each arm (skipping a segment
//! with a missing end) lines of width `10r` with `5r` discs at the elbows and wrists.
//! An arm's own drawing is an ellipse `5r x 6r` at its shoulder, the same lines with
//! discs at the elbow, and a `4r` disc at the last point reached.

use crate::error::{Result, VtonError};
use crate::io::Mask;
use crate::masks::draw;

/// The points of the drawing, in pixels; `(0, 0)` marks a missing point (elbows and
/// wrists may be missing; shoulders and hips may not).
#[derive(Debug, Clone, Copy)]
pub struct AgnosticBody {
    pub r_shoulder: (f32, f32),
    pub r_elbow: (f32, f32),
    pub r_wrist: (f32, f32),
    pub l_shoulder: (f32, f32),
    pub l_elbow: (f32, f32),
    pub l_wrist: (f32, f32),
    pub r_hip: (f32, f32),
    pub l_hip: (f32, f32),
    /// The top of the neck rectangle: OpenPose's Neck, or DCI-VITON's shoulder midpoint.
    pub neck: (f32, f32),
}

/// What [`agnostic_shapes`] draws, each `>= 0.5` inside.
#[derive(Debug, Clone)]
pub struct AgnosticShapes {
    /// Torso, neck and arms: the grey area.
    pub grey: Mask,
    /// The left arm's drawing (parse label 14 outside it is kept from the photo).
    pub left_arm: Mask,
    /// The right arm's drawing (label 15).
    pub right_arm: Mask,
}

/// Draws the VITON-HD agnostic shapes at `width x height`.
pub fn agnostic_shapes(
    width: usize,
    height: usize,
    body: &AgnosticBody,
    operation: &str,
) -> Result<AgnosticShapes> {
    let dist = |a: (f32, f32), b: (f32, f32)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
    let (rs, ls) = (body.r_shoulder, body.l_shoulder);
    let length_a = dist(ls, rs);
    let length_b = dist(body.l_hip, body.r_hip);
    if length_a.is_nan() || length_b.is_nan() || length_a <= 0.0 || length_b <= 0.0 {
        return Err(VtonError::MissingKeypoints {
            operation: operation.into(),
            missing: format!(
                "distinct shoulders and hips: |shoulders| = {length_a}, |hips| = {length_b}"
            ),
        });
    }
    let c = (
        (body.r_hip.0 + body.l_hip.0) / 2.0,
        (body.r_hip.1 + body.l_hip.1) / 2.0,
    );
    let scaled = |q: (f32, f32)| {
        (
            c.0 + (q.0 - c.0) / length_b * length_a,
            c.1 + (q.1 - c.1) / length_b * length_a,
        )
    };
    let (rh, lh) = (scaled(body.r_hip), scaled(body.l_hip));
    let r = ((length_a / 16.0) as i64 + 1) as f32;
    let zero = |q: (f32, f32)| q.0 == 0.0 && q.1 == 0.0;
    let ellipse = |m: &mut Mask, q: (f32, f32), rx: f32, ry: f32| {
        draw::fill_ellipse(m, q.0 - rx, q.1 - ry, q.0 + rx, q.1 + ry)
    };
    let mut grey = Mask::zeros(width, height);
    for q in [rh, lh] {
        ellipse(&mut grey, q, r * 3.0, r * 6.0);
    }
    draw::wide_line(&mut grey, rs, rh, r * 6.0);
    draw::wide_line(&mut grey, ls, lh, r * 6.0);
    draw::wide_line(&mut grey, rh, lh, r * 12.0);
    draw::fill_polygon(&mut grey, &[rs, ls, lh, rh]);
    let n = body.neck;
    draw::fill_rect(&mut grey, n.0 - r * 5.0, n.1 - r * 9.0, n.0 + r * 5.0, n.1);
    draw::wide_line(&mut grey, rs, ls, r * 12.0);
    for q in [rs, ls] {
        ellipse(&mut grey, q, r * 5.0, r * 6.0);
    }
    let arms = [
        [body.r_shoulder, body.r_elbow, body.r_wrist],
        [body.l_shoulder, body.l_elbow, body.l_wrist],
    ];
    for chain in &arms {
        for k in 1..3 {
            if zero(chain[k - 1]) || zero(chain[k]) {
                continue;
            }
            draw::wide_line(&mut grey, chain[k - 1], chain[k], r * 10.0);
            ellipse(&mut grey, chain[k], r * 5.0, r * 5.0);
        }
    }
    let arm = |chain: &[(f32, f32); 3]| {
        let mut m = Mask::zeros(width, height);
        let mut last = chain[0];
        ellipse(&mut m, last, r * 5.0, r * 6.0);
        for k in 1..3 {
            if zero(chain[k - 1]) || zero(chain[k]) {
                continue;
            }
            draw::wide_line(&mut m, chain[k - 1], chain[k], r * 10.0);
            last = chain[k];
            if k != 2 {
                ellipse(&mut m, last, r * 5.0, r * 5.0);
            }
        }
        ellipse(&mut m, last, r * 4.0, r * 4.0);
        m
    };
    Ok(AgnosticShapes {
        grey,
        right_arm: arm(&arms[0]),
        left_arm: arm(&arms[1]),
    })
}

impl AgnosticShapes {
    /// Pixels kept from the photo (or the parse): the labels in `kept`, and the arm
    /// labels 14 (left) / 15 (right) outside their arm's drawing.
    pub fn kept(&self, parse: &[u8], kept: &[u8]) -> Vec<bool> {
        parse
            .iter()
            .enumerate()
            .map(|(k, &l)| {
                kept.contains(&l)
                    || (l == 14 && self.left_arm.data[k] < 0.5)
                    || (l == 15 && self.right_arm.data[k] < 0.5)
            })
            .collect()
    }
}
