//! Decoding what a park holds: a line point of tables 1..=6 (checkpoint, stubs and
//! entropy-coded deltas), line point → pair of positions, a table-7 entry, and the positions of
//! an f7 value in a C3 park. Pure functions over bytes already read; every length is checked.

use crate::format::{Sizes, CHECKPOINT_INTERVAL, ENTRIES_PER_PARK, STUB_MINUS_BITS};
use crate::fse::{DecodeTable, FseError, RValue};

/// Why a park does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParkError {
    /// The park bytes are shorter than the layout needs.
    #[error("park is {got} bytes, needs {needed}")]
    Short {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The encoded delta size is larger than the park's delta area.
    #[error("encoded deltas size {0} exceeds the park")]
    DeltasSize(u16),
    /// The entropy-coded deltas do not decode.
    #[error("deltas: {0}")]
    Deltas(#[from] FseError),
    /// The table number is not 1..=6.
    #[error("no line-point table {0}")]
    Table(u8),
}

/// Bits `[start, start + n)` of `bytes`, MSB-first, n ≤ 128. Bits past the end read as zero.
pub fn read_bits_u128(bytes: &[u8], start: u64, n: u32) -> u128 {
    let mut v = 0u128;
    let mut done = 0u32;
    while done < n {
        let take = (n - done).min(56);
        let part = sharechain_bits(bytes, start + u64::from(done), take);
        v = (v << take) | u128::from(part);
        done += take;
    }
    v
}

/// The sum of the first `count` fields of `width` bits (1..=57) packed MSB-first from bit 0
/// of `bytes`; fields past the end read as zero, as [`read_bits_u128`] reads them. A prover
/// sums up to 2047 stubs per line point, 63 line points per proof: fields whose eight bytes
/// are all inside `bytes` are read with one load each.
fn sum_fields(bytes: &[u8], count: usize, width: u32) -> u64 {
    debug_assert!((1..=57).contains(&width));
    let mut sum = 0u64;
    let mut pos = 0u64;
    for _ in 0..count {
        let first = (pos / 8) as usize;
        let field = match bytes.get(first..first + 8) {
            Some(word) => {
                let mut w = [0u8; 8];
                w.copy_from_slice(word);
                (u64::from_be_bytes(w) << (pos % 8)) >> (64 - width)
            }
            None => sharechain_bits(bytes, pos, width),
        };
        sum += field;
        pos += u64::from(width);
    }
    sum
}

fn sharechain_bits(bytes: &[u8], start: u64, n: u32) -> u64 {
    let first = (start / 8) as usize;
    let mut word = [0u8; 8];
    if let Some(tail) = bytes.get(first..) {
        let take = tail.len().min(8);
        word[..take].copy_from_slice(&tail[..take]);
    }
    let w = u64::from_be_bytes(word) << (start % 8);
    w >> (64 - n)
}

/// The entry at `index` (0..2048) of a park of line-point table `table`, exactly as chiapos's
/// `ReadLinePoint` computes it from the same bytes.
pub fn line_point(sizes: &Sizes, table: u8, park: &[u8], index: u64) -> Result<u128, ParkError> {
    let r = RValue::for_table(table).ok_or(ParkError::Table(table))?;
    let k = u32::from(sizes.k);
    let lp_end = sizes.line_point as usize;
    let stubs_end = lp_end + sizes.stubs as usize;
    if park.len() < stubs_end + 2 {
        return Err(ParkError::Short {
            needed: stubs_end + 2,
            got: park.len(),
        });
    }
    let checkpoint = read_bits_u128(&park[..lp_end], 0, 2 * k);
    let stubs = &park[lp_end..stubs_end];
    let encoded = u16::from_le_bytes([park[stubs_end], park[stubs_end + 1]]);
    // chiapos compares before masking the "uncompressed" flag, so a flagged size always fails.
    if u64::from(encoded) > sizes.max_deltas(table) {
        return Err(ParkError::DeltasSize(encoded));
    }
    let start = stubs_end + 2;
    let end = start + usize::from(encoded);
    if park.len() < end {
        return Err(ParkError::Short {
            needed: end,
            got: park.len(),
        });
    }
    // Only the deltas before the entry are summed: decode no further.
    let deltas = DecodeTable::for_r(r).decode_prefix(
        &park[start..end],
        (ENTRIES_PER_PARK - 1) as usize,
        (index % ENTRIES_PER_PARK) as usize,
    )?;
    let stub_bits = k - STUB_MINUS_BITS;
    let n = ((index % ENTRIES_PER_PARK) as usize).min(deltas.len());
    let sum_deltas: u64 = deltas[..n].iter().map(|&d| u64::from(d)).sum();
    let sum_stubs = sum_fields(stubs, n, stub_bits);
    let big_delta = (u128::from(sum_deltas) << stub_bits) + u128::from(sum_stubs);
    Ok(checkpoint.wrapping_add(big_delta))
}

fn x_enc(x: u64) -> u128 {
    let (mut a, mut b) = (x, x.wrapping_sub(1));
    if a % 2 == 0 {
        a /= 2;
    } else {
        b /= 2;
    }
    u128::from(a) * u128::from(b)
}

/// A line point → its two positions (larger first), chiapos's `LinePointToSquare`.
pub fn line_point_to_square(line_point: u128) -> (u64, u64) {
    let mut x = 0u64;
    for i in (0..64).rev() {
        let candidate = x + (1u64 << i);
        if x_enc(candidate) <= line_point {
            x = candidate;
        }
    }
    (x, (line_point - x_enc(x)) as u64)
}

/// Entry `index` (0..2048) of a table-7 park: a position into table 6, k + 1 bits.
pub fn p7_entry(sizes: &Sizes, park: &[u8], index: u64) -> u64 {
    let bits = u32::from(sizes.k) + 1;
    sharechain_bits(park, index * u64::from(bits), bits)
}

/// The table-7 positions whose f7 is `f7`, from one C3 park, as chiapos's `GetP7Positions`
/// finds them (including its quirks at park edges, which only ever drop positions).
///
/// `curr_f7` is the C1 value the park starts from, `curr_pos` the table-7 position to count
/// from, `c1_index` the park's index (it bounds how far the park may run).
pub fn c3_positions(
    k: u8,
    mut curr_f7: u64,
    f7: u64,
    mut curr_pos: i64,
    encoded: &[u8],
    c1_index: i64,
) -> Result<Vec<u64>, ParkError> {
    let deltas = DecodeTable::for_r(RValue::C3).decode(encoded, CHECKPOINT_INTERVAL as usize)?;
    let limit = (c1_index + 1) * CHECKPOINT_INTERVAL as i64 - 1;
    let f7_max = (1u64 << k) - 1;
    let mut positions = Vec::new();
    let mut surpassed = false;
    for d in deltas {
        if curr_f7 > f7 {
            surpassed = true;
            break;
        }
        curr_f7 += u64::from(d);
        curr_pos += 1;
        if curr_f7 == f7 {
            positions.push(curr_pos as u64);
        }
        // The last park has no stop marker: its tail decodes as zero deltas.
        if curr_pos >= limit || curr_f7 >= f7_max {
            break;
        }
    }
    Ok(if surpassed { positions } else { Vec::new() })
}

/// The first k bits of `bytes`, MSB-first.
pub(crate) fn top_bits(bytes: &[u8], k: u8) -> u64 {
    read_bits_u128(bytes, 0, u32::from(k)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_round_trips() {
        for (x, y) in [
            (1u64, 0u64),
            (5, 3),
            (1 << 20, 12345),
            ((1 << 40) + 7, 1 << 39),
        ] {
            let lp = x_enc(x) + u128::from(y);
            assert_eq!(line_point_to_square(lp), (x, y));
        }
        assert_eq!(line_point_to_square(0), (1, 0));
    }

    #[test]
    fn bits_across_words() {
        let bytes = [
            0xffu8, 0x00, 0xaa, 0x55, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0,
        ];
        assert_eq!(read_bits_u128(&bytes, 0, 8), 0xff);
        assert_eq!(read_bits_u128(&bytes, 4, 8), 0xf0);
        assert_eq!(
            read_bits_u128(&bytes, 8, 88),
            0x0000_aa55_1234_5678_9abc_def0_u128
        );
        // The last 6 bits, then zeros past the end.
        assert_eq!(read_bits_u128(&bytes, 90, 10), 0b11_0000_0000);
    }

    #[test]
    fn field_sums_match_reading_each_field() {
        // Widths of stubs for k 18..=50 (and narrower), counts up to a whole park, bytes ending
        // mid-field. 2047 fields of 47 bits sum below 2^58.
        let bytes: Vec<u8> = (0..4000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for width in [1u32, 7, 15, 16, 29, 47] {
            for len in [0usize, 1, 9, 100, 3999] {
                let b = &bytes[..len];
                for count in [0usize, 1, 2, 63, 1024, 2047] {
                    let each: u64 = (0..count as u64)
                        .map(|i| sharechain_bits(b, i * u64::from(width), width))
                        .sum();
                    assert_eq!(sum_fields(b, count, width), each, "{width} {len} {count}");
                }
            }
        }
    }

    #[test]
    fn short_and_oversized_parks_are_errors() {
        let s = Sizes::new(18);
        assert!(matches!(
            line_point(&s, 1, &[0; 10], 3),
            Err(ParkError::Short { .. })
        ));
        let mut park = vec![0u8; s.park(2) as usize];
        let at = (s.line_point + s.stubs) as usize;
        park[at..at + 2].copy_from_slice(&0x8010u16.to_le_bytes());
        assert_eq!(
            line_point(&s, 2, &park, 3),
            Err(ParkError::DeltasSize(0x8010))
        );
        assert_eq!(line_point(&s, 7, &park, 3), Err(ParkError::Table(7)));
    }
}
