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

mod flatbuf;
mod graph;
mod ops;
mod schema;

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, VtonError};
use ops::{Kernel, Operand};

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
#[derive(Debug, Clone)]
pub struct TfliteModel {
    device: Device,
    steps: Vec<graph::Step>,
    /// Logical (TFLite) shape of every tensor.
    shapes: Vec<Vec<usize>>,
    names: Vec<String>,
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    /// Constant graph outputs (rare), by tensor index.
    consts: Vec<(usize, Tensor<4>)>,
}

impl TfliteModel {
    /// Parses and validates a `.tflite` flatbuffer and uploads its constants to `device`.
    pub fn from_bytes(bytes: &[u8], device: &Device) -> Result<Self> {
        graph::build(bytes, device)
    }

    /// Reads a `.tflite` file.
    pub fn from_file(path: impl AsRef<std::path::Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| VtonError::io(path, e))?;
        Self::from_bytes(&bytes, device).map_err(|e| match e {
            VtonError::TfliteFormat { message } => VtonError::TfliteFormat {
                message: format!("{}: {message}", path.display()),
            },
            other => other,
        })
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The names of the graph inputs, in order.
    pub fn input_names(&self) -> Vec<String> {
        self.inputs.iter().map(|&i| self.names[i].clone()).collect()
    }
    /// The names of the graph outputs, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs
            .iter()
            .map(|&i| self.names[i].clone())
            .collect()
    }
    /// The declared shape of each input.
    pub fn input_shapes(&self) -> Vec<Vec<usize>> {
        self.inputs
            .iter()
            .map(|&i| self.shapes[i].clone())
            .collect()
    }
    /// The declared shape of each output.
    pub fn output_shapes(&self) -> Vec<Vec<usize>> {
        self.outputs
            .iter()
            .map(|&i| self.shapes[i].clone())
            .collect()
    }
    /// Number of operators executed per run (after constant folding).
    pub fn num_operators(&self) -> usize {
        self.steps.len()
    }

    /// Runs the graph on host tensors (one per input, shapes as declared).
    pub fn run(&self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>> {
        self.check_count(inputs.len())?;
        let mut tensors = Vec::with_capacity(inputs.len());
        for (k, (t, &id)) in inputs.iter().zip(&self.inputs).enumerate() {
            self.check_shape(k, &t.shape)?;
            let logical = Tensor::<4>::from_data(
                TensorData::new(t.data.clone(), ops::physical_order(&t.shape)),
                &self.device,
            );
            tensors.push(ops::from_logical(logical, self.shapes[id].len()));
        }
        let outs = self.execute(tensors)?;
        outs.into_iter()
            .zip(&self.outputs)
            .map(|(t, &id)| {
                let shape = self.shapes[id].clone();
                let data = crate::io::image::tensor_to_vec(ops::to_logical(t, shape.len()))?;
                HostTensor::new(shape, data)
            })
            .collect()
    }

    /// Runs the graph on device tensors of rank 4 in TFLite element order (NHWC for
    /// images; lower-rank inputs padded on the left with ones), returning every output
    /// in the same convention.
    pub fn run_tensors(&self, inputs: Vec<Tensor<4>>) -> Result<Vec<Tensor<4>>> {
        self.check_count(inputs.len())?;
        let mut tensors = Vec::with_capacity(inputs.len());
        for (k, (t, &id)) in inputs.into_iter().zip(&self.inputs).enumerate() {
            let shape = &self.shapes[id];
            if t.dims() != ops::physical_order(shape) {
                return Err(VtonError::Shape {
                    what: format!("TFLite input {k} '{}'", self.names[id]),
                    expected: format!("{:?}", ops::physical_order(shape)),
                    actual: t.dims().to_vec(),
                });
            }
            tensors.push(ops::from_logical(t, shape.len()));
        }
        let outs = self.execute(tensors)?;
        Ok(outs
            .into_iter()
            .zip(&self.outputs)
            .map(|(t, &id)| ops::to_logical(t, self.shapes[id].len()))
            .collect())
    }

    fn check_count(&self, n: usize) -> Result<()> {
        if n != self.inputs.len() {
            return Err(VtonError::invalid(
                "inputs",
                format!("the model takes {} input(s), got {n}", self.inputs.len()),
            ));
        }
        Ok(())
    }

    fn check_shape(&self, k: usize, shape: &[usize]) -> Result<()> {
        let id = self.inputs[k];
        if shape != self.shapes[id].as_slice() {
            return Err(VtonError::Shape {
                what: format!("TFLite input {k} '{}'", self.names[id]),
                expected: format!("{:?}", self.shapes[id]),
                actual: shape.to_vec(),
            });
        }
        Ok(())
    }

    /// Executes the steps; `inputs` are in the stored layout.
    fn execute(&self, inputs: Vec<Tensor<4>>) -> Result<Vec<Tensor<4>>> {
        let mut values: Vec<Option<Tensor<4>>> = vec![None; self.shapes.len()];
        for (t, &id) in inputs.into_iter().zip(&self.inputs) {
            values[id] = Some(t);
        }
        for (id, t) in &self.consts {
            values[*id] = Some(t.clone());
        }
        for step in &self.steps {
            let out = self.eval(&step.kernel, &values)?;
            values[step.output] = Some(out);
        }
        self.outputs
            .iter()
            .map(|&id| {
                values[id].clone().ok_or_else(|| VtonError::TfliteFormat {
                    message: format!("graph output '{}' is never computed", self.names[id]),
                })
            })
            .collect()
    }

    fn value(&self, values: &[Option<Tensor<4>>], id: usize) -> Result<Tensor<4>> {
        values
            .get(id)
            .and_then(|v| v.clone())
            .ok_or_else(|| VtonError::TfliteFormat {
                message: format!(
                    "tensor {id} '{}' is used before it is computed",
                    self.names.get(id).map(String::as_str).unwrap_or("?")
                ),
            })
    }

    fn operand(&self, values: &[Option<Tensor<4>>], o: &Operand, lift: bool) -> Result<Tensor<4>> {
        match o {
            Operand::Const(t) => Ok(t.clone()),
            Operand::Value { id, rank } => {
                let t = self.value(values, *id)?;
                Ok(if lift {
                    ops::lift_to_rank4(t, *rank)
                } else {
                    t
                })
            }
        }
    }

    fn eval(&self, k: &Kernel, values: &[Option<Tensor<4>>]) -> Result<Tensor<4>> {
        Ok(match k {
            Kernel::Conv {
                x,
                weight,
                bias,
                options,
                act,
            } => act.apply(ops::conv(self.value(values, *x)?, weight, bias, options)),
            Kernel::TransposeConv {
                x,
                weight,
                bias,
                stride,
                crop,
                out_hw,
            } => ops::transpose_conv(
                self.value(values, *x)?,
                weight,
                bias,
                *stride,
                *crop,
                *out_hw,
            ),
            Kernel::Binary {
                a,
                b,
                op,
                act,
                out_rank4,
            } => {
                let a = self.operand(values, a, *out_rank4)?;
                let b = self.operand(values, b, *out_rank4)?;
                act.apply(ops::binary(a, b, *op))
            }
            Kernel::Pad { x, pads, value } => ops::pad(self.value(values, *x)?, *pads, *value),
            Kernel::Pool {
                x,
                max,
                kernel,
                stride,
                padding,
                act,
            } => act.apply(ops::pool(
                self.value(values, *x)?,
                *max,
                *kernel,
                *stride,
                *padding,
            )),
            Kernel::Reshape {
                x,
                in_rank,
                out_shape,
            } => {
                let t = ops::to_logical(self.value(values, *x)?, *in_rank);
                ops::from_logical(t.reshape(ops::physical_order(out_shape)), out_shape.len())
            }
            Kernel::Concat { xs, axis, act } => {
                let parts = xs
                    .iter()
                    .map(|o| self.operand(values, o, false))
                    .collect::<Result<Vec<_>>>()?;
                act.apply(Tensor::cat(parts, *axis))
            }
            Kernel::Resize { x, ry_t, rx_t } => ops::resize(self.value(values, *x)?, ry_t, rx_t),
            Kernel::DepthToSpace { x, block } => {
                ops::depth_to_space(self.value(values, *x)?, *block)
            }
            Kernel::Unary { x, op } => op.apply(self.value(values, *x)?),
            Kernel::Mean {
                x,
                in_rank,
                axes,
                out_shape,
            } => ops::mean(self.value(values, *x)?, *in_rank, axes, out_shape),
        })
    }
}
