//! Bitcoin consensus encoding primitives with typed decode errors.
//!
//! Integers are little-endian, lengths are CompactSize ("varint") and must be canonical, byte
//! strings are length-prefixed. This is the encoding Bitcoin (and P2Pool) use on the wire; it is
//! written out here rather than through `bitcoin::consensus` so that every failure has a specific,
//! typed reason (which field, which limit) and decoding never allocates more than the input holds.

use thiserror::Error;

/// Why a byte string is not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("input ends inside `{field}`")]
    UnexpectedEnd {
        /// Name of the field being read.
        field: &'static str,
    },
    /// The input has bytes after the last field.
    #[error("{count} trailing bytes after the last field")]
    TrailingBytes {
        /// Number of unread bytes.
        count: usize,
    },
    /// A list or byte string is longer than its limit.
    #[error("`{field}` has {len} elements, more than the limit of {max}")]
    TooLong {
        /// Name of the list or byte string.
        field: &'static str,
        /// Length announced by the input.
        len: u64,
        /// Largest length allowed for this field.
        max: u64,
    },
    /// A byte string is shorter than its minimum.
    #[error("`{field}` has {len} bytes, fewer than the minimum of {min}")]
    TooShort {
        /// Name of the byte string.
        field: &'static str,
        /// Length announced by the input.
        len: u64,
        /// Smallest length allowed for this field.
        min: u64,
    },
    /// A field holds a value outside its range.
    #[error("`{field}` is out of range: {value}")]
    OutOfRange {
        /// Name of the field.
        field: &'static str,
        /// The value read.
        value: u64,
    },
    /// A CompactSize integer was not minimally encoded.
    #[error("non-canonical CompactSize in `{field}`")]
    NonCanonicalVarInt {
        /// Name of the field.
        field: &'static str,
    },
    /// The share-format version is not one this node understands.
    #[error("unknown share version {0}")]
    UnknownVersion(u64),
}

/// Types with a consensus encoding.
pub trait Encode {
    /// Appends the encoding of `self` to `out`.
    fn encode(&self, out: &mut Vec<u8>);

    /// The encoding of `self` as a new vector.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Types that decode from a consensus encoding.
pub trait Decode: Sized {
    /// Reads one value from the reader.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Decodes exactly one value from `bytes`, rejecting trailing bytes.
    fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let value = Self::decode(&mut r)?;
        r.finish()?;
        Ok(value)
    }
}

/// A cursor over an input slice.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Fails unless the whole input was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::UnexpectedEnd { field });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// The next byte.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// The next 2 bytes as a little-endian integer.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(field)?))
    }

    /// The next 4 bytes as a little-endian integer.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    /// The next 8 bytes as a little-endian integer.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(field)?))
    }

    /// The next 16 bytes as a little-endian integer.
    pub fn u128(&mut self, field: &'static str) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.array(field)?))
    }

    /// A canonical CompactSize integer.
    pub fn varint(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let first = self.u8(field)?;
        let (value, min) = match first {
            0xfd => (u64::from(self.u16(field)?), 0xfd),
            0xfe => (u64::from(self.u32(field)?), 0x1_0000),
            0xff => (self.u64(field)?, 0x1_0000_0000),
            n => return Ok(u64::from(n)),
        };
        if value < min {
            return Err(DecodeError::NonCanonicalVarInt { field });
        }
        Ok(value)
    }

    /// A CompactSize length no greater than `max`.
    pub fn len(&mut self, field: &'static str, max: usize) -> Result<usize, DecodeError> {
        let len = self.varint(field)?;
        if len > max as u64 {
            return Err(DecodeError::TooLong {
                field,
                len,
                max: max as u64,
            });
        }
        Ok(len as usize)
    }

    /// A length-prefixed byte string of `min..=max` bytes.
    pub fn var_bytes(
        &mut self,
        field: &'static str,
        min: usize,
        max: usize,
    ) -> Result<&'a [u8], DecodeError> {
        let len = self.len(field, max)?;
        if len < min {
            return Err(DecodeError::TooShort {
                field,
                len: len as u64,
                min: min as u64,
            });
        }
        self.take(len, field)
    }
}

/// Appends a CompactSize integer.
pub fn write_varint(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Appends a length-prefixed byte string.
pub fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Length of the CompactSize encoding of `n`.
pub fn varint_len(n: u64) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_at_boundaries() {
        for n in [
            0,
            1,
            0xfc,
            0xfd,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_varint(&mut out, n);
            assert_eq!(out.len(), varint_len(n));
            let mut r = Reader::new(&out);
            assert_eq!(r.varint("n").unwrap(), n);
            r.finish().unwrap();
        }
    }

    #[test]
    fn non_canonical_varint_is_rejected() {
        for bytes in [
            &[0xfd, 0x10, 0x00][..],
            &[0xfe, 0xff, 0xff, 0, 0],
            &[0xff, 1, 0, 0, 0, 0, 0, 0, 0],
        ] {
            let err = Reader::new(bytes).varint("n").unwrap_err();
            assert_eq!(err, DecodeError::NonCanonicalVarInt { field: "n" });
        }
    }

    #[test]
    fn length_limit_is_checked_before_reading() {
        // A length of 2^32 must fail on the limit, not try to allocate or read.
        let bytes = [0xfe, 0, 0, 0, 1];
        let err = Reader::new(&bytes).var_bytes("script", 0, 100).unwrap_err();
        assert_eq!(
            err,
            DecodeError::TooLong {
                field: "script",
                len: 1 << 24,
                max: 100
            }
        );
    }

    #[test]
    fn truncated_input_names_the_field() {
        let err = Reader::new(&[1, 2]).u32("nonce").unwrap_err();
        assert_eq!(err, DecodeError::UnexpectedEnd { field: "nonce" });
    }
}
