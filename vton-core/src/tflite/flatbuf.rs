//! A minimal, bounds-checked FlatBuffers reader (tables, vtables, vectors, strings,
//! unions): just what the TFLite schema needs.
//!
//! Every offset read from the file is checked against the buffer before it is used, so
//! a truncated or hostile file gives a [`VtonError::TfliteFormat`] instead of a panic or
//! an out-of-bounds read. Reads never recurse on file-controlled data.

use crate::error::{Result, VtonError};

fn bad(message: impl Into<String>) -> VtonError {
    VtonError::TfliteFormat {
        message: message.into(),
    }
}

fn read_bytes<const N: usize>(buf: &[u8], pos: usize, what: &str) -> Result<[u8; N]> {
    let end = pos
        .checked_add(N)
        .ok_or_else(|| bad(format!("{what}: offset overflow")))?;
    let slice = buf.get(pos..end).ok_or_else(|| {
        bad(format!(
            "{what}: offset {pos} + {N} is past the end of the file ({} bytes)",
            buf.len()
        ))
    })?;
    let mut out = [0u8; N];
    out.copy_from_slice(slice);
    Ok(out)
}

pub(crate) fn read_u32(buf: &[u8], pos: usize, what: &str) -> Result<u32> {
    read_bytes::<4>(buf, pos, what).map(u32::from_le_bytes)
}

fn read_u16(buf: &[u8], pos: usize, what: &str) -> Result<u16> {
    read_bytes::<2>(buf, pos, what).map(u16::from_le_bytes)
}

fn read_i32(buf: &[u8], pos: usize, what: &str) -> Result<i32> {
    read_bytes::<4>(buf, pos, what).map(i32::from_le_bytes)
}

/// Follows a `uoffset` (unsigned, relative to its own position).
fn follow(buf: &[u8], pos: usize, what: &str) -> Result<usize> {
    let rel = read_u32(buf, pos, what)? as usize;
    let target = pos
        .checked_add(rel)
        .ok_or_else(|| bad(format!("{what}: offset overflow")))?;
    if target >= buf.len() {
        return Err(bad(format!(
            "{what}: offset {target} is past the end of the file ({} bytes)",
            buf.len()
        )));
    }
    Ok(target)
}

/// A table: its position and its vtable.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_len: usize,
    name: &'static str,
}

impl<'a> Table<'a> {
    /// The root table of a buffer.
    pub(crate) fn root(buf: &'a [u8], name: &'static str) -> Result<Self> {
        let pos = follow(buf, 0, "root table offset")?;
        Self::at(buf, pos, name)
    }

    fn at(buf: &'a [u8], pos: usize, name: &'static str) -> Result<Self> {
        // soffset to the vtable: vtable = pos - soffset.
        let soff = read_i32(buf, pos, name)? as i64;
        let vtable = pos as i64 - soff;
        if vtable < 0 || vtable as usize >= buf.len() {
            return Err(bad(format!("{name}: vtable offset {vtable} out of bounds")));
        }
        let vtable = vtable as usize;
        let vtable_len = read_u16(buf, vtable, name)? as usize;
        if vtable_len < 4 || vtable_len % 2 != 0 || vtable + vtable_len > buf.len() {
            return Err(bad(format!(
                "{name}: vtable of {vtable_len} bytes is invalid"
            )));
        }
        let table_len = read_u16(buf, vtable + 2, name)? as usize;
        if pos + table_len > buf.len() {
            return Err(bad(format!(
                "{name}: table of {table_len} bytes is truncated"
            )));
        }
        Ok(Self {
            buf,
            pos,
            vtable,
            vtable_len,
            name,
        })
    }

    /// Absolute position of field `id`, or `None` when absent.
    fn field(&self, id: usize) -> Result<Option<usize>> {
        let slot = 4 + 2 * id;
        if slot + 2 > self.vtable_len {
            return Ok(None);
        }
        let off = read_u16(self.buf, self.vtable + slot, self.name)? as usize;
        if off == 0 {
            return Ok(None);
        }
        Ok(Some(self.pos + off))
    }

    pub(crate) fn u8(&self, id: usize, default: u8) -> Result<u8> {
        match self.field(id)? {
            None => Ok(default),
            Some(p) => read_bytes::<1>(self.buf, p, self.name).map(|b| b[0]),
        }
    }

    pub(crate) fn i8(&self, id: usize, default: i8) -> Result<i8> {
        self.u8(id, default as u8).map(|v| v as i8)
    }

    pub(crate) fn bool(&self, id: usize, default: bool) -> Result<bool> {
        self.u8(id, default as u8).map(|v| v != 0)
    }

    pub(crate) fn i32(&self, id: usize, default: i32) -> Result<i32> {
        match self.field(id)? {
            None => Ok(default),
            Some(p) => read_i32(self.buf, p, self.name),
        }
    }

    pub(crate) fn u32(&self, id: usize, default: u32) -> Result<u32> {
        match self.field(id)? {
            None => Ok(default),
            Some(p) => read_u32(self.buf, p, self.name),
        }
    }

    pub(crate) fn u64(&self, id: usize, default: u64) -> Result<u64> {
        match self.field(id)? {
            None => Ok(default),
            Some(p) => read_bytes::<8>(self.buf, p, self.name).map(u64::from_le_bytes),
        }
    }

    /// A sub-table.
    pub(crate) fn table(&self, id: usize, name: &'static str) -> Result<Option<Table<'a>>> {
        match self.field(id)? {
            None => Ok(None),
            Some(p) => {
                let target = follow(self.buf, p, name)?;
                Table::at(self.buf, target, name).map(Some)
            }
        }
    }

    /// A vector of `elem_size`-byte scalars or of offsets (`elem_size` 4).
    pub(crate) fn vector(&self, id: usize, elem_size: usize) -> Result<Option<Vector<'a>>> {
        match self.field(id)? {
            None => Ok(None),
            Some(p) => {
                let start = follow(self.buf, p, self.name)?;
                let len = read_u32(self.buf, start, self.name)? as usize;
                let data = start + 4;
                let bytes = len
                    .checked_mul(elem_size)
                    .ok_or_else(|| bad(format!("{}: vector length overflow", self.name)))?;
                let end = data
                    .checked_add(bytes)
                    .ok_or_else(|| bad(format!("{}: vector length overflow", self.name)))?;
                if end > self.buf.len() {
                    return Err(bad(format!(
                        "{}: vector of {len} elements at {data} runs past the end of the file ({} bytes)",
                        self.name,
                        self.buf.len()
                    )));
                }
                Ok(Some(Vector {
                    buf: self.buf,
                    data,
                    len,
                    elem_size,
                    name: self.name,
                }))
            }
        }
    }

    /// A string (UTF-8 checked).
    pub(crate) fn string(&self, id: usize) -> Result<Option<&'a str>> {
        match self.vector(id, 1)? {
            None => Ok(None),
            Some(v) => std::str::from_utf8(v.bytes())
                .map(Some)
                .map_err(|_| bad(format!("{}: a string is not UTF-8", self.name))),
        }
    }

    /// A vector of `N`-byte little-endian scalars, decoded by `decode`.
    fn scalar_vec<const N: usize, T>(&self, id: usize, decode: fn([u8; N]) -> T) -> Result<Vec<T>> {
        match self.vector(id, N)? {
            None => Ok(Vec::new()),
            Some(v) => Ok(v
                .bytes()
                .chunks_exact(N)
                .map(|c| {
                    let mut b = [0u8; N];
                    b.copy_from_slice(c);
                    decode(b)
                })
                .collect()),
        }
    }

    /// A vector of `i32` as a `Vec`.
    pub(crate) fn i32_vec(&self, id: usize) -> Result<Vec<i32>> {
        self.scalar_vec(id, i32::from_le_bytes)
    }

    /// A vector of `f32` as a `Vec`.
    pub(crate) fn f32_vec(&self, id: usize) -> Result<Vec<f32>> {
        self.scalar_vec(id, f32::from_le_bytes)
    }

    /// A vector of `i64` as a `Vec`.
    pub(crate) fn i64_vec(&self, id: usize) -> Result<Vec<i64>> {
        self.scalar_vec(id, i64::from_le_bytes)
    }

    /// A vector of sub-tables.
    pub(crate) fn tables(&self, id: usize, name: &'static str) -> Result<Vec<Table<'a>>> {
        match self.vector(id, 4)? {
            None => Ok(Vec::new()),
            Some(v) => (0..v.len).map(|i| v.table(i, name)).collect(),
        }
    }
}

/// A vector inside the buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vector<'a> {
    buf: &'a [u8],
    data: usize,
    len: usize,
    elem_size: usize,
    name: &'static str,
}

impl<'a> Vector<'a> {
    /// The raw element bytes (bounds checked at construction).
    pub(crate) fn bytes(&self) -> &'a [u8] {
        // Checked in `Table::vector`: data + len * elem_size <= buf.len().
        self.buf
            .get(self.data..self.data + self.len * self.elem_size)
            .unwrap_or(&[])
    }

    fn table(&self, i: usize, name: &'static str) -> Result<Table<'a>> {
        if i >= self.len {
            return Err(bad(format!("{}: index {i} out of {}", self.name, self.len)));
        }
        let p = self.data + 4 * i;
        let target = follow(self.buf, p, name)?;
        Table::at(self.buf, target, name)
    }
}
