//! Little-endian reading and writing of the header's fields.
//!
//! [`Reader`] never panics and never allocates more than the bytes it was
//! handed: every length is checked against what remains before it is used.

use crate::error::FormatError;

/// A cursor over bytes already in memory.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// What is being read, for error messages ("header", "signature section").
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, pos: 0, what }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], FormatError> {
        if n > self.remaining() {
            return Err(FormatError::Truncated {
                what: self.what,
                field,
                offset: self.pos as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], FormatError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N, field)?);
        Ok(a)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, FormatError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, FormatError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub fn u64(&mut self, field: &'static str) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    pub fn f64(&mut self, field: &'static str) -> Result<f64, FormatError> {
        Ok(f64::from_le_bytes(self.array(field)?))
    }

    /// A UTF-8 string whose byte length was read just before.
    pub fn string(&mut self, len: usize, field: &'static str) -> Result<String, FormatError> {
        let at = self.pos as u64;
        let b = self.bytes(len, field)?;
        String::from_utf8(b.to_vec()).map_err(|_| FormatError::BadUtf8 {
            what: self.what,
            field,
            offset: at,
        })
    }

    /// A count of entries, each at least `min_entry` bytes long: refuses a
    /// count that the remaining bytes cannot hold, so a caller can allocate
    /// `count` entries without trusting the claim.
    pub fn count(
        &mut self,
        max: u32,
        min_entry: usize,
        field: &'static str,
    ) -> Result<usize, FormatError> {
        let n = self.u32(field)?;
        if n > max {
            return Err(FormatError::LimitExceeded {
                what: field,
                value: n as u64,
                limit: max as u64,
            });
        }
        let need = (n as u64).saturating_mul(min_entry as u64);
        if need > self.remaining() as u64 {
            return Err(FormatError::Truncated {
                what: self.what,
                field,
                offset: self.pos as u64,
            });
        }
        Ok(n as usize)
    }

    pub fn finish(&self) -> Result<(), FormatError> {
        if self.remaining() != 0 {
            return Err(FormatError::TrailingBytes {
                what: self.what,
                count: self.remaining() as u64,
            });
        }
        Ok(())
    }
}

/// Appends little-endian fields to a byte vector.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
}
