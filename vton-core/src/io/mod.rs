//! Inputs and outputs in the formats the field uses: images, OpenPose keypoints,
//! LIP / VITON-HD parse maps and grey masks.

pub mod image;
pub mod parse;
pub mod pose;
pub mod vitonhd;

pub use self::image::{read_image, read_mask, Mask, RgbImage, ValueRange};
pub use parse::{ParseMap, HRVITON_GROUPS, LIP_LABELS};
pub use pose::{read_keypoints, Joint, Keypoint, PersonSelection, Pose, PoseFormat};
