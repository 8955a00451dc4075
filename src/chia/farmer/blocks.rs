//! Farming Chia blocks, as chia's farmer does (`farmer_api.py`): a harvester's proof whose
//! required iterations at the chain's difficulty are below the signage point interval
//! (`sub_slot_iters / NUM_SPS_SUB_SLOT`) is declared to the full node (`declare_proof_of_space`)
//! with the plot key's signatures of the challenge-chain and reward-chain signage points; the
//! full node answers `request_signed_values` for the unfinished block it made, and the node
//! returns `signed_values`: the plot key's signatures of the foliage. Every plot-key signature is
//! the aggregate of the harvester's (its local key, asked with `request_signatures`), the farmer
//! key's and, for a plot-NFT plot, the taproot key's, all AugSchemeMPL over the plot public key.
//!
//! The farmer side lives here ([`Blocks`], one per [`Farmer`]); the full node link
//! (`crate::chia::full_node`) carries the messages ([`Uplink`], a bounded channel) and tells the
//! outcome of each attempt from the full node's RPC. Attempts are kept in a bounded list, served
//! on `/chia/blocks`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chia_bls::{PublicKey, Signature};
use chia_protocol::{Bytes32, PoolTarget, ProofOfSpace};
use parking_lot::Mutex;
use serde::Serialize;
use sharechain::pospace::calculate_iterations_quality;
use sharechain::pospace_share::SignagePoint;
use tokio::sync::mpsc;

use super::keys::{sign_aug, taproot_sk, FarmerKeys};
use super::source::ChainPoint;
use super::Farmer;
use crate::chia::protocol as p;

/// Messages waiting for the full node link.
pub const UPLINK_QUEUE: usize = 32;
/// Attempts kept for the API.
pub const RECENT_ATTEMPTS: usize = 200;
/// Attempts waiting for the full node (its request, or their outcome); more are not declared.
pub const MAX_WAITING: usize = 64;
/// Commands waiting for one harvester connection.
pub const SESSION_QUEUE: usize = 8;

/// The chain's consensus constants the block check needs (chia's `ConsensusConstants`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainConstants {
    /// `DIFFICULTY_CONSTANT_FACTOR`.
    pub difficulty_constant_factor: u128,
    /// `NUM_SPS_SUB_SLOT`.
    pub num_sps_sub_slot: u8,
}

impl ChainConstants {
    /// Chia's mainnet (and the default of every network).
    pub const MAINNET: ChainConstants = ChainConstants {
        difficulty_constant_factor: 1 << 67,
        num_sps_sub_slot: 64,
    };

    /// The constants of a chia network by name, before a chia root's `network_overrides`.
    pub fn for_network(name: &str) -> ChainConstants {
        match name {
            "testnet11" => ChainConstants {
                difficulty_constant_factor: 10_052_721_566_054,
                ..Self::MAINNET
            },
            _ => Self::MAINNET,
        }
    }

    /// chia's `calculate_sp_interval_iters`.
    pub fn sp_interval_iters(&self, sub_slot_iters: u64) -> u64 {
        sub_slot_iters / u64::from(self.num_sps_sub_slot.max(1))
    }
}

/// A message for the full node.
#[derive(Debug, Clone)]
pub enum Uplink {
    /// `declare_proof_of_space` of attempt `attempt`.
    Declare {
        /// The attempt's number ([`BlockAttempt::id`]).
        attempt: u64,
        /// The message, as the link sends it (message 9).
        message: Box<p::DeclareProofOfSpace>,
    },
    /// `signed_values` of attempt `attempt`.
    SignedValues {
        /// The attempt's number ([`BlockAttempt::id`]).
        attempt: u64,
        /// The message, as the link sends it (message 11).
        message: p::SignedValues,
    },
}

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Declared; the full node has not asked for signed values yet.
    Declared,
    /// Signed values sent; the block is not in the chain yet.
    SignedValues,
    /// The block is in the chain.
    InChain,
    /// The full node made no block of it (late, another block won, the link was lost).
    NotIncluded,
    /// Refused before it reached the full node, or its signatures could not be made.
    Rejected,
}

impl Stage {
    /// Still waiting for the full node.
    pub fn waiting(self) -> bool {
        matches!(self, Stage::Declared | Stage::SignedValues)
    }
}

/// One payee of the pool part of a farmed block, by the share chain's PPLNS window when the
/// block was seen in the chain.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BlockPayout {
    /// The payee's address on the node's chia network (bech32m, `xch…` or `txch…`).
    pub address: String,
    /// The payee's puzzle hash, hex.
    pub puzzle_hash: String,
    /// The payee's part of the block reward's pool part, in mojos.
    pub mojos: u64,
    /// The payee's share of the PPLNS window: its shares' summed difficulty over the window's
    /// (0 to 1).
    pub fraction: f64,
}

/// The PPLNS split of a block's pool part now (set by the node, which has the share chain).
pub type BlockSplit = Arc<dyn Fn() -> Vec<BlockPayout> + Send + Sync>;

/// One attempt to farm a block, as `/chia/blocks` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct BlockAttempt {
    /// The attempt's number, counted from 1 since the node started.
    pub id: u64,
    /// When it was declared (seconds since the Unix epoch).
    pub time: u64,
    /// Connection number of the harvester whose proof it is
    /// ([`super::HarvesterInfo::id`]).
    pub harvester: u64,
    /// The plot id, hex.
    pub plot_id: String,
    /// The plot's size k.
    pub k: u8,
    /// The sub-slot challenge of the answered signage point, hex.
    pub challenge_hash: String,
    /// The challenge-chain signage point.
    pub sp_hash: String,
    /// The reward-chain signage point hash, hex.
    pub reward_chain_sp: String,
    /// Index of the signage point in its sub-slot (0 is the sub-slot's end).
    pub signage_point_index: u8,
    /// The full node's peak when it sent the signage point.
    pub sp_peak_height: u32,
    /// The proof's quality string, hex (how the full node names the attempt).
    pub quality_string: String,
    /// The proof's required iterations at the chain's difficulty.
    pub required_iters: u64,
    /// The signage point interval in iterations (`sub_slot_iters / NUM_SPS_SUB_SLOT`): a
    /// proof below it can make a block.
    pub sp_interval_iters: u64,
    /// The chain's block difficulty at the signage point.
    pub chain_difficulty: u64,
    /// The chain's sub-slot iterations at the signage point.
    pub sub_slot_iters: u64,
    /// Where the farmer part goes (the node's payout puzzle hash).
    pub farmer_puzzle_hash: String,
    /// The signed pool target's puzzle hash (`None` for a plot-NFT plot: its contract).
    pub pool_target: Option<String>,
    /// The full node link's connection number it was declared on.
    pub connection: u64,
    /// Where it stands.
    pub stage: Stage,
    /// In words: `declared`, `signed values sent`, `in the chain at height H`,
    /// `not included: …`, `rejected: …`.
    pub outcome: String,
    /// `signed_values` sent (the full node may ask again for a backup block).
    pub signed_values: u32,
    /// The block's height, once in the chain.
    pub height: Option<u32>,
    /// The block's header hash, hex, once in the chain.
    pub header_hash: Option<String>,
    /// The block record's farmer puzzle hash, hex (where the farmer part went).
    pub block_farmer_puzzle_hash: Option<String>,
    /// The block record's pool puzzle hash, hex (where the pool part went).
    pub block_pool_puzzle_hash: Option<String>,
    /// When the outcome was known.
    pub resolved_at: Option<u64>,
    /// The share chain's PPLNS split of the pool part, recorded when the block was seen.
    pub payouts: Vec<BlockPayout>,
}

/// A proof good enough for a block, waiting for the harvester's signatures.
#[derive(Debug, Clone)]
pub struct BlockProof {
    /// The proof's quality string.
    pub quality: [u8; 32],
    /// The proof's required iterations at the chain's difficulty.
    pub required_iters: u64,
    /// The signage point interval in iterations; `required_iters` is below it.
    pub sp_interval_iters: u64,
    /// The signage point the proof answers.
    pub point: SignagePoint,
    /// The full node's chain data at that signage point.
    pub chain: ChainPoint,
    /// The plot id.
    pub plot_id: [u8; 32],
    /// The proof of space, as the harvester sent it.
    pub proof: ProofOfSpace,
    /// The harvester's name for the plot (`new_proof_of_space`'s `plot_identifier`), given back
    /// when asking it for signatures.
    pub plot_identifier: String,
}

/// What the full node link needs to tell an attempt's outcome.
#[derive(Debug, Clone)]
pub struct Waiting {
    /// The attempt's number ([`BlockAttempt::id`]).
    pub id: u64,
    /// Where it stands ([`Stage::Declared`] or [`Stage::SignedValues`]).
    pub stage: Stage,
    /// The full node's peak when it sent the signage point: the block is looked for around it.
    pub sp_peak_height: u32,
    /// Declared at (seconds since the Unix epoch).
    pub time: u64,
    /// The declared proof of space, found again in the block that carries it.
    pub proof: ProofOfSpace,
}

/// An outcome the full node link found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The block is in the chain.
    InChain {
        /// The block's height.
        height: u32,
        /// The block's header hash.
        header_hash: [u8; 32],
        /// The block record's farmer puzzle hash (`None` when the record could not be read).
        farmer_puzzle_hash: Option<[u8; 32]>,
        /// The block record's pool puzzle hash (`None` when the record could not be read).
        pool_puzzle_hash: Option<[u8; 32]>,
    },
    /// Not in the chain, and why.
    NotIncluded(String),
}

/// A command for one harvester connection.
#[derive(Debug, Clone)]
pub enum SessionCommand {
    /// Ask the harvester for the foliage signatures of attempt `attempt`.
    SignValues {
        /// The attempt's number ([`BlockAttempt::id`]).
        attempt: u64,
        /// The `request_signatures` to send: the foliage block data hash and the foliage
        /// transaction block hash to sign.
        request: p::RequestSignatures,
    },
}

/// Why an attempt was refused before reaching the full node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The farmer public key in the harvester's `respond_signatures` is not this node's.
    #[error("the harvester's farmer key is not this node's")]
    ForeignFarmerKey,
    /// The harvester's local key and the farmer key (and the taproot key for a plot-NFT plot)
    /// do not add up to the proof's plot public key.
    #[error("harvester keys do not add up to the plot key")]
    PlotKeyMismatch,
    /// The harvester's answer has no signature of the named message.
    #[error("no harvester signature for {0}")]
    MissingSignature(&'static str),
    /// The aggregate plot-key signature of the named message does not verify.
    #[error("the aggregate signature of {0} does not verify")]
    BadSignature(&'static str),
    /// The plot was made with a pool public key that is not this node's.
    #[error("the plot's pool public key is not this node's")]
    ForeignPoolKey,
}

/// Data of a declared attempt needed to answer the full node.
#[derive(Debug, Clone)]
struct Live {
    attempt: u64,
    harvester: u64,
    plot_identifier: String,
    challenge_hash: Bytes32,
    sp_hash: Bytes32,
    proof: ProofOfSpace,
}

#[derive(Default)]
struct State {
    attempts: VecDeque<BlockAttempt>,
    /// Waiting attempts by quality string (how the full node names them).
    live: HashMap<[u8; 32], Live>,
    /// The full node link's current connection number.
    connection: u64,
    uplink: Option<mpsc::Sender<Uplink>>,
    sessions: HashMap<u64, mpsc::Sender<SessionCommand>>,
    constants: Option<ChainConstants>,
    split: Option<BlockSplit>,
}

/// The farmer endpoint's block farming.
#[derive(Default)]
pub struct Blocks {
    state: Mutex<State>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Blocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocks").finish_non_exhaustive()
    }
}

/// The plot key of a harvester's answer: local + farmer (+ taproot for a plot-NFT plot).
fn plot_key(
    reply: &p::RespondSignatures,
    contract: bool,
) -> (PublicKey, Option<chia_bls::SecretKey>) {
    let mut plot_pk: PublicKey = reply.local_pk + &reply.farmer_pk;
    let taproot = contract.then(|| taproot_sk(&reply.local_pk, &reply.farmer_pk));
    if let Some(t) = &taproot {
        plot_pk += &t.public_key();
    }
    (plot_pk, taproot)
}

/// The plot key's signature of `message`: the harvester's part, the farmer key's and the
/// taproot key's, checked.
fn plot_signature(
    keys: &FarmerKeys,
    reply: &p::RespondSignatures,
    proof: &ProofOfSpace,
    message: &[u8; 32],
    what: &'static str,
) -> Result<Signature, BlockError> {
    if reply.farmer_pk != keys.farmer_pk() {
        return Err(BlockError::ForeignFarmerKey);
    }
    let (plot_pk, taproot) = plot_key(reply, proof.pool_contract_puzzle_hash.is_some());
    if plot_pk != proof.plot_public_key {
        return Err(BlockError::PlotKeyMismatch);
    }
    let harvester = reply
        .message_signatures
        .iter()
        .find(|(m, _)| m.to_bytes() == *message)
        .map(|(_, s)| s.clone())
        .ok_or(BlockError::MissingSignature(what))?;
    let mut signature = harvester + &keys.sign(message, &plot_pk);
    if let Some(t) = &taproot {
        signature += &sign_aug(t, message, &plot_pk);
    }
    if !chia_bls::verify(&signature, &plot_pk, message) {
        return Err(BlockError::BadSignature(what));
    }
    Ok(signature)
}

/// The signatures a declaration carries: the plot key's of the two signage points, and the pool
/// target with the pool key's signature (a plot made with the pool public key) or none (a
/// plot-NFT plot).
type Declaration = (Signature, Signature, Option<PoolTarget>, Option<Signature>);

fn sign_declaration(
    keys: &FarmerKeys,
    reply: &p::RespondSignatures,
    block: &BlockProof,
    farmer_ph: [u8; 32],
) -> Result<Declaration, BlockError> {
    let cc_sp = block.point.sp_hash;
    let rc_sp = block.chain.reward_chain_sp;
    let cc = plot_signature(keys, reply, &block.proof, &cc_sp, "the challenge-chain SP")?;
    let rc = plot_signature(keys, reply, &block.proof, &rc_sp, "the reward-chain SP")?;
    let (pool_target, pool_signature) = match &block.proof.pool_public_key {
        Some(pool_pk) => {
            if *pool_pk != keys.pool_pk() {
                return Err(BlockError::ForeignPoolKey);
            }
            let target = PoolTarget::new(Bytes32::new(farmer_ph), 0);
            let bytes = chia_traits::Streamable::to_bytes(&target).unwrap_or_default();
            let signature = keys.sign_pool(&bytes);
            (Some(target), Some(signature))
        }
        None => (None, None),
    };
    Ok((cc, rc, pool_target, pool_signature))
}

fn hex32(b: &[u8; 32]) -> String {
    hex::encode(b)
}

impl Blocks {
    /// Turns block farming on with the chain's constants; the messages for the full node come
    /// out of the returned channel (a second call replaces the first's).
    pub fn enable(&self, constants: ChainConstants) -> mpsc::Receiver<Uplink> {
        let (tx, rx) = mpsc::channel(UPLINK_QUEUE);
        let mut state = self.state.lock();
        state.constants = Some(constants);
        state.uplink = Some(tx);
        rx
    }

    /// Sets how a farmed block's pool part is split (the share chain's PPLNS window).
    pub fn set_split(&self, split: BlockSplit) {
        self.state.lock().split = Some(split);
    }

    /// The attempts, newest first.
    pub fn attempts(&self) -> Vec<BlockAttempt> {
        self.state.lock().attempts.iter().rev().cloned().collect()
    }

    /// Attempts waiting for an outcome.
    pub fn waiting(&self) -> Vec<Waiting> {
        let state = self.state.lock();
        let proofs: HashMap<u64, &ProofOfSpace> =
            state.live.values().map(|l| (l.attempt, &l.proof)).collect();
        state
            .attempts
            .iter()
            .filter(|a| a.stage.waiting())
            .filter_map(|a| {
                Some(Waiting {
                    id: a.id,
                    stage: a.stage,
                    sp_peak_height: a.sp_peak_height,
                    time: a.time,
                    proof: (*proofs.get(&a.id)?).clone(),
                })
            })
            .collect()
    }

    pub(super) fn register_session(&self, harvester: u64) -> mpsc::Receiver<SessionCommand> {
        let (tx, rx) = mpsc::channel(SESSION_QUEUE);
        self.state.lock().sessions.insert(harvester, tx);
        rx
    }

    pub(super) fn unregister_session(&self, harvester: u64) {
        self.state.lock().sessions.remove(&harvester);
    }

    /// Connection `connection` is up: the attempts declared on an earlier one and not asked for
    /// signed values (to resolve).
    fn connected(&self, connection: u64) -> Vec<u64> {
        let mut state = self.state.lock();
        state.connection = connection;
        state
            .attempts
            .iter()
            .filter(|a| a.stage == Stage::Declared && a.connection < connection)
            .map(|a| a.id)
            .collect()
    }

    /// Applies `f` to attempt `id`.
    fn update(&self, id: u64, f: impl FnOnce(&mut BlockAttempt)) {
        let mut state = self.state.lock();
        if let Some(a) = state.attempts.iter_mut().rev().find(|a| a.id == id) {
            f(a);
        }
    }

    /// Ends attempt `id` with `stage` and `outcome`, forgetting what answered the full node.
    fn finish(&self, id: u64, stage: Stage, outcome: String) {
        let mut state = self.state.lock();
        state.live.retain(|_, l| l.attempt != id);
        if let Some(a) = state.attempts.iter_mut().rev().find(|a| a.id == id) {
            a.stage = stage;
            a.outcome = outcome;
            a.resolved_at = Some(super::now_secs());
        }
    }
}

impl Farmer {
    /// Block farming (attempts, the channel to the full node).
    pub fn blocks(&self) -> &Blocks {
        &self.blocks
    }

    /// The chain check of a proof, when block farming is on and its signage point came from a
    /// full node: its required iterations at the chain's difficulty, `Some` when below the
    /// signage point interval (chia's `new_proof_of_space`). The proof is verified with no plot
    /// filter (the harvester applied the chain's; the full node checks it again).
    pub(super) fn block_check(&self, np: &p::NewProofOfSpace) -> Option<BlockProof> {
        let constants = self.blocks.state.lock().constants?;
        let challenge_hash = np.challenge_hash.to_bytes();
        let sp_hash = np.sp_hash.to_bytes();
        let (point, chain) = {
            let recent = self.recent.lock();
            let a = recent.find(&challenge_hash, &sp_hash)?;
            (a.point, a.chain?)
        };
        let pos = &np.proof;
        // No plot filter: the harvester applied the chain's (the full node checks it again).
        let (plot_id, quality) =
            super::intake::verify_proof(self.config.network, pos, &challenge_hash, &sp_hash, 0)
                .ok()?;
        let required_iters = calculate_iterations_quality(
            constants.difficulty_constant_factor,
            &quality,
            pos.size,
            chain.difficulty,
            &sp_hash,
        )
        .ok()?;
        let sp_interval_iters = constants.sp_interval_iters(chain.sub_slot_iters);
        (required_iters < sp_interval_iters).then(|| BlockProof {
            quality,
            required_iters,
            sp_interval_iters,
            point,
            chain,
            plot_id,
            proof: pos.clone(),
            plot_identifier: np.plot_identifier.clone(),
        })
    }

    /// The harvester signed the signage points of a block proof: declares it to the full node
    /// (or records why not).
    pub(super) fn declare_block(
        &self,
        harvester: u64,
        block: &BlockProof,
        reply: &p::RespondSignatures,
    ) {
        let id = self.blocks.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let cc_sp = block.point.sp_hash;
        let rc_sp = block.chain.reward_chain_sp;
        let keys = &self.config.keys;
        let farmer_ph = self.config.payout_puzzle_hash;
        let signed = sign_declaration(keys, reply, block, farmer_ph);
        let mut attempt = BlockAttempt {
            id,
            time: super::now_secs(),
            harvester,
            plot_id: hex32(&block.plot_id),
            k: block.proof.size,
            challenge_hash: hex32(&block.point.challenge_hash),
            sp_hash: hex32(&cc_sp),
            reward_chain_sp: hex32(&rc_sp),
            signage_point_index: block.point.index,
            sp_peak_height: block.point.peak_height,
            quality_string: hex32(&block.quality),
            required_iters: block.required_iters,
            sp_interval_iters: block.sp_interval_iters,
            chain_difficulty: block.chain.difficulty,
            sub_slot_iters: block.chain.sub_slot_iters,
            farmer_puzzle_hash: hex32(&farmer_ph),
            pool_target: None,
            connection: 0,
            stage: Stage::Declared,
            outcome: "declared".into(),
            signed_values: 0,
            height: None,
            header_hash: None,
            block_farmer_puzzle_hash: None,
            block_pool_puzzle_hash: None,
            resolved_at: None,
            payouts: Vec::new(),
        };
        let mut state = self.blocks.state.lock();
        attempt.connection = state.connection;
        let result = match signed {
            Err(e) => Err(format!("rejected: {e}")),
            Ok(_) if state.live.len() >= MAX_WAITING => Err(format!(
                "rejected: {MAX_WAITING} attempts already wait for the full node"
            )),
            Ok((cc, rc, pool_target, pool_signature)) => {
                attempt.pool_target = pool_target
                    .as_ref()
                    .map(|t| hex32(&t.puzzle_hash.to_bytes()));
                let message = p::DeclareProofOfSpace {
                    challenge_hash: Bytes32::new(block.point.challenge_hash),
                    challenge_chain_sp: Bytes32::new(cc_sp),
                    signage_point_index: block.point.index,
                    reward_chain_sp: Bytes32::new(rc_sp),
                    proof_of_space: block.proof.clone(),
                    challenge_chain_sp_signature: cc,
                    reward_chain_sp_signature: rc,
                    farmer_puzzle_hash: Bytes32::new(farmer_ph),
                    pool_target,
                    pool_signature,
                    include_signature_source_data: false,
                };
                match state.uplink.as_ref().map(|u| {
                    u.try_send(Uplink::Declare {
                        attempt: id,
                        message: Box::new(message),
                    })
                    .is_ok()
                }) {
                    Some(true) => Ok(()),
                    Some(false) => Err("rejected: the full node link is busy or gone".into()),
                    None => Err("rejected: no full node link".into()),
                }
            }
        };
        match &result {
            Ok(()) => {
                state.live.insert(
                    block.quality,
                    Live {
                        attempt: id,
                        harvester,
                        plot_identifier: block.plot_identifier.clone(),
                        challenge_hash: Bytes32::new(block.point.challenge_hash),
                        sp_hash: Bytes32::new(cc_sp),
                        proof: block.proof.clone(),
                    },
                );
            }
            Err(why) => {
                attempt.stage = Stage::Rejected;
                attempt.outcome.clone_from(why);
                attempt.resolved_at = Some(attempt.time);
            }
        }
        state.attempts.push_back(attempt.clone());
        while state.attempts.len() > RECENT_ATTEMPTS {
            if let Some(old) = state.attempts.pop_front() {
                state.live.retain(|_, l| l.attempt != old.id);
            }
        }
        drop(state);
        match result {
            Ok(()) => {
                self.count("blocks_declared");
                tracing::info!(
                    attempt = id,
                    harvester,
                    plot = %attempt.plot_id,
                    sp_index = attempt.signage_point_index,
                    sp_peak_height = attempt.sp_peak_height,
                    required_iters = attempt.required_iters,
                    sp_interval_iters = attempt.sp_interval_iters,
                    "chia block: proof declared to the full node"
                );
            }
            Err(why) => {
                self.count("blocks_rejected");
                tracing::warn!(attempt = id, harvester, "chia block: {why}");
            }
        }
    }

    /// The full node asks for the foliage signatures of the unfinished block made from one of
    /// our proofs: the harvester that found it is asked to sign them.
    pub fn request_signed_values(&self, request: &p::RequestSignedValues) {
        let quality = request.quality_string.to_bytes();
        let (live, session) = {
            let state = self.blocks.state.lock();
            let Some(live) = state.live.get(&quality).cloned() else {
                drop(state);
                self.count("block_unknown_signed_values_request");
                tracing::warn!(
                    quality = %hex32(&quality),
                    "chia block: the full node asked for signed values of an unknown proof"
                );
                return;
            };
            let session = state.sessions.get(&live.harvester).cloned();
            (live, session)
        };
        let command = SessionCommand::SignValues {
            attempt: live.attempt,
            request: p::RequestSignatures {
                plot_identifier: live.plot_identifier.clone(),
                challenge_hash: live.challenge_hash,
                sp_hash: live.sp_hash,
                messages: vec![
                    request.foliage_block_data_hash,
                    request.foliage_transaction_block_hash,
                ],
                message_data: None,
                rc_block_unfinished: request.rc_block_unfinished.clone(),
            },
        };
        let sent = session.is_some_and(|s| s.try_send(command).is_ok());
        if sent {
            tracing::info!(
                attempt = live.attempt,
                harvester = live.harvester,
                "chia block: the full node asked for signed values; asking the harvester"
            );
        } else {
            self.count("blocks_rejected");
            let why = "rejected: the harvester that found the proof is gone or busy";
            tracing::warn!(attempt = live.attempt, "chia block: {why}");
            self.blocks
                .finish(live.attempt, Stage::Rejected, why.into());
        }
    }

    /// The harvester signed the foliage of attempt `attempt`: `signed_values` to the full node.
    pub(super) fn block_signed_values(
        &self,
        attempt: u64,
        messages: &[Bytes32],
        reply: &p::RespondSignatures,
    ) {
        let live = {
            let state = self.blocks.state.lock();
            state
                .live
                .iter()
                .find(|(_, l)| l.attempt == attempt)
                .map(|(q, l)| (*q, l.clone()))
        };
        let Some((quality, live)) = live else {
            return;
        };
        let keys = &self.config.keys;
        let (Some(data_hash), Some(tx_hash)) = (messages.first(), messages.get(1)) else {
            return;
        };
        let signed = plot_signature(
            keys,
            reply,
            &live.proof,
            &data_hash.to_bytes(),
            "the foliage block data",
        )
        .and_then(|data| {
            let tx = plot_signature(
                keys,
                reply,
                &live.proof,
                &tx_hash.to_bytes(),
                "the foliage transaction block",
            )?;
            Ok((data, tx))
        });
        let sent = match signed {
            Err(e) => Err(format!("rejected: {e}")),
            Ok((data, tx)) => {
                let uplink = self.blocks.state.lock().uplink.clone();
                let message = p::SignedValues {
                    quality_string: Bytes32::new(quality),
                    foliage_block_data_signature: data,
                    foliage_transaction_block_signature: tx,
                };
                match uplink.map(|u| {
                    u.try_send(Uplink::SignedValues { attempt, message })
                        .is_ok()
                }) {
                    Some(true) => Ok(()),
                    _ => Err("not included: the full node link is busy or gone".into()),
                }
            }
        };
        match sent {
            Ok(()) => {
                self.count("block_signed_values");
                self.blocks.update(attempt, |a| {
                    a.signed_values += 1;
                    if a.stage == Stage::Declared {
                        a.stage = Stage::SignedValues;
                        a.outcome = "signed values sent".into();
                    }
                });
                tracing::info!(attempt, "chia block: signed values sent to the full node");
            }
            Err(why) => {
                let stage = if why.starts_with("rejected") {
                    Stage::Rejected
                } else {
                    Stage::NotIncluded
                };
                self.count("blocks_rejected");
                tracing::warn!(attempt, "chia block: {why}");
                self.blocks.finish(attempt, stage, why);
            }
        }
    }

    /// A new connection (`connection`, counted from 1) to the full node: attempts declared on an
    /// earlier one and never asked for signed values are over (that full node's candidate is
    /// gone with it).
    pub fn block_link_connected(&self, connection: u64) {
        for id in self.blocks.connected(connection) {
            self.resolve_block(
                id,
                Resolution::NotIncluded(
                    "the full node link was lost before it asked for signed values".into(),
                ),
            );
        }
    }

    /// Records the outcome of attempt `id`.
    pub fn resolve_block(&self, id: u64, resolution: Resolution) {
        match resolution {
            Resolution::InChain {
                height,
                header_hash,
                farmer_puzzle_hash,
                pool_puzzle_hash,
            } => {
                let split = self.blocks.state.lock().split.clone();
                let payouts = split.map(|f| f()).unwrap_or_default();
                self.blocks.finish(
                    id,
                    Stage::InChain,
                    format!("in the chain at height {height}"),
                );
                self.blocks.update(id, |a| {
                    a.height = Some(height);
                    a.header_hash = Some(hex32(&header_hash));
                    a.block_farmer_puzzle_hash = farmer_puzzle_hash.as_ref().map(hex32);
                    a.block_pool_puzzle_hash = pool_puzzle_hash.as_ref().map(hex32);
                    a.payouts = payouts;
                });
                self.count("blocks_in_chain");
                tracing::info!(
                    attempt = id,
                    height,
                    header_hash = %hex32(&header_hash),
                    "chia block: farmed, in the chain at height {height}"
                );
            }
            Resolution::NotIncluded(why) => {
                self.count("blocks_not_included");
                tracing::info!(attempt = id, "chia block: not included: {why}");
                self.blocks
                    .finish(id, Stage::NotIncluded, format!("not included: {why}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sp_interval_iters_as_chia() {
        let c = ChainConstants::MAINNET;
        assert_eq!(c.sp_interval_iters(147_849_216), 2_310_144);
        assert_eq!(ChainConstants::for_network("mainnet"), c);
        assert_eq!(
            ChainConstants::for_network("testnet11").difficulty_constant_factor,
            10_052_721_566_054
        );
        assert_eq!(
            ChainConstants {
                difficulty_constant_factor: 1,
                num_sps_sub_slot: 0
            }
            .sp_interval_iters(64),
            64
        );
    }

    const MNEMONIC: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

    fn reply_for(
        keys: &FarmerKeys,
        local_pk: PublicKey,
        signatures: Vec<(Bytes32, Signature)>,
    ) -> p::RespondSignatures {
        p::RespondSignatures {
            plot_identifier: String::new(),
            challenge_hash: Bytes32::new([1; 32]),
            sp_hash: Bytes32::new([2; 32]),
            local_pk,
            farmer_pk: keys.farmer_pk(),
            message_signatures: signatures,
            include_source_signature_data: false,
            farmer_reward_address_override: None,
        }
    }

    #[test]
    fn plot_signatures_aggregate_as_chias_farmer() {
        let keys = FarmerKeys::from_mnemonic(MNEMONIC).unwrap();
        let local_sk = chia_bls::SecretKey::from_seed(&[3; 32]);
        let local_pk = local_sk.public_key();
        let message = [5u8; 32];
        for contract in [false, true] {
            let (plot_pk, _) = plot_key(&reply_for(&keys, local_pk, Vec::new()), contract);
            let proof = ProofOfSpace {
                challenge: Bytes32::new([4; 32]),
                pool_public_key: (!contract).then(|| keys.pool_pk()),
                pool_contract_puzzle_hash: contract.then(|| Bytes32::new([9; 32])),
                plot_public_key: plot_pk,
                version: 0,
                plot_index: 0,
                meta_group: 0,
                strength: 0,
                size: 18,
                proof: vec![0; 144].into(),
            };
            // chia's harvester: AugSchemeMPL.sign(local_sk, message, plot_pk).
            let harvester = sign_aug(&local_sk, &message, &plot_pk);
            let reply = reply_for(&keys, local_pk, vec![(Bytes32::new(message), harvester)]);
            let signature = plot_signature(&keys, &reply, &proof, &message, "m").unwrap();
            assert!(chia_bls::verify(&signature, &plot_pk, message));
            assert_eq!(
                plot_signature(&keys, &reply, &proof, &[6; 32], "m"),
                Err(BlockError::MissingSignature("m"))
            );
            // A harvester signature by another key does not add up.
            let other = chia_bls::SecretKey::from_seed(&[8; 32]);
            let forged = reply_for(
                &keys,
                local_pk,
                vec![(Bytes32::new(message), sign_aug(&other, &message, &plot_pk))],
            );
            assert_eq!(
                plot_signature(&keys, &forged, &proof, &message, "m"),
                Err(BlockError::BadSignature("m"))
            );
            let foreign = reply_for(&keys, other.public_key(), Vec::new());
            assert_eq!(
                plot_signature(&keys, &foreign, &proof, &message, "m"),
                Err(BlockError::PlotKeyMismatch)
            );
        }
        // The pool target as chia's full node checks it: AugSchemeMPL over its 36 bytes.
        let target = PoolTarget::new(Bytes32::new([7; 32]), 0);
        let bytes = chia_traits::Streamable::to_bytes(&target).unwrap();
        assert_eq!(bytes.len(), 36);
        assert!(chia_bls::verify(
            &keys.sign_pool(&bytes),
            &keys.pool_pk(),
            &bytes
        ));
    }

    #[test]
    fn harvesters_get_the_easier_of_the_share_and_chain_thresholds() {
        use super::super::messages::harvester_difficulty;
        use super::super::Announced;
        let network = &sharechain::pospace_share::ChiaNetwork::REGTEST;
        assert_eq!(network.pool_sub_slot_iters, 32_768);
        let chain = ChainPoint {
            difficulty: 2048,
            sub_slot_iters: 65_536,
            reward_chain_sp: [0; 32],
            last_tx_height: 0,
            filter_challenge: None,
        };
        let a = Announced {
            number: 1,
            point: SignagePoint {
                challenge_hash: [1; 32],
                sp_hash: [2; 32],
                index: 3,
                peak_height: 4,
            },
            difficulty: 5000,
            time: 0,
            chain: Some(chain),
        };
        // Twice the sub-slot iterations: the chain's threshold is difficulty 1024 at the pool's.
        assert_eq!(harvester_difficulty(network, &a), 1024);
        assert_eq!(
            harvester_difficulty(
                network,
                &Announced {
                    difficulty: 100,
                    ..a
                }
            ),
            100
        );
        assert_eq!(
            harvester_difficulty(network, &Announced { chain: None, ..a }),
            5000
        );
    }

    fn attempt(id: u64, connection: u64, stage: Stage) -> BlockAttempt {
        BlockAttempt {
            id,
            time: 0,
            harvester: 1,
            plot_id: String::new(),
            k: 18,
            challenge_hash: String::new(),
            sp_hash: String::new(),
            reward_chain_sp: String::new(),
            signage_point_index: 0,
            sp_peak_height: 0,
            quality_string: String::new(),
            required_iters: 1,
            sp_interval_iters: 2,
            chain_difficulty: 1,
            sub_slot_iters: 128,
            farmer_puzzle_hash: String::new(),
            pool_target: None,
            connection,
            stage,
            outcome: String::new(),
            signed_values: 0,
            height: None,
            header_hash: None,
            block_farmer_puzzle_hash: None,
            block_pool_puzzle_hash: None,
            resolved_at: None,
            payouts: Vec::new(),
        }
    }

    #[test]
    fn a_new_connection_ends_the_old_ones_declared_attempts() {
        let blocks = Blocks::default();
        {
            let mut state = blocks.state.lock();
            state.attempts.extend([
                attempt(1, 1, Stage::Declared),
                attempt(2, 1, Stage::SignedValues),
                attempt(3, 1, Stage::InChain),
                attempt(4, 2, Stage::Declared),
            ]);
            for id in [1, 2, 4] {
                let live = Live {
                    attempt: id,
                    harvester: 1,
                    plot_identifier: String::new(),
                    challenge_hash: Bytes32::new([0; 32]),
                    sp_hash: Bytes32::new([0; 32]),
                    proof: ProofOfSpace {
                        challenge: Bytes32::new([4; 32]),
                        pool_public_key: None,
                        pool_contract_puzzle_hash: Some(Bytes32::new([9; 32])),
                        plot_public_key: chia_bls::SecretKey::from_seed(&[id as u8; 32])
                            .public_key(),
                        version: 0,
                        plot_index: 0,
                        meta_group: 0,
                        strength: 0,
                        size: 18,
                        proof: vec![0; 144].into(),
                    },
                };
                state.live.insert([id as u8; 32], live);
            }
        }
        // Only the one declared on connection 1 and never asked for signed values.
        assert_eq!(blocks.connected(2), vec![1]);
        blocks.finish(1, Stage::NotIncluded, "not included: link lost".into());
        let waiting: Vec<u64> = blocks.waiting().iter().map(|w| w.id).collect();
        assert_eq!(waiting, vec![2, 4]);
        assert_eq!(blocks.attempts()[3].stage, Stage::NotIncluded);
        assert!(blocks.attempts()[3].resolved_at.is_some());
        assert_eq!(blocks.connected(3), vec![4]);
    }

    #[test]
    fn waiting_stages() {
        assert!(Stage::Declared.waiting() && Stage::SignedValues.waiting());
        assert!(!Stage::InChain.waiting() && !Stage::NotIncluded.waiting());
        assert!(!Stage::Rejected.waiting());
    }
}
