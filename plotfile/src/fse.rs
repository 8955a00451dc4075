//! The finite-state-entropy (tANS) decoder chiapos uses for the deltas in its parks and in the
//! C3 checkpoint table: the decoding table built from a normalized distribution that depends only
//! on a parameter R, and the two-state interleaved decoder with its exact end-of-stream rules.
//!
//! The tables are not stored in the plot: chiapos derives them from R with floating-point
//! arithmetic, so the distribution here is computed with the same operations in the same order.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::OnceLock;

/// log2 of the number of states.
const TABLE_LOG: u32 = 14;
const TABLE_SIZE: usize = 1 << TABLE_LOG;

/// Why a delta stream does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FseError {
    /// The stream is empty.
    #[error("empty stream")]
    Empty,
    /// The last byte carries no end mark.
    #[error("no end mark")]
    NoEndMark,
    /// The stream holds more symbols than the output may.
    #[error("more symbols than expected")]
    TooManySymbols,
    /// A decoded delta is 255, which the encoder never writes.
    #[error("bad delta")]
    BadDelta,
}

#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    new_state: u16,
    symbol: u8,
    nb_bits: u8,
}

/// A decoding table for one R.
#[derive(Debug, Clone)]
pub struct DecodeTable {
    // A fixed-size array: indexing with a masked state needs no bounds check.
    cells: Box<[Cell; TABLE_SIZE]>,
}

/// chiapos's normalized distribution for R: probabilities of a geometric-like law, then quanta
/// of 2^14 handed out greedily to the symbol that gains most. Symbols left with one quantum are
/// the "low probability" ones (-1).
pub fn normalized_count(r: f64) -> Vec<i16> {
    // chiapos's truncated e, not the exact constant: the table depends on every digit.
    #[allow(clippy::approx_constant)] // reason: must equal chiapos's literal, not f64::consts::E
    const E: f64 = 2.718281828459;
    const MIN_PRB_THRESHOLD: f64 = 1e-50;
    let mut dpdf = Vec::new();
    let mut n: i32 = 0;
    let mut p = 1.0 - ((E - 1.0) / E).powf(1.0 / r);
    while p > MIN_PRB_THRESHOLD && n < 255 {
        dpdf.push(p);
        n += 1;
        p = ((E.powf(1.0 / r)) - 1.0) * (E - 1.0).powf(1.0 / r);
        p /= E.powf(f64::from(n + 1) / r);
    }
    let mut ans = vec![1i16; dpdf.len()];

    // The gain of one more quantum for symbol i; the heap pops the largest.
    struct Gain {
        value: f64,
        index: usize,
    }
    impl PartialEq for Gain {
        fn eq(&self, other: &Self) -> bool {
            self.cmp(other) == Ordering::Equal
        }
    }
    impl Eq for Gain {}
    impl PartialOrd for Gain {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Gain {
        fn cmp(&self, other: &Self) -> Ordering {
            self.value.total_cmp(&other.value)
        }
    }
    let gain = |p: f64, a: i16| p * ((f64::from(a) + 1.0).log2() - f64::from(a).log2());
    let mut heap: BinaryHeap<Gain> = (0..dpdf.len())
        .map(|i| Gain {
            value: gain(dpdf[i], 1),
            index: i,
        })
        .collect();
    for _ in 0..(TABLE_SIZE - dpdf.len()) {
        let Some(top) = heap.pop() else { break };
        let i = top.index;
        ans[i] += 1;
        heap.push(Gain {
            value: gain(dpdf[i], ans[i]),
            index: i,
        });
    }
    for a in &mut ans {
        if *a == 1 {
            *a = -1;
        }
    }
    ans
}

impl DecodeTable {
    /// Builds the decoding table of a normalized distribution summing to 2^14 (low-probability
    /// symbols as -1), laid out exactly as FSE lays it.
    pub fn new(norm: &[i16]) -> DecodeTable {
        let mut cells = Box::new([Cell::default(); TABLE_SIZE]);
        let mut symbol_next = vec![0u32; norm.len()];
        let mut high = TABLE_SIZE - 1;
        for (s, &c) in norm.iter().enumerate() {
            if c == -1 {
                cells[high].symbol = s as u8;
                high = high.saturating_sub(1);
                symbol_next[s] = 1;
            } else {
                symbol_next[s] = c.max(0) as u32;
            }
        }
        let mask = TABLE_SIZE - 1;
        let step = (TABLE_SIZE >> 1) + (TABLE_SIZE >> 3) + 3;
        let mut pos = 0usize;
        for (s, &c) in norm.iter().enumerate() {
            for _ in 0..c.max(0) {
                cells[pos].symbol = s as u8;
                pos = (pos + step) & mask;
                while pos > high {
                    pos = (pos + step) & mask;
                }
            }
        }
        for cell in cells.iter_mut() {
            let s = usize::from(cell.symbol);
            let next = symbol_next[s].max(1);
            symbol_next[s] += 1;
            let nb_bits = TABLE_LOG - (31 - next.leading_zeros());
            cell.nb_bits = nb_bits as u8;
            cell.new_state = ((next << nb_bits) as usize).wrapping_sub(TABLE_SIZE) as u16;
        }
        DecodeTable { cells }
    }

    /// The table for one of chiapos's R values, built once per process.
    pub fn for_r(r: RValue) -> &'static DecodeTable {
        static TABLES: [OnceLock<DecodeTable>; 7] = [const { OnceLock::new() }; 7];
        TABLES[r as usize].get_or_init(|| DecodeTable::new(&normalized_count(r.value())))
    }
}

/// The R values chiapos uses: one per table of line points, and one for C3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RValue {
    /// Table 1.
    T1 = 0,
    /// Table 2.
    T2 = 1,
    /// Table 3.
    T3 = 2,
    /// Table 4.
    T4 = 3,
    /// Table 5.
    T5 = 4,
    /// Table 6.
    T6 = 5,
    /// The C3 checkpoint table.
    C3 = 6,
}

impl RValue {
    /// The R of line-point table 1..=6.
    pub fn for_table(table: u8) -> Option<RValue> {
        Some(match table {
            1 => RValue::T1,
            2 => RValue::T2,
            3 => RValue::T3,
            4 => RValue::T4,
            5 => RValue::T5,
            6 => RValue::T6,
            _ => return None,
        })
    }

    /// chiapos's constant.
    pub fn value(self) -> f64 {
        [4.7, 2.75, 2.75, 2.7, 2.6, 2.45, 1.0][self as usize]
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Status {
    Unfinished,
    EndOfBuffer,
    Completed,
    Overflow,
}

/// FSE's backward bit reader over a stream whose last byte holds an end mark.
struct BitReader<'a> {
    src: &'a [u8],
    container: u64,
    consumed: u32,
    ptr: usize,
}

fn read_le(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}

impl<'a> BitReader<'a> {
    fn new(src: &'a [u8]) -> Result<Self, FseError> {
        let Some(&last) = src.last() else {
            return Err(FseError::Empty);
        };
        if last == 0 {
            return Err(FseError::NoEndMark);
        }
        let mark = 8 - (31 - u32::from(last).leading_zeros());
        if src.len() >= 8 {
            let ptr = src.len() - 8;
            Ok(BitReader {
                src,
                container: read_le(src, ptr),
                consumed: mark,
                ptr,
            })
        } else {
            let container = src
                .iter()
                .enumerate()
                .fold(0u64, |acc, (i, &b)| acc | (u64::from(b) << (8 * i)));
            Ok(BitReader {
                src,
                container,
                consumed: mark + (8 - src.len() as u32) * 8,
                ptr: 0,
            })
        }
    }

    #[inline]
    fn read(&mut self, n: u32) -> u64 {
        // Masked shifts as FSE does them: past the end they read garbage, never out of bounds.
        let v = ((self.container << (self.consumed & 63)) >> 1) >> ((63 - n) & 63);
        self.consumed += n;
        v
    }

    fn reload(&mut self) -> Status {
        if self.consumed > 64 {
            return Status::Overflow;
        }
        if self.ptr >= 8 {
            self.ptr -= (self.consumed >> 3) as usize;
            self.consumed &= 7;
            self.container = read_le(self.src, self.ptr);
            return Status::Unfinished;
        }
        if self.ptr == 0 {
            return if self.consumed < 64 {
                Status::EndOfBuffer
            } else {
                Status::Completed
            };
        }
        let mut nb = (self.consumed >> 3) as usize;
        let mut status = Status::Unfinished;
        if nb > self.ptr {
            nb = self.ptr;
            status = Status::EndOfBuffer;
        }
        self.ptr -= nb;
        self.consumed -= (nb * 8) as u32;
        self.container = read_le(self.src, self.ptr);
        status
    }
}

impl DecodeTable {
    #[inline]
    fn step(&self, state: &mut usize, bits: &mut BitReader<'_>) -> u8 {
        let cell = self.cells[*state & (TABLE_SIZE - 1)];
        let low = bits.read(u32::from(cell.nb_bits)) as usize;
        *state = (usize::from(cell.new_state) + low) & (TABLE_SIZE - 1);
        cell.symbol
    }

    /// Decodes `src` into exactly `count` deltas, as chiapos's `ANSDecodeDeltas`: a stream that
    /// ends early leaves zeros; one that would write more than `count` is an error, as is any
    /// delta of 255.
    pub fn decode(&self, src: &[u8], count: usize) -> Result<Vec<u8>, FseError> {
        self.decode_prefix(src, count, count)
    }

    /// The first `want` of the `count` deltas [`Self::decode`] gives: equal to
    /// `decode(src, count)?[..want]` whenever that succeeds, decoding only as far as needed (a
    /// prover reading one entry of a park needs the deltas before it, on average half of
    /// them). Damage past the prefix goes unseen here; damage before it shows in the proof,
    /// which the prover checks before returning it.
    pub fn decode_prefix(
        &self,
        src: &[u8],
        count: usize,
        want: usize,
    ) -> Result<Vec<u8>, FseError> {
        let want = want.min(count);
        // Room for the last group of four written past `want`.
        let mut out = vec![0u8; (want + 3).min(count)];
        let mut bits = BitReader::new(src)?;
        let mut s1 = bits.read(TABLE_LOG) as usize;
        bits.reload();
        let mut s2 = bits.read(TABLE_LOG) as usize;
        bits.reload();
        let mut op = 0usize;
        // Four symbols per loop while the register has room for them.
        loop {
            let status = bits.reload();
            if !(status == Status::Unfinished && op + 3 < count && op < want) {
                break;
            }
            out[op] = self.step(&mut s1, &mut bits);
            out[op + 1] = self.step(&mut s2, &mut bits);
            out[op + 2] = self.step(&mut s1, &mut bits);
            out[op + 3] = self.step(&mut s2, &mut bits);
            op += 4;
        }
        // The tail alternates the states until the register overflows, then flushes the other.
        while op < want {
            if op + 2 > count {
                return Err(FseError::TooManySymbols);
            }
            out[op] = self.step(&mut s1, &mut bits);
            op += 1;
            if bits.reload() == Status::Overflow {
                if op < out.len() {
                    out[op] = self.step(&mut s2, &mut bits);
                }
                break;
            }
            if op >= want && want < count {
                break;
            }
            if op + 2 > count {
                return Err(FseError::TooManySymbols);
            }
            out[op] = self.step(&mut s2, &mut bits);
            op += 1;
            if bits.reload() == Status::Overflow {
                if op < out.len() {
                    out[op] = self.step(&mut s1, &mut bits);
                }
                break;
            }
        }
        out.truncate(want);
        if out.contains(&0xff) {
            return Err(FseError::BadDelta);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_fill_the_table() {
        for r in [4.7, 2.75, 2.7, 2.6, 2.45, 1.0] {
            let n = normalized_count(r);
            let total: i32 = n.iter().map(|&c| i32::from(c.abs())).sum();
            assert_eq!(total, TABLE_SIZE as i32, "R {r}");
            assert!(n.len() <= 255);
            // Most likely symbol first, falling off.
            assert!(n[0] > n[n.len() / 2]);
        }
    }

    #[test]
    fn a_prefix_decodes_as_the_whole_stream_does() {
        // Random streams: wherever the whole decode succeeds, every prefix equals its start;
        // a prefix never panics either way.
        let mut seed = 7u64;
        let mut compared = 0;
        for r in [
            RValue::C3,
            RValue::for_table(1).unwrap(),
            RValue::for_table(6).unwrap(),
        ] {
            let t = DecodeTable::for_r(r);
            for len in 1..200usize {
                let bytes: Vec<u8> = (0..len)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        (seed >> 24) as u8
                    })
                    .collect();
                for count in [8usize, 100, 2047] {
                    let whole = t.decode(&bytes, count);
                    for want in [0, 1, 2, 3, 4, 5, 7, count / 2, count - 1, count] {
                        let prefix = t.decode_prefix(&bytes, count, want);
                        if let Ok(whole) = &whole {
                            assert_eq!(
                                prefix.as_deref(),
                                Ok(&whole[..want]),
                                "len {len} count {count} want {want}"
                            );
                            compared += 1;
                        }
                    }
                    assert_eq!(t.decode_prefix(&bytes, count, count), whole);
                }
            }
        }
        assert!(compared > 1000, "only {compared} streams decoded");
    }

    #[test]
    fn garbage_never_panics() {
        let t = DecodeTable::for_r(RValue::C3);
        let mut seed = 1u64;
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 56) as u8
                })
                .collect();
            for count in [0, 1, 2, 3, 5, 100] {
                let _ = t.decode(&bytes, count);
            }
        }
    }
}
