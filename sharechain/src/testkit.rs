//! Helpers that mine real shares at easy targets, for tests and benchmarks.
//!
//! Not part of the consensus API: it lives here so unit tests, integration tests, property tests
//! and benchmarks build chains the same way.

use bitcoin::hashes::Hash;
use bitcoin::pow::{CompactTarget, Target};
use bitcoin::{Amount, BlockHash, ScriptBuf};

use crate::build::{generate, BuildError, ShareRequest, ShareTemplate, WorkBase};
use crate::gentx::bip34_height_push;
use crate::params::NetworkParams;
use crate::share::{
    CheckedShare, MerkleLink, SegwitData, ShareError, ShareHash, SmallBlockHeader, StaleInfo,
};
use crate::verify::{new_tracker, Tracker};

/// Regtest's block bits: about half of all hashes meet them.
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// Parameters like `base` but with shares that need about two hashes, and the given chain
/// length (leaked: parameters are `'static` everywhere).
pub fn easy_params(
    base: &NetworkParams,
    chain_length: u32,
    lookbehind: u32,
) -> &'static NetworkParams {
    let mut max = [0xff; 32];
    max[0] = 0x7f;
    Box::leak(Box::new(NetworkParams {
        chain_length,
        target_lookbehind: lookbehind,
        max_target_be: max,
        ..base.clone()
    }))
}

/// A P2WPKH script with a recognisable 20-byte program.
pub fn p2wpkh(tag: u32) -> ScriptBuf {
    let mut program = [0u8; 20];
    program[..4].copy_from_slice(&tag.to_le_bytes());
    program[19] = 0xee;
    ScriptBuf::from_bytes([&[0x00, 0x14][..], &program].concat())
}

/// The request for a new share paying `payout` on `parent`.
pub fn request(
    params: &NetworkParams,
    parent: Option<ShareHash>,
    payout: ScriptBuf,
    timestamp: u32,
    nonce: u32,
) -> ShareRequest {
    let mut coinbase = bip34_height_push(1000);
    coinbase.extend_from_slice(&nonce.to_le_bytes());
    ShareRequest {
        version: params.current_share_version(),
        previous_share_hash: parent,
        coinbase,
        nonce,
        payout_script: payout,
        subsidy: Amount::from_sat(50 * 100_000_000),
        donation: 0,
        stale_info: StaleInfo::None,
        desired_version: params.current_share_version(),
        segwit_data: SegwitData {
            txid_merkle_link: MerkleLink::default(),
            wtxid_merkle_root: [0; 32],
        },
        desired_target: params.max_target(),
        desired_timestamp: timestamp,
        block_bits: CompactTarget::from_consensus(REGTEST_BITS),
    }
}

/// Grinds the header nonce until the template's share meets its target.
pub fn mine(
    params: &NetworkParams,
    template: &ShareTemplate,
    previous_block: BlockHash,
    timestamp: u32,
    extranonce: u64,
) -> CheckedShare {
    let mut nonce = 0u32;
    loop {
        let header = SmallBlockHeader {
            version: 0x2000_0000,
            previous_block,
            timestamp,
            bits: CompactTarget::from_consensus(REGTEST_BITS),
            nonce,
        };
        match CheckedShare::check(
            template.share(header, extranonce),
            params,
            u64::from(timestamp),
        ) {
            Ok(share) => return share,
            Err(ShareError::HighHash { .. }) => nonce += 1,
            Err(other) => panic!("mined share fails its own checks: {other}"),
        }
    }
}

/// Builds and mines one share on `parent` in `tracker`'s chain.
pub fn next_share(
    tracker: &mut Tracker,
    params: &NetworkParams,
    parent: Option<ShareHash>,
    payout: ScriptBuf,
    timestamp: u32,
    nonce: u32,
) -> Result<CheckedShare, BuildError> {
    let req = request(params, parent, payout, timestamp, nonce);
    let (chain, verifier) = tracker.parts();
    let template = generate(chain, verifier.pplns_mut(), params, &req)?;
    Ok(mine(
        params,
        &template,
        BlockHash::all_zeros(),
        timestamp,
        u64::from(nonce),
    ))
}

/// Builds and mines one share on a prepared base (a node's published view of its chain), as
/// [`next_share`] does on a tracker.
pub fn next_share_on(
    base: &WorkBase,
    payout: ScriptBuf,
    timestamp: u32,
    nonce: u32,
) -> Result<CheckedShare, BuildError> {
    let params = base.params();
    let req = request(params, base.parent(), payout, timestamp, nonce);
    let template = base.template(&req)?;
    Ok(mine(
        params,
        &template,
        BlockHash::all_zeros(),
        timestamp,
        u64::from(nonce),
    ))
}

/// A target meeting nothing but the easiest hashes (for tests that want a specific target).
pub fn target_from_leading_zero_bits(bits: u32) -> Target {
    let mut be = [0xffu8; 32];
    for (i, b) in be.iter_mut().enumerate() {
        let bit = i as u32 * 8;
        if bit + 8 <= bits {
            *b = 0;
        } else if bit < bits {
            *b = 0xff >> (bits - bit);
        }
    }
    Target::from_be_bytes(be)
}

/// Mines a chain of `len` shares paying `scripts` round-robin, inserting each in a new tracker.
pub fn build_chain(
    params: &'static NetworkParams,
    len: usize,
    scripts: &[ScriptBuf],
) -> (Tracker, Vec<CheckedShare>) {
    let mut tracker = new_tracker(params);
    let mut shares = Vec::with_capacity(len);
    let mut parent = None;
    for i in 0..len {
        let share = next_share(
            &mut tracker,
            params,
            parent,
            scripts[i % scripts.len()].clone(),
            1_700_000_000 + i as u32 * params.share_period,
            i as u32,
        )
        .expect("parent is held");
        parent = Some(share.hash());
        tracker.insert(share.clone()).expect("fresh share inserts");
        shares.push(share);
    }
    (tracker, shares)
}
