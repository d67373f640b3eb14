//! Checkpoints as the field publishes them, read as they are.
//!
//! * safetensors (`*.safetensors`, also diffusers' `diffusion_pytorch_model.safetensors`):
//!   memory-mapped, f32 / f16 / bf16 / f64 converted to f32 on read.
//! * PyTorch pickles (`*.pth`, `*.pt`, `*.bin`, `*.ckpt`): the zip format of torch >= 1.6 and
//!   the legacy format, read by burn's pickle reader, which interprets the pickle opcodes
//!   itself and never runs code: a pickle that names anything but tensor rebuilds and plain
//!   containers is refused with [`VtonError::Checkpoint`].
//!
//! Wrappers are unwrapped: a `{"state_dict": ...}` (or `model`, `model_state_dict`,
//! `params`) dictionary, and DataParallel's `module.` prefix, when every key carries it.
//!
//! Models read their tensors through a [`Loader`], which checks every shape against the
//! configuration, records which keys were used, and at the end ([`Loader::finish`]) fails
//! with the names of missing and unexpected keys unless a partial load was asked for.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use burn::module::{Param, ParamId};
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::error::{Result, VtonError};

#[derive(Clone)]
enum Source {
    /// A byte range of a safetensors file, read on demand (positioned reads, so the
    /// file's pages do not stay resident next to the tensors built from them).
    File {
        file: Arc<std::fs::File>,
        start: usize,
        end: usize,
        dtype: safetensors::Dtype,
    },
    Pickle(burn::store::pytorch_reader::Tensor),
    /// A tensor's bytes held in memory (checkpoints embedded in the library).
    Memory {
        bytes: Arc<[u8]>,
        dtype: safetensors::Dtype,
    },
}

#[derive(Clone)]
struct Entry {
    shape: Vec<usize>,
    source: Source,
    file: Arc<PathBuf>,
}

/// The tensors of one or more checkpoint files, by key. Data is read lazily.
#[derive(Clone, Default)]
pub struct Checkpoint {
    entries: BTreeMap<String, Entry>,
    name: String,
    /// Wrapper prefixes removed at open, outermost first (see [`Checkpoint::rooted_at`]).
    stripped: Vec<String>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("name", &self.name)
            .field("tensors", &self.entries.len())
            .finish()
    }
}

const WRAPPER_KEYS: [&str; 5] = [
    "state_dict",
    "model_state_dict",
    "model",
    "params",
    "module",
];

fn checkpoint_err(path: &Path, message: impl Into<String>) -> VtonError {
    VtonError::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn is_safetensors(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| VtonError::io(path, e))?;
    let mut head = [0u8; 9];
    let n = f.read(&mut head).map_err(|e| VtonError::io(path, e))?;
    // safetensors: u64 little-endian header length, then '{'.
    Ok(n == 9 && head[8] == b'{')
}

impl Checkpoint {
    /// Opens one checkpoint file (safetensors or PyTorch pickle, told apart by content).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(VtonError::FileNotFound {
                path: path.to_path_buf(),
            });
        }
        if path.is_dir() {
            return Err(checkpoint_err(
                path,
                "is a folder; give a checkpoint file (or use a model's from_pretrained)",
            ));
        }
        let mut ck = if is_safetensors(path)? {
            Self::open_safetensors(path)?
        } else {
            Self::open_pickle(path)?
        };
        ck.unwrap_wrappers();
        if ck.is_empty() {
            return Err(checkpoint_err(
                path,
                "holds no tensors (objects the pickle reader does not interpret, such as \
                 calls to arbitrary functions, are skipped and never executed)",
            ));
        }
        Ok(ck)
    }

    /// Opens several files (sharded checkpoints) as one; a key present twice is an error.
    pub fn open_all<P: AsRef<Path>>(paths: &[P]) -> Result<Self> {
        let mut out = Checkpoint::default();
        let mut names = Vec::new();
        for p in paths {
            let ck = Self::open(p)?;
            names.push(ck.name.clone());
            for (k, e) in ck.entries {
                if out.entries.contains_key(&k) {
                    return Err(checkpoint_err(
                        p.as_ref(),
                        format!("key {k} is also in an earlier shard"),
                    ));
                }
                out.entries.insert(k, e);
            }
        }
        out.name = names.join(", ");
        Ok(out)
    }

    /// Reads safetensors bytes held in memory (weights embedded with `include_bytes!`);
    /// `name` stands for the path in messages. The tensors are copied out of `bytes`.
    pub fn from_safetensors_bytes(name: &str, bytes: &[u8]) -> Result<Self> {
        let path = Path::new(name);
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| checkpoint_err(path, format!("not valid safetensors: {e}")))?;
        let file = Arc::new(path.to_path_buf());
        let entries = st
            .tensors()
            .into_iter()
            .map(|(k, view)| {
                let entry = Entry {
                    shape: view.shape().to_vec(),
                    source: Source::Memory {
                        bytes: Arc::from(view.data()),
                        dtype: view.dtype(),
                    },
                    file: file.clone(),
                };
                (k, entry)
            })
            .collect();
        Ok(Checkpoint {
            entries,
            name: name.to_string(),
            stripped: Vec::new(),
        })
    }

    /// A checkpoint of float32 tensors held in memory (`key -> (shape, values)`), such as
    /// a freshly initialised model; `name` stands for the path in messages.
    pub fn from_f32_tensors(
        name: &str,
        tensors: impl IntoIterator<Item = (String, Vec<usize>, Vec<f32>)>,
    ) -> Result<Self> {
        let file = Arc::new(PathBuf::from(name));
        let mut entries = BTreeMap::new();
        for (k, shape, values) in tensors {
            if shape.iter().product::<usize>() != values.len() {
                return Err(checkpoint_err(
                    Path::new(name),
                    format!("{k}: shape {shape:?} does not hold {} values", values.len()),
                ));
            }
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            entries.insert(
                k,
                Entry {
                    shape,
                    source: Source::Memory {
                        bytes: Arc::from(bytes.as_slice()),
                        dtype: safetensors::Dtype::F32,
                    },
                    file: file.clone(),
                },
            );
        }
        Ok(Checkpoint {
            entries: entries.into_iter().collect(),
            name: name.to_string(),
            stripped: Vec::new(),
        })
    }

    fn open_safetensors(path: &Path) -> Result<Self> {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(|e| VtonError::io(path, e))?;
        let len = f.metadata().map_err(|e| VtonError::io(path, e))?.len() as usize;
        let mut n = [0u8; 8];
        f.read_exact(&mut n)
            .map_err(|_| checkpoint_err(path, "shorter than a safetensors header"))?;
        let header_len = u64::from_le_bytes(n) as usize;
        if header_len > 100_000_000 || 8 + header_len > len {
            return Err(checkpoint_err(
                path,
                "safetensors header length is out of range (truncated or not safetensors)",
            ));
        }
        let mut head = vec![0u8; 8 + header_len];
        head[..8].copy_from_slice(&n);
        f.read_exact(&mut head[8..])
            .map_err(|e| checkpoint_err(path, format!("cannot read the header: {e}")))?;
        // read_metadata wants the whole buffer for its bounds check; give it the header
        // and check the data extent against the file length ourselves.
        let meta: safetensors::tensor::Metadata = serde_json::from_slice(&head[8..])
            .map_err(|e| checkpoint_err(path, format!("not a valid safetensors header: {e}")))?;
        let header = header_len;
        let data_start = 8 + header;
        let map = Arc::new(f);
        let file = Arc::new(path.to_path_buf());
        let mut entries = BTreeMap::new();
        for (name, info) in meta.tensors() {
            let (s, e) = info.data_offsets;
            if s > e || data_start + e > len {
                return Err(checkpoint_err(
                    path,
                    format!("tensor {name} lies past the end of the file (truncated?)"),
                ));
            }
            entries.insert(
                name.clone(),
                Entry {
                    shape: info.shape.clone(),
                    source: Source::File {
                        file: map.clone(),
                        start: data_start + s,
                        end: data_start + e,
                        dtype: info.dtype,
                    },
                    file: file.clone(),
                },
            );
        }
        Ok(Checkpoint {
            entries,
            name: path.display().to_string(),
            stripped: Vec::new(),
        })
    }

    fn open_pickle(path: &Path) -> Result<Self> {
        let reader = burn::store::pytorch_reader::PytorchReader::new(path)
            .map_err(|e| checkpoint_err(path, format!("not a readable PyTorch checkpoint: {e}")))?;
        let file = Arc::new(path.to_path_buf());
        let entries = reader
            .into_tensors()
            .into_iter()
            .map(|(k, t)| {
                (
                    k,
                    Entry {
                        shape: t.shape().to_vec(),
                        source: Source::Pickle(t),
                        file: file.clone(),
                    },
                )
            })
            .collect();
        Ok(Checkpoint {
            entries,
            name: path.display().to_string(),
            stripped: Vec::new(),
        })
    }

    /// Strips `state_dict.` / `model.` / ... and `module.` when every key has it.
    fn unwrap_wrappers(&mut self) {
        loop {
            let Some(first) = self.entries.keys().next() else {
                return;
            };
            let Some((head, _)) = first.split_once('.') else {
                return;
            };
            let head = head.to_string();
            if !WRAPPER_KEYS.contains(&head.as_str()) {
                return;
            }
            let prefix = format!("{head}.");
            if !self.entries.keys().all(|k| k.starts_with(&prefix)) {
                return;
            }
            self.entries = std::mem::take(&mut self.entries)
                .into_iter()
                .map(|(k, e)| (k[prefix.len()..].to_string(), e))
                .collect();
            self.stripped.push(head);
        }
    }

    /// Finds a model's root from one key it expects (`probe`), when that key is absent:
    ///
    /// * wrapper unwrapping that went too far is undone (CP-VTON's `UnetGenerator` keeps
    ///   everything under `model.model.`, which looks like a `model` wrapper): the
    ///   innermost removed prefixes are put back until the key is found;
    /// * a model stored under one prefix among other tensors (`tocg.` and `generator.`
    ///   of a combined file, or the `weights.` of a parity fixture beside its `input.` and
    ///   `output.` tensors) is selected when exactly one prefix holds the key.
    pub fn rooted_at(mut self, probe: &str) -> Self {
        if self.contains(probe) {
            return self;
        }
        let suffix = format!(".{probe}");
        let prefixes: BTreeSet<String> = self
            .keys()
            .filter_map(|k| k.strip_suffix(&suffix))
            .map(|p| format!("{p}."))
            .collect();
        if prefixes.len() == 1 {
            let prefix = prefixes.into_iter().next().expect("one prefix");
            return self.map_keys(|k| k.strip_prefix(&prefix).map(str::to_string));
        }
        for k in 1..=self.stripped.len() {
            let prefix = format!("{}.", self.stripped[self.stripped.len() - k..].join("."));
            if probe
                .strip_prefix(&prefix)
                .is_some_and(|rest| self.contains(rest))
            {
                let keep = self.stripped.len() - k;
                self.stripped.truncate(keep);
                return self.map_keys(|key| Some(format!("{prefix}{key}")));
            }
        }
        self
    }

    /// A name for messages (the file path or paths).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// All keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|k| k.as_str())
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the checkpoint holds no tensor.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a key exists.
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The shape of a tensor.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.entries.get(key).map(|e| e.shape.as_slice())
    }

    /// Renames keys: `f` returns the new key, or `None` to drop the tensor.
    pub fn map_keys(mut self, f: impl Fn(&str) -> Option<String>) -> Self {
        self.entries = std::mem::take(&mut self.entries)
            .into_iter()
            .filter_map(|(k, e)| f(&k).map(|nk| (nk, e)))
            .collect();
        self
    }

    /// Adds the tensors of `other`, replacing those with the same key.
    pub fn overlay(mut self, other: Checkpoint) -> Self {
        self.entries.extend(other.entries);
        self.name = format!("{} + {}", self.name, other.name);
        self
    }

    /// Reads a tensor as f32 values in row-major order.
    pub fn read_f32(&self, key: &str) -> Result<Vec<f32>> {
        let (e, n, raw) = self.raw(key)?;
        match raw {
            Raw::Safetensors(bytes, dtype) => convert_safetensors(&bytes, dtype, n),
            Raw::Pickle(bytes, dtype) => convert_pickle(&bytes, dtype, n),
        }
        .map_err(|m| checkpoint_err(&e.file, format!("{key}: {m}")))
    }

    /// Reads a tensor as 16-bit floats of `dtype` (f16 or bf16) in row-major order: stored
    /// bits unchanged where the file holds that type, otherwise each value rounded to
    /// nearest even, element by element (no float32 copy of the tensor). `None` for
    /// [`WeightDtype::F32`].
    pub fn read_half(&self, key: &str, dtype: WeightDtype) -> Result<Option<Half>> {
        if dtype == WeightDtype::F32 {
            return Ok(None);
        }
        let (e, n, raw) = self.raw(key)?;
        let bits = match raw {
            Raw::Safetensors(bytes, src) => {
                use safetensors::Dtype as D;
                let src = match src {
                    D::F16 => HalfSource::F16,
                    D::BF16 => HalfSource::BF16,
                    D::F32 => HalfSource::F32,
                    D::F64 => HalfSource::F64,
                    _ => HalfSource::Other,
                };
                half_bits(&bytes, src, n, dtype, true)
            }
            Raw::Pickle(bytes, src) => {
                use burn::store::pytorch_reader::DType as D;
                let src = match src {
                    D::F16 => HalfSource::F16,
                    D::BF16 => HalfSource::BF16,
                    D::F32 => HalfSource::F32,
                    D::F64 => HalfSource::F64,
                    _ => HalfSource::Other,
                };
                half_bits(&bytes, src, n, dtype, cfg!(target_endian = "little"))
            }
        }
        .map_err(|m| checkpoint_err(&e.file, format!("{key}: {m}")))?;
        Ok(Some(Half { dtype, bits }))
    }

    /// The stored bytes of `key` with their element type, and its element count.
    fn raw(&self, key: &str) -> Result<(&Entry, usize, Raw<'_>)> {
        let e = self
            .entries
            .get(key)
            .ok_or_else(|| VtonError::MissingWeights {
                source_name: self.name.clone(),
                count: 1,
                keys: key.to_string(),
            })?;
        // A pickle's shape is not checked against its storage when it is opened.
        let n = e
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| {
                checkpoint_err(
                    &e.file,
                    format!("{key}: shape {:?} has too many elements", e.shape),
                )
            })?;
        let raw = match &e.source {
            Source::File {
                file,
                start,
                end,
                dtype,
            } => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; end - start];
                file.read_exact_at(&mut buf, *start as u64)
                    .map_err(|err| checkpoint_err(&e.file, format!("{key}: {err}")))?;
                Raw::Safetensors(buf.into(), *dtype)
            }
            Source::Memory { bytes, dtype } => Raw::Safetensors((&bytes[..]).into(), *dtype),
            Source::Pickle(t) => {
                let bytes = t
                    .read()
                    .map_err(|err| checkpoint_err(&e.file, format!("{key}: {err}")))?;
                Raw::Pickle(bytes, t.dtype())
            }
        };
        Ok((e, n, raw))
    }
}

enum Raw<'a> {
    /// Little-endian bytes.
    Safetensors(std::borrow::Cow<'a, [u8]>, safetensors::Dtype),
    /// Native-endian bytes (what burn's pickle reader returns).
    Pickle(Vec<u8>, burn::store::pytorch_reader::DType),
}

/// The element type model weights are kept in on the device (see [`Loader::weight`]).
/// Computation stays in float32: layers widen their weights to the activations' type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum WeightDtype {
    /// 32-bit floats (the default: what the parity tests check).
    #[default]
    F32,
    /// IEEE half precision (`torch.float16`): 11 significant bits, range up to 65504.
    F16,
    /// bfloat16 (`torch.bfloat16`): 8 significant bits, float32's range.
    BF16,
}

impl WeightDtype {
    /// By name, as PyTorch and diffusers spell them: `float32` / `fp32` / `f32`,
    /// `float16` / `fp16` / `f16` / `half`, `bfloat16` / `bf16` (an optional `torch.`
    /// prefix is accepted).
    pub fn from_name(name: &str) -> Result<Self> {
        Self::from_arg("dtype", name)
    }

    /// [`WeightDtype::from_name`] whose error names the argument `arg` the value came in
    /// (`--dtype`, `torch_dtype`).
    pub fn from_arg(arg: &str, name: &str) -> Result<Self> {
        let n = name.trim().to_ascii_lowercase();
        match n.strip_prefix("torch.").unwrap_or(&n) {
            "float32" | "fp32" | "f32" | "float" => Ok(WeightDtype::F32),
            "float16" | "fp16" | "f16" | "half" => Ok(WeightDtype::F16),
            "bfloat16" | "bf16" => Ok(WeightDtype::BF16),
            _ => Err(VtonError::invalid(
                arg,
                format!("{name:?} is not one of float32, float16, bfloat16"),
            )),
        }
    }

    /// The PyTorch name (`float32`, `float16`, `bfloat16`).
    pub fn name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "float32",
            WeightDtype::F16 => "float16",
            WeightDtype::BF16 => "bfloat16",
        }
    }

    /// burn's element type.
    pub fn burn(self) -> DType {
        match self {
            WeightDtype::F32 => DType::F32,
            WeightDtype::F16 => DType::F16,
            WeightDtype::BF16 => DType::BF16,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        if self == WeightDtype::F32 {
            4
        } else {
            2
        }
    }
}

impl std::str::FromStr for WeightDtype {
    type Err = VtonError;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s)
    }
}

impl std::fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How models are loaded from a diffusers folder: which weight files
/// (`variant`, as diffusers' `variant="fp16"` picks `diffusion_pytorch_model.fp16.safetensors`)
/// and in which element type the weights are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    pub dtype: WeightDtype,
    pub variant: Option<String>,
}

impl LoadOptions {
    pub fn dtype(dtype: WeightDtype) -> Self {
        LoadOptions {
            dtype,
            variant: None,
        }
    }

    pub fn with_variant(mut self, variant: Option<&str>) -> Self {
        self.variant = variant.map(String::from);
        self
    }
}

/// A tensor's values as 16-bit float bit patterns of `dtype`.
#[derive(Debug, Clone)]
pub struct Half {
    pub dtype: WeightDtype,
    pub bits: Vec<u16>,
}

impl Half {
    /// As burn tensor data of `shape`.
    pub fn into_data(self, shape: impl Into<burn::tensor::Shape>) -> TensorData {
        match self.dtype {
            WeightDtype::BF16 => TensorData::new(
                self.bits
                    .into_iter()
                    .map(half::bf16::from_bits)
                    .collect::<Vec<_>>(),
                shape,
            ),
            _ => TensorData::new(
                self.bits
                    .into_iter()
                    .map(half::f16::from_bits)
                    .collect::<Vec<_>>(),
                shape,
            ),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum HalfSource {
    F16,
    BF16,
    F32,
    F64,
    Other,
}

/// `n` elements of `src` (little-endian when `le`, else big-endian) as 16-bit patterns of
/// `target`, converted element by element.
fn half_bits(
    bytes: &[u8],
    src: HalfSource,
    n: usize,
    target: WeightDtype,
    le: bool,
) -> Result<Vec<u16>, String> {
    let size = match src {
        HalfSource::F16 | HalfSource::BF16 => 2,
        HalfSource::F32 => 4,
        HalfSource::F64 => 8,
        HalfSource::Other => {
            return Err(format!(
                "not a floating-point tensor: cannot keep it as {}",
                target.name()
            ))
        }
    };
    if n.checked_mul(size) != Some(bytes.len()) {
        return Err(format!("{} bytes of data for {n} elements", bytes.len()));
    }
    let to_target = |x: f32| match target {
        WeightDtype::BF16 => half::bf16::from_f32(x).to_bits(),
        _ => half::f16::from_f32(x).to_bits(),
    };
    let u16_at = |c: &[u8]| {
        if le {
            u16::from_le_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], c[1]])
        }
    };
    Ok(match src {
        HalfSource::F16 if target == WeightDtype::F16 => {
            bytes.chunks_exact(2).map(u16_at).collect()
        }
        HalfSource::BF16 if target == WeightDtype::BF16 => {
            bytes.chunks_exact(2).map(u16_at).collect()
        }
        HalfSource::F16 => bytes
            .chunks_exact(2)
            .map(|c| to_target(half::f16::from_bits(u16_at(c)).to_f32()))
            .collect(),
        HalfSource::BF16 => bytes
            .chunks_exact(2)
            .map(|c| to_target(half::bf16::from_bits(u16_at(c)).to_f32()))
            .collect(),
        HalfSource::F32 => bytes
            .chunks_exact(4)
            .map(|c| {
                let a = [c[0], c[1], c[2], c[3]];
                to_target(if le {
                    f32::from_le_bytes(a)
                } else {
                    f32::from_be_bytes(a)
                })
            })
            .collect(),
        HalfSource::F64 => bytes
            .chunks_exact(8)
            .map(|c| {
                let a: [u8; 8] = c.try_into().expect("8 bytes");
                let v = if le {
                    f64::from_le_bytes(a)
                } else {
                    f64::from_be_bytes(a)
                };
                // Rounded once, from the f64 value (via f64 -> f16/bf16 directly).
                match target {
                    WeightDtype::BF16 => half::bf16::from_f64(v).to_bits(),
                    _ => half::f16::from_f64(v).to_bits(),
                }
            })
            .collect(),
        HalfSource::Other => unreachable!("refused above"),
    })
}

fn chunks<const N: usize>(bytes: &[u8], n: usize, what: &str) -> Result<Vec<[u8; N]>, String> {
    if n.checked_mul(N) != Some(bytes.len()) {
        return Err(format!(
            "{} bytes of {what} data for {n} elements",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
        .collect())
}

fn convert_safetensors(
    bytes: &[u8],
    dtype: safetensors::Dtype,
    n: usize,
) -> Result<Vec<f32>, String> {
    use safetensors::Dtype as D;
    Ok(match dtype {
        D::F32 => chunks::<4>(bytes, n, "f32")?
            .into_iter()
            .map(f32::from_le_bytes)
            .collect(),
        D::F16 => chunks::<2>(bytes, n, "f16")?
            .into_iter()
            .map(|b| half::f16::from_le_bytes(b).to_f32())
            .collect(),
        D::BF16 => chunks::<2>(bytes, n, "bf16")?
            .into_iter()
            .map(|b| half::bf16::from_le_bytes(b).to_f32())
            .collect(),
        D::F64 => chunks::<8>(bytes, n, "f64")?
            .into_iter()
            .map(|b| f64::from_le_bytes(b) as f32)
            .collect(),
        D::I64 => chunks::<8>(bytes, n, "i64")?
            .into_iter()
            .map(|b| i64::from_le_bytes(b) as f32)
            .collect(),
        other => return Err(format!("unsupported dtype {other:?}")),
    })
}

fn convert_pickle(
    bytes: &[u8],
    dtype: burn::store::pytorch_reader::DType,
    n: usize,
) -> Result<Vec<f32>, String> {
    use burn::store::pytorch_reader::DType as D;
    // The reader returns native-endian bytes.
    Ok(match dtype {
        D::F32 => chunks::<4>(bytes, n, "f32")?
            .into_iter()
            .map(f32::from_ne_bytes)
            .collect(),
        D::F16 => chunks::<2>(bytes, n, "f16")?
            .into_iter()
            .map(|b| half::f16::from_ne_bytes(b).to_f32())
            .collect(),
        D::BF16 => chunks::<2>(bytes, n, "bf16")?
            .into_iter()
            .map(|b| half::bf16::from_ne_bytes(b).to_f32())
            .collect(),
        D::F64 => chunks::<8>(bytes, n, "f64")?
            .into_iter()
            .map(|b| f64::from_ne_bytes(b) as f32)
            .collect(),
        D::I64 => chunks::<8>(bytes, n, "i64")?
            .into_iter()
            .map(|b| i64::from_ne_bytes(b) as f32)
            .collect(),
        other => return Err(format!("unsupported dtype {other:?}")),
    })
}

/// What a load used, for reporting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Keys the model asked for that the checkpoint does not have (partial loads only;
    /// those parameters were zero-initialised).
    pub missing: Vec<String>,
    /// Keys in the checkpoint the model did not use.
    pub unused: Vec<String>,
}

#[derive(Default)]
struct LoadState {
    used: BTreeSet<String>,
    missing: Vec<String>,
    params: Vec<ParamRecord>,
}

/// How a parameter's tensor relates to the checkpoint tensor under its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamLayout {
    /// The same shape and element order.
    Same,
    /// A 2-d tensor stored transposed (`nn.Linear`'s `[out, in]` weight as burn's `[in, out]`).
    Transposed,
}

/// Whether an optimiser updates a parameter or it is state the forward pass writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// A trainable parameter (in PyTorch's `model.parameters()`).
    Trainable,
    /// A buffer (BatchNorm running statistics): saved in the state dict, never optimised.
    Buffer,
}

/// One parameter a [`Loader`] created: its burn id and the checkpoint key it came from,
/// so trainers can name gradients and write state dicts under the original keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamRecord {
    pub id: ParamId,
    pub key: String,
    /// The checkpoint shape (PyTorch's).
    pub shape: Vec<usize>,
    pub layout: ParamLayout,
    pub kind: ParamKind,
}

/// Reads a model's tensors from a [`Checkpoint`], under a key prefix.
#[derive(Clone)]
pub struct Loader<'c> {
    ckpt: &'c Checkpoint,
    prefix: String,
    device: Device,
    partial: bool,
    weight_dtype: WeightDtype,
    state: Rc<RefCell<LoadState>>,
}

impl<'c> Loader<'c> {
    /// A loader at the checkpoint's root. With `partial`, missing tensors are zeros and
    /// listed by [`Loader::finish`] instead of failing.
    pub fn new(ckpt: &'c Checkpoint, device: &Device, partial: bool) -> Self {
        Loader {
            ckpt,
            prefix: String::new(),
            device: device.clone(),
            partial,
            weight_dtype: WeightDtype::F32,
            state: Rc::new(RefCell::new(LoadState::default())),
        }
    }

    /// This loader (and its sub-loaders) keeps the weights read through
    /// [`Loader::weight`] as `dtype`.
    pub fn with_weight_dtype(mut self, dtype: WeightDtype) -> Self {
        self.weight_dtype = dtype;
        self
    }

    /// The element type of [`Loader::weight`]'s tensors.
    pub fn weight_dtype(&self) -> WeightDtype {
        self.weight_dtype
    }

    /// A loader for the sub-module `name` (keys `prefix.name.*`).
    pub fn sub(&self, name: impl std::fmt::Display) -> Self {
        let mut l = self.clone();
        l.prefix = self.key(&name.to_string());
        l
    }

    /// The full key of `name` under this loader's prefix.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The device tensors are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The checkpoint read from.
    pub fn checkpoint(&self) -> &'c Checkpoint {
        self.ckpt
    }

    /// Whether `name` exists under this prefix.
    pub fn contains(&self, name: &str) -> bool {
        self.ckpt.contains(&self.key(name))
    }

    /// The shape of `name`, when present: how models read widths the original hard-codes.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.ckpt.shape(&self.key(name)).map(|s| s.to_vec())
    }

    /// Reads `name` as a tensor of the expected shape.
    pub fn tensor<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Tensor<D>> {
        let values = self.values(name, shape)?;
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            &self.device,
        ))
    }

    /// Reads `name`'s values (row-major) after checking its shape; zeros for a missing
    /// tensor in a partial load.
    pub fn values<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Vec<f32>> {
        match self.checked_key(name, &shape)? {
            None => Ok(vec![0.0; shape.iter().product()]),
            Some(key) => {
                let values = self.ckpt.read_f32(&key)?;
                self.state.borrow_mut().used.insert(key);
                Ok(values)
            }
        }
    }

    /// `name`'s full key after checking its shape; `None` for a tensor a partial load
    /// lacks (recorded as missing).
    fn checked_key(&self, name: &str, shape: &[usize]) -> Result<Option<String>> {
        let key = self.key(name);
        match self.ckpt.shape(&key) {
            None => {
                if self.partial {
                    self.state.borrow_mut().missing.push(key);
                    return Ok(None);
                }
                Err(VtonError::MissingWeights {
                    source_name: self.ckpt.name.clone(),
                    count: 1,
                    keys: key,
                })
            }
            Some(found) if found != shape => Err(VtonError::WeightShape {
                key,
                expected: shape.to_vec(),
                found: found.to_vec(),
            }),
            Some(_) => Ok(Some(key)),
        }
    }

    /// Reads `name` as 16-bit bit patterns of this loader's weight dtype (zeros for a
    /// tensor a partial load lacks); `None` when the weight dtype is float32.
    pub fn half_values<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Option<Half>> {
        if self.weight_dtype == WeightDtype::F32 {
            return Ok(None);
        }
        match self.checked_key(name, &shape)? {
            None => Ok(Some(Half {
                dtype: self.weight_dtype,
                bits: vec![0; shape.iter().product()],
            })),
            Some(key) => {
                let h = self.ckpt.read_half(&key, self.weight_dtype)?;
                self.state.borrow_mut().used.insert(key);
                Ok(h)
            }
        }
    }

    /// Reads `name` as a layer weight (convolution and linear kernels): a parameter in
    /// this loader's weight dtype ([`Loader::with_weight_dtype`]; float32 by default).
    pub fn weight<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Param<Tensor<D>>> {
        let Some(h) = self.half_values(name, shape)? else {
            return self.param(name, shape);
        };
        let dtype = h.dtype.burn();
        let p = Param::from_tensor(Tensor::from_data(h.into_data(shape), (&self.device, dtype)));
        self.record(&p, name, &shape, ParamLayout::Same, ParamKind::Trainable);
        Ok(p)
    }

    /// Reads `name` as a parameter.
    pub fn param<const D: usize>(&self, name: &str, shape: [usize; D]) -> Result<Param<Tensor<D>>> {
        let p = Param::from_tensor(self.tensor(name, shape)?);
        self.record(&p, name, &shape, ParamLayout::Same, ParamKind::Trainable);
        Ok(p)
    }

    /// Reads `name` as a buffer held in a parameter slot (BatchNorm running statistics).
    pub fn buffer<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Param<Tensor<D>>> {
        let p = Param::from_tensor(self.tensor(name, shape)?);
        self.record(&p, name, &shape, ParamLayout::Same, ParamKind::Buffer);
        Ok(p)
    }

    /// Records that `param` holds the checkpoint tensor `name` (in `layout`).
    pub fn record<const D: usize>(
        &self,
        param: &Param<Tensor<D>>,
        name: &str,
        checkpoint_shape: &[usize],
        layout: ParamLayout,
        kind: ParamKind,
    ) {
        self.state.borrow_mut().params.push(ParamRecord {
            id: param.id,
            key: self.key(name),
            shape: checkpoint_shape.to_vec(),
            layout,
            kind,
        });
    }

    /// Every parameter created through this loader (and its sub-loaders), in load order.
    pub fn param_records(&self) -> Vec<ParamRecord> {
        self.state.borrow().params.clone()
    }

    /// Reads `name` when present (optional biases).
    pub fn optional<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Option<Tensor<D>>> {
        if self.contains(name) {
            self.tensor(name, shape).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Marks keys as deliberately ignored (BatchNorm's `num_batches_tracked`, buffers the
    /// model recomputes).
    pub fn ignore(&self, name: &str) {
        let key = self.key(name);
        if self.ckpt.contains(&key) {
            self.state.borrow_mut().used.insert(key);
        }
    }

    /// Ends the load: with `strict`, unused checkpoint keys under this loader's prefix fail
    /// with their names; missing keys already failed unless the load is partial.
    pub fn finish(&self, strict: bool) -> Result<LoadReport> {
        let st = self.state.borrow();
        let within = |k: &str| {
            self.prefix.is_empty()
                || k == self.prefix
                || k.starts_with(&format!("{}.", self.prefix))
        };
        let unused: Vec<String> = self
            .ckpt
            .keys()
            .filter(|k| within(k) && !st.used.contains(*k))
            .map(|k| k.to_string())
            .collect();
        if strict && !self.partial && !unused.is_empty() {
            return Err(VtonError::UnexpectedWeights {
                source_name: self.ckpt.name.clone(),
                count: unused.len(),
                keys: list_keys(&unused),
            });
        }
        Ok(LoadReport {
            missing: st.missing.clone(),
            unused,
        })
    }
}

/// The first keys of a list, for messages.
pub(crate) fn list_keys(keys: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut s = keys
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if keys.len() > SHOWN {
        s.push_str(&format!(", ... ({} more)", keys.len() - SHOWN));
    }
    s
}

/// The bytes a module's float parameters take, by element type: what
/// [`WeightDtype`] saves (`total()` is the weights' share of memory).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParamBytes {
    pub f32: usize,
    pub f16: usize,
    pub bf16: usize,
    pub other: usize,
}

impl ParamBytes {
    /// Of every float parameter of `module`.
    pub fn of<M: burn::module::Module>(module: &M) -> Self {
        struct Visit(ParamBytes);
        impl burn::module::ModuleVisitor for Visit {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let t = param.val();
                let n = t.shape().num_elements();
                match t.dtype() {
                    DType::F32 => self.0.f32 += 4 * n,
                    DType::F16 => self.0.f16 += 2 * n,
                    DType::BF16 => self.0.bf16 += 2 * n,
                    d => self.0.other += d.size() * n,
                }
            }
        }
        let mut v = Visit(ParamBytes::default());
        module.visit(&mut v);
        v.0
    }

    pub fn total(&self) -> usize {
        self.f32 + self.f16 + self.bf16 + self.other
    }
}
