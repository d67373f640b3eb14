//! The host image the pixel metrics (PSNR, SSIM, MS-SSIM) read: planar `f64`, values as
//! given (0..255 for 8-bit images, 0..1 for float ones), so that the data range a caller
//! states means what it means in scikit-image and pytorch-msssim.

use std::path::Path;

use burn::tensor::Tensor;

use crate::error::{Result, VtonError};
use crate::io::RgbImage;

/// One image, channel-planar (`C x H x W`, row-major) `f64`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricImage {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// `channels * height * width` values, channel planes one after the other.
    pub data: Vec<f64>,
    /// Whether every value is an integer in 0..=255 that came from 8-bit pixels (PIL's
    /// `convert('L')` and the default data range of 255 are only defined for those).
    pub from_u8: bool,
}

impl MetricImage {
    /// From interleaved 8-bit pixels (`H x W x C`, as numpy / PIL hold them), values 0..255.
    pub fn from_u8_hwc(
        height: usize,
        width: usize,
        channels: usize,
        pixels: &[u8],
    ) -> Result<Self> {
        let mut img = Self::from_interleaved(height, width, channels, pixels, "8-bit image")?;
        img.from_u8 = true;
        Ok(img)
    }

    /// From interleaved float values (`H x W x C`), kept as they are.
    pub fn from_f32_hwc(
        height: usize,
        width: usize,
        channels: usize,
        values: &[f32],
    ) -> Result<Self> {
        Self::from_interleaved(height, width, channels, values, "float image")
    }

    fn from_interleaved<T: Copy + Into<f64>>(
        height: usize,
        width: usize,
        channels: usize,
        values: &[T],
        what: &str,
    ) -> Result<Self> {
        check_dims(height, width, channels)?;
        if values.len() != height * width * channels {
            return Err(VtonError::Shape {
                what: what.into(),
                expected: format!("{height} x {width} x {channels} values"),
                actual: vec![values.len()],
            });
        }
        let plane = height * width;
        let mut data = vec![0f64; plane * channels];
        for (i, px) in values.chunks_exact(channels).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                data[c * plane + i] = v.into();
            }
        }
        Ok(Self {
            channels,
            height,
            width,
            data,
            from_u8: false,
        })
    }

    /// From planar values (`C x H x W`).
    pub fn from_planar(
        channels: usize,
        height: usize,
        width: usize,
        data: Vec<f64>,
    ) -> Result<Self> {
        check_dims(height, width, channels)?;
        if data.len() != height * width * channels {
            return Err(VtonError::Shape {
                what: "planar image".into(),
                expected: format!("{channels} x {height} x {width} values"),
                actual: vec![data.len()],
            });
        }
        Ok(Self {
            channels,
            height,
            width,
            data,
            from_u8: false,
        })
    }

    /// An RGB image of vton's host type (values in 0..1).
    pub fn from_rgb(img: &RgbImage) -> Result<Self> {
        Self::from_f32_hwc(img.height, img.width, 3, &img.data)
    }

    /// Reads a PNG or JPEG file as 8-bit RGB (PIL's `convert('RGB')`), values 0..255.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(VtonError::FileNotFound {
                path: path.to_path_buf(),
            });
        }
        let bytes = std::fs::read(path).map_err(|e| VtonError::io(path, e))?;
        let img = ::image::load_from_memory(&bytes).map_err(|e| VtonError::Image {
            what: path.display().to_string(),
            message: e.to_string(),
        })?;
        let rgb = img.to_rgb8();
        Self::from_u8_hwc(rgb.height() as usize, rgb.width() as usize, 3, rgb.as_raw())
    }

    /// The images of an `N x C x H x W` tensor (values kept as they are).
    pub fn from_tensor(t: Tensor<4>) -> Result<Vec<Self>> {
        let [n, c, h, w] = t.dims();
        let values = crate::io::image::tensor_to_vec(t)?;
        let per = c * h * w;
        (0..n)
            .map(|i| {
                Self::from_planar(
                    c,
                    h,
                    w,
                    values[i * per..(i + 1) * per]
                        .iter()
                        .map(|&v| v as f64)
                        .collect(),
                )
            })
            .collect()
    }

    /// Interleaved 8-bit pixels (`H x W x C`), rounded and clamped to 0..255.
    pub fn to_u8_hwc(&self) -> Vec<u8> {
        let plane = self.height * self.width;
        let mut out = vec![0u8; plane * self.channels];
        for c in 0..self.channels {
            for i in 0..plane {
                out[i * self.channels + c] =
                    self.data[c * plane + i].round().clamp(0.0, 255.0) as u8;
            }
        }
        out
    }

    /// Channel `c` as a row-major plane.
    pub fn plane(&self, c: usize) -> &[f64] {
        let plane = self.height * self.width;
        &self.data[c * plane..(c + 1) * plane]
    }

    /// Grey as PIL's `convert('L')` computes it from 8-bit RGB:
    /// `(19595 R + 38470 G + 7471 B + 32768) >> 16` (HR-VITON's SSIM input). Only defined
    /// for 8-bit images.
    pub fn to_gray_pil(&self) -> Result<Self> {
        if self.channels != 3 || !self.from_u8 {
            return Err(VtonError::invalid(
                "image",
                "PIL's grey conversion needs an 8-bit RGB image (values 0..255)",
            ));
        }
        let plane = self.height * self.width;
        let data = (0..plane)
            .map(|i| {
                let r = self.data[i] as u32;
                let g = self.data[plane + i] as u32;
                let b = self.data[2 * plane + i] as u32;
                ((19595 * r + 38470 * g + 7471 * b + 32768) >> 16) as f64
            })
            .collect();
        Ok(Self {
            channels: 1,
            height: self.height,
            width: self.width,
            data,
            from_u8: true,
        })
    }

    /// The same image with every value multiplied by `s` (e.g. `1/255` for `ToTensor`).
    pub fn scaled(&self, s: f64) -> Self {
        Self {
            data: self.data.iter().map(|v| v * s).collect(),
            from_u8: self.from_u8 && s == 1.0,
            ..self.clone()
        }
    }

    /// An `N x C x H x W` float32 tensor of images of equal size, each value multiplied by
    /// `scale` and then shifted by `offset` (`1/255, 0` for `ToTensor`; `2/255, -1` for
    /// LPIPS' `[-1, 1]`).
    pub fn batch_tensor(
        images: &[&MetricImage],
        scale: f64,
        offset: f64,
        device: &burn::tensor::Device,
    ) -> Result<Tensor<4>> {
        let first = images
            .first()
            .ok_or_else(|| VtonError::invalid("images", "the batch is empty"))?;
        let (c, h, w) = (first.channels, first.height, first.width);
        let mut values = Vec::with_capacity(images.len() * c * h * w);
        for img in images {
            if (img.channels, img.height, img.width) != (c, h, w) {
                return Err(VtonError::SizeMismatch {
                    what: "images of one batch".into(),
                    expected: format!("{c} x {h} x {w}"),
                    actual: format!("{} x {} x {}", img.channels, img.height, img.width),
                });
            }
            values.extend(img.data.iter().map(|&v| (v * scale + offset) as f32));
        }
        Ok(Tensor::from_data(
            burn::tensor::TensorData::new(values, [images.len(), c, h, w]),
            device,
        ))
    }
}

/// PIL's resampling filters (`Image.resize(..., resample=...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PilFilter {
    Bilinear,
    Bicubic,
    Lanczos,
}

impl PilFilter {
    pub fn from_name(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "bilinear" => Ok(PilFilter::Bilinear),
            "bicubic" => Ok(PilFilter::Bicubic),
            "lanczos" => Ok(PilFilter::Lanczos),
            other => Err(VtonError::invalid(
                "filter",
                format!("'{other}' is not one of bilinear, bicubic, lanczos"),
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PilFilter::Bilinear => "bilinear",
            PilFilter::Bicubic => "bicubic",
            PilFilter::Lanczos => "lanczos",
        }
    }

    fn support(self) -> f64 {
        match self {
            PilFilter::Bilinear => 1.0,
            PilFilter::Bicubic => 2.0,
            PilFilter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        fn sinc(x: f64) -> f64 {
            if x == 0.0 {
                1.0
            } else {
                let t = x * std::f64::consts::PI;
                t.sin() / t
            }
        }
        match self {
            PilFilter::Bilinear => (1.0 - x.abs()).max(0.0),
            PilFilter::Bicubic => {
                let a = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
            PilFilter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }

    /// Per output pixel: the first input index and the fixed-point (22-bit) weights, as
    /// PIL's `precompute_coeffs` and `normalize_coeffs_8bpc` make them.
    fn coefficients(self, input: usize, output: usize) -> Vec<(usize, Vec<i64>)> {
        const PRECISION_BITS: u32 = 32 - 8 - 2;
        let scale = input as f64 / output as f64;
        let filterscale = scale.max(1.0);
        let support = self.support() * filterscale;
        (0..output)
            .map(|xx| {
                let center = (xx as f64 + 0.5) * scale;
                let ss = 1.0 / filterscale;
                // C's (int) truncates toward zero
                let xmin = ((center - support + 0.5) as i64).max(0) as usize;
                let xmax = ((center + support + 0.5) as i64).min(input as i64) as usize;
                let w: Vec<f64> = (xmin..xmax)
                    .map(|x| self.weight((x as f64 - center + 0.5) * ss))
                    .collect();
                let total: f64 = w.iter().sum();
                let k = w
                    .iter()
                    .map(|&v| {
                        let v = if total != 0.0 { v / total } else { 0.0 };
                        let f = v * (1u64 << PRECISION_BITS) as f64;
                        (if f < 0.0 { f - 0.5 } else { f + 0.5 }) as i64
                    })
                    .collect();
                (xmin, k)
            })
            .collect()
    }
}

impl MetricImage {
    /// Resized as PIL resizes an 8-bit image (`Image.resize((width, height), filter)`):
    /// antialiased when shrinking, the horizontal pass first, each pass in 22-bit fixed
    /// point rounded to 8 bits. The papers' evaluation scripts resize this way (HR-VITON:
    /// BILINEAR; CatVTON: LANCZOS). Only defined for 8-bit images.
    pub fn resize_pil(&self, width: usize, height: usize, filter: PilFilter) -> Result<Self> {
        if !self.from_u8 {
            return Err(VtonError::invalid(
                "image",
                "PIL's 8-bit resampling needs an 8-bit image (values 0..255)",
            ));
        }
        check_dims(height, width, self.channels)?;
        let mut cur = self.clone();
        if width != cur.width {
            let coeffs = filter.coefficients(cur.width, width);
            let mut data = vec![0f64; cur.channels * cur.height * width];
            for c in 0..cur.channels {
                let src = cur.plane(c);
                for y in 0..cur.height {
                    let row = &src[y * cur.width..(y + 1) * cur.width];
                    for (x, (start, k)) in coeffs.iter().enumerate() {
                        data[(c * cur.height + y) * width + x] = fixed_point(row, *start, 1, k);
                    }
                }
            }
            cur = Self { width, data, ..cur };
        }
        if height != cur.height {
            let coeffs = filter.coefficients(cur.height, height);
            let w = cur.width;
            let mut data = vec![0f64; cur.channels * height * w];
            for c in 0..cur.channels {
                let src = cur.plane(c);
                for (y, (start, k)) in coeffs.iter().enumerate() {
                    for x in 0..w {
                        data[(c * height + y) * w + x] = fixed_point(&src[x..], *start * w, w, k);
                    }
                }
            }
            cur = Self {
                height,
                data,
                ..cur
            };
        }
        Ok(cur)
    }
}

/// `clip8((1 << 21) + sum(v * k)) >> 22` over `k.len()` values of `src` from `start`,
/// `stride` apart.
fn fixed_point(src: &[f64], start: usize, stride: usize, k: &[i64]) -> f64 {
    let mut ss: i64 = 1 << 21;
    for (i, &kk) in k.iter().enumerate() {
        ss += src[start + i * stride] as i64 * kk;
    }
    (ss >> 22).clamp(0, 255) as f64
}

fn check_dims(height: usize, width: usize, channels: usize) -> Result<()> {
    if height == 0 || width == 0 || channels == 0 {
        return Err(VtonError::Shape {
            what: "image".into(),
            expected: "non-empty H x W x C".into(),
            actual: vec![height, width, channels],
        });
    }
    Ok(())
}
