//! Bit strings as chiapos packs them: most significant bit first, values right-aligned in 64-bit
//! chunks, byte strings zero-padded at the end. Fixed-size and allocation-free for the hot path.

/// Reads `n` (1..=57) bits starting at bit `start` of `bytes`, MSB-first. Bits past the end of
/// `bytes` read as zero.
#[inline]
pub fn read_bits(bytes: &[u8], start: usize, n: u32) -> u64 {
    let first = start / 8;
    let mut word = [0u8; 8];
    if let Some(tail) = bytes.get(first..) {
        let take = tail.len().min(8);
        word[..take].copy_from_slice(&tail[..take]);
    }
    let w = u64::from_be_bytes(word) << (start % 8);
    w >> (64 - n)
}

/// Up to 256 bits (4k for k ≤ 50 is 200): the metadata carried between tables.
///
/// `words[..chunks-1]` hold 64 bits each, the last used word holds the remaining bits
/// right-aligned, as in chiapos's `Bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    words: [u64; 4],
    bits: u16,
}

impl Meta {
    pub const EMPTY: Meta = Meta {
        words: [0; 4],
        bits: 0,
    };

    /// A single value of `n` ≤ 64 bits.
    #[inline]
    pub fn from_u64(value: u64, n: u32) -> Meta {
        Meta {
            words: [value, 0, 0, 0],
            bits: n as u16,
        }
    }

    /// Bits `[start, start + n)` of `bytes` (n ≤ 256).
    #[inline]
    pub fn from_bytes(bytes: &[u8], start: usize, n: u32) -> Meta {
        let mut meta = Meta::EMPTY;
        let mut done = 0u32;
        while done < n {
            let take = (n - done).min(56);
            meta.push(read_bits(bytes, start + done as usize, take), take);
            done += take;
        }
        meta
    }

    /// Number of bits.
    #[inline]
    pub fn len(&self) -> u32 {
        u32::from(self.bits)
    }

    /// Appends `n` (1..=64) bits of `value`; the total must stay within 256 bits.
    #[inline]
    pub fn push(&mut self, value: u64, n: u32) {
        let used = self.len();
        let last = (used / 64) as usize;
        let free = 64 * (last as u32 + 1) - used;
        if used % 64 == 0 {
            if let Some(w) = self.words.get_mut(last) {
                *w = value;
            }
        } else if n <= free {
            self.words[last] = (self.words[last] << n) | value;
        } else {
            let spill = n - free;
            self.words[last] = (self.words[last] << free) | (value >> spill);
            if let Some(w) = self.words.get_mut(last + 1) {
                *w = value & ((1u64 << spill) - 1);
            }
        }
        self.bits += n as u16;
    }

    /// Appends another bit string.
    #[inline]
    pub fn append(&mut self, other: &Meta) {
        let n = other.len();
        let full = (n / 64) as usize;
        for &w in &other.words[..full] {
            self.push(w, 64);
        }
        if n % 64 != 0 {
            self.push(other.words[full], n % 64);
        }
    }

    /// Writes the bits to `out` MSB-first, zero-padded, through `writer`.
    #[inline]
    pub fn write_to(&self, writer: &mut BitWriter) {
        let n = self.len();
        let full = (n / 64) as usize;
        for &w in &self.words[..full] {
            writer.push(w, 64);
        }
        if n % 64 != 0 {
            writer.push(self.words[full], n % 64);
        }
    }
}

/// Packs bit strings MSB-first into at most 512 bits (the largest Fx input is 9k+6 = 456 bits).
#[derive(Debug, Clone)]
pub struct BitWriter {
    words: [u64; 8],
    bits: u32,
}

impl BitWriter {
    #[inline]
    pub fn new() -> Self {
        BitWriter {
            words: [0; 8],
            bits: 0,
        }
    }

    /// Appends the low `n` (1..=64) bits of `value` (which must have no higher bits set).
    #[inline]
    pub fn push(&mut self, value: u64, n: u32) {
        let w = (self.bits / 64) as usize;
        let off = self.bits % 64;
        if off + n <= 64 {
            if let Some(word) = self.words.get_mut(w) {
                *word |= value << (64 - off - n);
            }
        } else {
            let spill = off + n - 64;
            if let Some(word) = self.words.get_mut(w) {
                *word |= value >> spill;
            }
            if let Some(word) = self.words.get_mut(w + 1) {
                *word |= value << (64 - spill);
            }
        }
        self.bits += n;
    }

    /// The packed bytes: exactly ceil(bits / 8) of them, zero-padded at the end.
    #[inline]
    pub fn bytes<'a>(&self, buf: &'a mut [u8; 64]) -> &'a [u8] {
        for (chunk, w) in buf.chunks_exact_mut(8).zip(self.words) {
            chunk.copy_from_slice(&w.to_be_bytes());
        }
        let n = (self.bits as usize).div_ceil(8).min(64);
        &buf[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_bits_is_msb_first() {
        let bytes = [0b1010_0000, 0xff, 0x01];
        assert_eq!(read_bits(&bytes, 0, 3), 0b101);
        assert_eq!(read_bits(&bytes, 1, 3), 0b010);
        assert_eq!(read_bits(&bytes, 4, 8), 0b0000_1111);
        assert_eq!(read_bits(&bytes, 16, 8), 1);
        // Past the end reads zeros.
        assert_eq!(read_bits(&bytes, 20, 8), 0b0001_0000);
        assert_eq!(read_bits(&bytes, 100, 8), 0);
    }

    #[test]
    fn writer_packs_and_pads() {
        let mut w = BitWriter::new();
        w.push(0b101, 3);
        w.push(u64::MAX, 64);
        w.push(0, 2);
        w.push(1, 1);
        let mut buf = [0u8; 64];
        let bytes = w.bytes(&mut buf);
        assert_eq!(bytes.len(), 9); // 70 bits
        assert_eq!(bytes[0], 0b1011_1111);
        assert_eq!(&bytes[1..8], &[0xff; 7]);
        assert_eq!(bytes[8], 0b1110_0100);
    }

    #[test]
    fn meta_round_trips_through_writer() {
        let src: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(73) ^ 0x5a).collect();
        for (start, n) in [(0, 200), (3, 150), (56, 123), (7, 64), (13, 1), (0, 256)] {
            let meta = Meta::from_bytes(&src, start, n);
            assert_eq!(meta.len(), n);
            let mut w = BitWriter::new();
            meta.write_to(&mut w);
            let mut buf = [0u8; 64];
            let out = w.bytes(&mut buf).to_vec();
            for i in 0..n as usize {
                assert_eq!(
                    read_bits(&out, i, 1),
                    read_bits(&src, start + i, 1),
                    "bit {i}"
                );
            }
            let mut joined = Meta::from_u64(0b11, 2);
            joined.append(&Meta::from_bytes(&src, start, n.min(254)));
            assert_eq!(joined.len(), 2 + n.min(254));
        }
    }
}
