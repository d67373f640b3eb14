//! RGB images and grey masks on the host, and their conversion to NCHW tensors.
//!
//! Conventions: host images are row-major HWC `f32` in `[0, 1]`; masks are row-major
//! `f32` in `[0, 1]` (1 = inside). Tensors are NCHW; [`ValueRange`] states whether
//! pixel values map to `[-1, 1]` (VITON-HD, HR-VITON, diffusers) or `[0, 1]`.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VtonError};

/// How pixel values in `[0, 1]` map to tensor values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValueRange {
    /// `x * 2 - 1`: what VITON-HD, HR-VITON, CP-VTON and diffusers expect.
    #[default]
    MinusOneOne,
    /// Values as they are.
    ZeroOne,
}

impl ValueRange {
    fn encode(self, v: f32) -> f32 {
        match self {
            ValueRange::MinusOneOne => v * 2.0 - 1.0,
            ValueRange::ZeroOne => v,
        }
    }
    fn decode(self, v: f32) -> f32 {
        match self {
            ValueRange::MinusOneOne => (v + 1.0) * 0.5,
            ValueRange::ZeroOne => v,
        }
    }
}

/// An RGB image, HWC `f32` in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

/// A single-channel mask, `f32` in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

fn decode_any(path: &Path) -> Result<::image::DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| VtonError::io(path, e))?;
    ::image::load_from_memory(&bytes).map_err(|e| VtonError::Image {
        what: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Reads a PNG or JPEG file as RGB (alpha, if any, is dropped; grey is expanded).
pub fn read_image(path: impl AsRef<Path>) -> Result<RgbImage> {
    let path = path.as_ref();
    let img = decode_any(path)?.to_rgb8();
    let (w, h) = img.dimensions();
    RgbImage::from_rgb8(w as usize, h as usize, img.as_raw())
}

/// Reads a grey PNG/JPEG mask; colour images are converted to luma. Values are
/// scaled to `[0, 1]`, not thresholded.
pub fn read_mask(path: impl AsRef<Path>) -> Result<Mask> {
    let path = path.as_ref();
    let img = decode_any(path)?.to_luma8();
    let (w, h) = img.dimensions();
    Mask::from_u8(w as usize, h as usize, img.as_raw())
}

fn check_dims(what: &str, width: usize, height: usize, len: usize, channels: usize) -> Result<()> {
    if width == 0 || height == 0 {
        return Err(VtonError::invalid(
            what,
            format!("image size {width}x{height} is empty"),
        ));
    }
    if len != width * height * channels {
        return Err(VtonError::SizeMismatch {
            what: format!("{what} buffer length"),
            expected: format!(
                "{} ({}x{}x{})",
                width * height * channels,
                width,
                height,
                channels
            ),
            actual: len.to_string(),
        });
    }
    Ok(())
}

fn write_png(
    path: &Path,
    width: usize,
    height: usize,
    color: ::image::ExtendedColorType,
    bytes: &[u8],
) -> Result<()> {
    let mut encoded = Vec::new();
    ::image::ImageEncoder::write_image(
        ::image::codecs::png::PngEncoder::new(&mut encoded),
        bytes,
        width as u32,
        height as u32,
        color,
    )
    .map_err(|e| VtonError::Image {
        what: path.display().to_string(),
        message: e.to_string(),
    })?;
    crate::io::write_atomic(path, &encoded)
}

fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

impl RgbImage {
    /// A `width x height` image filled with one colour.
    pub fn filled(width: usize, height: usize, rgb: [f32; 3]) -> Self {
        let mut data = Vec::with_capacity(width * height * 3);
        for _ in 0..width * height {
            data.extend_from_slice(&rgb);
        }
        RgbImage {
            width,
            height,
            data,
        }
    }

    /// From interleaved 8-bit RGB bytes.
    pub fn from_rgb8(width: usize, height: usize, bytes: &[u8]) -> Result<Self> {
        check_dims("RGB image", width, height, bytes.len(), 3)?;
        Ok(RgbImage {
            width,
            height,
            data: bytes.iter().map(|&b| b as f32 / 255.0).collect(),
        })
    }

    /// From interleaved `f32` RGB in `[0, 1]` (values are checked to be finite).
    pub fn from_f32(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        check_dims("RGB image", width, height, data.len(), 3)?;
        if data.iter().any(|v| !v.is_finite()) {
            return Err(VtonError::invalid(
                "image",
                "contains NaN or infinite values",
            ));
        }
        Ok(RgbImage {
            width,
            height,
            data,
        })
    }

    /// Interleaved 8-bit RGB bytes.
    pub fn to_rgb8(&self) -> Vec<u8> {
        self.data.iter().map(|&v| to_u8(v)).collect()
    }

    /// Writes the image as PNG, creating parent folders.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        write_png(
            path.as_ref(),
            self.width,
            self.height,
            ::image::ExtendedColorType::Rgb8,
            &self.to_rgb8(),
        )
    }

    /// Writes a JPEG file (quality 1-100), atomically.
    pub fn save_jpeg(&self, path: impl AsRef<Path>, quality: u8) -> Result<()> {
        let path = path.as_ref();
        let mut encoded = Vec::new();
        ::image::ImageEncoder::write_image(
            ::image::codecs::jpeg::JpegEncoder::new_with_quality(
                &mut encoded,
                quality.clamp(1, 100),
            ),
            &self.to_rgb8(),
            self.width as u32,
            self.height as u32,
            ::image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| VtonError::Image {
            what: path.display().to_string(),
            message: e.to_string(),
        })?;
        crate::io::write_atomic(path, &encoded)
    }

    /// Pixel at `(x, y)`.
    pub fn get(&self, x: usize, y: usize) -> [f32; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// `1 x 3 x H x W` tensor in the given value range.
    pub fn to_tensor(&self, device: &Device, range: ValueRange) -> Tensor<4> {
        let (h, w) = (self.height, self.width);
        let mut chw = vec![0f32; 3 * h * w];
        for (p, px) in self.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                chw[c * h * w + p] = range.encode(px[c]);
            }
        }
        Tensor::from_data(TensorData::new(chw, [1, 3, h, w]), device)
    }

    /// From a `1 x 3 x H x W` (or `3 x H x W` after `squeeze`) tensor in the given range.
    pub fn from_tensor(t: Tensor<4>, range: ValueRange) -> Result<Self> {
        let dims = t.dims();
        if dims[0] != 1 || dims[1] != 3 {
            return Err(VtonError::Shape {
                what: "image tensor".into(),
                expected: "[1, 3, H, W]".into(),
                actual: dims.to_vec(),
            });
        }
        let (h, w) = (dims[2], dims[3]);
        let chw = tensor_to_vec(t)?;
        let mut data = vec![0f32; 3 * h * w];
        for p in 0..h * w {
            for c in 0..3 {
                data[p * 3 + c] = range.decode(chw[c * h * w + p]).clamp(0.0, 1.0);
            }
        }
        Ok(RgbImage {
            width: w,
            height: h,
            data,
        })
    }

    /// Bilinear resize (half-pixel centres, as `F.interpolate(align_corners=False)` without antialiasing).
    pub fn resize(&self, width: usize, height: usize) -> RgbImage {
        RgbImage {
            width,
            height,
            data: resize_bilinear(&self.data, self.width, self.height, 3, width, height),
        }
    }

    /// Resize with PIL's `BILINEAR` filter (antialiased when shrinking), as `Image.resize`.
    pub fn resize_pil_bilinear(&self, width: usize, height: usize) -> RgbImage {
        RgbImage {
            width,
            height,
            data: resize_pil(&self.data, self.width, self.height, 3, width, height),
        }
    }

    /// Resized to fit `width` x `height` with its aspect ratio kept, centred on a `fill`
    /// background (how CatVTON lays a garment photo out at the person's size).
    pub fn fit_padded(&self, width: usize, height: usize, fill: [f32; 3]) -> RgbImage {
        let s = (width as f64 / self.width as f64).min(height as f64 / self.height as f64);
        let w = ((self.width as f64 * s).round() as usize).clamp(1, width);
        let h = ((self.height as f64 * s).round() as usize).clamp(1, height);
        let small = self.resize(w, h);
        let mut out = RgbImage::filled(width, height, fill);
        let (ox, oy) = ((width - w) / 2, (height - h) / 2);
        for y in 0..h {
            let src = &small.data[y * w * 3..(y + 1) * w * 3];
            let d = ((oy + y) * width + ox) * 3;
            out.data[d..d + w * 3].copy_from_slice(src);
        }
        out
    }
}

impl Mask {
    /// An all-zero mask.
    pub fn zeros(width: usize, height: usize) -> Self {
        Mask {
            width,
            height,
            data: vec![0.0; width * height],
        }
    }

    /// From 8-bit grey bytes (0..255 scaled to [0, 1]).
    pub fn from_u8(width: usize, height: usize, bytes: &[u8]) -> Result<Self> {
        check_dims("mask", width, height, bytes.len(), 1)?;
        Ok(Mask {
            width,
            height,
            data: bytes.iter().map(|&b| b as f32 / 255.0).collect(),
        })
    }

    /// From `f32` values (clamped to [0, 1]; NaN rejected).
    pub fn from_f32(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        check_dims("mask", width, height, data.len(), 1)?;
        if data.iter().any(|v| !v.is_finite()) {
            return Err(VtonError::invalid(
                "mask",
                "contains NaN or infinite values",
            ));
        }
        Ok(Mask {
            width,
            height,
            data: data.into_iter().map(|v| v.clamp(0.0, 1.0)).collect(),
        })
    }

    /// 8-bit grey bytes.
    pub fn to_u8(&self) -> Vec<u8> {
        self.data.iter().map(|&v| to_u8(v)).collect()
    }

    /// Writes the mask as a grey PNG.
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        write_png(
            path.as_ref(),
            self.width,
            self.height,
            ::image::ExtendedColorType::L8,
            &self.to_u8(),
        )
    }

    /// Whether pixel `(x, y)` is inside (value >= 0.5).
    #[inline]
    pub fn on(&self, x: usize, y: usize) -> bool {
        self.data[y * self.width + x] >= 0.5
    }

    /// Number of pixels with value >= 0.5.
    pub fn count(&self) -> usize {
        self.data.iter().filter(|&&v| v >= 0.5).count()
    }

    /// The mask thresholded at 0.5 to {0, 1}.
    pub fn binarized(&self) -> Mask {
        Mask {
            width: self.width,
            height: self.height,
            data: self
                .data
                .iter()
                .map(|&v| if v >= 0.5 { 1.0 } else { 0.0 })
                .collect(),
        }
    }

    /// Element-wise minimum (intersection).
    pub fn and(&self, other: &Mask) -> Mask {
        self.zip(other, f32::min)
    }

    /// Element-wise maximum (union).
    pub fn or(&self, other: &Mask) -> Mask {
        self.zip(other, f32::max)
    }

    /// `self * (1 - other)`.
    pub fn minus(&self, other: &Mask) -> Mask {
        self.zip(other, |a, b| a * (1.0 - b))
    }

    fn zip(&self, other: &Mask, f: impl Fn(f32, f32) -> f32) -> Mask {
        Mask {
            width: self.width,
            height: self.height,
            data: self
                .data
                .iter()
                .zip(&other.data)
                .map(|(&a, &b)| f(a, b))
                .collect(),
        }
    }

    /// Intersection over union of the binarised masks (1 when both are empty).
    pub fn iou(&self, other: &Mask) -> f32 {
        let (mut inter, mut uni) = (0usize, 0usize);
        for (&a, &b) in self.data.iter().zip(&other.data) {
            let (a, b) = (a >= 0.5, b >= 0.5);
            inter += (a && b) as usize;
            uni += (a || b) as usize;
        }
        if uni == 0 {
            1.0
        } else {
            inter as f32 / uni as f32
        }
    }

    /// `1 x 1 x H x W` tensor with values as they are (`[0, 1]`).
    pub fn to_tensor(&self, device: &Device) -> Tensor<4> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), [1, 1, self.height, self.width]),
            device,
        )
    }

    /// From a `1 x 1 x H x W` tensor (values clamped to [0, 1]).
    pub fn from_tensor(t: Tensor<4>) -> Result<Self> {
        let dims = t.dims();
        if dims[0] != 1 || dims[1] != 1 {
            return Err(VtonError::Shape {
                what: "mask tensor".into(),
                expected: "[1, 1, H, W]".into(),
                actual: dims.to_vec(),
            });
        }
        let data = tensor_to_vec(t)?;
        Mask::from_f32(dims[3], dims[2], data)
    }

    /// Bilinear resize (half-pixel centres).
    pub fn resize(&self, width: usize, height: usize) -> Mask {
        Mask {
            width,
            height,
            data: resize_bilinear(&self.data, self.width, self.height, 1, width, height),
        }
    }

    /// Resize with PIL's `BILINEAR` filter, which widens its triangle kernel when
    /// shrinking (an antialiased, area-aware downsample), as `Image.resize` does.
    pub fn resize_pil_bilinear(&self, width: usize, height: usize) -> Mask {
        Mask {
            width,
            height,
            data: resize_pil(&self.data, self.width, self.height, 1, width, height),
        }
    }

    /// Bounding box `(x0, y0, x1, y1)` (inclusive) of the pixels >= 0.5, or `None` when empty.
    pub fn bbox(&self) -> Option<(usize, usize, usize, usize)> {
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        for y in 0..self.height {
            for x in 0..self.width {
                if self.on(x, y) {
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x);
                    y1 = y1.max(y);
                }
            }
        }
        (x0 != usize::MAX).then_some((x0, y0, x1, y1))
    }
}

/// Reads a float tensor back to the host as `f32`.
pub fn tensor_to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| VtonError::Backend {
            operation: "tensor read-back".into(),
            message: format!("{e:?}"),
        })
}

/// PIL's resampling weights for a triangle filter: per output pixel, the first input
/// index and normalised weights (support scaled by the shrink factor).
fn pil_weights(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = src as f64 / dst as f64;
    let fscale = scale.max(1.0);
    let support = fscale; // triangle support 1, widened when shrinking
    (0..dst)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            let lo = ((center - support + 0.5).floor().max(0.0)) as usize;
            let hi = ((center + support + 0.5).floor() as usize).min(src);
            let w: Vec<f64> = (lo..hi)
                .map(|x| (1.0 - ((x as f64 - center + 0.5) / fscale).abs()).max(0.0))
                .collect();
            let sum: f64 = w.iter().sum::<f64>().max(1e-12);
            (lo, w.iter().map(|v| (v / sum) as f32).collect())
        })
        .collect()
}

/// Separable resampling with PIL's triangle weights, `c` interleaved channels.
fn resize_pil(src: &[f32], sw: usize, sh: usize, c: usize, dw: usize, dh: usize) -> Vec<f32> {
    let horiz = pil_weights(sw, dw);
    let vert = pil_weights(sh, dh);
    let mut tmp = vec![0f32; dw * sh * c];
    for y in 0..sh {
        for (x, (start, w)) in horiz.iter().enumerate() {
            for k in 0..c {
                tmp[(y * dw + x) * c + k] = w
                    .iter()
                    .enumerate()
                    .map(|(i, wt)| wt * src[(y * sw + start + i) * c + k])
                    .sum();
            }
        }
    }
    let mut out = vec![0f32; dw * dh * c];
    for (y, (start, w)) in vert.iter().enumerate() {
        for x in 0..dw {
            for k in 0..c {
                out[(y * dw + x) * c + k] = w
                    .iter()
                    .enumerate()
                    .map(|(i, wt)| wt * tmp[((start + i) * dw + x) * c + k])
                    .sum();
            }
        }
    }
    out
}

/// Bilinear resampling of an HWC buffer with half-pixel centres (no antialiasing).
pub(crate) fn resize_bilinear(
    src: &[f32],
    sw: usize,
    sh: usize,
    c: usize,
    dw: usize,
    dh: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; dw * dh * c];
    let sx = sw as f32 / dw as f32;
    let sy = sh as f32 / dh as f32;
    for y in 0..dh {
        let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (sh - 1) as f32);
        let y0 = fy.floor() as usize;
        let y1 = (y0 + 1).min(sh - 1);
        let wy = fy - y0 as f32;
        for x in 0..dw {
            let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (sw - 1) as f32);
            let x0 = fx.floor() as usize;
            let x1 = (x0 + 1).min(sw - 1);
            let wx = fx - x0 as f32;
            for k in 0..c {
                let p = |xx: usize, yy: usize| src[(yy * sw + xx) * c + k];
                let top = p(x0, y0) * (1.0 - wx) + p(x1, y0) * wx;
                let bot = p(x0, y1) * (1.0 - wx) + p(x1, y1) * wx;
                out[(y * dw + x) * c + k] = top * (1.0 - wy) + bot * wy;
            }
        }
    }
    out
}
