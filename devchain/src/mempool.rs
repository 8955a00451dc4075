//! A small mempool: transactions from `sendrawtransaction` waiting for a block.
//!
//! It validates enough that a template built from it is valid: context-free checks, inputs exist
//! (in the UTXO set or as outputs of earlier mempool transactions), coinbase maturity, finality,
//! no double spends, inputs cover outputs, a minimum relay fee, and every input script is verified
//! by the kernel's script interpreter. Transactions are kept in arrival order, so parents always
//! come before their children. After each chain change the pool is re-validated against the new
//! tip, which drops confirmed and conflicting transactions.

use std::collections::HashMap;

use bitcoin::consensus::encode::serialize;
use bitcoin::{Amount, OutPoint, Transaction, TxOut, Txid, Wtxid};
use bitcoinkernel::{PrecomputedTransactionData, ScriptPubkey, TxOut as KernelTxOut, VERIFY_ALL};

use super::api::code;
use super::check::{check_transaction, is_final, COINBASE_MATURITY};
use super::utxo::UtxoSet;

/// Bound on the pool; a devchain's pool is small, this only stops a runaway client.
const MAX_ENTRIES: usize = 50_000;

/// Why a transaction was refused, with Core's RPC error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MempoolReject {
    /// `RPC_VERIFY_REJECTED` (-26).
    #[error("{0}")]
    Rejected(String),
    /// `RPC_VERIFY_ERROR` (-25): inputs missing or already spent.
    #[error("bad-txns-inputs-missingorspent")]
    MissingInputs,
    /// `RPC_VERIFY_ALREADY_IN_UTXO_SET` (-27).
    #[error("Transaction outputs already in utxo set")]
    AlreadyConfirmed,
    /// `RPC_VERIFY_ERROR` (-25): the fee is above the caller's `maxfeerate`.
    #[error("Fee exceeds maximum configured by user (e.g. -maxtxfee, maxfeerate)")]
    MaxFeeExceeded,
}

impl MempoolReject {
    /// Core's RPC error code for this rejection.
    pub fn rpc_code(&self) -> i64 {
        match self {
            Self::Rejected(_) => code::VERIFY_REJECTED,
            Self::MissingInputs | Self::MaxFeeExceeded => code::VERIFY_ERROR,
            Self::AlreadyConfirmed => code::VERIFY_ALREADY_IN_UTXO_SET,
        }
    }
}

/// A transaction in the pool.
#[derive(Debug, Clone)]
pub struct MempoolEntry {
    pub tx: Transaction,
    pub txid: Txid,
    pub wtxid: Wtxid,
    pub fee: Amount,
    pub weight: u64,
    /// Sigop cost (legacy sigops × 4; enough for templates of simple transactions).
    pub sigops: u64,
}

/// The pool, in arrival order.
#[derive(Debug, Default)]
pub struct Mempool {
    entries: Vec<MempoolEntry>,
    spends: HashMap<OutPoint, Txid>,
    /// Bumped on every change; part of the long-poll id.
    pub updates: u64,
}

/// Where the next block goes: height and the median time past of the tip.
#[derive(Debug, Clone, Copy)]
pub struct NextBlock {
    pub height: u32,
    pub median_time_past: u32,
}

impl Mempool {
    pub fn entries(&self) -> &[MempoolEntry] {
        &self.entries
    }

    pub fn contains(&self, txid: &Txid) -> bool {
        self.entries.iter().any(|e| e.txid == *txid)
    }

    /// Validate `tx` against the UTXO set and the pool and add it.
    /// `max_fee_rate` (satoshis per 1000 virtual bytes) is `sendrawtransaction`'s `maxfeerate`.
    pub fn accept(
        &mut self,
        tx: Transaction,
        utxo: &UtxoSet,
        next: NextBlock,
        max_fee_rate: Option<u64>,
    ) -> Result<Txid, MempoolReject> {
        let txid = tx.compute_txid();
        if self.contains(&txid) {
            return Ok(txid);
        }
        if self.entries.len() >= MAX_ENTRIES {
            return Err(MempoolReject::Rejected("mempool full".into()));
        }
        if tx.is_coinbase() {
            return Err(MempoolReject::Rejected("coinbase".into()));
        }
        if let Some(reason) = check_transaction(&tx) {
            return Err(MempoolReject::Rejected(reason.into()));
        }
        if !is_final(&tx, next.height, next.median_time_past) {
            return Err(MempoolReject::Rejected("non-final".into()));
        }
        let mut spent_outputs = Vec::with_capacity(tx.input.len());
        for input in &tx.input {
            let prevout = input.previous_output;
            if let Some(other) = self.spends.get(&prevout) {
                if *other != txid {
                    return Err(MempoolReject::Rejected("txn-mempool-conflict".into()));
                }
            }
            if let Some(coin) = utxo.get(&prevout) {
                let depth = next.height - coin.height;
                if coin.is_coinbase && depth < COINBASE_MATURITY {
                    return Err(MempoolReject::Rejected(format!(
                        "bad-txns-premature-spend-of-coinbase, tried to spend coinbase at depth {depth}"
                    )));
                }
                spent_outputs.push(coin.output.clone());
            } else if let Some(out) = self.mempool_output(&prevout) {
                spent_outputs.push(out);
            } else {
                let confirmed = (0..tx.output.len())
                    .any(|vout| utxo.get(&OutPoint::new(txid, vout as u32)).is_some());
                return Err(if confirmed {
                    MempoolReject::AlreadyConfirmed
                } else {
                    MempoolReject::MissingInputs
                });
            }
        }
        let value_in: Amount = spent_outputs.iter().map(|o| o.value).sum();
        let value_out: Amount = tx.output.iter().map(|o| o.value).sum();
        if value_in < value_out {
            return Err(MempoolReject::Rejected(format!(
                "bad-txns-in-belowout, value in ({}) < value out ({})",
                format_money(value_in),
                format_money(value_out)
            )));
        }
        let fee = value_in - value_out;
        let weight = tx.weight().to_wu();
        let vsize = weight.div_ceil(4);
        if fee.to_sat() < vsize {
            return Err(MempoolReject::Rejected(format!(
                "min relay fee not met, {} < {}",
                fee.to_sat(),
                vsize
            )));
        }
        if max_fee_rate.is_some_and(|rate| fee.to_sat() > rate.saturating_mul(vsize) / 1000) {
            return Err(MempoolReject::MaxFeeExceeded);
        }
        verify_scripts(&tx, &spent_outputs).map_err(MempoolReject::Rejected)?;
        let sigops = tx
            .input
            .iter()
            .map(|i| i.script_sig.count_sigops_legacy())
            .chain(
                tx.output
                    .iter()
                    .map(|o| o.script_pubkey.count_sigops_legacy()),
            )
            .sum::<usize>() as u64
            * 4;
        for input in &tx.input {
            self.spends.insert(input.previous_output, txid);
        }
        self.entries.push(MempoolEntry {
            wtxid: tx.compute_wtxid(),
            tx,
            txid,
            fee,
            weight,
            sigops,
        });
        self.updates += 1;
        Ok(txid)
    }

    fn mempool_output(&self, outpoint: &OutPoint) -> Option<TxOut> {
        self.entries
            .iter()
            .find(|e| e.txid == outpoint.txid)
            .and_then(|e| e.tx.output.get(outpoint.vout as usize).cloned())
    }

    /// Re-validate every transaction against a new tip; confirmed and conflicting ones drop out.
    pub fn revalidate(&mut self, utxo: &UtxoSet, next: NextBlock) {
        let old = std::mem::take(&mut self.entries);
        let before = old.len();
        self.spends.clear();
        for entry in old {
            let _ = self.accept(entry.tx, utxo, next, None);
        }
        if self.entries.len() != before {
            self.updates += 1;
        }
    }
}

/// Core's `FormatMoney`: whole coins, a point, and the fraction without trailing zeros beyond
/// two digits.
fn format_money(amount: Amount) -> String {
    let sats = amount.to_sat();
    let mut fraction = format!("{:08}", sats % 100_000_000);
    while fraction.len() > 2 && fraction.ends_with('0') {
        fraction.pop();
    }
    format!("{}.{fraction}", sats / 100_000_000)
}

/// Verify each input script with the kernel's interpreter (all consensus flags).
fn verify_scripts(tx: &Transaction, spent: &[TxOut]) -> Result<(), String> {
    let fail = |e: bitcoinkernel::KernelError| format!("mandatory-script-verify-flag-failed ({e})");
    let kernel_tx = bitcoinkernel::Transaction::new(&serialize(tx)).map_err(fail)?;
    let outputs = spent
        .iter()
        .map(|o| {
            ScriptPubkey::new(o.script_pubkey.as_bytes())
                .map(|s| KernelTxOut::new(&s, o.value.to_sat() as i64))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    let precomputed = PrecomputedTransactionData::new(&kernel_tx, &outputs).map_err(fail)?;
    for (index, out) in spent.iter().enumerate() {
        let script = ScriptPubkey::new(out.script_pubkey.as_bytes()).map_err(fail)?;
        bitcoinkernel::verify(
            &script,
            Some(out.value.to_sat() as i64),
            &kernel_tx,
            index,
            Some(VERIFY_ALL),
            &precomputed,
        )
        .map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_formatted_as_core_does() {
        assert_eq!(format_money(Amount::from_sat(5_000_000_000)), "50.00");
        assert_eq!(format_money(Amount::from_sat(1)), "0.00000001");
        assert_eq!(format_money(Amount::from_sat(123_450_000)), "1.2345");
    }
}
