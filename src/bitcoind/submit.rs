//! The block submitter: a found block goes to bitcoind by `submitblock` (retried while the error
//! is transient) and, at the same time, as a P2P `block` message with its coinbase witness, so
//! either path alone gets it on the chain. Every outcome is kept in a bounded record of recent
//! blocks for the status page; a block that reached bitcoind by neither path is logged as an
//! error with its hex, for a manual `submitblock`.
//!
//! [`crate::submit::gate`] stands in front of it: one block per parent with bitcoind at a time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::consensus::encode::serialize_hex;
use bitcoin::{Block, BlockHash};
use parking_lot::Mutex;
use serde::Serialize;

use super::{Backoff, BitcoindP2p, P2pError, RpcClient, SubmitBlockResult, TemplateRefresh};

/// How hard to try.
#[derive(Debug, Clone)]
pub struct SubmitConfig {
    /// Keep retrying transient `submitblock` failures for this long.
    pub rpc_retry_for: Duration,
    /// Delay between `submitblock` retries.
    pub backoff: Backoff,
    /// When the P2P link is down at submission, wait this long for it to come back.
    pub p2p_wait: Duration,
    /// How long to wait for bitcoind to confirm over P2P a block no RPC answer judged.
    pub p2p_confirm_wait: Duration,
    /// How many recent blocks to remember.
    pub history: usize,
}

impl Default for SubmitConfig {
    fn default() -> Self {
        Self {
            rpc_retry_for: Duration::from_secs(120),
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
            p2p_wait: Duration::from_secs(5),
            p2p_confirm_wait: Duration::from_secs(10),
            history: 100,
        }
    }
}

/// What `submitblock` came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RpcOutcome {
    /// bitcoind's answer.
    Answered(SubmitBlockResult),
    /// No answer: the last error, after `attempts` tries.
    Failed {
        /// The last error, as text.
        error: String,
        /// `submitblock` calls made.
        attempts: u32,
    },
}

/// What the P2P path came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum P2pOutcome {
    /// The `block` message was written to bitcoind's socket.
    Sent,
    /// No P2P link is configured.
    Disabled,
    /// Sending failed; holds the error as text.
    Failed(String),
}

/// A found block and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FoundBlock {
    /// The block's hash.
    pub hash: BlockHash,
    /// From the coinbase (BIP34).
    pub height: Option<u64>,
    /// Unix seconds at submission.
    pub time: u64,
    /// What `submitblock` came to.
    pub rpc: RpcOutcome,
    /// What the P2P `block` message came to.
    pub p2p: P2pOutcome,
    /// bitcoind's verdict when known: accepted (by `submitblock`'s answer, now or before, or
    /// seen on bitcoind's active chain over P2P right after it processed the block), rejected
    /// (by `submitblock`), or unknown.
    pub accepted: Option<bool>,
}

impl FoundBlock {
    /// Whether bitcoind got the block by at least one path.
    pub fn delivered(&self) -> bool {
        matches!(self.rpc, RpcOutcome::Answered(_)) || self.p2p == P2pOutcome::Sent
    }
}

/// Submits found blocks; cheap to clone (clones share the record).
#[derive(Debug, Clone)]
pub struct BlockSubmitter {
    rpc: RpcClient,
    p2p: Option<BitcoindP2p>,
    config: SubmitConfig,
    recent: Arc<Mutex<VecDeque<FoundBlock>>>,
    refresh: Option<TemplateRefresh>,
    /// `submitblock` calls made, retries included.
    rpc_calls: Arc<AtomicU64>,
    failure_log: Arc<crate::logging::RateLimited>,
}

impl BlockSubmitter {
    /// A submitter using `rpc` and, when given, the P2P link `p2p`.
    pub fn new(rpc: RpcClient, p2p: Option<BitcoindP2p>, config: SubmitConfig) -> Self {
        Self {
            rpc,
            p2p,
            recent: Arc::new(Mutex::new(VecDeque::with_capacity(
                config.history.min(1024),
            ))),
            config,
            refresh: None,
            rpc_calls: Arc::new(AtomicU64::new(0)),
            failure_log: Arc::new(crate::logging::RateLimited::new(Duration::from_secs(10))),
        }
    }

    /// `submitblock` calls made so far, retries included.
    pub fn rpc_calls(&self) -> u64 {
        self.rpc_calls.load(Ordering::Relaxed)
    }

    /// Ask `refresh` for a new template once a block is delivered: bitcoind does not announce
    /// a block back to the peer that sent it, so our own block would otherwise wait for the
    /// long poll.
    pub fn with_template_refresh(mut self, refresh: TemplateRefresh) -> Self {
        self.refresh = Some(refresh);
        self
    }

    /// Submit `block` by RPC and P2P at once; returns (and records) the outcome. Transient RPC
    /// failures are retried for up to [`SubmitConfig::rpc_retry_for`], so callers that must not
    /// wait spawn this.
    pub async fn submit(&self, block: Block) -> FoundBlock {
        self.submit_while(block, &|| true).await
    }

    /// [`Self::submit`], retrying `submitblock` only while `still_useful()` (a block whose
    /// parent is behind bitcoind's tip is not worth more calls).
    pub async fn submit_while(
        &self,
        block: Block,
        still_useful: &(dyn Fn() -> bool + Send + Sync),
    ) -> FoundBlock {
        let hash = block.block_hash();
        let height = coinbase_height(&block);
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        tracing::info!(%hash, ?height, "submitting a found block");
        let (rpc, p2p) = tokio::join!(
            self.submit_rpc(&block, still_useful),
            self.submit_p2p(&block)
        );
        let mut accepted = match &rpc {
            RpcOutcome::Answered(result) => match result {
                SubmitBlockResult::Accepted | SubmitBlockResult::Duplicate => Some(true),
                SubmitBlockResult::Rejected(_) => Some(false),
                _ => None,
            },
            RpcOutcome::Failed { .. } => None,
        };
        if accepted.is_none() && p2p == P2pOutcome::Sent {
            accepted = self
                .confirm_p2p(hash, block.header.prev_blockhash)
                .await
                .then_some(true);
        }
        let found = FoundBlock {
            hash,
            height,
            time,
            rpc,
            p2p,
            accepted,
        };
        match (&found.rpc, found.accepted) {
            (RpcOutcome::Failed { error, .. }, Some(true)) => {
                tracing::info!(%hash, ?height, %error, "block accepted by bitcoind over p2p; submitblock failed")
            }
            (_, Some(true)) => {
                tracing::info!(%hash, ?height, p2p = ?found.p2p, "block accepted by bitcoind")
            }
            (RpcOutcome::Answered(result @ SubmitBlockResult::Rejected(_)), _) => {
                tracing::error!(%hash, ?height, ?result, p2p = ?found.p2p, "bitcoind rejected the block")
            }
            (RpcOutcome::Answered(result), _) => {
                tracing::warn!(%hash, ?height, ?result, p2p = ?found.p2p, "bitcoind has the block, not (yet) validated")
            }
            (RpcOutcome::Failed { error, .. }, _) if found.delivered() => {
                tracing::warn!(%hash, ?height, %error, "block sent over p2p only; submitblock failed")
            }
            (RpcOutcome::Failed { error, .. }, _) => tracing::error!(
                %hash, ?height, %error, p2p = ?found.p2p, block = %serialize_hex(&block),
                "BLOCK NOT DELIVERED to bitcoind by rpc nor p2p; submit it by hand"
            ),
        }
        if found.delivered() {
            if let Some(refresh) = &self.refresh {
                refresh.refresh();
            }
        }
        self.record(found.clone());
        found
    }

    /// Recent blocks, newest first.
    pub fn recent(&self) -> Vec<FoundBlock> {
        self.recent.lock().iter().rev().cloned().collect()
    }

    fn record(&self, found: FoundBlock) {
        let mut recent = self.recent.lock();
        while recent.len() >= self.config.history.max(1) {
            recent.pop_front();
        }
        recent.push_back(found);
    }

    async fn submit_rpc(
        &self,
        block: &Block,
        still_useful: &(dyn Fn() -> bool + Send + Sync),
    ) -> RpcOutcome {
        let deadline = tokio::time::Instant::now() + self.config.rpc_retry_for;
        let mut backoff = self.config.backoff.clone();
        let mut attempts = 0;
        loop {
            attempts += 1;
            self.rpc_calls.fetch_add(1, Ordering::Relaxed);
            match self.rpc.submit_block(block).await {
                Ok(result) => return RpcOutcome::Answered(result),
                Err(e) => {
                    let delay = backoff.next_delay();
                    let retry = e.is_transient()
                        && tokio::time::Instant::now() + delay < deadline
                        && still_useful();
                    crate::log_limited!(self.failure_log, warn, hash = %block.block_hash(), error = %e, attempts, retry, "submitblock failed");
                    if !retry {
                        return RpcOutcome::Failed {
                            error: e.to_string(),
                            attempts,
                        };
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Whether bitcoind put a block it got over P2P on its active chain. `false` when it did
    /// not, did not say in time, or the link is down: a valid block that lost a race looks
    /// the same, so this never counts as a rejection.
    async fn confirm_p2p(&self, hash: BlockHash, parent: BlockHash) -> bool {
        let Some(p2p) = &self.p2p else {
            return false;
        };
        let answer = tokio::time::timeout(
            self.config.p2p_confirm_wait,
            p2p.in_active_chain(hash, parent),
        )
        .await;
        match answer {
            Ok(Ok(on_chain)) => on_chain,
            Ok(Err(e)) => {
                tracing::debug!(%hash, error = %e, "cannot ask bitcoind about the block over p2p");
                false
            }
            Err(_) => false,
        }
    }

    async fn submit_p2p(&self, block: &Block) -> P2pOutcome {
        let Some(p2p) = &self.p2p else {
            return P2pOutcome::Disabled;
        };
        let mut block = block.clone();
        add_witness_reserved_value(&mut block);
        let mut result = p2p.send_block(block.clone()).await;
        if matches!(result, Err(P2pError::NotConnected)) {
            let mut connected = p2p.connected();
            // The `watch::Ref` is dropped inside the timeout so this future stays `Send`.
            let up = tokio::time::timeout(self.config.p2p_wait, async {
                connected.wait_for(|c| *c).await.is_ok()
            })
            .await;
            if matches!(up, Ok(true)) {
                result = p2p.send_block(block).await;
            }
        }
        match result {
            Ok(()) => P2pOutcome::Sent,
            Err(e) => P2pOutcome::Failed(e.to_string()),
        }
    }
}

/// Give a committing coinbase without a witness the all-zero reserved value, as `submitblock`
/// does: over P2P such a block would count as mutated and get our link penalised. The txid, so
/// the merkle root and the block hash, do not change.
fn add_witness_reserved_value(block: &mut Block) {
    const COMMITMENT_PREFIX: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    let Some(coinbase) = block.txdata.first_mut() else {
        return;
    };
    let commits = coinbase
        .output
        .iter()
        .any(|o| o.script_pubkey.as_bytes().starts_with(&COMMITMENT_PREFIX));
    if let Some(input) = coinbase.input.first_mut() {
        if commits && input.witness.is_empty() {
            input.witness.push([0u8; 32]);
        }
    }
}

/// The BIP34 height at the start of the coinbase's scriptSig: `OP_1`..`OP_16` for heights 1–16
/// (which `Block::bip34_block_height` does not read), else a minimal little-endian push.
fn coinbase_height(block: &Block) -> Option<u64> {
    let script = block.txdata.first()?.input.first()?.script_sig.as_bytes();
    match *script.first()? {
        op @ 0x51..=0x60 => Some(u64::from(op - 0x50)),
        len @ 1..=8 => {
            let bytes = script.get(1..1 + usize::from(len))?;
            // A negative number is no height.
            if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                return None;
            }
            Some(
                bytes
                    .iter()
                    .rev()
                    .fold(0u64, |n, b| (n << 8) | u64::from(*b)),
            )
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::script::Builder;

    #[test]
    fn coinbase_heights() {
        let mut block: Block = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        for (height, expected) in [
            (1, Some(1)),
            (16, Some(16)),
            (17, Some(17)),
            (840_000, Some(840_000)),
        ] {
            block.txdata[0].input[0].script_sig = Builder::new().push_int(height).into_script();
            assert_eq!(coinbase_height(&block), expected, "{height}");
        }
        block.txdata[0].input[0].script_sig = Builder::new().push_int(-5).into_script();
        assert_eq!(coinbase_height(&block), None);
        block.txdata[0].input[0].script_sig = bitcoin::ScriptBuf::from_bytes(vec![0x04, 1]);
        assert_eq!(coinbase_height(&block), None);
        block.txdata.clear();
        assert_eq!(coinbase_height(&block), None);
    }
}
