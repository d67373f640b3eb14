//! Pose estimation from a photo (the bundled MediaPipe models, loaded once per process)
//! and the completion of try-on inputs that lack keypoints or a person mask.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use vton_core::default_device;
use vton_core::io::PersonSelection;
use vton_core::pipelines::geometric::TryOnInputs;
use vton_core::pipelines::preprocess::{PartialInputs, Preprocessor};

use super::{core, guard, null, rgb_arg, vton_status, VtonError};

/// The process-wide preprocessor on the bundled pose models; built on first use (a
/// failed build is not cached). It stays alive until the process exits.
fn preprocessor() -> vton_core::Result<&'static Preprocessor> {
    static CELL: OnceLock<Preprocessor> = OnceLock::new();
    if let Some(p) = CELL.get() {
        return Ok(p);
    }
    let p = Preprocessor::bundled(&default_device())?;
    let _ = CELL.set(p);
    CELL.get().ok_or_else(|| VtonError::Backend {
        operation: "model cache".into(),
        message: "value vanished after initialisation".into(),
    })
}

/// Completes inputs: keypoints and person mask estimated when missing (models load only
/// then); given inputs are kept.
pub(crate) fn complete(partial: PartialInputs) -> vton_core::Result<TryOnInputs> {
    if partial.needs_pose() {
        preprocessor()?.complete(partial)
    } else {
        Preprocessor::complete_given(partial)
    }
}

/// One person's estimated pose (opaque): BODY_25 keypoints, the 33 MediaPipe landmarks
/// and the image-sized person mask.
pub struct vton_pose {
    keypoints: Vec<f32>,
    landmarks: Vec<f32>,
    mask: Vec<f32>,
    width: u32,
    height: u32,
    score: f32,
}

/// Estimates the pose and person mask of one person in an interleaved 8-bit RGB photo
/// (`width * height * 3` bytes). `person < 0` picks the largest person, `person >= 0`
/// that index of the detections (best score first). No person:
/// `VTON_STATUS_MISSING_KEYPOINTS`. On success `*out` is a new pose (free with
/// `vton_pose_free`). The models are loaded on the first call and kept.
#[no_mangle]
pub unsafe extern "C" fn vton_estimate_pose(
    rgb: *const u8,
    width: u32,
    height: u32,
    person: i32,
    out: *mut *mut vton_pose,
) -> vton_status {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        let img = rgb_arg(rgb, width, height, "rgb")?;
        let sel = match usize::try_from(person) {
            Ok(i) => PersonSelection::Index(i),
            Err(_) => PersonSelection::Largest,
        };
        let est = core(preprocessor().and_then(|p| p.pose_estimator().estimate_one(&img, sel)))?;
        let mask = est.mask.clone().ok_or_else(|| {
            (
                vton_status::VTON_STATUS_NUMERICAL,
                "the pose estimator produced no person mask".to_string(),
            )
        })?;
        let pose = vton_pose {
            keypoints: est.to_body25().to_flat(),
            landmarks: est.landmarks_array().into_iter().flatten().collect(),
            width: mask.width as u32,
            height: mask.height as u32,
            mask: mask.data,
            score: est.score,
        };
        *out = Box::into_raw(Box::new(pose));
        Ok(())
    })
}

/// Number of BODY_25 keypoints (25; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn vton_pose_keypoint_count(pose: *const vton_pose) -> u32 {
    pose.as_ref().map_or(0, |p| (p.keypoints.len() / 3) as u32)
}

/// The BODY_25 keypoints as `vton_pose_keypoint_count() * 3` floats (x, y in pixels,
/// confidence; 0 = missing), owned by the pose; NULL for NULL. Can be passed to
/// `vton_inputs_set_keypoints`.
#[no_mangle]
pub unsafe extern "C" fn vton_pose_keypoints(pose: *const vton_pose) -> *const f32 {
    pose.as_ref()
        .map_or(std::ptr::null(), |p| p.keypoints.as_ptr())
}

/// Number of MediaPipe landmarks (33; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn vton_pose_landmark_count(pose: *const vton_pose) -> u32 {
    pose.as_ref().map_or(0, |p| (p.landmarks.len() / 5) as u32)
}

/// The landmarks as `vton_pose_landmark_count() * 5` floats (x, y in pixels, z in the
/// same pixel scale, visibility, presence), owned by the pose; NULL for NULL.
#[no_mangle]
pub unsafe extern "C" fn vton_pose_landmarks(pose: *const vton_pose) -> *const f32 {
    pose.as_ref()
        .map_or(std::ptr::null(), |p| p.landmarks.as_ptr())
}

/// Width of the mask (= the photo's width; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn vton_pose_mask_width(pose: *const vton_pose) -> u32 {
    pose.as_ref().map_or(0, |p| p.width)
}

/// Height of the mask (= the photo's height; 0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn vton_pose_mask_height(pose: *const vton_pose) -> u32 {
    pose.as_ref().map_or(0, |p| p.height)
}

/// The person probability mask as `width * height` floats in [0, 1] (rows top to
/// bottom), owned by the pose; NULL for NULL.
#[no_mangle]
pub unsafe extern "C" fn vton_pose_mask(pose: *const vton_pose) -> *const f32 {
    pose.as_ref().map_or(std::ptr::null(), |p| p.mask.as_ptr())
}

/// The detector's score for this person (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn vton_pose_score(pose: *const vton_pose) -> f32 {
    pose.as_ref().map_or(0.0, |p| p.score)
}

/// Frees a pose (NULL is ignored).
#[no_mangle]
pub unsafe extern "C" fn vton_pose_free(pose: *mut vton_pose) {
    if !pose.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| drop(Box::from_raw(pose))));
    }
}
