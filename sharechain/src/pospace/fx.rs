//! Fx for tables 2..=7 (BLAKE3 over packed y and metadata) and the matching function.

use super::bits::{BitWriter, Meta};
use super::EXTRA_BITS;

/// Size of a B group.
pub const K_B: u64 = 119;
/// Size of a C group.
pub const K_C: u64 = 127;
/// Size of a BC group (bucket): two entries can only match across adjacent buckets.
pub const K_BC: u64 = K_B * K_C;

/// Metadata length of each table's entries, in multiples of k (index = table).
const VECTOR_LENS: [u32; 8] = [0, 0, 1, 2, 4, 4, 3, 2];

/// Whether `y_l` (left, proof order) and `y_r` match: adjacent buckets, left in the lower one,
/// and for some m < 64, `b_r − b_l ≡ m (mod kB)` and `c_r − c_l ≡ (2m + parity)² (mod kC)`.
#[inline]
pub fn matches(y_l: u64, y_r: u64) -> bool {
    let bucket_l = y_l / K_BC;
    if bucket_l + 1 != y_r / K_BC {
        return false;
    }
    let parity = bucket_l % 2;
    let (l, r) = (y_l % K_BC, y_r % K_BC);
    let (b_l, c_l) = (l / K_C, l % K_C);
    let (b_r, c_r) = (r / K_C, r % K_C);
    // b_r − b_l determines m uniquely, so at most one m can match.
    let m = (b_r + K_B - b_l) % K_B;
    if m >= 1 << EXTRA_BITS {
        return false;
    }
    let t = 2 * m + parity;
    (c_r + K_C - c_l) % K_C == (t * t) % K_C
}

/// One evaluation of f_table (table in 2..=7): returns y (k + 6 bits) and the metadata for the
/// next table (`meta_l ‖ meta_r` for tables 2 and 3, digest bits after y for 4..=6, none for 7).
#[inline]
pub fn eval(k: u8, table: u8, y_l: u64, meta_l: &Meta, meta_r: &Meta) -> (u64, Meta) {
    let k = u32::from(k);
    let y_bits = k + EXTRA_BITS;
    let mut input = BitWriter::new();
    input.push(y_l, y_bits);
    meta_l.write_to(&mut input);
    meta_r.write_to(&mut input);
    let mut buf = [0u8; 64];
    let digest = blake3::hash(input.bytes(&mut buf));
    let digest = digest.as_bytes();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    let y = u64::from_be_bytes(head) >> (64 - y_bits);
    let meta = match table {
        2 | 3 => {
            let mut c = *meta_l;
            c.append(meta_r);
            c
        }
        4..=6 => {
            let len = VECTOR_LENS[usize::from(table) + 1] * k;
            Meta::from_bytes(digest, y_bits as usize, len)
        }
        _ => Meta::EMPTY,
    };
    (y, meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks one Fx evaluation at k = 16 against chiapos's own unit test values
    /// (`tests/test.cpp`, "F functions" / "Fx": table, k, L, R, y1, expected y, expected metadata).
    fn check(table: u8, l: u128, r: u128, y1: u64, y: u64, c: u128) {
        let k = 16u8;
        let size = VECTOR_LENS[usize::from(table)] * u32::from(k);
        let to_meta = |v: u128| {
            let mut m = Meta::EMPTY;
            if size > 64 {
                m.push((v >> 64) as u64, size - 64);
                m.push(v as u64, 64);
            } else {
                m.push(v as u64, size);
            }
            m
        };
        let (got_y, got_c) = eval(k, table, y1, &to_meta(l), &to_meta(r));
        assert_eq!(got_y, y, "table {table} y");
        if c != 0 {
            let mut w = BitWriter::new();
            got_c.write_to(&mut w);
            let mut buf = [0u8; 64];
            let bytes = w.bytes(&mut buf);
            let mut v = 0u128;
            for (i, b) in bytes.iter().enumerate() {
                v = (v << 8) | u128::from(*b);
                if i == 15 {
                    break;
                }
            }
            v >>= 8 * bytes.len().min(16) as u32 - got_c.len();
            assert_eq!(v, c, "table {table} metadata");
        }
    }

    #[test]
    fn chiapos_fx_unit_values() {
        check(2, 0x44cb, 0x204f, 0x20a61a, 0x2af546, 0x44cb204f);
        check(2, 0x3c5f, 0xfda9, 0x3988ec, 0x15293b, 0x3c5ffda9);
        check(
            3,
            0x35bf992d,
            0x7ce42c82,
            0x31e541,
            0xf73b3,
            0x35bf992d7ce42c82,
        );
        check(
            3,
            0x7204e52d,
            0xf1fd42a2,
            0x28a188,
            0x3fb0b5,
            0x7204e52df1fd42a2,
        );
        check(
            4,
            0x5b6e6e307d4bedc,
            0x8a9a021ea648a7dd,
            0x30cb4c,
            0x11ad5,
            0xd4bd0b144fc26138,
        );
        check(
            4,
            0xb9d179e06c0fd4f5,
            0xf06d3fef701966a0,
            0x1dd5b6,
            0xe69a2,
            0xd02115f512009d4d,
        );
        check(
            5,
            0xc2cd789a380208a9,
            0x19999e3fa46d6753,
            0x25f01e,
            0x1f22bd,
            0xabe423040a33,
        );
        check(
            5,
            0xbe3edc0a1ef2a4f0,
            0x4da98f1d3099fdf5,
            0x3feb18,
            0x31501e,
            0x7300a3a03ac5,
        );
        check(
            6,
            0xc965815a47c5,
            0xf5e008d6af57,
            0x1f121a,
            0x1cabbe,
            0xc8cc6947,
        );
        check(
            6,
            0xd420677f6cbd,
            0x5894aa2ca1af,
            0x2efde9,
            0xc2121,
            0x421bb8ec,
        );
        check(7, 0x5fec898f, 0x82283d15, 0x14f410, 0x24c3c2, 0);
        check(7, 0x64ac5db9, 0x7923986, 0x590fd, 0x1c74a2, 0);
    }

    /// At k = 50 the largest metadata (4k = 200 bits after the 56-bit y) ends exactly at the
    /// digest's last bit, and the largest input (9k + 6 = 456 bits) still fits one BLAKE3 block.
    /// chiapos computes that end in 8 bits (256 wraps to 0); here every length is exact.
    #[test]
    fn k50_metadata_uses_the_whole_digest() {
        let k = 50u8;
        let mut big = Meta::EMPTY;
        big.push(u64::MAX >> 14, 50);
        big.push(u64::MAX, 64);
        big.push(u64::MAX, 64);
        big.push(u64::MAX >> 42, 22);
        assert_eq!(big.len(), 200);
        let (y, m) = eval(k, 4, (1 << 56) - 1, &big, &big);
        assert!(y < 1 << 56);
        assert_eq!(m.len(), 200);
        let (_, m5) = eval(k, 5, 0, &m, &m);
        assert_eq!(m5.len(), 150);
        let (_, m6) = eval(k, 6, 0, &m5, &m5);
        assert_eq!(m6.len(), 100);
        let (_, m7) = eval(k, 7, 0, &m6, &m6);
        assert_eq!(m7.len(), 0);
    }

    /// The matching rule as chiapos tabulates it: for each left position i in its bucket and m,
    /// the one right position ((i / kC + m) % kB)·kC + ((2m + parity)² + i) % kC.
    #[test]
    fn matches_agrees_with_target_table() {
        for bucket in [0u64, 1, 2, 77] {
            let parity = bucket % 2;
            for i in (0..K_BC).step_by(37) {
                let y_l = bucket * K_BC + i;
                let targets: Vec<u64> = (0..64u64)
                    .map(|m| {
                        let t = 2 * m + parity;
                        ((i / K_C + m) % K_B) * K_C + (t * t + i) % K_C
                    })
                    .collect();
                for r in (0..K_BC).step_by(5).chain(targets.iter().copied()) {
                    let y_r = (bucket + 1) * K_BC + r;
                    assert_eq!(
                        matches(y_l, y_r),
                        targets.contains(&r),
                        "y_l {y_l} y_r {y_r}"
                    );
                    // Same or non-adjacent buckets never match; neither does the swapped pair.
                    assert!(!matches(y_l, bucket * K_BC + r));
                    assert!(!matches(y_l, (bucket + 2) * K_BC + r));
                    assert!(!matches(y_r, y_l));
                }
            }
        }
    }
}
