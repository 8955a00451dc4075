//! Finding the table-7 entries for a challenge: the C2 table (in memory) picks a C1 block,
//! C1 picks a C3 park, C3's deltas give the table-7 positions whose f7 is the challenge's first
//! k bits, and table 7 gives their positions in table 6. Step for step as chiapos's
//! `GetP7Entries`, in two read batches, or one with the C1 table kept in memory (see
//! [`crate::Prover`]).

use crate::format::{PlotHeader, Sizes, CHECKPOINT_INTERVAL, ENTRIES_PER_PARK};
use crate::park::{self, top_bits};
use crate::reader::Reader;
use crate::storage::Storage;
use crate::PlotError;

/// Positions into table 6 of the f7 entries equal to the challenge's first k bits,
/// following chiapos's `GetP7Entries` step for step.
pub(crate) fn p7_entries<S: Storage>(
    header: &PlotHeader,
    sizes: &Sizes,
    c2: &[u64],
    c1_table: Option<&[u8]>,
    rd: &mut Reader<'_, S>,
    challenge: &[u8; 32],
) -> Result<Vec<u64>, PlotError> {
    let k = header.k;
    let p = &header.pointers;
    let ci = CHECKPOINT_INTERVAL as i64;
    let f7 = top_bits(challenge, k);

    let mut c1_index: i64 = 0;
    let mut broke = false;
    let mut c2_f7 = 0;
    for &e in c2 {
        c2_f7 = e;
        if f7 < e {
            c1_index -= ci;
            broke = true;
            break;
        }
        c1_index += ci;
    }
    if c1_index < 0 {
        return Ok(Vec::new());
    }
    if !broke {
        c1_index -= ci;
    }
    if c1_index < 0 {
        // Only an empty C2 gets here; chiapos answers it with no proof.
        return Ok(Vec::new());
    }

    // Round 1: the C1 interval, and the entry before it for a value spanning two parks.
    let es = sizes.checkpoint_entry;
    let first = (c1_index - 1).max(0) as u64;
    let start = p[8] + first * es;
    let end = (p[8] + (c1_index as u64 + CHECKPOINT_INTERVAL) * es).min(p[10]);
    if start >= end {
        return Err(PlotError::CorruptCheckpoint("C1 entry outside its table"));
    }
    // With the C1 table in memory this round is skipped.
    let c1 = match c1_table {
        Some(table) => {
            let from = (start - p[8]) as usize;
            let to = ((end - p[8]) as usize).min(table.len());
            table.get(from..to).unwrap_or_default().to_vec().into()
        }
        None => {
            let req = rd.clipped(start, end - start)?;
            rd.fetch(&[req])?;
            rd.get(start)
        }
    };
    let c1_entry = |i: i64| -> Result<u64, PlotError> {
        // Entries before the block read only come up when C1 and C2 disagree.
        let rel = u64::try_from(i)
            .ok()
            .and_then(|i| i.checked_sub(first))
            .ok_or(PlotError::CorruptCheckpoint("C1 and C2 disagree"))?
            * es;
        c1.get(rel as usize..(rel + es) as usize)
            .map(|e| top_bits(e, k))
            .ok_or(PlotError::CorruptCheckpoint("C1 scan runs past its table"))
    };

    let mut curr_f7 = c2_f7;
    let mut prev_f7 = c2_f7;
    broke = false;
    let base = c1_index;
    for step in 0..ci {
        let read_f7 = c1_entry(base + step)?;
        if step != 0 && read_f7 == 0 {
            // The C1 table ends with a zero entry.
            break;
        }
        curr_f7 = read_f7;
        if f7 < curr_f7 {
            curr_f7 = prev_f7;
            c1_index -= 1;
            broke = true;
            break;
        }
        c1_index += 1;
        prev_f7 = curr_f7;
    }
    if !broke {
        c1_index -= 1;
    }
    if c1_index < 0 {
        return Err(PlotError::CorruptCheckpoint("f7 below the first C1 entry"));
    }
    let double = f7 == curr_f7 && c1_index > 0;

    // Round 2: C3 park(s) and the table-7 parks of the interval.
    let c3 = sizes.c3_park;
    let c3_first = (if double { c1_index - 1 } else { c1_index }) as u64;
    let c3_count = if double { 2 } else { 1 };
    let c3_req = rd.exact(p[10] + c3_first * c3, c3 * c3_count)?;
    let c1u = c1_index as u64;
    let park_lo = (c1u * CHECKPOINT_INTERVAL + 1) / ENTRIES_PER_PARK;
    let park_hi = ((c1u + 1) * CHECKPOINT_INTERVAL - 1) / ENTRIES_PER_PARK;
    let p7_size = sizes.p7_park;
    let p7_start = p[7] + park_lo * p7_size;
    let p7_req = rd.clipped(p7_start, (park_hi - park_lo + 1) * p7_size)?;
    rd.fetch(&[c3_req, p7_req])?;
    let c3_bytes = rd.get(c3_req.offset);
    let c3_park = |j: u64| -> Result<&[u8], PlotError> {
        let park = &c3_bytes[(j * c3) as usize..((j + 1) * c3) as usize];
        let size = u64::from(u16::from_be_bytes([park[0], park[1]]));
        if size > c3 - 2 {
            return Err(PlotError::CorruptCheckpoint("C3 park size too large"));
        }
        Ok(&park[2..2 + size as usize])
    };
    let count_from = c1_index * ci;
    let positions = if double {
        let before = c1_entry(c1_index - 1)?;
        let mut found = park::c3_positions(k, before, f7, count_from, c3_park(0)?, c1_index - 1)
            .map_err(PlotError::CorruptC3)?;
        found.extend(
            park::c3_positions(k, curr_f7, f7, count_from, c3_park(1)?, c1_index)
                .map_err(PlotError::CorruptC3)?,
        );
        found
    } else {
        park::c3_positions(k, curr_f7, f7, count_from, c3_park(0)?, c1_index)
            .map_err(PlotError::CorruptC3)?
    };

    let p7_bytes = rd.get(p7_start);
    let mut entries = Vec::with_capacity(positions.len());
    for &pos in &positions {
        let rel = (pos / ENTRIES_PER_PARK - park_lo) * p7_size;
        let park =
            p7_bytes
                .get(rel as usize..(rel + p7_size) as usize)
                .ok_or(PlotError::Truncated {
                    offset: p7_start + rel,
                    needed: p7_size,
                    len: rd.file_len(),
                })?;
        entries.push(park::p7_entry(sizes, park, pos % ENTRIES_PER_PARK));
    }
    Ok(entries)
}
