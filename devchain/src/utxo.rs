//! The devchain's view of the unspent outputs of the active chain.
//!
//! The kernel does not expose its coins database, so the devchain keeps its own UTXO set, built
//! from the blocks the kernel connects. It is rebuilt from the active chain at start-up (a regtest
//! chain is small), so it can never disagree with the kernel after a restart. Undo data for each
//! connected block is kept in memory so a reorganisation can disconnect blocks again.

use std::collections::HashMap;

use bitcoin::{Amount, Block, BlockHash, OutPoint, TxOut};

/// One unspent output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    pub output: TxOut,
    /// Height of the block that created it.
    pub height: u32,
    pub is_coinbase: bool,
}

/// Unspent outputs of the active chain plus per-block undo data.
#[derive(Debug, Default)]
pub struct UtxoSet {
    coins: HashMap<OutPoint, Coin>,
    undo: HashMap<BlockHash, Vec<(OutPoint, Coin)>>,
}

impl UtxoSet {
    pub fn get(&self, outpoint: &OutPoint) -> Option<&Coin> {
        self.coins.get(outpoint)
    }

    pub fn len(&self) -> usize {
        self.coins.len()
    }

    /// Apply a block the kernel connected at `height`.
    pub fn connect(&mut self, block: &Block, height: u32) {
        let mut spent = Vec::new();
        for (index, tx) in block.txdata.iter().enumerate() {
            let is_coinbase = index == 0;
            if !is_coinbase {
                for input in &tx.input {
                    if let Some(coin) = self.coins.remove(&input.previous_output) {
                        spent.push((input.previous_output, coin));
                    }
                }
            }
            // The genesis coinbase is not spendable (Core never adds it to the coins view).
            if height == 0 {
                continue;
            }
            let txid = tx.compute_txid();
            for (vout, output) in tx.output.iter().enumerate() {
                if output.script_pubkey.is_op_return() {
                    continue;
                }
                self.coins.insert(
                    OutPoint::new(txid, vout as u32),
                    Coin {
                        output: output.clone(),
                        height,
                        is_coinbase,
                    },
                );
            }
        }
        self.undo.insert(block.block_hash(), spent);
    }

    /// Revert a block the kernel disconnected.
    pub fn disconnect(&mut self, block: &Block) {
        for tx in &block.txdata {
            let txid = tx.compute_txid();
            for vout in 0..tx.output.len() {
                self.coins.remove(&OutPoint::new(txid, vout as u32));
            }
        }
        if let Some(spent) = self.undo.remove(&block.block_hash()) {
            self.coins.extend(spent);
        }
    }

    /// Total value held, for tests and logs.
    pub fn total(&self) -> Amount {
        self.coins.values().map(|c| c.output.value).sum()
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::absolute::LockTime;
    use bitcoin::blockdata::block::{Header, Version};
    use bitcoin::hashes::Hash;
    use bitcoin::{CompactTarget, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode, Witness};

    use super::*;

    fn tx(inputs: Vec<OutPoint>, value: u64) -> Transaction {
        Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: LockTime::ZERO,
            input: inputs
                .into_iter()
                .map(|previous_output| TxIn {
                    previous_output,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                })
                .collect(),
            output: vec![TxOut {
                value: Amount::from_sat(value),
                script_pubkey: ScriptBuf::new(),
            }],
        }
    }

    fn block(txdata: Vec<Transaction>, nonce: u32) -> Block {
        Block {
            header: Header {
                version: Version::TWO,
                prev_blockhash: BlockHash::all_zeros(),
                merkle_root: TxMerkleNode::all_zeros(),
                time: 0,
                bits: CompactTarget::from_consensus(0x207fffff),
                nonce,
            },
            txdata,
        }
    }

    #[test]
    fn connect_then_disconnect_restores_the_set() {
        let mut set = UtxoSet::default();
        let cb1 = tx(vec![OutPoint::null()], 50);
        let b1 = block(vec![cb1.clone()], 1);
        set.connect(&b1, 1);
        assert_eq!(set.len(), 1);
        let spend = tx(vec![OutPoint::new(cb1.compute_txid(), 0)], 40);
        let b2 = block(vec![tx(vec![OutPoint::null()], 60), spend.clone()], 2);
        set.connect(&b2, 2);
        assert_eq!(set.len(), 2);
        assert!(set.get(&OutPoint::new(cb1.compute_txid(), 0)).is_none());
        set.disconnect(&b2);
        assert_eq!(set.len(), 1);
        assert_eq!(set.total(), Amount::from_sat(50));
    }
}
