//! 8-bit images as PIL holds them and Pillow's own resampling (bit-exact), for the
//! pipelines and data loaders that reproduce code written against PIL.

use std::path::Path;

use crate::error::{Result, VtonError};

/// An 8-bit interleaved image (1 or 3 channels), as PIL holds it.
#[derive(Debug, Clone)]
pub(crate) struct U8Image {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) channels: usize,
    pub(crate) data: Vec<u8>,
}

pub(crate) fn decode(path: &Path, channels: usize) -> Result<U8Image> {
    let bytes = std::fs::read(path).map_err(|e| VtonError::io(path, e))?;
    let img = ::image::load_from_memory(&bytes).map_err(|e| VtonError::Image {
        what: path.display().to_string(),
        message: e.to_string(),
    })?;
    let (w, h, data) = if channels == 1 {
        let g = img.to_luma8();
        (g.width(), g.height(), g.into_raw())
    } else {
        let c = img.to_rgb8();
        (c.width(), c.height(), c.into_raw())
    };
    Ok(U8Image {
        width: w as usize,
        height: h as usize,
        channels,
        data,
    })
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `precompute_coeffs` for the triangle (BILINEAR) filter, normalised to
/// 8-bit fixed point (`normalize_coeffs_8bpc`): per output pixel the first input index
/// and the integer weights.
fn pil_coeffs(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale;
    let ss = 1.0 / filterscale;
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let k: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = ((x as f64 - center + 0.5) * ss).abs();
                    if t < 1.0 {
                        1.0 - t
                    } else {
                        0.0
                    }
                })
                .collect();
            let ww: f64 = k.iter().sum();
            let kk = k
                .iter()
                .map(|&w| {
                    let w = if ww != 0.0 { w / ww } else { w };
                    let f = w * (1u64 << PRECISION_BITS) as f64;
                    if f < 0.0 {
                        (-0.5 + f) as i64
                    } else {
                        (0.5 + f) as i64
                    }
                })
                .collect();
            (xmin, kk)
        })
        .collect()
}

fn clip8(ss: i64) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One pass of Pillow's 8-bit resampling along x (`vertical = false`) or y.
fn pil_pass(img: &U8Image, size: usize, vertical: bool) -> U8Image {
    let c = img.channels;
    let (w, h) = if vertical {
        (img.width, size)
    } else {
        (size, img.height)
    };
    let coeffs = pil_coeffs(if vertical { img.height } else { img.width }, size);
    let mut out = vec![0u8; w * h * c];
    for y in 0..h {
        for x in 0..w {
            let (start, kk) = &coeffs[if vertical { y } else { x }];
            for ch in 0..c {
                let mut ss: i64 = 1 << (PRECISION_BITS - 1);
                for (i, &k) in kk.iter().enumerate() {
                    let (sx, sy) = if vertical {
                        (x, start + i)
                    } else {
                        (start + i, y)
                    };
                    ss += img.data[(sy * img.width + sx) * c + ch] as i64 * k;
                }
                out[(y * w + x) * c + ch] = clip8(ss);
            }
        }
    }
    U8Image {
        width: w,
        height: h,
        channels: c,
        data: out,
    }
}

/// `Image.resize((w, h), Image.BILINEAR)` of an 8-bit image: Pillow's separable
/// antialiased triangle filter, rounded to 8 bits after each pass; Pillow (checked on
/// 13.0) runs first the pass with the smaller intermediate image, horizontal on a tie.
pub(crate) fn pil_resize_bilinear(img: &U8Image, width: usize, height: usize) -> U8Image {
    match (img.width != width, img.height != height) {
        (false, false) => img.clone(),
        (true, false) => pil_pass(img, width, false),
        (false, true) => pil_pass(img, height, true),
        (true, true) => {
            if width * img.height <= img.width * height {
                pil_pass(&pil_pass(img, width, false), height, true)
            } else {
                pil_pass(&pil_pass(img, height, true), width, false)
            }
        }
    }
}

/// Pillow's source indices for a NEAREST resize (`ImagingScaleAffine`: the source
/// coordinate accumulated from `scale / 2` in steps of `scale`, truncated).
fn nearest_index(in_size: usize, out_size: usize) -> Vec<usize> {
    let a = in_size as f64 / out_size as f64;
    let mut o = a * 0.5;
    (0..out_size)
        .map(|_| {
            let i = (o.max(0.0) as usize).min(in_size - 1);
            o += a;
            i
        })
        .collect()
}

/// `Image.resize((w, h), Image.NEAREST)`.
pub(crate) fn pil_resize_nearest(img: &U8Image, width: usize, height: usize) -> U8Image {
    if img.width == width && img.height == height {
        return img.clone();
    }
    let (xs, ys) = (
        nearest_index(img.width, width),
        nearest_index(img.height, height),
    );
    let c = img.channels;
    let mut data = Vec::with_capacity(width * height * c);
    for &sy in &ys {
        for &sx in &xs {
            let i = (sy * img.width + sx) * c;
            data.extend_from_slice(&img.data[i..i + c]);
        }
    }
    U8Image {
        width,
        height,
        channels: c,
        data,
    }
}
