//! # vton-core
//!
//! The engine of vton, a virtual try-on library: image, pose and parse-map I/O, masks,
//! thin-plate-spline and flow warping, and try-on pipelines, on [burn] tensors.
//!
//! The backend is chosen at run time by a [`burn::tensor::Device`]: [`default_device`]
//! is the pure-Rust `flex` CPU backend; enabling the `wgpu` (or `cuda`) feature adds GPU
//! devices without changing any code path.
//!
//! ```no_run
//! use vton_core::prelude::*;
//! # fn main() -> vton_core::Result<()> {
//! let inputs = TryOnInputs::from_paths(
//!     "person.png", "person_keypoints.json", Some("person_mask.png"), None::<&str>,
//!     "garment.png", None::<&str>,
//! )?;
//! let out = GeometricTryOn::default().run(&inputs, &default_device())?;
//! out.image.save_png("result.png")?;
//! # Ok(()) }
//! ```

pub mod error;
pub mod estimate;
pub mod io;
pub mod kernels;
pub mod masks;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod pipelines;
pub mod rng;
pub mod schedulers;
pub mod tflite;
pub mod train;
pub mod warp;
pub mod weights;

pub use burn;
pub use error::{Result, VtonError};

/// The default device: burn's `flex` CPU backend.
pub fn default_device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

/// A device by name, for command lines and bindings: `"cpu"` / `"flex"` (always
/// available), `"wgpu"` (feature `wgpu`: the default adapter, a software one where no GPU
/// exists), `"cuda"` or `"cuda:N"` (feature `cuda`). A backend that was not compiled in is
/// an [`VtonError::Unsupported`] naming the feature to enable.
pub fn device_from_name(name: &str) -> Result<burn::tensor::Device> {
    let lower = name.trim().to_ascii_lowercase();
    let (kind, index) = match lower.split_once(':') {
        Some((k, i)) => {
            let idx = i.parse::<usize>().map_err(|_| {
                VtonError::invalid(
                    "device",
                    format!("'{name}': the index after ':' must be a number"),
                )
            })?;
            (k.to_string(), idx)
        }
        None => (lower.clone(), 0),
    };
    match kind.as_str() {
        "cpu" | "flex" => {
            let _ = index;
            Ok(burn::tensor::Device::flex())
        }
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(burn::tensor::Device::wgpu(if lower.contains(':') {
            burn::tensor::DeviceKind::DiscreteGpu(index)
        } else {
            burn::tensor::DeviceKind::DefaultDevice
        })),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(burn::tensor::Device::cuda(index)),
        #[cfg(not(feature = "wgpu"))]
        "wgpu" => Err(missing_backend(name, "wgpu")),
        #[cfg(not(feature = "cuda"))]
        "cuda" => Err(missing_backend(name, "cuda")),
        _ => Err(VtonError::invalid(
            "device",
            format!("'{name}' is not one of 'cpu', 'wgpu', 'cuda[:N]'"),
        )),
    }
}

#[allow(dead_code)]
fn missing_backend(name: &str, feature: &str) -> VtonError {
    VtonError::Unsupported {
        what: format!(
            "device '{name}': this build of vton has no {feature} backend (rebuild with the \
             vton-core feature `{feature}`)"
        ),
    }
}

/// The types most users need.
pub mod prelude {
    pub use crate::error::{Result, VtonError};
    pub use crate::estimate::{PoseEstimate, PoseEstimator, SelfieSegmenter};
    pub use crate::io::{
        read_image, read_keypoints, read_mask, Mask, ParseMap, PersonSelection, Pose, RgbImage,
        ValueRange,
    };
    pub use crate::masks::GarmentCategory;
    pub use crate::pipelines::geometric::{GeometricTryOn, TryOnInputs, TryOnOutput};
    pub use crate::pipelines::preprocess::{PartialInputs, Preprocessor};
    pub use crate::tflite::TfliteModel;
    pub use crate::{default_device, device_from_name};

    pub use crate::warp::{
        grid_sample, GridSampleOptions, PaddingMode, SampleMode, ThinPlateSpline, TpsGridGen,
    };
}
