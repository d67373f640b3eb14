//! MediaPipe's legacy Selfie Segmentation graph (`SelfieSegmentationCpu`).
//!
//! The whole image is stretched (no letterbox) to the model input, the model's output
//! is already a probability, and it is resized back to the image with
//! `cv::resize(INTER_LINEAR)` (half-pixel centres).

use burn::tensor::Device;

use super::preprocess::{image_to_tensor, resize_linear_f32, BorderMode, ImageU8, Roi};
use crate::error::{Result, VtonError};
use crate::io::{Mask, RgbImage};
use crate::tflite::TfliteModel;

/// ImageToTensorCalculator `output_tensor_width` x `output_tensor_height` of
/// model_selection 0 (`selfie_segmentation.tflite`).
pub const GENERAL_INPUT_SIZE: (usize, usize) = (256, 256);
/// ImageToTensorCalculator `output_tensor_width` x `output_tensor_height` of
/// model_selection 1 (`selfie_segmentation_landscape.tflite`).
pub const LANDSCAPE_INPUT_SIZE: (usize, usize) = (256, 144);
/// ImageToTensorCalculator `output_tensor_float_range` (both models).
pub const SELFIE_RANGE: (f32, f32) = (0.0, 1.0);

/// TensorsToSegmentationCalculator (activation NONE) then `cv::resize` to the image:
/// `probabilities` is the model output (`height x width`, row-major).
pub fn selfie_mask_to_image(
    probabilities: &[f32],
    width: usize,
    height: usize,
    image_w: usize,
    image_h: usize,
) -> Result<Mask> {
    if probabilities.len() != width * height || width == 0 || height == 0 {
        return Err(VtonError::Shape {
            what: "selfie segmentation output".into(),
            expected: format!("{width}x{height} values"),
            actual: vec![probabilities.len()],
        });
    }
    let data = resize_linear_f32(probabilities, width, height, image_w, image_h);
    let data = data
        .into_iter()
        .map(|v| if v.is_finite() { v } else { 0.0 })
        .collect();
    Mask::from_f32(image_w, image_h, data)
}

/// MediaPipe's selfie (person/background) segmenter.
#[derive(Debug)]
pub struct SelfieSegmenter {
    model: TfliteModel,
    input: (usize, usize),
}

impl SelfieSegmenter {
    /// The bundled model: `landscape = false` is model_selection 0 (256x256, general),
    /// `true` model_selection 1 (256x144, landscape).
    pub fn bundled(device: &Device, landscape: bool) -> Result<Self> {
        if landscape {
            Self::from_bytes(super::bundled::SELFIE_SEGMENTATION_LANDSCAPE, device)
        } else {
            Self::from_bytes(super::bundled::SELFIE_SEGMENTATION, device)
        }
    }

    /// A user-given selfie segmentation `.tflite` (input size read from the model).
    pub fn from_file(path: impl AsRef<std::path::Path>, device: &Device) -> Result<Self> {
        let p = path.as_ref();
        let bytes = std::fs::read(p).map_err(|e| VtonError::io(p, e))?;
        Self::from_bytes(&bytes, device)
    }

    /// A selfie segmentation model from bytes; its input must be `[1, H, W, 3]`.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        let model = TfliteModel::from_bytes(bytes, device)?;
        let shapes = model.input_shapes();
        let input = match shapes.first().map(|s| s.as_slice()) {
            Some([1, h, w, 3]) if *h > 0 && *w > 0 => (*w, *h),
            other => {
                return Err(VtonError::Shape {
                    what: "selfie segmentation model input".into(),
                    expected: "[1, H, W, 3]".into(),
                    actual: other.map(|s| s.to_vec()).unwrap_or_default(),
                })
            }
        };
        Ok(SelfieSegmenter { model, input })
    }

    /// The model input size `(width, height)`.
    pub fn input_size(&self) -> (usize, usize) {
        self.input
    }

    /// The image-sized person probability mask.
    pub fn segment(&self, image: &RgbImage) -> Result<Mask> {
        let img = ImageU8::from_rgb(image)?;
        let (w, h) = self.input;
        // ImageToTensorCalculator: keep_aspect_ratio false, border_mode BORDER_ZERO.
        let t = image_to_tensor(&img, &Roi::whole(), w, h, false, BorderMode::Zero)?;
        let outs = self.model.run(&[t.to_tensor(SELFIE_RANGE)])?;
        let out = outs
            .iter()
            .find(|o| o.data.len() == w * h)
            .ok_or_else(|| VtonError::Shape {
                what: "selfie segmentation output".into(),
                expected: format!("{w}x{h} values"),
                actual: outs.iter().map(|o| o.data.len()).collect(),
            })?;
        selfie_mask_to_image(&out.data, w, h, img.width, img.height)
    }
}
