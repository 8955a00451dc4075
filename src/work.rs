//! Work: block template + best share → jobs for miners; found work → shares and blocks.
//!
//! [`WorkBuilder`] is the node's [`WorkProvider`] for the worker port. For each template and
//! best share it builds one job per payout script and share target from the best share's
//! [`WorkBase`] (prepared once per best share by the share worker and published in its view;
//! [`WorkBase::template`] gives what `sharechain::generate`, the code that verifies shares,
//! gives), and caches it: N miners paying the same address cost one build. A new template or best share bumps the update channel (`clean` when
//! the previous block changed). A submit that meets the share target becomes a share for the
//! [`ShareChain`]; one that meets the block target becomes a block for the [`BlockSink`] at once.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::block::Header;
use bitcoin::consensus::deserialize;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{Block, BlockHash, Network, ScriptBuf, Target, Transaction, TxMerkleNode, Witness};
use parking_lot::RwLock;
use sharechain::build::BuildError;
use sharechain::gentx::{bip34_height_push, WITNESS_RESERVED_VALUE};
use sharechain::params::NetworkParams;
use sharechain::share::{CheckedShare, MerkleLink, SegwitData, SmallBlockHeader, StaleInfo};
use sharechain::{ShareHash, ShareRequest, ShareTemplate, WorkBase};
use tokio::sync::watch;

use crate::bitcoind::BlockTemplate;
use crate::shares::{ShareService, SubmitError};
use crate::worker::{
    difficulty_to_target, Found, FoundOutcome, Job, Miner, NoWork, WorkProvider, WorkUpdate,
};

/// Tag in every coinbase scriptSig after the BIP34 height.
pub const COINBASE_TAG: &[u8] = b"/p2pool-rs/";

/// The share chain as the work builder sees it.
pub trait ShareChain: Send + Sync + 'static {
    /// The best share (`None`: no chain yet), as the chain last published it.
    fn best(&self) -> Option<ShareHash>;
    /// The best share prepared for building on, as the chain last published it.
    fn work_base(&self) -> Result<Arc<WorkBase>, BuildError>;
    /// Takes in a share found by a local miner (insert, persist, broadcast); `Err` says why not.
    fn add_local_share(
        &self,
        share: CheckedShare,
    ) -> impl Future<Output = Result<(), SubmitError>> + Send;
    /// The Bitcoin block shares should build on now (heads on older blocks count as their
    /// parents when choosing the best share).
    fn set_tip(&self, tip: Option<BlockHash>) -> impl Future<Output = ()> + Send;
    /// `Some(reason)` while the node must not hand out share-chain work (e.g. far behind peers).
    fn refuse_work(&self) -> Option<String> {
        None
    }
    /// When a share arrived and from whom, when the chain keeps that.
    fn first_seen(&self, _hash: &ShareHash) -> Option<crate::shares::FirstSeen> {
        None
    }
}

/// Where found blocks go (the block submitter, and peers).
pub trait BlockSink: Send + Sync + 'static {
    /// Starts delivering `block`; must not wait for the outcome.
    fn submit_block(&self, block: Block);
    /// Whether a block found on `parent` would be delivered or held now. When not, the sink
    /// counts it and the caller skips building it: on an easy chain most submits are such
    /// siblings, and assembling a full block for each would cost more than answering them.
    fn wants(&self, _parent: &BlockHash) -> bool {
        true
    }
}

impl ShareChain for ShareService {
    fn best(&self) -> Option<ShareHash> {
        self.view().best
    }

    fn work_base(&self) -> Result<Arc<WorkBase>, BuildError> {
        self.view().kind.work.clone()
    }

    fn first_seen(&self, hash: &ShareHash) -> Option<crate::shares::FirstSeen> {
        ShareService::first_seen(self, hash)
    }

    fn add_local_share(
        &self,
        share: CheckedShare,
    ) -> impl Future<Output = Result<(), SubmitError>> + Send {
        let service = self.clone();
        async move { service.submit_local_share(share).await.map(|_| ()) }
    }

    fn set_tip(&self, tip: Option<BlockHash>) -> impl Future<Output = ()> + Send {
        let service = self.clone();
        async move { service.set_tip(tip).await }
    }

    fn refuse_work(&self) -> Option<String> {
        let status = self.sync_status();
        status.behind.then_some(status.reason)
    }
}

/// What a job needs to become a share or a block.
#[derive(Debug)]
struct JobContext {
    share: ShareTemplate,
    template: Arc<BlockTemplate>,
}

/// The template's derived parts, computed once per template.
#[derive(Debug)]
struct Prepared {
    template: Arc<BlockTemplate>,
    segwit: SegwitData,
    merkle_branch: Vec<TxMerkleNode>,
}

#[derive(Debug, Default)]
struct State {
    prepared: Option<Arc<Prepared>>,
    best: Option<ShareHash>,
    /// Jobs by payout script, then by compact share target: a hit costs no allocation.
    jobs: HashMap<ScriptBuf, Vec<(u32, Arc<Job>)>>,
}

/// The node's work provider.
pub struct WorkBuilder<C: ShareChain, B: BlockSink> {
    params: &'static NetworkParams,
    chain: Arc<C>,
    blocks: Arc<B>,
    state: RwLock<State>,
    updates: watch::Sender<WorkUpdate>,
    job_seq: AtomicU64,
    node_nonce: u32,
    /// The operator's payout script and the percent of jobs paying it (the node fee).
    fee: Option<(ScriptBuf, f64)>,
}

impl<C: ShareChain, B: BlockSink> std::fmt::Debug for WorkBuilder<C, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkBuilder")
            .field("network", &self.params.name)
            .finish_non_exhaustive()
    }
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

fn hash_pair(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(a);
    buf[32..].copy_from_slice(b);
    sha256d::Hash::hash(&buf).to_byte_array()
}

/// The merkle branch of the leaf at index 0 (the coinbase), given the other leaves.
pub fn coinbase_branch(others: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut level: Vec<Option<[u8; 32]>> = std::iter::once(None)
        .chain(others.iter().copied().map(Some))
        .collect();
    let mut branch = Vec::new();
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(*level.last().expect("non-empty"));
        }
        branch.push(level[1].expect("only index 0 is unknown"));
        level = level
            .chunks(2)
            .map(|pair| match (pair[0], pair[1]) {
                (Some(a), Some(b)) => Some(hash_pair(&a, &b)),
                _ => None,
            })
            .collect();
    }
    branch
}

fn prepare(template: Arc<BlockTemplate>) -> Prepared {
    let txids: Vec<[u8; 32]> = template
        .transactions
        .iter()
        .map(|t| t.txid.to_byte_array())
        .collect();
    let branch = coinbase_branch(&txids);
    // The coinbase's wtxid counts as zero in the witness tree.
    let wtxids = std::iter::once(sha256d::Hash::all_zeros())
        .chain(template.transactions.iter().map(|t| t.wtxid.to_raw_hash()));
    let wtxid_merkle_root = bitcoin::merkle_tree::calculate_root(wtxids)
        .expect("the coinbase is always there")
        .to_byte_array();
    Prepared {
        segwit: SegwitData {
            txid_merkle_link: MerkleLink {
                branch: branch.clone(),
            },
            wtxid_merkle_root,
        },
        merkle_branch: branch
            .into_iter()
            .map(TxMerkleNode::from_byte_array)
            .collect(),
        template,
    }
}

impl<C: ShareChain, B: BlockSink> WorkBuilder<C, B> {
    /// A work builder with no template yet (miners get [`NoWork`] until one arrives).
    pub fn new(params: &'static NetworkParams, chain: Arc<C>, blocks: Arc<B>) -> Self {
        WorkBuilder {
            params,
            chain,
            blocks,
            state: RwLock::new(State::default()),
            updates: watch::channel(WorkUpdate::default()).0,
            job_seq: AtomicU64::new(0),
            node_nonce: rand::random(),
            fee: None,
        }
    }

    /// Charges a node fee: about `percent`% of jobs pay `operator` instead of the miner (as in
    /// P2Pool, the fee is taken in shares, not by skimming the coinbase).
    pub fn with_fee(mut self, operator: Option<ScriptBuf>, percent: f64) -> Self {
        self.fee = operator
            .filter(|_| percent > 0.0)
            .map(|s| (s, percent.min(100.0)));
        self
    }

    /// The network parameters.
    pub fn params(&self) -> &'static NetworkParams {
        self.params
    }

    /// The share chain.
    pub fn chain(&self) -> &Arc<C> {
        &self.chain
    }

    /// Where found blocks go.
    pub fn blocks(&self) -> &Arc<B> {
        &self.blocks
    }

    /// A new block template: new jobs, clean when the previous block changed. Tell the chain
    /// about the new tip too ([`ShareChain::set_tip`]), after this: miners must not wait for it.
    pub fn set_template(&self, template: Arc<BlockTemplate>) {
        let prev = template.previous_block_hash;
        let prepared = Arc::new(prepare(template));
        let clean = {
            let mut state = self.state.write();
            let clean = state
                .prepared
                .as_ref()
                .is_none_or(|p| p.template.previous_block_hash != prev);
            state.prepared = Some(prepared);
            state.jobs.clear();
            clean
        };
        self.refresh_best();
        self.bump(clean);
    }

    /// Re-reads the best share; new jobs when it changed. Call after the tracker changed.
    pub fn refresh_best(&self) {
        let best = self.chain.best();
        let changed = {
            let mut state = self.state.write();
            let changed = state.best != best;
            if changed {
                state.best = best;
                state.jobs.clear();
            }
            changed
        };
        if changed {
            self.bump(false);
        }
    }

    fn bump(&self, clean: bool) {
        // Sessions also compare previous-block hashes, so a `clean` overwritten by a later plain
        // update before a session looks is not lost.
        self.updates.send_modify(|u| {
            u.seq += 1;
            u.clean = clean;
        });
    }

    fn build(
        &self,
        payout: &ScriptBuf,
        desired: Target,
        prepared: &Arc<Prepared>,
    ) -> Result<(Job, Option<ShareHash>), NoWork> {
        let cannot = |e: BuildError| NoWork {
            reason: format!("cannot build on the best share: {e}"),
        };
        // The chain's latest: when it moved past `state.best`, the job is not cached.
        let base = self.chain.work_base().map_err(cannot)?;
        let best = base.parent();
        let t = &prepared.template;
        let mut coinbase = bip34_height_push(t.height);
        coinbase.extend_from_slice(COINBASE_TAG);
        let ts = now().max(t.min_time);
        let req = ShareRequest {
            version: self.params.current_share_version(),
            previous_share_hash: best,
            coinbase,
            nonce: self.node_nonce,
            payout_script: payout.clone(),
            subsidy: t.coinbase_value,
            donation: 0,
            stale_info: StaleInfo::None,
            desired_version: self.params.current_share_version(),
            segwit_data: prepared.segwit.clone(),
            desired_target: desired,
            desired_timestamp: ts,
            block_bits: t.bits,
        };
        let share = base.template(&req).map_err(cannot)?;
        let (coinb1, coinb2) = share.coinbase.stratum_split(&share.ref_hash);
        let seq = self.job_seq.fetch_add(1, Ordering::Relaxed);
        let job = Job {
            id: format!("{seq:x}"),
            prev_hash: t.previous_block_hash,
            version: t.version as u32,
            bits: t.bits,
            ntime: t.cur_time.max(ts),
            min_ntime: t.min_time,
            height: t.height,
            coinb1,
            coinb2,
            merkle_branch: prepared.merkle_branch.clone(),
            share_target: share.target(),
            block_target: Target::from_compact(t.bits),
            context: Arc::new(JobContext {
                share,
                template: Arc::clone(t),
            }),
        };
        Ok((job, best))
    }

    /// The full block for a found header: our coinbase (with its witness reserved value) and
    /// the template's transactions.
    fn assemble(
        header: Header,
        coinbase: &[u8],
        template: &BlockTemplate,
    ) -> Result<Block, String> {
        let mut cb: Transaction =
            deserialize(coinbase).map_err(|e| format!("coinbase does not parse: {e}"))?;
        cb.input[0].witness = Witness::from_slice(&[WITNESS_RESERVED_VALUE]);
        let txdata = std::iter::once(cb)
            .chain(template.transactions.iter().map(|t| t.tx.clone()))
            .collect();
        Ok(Block { header, txdata })
    }
}

impl<C: ShareChain, B: BlockSink> WorkProvider for WorkBuilder<C, B> {
    fn network(&self) -> Network {
        self.params.network
    }

    fn job(&self, miner: &Miner) -> Result<Arc<Job>, NoWork> {
        let desired = miner
            .share_difficulty
            .map(difficulty_to_target)
            .map_or(self.params.max_target(), |t| {
                t.min(self.params.max_target())
            });
        let payout = match &self.fee {
            Some((operator, percent)) if rand::random::<f64>() * 100.0 < *percent => operator,
            _ => &miner.payout,
        };
        let bits = desired.to_compact_lossy().to_consensus();
        let (prepared, best) = {
            let state = self.state.read();
            let cached = state
                .jobs
                .get(payout)
                .and_then(|jobs| jobs.iter().find(|(b, _)| *b == bits));
            if let Some((_, job)) = cached {
                return Ok(Arc::clone(job));
            }
            let prepared = state.prepared.clone().ok_or_else(|| NoWork {
                reason: "no block template from bitcoind yet".into(),
            })?;
            (prepared, state.best)
        };
        // Checked when work is built, not on every hand-out: the cache is emptied whenever the
        // best share or the template changes, which is what a syncing node keeps doing.
        if let Some(reason) = self.chain.refuse_work() {
            return Err(NoWork { reason });
        }
        let (job, built_on) = self.build(payout, desired, &prepared)?;
        let job = Arc::new(job);
        let mut state = self.state.write();
        // Only cache work built on what is still current.
        if state.best == best
            && built_on == best
            && state
                .prepared
                .as_ref()
                .is_some_and(|p| Arc::ptr_eq(p, &prepared))
        {
            state
                .jobs
                .entry(payout.clone())
                .or_default()
                .push((bits, Arc::clone(&job)));
        }
        Ok(job)
    }

    fn updates(&self) -> watch::Receiver<WorkUpdate> {
        self.updates.subscribe()
    }

    fn found(&self, found: Found) -> impl Future<Output = FoundOutcome> + Send {
        let params = self.params;
        let chain = Arc::clone(&self.chain);
        let blocks = Arc::clone(&self.blocks);
        let ctx = Arc::clone(&found.job.context).downcast::<JobContext>();
        async move {
            let Ok(ctx) = ctx else {
                return FoundOutcome::Rejected {
                    reason: "job was not made by this node".into(),
                };
            };
            let header = found.header;
            if found.meets_block && blocks.wants(&header.prev_blockhash) {
                match Self::assemble(header, &found.coinbase, &ctx.template) {
                    Ok(block) => {
                        // On an easy chain this is most submits: the sink logs what it sends.
                        tracing::debug!(hash = %block.block_hash(), height = ctx.template.height, "found a block");
                        blocks.submit_block(block);
                    }
                    Err(e) => tracing::error!(%e, "found a block but could not assemble it"),
                }
            }
            if !found.meets_share {
                return FoundOutcome::Accepted;
            }
            let small = SmallBlockHeader {
                version: header.version.to_consensus(),
                previous_block: header.prev_blockhash,
                timestamp: header.time,
                bits: header.bits,
                nonce: header.nonce,
            };
            let share = ctx.share.share(small, u64::from_le_bytes(found.extranonce));
            let checked = match CheckedShare::check(share, params, u64::from(now())) {
                Ok(c) => c,
                Err(e) => {
                    return FoundOutcome::Rejected {
                        reason: format!("share: {e}"),
                    }
                }
            };
            debug_assert_eq!(checked.block_hash(), found.hash);
            let hash = checked.hash();
            match chain.add_local_share(checked).await {
                Ok(()) => {
                    tracing::info!(%hash, miner = %found.miner.username, "new share");
                    FoundOutcome::Accepted
                }
                // Refused by the chain: too late for it (built on what is no longer there).
                Err(e @ (SubmitError::Insert(_) | SubmitError::Invalid(_))) => {
                    FoundOutcome::Stale {
                        reason: e.to_string(),
                    }
                }
                // The node's own failure, not the miner's.
                Err(e) => {
                    tracing::error!(%hash, miner = %found.miner.username, "local share not taken: {e}");
                    FoundOutcome::Failed {
                        reason: e.to_string(),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coinbase_branch_folds_to_the_block_merkle_root() {
        for n in 0..12u8 {
            let leaves: Vec<[u8; 32]> = (0..=n)
                .map(|i| [i.wrapping_mul(37).wrapping_add(1); 32])
                .collect();
            let want = bitcoin::merkle_tree::calculate_root(
                leaves.iter().map(|l| sha256d::Hash::from_byte_array(*l)),
            )
            .expect("non-empty")
            .to_byte_array();
            let link = MerkleLink {
                branch: coinbase_branch(&leaves[1..]),
            };
            assert_eq!(link.root(leaves[0]), want, "{} other transactions", n);
        }
    }
}
