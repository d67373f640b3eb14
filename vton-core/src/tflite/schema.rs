//! The parts of the TFLite schema (`tensorflow/lite/schema/schema.fbs`) vton reads,
//! decoded from the flatbuffer into plain structs with every index and size checked.
//!
//! Field numbers are the schema's field order (a union takes two slots: its type, then
//! its value).

use super::flatbuf::{read_u32, Table};
use crate::error::{Result, VtonError};

/// Largest element count accepted for one tensor (128 Mi elements = 512 MiB of f32).
pub(crate) const MAX_ELEMENTS: usize = 1 << 27;
/// Largest rank accepted.
pub(crate) const MAX_RANK: usize = 6;

pub(crate) fn bad(message: impl Into<String>) -> VtonError {
    VtonError::TfliteFormat {
        message: message.into(),
    }
}

/// `TensorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    F16,
    I32,
    U8,
    I64,
    Bool,
    I16,
    I8,
    Other(i8),
}

impl DType {
    fn from_code(code: i8) -> Self {
        match code {
            0 => DType::F32,
            1 => DType::F16,
            2 => DType::I32,
            3 => DType::U8,
            4 => DType::I64,
            6 => DType::Bool,
            7 => DType::I16,
            9 => DType::I8,
            other => DType::Other(other),
        }
    }

    /// Bytes per element, for the types whose data vton can read.
    pub(crate) fn size(self) -> Option<usize> {
        match self {
            DType::F32 | DType::I32 => Some(4),
            DType::F16 | DType::I16 => Some(2),
            DType::U8 | DType::I8 | DType::Bool => Some(1),
            DType::I64 => Some(8),
            DType::Other(_) => None,
        }
    }
}

/// Affine quantization (`QuantizationParameters`): `f = scale * (q - zero_point)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Quant {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub dim: usize,
}

/// One traversal dimension of a sparse tensor (`DimensionMetadata`).
#[derive(Debug, Clone)]
pub(crate) enum DimMeta {
    Dense(usize),
    Csr {
        segments: Vec<usize>,
        indices: Vec<usize>,
    },
}

/// `SparsityParameters` (no block map: vton supports plain CSR-style sparsity).
#[derive(Debug, Clone)]
pub(crate) struct Sparsity {
    pub traversal: Vec<usize>,
    pub block_map: Vec<usize>,
    pub dims: Vec<DimMeta>,
}

#[derive(Debug, Clone)]
pub(crate) struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub buffer: usize,
    pub quant: Option<Quant>,
    pub sparsity: Option<Sparsity>,
}

#[derive(Debug, Clone)]
pub(crate) struct OpInfo {
    /// Builtin operator code, or 32 (CUSTOM).
    pub code: i32,
    pub custom_code: Option<String>,
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<usize>,
    /// The `builtin_options` union's type tag.
    pub options_type: u8,
    pub custom_options: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(crate) struct ModelInfo {
    pub tensors: Vec<TensorInfo>,
    /// Raw bytes of each buffer (empty for buffer 0 and activation tensors).
    pub buffers: Vec<(usize, usize)>,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    pub ops: Vec<OpInfo>,
}

fn index(v: i32, len: usize, what: &str) -> Result<usize> {
    if v < 0 || v as usize >= len {
        return Err(bad(format!("{what} {v} is out of range (0..{len})")));
    }
    Ok(v as usize)
}

fn non_negative(v: i32, what: &str) -> Result<usize> {
    if v < 0 {
        return Err(bad(format!("{what} is negative ({v})")));
    }
    Ok(v as usize)
}

/// Element count of a shape, bounded by [`MAX_ELEMENTS`].
pub(crate) fn element_count(shape: &[usize], what: &str) -> Result<usize> {
    let mut n: usize = 1;
    for &d in shape {
        n = n
            .checked_mul(d)
            .filter(|&n| n <= MAX_ELEMENTS)
            .ok_or_else(|| {
                bad(format!(
                    "{what}: shape {shape:?} has more than {MAX_ELEMENTS} elements"
                ))
            })?;
    }
    Ok(n)
}

fn sparse_vector(t: &Table<'_>, type_id: usize, value_id: usize) -> Result<Vec<usize>> {
    let kind = t.u8(type_id, 0)?;
    let Some(v) = t.table(value_id, "sparse index vector")? else {
        return Ok(Vec::new());
    };
    let out: Vec<usize> = match kind {
        1 => v
            .i32_vec(0)?
            .into_iter()
            .map(|x| non_negative(x, "sparse index"))
            .collect::<Result<_>>()?,
        2 => match v.vector(0, 2)? {
            None => Vec::new(),
            Some(vec) => vec
                .bytes()
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize)
                .collect(),
        },
        3 => match v.vector(0, 1)? {
            None => Vec::new(),
            Some(vec) => vec.bytes().iter().map(|&b| b as usize).collect(),
        },
        other => return Err(bad(format!("unknown sparse index vector type {other}"))),
    };
    Ok(out)
}

fn read_sparsity(t: &Table<'_>) -> Result<Sparsity> {
    let traversal = t
        .i32_vec(0)?
        .into_iter()
        .map(|x| non_negative(x, "traversal order"))
        .collect::<Result<Vec<_>>>()?;
    let block_map = t
        .i32_vec(1)?
        .into_iter()
        .map(|x| non_negative(x, "block map"))
        .collect::<Result<Vec<_>>>()?;
    let mut dims = Vec::new();
    for d in t.tables(2, "DimensionMetadata")? {
        let format = d.i8(0, 0)?;
        dims.push(match format {
            0 => DimMeta::Dense(non_negative(d.i32(1, 0)?, "dense_size")?),
            1 => DimMeta::Csr {
                segments: sparse_vector(&d, 2, 3)?,
                indices: sparse_vector(&d, 4, 5)?,
            },
            other => return Err(bad(format!("unknown sparse dimension format {other}"))),
        });
    }
    if dims.len() != traversal.len() {
        return Err(bad(format!(
            "sparsity has {} dimension records for a traversal order of {}",
            dims.len(),
            traversal.len()
        )));
    }
    Ok(Sparsity {
        traversal,
        block_map,
        dims,
    })
}

/// Decodes the model root: subgraph 0, its tensors and operators, and the buffer table.
pub(crate) fn read_model(buf: &[u8]) -> Result<(ModelInfo, Vec<OpRaw<'_>>)> {
    if buf.len() < 8 {
        return Err(bad(format!("file of {} bytes is too short", buf.len())));
    }
    if &buf[4..8] != b"TFL3" {
        return Err(bad("missing the TFL3 file identifier (not a .tflite file)"));
    }
    let _ = read_u32(buf, 0, "root")?;
    let model = Table::root(buf, "Model")?;
    let version = model.u32(0, 0)?;
    if version != 3 {
        return Err(bad(format!(
            "schema version {version}, vton reads version 3"
        )));
    }
    // Operator codes.
    let mut codes = Vec::new();
    for oc in model.tables(1, "OperatorCode")? {
        let deprecated = oc.i8(0, 0)? as i32;
        let builtin = oc.i32(3, 0)?;
        let custom = oc.string(1)?.map(str::to_string);
        codes.push((deprecated.max(builtin), custom));
    }
    // Buffers: (start, len) into `buf`.
    let mut buffers = Vec::new();
    for b in model.tables(4, "Buffer")? {
        let offset = b.u64(1, 0)?;
        if offset > 1 {
            let size = b.u64(2, 0)?;
            let end = offset
                .checked_add(size)
                .filter(|&e| e <= buf.len() as u64)
                .ok_or_else(|| bad("buffer offset/size past the end of the file"))?;
            let _ = end;
            buffers.push((offset as usize, size as usize));
        } else {
            match b.vector(0, 1)? {
                None => buffers.push((0, 0)),
                Some(v) => {
                    let bytes = v.bytes();
                    let start = bytes.as_ptr() as usize - buf.as_ptr() as usize;
                    buffers.push((start, bytes.len()));
                }
            }
        }
    }
    let subgraphs = model.tables(2, "SubGraph")?;
    let Some(g) = subgraphs.first() else {
        return Err(bad("the model has no subgraph"));
    };
    if subgraphs.len() > 1 {
        return Err(VtonError::Unsupported {
            what: format!(
                "TFLite models with {} subgraphs (control flow); vton runs single-graph models",
                subgraphs.len()
            ),
        });
    }
    let mut tensors = Vec::new();
    for (i, t) in g.tables(0, "Tensor")?.into_iter().enumerate() {
        let name = t.string(3)?.unwrap_or("").to_string();
        let raw_shape = t.i32_vec(0)?;
        if raw_shape.len() > MAX_RANK {
            return Err(bad(format!(
                "tensor {i} '{name}' has rank {} (at most {MAX_RANK})",
                raw_shape.len()
            )));
        }
        let shape = raw_shape
            .iter()
            .map(|&d| {
                if d < 0 {
                    Err(VtonError::Unsupported {
                        what: format!(
                            "tensor {i} '{name}' has a dynamic dimension ({raw_shape:?})"
                        ),
                    })
                } else {
                    Ok(d as usize)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        element_count(&shape, &format!("tensor {i} '{name}'"))?;
        let dtype = DType::from_code(t.i8(1, 0)?);
        let buffer = t.u32(2, 0)? as usize;
        if buffer >= buffers.len().max(1) {
            return Err(bad(format!(
                "tensor {i} '{name}' names buffer {buffer} of {}",
                buffers.len()
            )));
        }
        let quant = match t.table(4, "QuantizationParameters")? {
            None => None,
            Some(q) => {
                let scale = q.f32_vec(2)?;
                if scale.is_empty() {
                    None
                } else {
                    Some(Quant {
                        scale,
                        zero_point: q.i64_vec(3)?,
                        dim: non_negative(q.i32(6, 0)?, "quantized_dimension")?,
                    })
                }
            }
        };
        let sparsity = match t.table(6, "SparsityParameters")? {
            None => None,
            Some(s) => Some(read_sparsity(&s)?),
        };
        tensors.push(TensorInfo {
            name,
            shape,
            dtype,
            buffer,
            quant,
            sparsity,
        });
    }
    let n = tensors.len();
    let inputs = g
        .i32_vec(1)?
        .into_iter()
        .map(|v| index(v, n, "graph input"))
        .collect::<Result<Vec<_>>>()?;
    let outputs = g
        .i32_vec(2)?
        .into_iter()
        .map(|v| index(v, n, "graph output"))
        .collect::<Result<Vec<_>>>()?;
    let mut ops = Vec::new();
    let mut raws = Vec::new();
    for (k, op) in g.tables(3, "Operator")?.into_iter().enumerate() {
        let opcode = op.u32(0, 0)? as usize;
        let (code, custom_code) = codes.get(opcode).cloned().ok_or_else(|| {
            bad(format!(
                "operator {k} names opcode {opcode} of {}",
                codes.len()
            ))
        })?;
        let inputs = op
            .i32_vec(1)?
            .into_iter()
            .map(|v| {
                if v == -1 {
                    Ok(None)
                } else {
                    index(v, n, &format!("operator {k} input")).map(Some)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = op
            .i32_vec(2)?
            .into_iter()
            .map(|v| index(v, n, &format!("operator {k} output")))
            .collect::<Result<Vec<_>>>()?;
        let options_type = op.u8(3, 0)?;
        let options_table = op.table(4, "BuiltinOptions")?;
        let custom_options = match op.vector(5, 1)? {
            None => Vec::new(),
            Some(v) => v.bytes().to_vec(),
        };
        ops.push(OpInfo {
            code,
            custom_code,
            inputs,
            outputs,
            options_type,
            custom_options,
        });
        raws.push(OpRaw {
            options: options_table,
        });
    }
    Ok((
        ModelInfo {
            tensors,
            buffers,
            inputs,
            outputs,
            ops,
        },
        raws,
    ))
}

/// The raw options table of an operator, for fields whose width matters.
#[derive(Clone, Copy)]
pub(crate) struct OpRaw<'a> {
    pub options: Option<Table<'a>>,
}

impl OpRaw<'_> {
    pub(crate) fn i8(&self, id: usize, default: i8) -> Result<i8> {
        match &self.options {
            None => Ok(default),
            Some(t) => t.i8(id, default),
        }
    }
    pub(crate) fn i32(&self, id: usize, default: i32) -> Result<i32> {
        match &self.options {
            None => Ok(default),
            Some(t) => t.i32(id, default),
        }
    }
    pub(crate) fn bool(&self, id: usize, default: bool) -> Result<bool> {
        match &self.options {
            None => Ok(default),
            Some(t) => t.bool(id, default),
        }
    }
    pub(crate) fn i32_vec(&self, id: usize) -> Result<Vec<i32>> {
        match &self.options {
            None => Ok(Vec::new()),
            Some(t) => t.i32_vec(id),
        }
    }
}
