//! Masks: clothing-agnostic regions of a person and garment masks of product photos.

pub mod agnostic;
pub mod draw;
pub mod garment;
pub mod morph;
pub mod parse_agnostic;
pub mod viton_hd;

pub use agnostic::{
    agnostic_from_keypoints, agnostic_from_parse, agnostic_image, BodyFrame, GarmentCategory,
};
pub use garment::{
    estimate_garment_mask, garment_matte, GarmentMaskOptions, GarmentMatte, MatteOptions,
};
pub use parse_agnostic::parse_agnostic;
