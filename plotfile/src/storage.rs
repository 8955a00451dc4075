//! Where plot bytes come from. A [`Storage`] answers a batch of byte ranges at once, so that
//! storage with high latency (object stores, network disks) serves each batch in one round
//! trip: the prover plans its reads level by level and hands each level over as one batch.
//!
//! Backends: [`FileStorage`] (a local file), [`crate::HttpStorage`] (HTTP range requests), and
//! [`Latency`], a wrapper that adds a fixed delay to every batch and counts what passes through.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// One byte range to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReadRequest {
    /// Offset from the start of the file.
    pub offset: u64,
    /// Bytes wanted.
    pub len: usize,
}

/// Why storage could not answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A local read failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// An HTTP request failed or answered unexpectedly.
    #[error("http: {0}")]
    Http(String),
}

/// Random-access, read-only bytes of one plot.
pub trait Storage: Send + Sync {
    /// Total length in bytes.
    fn len(&self) -> Result<u64, StorageError>;

    /// Whether the storage is empty.
    fn is_empty(&self) -> Result<bool, StorageError> {
        Ok(self.len()? == 0)
    }

    /// Reads every range, concurrently where the backend can; answers in request order. A range
    /// that runs past the end comes back short (callers clip to [`Storage::len`] beforehand).
    fn read_many(&self, requests: &[ReadRequest]) -> Result<Vec<Vec<u8>>, StorageError>;
}

impl<S: Storage + ?Sized> Storage for &S {
    fn len(&self) -> Result<u64, StorageError> {
        (**self).len()
    }
    fn read_many(&self, requests: &[ReadRequest]) -> Result<Vec<Vec<u8>>, StorageError> {
        (**self).read_many(requests)
    }
}

impl<S: Storage + ?Sized> Storage for Box<S> {
    fn len(&self) -> Result<u64, StorageError> {
        (**self).len()
    }
    fn read_many(&self, requests: &[ReadRequest]) -> Result<Vec<Vec<u8>>, StorageError> {
        (**self).read_many(requests)
    }
}

/// A local plot file, read with positioned reads (no shared cursor, so one handle serves
/// concurrent lookups).
#[derive(Debug)]
pub struct FileStorage {
    file: File,
    len: u64,
}

impl FileStorage {
    /// Opens `path` read-only.
    pub fn open(path: impl AsRef<Path>) -> Result<FileStorage, StorageError> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(FileStorage { file, len })
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

impl Storage for FileStorage {
    fn len(&self) -> Result<u64, StorageError> {
        Ok(self.len)
    }

    fn read_many(&self, requests: &[ReadRequest]) -> Result<Vec<Vec<u8>>, StorageError> {
        // A local disk gains little from parallel reads of a few kilobytes; keep it simple.
        requests
            .iter()
            .map(|r| {
                let want = (r.len as u64).min(self.len.saturating_sub(r.offset)) as usize;
                let mut buf = vec![0u8; want];
                let mut done = 0;
                while done < want {
                    let n = read_at(&self.file, &mut buf[done..], r.offset + done as u64)?;
                    if n == 0 {
                        break;
                    }
                    done += n;
                }
                buf.truncate(done);
                Ok(buf)
            })
            .collect()
    }
}

/// Bytes in memory (tests, fuzzing, plots already loaded).
#[derive(Debug, Clone)]
pub struct MemStorage(pub Vec<u8>);

impl Storage for MemStorage {
    fn len(&self) -> Result<u64, StorageError> {
        Ok(self.0.len() as u64)
    }

    fn read_many(&self, requests: &[ReadRequest]) -> Result<Vec<Vec<u8>>, StorageError> {
        Ok(requests
            .iter()
            .map(|r| {
                let start = (r.offset.min(self.0.len() as u64)) as usize;
                let end = start.saturating_add(r.len).min(self.0.len());
                self.0[start..end].to_vec()
            })
            .collect())
    }
}

/// Wraps a storage with a fixed delay per batch (the requests of a batch are in flight together,
/// so a batch costs one delay) and counts batches, reads and bytes.
#[derive(Debug)]
pub struct Latency<S> {
    inner: S,
    delay: Duration,
    batches: AtomicU64,
    reads: AtomicU64,
    bytes: AtomicU64,
}

/// What passed through a [`Latency`] wrapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoCounts {
    /// Batches (round trips).
    pub batches: u64,
    /// Ranges read.
    pub reads: u64,
    /// Bytes returned.
    pub bytes: u64,
}

impl<S> Latency<S> {
    /// Adds `delay` to every batch of `inner`.
    pub fn new(inner: S, delay: Duration) -> Latency<S> {
        Latency {
            inner,
            delay,
            batches: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// Counts so far.
    pub fn counts(&self) -> IoCounts {
        IoCounts {
            batches: self.batches.load(Ordering::Relaxed),
            reads: self.reads.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    /// Sets the counts back to zero.
    pub fn reset(&self) {
        self.batches.store(0, Ordering::Relaxed);
        self.reads.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: Storage> Storage for Latency<S> {
    fn len(&self) -> Result<u64, StorageError> {
        self.inner.len()
    }

    fn read_many(&self, requests: &[ReadRequest]) -> Result<Vec<Vec<u8>>, StorageError> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        let out = self.inner.read_many(requests)?;
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.reads
            .fetch_add(requests.len() as u64, Ordering::Relaxed);
        self.bytes
            .fetch_add(out.iter().map(|b| b.len() as u64).sum(), Ordering::Relaxed);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_and_latency_clip_and_count() {
        let s = Latency::new(MemStorage((0..100u8).collect()), Duration::ZERO);
        let out = s
            .read_many(&[
                ReadRequest { offset: 10, len: 3 },
                ReadRequest { offset: 98, len: 5 },
                ReadRequest {
                    offset: 200,
                    len: 5,
                },
            ])
            .unwrap();
        assert_eq!(out, vec![vec![10, 11, 12], vec![98, 99], vec![]]);
        assert_eq!(
            s.counts(),
            IoCounts {
                batches: 1,
                reads: 3,
                bytes: 5
            }
        );
    }
}
