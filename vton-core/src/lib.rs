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
pub mod io;
pub mod masks;
pub mod pipelines;
pub mod warp;

pub use burn;
pub use error::{Result, VtonError};

/// The default device: burn's `flex` CPU backend.
pub fn default_device() -> burn::tensor::Device {
    burn::tensor::Device::flex()
}

/// The types most users need.
pub mod prelude {
    pub use crate::default_device;
    pub use crate::error::{Result, VtonError};
    pub use crate::io::{
        read_image, read_keypoints, read_mask, Mask, ParseMap, PersonSelection, Pose, RgbImage,
        ValueRange,
    };
    pub use crate::masks::GarmentCategory;
    pub use crate::pipelines::geometric::{GeometricTryOn, TryOnInputs, TryOnOutput};

    pub use crate::warp::{
        grid_sample, GridSampleOptions, PaddingMode, SampleMode, ThinPlateSpline, TpsGridGen,
    };
}
