//! Inputs and outputs in the formats the field uses: images, OpenPose keypoints,
//! LIP / VITON-HD parse maps and grey masks.

pub mod image;
pub mod parse;
pub(crate) mod pil;
pub mod pose;
pub mod vitonhd;

pub use self::image::{read_image, read_mask, Mask, RgbImage, ValueRange};
pub use parse::{ParseMap, HRVITON_GROUPS, LIP_LABELS};
pub use pose::{read_keypoints, Joint, Keypoint, PersonSelection, Pose, PoseFormat};

/// Writes `bytes` to `path` atomically: into a temporary file beside it, then renamed,
/// so a crash never leaves a half-written file under the final name. Creates the parent
/// folder.
pub fn write_atomic(path: impl AsRef<std::path::Path>, bytes: &[u8]) -> crate::Result<()> {
    use crate::error::VtonError;
    let path = path.as_ref();
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| VtonError::io(dir, e))?;
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| VtonError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        VtonError::io(path, e)
    })
}
