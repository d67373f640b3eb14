//! Training checkpoints: state dicts as `.pth` and safetensors, optimiser state, atomic writes.
//!
//! * [`StateTensor`]: one state-dict value (f32 / f64 / i64 / bf16 / f16 data and a shape;
//!   BatchNorm's `num_batches_tracked` is a 0-d i64).
//! * [`save_pth`] / [`save_pth_nested`]: PyTorch's zip serialization (what `torch.save`
//!   writes), readable by `torch.load(path, weights_only=True)` and by
//!   [`crate::weights::Checkpoint::open`]. The pickle (protocol 2) names nothing but
//!   `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the typed storage
//!   classes; storages are stored uncompressed, 64-byte aligned, as torch does, so
//!   `torch.load(..., mmap=True)` works too. Zip64 records are written when an entry or the
//!   archive passes 4 GiB.
//! * [`save_safetensors`] / [`load_safetensors`].
//! * [`write_atomic`]: every file here is written to a unique temporary file in the target's
//!   folder, synced, renamed over the target, and the folder synced; a failure part-way
//!   leaves the previous file untouched and removes the temporary file.
//! * [`TrainingState`]: what a resume needs, saved as `<run_dir>/checkpoints/step_<N>/`
//!   (`<model>.safetensors`, `<model>.pth`, `optimizer.safetensors`, then `state.json`
//!   last) with a `checkpoints/latest` pointer; [`load_latest`] finds the newest complete
//!   one.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use half::{bf16, f16};
use serde_json::{json, Value};

use crate::error::{Result, VtonError};
use crate::train::params::HostTensor;

// ---------------------------------------------------------------------------------------
// State tensors
// ---------------------------------------------------------------------------------------

/// The element type of a [`StateTensor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateDtype {
    F32,
    F64,
    I64,
    BF16,
    F16,
}

impl StateDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StateDtype::F32 => 4,
            StateDtype::F64 | StateDtype::I64 => 8,
            StateDtype::BF16 | StateDtype::F16 => 2,
        }
    }

    /// The storage class `torch.save` names for this dtype (`torch.<name>`).
    pub fn torch_storage(self) -> &'static str {
        match self {
            StateDtype::F32 => "FloatStorage",
            StateDtype::F64 => "DoubleStorage",
            StateDtype::I64 => "LongStorage",
            StateDtype::BF16 => "BFloat16Storage",
            StateDtype::F16 => "HalfStorage",
        }
    }

    fn safetensors(self) -> safetensors::Dtype {
        match self {
            StateDtype::F32 => safetensors::Dtype::F32,
            StateDtype::F64 => safetensors::Dtype::F64,
            StateDtype::I64 => safetensors::Dtype::I64,
            StateDtype::BF16 => safetensors::Dtype::BF16,
            StateDtype::F16 => safetensors::Dtype::F16,
        }
    }
}

/// The values of a [`StateTensor`], row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum StateData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    BF16(Vec<bf16>),
    F16(Vec<f16>),
}

impl StateData {
    fn len(&self) -> usize {
        match self {
            StateData::F32(v) => v.len(),
            StateData::F64(v) => v.len(),
            StateData::I64(v) => v.len(),
            StateData::BF16(v) => v.len(),
            StateData::F16(v) => v.len(),
        }
    }

    fn dtype(&self) -> StateDtype {
        match self {
            StateData::F32(_) => StateDtype::F32,
            StateData::F64(_) => StateDtype::F64,
            StateData::I64(_) => StateDtype::I64,
            StateData::BF16(_) => StateDtype::BF16,
            StateData::F16(_) => StateDtype::F16,
        }
    }
}

/// One state-dict value: a shape and row-major data of one dtype. A 0-d tensor has shape
/// `[]` and one element.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    shape: Vec<usize>,
    data: StateData,
}

fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

impl StateTensor {
    /// A tensor from a shape and data; the element count must match the shape.
    pub fn new(shape: Vec<usize>, data: StateData) -> Result<Self> {
        let n = numel(&shape).ok_or_else(|| VtonError::Shape {
            what: "state tensor".into(),
            expected: "a shape whose element count fits in usize".into(),
            actual: shape.clone(),
        })?;
        if n != data.len() {
            return Err(VtonError::Shape {
                what: "state tensor".into(),
                expected: format!("{} elements of data for the shape", data.len()),
                actual: shape,
            });
        }
        Ok(StateTensor { shape, data })
    }

    pub fn f32(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        Self::new(shape, StateData::F32(data))
    }

    pub fn f64(shape: Vec<usize>, data: Vec<f64>) -> Result<Self> {
        Self::new(shape, StateData::F64(data))
    }

    pub fn i64(shape: Vec<usize>, data: Vec<i64>) -> Result<Self> {
        Self::new(shape, StateData::I64(data))
    }

    pub fn bf16(shape: Vec<usize>, data: Vec<bf16>) -> Result<Self> {
        Self::new(shape, StateData::BF16(data))
    }

    pub fn f16(shape: Vec<usize>, data: Vec<f16>) -> Result<Self> {
        Self::new(shape, StateData::F16(data))
    }

    /// A 0-d int64 tensor (BatchNorm's `num_batches_tracked`).
    pub fn scalar_i64(v: i64) -> Self {
        StateTensor {
            shape: Vec::new(),
            data: StateData::I64(vec![v]),
        }
    }

    /// A 0-d f32 tensor.
    pub fn scalar_f32(v: f32) -> Self {
        StateTensor {
            shape: Vec::new(),
            data: StateData::F32(vec![v]),
        }
    }

    /// An f32 tensor from a [`HostTensor`] (PyTorch layout), checking its element count.
    pub fn from_host(h: &HostTensor) -> Result<Self> {
        Self::f32(h.shape.clone(), h.data.clone())
    }

    /// The values as f32 in a [`HostTensor`] (f64 and i64 are rounded to the nearest f32).
    pub fn to_host(&self) -> HostTensor {
        HostTensor::new(self.shape.clone(), self.to_f32_vec())
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn data(&self) -> &StateData {
        &self.data
    }

    pub fn into_data(self) -> StateData {
        self.data
    }

    pub fn dtype(&self) -> StateDtype {
        self.data.dtype()
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Bytes of the raw storage.
    pub fn byte_len(&self) -> usize {
        self.numel() * self.dtype().size()
    }

    /// The values converted to f32.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &self.data {
            StateData::F32(v) => v.clone(),
            StateData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            StateData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            StateData::BF16(v) => v.iter().map(|x| x.to_f32()).collect(),
            StateData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }

    /// The raw storage, little-endian.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.byte_len());
        self.for_each_le_chunk(|c| {
            out.extend_from_slice(c);
            Ok(())
        })
        .expect("writing to a Vec cannot fail");
        out
    }

    /// Calls `f` on consecutive chunks of the little-endian storage (at most 64 KiB each).
    fn for_each_le_chunk(
        &self,
        mut f: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        const CHUNK: usize = 1 << 16;
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK.min(self.byte_len()));
        macro_rules! emit {
            ($v:expr) => {{
                for x in $v.iter() {
                    buf.extend_from_slice(&x.to_le_bytes());
                    if buf.len() >= CHUNK {
                        f(&buf)?;
                        buf.clear();
                    }
                }
            }};
        }
        match &self.data {
            StateData::F32(v) => emit!(v),
            StateData::F64(v) => emit!(v),
            StateData::I64(v) => emit!(v),
            StateData::BF16(v) => emit!(v),
            StateData::F16(v) => emit!(v),
        }
        if !buf.is_empty() {
            f(&buf)?;
        }
        Ok(())
    }

    /// A tensor from little-endian storage bytes.
    pub fn from_le_bytes(dtype: StateDtype, shape: Vec<usize>, bytes: &[u8]) -> Result<Self> {
        let es = dtype.size();
        if !bytes.len().is_multiple_of(es) {
            return Err(VtonError::invalid(
                "bytes",
                format!(
                    "{} bytes is not a whole number of {dtype:?} elements",
                    bytes.len()
                ),
            ));
        }
        macro_rules! conv {
            ($t:ty, $n:literal) => {
                bytes
                    .chunks_exact($n)
                    .map(|c| {
                        let mut a = [0u8; $n];
                        a.copy_from_slice(c);
                        <$t>::from_le_bytes(a)
                    })
                    .collect()
            };
        }
        let data = match dtype {
            StateDtype::F32 => StateData::F32(conv!(f32, 4)),
            StateDtype::F64 => StateData::F64(conv!(f64, 8)),
            StateDtype::I64 => StateData::I64(conv!(i64, 8)),
            StateDtype::BF16 => StateData::BF16(conv!(bf16, 2)),
            StateDtype::F16 => StateData::F16(conv!(f16, 2)),
        };
        Self::new(shape, data)
    }
}

impl TryFrom<&HostTensor> for StateTensor {
    type Error = VtonError;
    fn try_from(h: &HostTensor) -> Result<Self> {
        Self::from_host(h)
    }
}

impl TryFrom<HostTensor> for StateTensor {
    type Error = VtonError;
    fn try_from(h: HostTensor) -> Result<Self> {
        Self::f32(h.shape, h.data)
    }
}

/// A whole state dict of [`HostTensor`]s as f32 [`StateTensor`]s.
pub fn state_dict_from_host(
    sd: &BTreeMap<String, HostTensor>,
) -> Result<BTreeMap<String, StateTensor>> {
    sd.iter()
        .map(|(k, h)| {
            StateTensor::from_host(h)
                .map(|t| (k.clone(), t))
                .map_err(|e| VtonError::invalid(k.clone(), e.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Atomic writes
// ---------------------------------------------------------------------------------------

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_err(path: &Path, e: std::io::Error) -> VtonError {
    VtonError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

fn split_target(path: &Path) -> Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| VtonError::invalid("path", format!("{} names no file", path.display())))?
        .to_string();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

/// Creates a new, uniquely named temporary file next to `path`.
fn create_temp(dir: &Path, name: &str) -> Result<(PathBuf, File)> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for _ in 0..64 {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}-{nanos}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err(&tmp, e)),
        }
    }
    Err(VtonError::invalid(
        "path",
        format!(
            "no free temporary name next to {}",
            dir.join(name).display()
        ),
    ))
}

/// Syncs a folder so a rename in it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The common tail of an atomic write: sync the temporary file, rename, sync the folder;
/// the temporary file is removed on any failure before the rename.
fn atomic_finish(tmp: &Path, path: &Path, dir: &Path, written: Result<()>) -> Result<()> {
    let result = written.and_then(|()| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(tmp)
            .map_err(|e| io_err(tmp, e))?;
        f.sync_all().map_err(|e| io_err(tmp, e))?;
        drop(f);
        std::fs::rename(tmp, path).map_err(|e| io_err(path, e))
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Writes `path` atomically: `write` fills a buffered temporary file in the same folder,
/// which is then synced and renamed over `path`, and the folder synced. If `write` fails
/// (or anything else does), `path` keeps its previous content and the temporary file is
/// removed.
pub fn write_atomic(
    path: impl AsRef<Path>,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let path = path.as_ref();
    let (dir, name) = split_target(path)?;
    let (tmp, file) = create_temp(&dir, &name)?;
    let written = (|| {
        let mut w = BufWriter::with_capacity(1 << 20, file);
        write(&mut w)?;
        w.flush().map_err(|e| io_err(&tmp, e))?;
        Ok(())
    })();
    atomic_finish(&tmp, path, &dir, written)
}

/// [`write_atomic`] for a writer that wants a path: `write` gets the temporary file's path
/// (the file exists, empty) and must leave the complete content there.
fn write_atomic_path(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let (dir, name) = split_target(path)?;
    let (tmp, file) = create_temp(&dir, &name)?;
    drop(file);
    let written = write(&tmp);
    atomic_finish(&tmp, path, &dir, written)
}

// ---------------------------------------------------------------------------------------
// Zip (stored) writer
// ---------------------------------------------------------------------------------------

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 (IEEE 802.3, the zip checksum), continued from `crc` (start with 0).
pub fn crc32_update(crc: u32, bytes: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in bytes {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// Storage alignment of `torch.save` (`.storage_alignment`).
const ALIGN: u64 = 64;
const U32_MAX: u64 = 0xFFFF_FFFF;

struct CentralEntry {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
}

/// A zip archive of stored entries, each 64-byte aligned (padding in an extra field, as
/// PyTorch's writer does), with zip64 records where sizes or offsets need them.
struct ZipWriter<'w> {
    w: &'w mut dyn Write,
    pos: u64,
    entries: Vec<CentralEntry>,
    force_zip64: bool,
}

impl<'w> ZipWriter<'w> {
    fn new(w: &'w mut dyn Write, force_zip64: bool) -> Self {
        ZipWriter {
            w,
            pos: 0,
            entries: Vec::new(),
            force_zip64,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.w.write_all(bytes)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Writes one entry of `size` bytes with checksum `crc`; `body` writes the bytes.
    fn entry(
        &mut self,
        name: &str,
        size: u64,
        crc: u32,
        body: impl FnOnce(&mut Self) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let offset = self.pos;
        let zip64 = self.force_zip64 || size >= U32_MAX;
        let mut extra = Vec::new();
        if zip64 {
            extra.extend_from_slice(&1u16.to_le_bytes());
            extra.extend_from_slice(&16u16.to_le_bytes());
            extra.extend_from_slice(&size.to_le_bytes());
            extra.extend_from_slice(&size.to_le_bytes());
        }
        // Padding extra field ("FB", as torch writes it) so the data starts aligned.
        let before = offset + 30 + name.len() as u64 + extra.len() as u64 + 4;
        let pad = ((ALIGN - before % ALIGN) % ALIGN) as usize;
        extra.extend_from_slice(b"FB");
        extra.extend_from_slice(&(pad as u16).to_le_bytes());
        extra.extend(std::iter::repeat_n(b'Z', pad));

        let small = if zip64 { U32_MAX as u32 } else { size as u32 };
        let mut h = Vec::with_capacity(30 + name.len() + extra.len());
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&(if zip64 { 45u16 } else { 20u16 }).to_le_bytes());
        h.extend_from_slice(&0x0800u16.to_le_bytes()); // UTF-8 names
        h.extend_from_slice(&0u16.to_le_bytes()); // stored
        h.extend_from_slice(&0u16.to_le_bytes()); // time
        h.extend_from_slice(&0x0021u16.to_le_bytes()); // date 1980-01-01
        h.extend_from_slice(&crc.to_le_bytes());
        h.extend_from_slice(&small.to_le_bytes());
        h.extend_from_slice(&small.to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(&extra);
        self.put(&h)?;
        debug_assert_eq!(self.pos % ALIGN, 0);
        let start = self.pos;
        body(self)?;
        if self.pos - start != size {
            return Err(std::io::Error::other(format!(
                "zip entry {name}: wrote {} bytes, declared {size}",
                self.pos - start
            )));
        }
        self.entries.push(CentralEntry {
            name: name.to_string(),
            crc,
            size,
            offset,
        });
        Ok(())
    }

    fn bytes_entry(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let crc = crc32_update(0, bytes);
        self.entry(name, bytes.len() as u64, crc, |z| z.put(bytes))
    }

    fn finish(mut self) -> std::io::Result<()> {
        let cd_start = self.pos;
        let entries = std::mem::take(&mut self.entries);
        for e in &entries {
            let big_size = self.force_zip64 || e.size >= U32_MAX;
            let big_off = self.force_zip64 || e.offset >= U32_MAX;
            let mut extra = Vec::new();
            if big_size || big_off {
                let mut body = Vec::new();
                if big_size {
                    body.extend_from_slice(&e.size.to_le_bytes());
                    body.extend_from_slice(&e.size.to_le_bytes());
                }
                if big_off {
                    body.extend_from_slice(&e.offset.to_le_bytes());
                }
                extra.extend_from_slice(&1u16.to_le_bytes());
                extra.extend_from_slice(&(body.len() as u16).to_le_bytes());
                extra.extend_from_slice(&body);
            }
            let zip64 = !extra.is_empty();
            let size32 = if big_size {
                U32_MAX as u32
            } else {
                e.size as u32
            };
            let off32 = if big_off {
                U32_MAX as u32
            } else {
                e.offset as u32
            };
            let version: u16 = if zip64 { 45 } else { 20 };
            let mut h = Vec::with_capacity(46 + e.name.len() + extra.len());
            h.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            h.extend_from_slice(&version.to_le_bytes()); // made by
            h.extend_from_slice(&version.to_le_bytes()); // needed
            h.extend_from_slice(&0x0800u16.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes());
            h.extend_from_slice(&0x0021u16.to_le_bytes());
            h.extend_from_slice(&e.crc.to_le_bytes());
            h.extend_from_slice(&size32.to_le_bytes());
            h.extend_from_slice(&size32.to_le_bytes());
            h.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            h.extend_from_slice(&(extra.len() as u16).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // comment
            h.extend_from_slice(&0u16.to_le_bytes()); // disk
            h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
            h.extend_from_slice(&off32.to_le_bytes());
            h.extend_from_slice(e.name.as_bytes());
            h.extend_from_slice(&extra);
            self.put(&h)?;
        }
        let cd_size = self.pos - cd_start;
        let n = entries.len() as u64;
        let zip64 = self.force_zip64 || n >= 0xFFFF || cd_start >= U32_MAX || cd_size >= U32_MAX;
        if zip64 {
            let eocd64 = self.pos;
            let mut r = Vec::with_capacity(56 + 20);
            r.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
            r.extend_from_slice(&44u64.to_le_bytes());
            r.extend_from_slice(&45u16.to_le_bytes());
            r.extend_from_slice(&45u16.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&n.to_le_bytes());
            r.extend_from_slice(&n.to_le_bytes());
            r.extend_from_slice(&cd_size.to_le_bytes());
            r.extend_from_slice(&cd_start.to_le_bytes());
            // Locator.
            r.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
            r.extend_from_slice(&0u32.to_le_bytes());
            r.extend_from_slice(&eocd64.to_le_bytes());
            r.extend_from_slice(&1u32.to_le_bytes());
            self.put(&r)?;
        }
        let mut r = Vec::with_capacity(22);
        r.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        r.extend_from_slice(&0u16.to_le_bytes());
        r.extend_from_slice(&0u16.to_le_bytes());
        let n16 = if zip64 { 0xFFFF } else { n as u16 };
        r.extend_from_slice(&n16.to_le_bytes());
        r.extend_from_slice(&n16.to_le_bytes());
        let (size32, off32) = if zip64 {
            (U32_MAX as u32, U32_MAX as u32)
        } else {
            (cd_size as u32, cd_start as u32)
        };
        r.extend_from_slice(&size32.to_le_bytes());
        r.extend_from_slice(&off32.to_le_bytes());
        r.extend_from_slice(&0u16.to_le_bytes());
        self.put(&r)?;
        self.w.flush()
    }
}

// ---------------------------------------------------------------------------------------
// Pickle (protocol 2) writer
// ---------------------------------------------------------------------------------------

/// A dictionary key in a [`PthValue::Dict`] (torch optimiser state dicts use int keys).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum PthKey {
    Int(i64),
    Str(String),
}

impl From<&str> for PthKey {
    fn from(s: &str) -> Self {
        PthKey::Str(s.to_string())
    }
}

impl From<String> for PthKey {
    fn from(s: String) -> Self {
        PthKey::Str(s)
    }
}

impl From<i64> for PthKey {
    fn from(i: i64) -> Self {
        PthKey::Int(i)
    }
}

/// A value of a nested `.pth` file ([`save_pth_nested`]): what `torch.load(...,
/// weights_only=True)` accepts, without code.
#[derive(Debug, Clone, PartialEq)]
pub enum PthValue {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Tensor(StateTensor),
    /// A state dict, pickled as an `OrderedDict` as `module.state_dict()` is.
    StateDict(BTreeMap<String, StateTensor>),
    /// A plain `dict`.
    Dict(BTreeMap<PthKey, PthValue>),
    List(Vec<PthValue>),
}

mod op {
    pub const PROTO: u8 = 0x80;
    pub const STOP: u8 = b'.';
    pub const GLOBAL: u8 = b'c';
    pub const MARK: u8 = b'(';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const REDUCE: u8 = b'R';
    pub const BINPERSID: u8 = b'Q';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const LONG1: u8 = 0x8a;
    pub const BINFLOAT: u8 = b'G';
    pub const BINUNICODE: u8 = b'X';
    pub const NONE: u8 = b'N';
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const EMPTY_DICT: u8 = b'}';
    pub const SETITEMS: u8 = b'u';
    pub const EMPTY_LIST: u8 = b']';
    pub const APPENDS: u8 = b'e';
}

/// Python's pickler batches SETITEMS / APPENDS by this many.
const BATCH: usize = 1000;

struct Pickler<'a> {
    out: Vec<u8>,
    /// Storages in key order ("0", "1", ...).
    storages: Vec<&'a StateTensor>,
}

impl<'a> Pickler<'a> {
    fn new() -> Self {
        Pickler {
            out: vec![op::PROTO, 2],
            storages: Vec::new(),
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(op::GLOBAL);
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
    }

    fn int(&mut self, v: i64) {
        if (0..=0xFF).contains(&v) {
            self.out.push(op::BININT1);
            self.out.push(v as u8);
        } else if (0..=0xFFFF).contains(&v) {
            self.out.push(op::BININT2);
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
            self.out.push(op::BININT);
            self.out.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            // Minimal two's-complement little-endian bytes.
            let mut b = v.to_le_bytes().to_vec();
            while b.len() > 1 {
                let last = b[b.len() - 1];
                let prev_sign = b[b.len() - 2] & 0x80;
                if (last == 0 && prev_sign == 0) || (last == 0xFF && prev_sign != 0) {
                    b.pop();
                } else {
                    break;
                }
            }
            self.out.push(op::LONG1);
            self.out.push(b.len() as u8);
            self.out.extend_from_slice(&b);
        }
    }

    fn usize(&mut self, v: usize) -> Result<()> {
        let v = i64::try_from(v).map_err(|_| VtonError::invalid("size", "exceeds i64"))?;
        self.int(v);
        Ok(())
    }

    fn float(&mut self, v: f64) {
        self.out.push(op::BINFLOAT);
        self.out.extend_from_slice(&v.to_be_bytes());
    }

    fn str(&mut self, s: &str) {
        self.out.push(op::BINUNICODE);
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    /// A tuple of ints as Python pickles it.
    fn int_tuple(&mut self, vals: &[usize]) -> Result<()> {
        if vals.len() > 3 {
            self.out.push(op::MARK);
        }
        for &v in vals {
            self.usize(v)?;
        }
        self.out.push(match vals.len() {
            0 => op::EMPTY_TUPLE,
            1 => op::TUPLE1,
            2 => op::TUPLE2,
            3 => op::TUPLE3,
            _ => op::TUPLE,
        });
        Ok(())
    }

    fn ordered_dict_new(&mut self) {
        self.global("collections", "OrderedDict");
        self.out.push(op::EMPTY_TUPLE);
        self.out.push(op::REDUCE);
    }

    /// `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`
    /// with a persistent-id storage `('storage', torch.XStorage, key, 'cpu', numel)`.
    fn tensor(&mut self, t: &'a StateTensor) -> Result<()> {
        let key = self.storages.len().to_string();
        self.storages.push(t);
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.out.push(op::MARK);
        self.out.push(op::MARK);
        self.str("storage");
        self.global("torch", t.dtype().torch_storage());
        self.str(&key);
        self.str("cpu");
        self.usize(t.numel())?;
        self.out.push(op::TUPLE);
        self.out.push(op::BINPERSID);
        self.int(0);
        self.int_tuple(&t.shape)?;
        // Contiguous strides (torch counts a 0-sized dimension as 1 here).
        let mut stride = vec![1usize; t.shape.len()];
        for i in (0..t.shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * t.shape[i + 1].max(1);
        }
        self.int_tuple(&stride)?;
        self.out.push(op::NEWFALSE);
        self.ordered_dict_new();
        self.out.push(op::TUPLE);
        self.out.push(op::REDUCE);
        Ok(())
    }

    fn items<K, V>(
        &mut self,
        items: impl Iterator<Item = (K, V)>,
        mut write: impl FnMut(&mut Self, K, V) -> Result<()>,
    ) -> Result<()> {
        let mut items = items.peekable();
        while items.peek().is_some() {
            self.out.push(op::MARK);
            for (k, v) in items.by_ref().take(BATCH) {
                write(self, k, v)?;
            }
            self.out.push(op::SETITEMS);
        }
        Ok(())
    }

    fn state_dict(&mut self, sd: &'a BTreeMap<String, StateTensor>) -> Result<()> {
        self.ordered_dict_new();
        self.items(sd.iter(), |p, k, t| {
            p.str(k);
            p.tensor(t)
        })
    }

    /// A plain `dict` with string keys.
    fn top_dict(&mut self, top: &'a BTreeMap<String, PthValue>) -> Result<()> {
        self.out.push(op::EMPTY_DICT);
        self.items(top.iter(), |p, k, v| {
            p.str(k);
            p.value(v)
        })
    }

    fn value(&mut self, v: &'a PthValue) -> Result<()> {
        match v {
            PthValue::None => self.out.push(op::NONE),
            PthValue::Bool(b) => self.out.push(if *b { op::NEWTRUE } else { op::NEWFALSE }),
            PthValue::Int(i) => self.int(*i),
            PthValue::Float(f) => self.float(*f),
            PthValue::Str(s) => self.str(s),
            PthValue::Tensor(t) => self.tensor(t)?,
            PthValue::StateDict(sd) => self.state_dict(sd)?,
            PthValue::Dict(d) => {
                self.out.push(op::EMPTY_DICT);
                self.items(d.iter(), |p, k, v| {
                    match k {
                        PthKey::Int(i) => p.int(*i),
                        PthKey::Str(s) => p.str(s),
                    }
                    p.value(v)
                })?;
            }
            PthValue::List(items) => {
                self.out.push(op::EMPTY_LIST);
                let mut it = items.iter().peekable();
                while it.peek().is_some() {
                    self.out.push(op::MARK);
                    for v in it.by_ref().take(BATCH) {
                        self.value(v)?;
                    }
                    self.out.push(op::APPENDS);
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) -> (Vec<u8>, Vec<&'a StateTensor>) {
        self.out.push(op::STOP);
        (self.out, self.storages)
    }
}

/// The archive's root folder: the file name without its extension, as `torch.save` does.
fn archive_root(path: &Path) -> String {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>();
    if stem.is_empty() {
        "archive".to_string()
    } else {
        stem
    }
}

fn write_pth_archive(
    w: &mut dyn Write,
    root: &str,
    pickle: &[u8],
    storages: &[&StateTensor],
    force_zip64: bool,
) -> std::io::Result<()> {
    let mut z = ZipWriter::new(w, force_zip64);
    z.bytes_entry(&format!("{root}/data.pkl"), pickle)?;
    z.bytes_entry(&format!("{root}/.format_version"), b"1")?;
    z.bytes_entry(&format!("{root}/.storage_alignment"), b"64")?;
    z.bytes_entry(&format!("{root}/byteorder"), b"little")?;
    for (i, t) in storages.iter().enumerate() {
        let mut crc = 0u32;
        t.for_each_le_chunk(|c| {
            crc = crc32_update(crc, c);
            Ok(())
        })?;
        z.entry(&format!("{root}/data/{i}"), t.byte_len() as u64, crc, |z| {
            t.for_each_le_chunk(|c| z.put(c))
        })?;
    }
    z.bytes_entry(&format!("{root}/version"), b"3\n")?;
    z.finish()
}

fn save_pth_impl<'a>(
    path: &Path,
    force_zip64: bool,
    top: impl FnOnce(&mut Pickler<'a>) -> Result<()>,
) -> Result<()> {
    let mut p = Pickler::new();
    top(&mut p)?;
    let (pickle, storages) = p.finish();
    let root = archive_root(path);
    write_atomic(path, |w| {
        write_pth_archive(w, &root, &pickle, &storages, force_zip64).map_err(|e| io_err(path, e))
    })
}

/// Writes a state dict as `torch.save(OrderedDict(...), path)` would (atomically).
pub fn save_pth(path: impl AsRef<Path>, state_dict: &BTreeMap<String, StateTensor>) -> Result<()> {
    save_pth_impl(path.as_ref(), false, |p| p.state_dict(state_dict))
}

/// Writes a nested `.pth` (`{"model": state_dict, "optimizer": {...}, "step": 123}`): the
/// top level is a plain `dict` of [`PthValue`]s (atomically).
pub fn save_pth_nested(path: impl AsRef<Path>, top: &BTreeMap<String, PthValue>) -> Result<()> {
    save_pth_impl(path.as_ref(), false, |p| p.top_dict(top))
}

/// [`save_pth_nested`] writing zip64 records for every entry even when nothing needs them
/// (to check readers' zip64 handling without a 4 GiB file).
#[doc(hidden)]
pub fn save_pth_nested_forcing_zip64(
    path: impl AsRef<Path>,
    top: &BTreeMap<String, PthValue>,
) -> Result<()> {
    save_pth_impl(path.as_ref(), true, |p| p.top_dict(top))
}

// ---------------------------------------------------------------------------------------
// safetensors
// ---------------------------------------------------------------------------------------

struct StView<'a>(&'a StateTensor);

impl safetensors::View for StView<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        self.0.dtype().safetensors()
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Owned(self.0.to_le_bytes())
    }
    fn data_len(&self) -> usize {
        self.0.byte_len()
    }
}

/// Writes tensors and string metadata as safetensors (atomically).
pub fn save_safetensors(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, StateTensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let refs = tensors.iter().map(|(k, t)| (k.clone(), t)).collect();
    write_safetensors(path.as_ref(), refs, metadata)
}

fn write_safetensors(
    path: &Path,
    tensors: Vec<(String, &StateTensor)>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let info: Option<HashMap<String, String>> = if metadata.is_empty() {
        None
    } else {
        Some(
            metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    write_atomic_path(path, |tmp| {
        safetensors::serialize_to_file(tensors.into_iter().map(|(k, t)| (k, StView(t))), info, tmp)
            .map_err(|e| VtonError::Checkpoint {
                path: path.to_path_buf(),
                message: format!("writing safetensors: {e}"),
            })
    })
}

/// Reads every tensor (f32 / f64 / i64 / bf16 / f16) and the metadata of a safetensors file.
pub fn load_safetensors(
    path: impl AsRef<Path>,
) -> Result<(BTreeMap<String, StateTensor>, BTreeMap<String, String>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| VtonError::io(path, e))?;
    load_safetensors_bytes(path, &bytes)
}

/// [`load_safetensors`] of a file's bytes held in memory; `path` names it in messages.
/// Every tensor's extent is checked against `bytes` before it is copied, so nothing is
/// allocated beyond the input's size.
pub fn load_safetensors_bytes(
    path: impl AsRef<Path>,
    bytes: &[u8],
) -> Result<(BTreeMap<String, StateTensor>, BTreeMap<String, String>)> {
    let path = path.as_ref();
    let bad = |m: String| VtonError::Checkpoint {
        path: path.to_path_buf(),
        message: m,
    };
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => StateDtype::F32,
            safetensors::Dtype::F64 => StateDtype::F64,
            safetensors::Dtype::I64 => StateDtype::I64,
            safetensors::Dtype::BF16 => StateDtype::BF16,
            safetensors::Dtype::F16 => StateDtype::F16,
            other => return Err(bad(format!("{name}: unsupported dtype {other:?}"))),
        };
        let t = StateTensor::from_le_bytes(dtype, view.shape().to_vec(), view.data())
            .map_err(|e| bad(format!("{name}: {e}")))?;
        out.insert(name.to_string(), t);
    }
    let metadata = meta
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok((out, metadata))
}

// ---------------------------------------------------------------------------------------
// Training state
// ---------------------------------------------------------------------------------------

/// Adam's per-parameter state (PyTorch's `exp_avg`, `exp_avg_sq`, `step`), PyTorch layout.
#[derive(Debug, Clone, PartialEq)]
pub struct MomentState {
    pub exp_avg: StateTensor,
    pub exp_avg_sq: StateTensor,
    pub step: u64,
}

/// One optimiser: per-key moments and its configuration (free-form JSON).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimizerState {
    pub state: BTreeMap<String, MomentState>,
    pub config: Value,
}

/// Everything a resume needs. Trainers map their state into it; nothing here knows a model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingState {
    /// Optimiser steps taken.
    pub global_step: u64,
    /// State dicts under their original keys, by model name (`"model"`, or `"tocg"` and
    /// `"generator"`, ...); each is saved as `<name>.safetensors` and `<name>.pth`.
    pub models: BTreeMap<String, BTreeMap<String, StateTensor>>,
    /// Optimisers by name (`"adam"`, or `"g"` and `"d"` for a GAN).
    pub optimizers: BTreeMap<String, OptimizerState>,
    /// The learning-rate schedule's position (the step its `lr` is evaluated at).
    pub lr_step: u64,
    /// Random generators' states as u64 words, by name.
    pub rng: BTreeMap<String, Vec<u64>>,
    /// The run's options.
    pub options: Value,
    /// Anything else the trainer wants back (epoch, data-loader position, ...).
    pub extra: Value,
}

/// How [`TrainingState::save_with`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaveOptions {
    /// Also write each model as `<name>.pth` (default true).
    pub pth: bool,
    /// Keep only this many newest complete checkpoints (default: keep all).
    pub keep_last: Option<usize>,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            pth: true,
            keep_last: None,
        }
    }
}

const STATE_FORMAT: &str = "vton-training-state";
const STATE_VERSION: u64 = 1;
const STATE_FILE: &str = "state.json";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// `<run_dir>/checkpoints`.
pub fn checkpoints_dir(run_dir: impl AsRef<Path>) -> PathBuf {
    run_dir.as_ref().join("checkpoints")
}

/// `<run_dir>/checkpoints/step_<step>`.
pub fn step_dir(run_dir: impl AsRef<Path>, step: u64) -> PathBuf {
    checkpoints_dir(run_dir).join(format!("step_{step}"))
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && name != "optimizer"
        && name != "state";
    if ok {
        Ok(())
    } else {
        Err(VtonError::invalid(
            what,
            format!(
                "{name:?}: names must be non-empty [A-Za-z0-9_-] and not \"optimizer\" or \"state\""
            ),
        ))
    }
}

/// A file `state.json` names must be a plain name in the checkpoint folder.
fn check_file_name(state_path: &Path, field: &str, name: &str) -> Result<()> {
    let mut parts = Path::new(name).components();
    let plain = matches!(parts.next(), Some(std::path::Component::Normal(_)))
        && parts.next().is_none()
        && !name.contains(['/', '\\', '\0']);
    if plain {
        Ok(())
    } else {
        Err(json_err(
            state_path,
            format!("{field}: {name:?} is not a file name in the checkpoint folder"),
        ))
    }
}

fn json_err(path: &Path, m: impl std::fmt::Display) -> VtonError {
    VtonError::Json {
        what: path.display().to_string(),
        message: m.to_string(),
    }
}

fn file_len(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| VtonError::io(path, e))
}

impl TrainingState {
    /// Saves as `<run_dir>/checkpoints/step_<global_step>/` and points `latest` at it.
    /// Returns the checkpoint folder.
    pub fn save(&self, run_dir: impl AsRef<Path>) -> Result<PathBuf> {
        self.save_with(run_dir, &SaveOptions::default())
    }

    /// [`TrainingState::save`] with options. The tensor files are written first, each
    /// atomically, then `state.json` (which lists them with their sizes), then `latest`.
    /// Re-saving a step first removes its `state.json`, so the folder counts as
    /// incomplete until the new one is in place.
    pub fn save_with(&self, run_dir: impl AsRef<Path>, opts: &SaveOptions) -> Result<PathBuf> {
        let run_dir = run_dir.as_ref();
        for name in self.models.keys() {
            check_name("model name", name)?;
        }
        for name in self.optimizers.keys() {
            check_name("optimizer name", name)?;
        }
        let root = checkpoints_dir(run_dir);
        let dir = step_dir(run_dir, self.global_step);
        std::fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
        sync_dir(&root)?;
        let state_path = dir.join(STATE_FILE);
        match std::fs::remove_file(&state_path) {
            Ok(()) => sync_dir(&dir)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&state_path, e)),
        }

        let mut files = serde_json::Map::new();
        let mut models = serde_json::Map::new();
        for (name, sd) in &self.models {
            let st = format!("{name}.safetensors");
            let mut meta = BTreeMap::new();
            meta.insert("format".to_string(), "pt".to_string());
            save_safetensors(dir.join(&st), sd, &meta)?;
            files.insert(st.clone(), json!(file_len(&dir.join(&st))?));
            let mut entry = json!({ "safetensors": st, "tensors": sd.len() });
            if opts.pth {
                let pth = format!("{name}.pth");
                save_pth(dir.join(&pth), sd)?;
                files.insert(pth.clone(), json!(file_len(&dir.join(&pth))?));
                entry["pth"] = json!(pth);
            }
            models.insert(name.clone(), entry);
        }

        let mut opt_tensors: Vec<(String, &StateTensor)> = Vec::new();
        let mut optimizers = serde_json::Map::new();
        for (name, o) in &self.optimizers {
            let mut steps = serde_json::Map::new();
            for (key, m) in &o.state {
                opt_tensors.push((format!("{name}/exp_avg/{key}"), &m.exp_avg));
                opt_tensors.push((format!("{name}/exp_avg_sq/{key}"), &m.exp_avg_sq));
                steps.insert(key.clone(), json!(m.step));
            }
            optimizers.insert(name.clone(), json!({ "config": o.config, "step": steps }));
        }
        write_safetensors(&dir.join(OPTIMIZER_FILE), opt_tensors, &BTreeMap::new())?;
        files.insert(
            OPTIMIZER_FILE.to_string(),
            json!(file_len(&dir.join(OPTIMIZER_FILE))?),
        );

        let state = json!({
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "global_step": self.global_step,
            "lr_step": self.lr_step,
            "rng": self.rng,
            "options": self.options,
            "extra": self.extra,
            "models": models,
            "optimizers": optimizers,
            "files": files,
        });
        let text = serde_json::to_string_pretty(&state).map_err(|e| json_err(&state_path, e))?;
        write_atomic(&state_path, |w| {
            w.write_all(text.as_bytes())
                .map_err(|e| io_err(&state_path, e))
        })?;

        let latest = root.join("latest");
        let pointer = format!("step_{}\n", self.global_step);
        write_atomic(&latest, |w| {
            w.write_all(pointer.as_bytes())
                .map_err(|e| io_err(&latest, e))
        })?;

        if let Some(keep) = opts.keep_last {
            let complete = complete_checkpoints(run_dir)?;
            let n = complete.len();
            for (step, old) in complete.into_iter().take(n.saturating_sub(keep.max(1))) {
                if step != self.global_step {
                    std::fs::remove_dir_all(&old).map_err(|e| io_err(&old, e))?;
                }
            }
            sync_dir(&root)?;
        }
        Ok(dir)
    }

    /// Loads a checkpoint folder written by [`TrainingState::save`].
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let state_path = dir.join(STATE_FILE);
        let text = std::fs::read(&state_path).map_err(|e| VtonError::io(&state_path, e))?;
        Self::from_bytes(dir, &text, |name| {
            let p = dir.join(name);
            std::fs::read(&p).map_err(|e| VtonError::io(&p, e))
        })
    }

    /// [`TrainingState::load`] of files held in memory: the bytes of `state.json`, and
    /// `file`, which returns the bytes of a file of the folder by name
    /// (`optimizer.safetensors` and the `<model>.safetensors` that `state.json` lists;
    /// each name is checked to be a plain file name first, so a crafted `state.json`
    /// cannot reach outside the folder). `dir` names the folder in messages.
    pub fn from_bytes(
        dir: impl AsRef<Path>,
        state_json: &[u8],
        mut file: impl FnMut(&str) -> Result<Vec<u8>>,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let state_path = dir.join(STATE_FILE);
        let v: Value = serde_json::from_slice(state_json).map_err(|e| json_err(&state_path, e))?;
        if v.get("format").and_then(Value::as_str) != Some(STATE_FORMAT) {
            return Err(json_err(&state_path, format!("not a {STATE_FORMAT} file")));
        }
        let version = v.get("version").and_then(Value::as_u64);
        if version != Some(STATE_VERSION) {
            return Err(json_err(
                &state_path,
                format!("version {version:?}, this reader knows {STATE_VERSION}"),
            ));
        }
        let u64_field = |name: &str| {
            v.get(name).and_then(Value::as_u64).ok_or_else(|| {
                json_err(&state_path, format!("{name}: expected an unsigned integer"))
            })
        };
        let global_step = u64_field("global_step")?;
        let lr_step = u64_field("lr_step")?;
        let rng: BTreeMap<String, Vec<u64>> =
            serde_json::from_value(v.get("rng").cloned().unwrap_or(json!({})))
                .map_err(|e| json_err(&state_path, format!("rng: {e}")))?;

        let mut models = BTreeMap::new();
        if let Some(m) = v.get("models").and_then(Value::as_object) {
            for (name, entry) in m {
                check_name("model name", name)?;
                let fname = entry
                    .get("safetensors")
                    .and_then(Value::as_str)
                    .ok_or_else(|| json_err(&state_path, format!("models.{name}: no file")))?;
                check_file_name(&state_path, &format!("models.{name}.safetensors"), fname)?;
                let (sd, _) = load_safetensors_bytes(dir.join(fname), &file(fname)?)?;
                models.insert(name.clone(), sd);
            }
        }

        let (mut opt_tensors, _) =
            load_safetensors_bytes(dir.join(OPTIMIZER_FILE), &file(OPTIMIZER_FILE)?)?;
        let mut optimizers = BTreeMap::new();
        if let Some(o) = v.get("optimizers").and_then(Value::as_object) {
            for (name, entry) in o {
                let mut state = BTreeMap::new();
                if let Some(steps) = entry.get("step").and_then(Value::as_object) {
                    for (key, step) in steps {
                        let step = step.as_u64().ok_or_else(|| {
                            json_err(&state_path, format!("optimizers.{name}.step.{key}"))
                        })?;
                        let mut take = |what: &str| {
                            let k = format!("{name}/{what}/{key}");
                            opt_tensors
                                .remove(&k)
                                .ok_or_else(|| VtonError::MissingWeights {
                                    source_name: dir.join(OPTIMIZER_FILE).display().to_string(),
                                    count: 1,
                                    keys: k,
                                })
                        };
                        let exp_avg = take("exp_avg")?;
                        let exp_avg_sq = take("exp_avg_sq")?;
                        state.insert(
                            key.clone(),
                            MomentState {
                                exp_avg,
                                exp_avg_sq,
                                step,
                            },
                        );
                    }
                }
                optimizers.insert(
                    name.clone(),
                    OptimizerState {
                        state,
                        config: entry.get("config").cloned().unwrap_or(Value::Null),
                    },
                );
            }
        }
        Ok(TrainingState {
            global_step,
            models,
            optimizers,
            lr_step,
            rng,
            options: v.get("options").cloned().unwrap_or(Value::Null),
            extra: v.get("extra").cloned().unwrap_or(Value::Null),
        })
    }
}

/// Whether a checkpoint folder is complete: its `state.json` is in place and every file it
/// lists exists with the recorded size.
pub fn is_complete(dir: impl AsRef<Path>) -> bool {
    let dir = dir.as_ref();
    let Ok(text) = std::fs::read_to_string(dir.join(STATE_FILE)) else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return false;
    };
    let Some(files) = v.get("files").and_then(Value::as_object) else {
        return false;
    };
    files.iter().all(|(name, size)| {
        !name.contains('/')
            && !name.contains("..")
            && std::fs::metadata(dir.join(name))
                .map(|m| Some(m.len()) == size.as_u64())
                .unwrap_or(false)
    })
}

/// The complete checkpoints of a run, `(step, folder)`, oldest first.
pub fn complete_checkpoints(run_dir: impl AsRef<Path>) -> Result<Vec<(u64, PathBuf)>> {
    let root = checkpoints_dir(run_dir);
    let rd = match std::fs::read_dir(&root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(&root, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| io_err(&root, e))?;
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix("step_"))
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        let path = entry.path();
        if path.is_dir() && is_complete(&path) {
            out.push((step, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The folder `checkpoints/latest` names, if the pointer exists.
pub fn latest_pointer(run_dir: impl AsRef<Path>) -> Result<Option<PathBuf>> {
    let root = checkpoints_dir(run_dir);
    let p = root.join("latest");
    match std::fs::read_to_string(&p) {
        Ok(s) => Ok(Some(root.join(s.trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&p, e)),
    }
}

/// A checkpoint found by [`load_latest`].
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedCheckpoint {
    pub dir: PathBuf,
    pub state: TrainingState,
}

/// Loads the newest complete checkpoint of a run (highest step among the folders whose
/// `state.json` is in place and whose files match it), or `None` when there is none.
/// Folders left incomplete by a crash are skipped; the `latest` pointer is not needed
/// (a crash between `state.json` and `latest` leaves it one checkpoint behind).
pub fn load_latest(run_dir: impl AsRef<Path>) -> Result<Option<LoadedCheckpoint>> {
    let Some((_, dir)) = complete_checkpoints(run_dir)?.pop() else {
        return Ok(None);
    };
    let state = TrainingState::load(&dir)?;
    Ok(Some(LoadedCheckpoint { dir, state }))
}
