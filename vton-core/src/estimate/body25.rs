//! BlazePose-33 landmarks -> OpenPose BODY_25 keypoints.
//!
//! | BODY_25 | name | from BlazePose-33 |
//! |---|---|---|
//! | 0 | Nose | 0 NOSE |
//! | 1 | Neck | mean of 11 LEFT_SHOULDER, 12 RIGHT_SHOULDER |
//! | 2 | RShoulder | 12 RIGHT_SHOULDER |
//! | 3 | RElbow | 14 RIGHT_ELBOW |
//! | 4 | RWrist | 16 RIGHT_WRIST |
//! | 5 | LShoulder | 11 LEFT_SHOULDER |
//! | 6 | LElbow | 13 LEFT_ELBOW |
//! | 7 | LWrist | 15 LEFT_WRIST |
//! | 8 | MidHip | mean of 23 LEFT_HIP, 24 RIGHT_HIP |
//! | 9 | RHip | 24 RIGHT_HIP |
//! | 10 | RKnee | 26 RIGHT_KNEE |
//! | 11 | RAnkle | 28 RIGHT_ANKLE |
//! | 12 | LHip | 23 LEFT_HIP |
//! | 13 | LKnee | 25 LEFT_KNEE |
//! | 14 | LAnkle | 27 LEFT_ANKLE |
//! | 15 | REye | 5 RIGHT_EYE |
//! | 16 | LEye | 2 LEFT_EYE |
//! | 17 | REar | 8 RIGHT_EAR |
//! | 18 | LEar | 7 LEFT_EAR |
//! | 19 | LBigToe | 31 LEFT_FOOT_INDEX |
//! | 20 | LSmallToe | none (missing) |
//! | 21 | LHeel | 29 LEFT_HEEL |
//! | 22 | RBigToe | 32 RIGHT_FOOT_INDEX |
//! | 23 | RSmallToe | none (missing) |
//! | 24 | RHeel | 30 RIGHT_HEEL |
//!
//! Confidence is MediaPipe's visibility; a derived point (Neck, MidHip) takes the
//! smaller visibility of its two sources and exists only when both do. A keypoint is
//! **missing** (`x = y = confidence = 0`, as OpenPose writes it) when its landmark is
//! outside the image (`x` not in `[0, width)` or `y` not in `[0, height)`), not finite,
//! or has visibility below [`MIN_VISIBILITY`]. These rules reproduce which points are
//! present in the corpus keypoint files made by MediaPipe 0.10.21 with this mapping
//! (there, visibilities 0.22 inside the image are missing, 0.32 present).

use super::pose::Landmark;
use crate::io::{Keypoint, Pose, PoseFormat};

/// Landmarks with a visibility below this are missing in BODY_25.
pub const MIN_VISIBILITY: f32 = 0.3;

/// Where a BODY_25 keypoint comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body25Source {
    /// One BlazePose landmark.
    Landmark(usize),
    /// The mean of two landmarks.
    Mean(usize, usize),
    /// BlazePose has no such point.
    Missing,
}

/// The mapping table, indexed by BODY_25 keypoint.
pub const BODY25_FROM_BLAZEPOSE: [Body25Source; 25] = {
    use Body25Source::{Landmark as L, Mean as M, Missing as X};
    [
        L(0),
        M(11, 12),
        L(12),
        L(14),
        L(16),
        L(11),
        L(13),
        L(15),
        M(23, 24),
        L(24),
        L(26),
        L(28),
        L(23),
        L(25),
        L(27),
        L(5),
        L(2),
        L(8),
        L(7),
        L(31),
        X,
        L(29),
        L(32),
        X,
        L(30),
    ]
};

fn usable(lm: Option<&Landmark>, width: usize, height: usize) -> Option<Landmark> {
    let lm = *lm?;
    let inside = lm.x.is_finite()
        && lm.y.is_finite()
        && lm.x >= 0.0
        && lm.y >= 0.0
        && lm.x < width as f32
        && lm.y < height as f32;
    (inside && lm.visibility >= MIN_VISIBILITY).then_some(lm)
}

/// Maps 33 landmarks in pixels to a BODY_25 [`Pose`] (see the module table and rules).
/// Fewer landmarks than 33 leave the missing ones missing.
pub fn to_body25(landmarks: &[Landmark], width: usize, height: usize) -> Pose {
    let keypoints = BODY25_FROM_BLAZEPOSE
        .iter()
        .map(|src| match *src {
            Body25Source::Landmark(i) => usable(landmarks.get(i), width, height)
                .map(|l| Keypoint {
                    x: l.x,
                    y: l.y,
                    confidence: l.visibility,
                })
                .unwrap_or_default(),
            Body25Source::Mean(a, b) => {
                match (
                    usable(landmarks.get(a), width, height),
                    usable(landmarks.get(b), width, height),
                ) {
                    (Some(p), Some(q)) => Keypoint {
                        x: (p.x + q.x) / 2.0,
                        y: (p.y + q.y) / 2.0,
                        confidence: p.visibility.min(q.visibility),
                    },
                    _ => Keypoint::default(),
                }
            }
            Body25Source::Missing => Keypoint::default(),
        })
        .collect();
    Pose {
        keypoints,
        source_format: PoseFormat::Body25,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let mut lms = vec![
            Landmark {
                x: 10.0,
                y: 10.0,
                visibility: 0.9,
                ..Default::default()
            };
            33
        ];
        lms[12].x = 30.0;
        lms[16].visibility = 0.29;
        lms[14].x = 100.0; // outside a 100-wide image
        lms[0].y = f32::NAN;
        let p = to_body25(&lms, 100, 50);
        assert_eq!(p.keypoints.len(), 25);
        assert!(!p.keypoints[0].present());
        assert_eq!(p.keypoints[1].x, 20.0);
        assert!(!p.keypoints[3].present());
        assert!(!p.keypoints[4].present());
        assert!(!p.keypoints[20].present() && !p.keypoints[23].present());
        assert!(p.keypoints[19].present());
        assert_eq!(to_body25(&lms[..3], 100, 50).keypoints.len(), 25);
    }
}
