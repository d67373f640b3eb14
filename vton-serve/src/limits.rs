//! Input limits: image dimensions read from the header alone (a decompression bomb is
//! refused before a pixel is decoded), and decoding of the uploaded fields under the
//! decoder's own allocation limit as a second guard.

use std::io::Cursor;

use image::{ImageReader, Limits};
use vton_core::io::pose::{parse_people, select_person};
use vton_core::io::{Mask, ParseMap, PersonSelection, Pose, RgbImage};

use crate::error::ApiError;

/// Width and height from the image header (PNG or JPEG only), read by hand from the
/// first bytes: no decoder runs, so a file claiming 10^10 pixels costs nothing.
pub fn header_dims(field: &str, bytes: &[u8]) -> Result<(u32, u32), ApiError> {
    let bad = |message: &str| ApiError::InvalidImage {
        field: field.into(),
        message: message.into(),
    };
    let be32 = |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        // The IHDR chunk comes first: length 13, "IHDR", width, height.
        if bytes.len() < 24 || &bytes[12..16] != b"IHDR" {
            return Err(bad("PNG without an IHDR header"));
        }
        return Ok((be32(16), be32(20)));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        // Walk the marker segments to the first start-of-frame.
        let mut i = 2;
        while i + 4 <= bytes.len() {
            if bytes[i] != 0xFF {
                return Err(bad("corrupt JPEG marker"));
            }
            let marker = bytes[i + 1];
            if marker == 0xFF {
                i += 1; // fill byte
                continue;
            }
            if marker == 0xD8 || marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
                i += 2;
                continue;
            }
            let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
            let sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
            if sof {
                if i + 9 > bytes.len() {
                    break;
                }
                let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]) as u32;
                let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]) as u32;
                return Ok((w, h));
            }
            if marker == 0xD9 || marker == 0xDA || len < 2 {
                break;
            }
            i += 2 + len;
        }
        return Err(bad("JPEG without a frame header"));
    }
    Err(bad("not a PNG or JPEG image"))
}

/// Refuses an image whose header claims more than `max_pixels` pixels.
pub fn check_pixels(field: &str, bytes: &[u8], max_pixels: u64) -> Result<(u32, u32), ApiError> {
    let (width, height) = header_dims(field, bytes)?;
    let pixels = width as u64 * height as u64;
    if pixels > max_pixels {
        return Err(ApiError::TooManyPixels {
            field: field.into(),
            width,
            height,
            pixels,
            limit: max_pixels,
        });
    }
    if pixels == 0 {
        return Err(ApiError::InvalidImage {
            field: field.into(),
            message: format!("empty image {width}x{height}"),
        });
    }
    Ok((width, height))
}

fn decode(field: &str, bytes: &[u8], max_pixels: u64) -> Result<image::DynamicImage, ApiError> {
    check_pixels(field, bytes, max_pixels)?;
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ApiError::InvalidImage {
            field: field.into(),
            message: e.to_string(),
        })?;
    let mut limits = Limits::default();
    // 16 bytes a pixel covers RGBA16, the widest PNG this decoder produces.
    limits.max_alloc = Some(max_pixels.saturating_mul(16).max(1 << 20));
    reader.limits(limits);
    reader.decode().map_err(|e| ApiError::InvalidImage {
        field: field.into(),
        message: e.to_string(),
    })
}

/// An RGB photo (alpha dropped, grey expanded), as `vton_core::io::read_image` reads files.
pub fn decode_rgb(field: &str, bytes: &[u8], max_pixels: u64) -> Result<RgbImage, ApiError> {
    let img = decode(field, bytes, max_pixels)?.to_rgb8();
    let (w, h) = img.dimensions();
    RgbImage::from_rgb8(w as usize, h as usize, img.as_raw())
        .map_err(|e| ApiError::from_vton(e, Some(field)))
}

/// A grey mask in `[0, 1]`, as `vton_core::io::read_mask` reads files.
pub fn decode_mask(field: &str, bytes: &[u8], max_pixels: u64) -> Result<Mask, ApiError> {
    let img = decode(field, bytes, max_pixels)?.to_luma8();
    let (w, h) = img.dimensions();
    Mask::from_u8(w as usize, h as usize, img.as_raw())
        .map_err(|e| ApiError::from_vton(e, Some(field)))
}

/// A LIP / VITON-HD label PNG.
pub fn decode_parse(field: &str, bytes: &[u8], max_pixels: u64) -> Result<ParseMap, ApiError> {
    check_pixels(field, bytes, max_pixels)?;
    ParseMap::from_png_bytes(bytes, field).map_err(|e| ApiError::from_vton(e, Some(field)))
}

/// OpenPose JSON (BODY_25 or COCO-18); the largest person.
pub fn decode_keypoints(field: &str, bytes: &[u8]) -> Result<Pose, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::InvalidInput {
        message: format!("field `{field}`: not UTF-8 JSON"),
    })?;
    let people = parse_people(text, field).map_err(|e| ApiError::from_vton(e, Some(field)))?;
    select_person(people, PersonSelection::Largest, field)
        .map_err(|e| ApiError::from_vton(e, Some(field)))
}

/// Encodes a result image: PNG, or JPEG at `quality`.
pub fn encode_rgb(img: &RgbImage, format: OutputFormat, quality: u8) -> Result<Vec<u8>, ApiError> {
    encode(
        &img.to_rgb8(),
        img.width,
        img.height,
        image::ExtendedColorType::Rgb8,
        format,
        quality,
    )
}

/// Encodes a mask as a grey PNG.
pub fn encode_mask(m: &Mask) -> Result<Vec<u8>, ApiError> {
    encode(
        &m.to_u8(),
        m.width,
        m.height,
        image::ExtendedColorType::L8,
        OutputFormat::Png,
        100,
    )
}

fn encode(
    bytes: &[u8],
    width: usize,
    height: usize,
    color: image::ExtendedColorType,
    format: OutputFormat,
    quality: u8,
) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    let r = match format {
        OutputFormat::Png => image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut out),
            bytes,
            width as u32,
            height as u32,
            color,
        ),
        OutputFormat::Jpeg => image::ImageEncoder::write_image(
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality),
            bytes,
            width as u32,
            height as u32,
            color,
        ),
    };
    r.map_err(|e| ApiError::Internal {
        message: format!("encoding the result: {e}"),
    })?;
    Ok(out)
}

/// The result's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Png,
    Jpeg,
}

impl OutputFormat {
    pub fn mime(self) -> &'static str {
        match self {
            OutputFormat::Png => "image/png",
            OutputFormat::Jpeg => "image/jpeg",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG signature and IHDR chunk claiming `w x h`, with no image data at all.
    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut v = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13];
        let mut chunk = b"IHDR".to_vec();
        chunk.extend(w.to_be_bytes());
        chunk.extend(h.to_be_bytes());
        chunk.extend([8, 2, 0, 0, 0]);
        v.extend(&chunk);
        v.extend(crc32(&chunk).to_be_bytes());
        v
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn bomb_refused_from_header() {
        let bytes = png_header(100_000, 100_000);
        assert_eq!(header_dims("p", &bytes).unwrap(), (100_000, 100_000));
        let e = check_pixels("p", &bytes, 1 << 24).unwrap_err();
        assert!(
            matches!(
                e,
                ApiError::TooManyPixels {
                    pixels: 10_000_000_000,
                    ..
                }
            ),
            "{e}"
        );
        // Within the limit, the truncated file fails to decode: 400, not a panic.
        let e = decode_rgb("p", &png_header(4, 4), 1 << 24).unwrap_err();
        assert!(matches!(e, ApiError::InvalidImage { .. }), "{e}");
    }

    #[test]
    fn round_trip_and_garbage() {
        let img = RgbImage::filled(5, 3, [1.0, 0.0, 0.0]);
        let png = encode_rgb(&img, OutputFormat::Png, 90).unwrap();
        let back = decode_rgb("x", &png, 100).unwrap();
        assert_eq!((back.width, back.height), (5, 3));
        assert_eq!(back.get(2, 1), [1.0, 0.0, 0.0]);
        assert!(matches!(
            decode_rgb("x", &png, 14),
            Err(ApiError::TooManyPixels { .. })
        ));
        assert!(matches!(
            decode_rgb("x", b"hello", 100),
            Err(ApiError::InvalidImage { .. })
        ));
        let jpg = encode_rgb(&img, OutputFormat::Jpeg, 80).unwrap();
        assert_eq!(header_dims("x", &jpg).unwrap(), (5, 3));
        assert!(decode_rgb("x", &jpg, 100).is_ok());
        for cut in [3, 10, 20] {
            assert!(header_dims("x", &png[..cut]).is_err(), "{cut}");
            assert!(header_dims("x", &jpg[..cut]).is_err(), "{cut}");
        }
    }
}
