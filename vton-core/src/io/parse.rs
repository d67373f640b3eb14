//! Human-parsing label maps: the 20-label LIP scheme that VITON-HD and HR-VITON
//! ship (`image-parse-v3/*.png`, palette or grey PNG whose pixel value is the label),
//! and HR-VITON's 13-group mapping of it.

use std::path::Path;

use crate::error::{Result, VtonError};
use crate::io::Mask;

/// LIP labels, index = label value. VITON-HD's parse maps use index 10 for the neck.
pub const LIP_LABELS: [&str; 20] = [
    "background",
    "hat",
    "hair",
    "glove",
    "sunglasses",
    "upper-clothes",
    "dress",
    "coat",
    "socks",
    "pants",
    "jumpsuits/neck",
    "scarf",
    "skirt",
    "face",
    "left-arm",
    "right-arm",
    "left-leg",
    "right-leg",
    "left-shoe",
    "right-shoe",
];

/// HR-VITON's 13 groups (`cp_dataset.py` of sangyun884/HR-VITON): name and the LIP labels merged into it.
pub const HRVITON_GROUPS: [(&str, &[u8]); 13] = [
    ("background", &[0, 10]),
    ("hair", &[1, 2]),
    ("face", &[4, 13]),
    ("upper", &[5, 6, 7]),
    ("bottom", &[9, 12]),
    ("left_arm", &[14]),
    ("right_arm", &[15]),
    ("left_leg", &[16]),
    ("right_leg", &[17]),
    ("left_shoe", &[18]),
    ("right_shoe", &[19]),
    ("socks", &[8]),
    ("noise", &[3, 11]),
];

/// The largest decoded label map [`decode_label_png`] accepts, in bytes (64 MiB: 64 Mi
/// grey pixels, 85 times a 1024x768 VITON-HD map).
pub const MAX_LABEL_PNG_BYTES: usize = 64 << 20;

/// Deflate expands at most 1032-fold, so a PNG's pixels cannot outweigh its file by more
/// (filter bytes only add to the compressed stream).
const DEFLATE_MAX_RATIO: usize = 1032;

/// Decodes an 8-bit palette, grey or grey+alpha PNG to one label per pixel (palette
/// indices or grey values, as `np.array(Image.open(p))` gives them): `(width, height,
/// labels)`. The size the header claims is checked before anything is allocated for the
/// pixels: at most [`MAX_LABEL_PNG_BYTES`], and no more than the file's compressed data
/// could hold.
pub fn decode_label_png(bytes: &[u8], what: &str) -> Result<(usize, usize, Vec<u8>)> {
    let img_err = |m: String| VtonError::Image {
        what: what.to_string(),
        message: m,
    };
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::IDENTITY);
    let mut reader = decoder
        .read_info()
        .map_err(|e| img_err(format!("not a readable PNG: {e}")))?;
    let (width, height) = reader.info().size();
    let size = reader
        .output_buffer_size()
        .filter(|&n| n <= MAX_LABEL_PNG_BYTES)
        .ok_or_else(|| {
            img_err(format!(
                "PNG of {width}x{height} pixels is larger than the {MAX_LABEL_PNG_BYTES} bytes \
                 a label map may decode to"
            ))
        })?;
    if size / DEFLATE_MAX_RATIO > bytes.len() {
        return Err(img_err(format!(
            "PNG header claims {width}x{height} pixels, more than its {} bytes can hold \
             (truncated or corrupt)",
            bytes.len()
        )));
    }
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| img_err(e.to_string()))?;
    if info.bit_depth != png::BitDepth::Eight {
        return Err(img_err(format!(
            "label maps must be 8-bit, got {:?}",
            info.bit_depth
        )));
    }
    let channels = match info.color_type {
        png::ColorType::Indexed | png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        other => {
            return Err(img_err(format!(
                "label maps must be palette or grey PNGs, got {other:?}"
            )))
        }
    };
    let labels: Vec<u8> = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|c| c[0])
        .collect();
    Ok((info.width as usize, info.height as usize, labels))
}

/// A label map: one `u8` label per pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseMap {
    pub width: usize,
    pub height: usize,
    pub labels: Vec<u8>,
    /// Number of labels of the scheme (20 for LIP, 13 for HR-VITON groups).
    pub num_labels: u8,
}

impl ParseMap {
    /// From raw labels, checked against the scheme size.
    pub fn new(width: usize, height: usize, labels: Vec<u8>, num_labels: u8) -> Result<Self> {
        let n = width.checked_mul(height);
        if width == 0 || height == 0 || n != Some(labels.len()) {
            return Err(VtonError::SizeMismatch {
                what: "parse map".into(),
                expected: format!("{width}x{height} labels"),
                actual: labels.len().to_string(),
            });
        }
        if let Some(bad) = labels.iter().find(|&&l| l >= num_labels) {
            return Err(VtonError::invalid(
                "parse map",
                format!("label {bad} is outside the {num_labels}-label scheme"),
            ));
        }
        Ok(ParseMap {
            width,
            height,
            labels,
            num_labels,
        })
    }

    /// Reads a LIP-scheme label PNG (palette indices or grey values are the labels).
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| VtonError::io(path, e))?;
        Self::from_png_bytes(&bytes, &path.display().to_string())
    }

    /// [`ParseMap::read`] of a PNG held in memory; `what` names it in messages.
    pub fn from_png_bytes(bytes: &[u8], what: &str) -> Result<Self> {
        let (w, h, labels) = decode_label_png(bytes, what)?;
        ParseMap::new(w, h, labels, 20).map_err(|e| match e {
            VtonError::InvalidArgument { message, .. } => VtonError::Image {
                what: what.to_string(),
                message,
            },
            other => other,
        })
    }

    /// Writes the map as an 8-bit palette PNG (index = label, colours from the
    /// PASCAL/LIP colour map SCHP and VITON-HD use), atomically.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let mut palette = Vec::with_capacity(256 * 3);
        for label in 0..256u32 {
            let (mut r, mut g, mut b) = (0u8, 0u8, 0u8);
            let mut lab = label;
            for bit in 0..8 {
                r |= (((lab >> 0) & 1) as u8) << (7 - bit);
                g |= (((lab >> 1) & 1) as u8) << (7 - bit);
                b |= (((lab >> 2) & 1) as u8) << (7 - bit);
                lab >>= 3;
            }
            palette.extend_from_slice(&[r, g, b]);
        }
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            enc.set_color(png::ColorType::Indexed);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_palette(palette);
            let err = |e: png::EncodingError| VtonError::Image {
                what: path.display().to_string(),
                message: e.to_string(),
            };
            let mut w = enc.write_header().map_err(err)?;
            w.write_image_data(&self.labels).map_err(err)?;
        }
        crate::io::write_atomic(path, &out)
    }

    /// Nearest-neighbour resize (pixel centres, as PIL's `NEAREST`), labels unchanged.
    pub fn resize_nearest(&self, width: usize, height: usize) -> ParseMap {
        let mut labels = Vec::with_capacity(width * height);
        for y in 0..height {
            let sy = (((y as f64 + 0.5) * self.height as f64 / height as f64) as usize)
                .min(self.height - 1);
            for x in 0..width {
                let sx = (((x as f64 + 0.5) * self.width as f64 / width as f64) as usize)
                    .min(self.width - 1);
                labels.push(self.labels[sy * self.width + sx]);
            }
        }
        ParseMap {
            width,
            height,
            labels,
            num_labels: self.num_labels,
        }
    }

    /// Mask of the pixels whose label is in `labels`.
    pub fn mask_of(&self, labels: &[u8]) -> Mask {
        Mask {
            width: self.width,
            height: self.height,
            data: self
                .labels
                .iter()
                .map(|l| if labels.contains(l) { 1.0 } else { 0.0 })
                .collect(),
        }
    }

    /// HR-VITON's 13-group map of a LIP map.
    pub fn to_hrviton13(&self) -> Result<ParseMap> {
        if self.num_labels != 20 {
            return Err(VtonError::invalid(
                "parse map",
                "the 13-group mapping applies to 20-label LIP maps",
            ));
        }
        let mut lut = [0u8; 20];
        for (g, (_, members)) in HRVITON_GROUPS.iter().enumerate() {
            for &m in *members {
                lut[m as usize] = g as u8;
            }
        }
        Ok(ParseMap {
            width: self.width,
            height: self.height,
            labels: self.labels.iter().map(|&l| lut[l as usize]).collect(),
            num_labels: 13,
        })
    }

    /// One-hot `[num_labels, H, W]` planes, row-major.
    pub fn one_hot(&self) -> Vec<f32> {
        let n = self.width * self.height;
        let mut out = vec![0f32; self.num_labels as usize * n];
        for (p, &l) in self.labels.iter().enumerate() {
            out[l as usize * n + p] = 1.0;
        }
        out
    }
}
