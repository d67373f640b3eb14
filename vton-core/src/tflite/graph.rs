//! From the decoded schema to a list of burn kernels: constants decoded (fp16, affine
//! int8/uint8, sparse CSR) and folded through DEQUANTIZE / DENSIFY, every operator's
//! output shape inferred and checked against the shape the file declares, weights moved
//! to burn's layouts and uploaded once.

use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

use super::ops::{self, Act, BinOp, Kernel, Operand, UnaryOp};
use super::schema::{self, bad, element_count, DType, DimMeta, ModelInfo, OpRaw, TensorInfo};
use super::TfliteModel;
use crate::error::{Result, VtonError};

/// One executed operator.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub kernel: Kernel,
    pub output: usize,
}

/// A constant on the host.
#[derive(Debug, Clone)]
enum HostConst {
    Float(Vec<f32>),
    Int(Vec<i64>),
}

fn op_name(code: i32) -> String {
    let name = match code {
        0 => "ADD",
        1 => "AVERAGE_POOL_2D",
        2 => "CONCATENATION",
        3 => "CONV_2D",
        4 => "DEPTHWISE_CONV_2D",
        5 => "DEPTH_TO_SPACE",
        6 => "DEQUANTIZE",
        9 => "FULLY_CONNECTED",
        14 => "LOGISTIC",
        17 => "MAX_POOL_2D",
        18 => "MUL",
        19 => "RELU",
        20 => "RELU_N1_TO_1",
        21 => "RELU6",
        22 => "RESHAPE",
        23 => "RESIZE_BILINEAR",
        25 => "SOFTMAX",
        28 => "TANH",
        32 => "CUSTOM",
        34 => "PAD",
        40 => "MEAN",
        41 => "SUB",
        42 => "DIV",
        117 => "HARD_SWISH",
        124 => "DENSIFY",
        _ => return format!("builtin operator {code}"),
    };
    name.to_string()
}

fn act_of(code: i8) -> Result<Act> {
    Ok(match code {
        0 => Act::None,
        1 => Act::Relu,
        2 => Act::ReluN1To1,
        3 => Act::Relu6,
        4 => Act::Tanh,
        other => {
            return Err(VtonError::Unsupported {
                what: format!("fused activation {other}"),
            })
        }
    })
}

/// Reads a tensor's buffer as host values (dense, in the declared shape).
fn decode_const(info: &TensorInfo, bytes: &[u8], what: &str) -> Result<HostConst> {
    let size = info.dtype.size().ok_or_else(|| VtonError::Unsupported {
        what: format!("{what}: tensor type {:?}", info.dtype),
    })?;
    if bytes.len() % size != 0 {
        return Err(bad(format!(
            "{what}: {} data bytes are not a multiple of the element size {size}",
            bytes.len()
        )));
    }
    let dense_count = element_count(&info.shape, what)?;
    let raw_count = bytes.len() / size;
    if info.sparsity.is_none() && raw_count != dense_count {
        return Err(bad(format!(
            "{what}: shape {:?} needs {dense_count} elements, the buffer holds {raw_count}",
            info.shape
        )));
    }
    let chunks = bytes.chunks_exact(size);
    let values = match info.dtype {
        DType::F32 => HostConst::Float(
            chunks
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        DType::F16 => HostConst::Float(
            chunks
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        ),
        DType::I32 => HostConst::Int(
            chunks
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
        ),
        DType::I64 => HostConst::Int(
            chunks
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
        ),
        DType::I16 => HostConst::Int(
            chunks
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as i64)
                .collect(),
        ),
        DType::I8 => HostConst::Int(chunks.map(|c| c[0] as i8 as i64).collect()),
        DType::U8 | DType::Bool => HostConst::Int(chunks.map(|c| c[0] as i64).collect()),
        DType::Other(code) => {
            return Err(VtonError::Unsupported {
                what: format!("{what}: tensor type code {code}"),
            })
        }
    };
    match &info.sparsity {
        None => Ok(values),
        Some(_) => densify(info, values, dense_count, what),
    }
}

/// Expands a sparse constant (TFLite's format converter: DENSE dimensions index
/// `prev * size + i`, SPARSE_CSR dimensions walk `segments[prev]..segments[prev + 1]`).
fn densify(
    info: &TensorInfo,
    values: HostConst,
    dense_count: usize,
    what: &str,
) -> Result<HostConst> {
    let Some(sp) = &info.sparsity else {
        return Ok(values);
    };
    let rank = info.shape.len();
    if !sp.block_map.is_empty() || sp.traversal.len() != rank {
        return Err(VtonError::Unsupported {
            what: format!("{what}: block-sparse tensors"),
        });
    }
    let mut seen = vec![false; rank];
    for &t in &sp.traversal {
        if t >= rank || seen[t] {
            return Err(bad(format!(
                "{what}: traversal order {:?} is not a permutation",
                sp.traversal
            )));
        }
        seen[t] = true;
    }
    let nvalues = match &values {
        HostConst::Float(v) => v.len(),
        HostConst::Int(v) => v.len(),
    };
    // Strides of the dense tensor.
    let mut strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * info.shape[i + 1];
    }
    // Iterative walk over (level, prev, offset) to avoid recursion on file data.
    let mut placements: Vec<(usize, usize)> = Vec::new(); // (value index, dense offset)
    let mut stack: Vec<(usize, usize, usize)> = vec![(0, 0, 0)];
    while let Some((level, prev, offset)) = stack.pop() {
        if level == rank {
            if prev >= nvalues {
                return Err(bad(format!(
                    "{what}: sparse value index {prev} of {nvalues}"
                )));
            }
            placements.push((prev, offset));
            if placements.len() > dense_count {
                return Err(bad(format!(
                    "{what}: more sparse values than dense elements"
                )));
            }
            continue;
        }
        let dim = sp.traversal[level];
        let extent = info.shape[dim];
        match &sp.dims[level] {
            DimMeta::Dense(size) => {
                if *size != extent {
                    return Err(bad(format!(
                        "{what}: dense dimension {level} of size {size}, the shape says {extent}"
                    )));
                }
                for i in (0..extent).rev() {
                    let next = prev
                        .checked_mul(extent)
                        .and_then(|p| p.checked_add(i))
                        .ok_or_else(|| bad(format!("{what}: sparse index overflow")))?;
                    stack.push((level + 1, next, offset + i * strides[dim]));
                }
            }
            DimMeta::Csr { segments, indices } => {
                let (Some(&a), Some(&b)) = (segments.get(prev), segments.get(prev + 1)) else {
                    return Err(bad(format!(
                        "{what}: sparse segment {prev} out of {}",
                        segments.len()
                    )));
                };
                if a > b || b > indices.len() {
                    return Err(bad(format!("{what}: sparse segment {a}..{b} is invalid")));
                }
                for j in (a..b).rev() {
                    let col = indices[j];
                    if col >= extent {
                        return Err(bad(format!(
                            "{what}: sparse index {col} out of dimension size {extent}"
                        )));
                    }
                    stack.push((level + 1, j, offset + col * strides[dim]));
                }
            }
        }
        if stack.len() > dense_count.saturating_add(rank) * 2 + 16 {
            return Err(bad(format!(
                "{what}: sparse structure larger than the tensor"
            )));
        }
    }
    Ok(match values {
        HostConst::Float(v) => {
            let mut out = vec![0f32; dense_count];
            for (vi, off) in placements {
                out[off] = v[vi];
            }
            HostConst::Float(out)
        }
        HostConst::Int(v) => {
            let mut out = vec![0i64; dense_count];
            for (vi, off) in placements {
                out[off] = v[vi];
            }
            HostConst::Int(out)
        }
    })
}

fn dequantize(info: &TensorInfo, c: &HostConst, what: &str) -> Result<Vec<f32>> {
    match c {
        HostConst::Float(v) => Ok(v.clone()),
        HostConst::Int(v) => {
            let q = info.quant.as_ref().ok_or_else(|| VtonError::Unsupported {
                what: format!("{what}: DEQUANTIZE of an integer tensor without quantization"),
            })?;
            let channels = if q.scale.len() > 1 {
                *info.shape.get(q.dim).ok_or_else(|| {
                    bad(format!("{what}: quantized dimension {} out of rank", q.dim))
                })?
            } else {
                1
            };
            if q.scale.len() != channels
                || (q.zero_point.len() != channels && !q.zero_point.is_empty())
            {
                return Err(bad(format!(
                    "{what}: {} scales / {} zero points for {channels} channel(s)",
                    q.scale.len(),
                    q.zero_point.len()
                )));
            }
            let inner: usize = info.shape.iter().skip(q.dim + 1).product();
            Ok(v.iter()
                .enumerate()
                .map(|(i, &x)| {
                    let ch = if channels > 1 {
                        (i / inner.max(1)) % channels
                    } else {
                        0
                    };
                    let zp = q.zero_point.get(ch).copied().unwrap_or(0);
                    q.scale[ch] * (x - zp) as f32
                })
                .collect())
        }
    }
}

/// `Padding::SAME` / `VALID` output size and (before, after) padding of one axis.
fn conv_axis(
    input: usize,
    k: usize,
    stride: usize,
    dilation: usize,
    same: bool,
    what: &str,
) -> Result<(usize, (usize, usize))> {
    if stride == 0 || dilation == 0 || k == 0 {
        return Err(bad(format!("{what}: zero stride, dilation or kernel size")));
    }
    let eff = (k - 1)
        .checked_mul(dilation)
        .and_then(|v| v.checked_add(1))
        .ok_or_else(|| bad(format!("{what}: kernel too large")))?;
    if same {
        let out = input.div_ceil(stride);
        let total = ((out.max(1) - 1) * stride + eff).saturating_sub(input);
        Ok((out, (total / 2, total - total / 2)))
    } else {
        if input < eff {
            return Err(bad(format!(
                "{what}: input {input} smaller than the kernel extent {eff} (VALID)"
            )));
        }
        Ok(((input - eff) / stride + 1, (0, 0)))
    }
}

fn positive(v: i32, what: &str) -> Result<usize> {
    if v <= 0 || v > 1 << 16 {
        return Err(bad(format!("{what} = {v} is out of range")));
    }
    Ok(v as usize)
}

fn broadcast(a: &[usize], b: &[usize], what: &str) -> Result<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return Err(bad(format!(
                "{what}: shapes {a:?} and {b:?} do not broadcast"
            )));
        };
    }
    Ok(out)
}

struct Builder<'a> {
    model: &'a ModelInfo,
    bytes: &'a [u8],
    device: &'a Device,
    consts: Vec<Option<HostConst>>,
    /// Whether a runtime value exists for each tensor at this point of the graph.
    defined: Vec<bool>,
    /// Constants that runtime kernels read as values.
    value_consts: Vec<(usize, Tensor<4>)>,
    steps: Vec<Step>,
}

impl<'a> Builder<'a> {
    fn info(&self, id: usize) -> &'a TensorInfo {
        &self.model.tensors[id]
    }

    fn shape(&self, id: usize) -> &'a [usize] {
        &self.model.tensors[id].shape
    }

    fn what(&self, id: usize) -> String {
        format!("tensor {id} '{}'", self.info(id).name)
    }

    fn float_const(&self, id: usize, op: &str) -> Result<Vec<f32>> {
        match &self.consts[id] {
            Some(HostConst::Float(v)) => Ok(v.clone()),
            Some(HostConst::Int(_)) => Err(VtonError::Unsupported {
                what: format!("{op}: integer (quantized) weights in {}", self.what(id)),
            }),
            None => Err(VtonError::Unsupported {
                what: format!("{op}: weights in {} are not constant", self.what(id)),
            }),
        }
    }

    fn int_const(&self, id: usize, op: &str) -> Result<Vec<i64>> {
        match &self.consts[id] {
            Some(HostConst::Int(v)) => Ok(v.clone()),
            _ => Err(VtonError::Unsupported {
                what: format!("{op}: {} must be a constant integer tensor", self.what(id)),
            }),
        }
    }

    fn upload<const D: usize>(&self, data: Vec<f32>, dims: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(data, dims), self.device)
    }

    /// The stored-layout device tensor of a constant.
    fn const_tensor(&self, id: usize, op: &str) -> Result<Tensor<4>> {
        let data = self.float_const(id, op)?;
        let shape = self.shape(id);
        if shape.len() > 4 {
            return Err(VtonError::Unsupported {
                what: format!("{op}: rank-{} constant {}", shape.len(), self.what(id)),
            });
        }
        if shape.contains(&0) {
            return Err(bad(format!("{op}: empty constant {}", self.what(id))));
        }
        let logical = self.upload(data, ops::physical_order(shape));
        Ok(ops::from_logical(logical, shape.len()))
    }

    /// A runtime value id, registering a constant as a value when needed.
    fn value(&mut self, id: usize, op: &str) -> Result<usize> {
        if self.defined[id] {
            return Ok(id);
        }
        if self.consts[id].is_some() {
            let t = self.const_tensor(id, op)?;
            self.value_consts.push((id, t));
            self.defined[id] = true;
            return Ok(id);
        }
        Err(bad(format!(
            "{op}: {} is used before any operator computes it",
            self.what(id)
        )))
    }

    fn operand(&mut self, id: usize, lift: bool, op: &str) -> Result<Operand> {
        let rank = self.shape(id).len();
        if self.consts[id].is_some() && !self.defined[id] {
            let t = self.const_tensor(id, op)?;
            return Ok(Operand::Const(if lift {
                ops::lift_to_rank4(t, rank)
            } else {
                t
            }));
        }
        let id = self.value(id, op)?;
        Ok(Operand::Value { id, rank })
    }

    fn input(&self, op: &schema::OpInfo, k: usize, name: &str) -> Result<usize> {
        op.inputs.get(k).copied().flatten().ok_or_else(|| {
            bad(format!(
                "{name}: input {k} is missing ({} given)",
                op.inputs.len()
            ))
        })
    }

    fn rank4(&self, id: usize, op: &str) -> Result<[usize; 4]> {
        let s = self.shape(id);
        if s.len() != 4 {
            return Err(bad(format!(
                "{op}: {} has shape {s:?}, expected rank 4 (NHWC)",
                self.what(id)
            )));
        }
        Ok([s[0], s[1], s[2], s[3]])
    }

    fn build_op(&mut self, k: usize, op: &schema::OpInfo, raw: &OpRaw<'_>) -> Result<()> {
        let name = match &op.custom_code {
            Some(c) if op.code == 32 => format!("operator {k} (CUSTOM {c})"),
            _ => format!("operator {k} ({})", op_name(op.code)),
        };
        let name = name.as_str();
        if op.outputs.len() != 1 {
            return Err(VtonError::Unsupported {
                what: format!("{name}: {} outputs", op.outputs.len()),
            });
        }
        // The options table must be the one this operator reads (schema union index).
        let expected_options: Option<u8> = match op.code {
            3 => Some(1),
            4 => Some(2),
            1 | 17 => Some(5),
            2 => Some(10),
            0 => Some(11),
            23 => Some(15),
            22 => Some(17),
            18 => Some(21),
            34 => Some(22),
            40 => Some(27),
            41 => Some(28),
            42 => Some(29),
            5 => Some(94),
            _ => None,
        };
        if let (Some(want), Some(_)) = (expected_options, raw.options) {
            if op.options_type != want {
                return Err(bad(format!(
                    "{name}: options of union type {} where the operator reads type {want}",
                    op.options_type
                )));
            }
        }
        let out = op.outputs[0];
        let out_shape = self.shape(out).to_vec();
        let out_info = self.info(out);
        // Constant folding.
        match op.code {
            6 | 124 => {
                let x = self.input(op, 0, name)?;
                let Some(c) = self.consts[x].clone() else {
                    return Err(VtonError::Unsupported {
                        what: format!("{name} of a non-constant tensor"),
                    });
                };
                if self.shape(x) != out_shape.as_slice() {
                    return Err(bad(format!(
                        "{name}: input shape {:?} != output shape {out_shape:?}",
                        self.shape(x)
                    )));
                }
                let folded = if op.code == 6 {
                    HostConst::Float(dequantize(self.info(x), &c, name)?)
                } else {
                    c
                };
                self.consts[out] = Some(folded);
                return Ok(());
            }
            _ => {}
        }
        if out_info.dtype != DType::F32 {
            return Err(VtonError::Unsupported {
                what: format!(
                    "{name}: output type {:?} (vton runs float32 graphs)",
                    out_info.dtype
                ),
            });
        }
        if out_shape.len() > 4 {
            return Err(VtonError::Unsupported {
                what: format!("{name}: rank-{} output", out_shape.len()),
            });
        }
        let (kernel, inferred): (Kernel, Vec<usize>) = match op.code {
            3 | 4 => {
                let x = self.input(op, 0, name)?;
                let w = self.input(op, 1, name)?;
                let [n, h, wd, cin] = self.rank4(x, name)?;
                let [o, kh, kw, wi] = self.rank4(w, name)?;
                let depthwise = op.code == 4;
                let same = raw.i8(0, 0)? == 0;
                let sw = positive(raw.i32(1, 1)?, "stride_w")?;
                let sh = positive(raw.i32(2, 1)?, "stride_h")?;
                let (act, dw, dh) = if depthwise {
                    (raw.i8(4, 0)?, raw.i32(5, 1)?, raw.i32(6, 1)?)
                } else {
                    (raw.i8(3, 0)?, raw.i32(4, 1)?, raw.i32(5, 1)?)
                };
                let (dw, dh) = (positive(dw, "dilation_w")?, positive(dh, "dilation_h")?);
                let (cout, groups, weight) = if depthwise {
                    if o != 1 || cin == 0 || wi % cin != 0 {
                        return Err(bad(format!(
                            "{name}: depthwise weights {:?} for {cin} input channels",
                            [o, kh, kw, wi]
                        )));
                    }
                    let wdata = self.float_const(w, name)?;
                    // [1, kh, kw, C*m] -> burn [C*m, 1, kh, kw].
                    let t = self.upload(wdata, [1, kh, kw, wi]).permute([3, 0, 1, 2]);
                    (wi, cin, t)
                } else {
                    if wi == 0 || cin % wi != 0 {
                        return Err(bad(format!(
                            "{name}: weights {:?} for {cin} input channels",
                            [o, kh, kw, wi]
                        )));
                    }
                    let wdata = self.float_const(w, name)?;
                    let t = self.upload(wdata, [o, kh, kw, wi]).permute([0, 3, 1, 2]);
                    (o, cin / wi, t)
                };
                if groups > 1 && cout % groups != 0 {
                    return Err(bad(format!(
                        "{name}: {cout} output channels in {groups} groups"
                    )));
                }
                let bias = match op.inputs.get(2).copied().flatten() {
                    None => None,
                    Some(b) => {
                        if self.shape(b) != [cout] {
                            return Err(bad(format!(
                                "{name}: bias shape {:?}, expected [{cout}]",
                                self.shape(b)
                            )));
                        }
                        Some(self.upload(self.float_const(b, name)?, [cout]))
                    }
                };
                let (oh, ph) = conv_axis(h, kh, sh, dh, same, name)?;
                let (ow, pw) = conv_axis(wd, kw, sw, dw, same, name)?;
                let x = self.value(x, name)?;
                (
                    Kernel::Conv {
                        x,
                        weight: weight.clone(),
                        bias,
                        options: ConvOptions::new_with_padding(
                            [sh, sw],
                            [ph, pw],
                            [dh, dw],
                            groups,
                        ),
                        act: act_of(act)?,
                    },
                    vec![n, oh, ow, cout],
                )
            }
            32 => {
                let custom = op.custom_code.as_deref().unwrap_or("");
                if custom != "Convolution2DTransposeBias" {
                    return Err(VtonError::Unsupported {
                        what: format!("{name}: custom operator '{custom}'"),
                    });
                }
                let x = self.input(op, 0, name)?;
                let w = self.input(op, 1, name)?;
                let [n, h, wd, cin] = self.rank4(x, name)?;
                let [o, kh, kw, wi] = self.rank4(w, name)?;
                if wi != cin {
                    return Err(bad(format!(
                        "{name}: weights {:?} for {cin} input channels",
                        [o, kh, kw, wi]
                    )));
                }
                // custom_options: TfLiteTransposeConvParams {padding, stride_width, stride_height}.
                let p = &op.custom_options;
                if p.len() < 12 {
                    return Err(bad(format!(
                        "{name}: {} option bytes, expected 12",
                        p.len()
                    )));
                }
                let rd = |i: usize| {
                    i32::from_le_bytes([p[4 * i], p[4 * i + 1], p[4 * i + 2], p[4 * i + 3]])
                };
                let same = match rd(0) {
                    1 => true,
                    2 => false,
                    other => return Err(bad(format!("{name}: padding code {other}"))),
                };
                let sw = positive(rd(1), "stride_w")?;
                let sh = positive(rd(2), "stride_h")?;
                let full_h = (h - 1) * sh + kh;
                let full_w = (wd - 1) * sw + kw;
                let (oh, ow) = if same {
                    (h * sh, wd * sw)
                } else {
                    (full_h, full_w)
                };
                let crop = [full_h.saturating_sub(oh) / 2, full_w.saturating_sub(ow) / 2];
                if oh > full_h || ow > full_w {
                    // SAME with a kernel smaller than the stride: the output has gaps
                    // TFLite fills with bias only; not used by any known model.
                    return Err(VtonError::Unsupported {
                        what: format!("{name}: kernel {kh}x{kw} smaller than stride {sh}x{sw}"),
                    });
                }
                let wdata = self.float_const(w, name)?;
                // [O, kh, kw, I] -> burn [I, O, kh, kw].
                let weight = self.upload(wdata, [o, kh, kw, wi]).permute([3, 0, 1, 2]);
                let bias = match op.inputs.get(2).copied().flatten() {
                    None => None,
                    Some(b) => {
                        if self.shape(b) != [o] {
                            return Err(bad(format!(
                                "{name}: bias shape {:?}, expected [{o}]",
                                self.shape(b)
                            )));
                        }
                        Some(self.upload(self.float_const(b, name)?, [o]))
                    }
                };
                let x = self.value(x, name)?;
                (
                    Kernel::TransposeConv {
                        x,
                        weight,
                        bias,
                        stride: [sh, sw],
                        crop,
                        out_hw: [oh, ow],
                    },
                    vec![n, oh, ow, o],
                )
            }
            0 | 18 | 41 | 42 => {
                let a = self.input(op, 0, name)?;
                let b = self.input(op, 1, name)?;
                let shape = broadcast(self.shape(a), self.shape(b), name)?;
                let lift = shape.len() == 4;
                let bin = match op.code {
                    0 => BinOp::Add,
                    18 => BinOp::Mul,
                    41 => BinOp::Sub,
                    _ => BinOp::Div,
                };
                let act = act_of(raw.i8(0, 0)?)?;
                let (a, b) = (self.operand(a, lift, name)?, self.operand(b, lift, name)?);
                (
                    Kernel::Binary {
                        a,
                        b,
                        op: bin,
                        act,
                        out_rank4: lift,
                    },
                    shape,
                )
            }
            34 => {
                let x = self.input(op, 0, name)?;
                let p = self.input(op, 1, name)?;
                let pads = self.int_const(p, name)?;
                let shape = self.shape(x).to_vec();
                let rank = shape.len();
                if pads.len() != rank * 2
                    || rank > 4
                    || pads.iter().any(|&v| !(0..=1 << 16).contains(&v))
                {
                    return Err(bad(format!("{name}: paddings {pads:?} for rank {rank}")));
                }
                let mut phys = [(0usize, 0usize); 4];
                let mut outs = shape.clone();
                for a in 0..rank {
                    let (lo, hi) = (pads[2 * a] as usize, pads[2 * a + 1] as usize);
                    phys[ops::physical_axis(a, rank)] = (lo, hi);
                    outs[a] += lo + hi;
                }
                let x = self.value(x, name)?;
                (
                    Kernel::Pad {
                        x,
                        pads: phys,
                        value: 0.0,
                    },
                    outs,
                )
            }
            1 | 17 => {
                let x = self.input(op, 0, name)?;
                let [n, h, w, c] = self.rank4(x, name)?;
                let same = raw.i8(0, 0)? == 0;
                let sw = positive(raw.i32(1, 1)?, "stride_w")?;
                let sh = positive(raw.i32(2, 1)?, "stride_h")?;
                let fw = positive(raw.i32(3, 1)?, "filter_width")?;
                let fh = positive(raw.i32(4, 1)?, "filter_height")?;
                let act = act_of(raw.i8(5, 0)?)?;
                let (oh, ph) = conv_axis(h, fh, sh, 1, same, name)?;
                let (ow, pw) = conv_axis(w, fw, sw, 1, same, name)?;
                let x = self.value(x, name)?;
                (
                    Kernel::Pool {
                        x,
                        max: op.code == 17,
                        kernel: [fh, fw],
                        stride: [sh, sw],
                        padding: [ph, pw],
                        act,
                    },
                    vec![n, oh, ow, c],
                )
            }
            22 => {
                let x = self.input(op, 0, name)?;
                let mut target: Vec<i64> = match op.inputs.get(1).copied().flatten() {
                    Some(s) if self.consts[s].is_some() => self.int_const(s, name)?,
                    _ => raw.i32_vec(0)?.into_iter().map(i64::from).collect(),
                };
                if target.is_empty() {
                    target = out_shape.iter().map(|&d| d as i64).collect();
                }
                let count = element_count(self.shape(x), name)?;
                let known: i64 = target.iter().filter(|&&d| d >= 0).product();
                let unknown = target.iter().filter(|&&d| d < 0).count();
                if unknown > 1 || target.iter().any(|&d| d < -1) || target.len() > 4 {
                    return Err(bad(format!("{name}: new shape {target:?}")));
                }
                let shape: Vec<usize> = target
                    .iter()
                    .map(|&d| {
                        if d < 0 {
                            if known == 0 {
                                0
                            } else {
                                count / known as usize
                            }
                        } else {
                            d as usize
                        }
                    })
                    .collect();
                if element_count(&shape, name)? != count {
                    return Err(bad(format!(
                        "{name}: cannot reshape {:?} to {target:?}",
                        self.shape(x)
                    )));
                }
                let in_rank = self.shape(x).len();
                if in_rank > 4 {
                    return Err(VtonError::Unsupported {
                        what: format!("{name}: rank-{in_rank} input"),
                    });
                }
                let x = self.value(x, name)?;
                (
                    Kernel::Reshape {
                        x,
                        in_rank,
                        out_shape: shape.clone(),
                    },
                    shape,
                )
            }
            2 => {
                let ids: Vec<usize> = op.inputs.iter().copied().flatten().collect();
                let Some(&first) = ids.first() else {
                    return Err(bad(format!("{name}: no inputs")));
                };
                let rank = self.shape(first).len() as i32;
                let mut axis = raw.i32(0, 0)?;
                if axis < 0 {
                    axis += rank;
                }
                if axis < 0 || axis >= rank {
                    return Err(bad(format!("{name}: axis {axis} for rank {rank}")));
                }
                let axis = axis as usize;
                let mut shape = self.shape(first).to_vec();
                shape[axis] = 0;
                for &i in &ids {
                    let s = self.shape(i);
                    if s.len() != shape.len()
                        || s.iter()
                            .enumerate()
                            .any(|(d, &v)| d != axis && v != shape[d])
                    {
                        return Err(bad(format!(
                            "{name}: cannot concatenate {s:?} with {:?} on axis {axis}",
                            self.shape(first)
                        )));
                    }
                    shape[axis] += s[axis];
                }
                let act = act_of(raw.i8(1, 0)?)?;
                let xs = ids
                    .iter()
                    .map(|&i| self.operand(i, false, name))
                    .collect::<Result<Vec<_>>>()?;
                (
                    Kernel::Concat {
                        xs,
                        axis: ops::physical_axis(axis, shape.len()),
                        act,
                    },
                    shape,
                )
            }
            23 => {
                let x = self.input(op, 0, name)?;
                let s = self.input(op, 1, name)?;
                let [n, h, w, c] = self.rank4(x, name)?;
                let size = self.int_const(s, name)?;
                if size.len() != 2 || size.iter().any(|&v| !(1..=1 << 16).contains(&v)) {
                    return Err(bad(format!("{name}: size {size:?}")));
                }
                let (ho, wo) = (size[0] as usize, size[1] as usize);
                let align = raw.bool(2, false)?;
                let half = raw.bool(3, false)?;
                let ry = ops::bilinear_matrix(h, ho, align, half);
                let rx = ops::bilinear_matrix(w, wo, align, half);
                let x = self.value(x, name)?;
                (
                    Kernel::Resize {
                        x,
                        ry_t: self.upload(ry, [h, ho]),
                        rx_t: self.upload(rx, [w, wo]),
                    },
                    vec![n, ho, wo, c],
                )
            }
            5 => {
                let x = self.input(op, 0, name)?;
                let [n, h, w, c] = self.rank4(x, name)?;
                let b = positive(raw.i32(0, 0)?, "block_size")?;
                if c % (b * b) != 0 {
                    return Err(bad(format!(
                        "{name}: {c} channels not divisible by block {b}^2"
                    )));
                }
                let x = self.value(x, name)?;
                (
                    Kernel::DepthToSpace { x, block: b },
                    vec![n, h * b, w * b, c / (b * b)],
                )
            }
            14 | 19 | 20 | 21 | 28 | 117 => {
                let x = self.input(op, 0, name)?;
                let shape = self.shape(x).to_vec();
                let u = match op.code {
                    14 => UnaryOp::Logistic,
                    19 => UnaryOp::Relu,
                    20 => UnaryOp::ReluN1To1,
                    21 => UnaryOp::Relu6,
                    28 => UnaryOp::Tanh,
                    _ => UnaryOp::HardSwish,
                };
                let x = self.value(x, name)?;
                (Kernel::Unary { x, op: u }, shape)
            }
            40 => {
                let x = self.input(op, 0, name)?;
                let a = self.input(op, 1, name)?;
                let shape = self.shape(x).to_vec();
                let rank = shape.len();
                let keep = raw.bool(0, false)?;
                let mut axes = Vec::new();
                for v in self.int_const(a, name)? {
                    let v = if v < 0 { v + rank as i64 } else { v };
                    if v < 0 || v >= rank as i64 {
                        return Err(bad(format!("{name}: axis {v} for rank {rank}")));
                    }
                    if !axes.contains(&(v as usize)) {
                        axes.push(v as usize);
                    }
                }
                let outs: Vec<usize> = if keep {
                    shape
                        .iter()
                        .enumerate()
                        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
                        .collect()
                } else {
                    shape
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !axes.contains(i))
                        .map(|(_, &d)| d)
                        .collect()
                };
                if rank > 4 {
                    return Err(VtonError::Unsupported {
                        what: format!("{name}: rank-{rank} input"),
                    });
                }
                let x = self.value(x, name)?;
                (
                    Kernel::Mean {
                        x,
                        in_rank: rank,
                        axes,
                        out_shape: outs.clone(),
                    },
                    outs,
                )
            }
            _ => {
                return Err(VtonError::Unsupported {
                    what: format!("TFLite {name}"),
                })
            }
        };
        if inferred != out_shape {
            return Err(bad(format!(
                "{name}: computed output shape {inferred:?}, the file declares {out_shape:?} for {}",
                self.what(out)
            )));
        }
        element_count(&inferred, name)?;
        if inferred.contains(&0) {
            return Err(bad(format!("{name}: empty output shape {inferred:?}")));
        }
        self.defined[out] = true;
        self.steps.push(Step {
            kernel,
            output: out,
        });
        Ok(())
    }
}

/// Builds a [`TfliteModel`] from the bytes of a `.tflite` file.
pub(crate) fn build(bytes: &[u8], device: &Device) -> Result<TfliteModel> {
    let (model, raws) = schema::read_model(bytes)?;
    let n = model.tensors.len();
    let mut b = Builder {
        model: &model,
        bytes,
        device,
        consts: vec![None; n],
        defined: vec![false; n],
        value_consts: Vec::new(),
        steps: Vec::new(),
    };
    for (i, t) in model.tensors.iter().enumerate() {
        let (start, len) = model.buffers.get(t.buffer).copied().unwrap_or((0, 0));
        if len > 0 {
            let data = b
                .bytes
                .get(start..start + len)
                .ok_or_else(|| bad("buffer out of bounds"))?;
            b.consts[i] = Some(decode_const(t, data, &format!("tensor {i} '{}'", t.name))?);
        }
    }
    for &i in &model.inputs {
        let t = &model.tensors[i];
        if t.dtype != DType::F32 {
            return Err(VtonError::Unsupported {
                what: format!(
                    "graph input '{}' of type {:?} (vton runs float32 graphs)",
                    t.name, t.dtype
                ),
            });
        }
        if t.shape.len() > 4 || t.shape.is_empty() {
            return Err(VtonError::Unsupported {
                what: format!("graph input '{}' of rank {}", t.name, t.shape.len()),
            });
        }
        if t.shape.contains(&0) {
            return Err(bad(format!(
                "graph input '{}' has an empty shape {:?}",
                t.name, t.shape
            )));
        }
        b.defined[i] = true;
    }
    for (k, (op, raw)) in model.ops.iter().zip(&raws).enumerate() {
        b.build_op(k, op, raw)?;
    }
    for &o in &model.outputs {
        if !b.defined[o] {
            b.value(o, "graph output")?;
        }
    }
    let Builder {
        steps,
        value_consts,
        ..
    } = b;
    if model.inputs.is_empty() || model.outputs.is_empty() {
        return Err(bad("the graph has no inputs or no outputs"));
    }
    Ok(TfliteModel {
        device: device.clone(),
        steps,
        shapes: model.tensors.iter().map(|t| t.shape.clone()).collect(),
        names: model.tensors.iter().map(|t| t.name.clone()).collect(),
        inputs: model.inputs.clone(),
        outputs: model.outputs.clone(),
        consts: value_consts,
    })
}
