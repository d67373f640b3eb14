//! Pose landmarks and person masks from a photo: MediaPipe's legacy Pose pipeline
//! (BlazePose detector + `pose_landmark_full`, static image mode) and its Selfie
//! Segmentation, rebuilt on [`crate::tflite::TfliteModel`].
//!
//! The four models ship with vton ([`bundled`], Apache-2.0), so nothing is
//! downloaded:
//!
//! ```no_run
//! use vton_core::estimate::{PoseEstimator, SelfieSegmenter};
//! use vton_core::io::{read_image, PersonSelection};
//! # fn main() -> vton_core::Result<()> {
//! let device = vton_core::default_device();
//! let image = read_image("person.png")?;
//! let pose = PoseEstimator::bundled(&device)?.estimate_one(&image, PersonSelection::Largest)?;
//! let body25 = pose.to_body25(); // OpenPose BODY_25 keypoints
//! let mask = pose.mask; // image-sized, [0, 1]
//! let selfie = SelfieSegmenter::bundled(&device, false)?.segment(&image)?;
//! # let _ = (body25, mask, selfie); Ok(()) }
//! ```
//!
//! Every step reproduces MediaPipe 0.10.14's calculators, with their options as
//! constants (see [`pose`]): pre-processing emulates the OpenCV 3.4 fixed-point warps
//! MediaPipe links ([`preprocess`]); decoding, NMS, ROI, heatmap refinement, projection
//! and mask warp-back are pure functions of the models' raw outputs. See `docs/pose.md`
//! for the agreement with MediaPipe on real photos.

pub mod body25;
pub mod pose;
pub mod preprocess;
pub mod segmentation;

pub use body25::{to_body25, MIN_VISIBILITY};
pub use pose::{Detection, Landmark, PoseEstimate, PoseEstimator, PoseOptions};
pub use preprocess::Roi;
pub use segmentation::SelfieSegmenter;

/// The MediaPipe 0.10.14 models, embedded in the library (Apache-2.0; see
/// `vton-core/models/mediapipe/LICENSE` and `README.md`).
pub mod bundled {
    /// `pose_detection.tflite` (BlazePose detector, 224x224 input).
    pub static POSE_DETECTION: &[u8] =
        include_bytes!("../../models/mediapipe/pose_detection.tflite");
    /// `pose_landmark_full.tflite` (model_complexity 1, 256x256 input).
    pub static POSE_LANDMARK_FULL: &[u8] =
        include_bytes!("../../models/mediapipe/pose_landmark_full.tflite");
    /// `selfie_segmentation.tflite` (model_selection 0, 256x256 input).
    pub static SELFIE_SEGMENTATION: &[u8] =
        include_bytes!("../../models/mediapipe/selfie_segmentation.tflite");
    /// `selfie_segmentation_landscape.tflite` (model_selection 1, 256x144 input).
    pub static SELFIE_SEGMENTATION_LANDSCAPE: &[u8] =
        include_bytes!("../../models/mediapipe/selfie_segmentation_landscape.tflite");
}
