//! VITON-HD's parse-agnostic label map (`image-parse-agnostic-v3.2`): the person's LIP
//! parse with the garment, the neck and the arms the new garment will cover set to
//! background (VITON-HD `datasets.py`, `get_parse_agnostic`).
//!
//! Procedure, at VITON-HD's 768x1024 with `r = 10` (scaled by `height / 1024` for other
//! sizes): for the left arm (label 14) along keypoints RShoulder-LShoulder-LElbow-LWrist
//! and the right arm (label 15) along LShoulder-RShoulder-RElbow-RWrist, draw lines of
//! width `10 r` between consecutive present points and discs of radius `15 r` at each
//! reached point (`4 r` at the wrist); arm pixels inside that drawing become background.
//! Then upper clothes, dress and coat (5, 6, 7) and the neck (10) become background.

use crate::error::{Result, VtonError};
use crate::io::Mask;
use crate::io::{Joint, ParseMap, Pose};
use crate::masks::draw;

/// The VITON-HD parse-agnostic map of a 20-label LIP parse.
pub fn parse_agnostic(parse: &ParseMap, pose: &Pose) -> Result<ParseMap> {
    if parse.num_labels != 20 {
        return Err(VtonError::invalid(
            "parse",
            "the VITON-HD parse-agnostic procedure needs a 20-label LIP map",
        ));
    }
    let (w, h) = (parse.width, parse.height);
    let r = 10.0 * h as f32 / 1024.0;
    let mut labels = parse.labels.clone();
    for (label, chain) in [
        (
            14u8,
            [
                Joint::RShoulder,
                Joint::LShoulder,
                Joint::LElbow,
                Joint::LWrist,
            ],
        ),
        (
            15u8,
            [
                Joint::LShoulder,
                Joint::RShoulder,
                Joint::RElbow,
                Joint::RWrist,
            ],
        ),
    ] {
        let mut arm = Mask::zeros(w, h);
        let mut prev = chain[0];
        for (k, &joint) in chain.iter().enumerate().skip(1) {
            let (Some(a), Some(b)) = (pose.get(prev), pose.get(joint)) else {
                continue;
            };
            draw::wide_line(&mut arm, a, b, r * 10.0);
            let radius = if k == chain.len() - 1 {
                r * 4.0
            } else {
                r * 15.0
            };
            draw::fill_ellipse(
                &mut arm,
                b.0 - radius,
                b.1 - radius,
                b.0 + radius,
                b.1 + radius,
            );
            prev = joint;
        }
        for (i, l) in labels.iter_mut().enumerate() {
            if *l == label && arm.data[i] >= 0.5 {
                *l = 0;
            }
        }
    }
    for l in labels.iter_mut() {
        if matches!(*l, 5 | 6 | 7 | 10) {
            *l = 0;
        }
    }
    ParseMap::new(w, h, labels, 20)
}
