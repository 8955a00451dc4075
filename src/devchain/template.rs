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
use super::check::{bip34_height_script, subsidy, witness_commitment_script, REGTEST_BITS};
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
        let transactions = self.mempool_entries();
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
            tries_left -= u64::from(block.header.nonce.wrapping_sub(start)) + 1;
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
