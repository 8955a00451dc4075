//! Regtest consensus constants and Bitcoin Core's BIP22 reject reasons.
//!
//! The kernel judges every block; this module only *names* a rejection. The kernel reports a
//! coarse [`bitcoinkernel::BlockValidationResult`] but not Core's reject-reason string, so when it
//! rejects a block [`reject_reason`] re-runs Core's checks in Core's order (`CheckBlock`,
//! `AcceptBlockHeader`/`ContextualCheckBlockHeader`, `ContextualCheckBlock`, the value checks of
//! `ConnectBlock`) and returns the first reason Core would have given. The same helpers build
//! coinbases (BIP34 height push, witness commitment) for templates and `generatetoaddress`.

use std::collections::{HashMap, HashSet};

use bitcoin::blockdata::script::Builder;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{Amount, Block, CompactTarget, OutPoint, ScriptBuf, Transaction, TxOut};

use super::utxo::UtxoSet;

/// Regtest proof-of-work limit, `207fffff`.
pub const REGTEST_BITS: u32 = 0x207f_ffff;
/// Regtest subsidy halving interval.
pub const HALVING_INTERVAL: u32 = 150;
/// Blocks before a coinbase output may be spent.
pub const COINBASE_MATURITY: u32 = 100;
pub const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
pub const MAX_BLOCK_SIGOPS_COST: u64 = 80_000;
const WITNESS_SCALE_FACTOR: u64 = 4;
const MAX_MONEY: u64 = 21_000_000 * 100_000_000;
const LOCKTIME_THRESHOLD: u32 = 500_000_000;
/// Blocks may be at most this far in the future.
pub const MAX_FUTURE_BLOCK_TIME: u32 = 2 * 60 * 60;
/// `OP_RETURN OP_PUSHBYTES_36 aa21a9ed`: the start of a BIP141 commitment output.
const WITNESS_COMMITMENT_HEADER: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];

/// Block subsidy at `height` on regtest.
pub fn subsidy(height: u32) -> Amount {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat((50 * 100_000_000u64) >> halvings)
}

/// The script `CScript() << height` that BIP34 requires at the start of the coinbase scriptSig.
pub fn bip34_height_script(height: u32) -> ScriptBuf {
    Builder::new().push_int(i64::from(height)).into_script()
}

/// Index of the witness commitment output of `coinbase` (the last matching output), as Core's
/// `GetWitnessCommitmentIndex`.
pub fn witness_commitment_index(coinbase: &Transaction) -> Option<usize> {
    coinbase.output.iter().rposition(|out| {
        let bytes = out.script_pubkey.as_bytes();
        bytes.len() >= 38 && bytes[..6] == WITNESS_COMMITMENT_HEADER
    })
}

/// Witness merkle root with the coinbase counted as zero.
fn witness_root(txs: &[Transaction]) -> [u8; 32] {
    let leaves: Vec<[u8; 32]> = txs
        .iter()
        .enumerate()
        .map(|(i, tx)| {
            if i == 0 {
                [0; 32]
            } else {
                tx.compute_wtxid().to_byte_array()
            }
        })
        .collect();
    merkle_root(leaves).0
}

/// The commitment output script for `txs` (coinbase first) with an all-zero reserved value, as
/// Core's `GenerateCoinbaseCommitment`.
pub fn witness_commitment_script(txs: &[Transaction]) -> ScriptBuf {
    let commitment = commitment_hash(witness_root(txs), [0; 32]);
    let mut bytes = WITNESS_COMMITMENT_HEADER.to_vec();
    bytes.extend_from_slice(&commitment);
    ScriptBuf::from_bytes(bytes)
}

fn commitment_hash(root: [u8; 32], reserved: [u8; 32]) -> [u8; 32] {
    let mut data = root.to_vec();
    data.extend_from_slice(&reserved);
    sha256d::Hash::hash(&data).to_byte_array()
}

/// Merkle root of `leaves` and whether the tree is mutated (CVE-2012-2459), as Core's
/// `ComputeMerkleRoot`.
pub fn merkle_root(mut level: Vec<[u8; 32]>) -> ([u8; 32], bool) {
    if level.is_empty() {
        return ([0; 32], false);
    }
    let mut mutated = false;
    while level.len() > 1 {
        for pair in level.chunks(2) {
            if pair.len() == 2 && pair[0] == pair[1] {
                mutated = true;
            }
        }
        if level.len() % 2 == 1 {
            let last = level[level.len() - 1];
            level.push(last);
        }
        level = level
            .chunks(2)
            .map(|pair| {
                let mut data = pair[0].to_vec();
                data.extend_from_slice(&pair[1]);
                sha256d::Hash::hash(&data).to_byte_array()
            })
            .collect();
    }
    (level[0], mutated)
}

/// What the block is checked against: its parent on the kernel's block tree.
#[derive(Debug, Clone, Copy)]
pub struct ParentContext {
    pub height: u32,
    pub bits: CompactTarget,
    pub median_time_past: u32,
    /// True when the parent is the active tip, so the UTXO set is the block's input view.
    pub is_tip: bool,
}

/// Core's reject reason for `block`, or `None` if none of the mirrored checks fails.
pub fn reject_reason(
    block: &Block,
    parent: Option<&ParentContext>,
    utxo: &UtxoSet,
    now: u32,
) -> Option<String> {
    check_block(block)
        .or_else(|| match parent {
            None => Some("prev-blk-not-found"),
            Some(parent) => contextual_check_header(block, parent, now)
                .or_else(|| contextual_check_block(block, parent))
                .or_else(|| {
                    if parent.is_tip {
                        connect_block_values(block, parent.height + 1, utxo)
                    } else {
                        None
                    }
                }),
        })
        .map(|reason| {
            if reason == "bad-version" {
                format!(
                    "bad-version(0x{:08x})",
                    block.header.version.to_consensus() as u32
                )
            } else {
                reason.to_owned()
            }
        })
}

/// Core's `CheckBlock` (context free).
fn check_block(block: &Block) -> Option<&'static str> {
    let target = block.header.target();
    if !target.is_met_by(block.block_hash()) {
        return Some("high-hash");
    }
    let (root, mutated) = merkle_root(
        block
            .txdata
            .iter()
            .map(|tx| tx.compute_txid().to_byte_array())
            .collect(),
    );
    if root != block.header.merkle_root.to_byte_array() {
        return Some("bad-txnmrklroot");
    }
    if mutated {
        return Some("bad-txns-duplicate");
    }
    let stripped: u64 = block
        .txdata
        .iter()
        .map(|tx| tx.base_size() as u64)
        .sum::<u64>()
        + 80;
    if block.txdata.is_empty() || stripped * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT {
        return Some("bad-blk-length");
    }
    if !block.txdata[0].is_coinbase() {
        return Some("bad-cb-missing");
    }
    if block.txdata[1..].iter().any(Transaction::is_coinbase) {
        return Some("bad-cb-multiple");
    }
    let mut sigops = 0u64;
    for tx in &block.txdata {
        if let Some(reason) = check_transaction(tx) {
            return Some(reason);
        }
        for input in &tx.input {
            sigops += input.script_sig.count_sigops_legacy() as u64;
        }
        for output in &tx.output {
            sigops += output.script_pubkey.count_sigops_legacy() as u64;
        }
    }
    if sigops * WITNESS_SCALE_FACTOR > MAX_BLOCK_SIGOPS_COST {
        return Some("bad-blk-sigops");
    }
    None
}

/// Core's `CheckTransaction`.
pub fn check_transaction(tx: &Transaction) -> Option<&'static str> {
    if tx.input.is_empty() {
        return Some("bad-txns-vin-empty");
    }
    if tx.output.is_empty() {
        return Some("bad-txns-vout-empty");
    }
    if tx.base_size() as u64 * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT {
        return Some("bad-txns-oversize");
    }
    let mut total = 0u64;
    for output in &tx.output {
        let value = output.value.to_sat();
        if value > MAX_MONEY {
            return Some("bad-txns-vout-toolarge");
        }
        total += value;
        if total > MAX_MONEY {
            return Some("bad-txns-txouttotal-toolarge");
        }
    }
    let mut seen = HashSet::new();
    if !tx.input.iter().all(|i| seen.insert(i.previous_output)) {
        return Some("bad-txns-inputs-duplicate");
    }
    if tx.is_coinbase() {
        let len = tx.input[0].script_sig.len();
        if !(2..=100).contains(&len) {
            return Some("bad-cb-length");
        }
    } else if tx
        .input
        .iter()
        .any(|i| i.previous_output == OutPoint::null())
    {
        return Some("bad-txns-prevout-null");
    }
    None
}

/// Core's `ContextualCheckBlockHeader` on regtest (no retargeting; BIP34/65/66 from height 1).
fn contextual_check_header(
    block: &Block,
    parent: &ParentContext,
    now: u32,
) -> Option<&'static str> {
    if block.header.bits != parent.bits {
        return Some("bad-diffbits");
    }
    if block.header.time <= parent.median_time_past {
        return Some("time-too-old");
    }
    if block.header.time > now.saturating_add(MAX_FUTURE_BLOCK_TIME) {
        return Some("time-too-new");
    }
    if block.header.version.to_consensus() < 4 {
        return Some("bad-version");
    }
    None
}

/// Whether `tx` is final in a block at `height` whose parent has `median_time_past`.
pub fn is_final(tx: &Transaction, height: u32, median_time_past: u32) -> bool {
    let lock_time = tx.lock_time.to_consensus_u32();
    if lock_time == 0 {
        return true;
    }
    let cutoff = if lock_time < LOCKTIME_THRESHOLD {
        height
    } else {
        median_time_past
    };
    if lock_time < cutoff {
        return true;
    }
    tx.input.iter().all(|i| i.sequence.is_final())
}

/// Core's `ContextualCheckBlock`: finality, BIP34, witness commitment, weight.
fn contextual_check_block(block: &Block, parent: &ParentContext) -> Option<&'static str> {
    let height = parent.height + 1;
    if !block
        .txdata
        .iter()
        .all(|tx| is_final(tx, height, parent.median_time_past))
    {
        return Some("bad-txns-nonfinal");
    }
    let coinbase = &block.txdata[0];
    let expected = bip34_height_script(height);
    if !coinbase.input[0]
        .script_sig
        .as_bytes()
        .starts_with(expected.as_bytes())
    {
        return Some("bad-cb-height");
    }
    match witness_commitment_index(coinbase) {
        Some(index) => {
            let witness = &coinbase.input[0].witness;
            let reserved = match (witness.len(), witness.nth(0)) {
                (1, Some(item)) if item.len() == 32 => {
                    let mut r = [0u8; 32];
                    r.copy_from_slice(item);
                    r
                }
                _ => return Some("bad-witness-nonce-size"),
            };
            let expected = commitment_hash(witness_root(&block.txdata), reserved);
            if coinbase.output[index].script_pubkey.as_bytes()[6..38] != expected {
                return Some("bad-witness-merkle-match");
            }
        }
        None => {
            if block
                .txdata
                .iter()
                .any(|tx| tx.input.iter().any(|i| !i.witness.is_empty()))
            {
                return Some("unexpected-witness");
            }
        }
    }
    if block.weight().to_wu() > MAX_BLOCK_WEIGHT {
        return Some("bad-blk-weight");
    }
    None
}

/// The value checks of Core's `ConnectBlock` / `Consensus::CheckTxInputs`.
fn connect_block_values(block: &Block, height: u32, utxo: &UtxoSet) -> Option<&'static str> {
    let mut created: HashMap<OutPoint, TxOut> = HashMap::new();
    let mut spent: HashSet<OutPoint> = HashSet::new();
    let mut fees = Amount::ZERO;
    for (index, tx) in block.txdata.iter().enumerate() {
        let txid = tx.compute_txid();
        if index > 0 {
            let mut value_in = Amount::ZERO;
            for input in &tx.input {
                let prevout = input.previous_output;
                if !spent.insert(prevout) {
                    return Some("bad-txns-inputs-missingorspent");
                }
                if let Some(out) = created.get(&prevout) {
                    value_in += out.value;
                } else if let Some(coin) = utxo.get(&prevout) {
                    if coin.is_coinbase && height - coin.height < COINBASE_MATURITY {
                        return Some("bad-txns-premature-spend-of-coinbase");
                    }
                    value_in += coin.output.value;
                } else {
                    return Some("bad-txns-inputs-missingorspent");
                }
            }
            let value_out: Amount = tx.output.iter().map(|o| o.value).sum();
            if value_in < value_out {
                return Some("bad-txns-in-belowout");
            }
            fees += value_in - value_out;
        }
        for (vout, out) in tx.output.iter().enumerate() {
            created.insert(OutPoint::new(txid, vout as u32), out.clone());
        }
    }
    let coinbase_out: Amount = block.txdata[0].output.iter().map(|o| o.value).sum();
    if coinbase_out > subsidy(height) + fees {
        return Some("bad-cb-amount");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsidy_halves_every_150_blocks() {
        assert_eq!(subsidy(1), Amount::from_sat(5_000_000_000));
        assert_eq!(subsidy(150), Amount::from_sat(2_500_000_000));
        assert_eq!(subsidy(300), Amount::from_sat(1_250_000_000));
    }

    #[test]
    fn bip34_small_heights_use_op_n() {
        assert_eq!(bip34_height_script(1).as_bytes(), &[0x51]);
        assert_eq!(bip34_height_script(16).as_bytes(), &[0x60]);
        assert_eq!(bip34_height_script(17).as_bytes(), &[0x01, 0x11]);
        assert_eq!(bip34_height_script(128).as_bytes(), &[0x02, 0x80, 0x00]);
    }

    #[test]
    fn merkle_detects_duplicated_pairs() {
        let (_, mutated) = merkle_root(vec![[1; 32], [2; 32], [3; 32], [3; 32]]);
        assert!(mutated);
        let (_, mutated) = merkle_root(vec![[1; 32], [2; 32], [3; 32]]);
        assert!(!mutated);
    }
}
