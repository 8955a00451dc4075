//! The bitcoind RPC methods the devchain answers, with Core's argument names, replies and errors.

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::consensus::encode::{deserialize, serialize_hex};
use bitcoin::hashes::Hash;
use bitcoin::{Address, Amount, Block, BlockHash, Network, Transaction};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::api::{code, Params, RpcError};
use super::chain::{ChainHandle, HeaderInfo};
use super::mempool::MempoolReject;
use super::views::{block_json, btc, difficulty, header_json, target_hex};

/// What the methods need: the chain, the peer count and the credentials.
#[derive(Debug)]
pub struct RpcContext {
    pub chain: ChainHandle,
    pub user: String,
    pub password: String,
    pub peers: Arc<AtomicUsize>,
    pub started: Instant,
    pub shutdown: watch::Receiver<bool>,
    /// Sends the shutdown signal (`stop`).
    pub stop: watch::Sender<bool>,
}

/// A method's argument names (for named parameters) and how many are required.
#[derive(Debug, Clone, Copy)]
pub struct MethodSpec {
    pub args: &'static [&'static str],
    pub required: usize,
}

impl MethodSpec {
    pub fn usage(&self, method: &str) -> String {
        let mut usage = method.to_owned();
        for (i, arg) in self.args.iter().enumerate() {
            if i < self.required {
                usage.push_str(&format!(" \"{arg}\""));
            } else {
                usage.push_str(&format!(" ( {arg} )"));
            }
        }
        usage
    }
}

const fn mk(args: &'static [&'static str], required: usize) -> MethodSpec {
    MethodSpec { args, required }
}

/// The spec of `method`, `None` if the devchain does not serve it.
pub fn spec(method: &str) -> Option<MethodSpec> {
    Some(match method {
        "getblocktemplate" => mk(&["template_request"], 0),
        "submitblock" => mk(&["hexdata", "dummy"], 1),
        "getblockchaininfo" | "getbestblockhash" | "getblockcount" | "getnetworkinfo"
        | "getmininginfo" | "getconnectioncount" | "uptime" | "ping" | "stop" => mk(&[], 0),
        "getblockhash" => mk(&["height"], 1),
        "getblockheader" => mk(&["blockhash", "verbose"], 1),
        "getblock" => mk(&["blockhash", "verbosity"], 1),
        "generatetoaddress" => mk(&["nblocks", "address", "maxtries"], 2),
        "sendrawtransaction" => mk(&["hexstring", "maxfeerate", "maxburnamount"], 1),
        "getrawmempool" => mk(&["verbose", "mempool_sequence"], 0),
        _ => return None,
    })
}

fn chain_down(_: super::chain::ChainError) -> RpcError {
    RpcError::new(code::MISC_ERROR, "chainstate is shutting down")
}

fn parse_hash(params: &Params, i: usize, name: &str) -> Result<BlockHash, RpcError> {
    let s = params
        .str(i)?
        .ok_or_else(|| RpcError::new(code::INVALID_PARAMETER, format!("{name} is required")))?;
    if s.len() != 64 {
        return Err(RpcError::new(
            code::INVALID_PARAMETER,
            format!("{name} must be of length 64 (not {}, for '{s}')", s.len()),
        ));
    }
    BlockHash::from_str(s).map_err(|_| {
        RpcError::new(
            code::INVALID_PARAMETER,
            format!("{name} must be hexadecimal string (not '{s}')"),
        )
    })
}

/// Run `method` with `params`.
pub async fn dispatch(method: &str, params: Params, ctx: &RpcContext) -> Result<Value, RpcError> {
    let chain = &ctx.chain;
    match method {
        "getbestblockhash" => Ok(json!(chain.tip().hash.to_string())),
        "getblockcount" => Ok(json!(chain.tip().height)),
        "getconnectioncount" => Ok(json!(ctx.peers.load(Ordering::Relaxed))),
        "uptime" => Ok(json!(ctx.started.elapsed().as_secs())),
        "ping" => Ok(Value::Null),
        "stop" => {
            // Reply first, then stop the servers.
            let stop = ctx.stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let _ = stop.send(true);
            });
            Ok(json!("devchain stopping"))
        }
        "getblockhash" => {
            let height = params.int(0)?.unwrap_or(-1);
            let hash = if (0..=i64::from(u32::MAX)).contains(&height) {
                chain
                    .call(move |s| s.hash_at(height as u32))
                    .await
                    .map_err(chain_down)?
            } else {
                None
            };
            hash.map(|h| json!(h.to_string()))
                .ok_or_else(|| RpcError::new(code::INVALID_PARAMETER, "Block height out of range"))
        }
        "getblockchaininfo" => {
            let tip = chain.tip();
            let info = header_info(chain, tip.hash).await?;
            Ok(json!({
                "chain": "regtest",
                "blocks": tip.height,
                "headers": tip.height,
                "bestblockhash": tip.hash.to_string(),
                "bits": format!("{:08x}", tip.header.bits.to_consensus()),
                "target": target_hex(tip.header.bits),
                "difficulty": difficulty(tip.header.bits),
                "time": tip.header.time,
                "mediantime": info.median_time_past,
                "verificationprogress": 1.0,
                "initialblockdownload": false,
                "chainwork": info.chainwork,
                "size_on_disk": 0,
                "pruned": false,
                "warnings": [],
            }))
        }
        "getblockheader" => {
            let hash = parse_hash(&params, 0, "blockhash")?;
            let verbose = params.bool(1)?.unwrap_or(true);
            let info = header_info(chain, hash).await?;
            if !verbose {
                return Ok(json!(serialize_hex(&info.header)));
            }
            let n_tx = chain
                .call(move |s| s.block(&hash).map(|b| b.txdata.len()))
                .await
                .map_err(chain_down)?
                .unwrap_or(0);
            Ok(header_json(&info, n_tx))
        }
        "getblock" => {
            let hash = parse_hash(&params, 0, "blockhash")?;
            let verbosity = match params.get(1) {
                None => 1,
                Some(Value::Bool(b)) => i64::from(*b),
                Some(_) => params.int(1)?.unwrap_or(1),
            };
            let info = header_info(chain, hash).await?;
            let block = chain
                .call(move |s| s.block(&hash))
                .await
                .map_err(chain_down)?
                .ok_or_else(|| {
                    RpcError::new(
                        code::MISC_ERROR,
                        "Block not available (not fully downloaded)",
                    )
                })?;
            if verbosity <= 0 {
                return Ok(json!(serialize_hex(&block)));
            }
            Ok(block_json(&info, &block, verbosity >= 2))
        }
        "getnetworkinfo" => {
            let peers = ctx.peers.load(Ordering::Relaxed);
            Ok(json!({
                "version": 280000,
                "subversion": super::p2p::USER_AGENT,
                "protocolversion": super::p2p::PROTOCOL_VERSION,
                "localservices": "0000000000000409",
                "localservicesnames": ["NETWORK", "WITNESS", "NETWORK_LIMITED"],
                "localrelay": true,
                "timeoffset": 0,
                "networkactive": true,
                "connections": peers,
                "connections_in": peers,
                "connections_out": 0,
                "networks": [],
                "relayfee": 0.00001,
                "incrementalfee": 0.00001,
                "localaddresses": [],
                "warnings": [],
            }))
        }
        "getmininginfo" => {
            let tip = chain.tip();
            let pooled = chain
                .call(|s| s.mempool.entries().len())
                .await
                .map_err(chain_down)?;
            Ok(json!({
                "blocks": tip.height,
                "bits": format!("{:08x}", tip.header.bits.to_consensus()),
                "difficulty": difficulty(tip.header.bits),
                "target": target_hex(tip.header.bits),
                "networkhashps": 0,
                "pooledtx": pooled,
                "chain": "regtest",
                "warnings": [],
            }))
        }
        "generatetoaddress" => {
            let count = params.int(0)?.unwrap_or(0);
            let address = params.str(1)?.unwrap_or_default();
            let max_tries = params.int(2)?.unwrap_or(1_000_000);
            let script = Address::from_str(address)
                .ok()
                .and_then(|a| a.require_network(Network::Regtest).ok())
                .map(|a| a.script_pubkey())
                .ok_or_else(|| {
                    RpcError::new(code::INVALID_ADDRESS_OR_KEY, "Error: Invalid address")
                })?;
            if !(0..=i64::from(u32::MAX)).contains(&count) || max_tries < 0 {
                return Err(RpcError::new(
                    code::INVALID_PARAMETER,
                    "Invalid nblocks or maxtries",
                ));
            }
            let hashes = chain
                .call(move |s| s.generate(count as u32, &script, max_tries as u64))
                .await
                .map_err(chain_down)?;
            Ok(json!(hashes
                .iter()
                .map(|h| h.to_string())
                .collect::<Vec<_>>()))
        }
        "submitblock" => {
            let hex_data = params.str(0)?.unwrap_or_default();
            let block: Block = hex::decode(hex_data)
                .ok()
                .and_then(|bytes| deserialize(&bytes).ok())
                .ok_or_else(|| RpcError::new(code::DESERIALIZATION_ERROR, "Block decode failed"))?;
            if block.txdata.first().is_none_or(|tx| !tx.is_coinbase()) {
                return Err(RpcError::new(
                    code::DESERIALIZATION_ERROR,
                    "Block does not start with a coinbase",
                ));
            }
            let outcome = chain
                .call(move |s| s.submit_block(block, true))
                .await
                .map_err(chain_down)?;
            Ok(outcome.bip22().map_or(Value::Null, Value::String))
        }
        "sendrawtransaction" => {
            let hex_data = params.str(0)?.unwrap_or_default();
            let tx: Transaction = hex::decode(hex_data)
                .ok()
                .and_then(|bytes| deserialize(&bytes).ok())
                .ok_or_else(|| {
                    RpcError::new(
                        code::DESERIALIZATION_ERROR,
                        "TX decode failed. Make sure the tx has at least one input.",
                    )
                })?;
            // Core's defaults: 0.10 BTC/kvB, and no value may be burnt.
            let max_fee_rate = params.btc(1)?.unwrap_or(Amount::from_sat(10_000_000));
            let max_burn = params.btc(2)?.unwrap_or(Amount::ZERO);
            if tx
                .output
                .iter()
                .any(|o| o.script_pubkey.is_op_return() && o.value > max_burn)
            {
                return Err(RpcError::new(
                    code::VERIFY_ERROR,
                    "Unspendable output exceeds maximum configured by user (maxburnamount)",
                ));
            }
            let max_fee_rate = (max_fee_rate > Amount::ZERO).then_some(max_fee_rate.to_sat());
            let result = chain
                .call(move |s| s.send_transaction(tx, max_fee_rate))
                .await
                .map_err(chain_down)?;
            match result {
                Ok(txid) => Ok(json!(txid.to_string())),
                Err(reject) => Err(mempool_error(&reject)),
            }
        }
        "getrawmempool" => {
            let verbose = params.bool(0)?.unwrap_or(false);
            let entries = chain
                .call(|s| (s.mempool_entries(), s.height()))
                .await
                .map_err(chain_down)?;
            let (entries, height) = entries;
            if !verbose {
                return Ok(json!(entries
                    .iter()
                    .map(|e| e.txid.to_string())
                    .collect::<Vec<_>>()));
            }
            let mut map = serde_json::Map::new();
            for e in &entries {
                let depends: Vec<String> =
                    e.tx.input
                        .iter()
                        .filter(|i| entries.iter().any(|o| o.txid == i.previous_output.txid))
                        .map(|i| i.previous_output.txid.to_string())
                        .collect();
                map.insert(
                    e.txid.to_string(),
                    json!({
                        "vsize": e.weight.div_ceil(4),
                        "weight": e.weight,
                        "height": height,
                        "wtxid": e.wtxid.to_string(),
                        "fees": {"base": btc(e.fee.to_sat())},
                        "depends": depends,
                    }),
                );
            }
            Ok(Value::Object(map))
        }
        "getblocktemplate" => getblocktemplate(params, ctx).await,
        _ => Err(RpcError::new(code::METHOD_NOT_FOUND, "Method not found")),
    }
}

fn mempool_error(reject: &MempoolReject) -> RpcError {
    RpcError::new(reject.rpc_code(), reject.to_string())
}

async fn header_info(chain: &ChainHandle, hash: BlockHash) -> Result<HeaderInfo, RpcError> {
    chain
        .call(move |s| s.header_info(&hash))
        .await
        .map_err(chain_down)?
        .ok_or_else(|| RpcError::new(code::INVALID_ADDRESS_OR_KEY, "Block not found"))
}

/// `getblocktemplate`, with BIP22 long polling.
async fn getblocktemplate(params: Params, ctx: &RpcContext) -> Result<Value, RpcError> {
    let request = match params.get(0) {
        None => serde_json::Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(other) => {
            return Err(RpcError::new(
                code::TYPE_ERROR,
                format!(
                    "JSON value of type {} is not of expected type object",
                    if other.is_array() {
                        "array"
                    } else {
                        "non-object"
                    }
                ),
            ))
        }
    };
    match request.get("mode").and_then(Value::as_str) {
        None | Some("template") => {}
        Some(_) => return Err(RpcError::new(code::INVALID_PARAMETER, "Invalid mode")),
    }
    let segwit = request
        .get("rules")
        .and_then(Value::as_array)
        .is_some_and(|rules| rules.iter().any(|r| r.as_str() == Some("segwit")));
    if !segwit {
        return Err(RpcError::new(
            code::INVALID_PARAMETER,
            "getblocktemplate must be called with the segwit rule set (call with {\"rules\": [\"segwit\"]})",
        ));
    }
    if let Some(longpollid) = request.get("longpollid") {
        let id = longpollid
            .as_str()
            .ok_or_else(|| RpcError::new(code::TYPE_ERROR, "longpollid must be a string"))?;
        wait_longpoll(id, ctx).await;
    }
    let template = ctx.chain.call(|s| s.template()).await.map_err(chain_down)?;
    let transactions: Vec<Value> = template
        .transactions
        .iter()
        .zip(&template.depends)
        .map(|(entry, depends)| {
            json!({
                "data": serialize_hex(&entry.tx),
                "txid": entry.txid.to_string(),
                "hash": entry.wtxid.to_string(),
                "depends": depends,
                "fee": entry.fee.to_sat(),
                "sigops": entry.sigops,
                "weight": entry.weight,
            })
        })
        .collect();
    Ok(json!({
        "capabilities": [],
        "version": template.version,
        "rules": ["csv", "!segwit", "taproot"],
        "vbavailable": {},
        "vbrequired": 0,
        "previousblockhash": template.previous_block_hash.to_string(),
        "transactions": transactions,
        "coinbaseaux": {},
        "coinbasevalue": template.coinbase_value.to_sat(),
        "longpollid": template.longpollid,
        "target": target_hex(template.bits),
        "mintime": template.mintime,
        "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff",
        "sigoplimit": 80000,
        "sizelimit": 4000000,
        "weightlimit": 4000000,
        "curtime": template.curtime,
        "bits": format!("{:08x}", template.bits.to_consensus()),
        "height": template.height,
        "default_witness_commitment": hex::encode(template.default_witness_commitment.as_bytes()),
    }))
}

/// Wait as Core does: until the tip differs from the one in `id`, or the mempool changed and a
/// minute (then every 10 seconds) has passed.
async fn wait_longpoll(id: &str, ctx: &RpcContext) {
    let (hash_hex, updates) = id.split_at(id.len().min(64));
    let watched = BlockHash::from_str(hash_hex).unwrap_or(BlockHash::all_zeros());
    let watched_updates: u64 = updates.parse().unwrap_or(0);
    let mut tips = ctx.chain.subscribe();
    let mut shutdown = ctx.shutdown.clone();
    let mut check_at = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let tip = tips.borrow_and_update().clone();
        if tip.hash != watched {
            return;
        }
        if tokio::time::Instant::now() >= check_at {
            if tip.mempool_updates != watched_updates {
                return;
            }
            check_at += Duration::from_secs(10);
        }
        tokio::select! {
            changed = tips.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep_until(check_at) => {}
            _ = super::wait_stop(&mut shutdown) => return,
        }
    }
}
