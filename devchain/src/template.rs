//! Block templates: what `getblocktemplate` returns and what `generatetoaddress` mines.
//!
//! A template is taken on the chainstate thread ([`ChainState::template`]) from the tip and
//! the mempool: BIP34 height, coinbase value (subsidy + fees), the mempool transactions in
//! arrival order with their fees and in-template dependencies, and the BIP141 default witness
//! commitment. [`BlockTemplate::assemble`] turns one into a block paying a script, as Core's
//! `CreateNewBlock` does (scriptSig `height OP_0`, witness reserved value, commitment output).

use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::opcodes::all::OP_PUSHBYTES_0;
use bitcoin::script::Builder;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, Witness,
};

use super::chain::{now, ChainState};
use super::check::{
    bip34_height_script, subsidy, witness_commitment_script, MAX_BLOCK_SIGOPS_COST,
    MAX_BLOCK_WEIGHT, REGTEST_BITS,
};
use super::mempool::MempoolEntry;

/// Version Core puts in templates (BIP9 top bits, no deployment signalled).
pub const TEMPLATE_VERSION: i32 = 0x2000_0000;

/// A block template.
#[derive(Debug, Clone)]
pub struct BlockTemplate {
    pub version: i32,
    pub previous_block_hash: BlockHash,
    pub height: u32,
    pub bits: CompactTarget,
    pub curtime: u32,
    pub mintime: u32,
    pub coinbase_value: Amount,
    pub transactions: Vec<MempoolEntry>,
    /// 1-based indexes into `transactions` each transaction depends on.
    pub depends: Vec<Vec<usize>>,
    pub default_witness_commitment: ScriptBuf,
    pub longpollid: String,
}

impl ChainState {
    /// A template on top of the active tip.
    pub fn template(&self) -> BlockTemplate {
        let height = self.height() + 1;
        let mtp = self.median_time_past();
        let transactions = select_transactions(self.mempool.entries());
        let depends = transactions
            .iter()
            .map(|entry| {
                let mut deps: Vec<usize> = entry
                    .tx
                    .input
                    .iter()
                    .filter_map(|i| {
                        transactions
                            .iter()
                            .position(|t| t.txid == i.previous_output.txid)
                            .map(|p| p + 1)
                    })
                    .collect();
                deps.sort_unstable();
                deps.dedup();
                deps
            })
            .collect();
        let fees: Amount = transactions.iter().map(|t| t.fee).sum();
        let mut txs = vec![placeholder_coinbase()];
        txs.extend(transactions.iter().map(|t| t.tx.clone()));
        BlockTemplate {
            version: TEMPLATE_VERSION,
            previous_block_hash: self.tip_hash(),
            height,
            bits: self
                .tip_header()
                .map(|h| h.bits)
                .unwrap_or(CompactTarget::from_consensus(REGTEST_BITS)),
            curtime: now().max(mtp + 1),
            mintime: mtp + 1,
            coinbase_value: subsidy(height) + fees,
            default_witness_commitment: witness_commitment_script(&txs),
            transactions,
            depends,
            longpollid: format!("{}{}", self.tip_hash(), self.mempool.updates),
        }
    }
}

/// Room kept for the coinbase, as Core's `BlockAssembler` does.
const COINBASE_RESERVED_WEIGHT: u64 = 4_000;
const COINBASE_RESERVED_SIGOPS: u64 = 400;

/// Mempool transactions in arrival order (parents first) while they fit in a block; a
/// transaction whose parent did not fit is left out too.
fn select_transactions(entries: &[MempoolEntry]) -> Vec<MempoolEntry> {
    let mut weight = COINBASE_RESERVED_WEIGHT;
    let mut sigops = COINBASE_RESERVED_SIGOPS;
    let mut left_out = std::collections::HashSet::new();
    let mut selected = Vec::new();
    for entry in entries {
        let orphaned = entry
            .tx
            .input
            .iter()
            .any(|i| left_out.contains(&i.previous_output.txid));
        if orphaned
            || weight + entry.weight > MAX_BLOCK_WEIGHT
            || sigops + entry.sigops > MAX_BLOCK_SIGOPS_COST
        {
            left_out.insert(entry.txid);
            continue;
        }
        weight += entry.weight;
        sigops += entry.sigops;
        selected.push(entry.clone());
    }
    selected
}

fn placeholder_coinbase() -> Transaction {
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: Vec::new(),
    }
}

impl BlockTemplate {
    /// A block paying the whole coinbase value to `script_pubkey`, nonce not yet ground.
    pub fn assemble(&self, script_pubkey: ScriptBuf) -> Block {
        let script_sig = Builder::from(bip34_height_script(self.height).into_bytes())
            .push_opcode(OP_PUSHBYTES_0)
            .into_script();
        let mut witness = Witness::new();
        witness.push([0u8; 32]);
        let coinbase = Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig,
                sequence: Sequence::MAX,
                witness,
            }],
            output: vec![
                TxOut {
                    value: self.coinbase_value,
                    script_pubkey,
                },
                TxOut {
                    value: Amount::ZERO,
                    script_pubkey: self.default_witness_commitment.clone(),
                },
            ],
        };
        let mut txdata = vec![coinbase];
        txdata.extend(self.transactions.iter().map(|t| t.tx.clone()));
        let mut block = Block {
            header: Header {
                version: Version::from_consensus(self.version),
                prev_blockhash: self.previous_block_hash,
                merkle_root: TxMerkleNode::all_zeros(),
                time: self.curtime,
                bits: self.bits,
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block
            .compute_merkle_root()
            .unwrap_or(TxMerkleNode::all_zeros());
        block
    }
}

/// Grind the nonce until the header meets its target; `false` after `max_tries` attempts.
pub fn grind(header: &mut Header, max_tries: u64) -> bool {
    let target = header.target();
    for _ in 0..max_tries {
        if target.is_met_by(header.block_hash()) {
            return true;
        }
        header.nonce = header.nonce.wrapping_add(1);
        if header.nonce == 0 {
            header.time += 1;
        }
    }
    false
}

impl ChainState {
    /// Core's `generateBlocks`: mine `count` blocks paying `script_pubkey` on the active tip.
    pub fn generate(
        &mut self,
        count: u32,
        script_pubkey: &ScriptBuf,
        max_tries: u64,
    ) -> Vec<BlockHash> {
        let mut hashes = Vec::new();
        let mut tries_left = max_tries;
        for _ in 0..count {
            let mut block = self.template().assemble(script_pubkey.clone());
            let start = block.header.nonce;
            if !grind(&mut block.header, tries_left) {
                break;
            }
            tries_left =
                tries_left.saturating_sub(u64::from(block.header.nonce.wrapping_sub(start)) + 1);
            let hash = block.block_hash();
            match self.submit_block(block, false) {
                super::submit::SubmitOutcome::Accepted => hashes.push(hash),
                other => {
                    tracing::warn!(?other, "devchain: a generated block was not accepted");
                    break;
                }
            }
        }
        hashes
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::hashes::Hash;
    use bitcoin::Txid;

    use super::*;

    fn entry(n: u8, parent: Option<Txid>, weight: u64) -> MempoolEntry {
        let mut tx = placeholder_coinbase();
        tx.input[0].previous_output = OutPoint::new(
            parent.unwrap_or_else(|| Txid::from_byte_array([0xee; 32])),
            u32::from(n),
        );
        MempoolEntry {
            txid: tx.compute_txid(),
            wtxid: tx.compute_wtxid(),
            tx,
            fee: Amount::from_sat(1_000),
            weight,
            sigops: 0,
        }
    }

    #[test]
    fn selection_stops_at_the_weight_limit_and_drops_orphaned_children() {
        let big = entry(1, None, 3_000_000);
        let too_big = entry(2, None, 1_500_000);
        let child_of_too_big = entry(3, Some(too_big.txid), 400);
        let small = entry(4, None, 400);
        let picked = select_transactions(&[big.clone(), too_big, child_of_too_big, small.clone()]);
        let txids: Vec<_> = picked.iter().map(|e| e.txid).collect();
        assert_eq!(txids, vec![big.txid, small.txid]);
    }
}
