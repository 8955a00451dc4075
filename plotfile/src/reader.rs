//! One lookup's reads: clips and dedupes the ranges of a level, sends them as one batch, keeps
//! what came back for the rest of the lookup, and counts the batches (sequential rounds).

use std::collections::HashMap;
use std::sync::Arc;

use crate::storage::{ReadRequest, Storage};
use crate::PlotError;

pub(crate) struct Reader<'a, S> {
    storage: &'a S,
    file_len: u64,
    cache: HashMap<u64, Arc<Vec<u8>>>,
    rounds: u32,
    reads: u32,
}

impl<'a, S: Storage> Reader<'a, S> {
    pub(crate) fn new(storage: &'a S, file_len: u64) -> Self {
        Reader {
            storage,
            file_len,
            cache: HashMap::new(),
            rounds: 0,
            reads: 0,
        }
    }

    /// Sequential batches sent so far.
    pub(crate) fn rounds(&self) -> u32 {
        self.rounds
    }

    /// The file's length.
    pub(crate) fn file_len(&self) -> u64 {
        self.file_len
    }

    /// Ranges read so far.
    pub(crate) fn reads(&self) -> u32 {
        self.reads
    }

    /// A range that must lie wholly inside the file.
    pub(crate) fn exact(&self, offset: u64, len: u64) -> Result<ReadRequest, PlotError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.file_len => Ok(ReadRequest {
                offset,
                len: len as usize,
            }),
            _ => Err(PlotError::Truncated {
                offset,
                needed: len,
                len: self.file_len,
            }),
        }
    }

    /// A range cut at the end of the file (for reads that take more than they may need).
    pub(crate) fn clipped(&self, offset: u64, len: u64) -> Result<ReadRequest, PlotError> {
        if offset >= self.file_len {
            return Err(PlotError::Truncated {
                offset,
                needed: len,
                len: self.file_len,
            });
        }
        Ok(ReadRequest {
            offset,
            len: len.min(self.file_len - offset) as usize,
        })
    }

    /// Reads every range not read before, in one batch. Ranges are keyed by offset: a plan
    /// never asks for two lengths at one offset.
    pub(crate) fn fetch(&mut self, requests: &[ReadRequest]) -> Result<(), PlotError> {
        let mut todo: Vec<ReadRequest> = Vec::new();
        for r in requests {
            if !self.cache.contains_key(&r.offset) && !todo.iter().any(|t| t.offset == r.offset) {
                todo.push(*r);
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        let got = self.storage.read_many(&todo)?;
        self.rounds += 1;
        self.reads += todo.len() as u32;
        for (r, bytes) in todo.iter().zip(got) {
            if bytes.len() < r.len {
                return Err(PlotError::Truncated {
                    offset: r.offset,
                    needed: r.len as u64,
                    len: r.offset + bytes.len() as u64,
                });
            }
            self.cache.insert(r.offset, Arc::new(bytes));
        }
        Ok(())
    }

    /// Bytes read at `offset` (after a `fetch` that asked for them).
    pub(crate) fn get(&self, offset: u64) -> Arc<Vec<u8>> {
        self.cache.get(&offset).cloned().unwrap_or_default()
    }
}
