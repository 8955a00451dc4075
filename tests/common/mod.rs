//! Test helpers for the devchain: a raw HTTP JSON-RPC client, a raw P2P client, and block
//! building from `getblocktemplate`. Every wait is bounded.

#![allow(dead_code)] // reason: each test binary uses a different subset of the helpers

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine;
use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::consensus::encode::{deserialize, serialize, serialize_hex};
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::{
    Address, Amount, Block, BlockHash, CompactTarget, Network, OutPoint, Script, ScriptBuf,
    Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Txid, Witness,
};
use p2pool::devchain::{Devchain, DevchainConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Bound every wait.
pub async fn timed<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Logs to the test's captured output, filtered by `RUST_LOG`.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

pub async fn start() -> Devchain {
    init_tracing();
    timed(
        "devchain start",
        Devchain::start(DevchainConfig::ephemeral()),
    )
    .await
    .expect("devchain starts")
}

/// A raw HTTP/1.1 reply.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl HttpReply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("bad json {:?}: {e}", self.body))
    }
}

/// POST `body` to `addr` with optional basic credentials; one connection per request.
pub async fn http_post(addr: SocketAddr, auth: Option<(&str, &str)>, body: &str) -> HttpReply {
    http_request(addr, "POST", auth, body).await
}

pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    auth: Option<(&str, &str)>,
    body: &str,
) -> HttpReply {
    timed("http request", async {
        let mut stream = TcpStream::connect(addr).await.expect("connect rpc");
        let mut request = format!(
            "{method} / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some((user, password)) = auth {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            request.push_str(&format!("Authorization: Basic {token}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("http head");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        HttpReply {
            status,
            headers: head.to_owned(),
            body: body.to_owned(),
        }
    })
    .await
}

/// A JSON-RPC client authenticated with the devchain's credentials.
pub struct Rpc {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
}

impl Rpc {
    pub fn new(devchain: &Devchain) -> Self {
        let (user, password) = devchain.rpc_auth();
        Self {
            addr: devchain.rpc_addr(),
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    pub async fn raw(&self, body: &str) -> HttpReply {
        http_post(self.addr, Some((&self.user, &self.password)), body).await
    }

    /// Call `method`; `Ok(result)` or `Err(error object)`.
    pub async fn try_call(&self, method: &str, params: Value) -> Result<Value, Value> {
        let body = json!({"method": method, "params": params, "id": 7}).to_string();
        let reply = self.raw(&body).await.json();
        assert_eq!(reply["id"], json!(7), "id echoed");
        if reply["error"].is_null() {
            Ok(reply["result"].clone())
        } else {
            Err(reply["error"].clone())
        }
    }

    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .await
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }
}

/// `OP_TRUE`: outputs paid to its P2WSH are spendable with no signature.
pub fn op_true() -> ScriptBuf {
    ScriptBuf::from_bytes(vec![0x51])
}

pub fn op_true_address() -> Address {
    Address::p2wsh(Script::from_bytes(&[0x51]), Network::Regtest)
}

/// Spend `outpoint` (paid to the `OP_TRUE` P2WSH, worth `value`) back to it, minus `fee`.
pub fn spend_op_true(outpoint: OutPoint, value: Amount, fee: Amount) -> Transaction {
    let mut witness = Witness::new();
    witness.push(op_true().as_bytes());
    Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: outpoint,
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness,
        }],
        output: vec![TxOut {
            value: value - fee,
            script_pubkey: op_true_address().script_pubkey(),
        }],
    }
}

/// The coinbase outpoint and value of the active block at `height`.
pub async fn coinbase_at(rpc: &Rpc, height: u64) -> (OutPoint, Amount) {
    let hash = rpc.call("getblockhash", json!([height])).await;
    let block = rpc.call("getblock", json!([hash, 2])).await;
    let tx = &block["tx"][0];
    let txid = Txid::from_str(tx["txid"].as_str().unwrap()).unwrap();
    let value = Amount::from_btc(tx["vout"][0]["value"].as_f64().unwrap()).unwrap();
    (OutPoint::new(txid, 0), value)
}

/// A block from a `getblocktemplate` reply, built by hand as a pool would: BIP34 height, an
/// extranonce, the witness reserved value, the template's transactions and commitment.
/// `tweak` may change the coinbase before the merkle root is computed.
pub fn block_from_template(gbt: &Value, tweak: impl FnOnce(&mut Transaction)) -> Block {
    let height = gbt["height"].as_i64().unwrap();
    let mut extranonce = PushBytesBuf::new();
    extranonce.extend_from_slice(b"/p2pool-test/").unwrap();
    let script_sig = Builder::new()
        .push_int(height)
        .push_slice(extranonce)
        .into_script();
    let mut witness = Witness::new();
    witness.push([0u8; 32]);
    let commitment = hex::decode(gbt["default_witness_commitment"].as_str().unwrap()).unwrap();
    let mut coinbase = Transaction {
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
                value: Amount::from_sat(gbt["coinbasevalue"].as_u64().unwrap()),
                script_pubkey: op_true_address().script_pubkey(),
            },
            TxOut {
                value: Amount::ZERO,
                script_pubkey: ScriptBuf::from_bytes(commitment),
            },
        ],
    };
    tweak(&mut coinbase);
    let mut txdata = vec![coinbase];
    for tx in gbt["transactions"].as_array().unwrap() {
        let bytes = hex::decode(tx["data"].as_str().unwrap()).unwrap();
        txdata.push(deserialize(&bytes).unwrap());
    }
    let mut block = Block {
        header: Header {
            version: Version::from_consensus(gbt["version"].as_i64().unwrap() as i32),
            prev_blockhash: BlockHash::from_str(gbt["previousblockhash"].as_str().unwrap())
                .unwrap(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: gbt["curtime"].as_u64().unwrap() as u32,
            bits: CompactTarget::from_consensus(
                u32::from_str_radix(gbt["bits"].as_str().unwrap(), 16).unwrap(),
            ),
            nonce: 0,
        },
        txdata,
    };
    block.header.merkle_root = block.compute_merkle_root().unwrap();
    block
}

/// Grind the nonce until the header meets (or, with `valid == false`, misses) its target.
pub fn grind(header: &mut Header, valid: bool) {
    let target = header.target();
    while target.is_met_by(header.block_hash()) != valid {
        header.nonce += 1;
    }
}

pub fn block_hex(block: &Block) -> String {
    serialize_hex(block)
}

pub async fn template(rpc: &Rpc) -> Value {
    rpc.call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .await
}

/// A raw P2P connection speaking regtest.
pub struct P2p {
    stream: TcpStream,
}

impl P2p {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = timed("p2p connect", TcpStream::connect(addr))
            .await
            .expect("connect p2p");
        Self { stream }
    }

    pub async fn send(&mut self, message: NetworkMessage) {
        let raw = RawNetworkMessage::new(Magic::REGTEST, message);
        self.send_bytes(&serialize(&raw)).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("p2p write");
    }

    /// The next message; `None` when the connection closed.
    pub async fn recv(&mut self) -> Option<NetworkMessage> {
        timed("p2p message", async {
            let mut header = [0u8; 24];
            self.stream.read_exact(&mut header).await.ok()?;
            let len = u32::from_le_bytes(header[16..20].try_into().unwrap()) as usize;
            let mut frame = header.to_vec();
            frame.resize(24 + len, 0);
            self.stream.read_exact(&mut frame[24..]).await.ok()?;
            let raw: RawNetworkMessage = deserialize(&frame).expect("decodable message");
            Some(raw.into_payload())
        })
        .await
    }

    /// Receive until `pick` returns `Some`, skipping other messages.
    pub async fn recv_until<T>(&mut self, mut pick: impl FnMut(&NetworkMessage) -> Option<T>) -> T {
        loop {
            let message = self.recv().await.expect("connection open");
            if let Some(found) = pick(&message) {
                return found;
            }
        }
    }

    /// version/verack both ways.
    pub async fn handshake(&mut self) {
        let addr = self.stream.peer_addr().unwrap();
        let local = self.stream.local_addr().unwrap();
        let version = VersionMessage::new(
            ServiceFlags::WITNESS,
            0,
            bitcoin::p2p::address::Address::new(&addr, ServiceFlags::NONE),
            bitcoin::p2p::address::Address::new(&local, ServiceFlags::NONE),
            42,
            "/test/".into(),
            0,
        );
        self.send(NetworkMessage::Version(version)).await;
        self.recv_until(|m| matches!(m, NetworkMessage::Version(_)).then_some(()))
            .await;
        self.recv_until(|m| matches!(m, NetworkMessage::Verack).then_some(()))
            .await;
        self.send(NetworkMessage::Verack).await;
    }
}

/// Poll until the tip height reaches `height`.
pub async fn wait_height(rpc: &Rpc, height: u64) {
    timed("tip height", async {
        loop {
            if rpc.call("getblockcount", json!([])).await.as_u64() >= Some(height) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}
