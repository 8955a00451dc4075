//! The fixed layout of a chiapos v1 plot: the header, the table pointers, and the sizes of
//! parks and checkpoint entries that chiapos derives from k and its constants.

use crate::PlotError;

/// The magic at the start of every uncompressed (and gigahorse) chiapos plot.
pub const MAGIC: &[u8; 19] = b"Proof of Space Plot";
/// The only format description this reader accepts.
pub const FORMAT_V1: &[u8] = b"v1.0";
/// bladebit's compressed-plot magic ("PLOT", then a version word).
const BLADEBIT_V2_MAGIC: &[u8; 4] = b"PLOT";

/// Entries per park of a line-point table (and of table 7).
pub const ENTRIES_PER_PARK: u64 = 2048;
/// f7 values per C1 checkpoint (and C1 entries per C2 entry).
pub const CHECKPOINT_INTERVAL: u64 = 10_000;
/// Stubs are k minus this many bits.
pub const STUB_MINUS_BITS: u32 = 3;
/// Smallest k chiapos plots (its tests use 18).
pub const MIN_K: u8 = 18;
/// Largest k chiapos accepts.
pub const MAX_K: u8 = 50;

/// Bytes that always hold the whole header: fixed fields, a format description and a memo of
/// the usual sizes, and the ten pointers. Longer ones cost one more read.
pub const HEADER_PROBE: usize = 1024;

/// Bytes to hold `bits` bits.
pub const fn byte_align(bits: u64) -> u64 {
    bits.div_ceil(8)
}

/// Size in bytes of the fields chiapos derives from k.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// k.
    pub k: u8,
    /// A park's first line point.
    pub line_point: u64,
    /// A park's stubs.
    pub stubs: u64,
    /// A table-1 park's delta area (tables 2..=6 use [`Sizes::deltas`]).
    pub deltas_t1: u64,
    /// A park's delta area for tables 2..=6.
    pub deltas: u64,
    /// One park of table 7 (k + 1 bits per entry).
    pub p7_park: u64,
    /// One C1 or C2 entry.
    pub checkpoint_entry: u64,
    /// One C3 park (a 2-byte size, then the encoded deltas).
    pub c3_park: u64,
}

impl Sizes {
    /// The sizes for `k`.
    pub fn new(k: u8) -> Sizes {
        let k64 = u64::from(k);
        let epp1 = ENTRIES_PER_PARK - 1;
        // chiapos truncates these products of doubles to integers before aligning.
        let deltas_t1 = (epp1 as f64 * 5.6) as u64;
        let deltas = (epp1 as f64 * 3.5) as u64;
        let c3_bits = if k < 20 {
            8 * CHECKPOINT_INTERVAL
        } else {
            (2.4 * CHECKPOINT_INTERVAL as f64) as u64
        };
        Sizes {
            k,
            line_point: byte_align(2 * k64),
            stubs: byte_align(epp1 * (k64 - u64::from(STUB_MINUS_BITS))),
            deltas_t1: byte_align(deltas_t1),
            deltas: byte_align(deltas),
            p7_park: byte_align((k64 + 1) * ENTRIES_PER_PARK),
            checkpoint_entry: byte_align(k64),
            c3_park: byte_align(c3_bits),
        }
    }

    /// The largest encoded delta area of a park of `table` (1..=6).
    pub fn max_deltas(&self, table: u8) -> u64 {
        if table == 1 {
            self.deltas_t1
        } else {
            self.deltas
        }
    }

    /// The size of one park of line-point table `table` (1..=6).
    pub fn park(&self, table: u8) -> u64 {
        self.line_point + self.stubs + self.max_deltas(table)
    }
}

/// What a plot's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotHeader {
    /// The plot id (ChaCha8 key material).
    pub id: [u8; 32],
    /// The plot size parameter.
    pub k: u8,
    /// The memo (pool key or contract, farmer key, local master secret key).
    pub memo: Vec<u8>,
    /// File offsets of tables P1..P7, C1, C2, C3 (index 1..=10; index 0 unused).
    pub pointers: [u64; 11],
    /// Bytes the header takes.
    pub len: usize,
}

impl PlotHeader {
    /// Parses a header from the first bytes of a file: `Ok(Ok(header))`, or `Ok(Err(need))`
    /// when `bytes` is too short and the first `need` bytes must be read to go on.
    pub fn parse(bytes: &[u8]) -> Result<Result<PlotHeader, usize>, PlotError> {
        if bytes.len() >= 4 && &bytes[..4] == BLADEBIT_V2_MAGIC {
            return Err(PlotError::CompressedPlot);
        }
        if bytes.len() < MAGIC.len() {
            return Ok(Err(MAGIC.len()));
        }
        if &bytes[..MAGIC.len()] != MAGIC {
            return Err(PlotError::BadMagic);
        }
        let mut at = MAGIC.len();
        let fixed = at + 32 + 1 + 2;
        if bytes.len() < fixed {
            return Ok(Err(fixed));
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&bytes[at..at + 32]);
        at += 32;
        let k = bytes[at];
        at += 1;
        let fmt_len = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
        at += 2;
        if bytes.len() < at + fmt_len + 2 {
            return Ok(Err(at + fmt_len + 2));
        }
        let fmt = &bytes[at..at + fmt_len];
        if fmt != FORMAT_V1 {
            return Err(PlotError::UnsupportedFormat(
                String::from_utf8_lossy(fmt).into_owned(),
            ));
        }
        at += fmt_len;
        let memo_len = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
        at += 2;
        let end = at + memo_len + 80;
        if bytes.len() < end {
            return Ok(Err(end));
        }
        if !(MIN_K..=MAX_K).contains(&k) {
            return Err(PlotError::KOutOfRange(k));
        }
        let memo = bytes[at..at + memo_len].to_vec();
        at += memo_len;
        let mut pointers = [0u64; 11];
        for p in pointers.iter_mut().skip(1) {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            *p = u64::from_be_bytes(w);
            at += 8;
        }
        Ok(Ok(PlotHeader {
            id,
            k,
            memo,
            pointers,
            len: at,
        }))
    }

    /// Checks the pointers against the header and the file length: tables in file order, and
    /// the C2 table holding at least two entries (as chiapos requires).
    pub fn check_pointers(&self, file_len: u64) -> Result<(), PlotError> {
        let p = &self.pointers;
        if p[1] < self.len as u64 {
            return Err(PlotError::BadPointers("table 1 starts inside the header"));
        }
        if p[1..].windows(2).any(|w| w[0] > w[1]) {
            return Err(PlotError::BadPointers("tables out of order"));
        }
        if p[10] > file_len {
            return Err(PlotError::Truncated {
                offset: p[10],
                needed: 0,
                len: file_len,
            });
        }
        let entry = Sizes::new(self.k).checkpoint_entry;
        if (p[10] - p[9]) / entry < 2 {
            return Err(PlotError::BadPointers(
                "C2 table has fewer than two entries",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn header_bytes(k: u8, fmt: &[u8], memo: &[u8], pointers: [u64; 10]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend([7u8; 32]);
        b.push(k);
        b.extend((fmt.len() as u16).to_be_bytes());
        b.extend(fmt);
        b.extend((memo.len() as u16).to_be_bytes());
        b.extend(memo);
        for p in pointers {
            b.extend(p.to_be_bytes());
        }
        b
    }

    #[test]
    fn sizes_match_chiapos_constants() {
        let s = Sizes::new(18);
        assert_eq!(s.line_point, 5);
        assert_eq!(s.stubs, (2047 * 15u64).div_ceil(8));
        assert_eq!(s.deltas_t1, 1433);
        assert_eq!(s.deltas, 896);
        assert_eq!(s.c3_park, 10_000);
        assert_eq!(Sizes::new(20).c3_park, 3000);
        assert_eq!(Sizes::new(32).p7_park, 33 * 256);
        assert_eq!(Sizes::new(32).checkpoint_entry, 4);
    }

    #[test]
    fn parses_and_asks_for_more() {
        let b = header_bytes(18, b"v1.0", &[1; 112], [1000; 10]);
        let h = PlotHeader::parse(&b).unwrap().unwrap();
        assert_eq!(h.k, 18);
        assert_eq!(h.memo.len(), 112);
        assert_eq!(h.len, b.len());
        assert_eq!(h.pointers[10], 1000);
        for cut in 0..b.len() {
            let need = PlotHeader::parse(&b[..cut]).unwrap().unwrap_err();
            assert!(need > cut && need <= b.len(), "cut {cut}");
        }
    }

    #[test]
    fn refuses_other_formats() {
        let b = header_bytes(18, b"v2.0", &[], [0; 10]);
        assert!(matches!(
            PlotHeader::parse(&b),
            Err(PlotError::UnsupportedFormat(f)) if f == "v2.0"
        ));
        assert!(matches!(
            PlotHeader::parse(b"PLOT\x02\x00\x00\x00"),
            Err(PlotError::CompressedPlot)
        ));
        assert!(matches!(
            PlotHeader::parse(b"Proof of Space Plat and more"),
            Err(PlotError::BadMagic)
        ));
        let b = header_bytes(60, b"v1.0", &[], [0; 10]);
        assert!(matches!(
            PlotHeader::parse(&b),
            Err(PlotError::KOutOfRange(60))
        ));
    }
}
