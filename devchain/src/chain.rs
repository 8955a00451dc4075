//! The chainstate thread: owns the kernel's `ChainstateManager`, the UTXO set and the mempool.
//!
//! The kernel is blocking FFI, so it lives on one dedicated OS thread. Async code talks to it
//! through [`ChainHandle::call`], which sends a closure over a bounded channel and awaits its
//! result; nothing else touches the chainstate, so no locks are needed. Every tip change (and
//! every mempool change) is published on a `watch` channel ([`TipState`]) for long polling and
//! P2P announcements.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::block::Header;
use bitcoin::consensus::encode::deserialize;
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, Transaction, Txid};
use bitcoinkernel::prelude::*;
use bitcoinkernel::{
    BlockTreeEntry, BlockValidationResult, BlockValidationStateRef, ChainType, ChainstateManager,
    Context, ContextBuilder, ValidationMode,
};
use tokio::sync::{mpsc, oneshot, watch};

use super::mempool::{Mempool, MempoolEntry, MempoolReject, NextBlock};
use super::utxo::UtxoSet;

/// Errors of the chainstate thread.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The kernel refused or failed an operation (its message).
    #[error("bitcoin kernel: {0}")]
    Kernel(String),
    /// The chainstate thread is gone (shut down); nothing more can be asked of it.
    #[error("chainstate thread has stopped")]
    Stopped,
    /// Reading or writing the data directory failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl From<bitcoinkernel::KernelError> for ChainError {
    fn from(e: bitcoinkernel::KernelError) -> Self {
        Self::Kernel(e.to_string())
    }
}

/// The active tip, as published to async tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TipState {
    /// The tip's block hash.
    pub hash: BlockHash,
    /// Its height (0 = genesis).
    pub height: u32,
    /// Its header.
    pub header: Header,
    /// Mempool change counter (part of the long-poll id).
    pub mempool_updates: u64,
}

/// A block header with its place in the block tree.
#[derive(Debug, Clone)]
pub struct HeaderInfo {
    pub hash: BlockHash,
    pub header: Header,
    pub height: u32,
    /// Blocks on top of it including itself; -1 when not in the active chain.
    pub confirmations: i64,
    pub next: Option<BlockHash>,
    pub median_time_past: u32,
    /// Cumulative work as 64 hex digits.
    pub chainwork: String,
}

type Job = Box<dyn FnOnce(&mut ChainState) + Send>;

/// Cloneable handle to the chainstate thread.
#[derive(Clone)]
pub struct ChainHandle {
    jobs: mpsc::Sender<Job>,
    tip: watch::Receiver<TipState>,
}

impl std::fmt::Debug for ChainHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainHandle").finish_non_exhaustive()
    }
}

impl ChainHandle {
    /// Run `f` on the chainstate thread and return its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ChainState) -> R + Send + 'static,
    ) -> Result<R, ChainError> {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move |state| {
            let _ = reply.send(f(state));
        });
        self.jobs.send(job).await.map_err(|_| ChainError::Stopped)?;
        result.await.map_err(|_| ChainError::Stopped)
    }

    /// Subscribe to tip (and mempool) changes.
    pub fn subscribe(&self) -> watch::Receiver<TipState> {
        self.tip.clone()
    }

    /// The active tip now.
    pub fn tip(&self) -> TipState {
        self.tip.borrow().clone()
    }
}

/// Open the chainstate in `datadir` and start its thread. The thread ends (closing the
/// chainstate cleanly) when every [`ChainHandle`] is dropped or after [`ChainState::close`];
/// join the returned handle to wait. A temporary `datadir` handed over as `tempdir` is removed
/// only after the chainstate is closed.
pub fn spawn(
    datadir: &Path,
    tempdir: Option<tempfile::TempDir>,
) -> Result<(ChainHandle, std::thread::JoinHandle<()>), ChainError> {
    let state = ChainState::open(datadir)?;
    let (tip_tx, tip_rx) = watch::channel(state.tip_state());
    let (jobs_tx, mut jobs_rx) = mpsc::channel::<Job>(64);
    let thread = std::thread::Builder::new()
        .name("devchain-kernel".into())
        .spawn(move || {
            let mut state = state;
            state.tip_tx = Some(tip_tx);
            while let Some(job) = jobs_rx.blocking_recv() {
                // A bug in one request must not take the chain down with it; the caller sees
                // its reply channel closed.
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut state)));
                if outcome.is_err() {
                    tracing::error!("a chainstate request panicked");
                }
                if state.closing {
                    break;
                }
            }
            drop(state);
            drop(tempdir);
            tracing::debug!("chainstate closed");
        })?;
    Ok((
        ChainHandle {
            jobs: jobs_tx,
            tip: tip_rx,
        },
        thread,
    ))
}

pub(super) type CheckedLog = Arc<Mutex<Vec<([u8; 32], ValidationMode, BlockValidationResult)>>>;

/// Everything the chainstate thread owns.
pub struct ChainState {
    // Field order matters: the manager must be dropped before its context.
    pub(super) chainman: ChainstateManager,
    _context: Context,
    pub(super) checked: CheckedLog,
    pub(super) active: Vec<(BlockHash, Header)>,
    pub(super) index: HashMap<BlockHash, u32>,
    pub utxo: UtxoSet,
    pub mempool: Mempool,
    pub(super) invalid: HashSet<BlockHash>,
    tip_tx: Option<watch::Sender<TipState>>,
    closing: bool,
}

pub(crate) fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

fn kernel_hash(hash: &BlockHash) -> Option<bitcoinkernel::BlockHash> {
    bitcoinkernel::BlockHash::new(&hash.to_byte_array()).ok()
}

fn entry_hash(entry: &BlockTreeEntry<'_>) -> BlockHash {
    BlockHash::from_byte_array(entry.block_hash().to_bytes())
}

fn entry_header(entry: &BlockTreeEntry<'_>) -> Result<Header, ChainError> {
    let bytes = entry.header().consensus_encode()?;
    deserialize(&bytes).map_err(|e| ChainError::Kernel(format!("header decode: {e}")))
}

fn read_block(
    chainman: &ChainstateManager,
    entry: &BlockTreeEntry<'_>,
) -> Result<Block, ChainError> {
    let bytes = chainman.read_block_data(entry)?.consensus_encode()?;
    deserialize(&bytes).map_err(|e| ChainError::Kernel(format!("block decode: {e}")))
}

/// Heights of a block locator from `tip`: ten one apart, then doubling steps, then genesis.
fn locator_heights(tip: u32) -> Vec<u32> {
    let mut heights = Vec::new();
    let mut height = tip;
    let mut step = 1;
    loop {
        heights.push(height);
        if height == 0 {
            return heights;
        }
        if heights.len() >= 10 {
            step *= 2;
        }
        height = height.saturating_sub(step);
    }
}

fn median(mut times: Vec<u32>) -> u32 {
    times.sort_unstable();
    times.get(times.len() / 2).copied().unwrap_or(0)
}

impl ChainState {
    fn open(datadir: &Path) -> Result<Self, ChainError> {
        let dir = datadir.join("regtest");
        let blocks = dir.join("blocks");
        std::fs::create_dir_all(&blocks)?;
        super::kernel_log::init();
        let checked: CheckedLog = Arc::default();
        let log = checked.clone();
        let context = ContextBuilder::new()
            .chain_type(ChainType::Regtest)
            .with_block_checked_validation(
                move |block: bitcoinkernel::Block, state: BlockValidationStateRef<'_>| {
                    if let Ok(mut log) = log.lock() {
                        log.push((block.hash().to_bytes(), state.mode(), state.result()));
                    }
                },
            )
            .build()?;
        let chainman = ChainstateManager::builder(
            &context,
            &dir.to_string_lossy(),
            &blocks.to_string_lossy(),
        )?
        .build()?;
        chainman.import_blocks()?;
        let mut state = ChainState {
            chainman,
            _context: context,
            checked,
            active: Vec::new(),
            index: HashMap::new(),
            utxo: UtxoSet::default(),
            mempool: Mempool::default(),
            invalid: HashSet::new(),
            tip_tx: None,
            closing: false,
        };
        state.sync_active()?;
        tracing::info!(
            height = state.height(),
            tip = %state.tip_hash(),
            coins = state.utxo.len(),
            datadir = %datadir.display(),
            "devchain chainstate loaded"
        );
        Ok(state)
    }

    pub fn height(&self) -> u32 {
        self.active.len().saturating_sub(1) as u32
    }

    pub fn tip_hash(&self) -> BlockHash {
        self.active
            .last()
            .map(|a| a.0)
            .unwrap_or_else(BlockHash::all_zeros)
    }

    pub fn tip_header(&self) -> Option<Header> {
        self.active.last().map(|a| a.1)
    }

    /// Median time past of the active tip.
    pub fn median_time_past(&self) -> u32 {
        let start = self.active.len().saturating_sub(11);
        median(self.active[start..].iter().map(|a| a.1.time).collect())
    }

    pub fn next_block(&self) -> NextBlock {
        NextBlock {
            height: self.height() + 1,
            median_time_past: self.median_time_past(),
        }
    }

    fn tip_state(&self) -> TipState {
        TipState {
            hash: self.tip_hash(),
            height: self.height(),
            header: self
                .tip_header()
                .unwrap_or(bitcoin::constants::genesis_block(bitcoin::Network::Regtest).header),
            mempool_updates: self.mempool.updates,
        }
    }

    fn publish(&self) {
        if let Some(tx) = &self.tip_tx {
            let state = self.tip_state();
            tx.send_if_modified(|current| {
                if *current == state {
                    false
                } else {
                    *current = state;
                    true
                }
            });
        }
    }

    /// Bring `active`, the UTXO set and the mempool in line with the kernel's active chain.
    pub(super) fn sync_active(&mut self) -> Result<(), ChainError> {
        let chain = self.chainman.active_chain();
        let mut entry = chain.tip();
        let mut new_entries = Vec::new();
        loop {
            let height = entry.height() as usize;
            let hash = entry_hash(&entry);
            if self.active.get(height).is_some_and(|a| a.0 == hash) {
                break;
            }
            let prev = entry.prev();
            new_entries.push(entry);
            match prev {
                Some(p) => entry = p,
                None => break,
            }
        }
        if new_entries.is_empty() && self.active.len() == chain.height() as usize + 1 {
            return Ok(());
        }
        let fork = new_entries
            .last()
            .map(|e| e.height() as usize)
            .unwrap_or(chain.height() as usize + 1);
        while self.active.len() > fork {
            let Some((hash, _)) = self.active.pop() else {
                break;
            };
            self.index.remove(&hash);
            if let Some(e) = kernel_hash(&hash).and_then(|k| self.chainman.get_block_tree_entry(&k))
            {
                let block = read_block(&self.chainman, &e)?;
                self.utxo.disconnect(&block);
                tracing::info!(%hash, "devchain block disconnected");
            }
        }
        for entry in new_entries.iter().rev() {
            let block = read_block(&self.chainman, entry)?;
            let height = entry.height() as u32;
            self.utxo.connect(&block, height);
            let hash = block.block_hash();
            self.index.insert(hash, height);
            self.active.push((hash, block.header));
        }
        let next = self.next_block();
        self.mempool.revalidate(&self.utxo, next);
        self.publish();
        Ok(())
    }

    /// End the chainstate thread after this call; the chainstate closes cleanly.
    pub fn close(&mut self) {
        self.closing = true;
    }

    /// Hash of the active block at `height`.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.active.get(height as usize).map(|a| a.0)
    }

    /// Header and position of any block the kernel knows.
    pub fn header_info(&self, hash: &BlockHash) -> Option<HeaderInfo> {
        let entry = self.chainman.get_block_tree_entry(&kernel_hash(hash)?)?;
        let header = entry_header(&entry).ok()?;
        let height = entry.height() as u32;
        let in_active = self.index.get(hash) == Some(&height);
        let mut times = vec![header.time];
        let mut walk = entry.prev();
        while let Some(e) = walk {
            if times.len() >= 11 {
                break;
            }
            if let Ok(h) = entry_header(&e) {
                times.push(h.time);
            }
            walk = e.prev();
        }
        let work = u128::from_be_bytes(
            header.work().to_be_bytes()[16..]
                .try_into()
                .unwrap_or([0; 16]),
        );
        Some(HeaderInfo {
            hash: *hash,
            header,
            height,
            confirmations: if in_active {
                i64::from(self.height()) - i64::from(height) + 1
            } else {
                -1
            },
            next: if in_active {
                self.hash_at(height + 1)
            } else {
                None
            },
            median_time_past: median(times),
            chainwork: format!("{:064x}", work * (u128::from(height) + 1)),
        })
    }

    /// A full block the kernel has stored.
    pub fn block(&self, hash: &BlockHash) -> Option<Block> {
        let entry = self.chainman.get_block_tree_entry(&kernel_hash(hash)?)?;
        read_block(&self.chainman, &entry).ok()
    }

    /// A block locator of the active chain: the last ten blocks, then exponentially sparser,
    /// ending at genesis.
    pub fn locator(&self) -> Vec<BlockHash> {
        locator_heights(self.height())
            .into_iter()
            .filter_map(|h| self.hash_at(h))
            .collect()
    }

    /// Headers after the first locator hash on the active chain, up to `stop` or 2000 headers.
    pub fn headers_after(&self, locator: &[BlockHash], stop: BlockHash) -> Vec<Header> {
        let start = locator
            .iter()
            .find_map(|h| self.index.get(h))
            .map(|h| *h as usize + 1)
            .unwrap_or(1);
        let mut out = Vec::new();
        for (hash, header) in self.active.iter().skip(start).take(2000) {
            out.push(*header);
            if *hash == stop {
                break;
            }
        }
        out
    }

    /// Add a transaction to the mempool; `max_fee_rate` in satoshis per 1000 virtual bytes.
    pub fn send_transaction(
        &mut self,
        tx: Transaction,
        max_fee_rate: Option<u64>,
    ) -> Result<Txid, MempoolReject> {
        let next = self.next_block();
        let result = self.mempool.accept(tx, &self.utxo, next, max_fee_rate);
        self.publish();
        result
    }

    pub fn mempool_entries(&self) -> Vec<MempoolEntry> {
        self.mempool.entries().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_thin_out_and_end_at_genesis() {
        assert_eq!(locator_heights(0), vec![0]);
        assert_eq!(locator_heights(3), vec![3, 2, 1, 0]);
        assert_eq!(
            locator_heights(30),
            vec![30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 19, 15, 7, 0]
        );
    }

    #[test]
    fn median_time_is_the_middle_of_the_sorted_times() {
        assert_eq!(median(vec![5, 1, 3]), 3);
        assert_eq!(median(vec![1, 2]), 2);
    }
}
