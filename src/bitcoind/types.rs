//! Typed replies of the bitcoind RPC methods the node uses, parsed from Bitcoin Core's JSON.
//!
//! Every field is checked while parsing: hex that does not decode, a transaction that does not
//! deserialize or a number out of range is a [`TypeError`], never a panic.

use bitcoin::consensus::encode::deserialize;
use bitcoin::{Amount, BlockHash, CompactTarget, ScriptBuf, Target, Transaction, Txid, Wtxid};
use serde::Deserialize;

/// Why a reply could not be turned into its typed form.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TypeError {
    /// The reply is not the JSON shape of the method's result.
    #[error("malformed reply: {0}")]
    Json(#[from] serde_json::Error),
    /// A field has a value that does not parse or is out of range.
    #[error("field {field}: {reason}")]
    Field {
        /// The field's name in bitcoind's reply.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn field(field: &'static str, reason: impl ToString) -> TypeError {
    TypeError::Field {
        field,
        reason: reason.to_string(),
    }
}

/// A `getblocktemplate` reply (BIP22/BIP23, with segwit's fields).
#[derive(Debug, Clone, PartialEq)]
pub struct BlockTemplate {
    /// Block version to use (with the version bits bitcoind wants set).
    pub version: i32,
    /// `previousblockhash`: the block to build on.
    pub previous_block_hash: BlockHash,
    /// Transactions to include after the coinbase, in order.
    pub transactions: Vec<TemplateTx>,
    /// Subsidy plus all fees: the most the coinbase may pay out.
    pub coinbase_value: Amount,
    /// Pass back to long-poll for the next template.
    pub longpollid: String,
    /// `target`: the block's proof-of-work target.
    pub target: Target,
    /// Earliest allowed block time (median time past + 1).
    pub min_time: u32,
    /// bitcoind's clock when the template was made.
    pub cur_time: u32,
    /// `bits`: the block's compact target, for the header.
    pub bits: CompactTarget,
    /// Height of the block to build.
    pub height: u32,
    /// `weightlimit`: the most weight units the block may have, when bitcoind says.
    pub weight_limit: Option<u64>,
    /// `sigoplimit`: the most signature operations (segwit-scaled) the block may have, when bitcoind says.
    pub sigop_limit: Option<u64>,
    /// The coinbase's BIP141 commitment output script, when segwit is active.
    pub default_witness_commitment: Option<ScriptBuf>,
    /// Active rules (`csv`, `!segwit`, `taproot`, …); `!` marks rules a client must understand.
    pub rules: Vec<String>,
    /// The signet challenge (signet only).
    pub signet_challenge: Option<ScriptBuf>,
}

/// One transaction of a template.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateTx {
    /// The transaction, decoded from `data`.
    pub tx: Transaction,
    /// `txid`, checked against `data`.
    pub txid: Txid,
    /// `hash`: the witness txid (computed from `data` when absent).
    pub wtxid: Wtxid,
    /// `fee`, in satoshis (0 when absent).
    pub fee: Amount,
    /// `sigops`: segwit-scaled signature operations (0 when absent).
    pub sigops: u64,
    /// `weight`, in weight units (computed from `data` when absent).
    pub weight: u64,
    /// 1-based indexes (in `transactions`) of the transactions this one spends from.
    pub depends: Vec<u32>,
}

impl BlockTemplate {
    /// Parse a `getblocktemplate` result.
    pub fn from_json(value: serde_json::Value) -> Result<Self, TypeError> {
        let raw: RawTemplate = serde_json::from_value(value)?;
        let transactions = raw
            .transactions
            .into_iter()
            .map(TemplateTx::from_raw)
            .collect::<Result<_, _>>()?;
        let target = parse_target(&raw.target)?;
        let bits = u32::from_str_radix(&raw.bits, 16)
            .ok()
            .filter(|_| raw.bits.len() == 8)
            .map(CompactTarget::from_consensus)
            .ok_or_else(|| field("bits", format!("not 8 hex digits: {:?}", raw.bits)))?;
        let hex_script = |name, s: Option<String>| -> Result<Option<ScriptBuf>, TypeError> {
            s.map(|s| {
                hex::decode(s)
                    .map(ScriptBuf::from_bytes)
                    .map_err(|e| field(name, e))
            })
            .transpose()
        };
        Ok(Self {
            version: raw.version,
            previous_block_hash: raw.previousblockhash,
            transactions,
            coinbase_value: Amount::from_sat(raw.coinbasevalue),
            longpollid: raw.longpollid.unwrap_or_default(),
            target,
            min_time: raw.mintime,
            cur_time: raw.curtime,
            bits,
            height: raw.height,
            weight_limit: raw.weightlimit,
            sigop_limit: raw.sigoplimit,
            default_witness_commitment: hex_script(
                "default_witness_commitment",
                raw.default_witness_commitment,
            )?,
            rules: raw.rules,
            signet_challenge: hex_script("signet_challenge", raw.signet_challenge)?,
        })
    }

    /// Whether `rule` is active (with or without the `!` prefix).
    pub fn has_rule(&self, rule: &str) -> bool {
        self.rules
            .iter()
            .any(|r| r.strip_prefix('!').unwrap_or(r) == rule)
    }
}

impl TemplateTx {
    fn from_raw(raw: RawTemplateTx) -> Result<Self, TypeError> {
        let bytes = hex::decode(&raw.data).map_err(|e| field("transactions.data", e))?;
        let tx: Transaction = deserialize(&bytes).map_err(|e| field("transactions.data", e))?;
        let txid = tx.compute_txid();
        if txid != raw.txid {
            return Err(field(
                "transactions.txid",
                format!("{} does not match the data's {txid}", raw.txid),
            ));
        }
        let wtxid = raw.hash.unwrap_or_else(|| tx.compute_wtxid());
        let weight = raw.weight.unwrap_or_else(|| tx.weight().to_wu());
        Ok(Self {
            tx,
            txid,
            wtxid,
            fee: Amount::from_sat(raw.fee.unwrap_or(0)),
            sigops: raw.sigops.unwrap_or(0),
            weight,
            depends: raw.depends,
        })
    }
}

/// A 64-digit big-endian hex target.
fn parse_target(s: &str) -> Result<Target, TypeError> {
    let bytes = hex::decode(s).map_err(|e| field("target", e))?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| field("target", "not 32 bytes"))?;
    Ok(Target::from_be_bytes(bytes))
}

#[derive(Deserialize)]
struct RawTemplate {
    version: i32,
    previousblockhash: BlockHash,
    #[serde(default)]
    transactions: Vec<RawTemplateTx>,
    coinbasevalue: u64,
    longpollid: Option<String>,
    target: String,
    mintime: u32,
    curtime: u32,
    bits: String,
    height: u32,
    weightlimit: Option<u64>,
    sigoplimit: Option<u64>,
    default_witness_commitment: Option<String>,
    #[serde(default)]
    rules: Vec<String>,
    signet_challenge: Option<String>,
}

#[derive(Deserialize)]
struct RawTemplateTx {
    data: String,
    txid: Txid,
    hash: Option<Wtxid>,
    fee: Option<u64>,
    sigops: Option<u64>,
    weight: Option<u64>,
    #[serde(default)]
    depends: Vec<u32>,
}

/// The parts of `getblockchaininfo` the node checks.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BlockchainInfo {
    /// `main`, `test`, `testnet4`, `signet` or `regtest`.
    pub chain: String,
    /// `blocks`: height of the best fully validated block.
    pub blocks: u64,
    /// `headers`: height of the best known header.
    pub headers: u64,
    /// `bestblockhash`: the tip of the active chain.
    #[serde(rename = "bestblockhash")]
    pub best_block_hash: BlockHash,
    /// `initialblockdownload`: true while bitcoind is still syncing (false when absent).
    #[serde(rename = "initialblockdownload", default)]
    pub initial_block_download: bool,
    /// `verificationprogress`: estimated fraction of the chain verified, 0.0 to 1.0.
    #[serde(rename = "verificationprogress", default)]
    pub verification_progress: f64,
}

/// The parts of `getnetworkinfo` the node logs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NetworkInfo {
    /// e.g. `280000` for 28.0.0.
    pub version: u64,
    /// `subversion`: the user agent, e.g. `/Satoshi:28.0.0/`.
    pub subversion: String,
    /// `protocolversion`: the P2P protocol version, e.g. `70016`.
    #[serde(rename = "protocolversion")]
    pub protocol_version: u32,
    /// `connections`: the number of P2P peers (0 when absent).
    #[serde(default)]
    pub connections: u32,
}

/// What bitcoind said to `submitblock` (BIP22).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum SubmitBlockResult {
    /// `null`: the block is valid and now part of the block tree.
    Accepted,
    /// `duplicate`: bitcoind already had it (for instance from our P2P link).
    Duplicate,
    /// A BIP22 reject reason (`high-hash`, `bad-txnmrklroot`, `duplicate-invalid`, …).
    Rejected(String),
    /// `inconclusive` / `duplicate-inconclusive`: accepted but not (yet) validated, e.g. on a
    /// side branch.
    Inconclusive,
}

impl SubmitBlockResult {
    /// From `submitblock`'s result: `null` or a reason string.
    pub fn from_json(value: serde_json::Value) -> Result<Self, TypeError> {
        Ok(match value {
            serde_json::Value::Null => Self::Accepted,
            serde_json::Value::String(reason) => match reason.as_str() {
                "duplicate" => Self::Duplicate,
                "inconclusive" | "duplicate-inconclusive" => Self::Inconclusive,
                _ => Self::Rejected(reason),
            },
            other => return Err(field("submitblock", format!("unexpected result {other}"))),
        })
    }

    /// Whether bitcoind has the block as valid (accepted now or before).
    pub fn is_accepted(&self) -> bool {
        matches!(self, Self::Accepted | Self::Duplicate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn submitblock_results() {
        let cases = [
            (json!(null), SubmitBlockResult::Accepted),
            (json!("duplicate"), SubmitBlockResult::Duplicate),
            (json!("inconclusive"), SubmitBlockResult::Inconclusive),
            (
                json!("high-hash"),
                SubmitBlockResult::Rejected("high-hash".into()),
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(SubmitBlockResult::from_json(value).unwrap(), expected);
        }
        assert!(SubmitBlockResult::from_json(json!(5)).is_err());
    }

    /// Regression: a template whose fields are the wrong shape must be an error, not a panic.
    #[test]
    fn malformed_templates_are_errors() {
        let good = json!({
            "version": 536870912, "previousblockhash": "00".repeat(32), "transactions": [],
            "coinbasevalue": 5000000000u64, "longpollid": "x", "target": "7f".repeat(32),
            "mintime": 1, "curtime": 2, "bits": "207fffff", "height": 1, "rules": ["!segwit"],
        });
        let t = BlockTemplate::from_json(good.clone()).unwrap();
        assert!(t.has_rule("segwit"));
        assert_eq!(t.bits.to_consensus(), 0x207f_ffff);
        for (key, bad) in [
            ("bits", json!("zz")),
            ("bits", json!("7fffff")),
            ("target", json!("00")),
            ("height", json!(-1)),
            ("curtime", json!(1u64 << 40)),
            (
                "transactions",
                json!([{"data": "00", "txid": "00".repeat(32)}]),
            ),
            ("default_witness_commitment", json!("0g")),
        ] {
            let mut v = good.clone();
            v[key] = bad;
            assert!(BlockTemplate::from_json(v).is_err(), "{key}");
        }
    }

    proptest::proptest! {
        /// Any bytes parsed as a reply: an error or a value, never a panic.
        #[test]
        fn any_reply_parses_or_errs(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                let _ = BlockTemplate::from_json(value.clone());
                let _ = SubmitBlockResult::from_json(value);
            }
        }

        /// A good template with one field replaced by an arbitrary JSON scalar.
        #[test]
        fn any_field_value_parses_or_errs(
            key in proptest::sample::select(vec!["version", "previousblockhash", "transactions",
                "coinbasevalue", "target", "mintime", "curtime", "bits", "height", "rules",
                "default_witness_commitment", "longpollid", "weightlimit"]),
            text in "[-0-9a-f\\[\\]{}\",.:]{0,80}",
        ) {
            let mut v = json!({
                "version": 1, "previousblockhash": "00".repeat(32), "transactions": [],
                "coinbasevalue": 1, "target": "7f".repeat(32), "mintime": 1, "curtime": 2,
                "bits": "207fffff", "height": 1,
            });
            if let Ok(bad) = serde_json::from_str::<serde_json::Value>(&text) {
                v[key] = bad;
                let _ = BlockTemplate::from_json(v);
            }
        }
    }
}
