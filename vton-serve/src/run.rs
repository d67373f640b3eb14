//! One try-on from raw fields: the options, the accepted fields, decoding (with the pixel
//! limit), the model run and the encoding. `/tryon`, the batch jobs and `vton run-batch`
//! all go through [`run_fields`].

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;

use axum::body::Bytes;
use serde::Deserialize;
use vton_core::masks::GarmentCategory;

use crate::engine::{self, Engine};
use crate::error::ApiError;
use crate::limits::{self, OutputFormat};

/// The `options` field of `/tryon`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TryOnOptions {
    pub output_format: Option<String>,
    pub quality: Option<u8>,
    #[serde(default)]
    pub return_mask: bool,
    pub steps: Option<usize>,
    pub guidance: Option<f32>,
    pub seed: Option<u64>,
    pub category: Option<String>,
}

/// Checked options of one try-on (`/tryon`'s `options`, a batch job's `options`).
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    pub format: OutputFormat,
    pub quality: u8,
    pub return_mask: bool,
    pub steps: usize,
    pub guidance: f32,
    pub seed: u64,
    pub category: GarmentCategory,
}

impl TryOnOptions {
    /// Parses and checks the options JSON (absent or blank: the defaults).
    pub fn parse(bytes: Option<&[u8]>) -> Result<Checked, ApiError> {
        let o: TryOnOptions = match bytes {
            Some(b) if !b.iter().all(u8::is_ascii_whitespace) => serde_json::from_slice(b)
                .map_err(|e| ApiError::InvalidOptions {
                    message: e.to_string(),
                })?,
            _ => TryOnOptions::default(),
        };
        let bad = |m: String| ApiError::InvalidOptions { message: m };
        let format = match o.output_format.as_deref().unwrap_or("png") {
            "png" => OutputFormat::Png,
            "jpeg" | "jpg" => OutputFormat::Jpeg,
            f => return Err(bad(format!("output_format {f:?} is not png or jpeg"))),
        };
        let quality = o.quality.unwrap_or(90);
        if !(1..=100).contains(&quality) {
            return Err(bad(format!("quality {quality} is not in 1-100")));
        }
        let steps = o.steps.unwrap_or(50);
        if !(1..=1000).contains(&steps) {
            return Err(bad(format!("steps {steps} is not in 1-1000")));
        }
        let guidance = o.guidance.unwrap_or(2.5);
        if !guidance.is_finite() || !(0.0..=100.0).contains(&guidance) {
            return Err(bad(format!("guidance {guidance} is not in 0-100")));
        }
        let category = GarmentCategory::from_name(o.category.as_deref().unwrap_or("upper_body"))
            .map_err(|e| bad(e.to_string()))?;
        Ok(Checked {
            format,
            quality,
            return_mask: o.return_mask,
            steps,
            guidance,
            seed: o.seed.unwrap_or(0),
            category,
        })
    }
}

/// Multipart fields `/tryon` takes; any other is refused (named).
pub const FIELDS: &[&str] = &[
    "person_image",
    "garment_image",
    "person_mask",
    "garment_mask",
    "keypoints",
    "parse",
    "densepose",
    "parse_agnostic",
    "agnostic",
    "options",
];
pub const IMAGE_FIELDS: &[&str] = &[
    "person_image",
    "garment_image",
    "person_mask",
    "garment_mask",
    "parse",
    "densepose",
    "parse_agnostic",
    "agnostic",
];

/// Encoded result image, encoded mask when asked, output size (w, h).
pub type Encoded = (Vec<u8>, Option<Vec<u8>>, (usize, usize));

/// Decodes, runs and encodes one try-on from its fields (named as `FIELDS`), on the
/// calling thread: model work, to be run off the async threads.
pub fn run_fields(
    engine: &Engine,
    mut f: HashMap<String, Bytes>,
    o: &Checked,
    format: OutputFormat,
    max_pixels: u64,
    cancel: &AtomicBool,
) -> Result<Encoded, ApiError> {
    let mut take = |name: &str| f.remove(name);
    let rgb = |name: &str, b: Option<Bytes>| {
        b.map(|b| limits::decode_rgb(name, &b, max_pixels))
            .transpose()
    };
    let mask = |name: &str, b: Option<Bytes>| {
        b.map(|b| limits::decode_mask(name, &b, max_pixels))
            .transpose()
    };
    let parse = |name: &str, b: Option<Bytes>| {
        b.map(|b| limits::decode_parse(name, &b, max_pixels))
            .transpose()
    };
    let missing = |field: &str| ApiError::MissingField {
        field: field.into(),
    };
    let req = engine::Request {
        person: rgb("person_image", take("person_image"))?
            .ok_or_else(|| missing("person_image"))?,
        garment: rgb("garment_image", take("garment_image"))?
            .ok_or_else(|| missing("garment_image"))?,
        person_mask: mask("person_mask", take("person_mask"))?,
        garment_mask: mask("garment_mask", take("garment_mask"))?,
        keypoints: take("keypoints")
            .map(|b| limits::decode_keypoints("keypoints", &b))
            .transpose()?,
        parse: parse("parse", take("parse"))?,
        densepose: rgb("densepose", take("densepose"))?,
        parse_agnostic: parse("parse_agnostic", take("parse_agnostic"))?,
        agnostic: rgb("agnostic", take("agnostic"))?,
        category: o.category,
        steps: o.steps,
        guidance: o.guidance,
        seed: o.seed,
    };
    let out = engine.run(req, cancel)?;
    let image = limits::encode_rgb(&out.image, format, o.quality)?;
    let mask = if o.return_mask {
        Some(limits::encode_mask(&out.mask)?)
    } else {
        None
    };
    Ok((image, mask, (out.image.width, out.image.height)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked() {
        let o = |s: &str| TryOnOptions::parse(Some(s.as_bytes()));
        assert!(o("{}").is_ok());
        assert!(o("").is_ok());
        let c = o(r#"{"output_format":"jpeg","quality":70,"return_mask":true,"seed":3}"#).unwrap();
        assert_eq!(
            (c.format, c.quality, c.return_mask, c.seed),
            (OutputFormat::Jpeg, 70, true, 3)
        );
        for bad in [
            "{",
            r#"{"quality":0}"#,
            r#"{"quality":101}"#,
            r#"{"output_format":"gif"}"#,
            r#"{"steps":0}"#,
            r#"{"category":"hat"}"#,
            r#"{"colour":1}"#,
        ] {
            assert!(
                matches!(o(bad), Err(ApiError::InvalidOptions { .. })),
                "{bad}"
            );
        }
    }
}
