//! OpenPose keypoint JSON (`people[i].pose_keypoints_2d`), BODY_25 and COCO-18.
//!
//! Poses are stored in BODY_25 order whatever the file's layout: COCO-18 files are
//! mapped joint by joint, and MidHip is the mean of the hips when both are present.
//! A keypoint with confidence 0 (or at the origin with zero confidence, as OpenPose
//! writes missing points) is missing.

use std::path::Path;

use crate::error::{Result, VtonError};

/// One detected keypoint in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Keypoint {
    pub x: f32,
    pub y: f32,
    pub confidence: f32,
}

impl Keypoint {
    /// Whether the point was detected (confidence > 0).
    pub fn present(&self) -> bool {
        self.confidence > 0.0 && self.x.is_finite() && self.y.is_finite()
    }
}

/// The layout a keypoint file used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoseFormat {
    Body25,
    Coco18,
}

/// BODY_25 joints (OpenPose numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Joint {
    Nose = 0,
    Neck = 1,
    RShoulder = 2,
    RElbow = 3,
    RWrist = 4,
    LShoulder = 5,
    LElbow = 6,
    LWrist = 7,
    MidHip = 8,
    RHip = 9,
    RKnee = 10,
    RAnkle = 11,
    LHip = 12,
    LKnee = 13,
    LAnkle = 14,
    REye = 15,
    LEye = 16,
    REar = 17,
    LEar = 18,
}

/// COCO-18 index -> BODY_25 index.
pub const COCO18_TO_BODY25: [usize; 18] = [
    0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18,
];

/// Which person of a multi-person file to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PersonSelection {
    /// The person whose present keypoints span the largest bounding-box area
    /// (the main subject in a try-on photo); ties go to the first.
    #[default]
    Largest,
    /// The person at this index of `people`.
    Index(usize),
}

/// One person's pose in BODY_25 order (25 points).
#[derive(Debug, Clone, PartialEq)]
pub struct Pose {
    pub keypoints: Vec<Keypoint>,
    /// Layout of the file it came from.
    pub source_format: PoseFormat,
}

impl Pose {
    /// From a flat `[x, y, c, x, y, c, ...]` list of 25 (BODY_25) or 18 (COCO-18) points.
    pub fn from_flat(values: &[f32]) -> Result<Self> {
        let n = values.len() / 3;
        if values.len() % 3 != 0 || (n != 25 && n != 18) {
            return Err(VtonError::invalid(
                "pose_keypoints_2d",
                format!(
                    "expected 75 (BODY_25) or 54 (COCO-18) numbers, got {}",
                    values.len()
                ),
            ));
        }
        let pts: Vec<Keypoint> = values
            .chunks_exact(3)
            .map(|c| {
                let kp = Keypoint {
                    x: c[0],
                    y: c[1],
                    confidence: c[2],
                };
                if kp.present() {
                    kp
                } else {
                    Keypoint::default()
                }
            })
            .collect();
        if n == 25 {
            return Ok(Pose {
                keypoints: pts,
                source_format: PoseFormat::Body25,
            });
        }
        let mut body = vec![Keypoint::default(); 25];
        for (coco, &b) in COCO18_TO_BODY25.iter().enumerate() {
            body[b] = pts[coco];
        }
        let (r, l) = (body[Joint::RHip as usize], body[Joint::LHip as usize]);
        if r.present() && l.present() {
            body[Joint::MidHip as usize] = Keypoint {
                x: (r.x + l.x) / 2.0,
                y: (r.y + l.y) / 2.0,
                confidence: r.confidence.min(l.confidence),
            };
        }
        Ok(Pose {
            keypoints: body,
            source_format: PoseFormat::Coco18,
        })
    }

    /// The joint's position if present.
    pub fn get(&self, joint: Joint) -> Option<(f32, f32)> {
        let k = self.keypoints.get(joint as usize)?;
        k.present().then_some((k.x, k.y))
    }

    /// The positions of the given joints, or a [`VtonError::MissingKeypoints`] naming every missing one.
    pub fn require<const N: usize>(
        &self,
        joints: [Joint; N],
        operation: &str,
    ) -> Result<[(f32, f32); N]> {
        let missing: Vec<String> = joints
            .iter()
            .filter(|j| self.get(**j).is_none())
            .map(|j| format!("{j:?}"))
            .collect();
        if !missing.is_empty() {
            return Err(VtonError::MissingKeypoints {
                operation: operation.into(),
                missing: missing.join(", "),
            });
        }
        Ok(joints.map(|j| self.get(j).unwrap_or_default()))
    }

    fn spread(&self) -> f32 {
        let pts: Vec<&Keypoint> = self.keypoints.iter().filter(|k| k.present()).collect();
        if pts.is_empty() {
            return 0.0;
        }
        let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
        for k in pts {
            x0 = x0.min(k.x);
            y0 = y0.min(k.y);
            x1 = x1.max(k.x);
            y1 = y1.max(k.y);
        }
        (x1 - x0) * (y1 - y0)
    }

    /// Flat BODY_25 `[x, y, c] * 25`.
    pub fn to_flat(&self) -> Vec<f32> {
        self.keypoints
            .iter()
            .flat_map(|k| [k.x, k.y, k.confidence])
            .collect()
    }
}

/// Parses every person of an OpenPose JSON document.
pub fn parse_people(json: &str, what: &str) -> Result<Vec<Pose>> {
    let doc: serde_json::Value = serde_json::from_str(json).map_err(|e| VtonError::Json {
        what: what.into(),
        message: e.to_string(),
    })?;
    let people = doc
        .get("people")
        .and_then(|p| p.as_array())
        .ok_or_else(|| VtonError::Json {
            what: what.into(),
            message: "no `people` array".into(),
        })?;
    people
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let flat = p
                .get("pose_keypoints_2d")
                .and_then(|v| v.as_array())
                .ok_or_else(|| VtonError::Json {
                    what: what.into(),
                    message: format!("people[{i}] has no `pose_keypoints_2d` array"),
                })?;
            let vals: Option<Vec<f32>> =
                flat.iter().map(|v| v.as_f64().map(|f| f as f32)).collect();
            let vals = vals.ok_or_else(|| VtonError::Json {
                what: what.into(),
                message: format!("people[{i}].pose_keypoints_2d has a non-number"),
            })?;
            Pose::from_flat(&vals)
        })
        .collect()
}

/// Chooses one person from a parsed file.
pub fn select_person(people: Vec<Pose>, selection: PersonSelection, what: &str) -> Result<Pose> {
    select_by_area(people, Pose::spread, selection, what)
}

/// Chooses one of several people: [`PersonSelection::Largest`] = the largest `area`
/// (ties go to the first), [`PersonSelection::Index`] = that index;
/// [`VtonError::NoPerson`] when there is no such person.
pub fn select_by_area<T>(
    people: Vec<T>,
    area: impl Fn(&T) -> f32,
    selection: PersonSelection,
    what: &str,
) -> Result<T> {
    let available = people.len();
    let index = match selection {
        PersonSelection::Index(i) => i,
        PersonSelection::Largest => {
            let mut best = 0;
            for (i, p) in people.iter().enumerate() {
                if area(p) > people.get(best).map(&area).unwrap_or(f32::MIN) {
                    best = i;
                }
            }
            best
        }
    };
    people.into_iter().nth(index).ok_or(VtonError::NoPerson {
        what: what.into(),
        index,
        available,
    })
}

/// Reads an OpenPose JSON file and selects one person.
pub fn read_keypoints(path: impl AsRef<Path>, selection: PersonSelection) -> Result<Pose> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| VtonError::io(path, e))?;
    let what = path.display().to_string();
    select_person(parse_people(&text, &what)?, selection, &what)
}

/// An OpenPose JSON document (format 1.3) with one entry per pose, BODY_25
/// `pose_keypoints_2d` in pixels (missing points as 0, 0, 0), as OpenPose writes it.
pub fn openpose_json(poses: &[Pose]) -> String {
    let people: Vec<serde_json::Value> = poses
        .iter()
        .map(|p| {
            serde_json::json!({
                "person_id": [-1],
                "pose_keypoints_2d": p.to_flat(),
                "face_keypoints_2d": [],
                "hand_left_keypoints_2d": [],
                "hand_right_keypoints_2d": [],
                "pose_keypoints_3d": [],
                "face_keypoints_3d": [],
                "hand_left_keypoints_3d": [],
                "hand_right_keypoints_3d": [],
            })
        })
        .collect();
    serde_json::json!({ "version": 1.3, "people": people }).to_string()
}
