//! JSON views of chain data as Core's RPC writes them: headers, blocks, transactions, amounts.

use bitcoin::consensus::encode::{serialize, serialize_hex};
use bitcoin::{Address, Block, Network, Target, Transaction};
use serde_json::{json, Value};

use super::chain::HeaderInfo;

pub fn btc(sats: u64) -> Value {
    json!(sats as f64 / 100_000_000.0)
}

pub fn difficulty(bits: bitcoin::CompactTarget) -> f64 {
    Target::from_compact(bits).difficulty_float()
}

pub fn target_hex(bits: bitcoin::CompactTarget) -> String {
    hex::encode(Target::from_compact(bits).to_be_bytes())
}

pub fn header_json(info: &HeaderInfo, n_tx: usize) -> Value {
    let h = &info.header;
    let mut v = json!({
        "hash": info.hash.to_string(),
        "confirmations": info.confirmations,
        "height": info.height,
        "version": h.version.to_consensus(),
        "versionHex": format!("{:08x}", h.version.to_consensus() as u32),
        "merkleroot": h.merkle_root.to_string(),
        "time": h.time,
        "mediantime": info.median_time_past,
        "nonce": h.nonce,
        "bits": format!("{:08x}", h.bits.to_consensus()),
        "target": target_hex(h.bits),
        "difficulty": difficulty(h.bits),
        "chainwork": info.chainwork,
        "nTx": n_tx,
    });
    if info.height > 0 {
        v["previousblockhash"] = json!(h.prev_blockhash.to_string());
    }
    if let Some(next) = info.next {
        v["nextblockhash"] = json!(next.to_string());
    }
    v
}

pub fn block_json(info: &HeaderInfo, block: &Block, full_tx: bool) -> Value {
    let mut v = header_json(info, block.txdata.len());
    let stripped: usize = 80
        + block
            .txdata
            .iter()
            .map(Transaction::base_size)
            .sum::<usize>();
    v["size"] = json!(serialize(block).len());
    v["strippedsize"] = json!(stripped);
    v["weight"] = json!(block.weight().to_wu());
    v["tx"] = if full_tx {
        json!(block.txdata.iter().map(tx_json).collect::<Vec<_>>())
    } else {
        json!(block
            .txdata
            .iter()
            .map(|tx| tx.compute_txid().to_string())
            .collect::<Vec<_>>())
    };
    v
}

fn script_type(script: &bitcoin::Script) -> &'static str {
    if script.is_p2pkh() {
        "pubkeyhash"
    } else if script.is_p2sh() {
        "scripthash"
    } else if script.is_p2wpkh() {
        "witness_v0_keyhash"
    } else if script.is_p2wsh() {
        "witness_v0_scripthash"
    } else if script.is_p2tr() {
        "witness_v1_taproot"
    } else if script.is_op_return() {
        "nulldata"
    } else if script.is_p2pk() {
        "pubkey"
    } else {
        "nonstandard"
    }
}

/// A transaction as Core's `TxToUniv` writes it.
pub fn tx_json(tx: &Transaction) -> Value {
    let vin: Vec<Value> = tx
        .input
        .iter()
        .map(|input| {
            let mut v = if tx.is_coinbase() {
                json!({"coinbase": hex::encode(input.script_sig.as_bytes())})
            } else {
                json!({
                    "txid": input.previous_output.txid.to_string(),
                    "vout": input.previous_output.vout,
                    "scriptSig": {
                        "asm": input.script_sig.to_asm_string(),
                        "hex": hex::encode(input.script_sig.as_bytes()),
                    },
                })
            };
            if !input.witness.is_empty() {
                v["txinwitness"] = json!(input.witness.iter().map(hex::encode).collect::<Vec<_>>());
            }
            v["sequence"] = json!(input.sequence.0);
            v
        })
        .collect();
    let vout: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, out)| {
            let mut spk = json!({
                "asm": out.script_pubkey.to_asm_string(),
                "hex": hex::encode(out.script_pubkey.as_bytes()),
                "type": script_type(&out.script_pubkey),
            });
            if let Ok(address) = Address::from_script(&out.script_pubkey, Network::Regtest) {
                spk["address"] = json!(address.to_string());
            }
            json!({"value": btc(out.value.to_sat()), "n": n, "scriptPubKey": spk})
        })
        .collect();
    let weight = tx.weight().to_wu();
    json!({
        "txid": tx.compute_txid().to_string(),
        "hash": tx.compute_wtxid().to_string(),
        "version": tx.version.0,
        "size": tx.total_size(),
        "vsize": weight.div_ceil(4),
        "weight": weight,
        "locktime": tx.lock_time.to_consensus_u32(),
        "vin": vin,
        "vout": vout,
        "hex": serialize_hex(tx),
    })
}
