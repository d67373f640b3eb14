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
        check_dims(height, width, channels)?;
        if pixels.len() != height * width * channels {
            return Err(VtonError::Shape {
                what: "8-bit image".into(),
                expected: format!(
                    "{height} x {width} x {channels} = {} bytes",
                    height * width * channels
                ),
                actual: vec![pixels.len()],
            });
        }
        let plane = height * width;
        let mut data = vec![0f64; plane * channels];
        for (i, px) in pixels.chunks_exact(channels).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                data[c * plane + i] = v as f64;
            }
        }
        Ok(Self {
            channels,
            height,
            width,
            data,
            from_u8: true,
        })
    }

    /// From interleaved float values (`H x W x C`), kept as they are.
    pub fn from_f32_hwc(
        height: usize,
        width: usize,
        channels: usize,
        values: &[f32],
    ) -> Result<Self> {
        check_dims(height, width, channels)?;
        if values.len() != height * width * channels {
            return Err(VtonError::Shape {
                what: "float image".into(),
                expected: format!("{height} x {width} x {channels} values"),
                actual: vec![values.len()],
            });
        }
        let plane = height * width;
        let mut data = vec![0f64; plane * channels];
        for (i, px) in values.chunks_exact(channels).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                data[c * plane + i] = v as f64;
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
