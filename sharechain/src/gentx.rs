//! Coinbase ("gentx") construction.
//!
//! Layout of every share's coinbase (non-witness serialization):
//!
//! ```text
//! version(4)=1 | 1 input: null prevout, scriptSig (BIP34 height push first, 2..=100 bytes), sequence
//! | outputs: [witness commitment] , payouts…, OP_RETURN 0x28 ‖ ref_hash(32) ‖ last_txout_nonce(8)
//! | lock_time(4)=0
//! ```
//!
//! The miner's extranonce *is* `last_txout_nonce`, 12 bytes before the end: for stratum, coinb1 is
//! everything before it and coinb2 is the lock time. A coinbase is therefore hashed once up to
//! the ref hash (the [`crate::hash_link`] midstate) and each submit only hashes the last block.

use bitcoin::hashes::{sha256, sha256d, Hash, HashEngine};
use bitcoin::{Amount, ScriptBuf};

use crate::encode::{varint_len, write_varint};

/// Witness reserved value of the coinbase (BIP141): 32 zero bytes.
pub const WITNESS_RESERVED_VALUE: [u8; 32] = [0; 32];

/// The constant bytes right before the ref hash: value 0, script length 42, OP_RETURN, push 40.
pub const REF_OUTPUT_PREFIX: [u8; 11] = [0, 0, 0, 0, 0, 0, 0, 0, 0x2a, 0x6a, 0x28];

/// Bytes after the ref hash: `last_txout_nonce(8) ‖ lock_time(4)`.
pub const COINBASE_TAIL_LEN: usize = 12;

/// One coinbase output paying a miner.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Payout {
    /// The output script (the share's `payout_script`, or the donation script).
    pub script: ScriptBuf,
    /// The output's value in satoshis.
    pub amount: Amount,
}

/// The minimal push of a block height (BIP34): heights 1..=16 as `OP_1`..`OP_16`, 0 as `OP_0`,
/// others as a minimal little-endian script number.
pub fn bip34_height_push(height: u32) -> Vec<u8> {
    match height {
        0 => vec![0x00],
        1..=16 => vec![0x50 + height as u8],
        _ => {
            let mut num = Vec::with_capacity(5);
            let mut h = height;
            while h > 0 {
                num.push((h & 0xff) as u8);
                h >>= 8;
            }
            if num.last().is_some_and(|&b| b & 0x80 != 0) {
                num.push(0);
            }
            let mut out = vec![num.len() as u8];
            out.extend_from_slice(&num);
            out
        }
    }
}

/// BIP141 commitment `sha256d(witness_merkle_root ‖ reserved)` for the commitment output.
pub fn witness_commitment(wtxid_merkle_root: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(wtxid_merkle_root);
    buf[32..].copy_from_slice(&WITNESS_RESERVED_VALUE);
    sha256d::Hash::hash(&buf).to_byte_array()
}

/// The script of the witness commitment output: `OP_RETURN 0x24 aa21a9ed ‖ commitment`.
pub fn witness_commitment_script(commitment: &[u8; 32]) -> [u8; 38] {
    let mut s = [0u8; 38];
    s[..6].copy_from_slice(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]);
    s[6..].copy_from_slice(commitment);
    s
}

/// A coinbase up to (not including) the ref hash, plus what is needed to finish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoinbasePrefix {
    /// Serialized coinbase up to and including [`REF_OUTPUT_PREFIX`].
    pub bytes: Vec<u8>,
}

impl CoinbasePrefix {
    /// Serializes the coinbase up to the ref hash.
    pub fn build(script_sig: &[u8], wtxid_merkle_root: &[u8; 32], payouts: &[Payout]) -> Self {
        Self::build_from(
            script_sig,
            wtxid_merkle_root,
            payouts
                .iter()
                .map(|p| (p.script.as_bytes(), p.amount.to_sat())),
        )
    }

    /// [`Self::build`] from `(script, satoshis)` pairs.
    pub fn build_from<'a>(
        script_sig: &[u8],
        wtxid_merkle_root: &[u8; 32],
        payouts: impl ExactSizeIterator<Item = (&'a [u8], u64)> + Clone,
    ) -> Self {
        let payout_bytes: usize = payouts
            .clone()
            .map(|(s, _)| 8 + varint_len(s.len() as u64) + s.len())
            .sum();
        let mut out = Vec::with_capacity(64 + script_sig.len() + 47 + payout_bytes + 11);
        write_prefix(&mut out, script_sig, wtxid_merkle_root, payouts);
        CoinbasePrefix { bytes: out }
    }

    /// The whole coinbase for a ref hash and extranonce.
    pub fn finish(&self, ref_hash: &[u8; 32], last_txout_nonce: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.bytes.len() + 44);
        out.extend_from_slice(&self.bytes);
        out.extend_from_slice(ref_hash);
        out.extend_from_slice(&last_txout_nonce.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out
    }

    /// Stratum's split for a ref hash: `coinb1` ends right before the 8-byte extranonce,
    /// `coinb2` is the lock time.
    pub fn stratum_split(&self, ref_hash: &[u8; 32]) -> (Vec<u8>, Vec<u8>) {
        let mut coinb1 = Vec::with_capacity(self.bytes.len() + 32);
        coinb1.extend_from_slice(&self.bytes);
        coinb1.extend_from_slice(ref_hash);
        (coinb1, 0u32.to_le_bytes().to_vec())
    }
}

/// Where a coinbase is serialized to: a byte vector, or straight into SHA-256.
pub trait Sink {
    /// Appends raw bytes.
    fn put(&mut self, bytes: &[u8]);

    /// One output: `amount ‖ CompactSize(len) ‖ script`.
    fn put_output(&mut self, amount: u64, script: &[u8]) {
        self.put(&amount.to_le_bytes());
        put_var_bytes(self, script);
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// SHA-256 fed through a stack buffer, so small writes cost a copy, not an engine call.
struct HashSink {
    engine: sha256::HashEngine,
    buf: [u8; 512],
    len: usize,
}

impl HashSink {
    fn new() -> Self {
        HashSink {
            engine: sha256::HashEngine::default(),
            buf: [0; 512],
            len: 0,
        }
    }

    fn flush(&mut self) {
        self.engine.input(&self.buf[..self.len]);
        self.len = 0;
    }

    fn sha256d(mut self) -> [u8; 32] {
        self.flush();
        let single = sha256::Hash::from_engine(self.engine);
        sha256::Hash::hash(single.as_byte_array()).to_byte_array()
    }
}

impl Sink for HashSink {
    /// Writes the whole output with one copy of the script (this runs once per payee of every
    /// verified share).
    fn put_output(&mut self, amount: u64, script: &[u8]) {
        if script.len() >= 0xfd || 9 + script.len() > self.buf.len() {
            self.put(&amount.to_le_bytes());
            put_var_bytes(self, script);
            return;
        }
        if self.len + 9 + script.len() > self.buf.len() {
            self.flush();
        }
        let at = self.len;
        self.buf[at..at + 8].copy_from_slice(&amount.to_le_bytes());
        self.buf[at + 8] = script.len() as u8;
        self.buf[at + 9..at + 9 + script.len()].copy_from_slice(script);
        self.len += 9 + script.len();
    }

    fn put(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.buf.len() {
            self.flush();
            if bytes.len() > self.buf.len() {
                self.engine.input(bytes);
                return;
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

fn put_varint<S: Sink + ?Sized>(out: &mut S, n: u64) {
    let mut buf = Vec::new();
    write_varint(&mut buf, n);
    out.put(&buf);
}

fn put_var_bytes<S: Sink + ?Sized>(out: &mut S, bytes: &[u8]) {
    if bytes.len() < 0xfd {
        out.put(&[bytes.len() as u8]);
    } else {
        put_varint(out, bytes.len() as u64);
    }
    out.put(bytes);
}

/// Serializes the coinbase up to and including [`REF_OUTPUT_PREFIX`].
fn write_prefix<'a>(
    out: &mut impl Sink,
    script_sig: &[u8],
    wtxid_merkle_root: &[u8; 32],
    payouts: impl ExactSizeIterator<Item = (&'a [u8], u64)>,
) {
    out.put(&1u32.to_le_bytes());
    out.put(&[1]);
    out.put(&[0u8; 32]);
    out.put(&u32::MAX.to_le_bytes());
    put_var_bytes(out, script_sig);
    out.put(&u32::MAX.to_le_bytes());
    let outputs = payouts.len() as u64 + 2;
    if outputs < 0xfd {
        out.put(&[outputs as u8]);
    } else {
        put_varint(out, outputs);
    }
    out.put(&0u64.to_le_bytes());
    put_var_bytes(
        out,
        &witness_commitment_script(&witness_commitment(wtxid_merkle_root)),
    );
    for (script, amount) in payouts {
        out.put_output(amount, script);
    }
    out.put(&REF_OUTPUT_PREFIX);
}

/// The txid of the coinbase [`CoinbasePrefix::build_from`] and [`CoinbasePrefix::finish`]
/// would make, hashed as it is serialized (no coinbase is built).
pub fn coinbase_txid<'a>(
    script_sig: &[u8],
    wtxid_merkle_root: &[u8; 32],
    payouts: impl ExactSizeIterator<Item = (&'a [u8], u64)>,
    ref_hash: &[u8; 32],
    last_txout_nonce: u64,
) -> [u8; 32] {
    let mut sink = HashSink::new();
    write_prefix(&mut sink, script_sig, wtxid_merkle_root, payouts);
    sink.put(ref_hash);
    sink.put(&last_txout_nonce.to_le_bytes());
    sink.put(&0u32.to_le_bytes());
    sink.sha256d()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::consensus::deserialize;
    use bitcoin::Transaction;

    #[test]
    fn bip34_pushes_are_minimal() {
        assert_eq!(bip34_height_push(1), vec![0x51]);
        assert_eq!(bip34_height_push(16), vec![0x60]);
        assert_eq!(bip34_height_push(17), vec![0x01, 0x11]);
        assert_eq!(bip34_height_push(127), vec![0x01, 0x7f]);
        assert_eq!(bip34_height_push(128), vec![0x02, 0x80, 0x00]);
        assert_eq!(bip34_height_push(840_000), vec![0x03, 0x40, 0xd1, 0x0c]);
        // Same bytes as rust-bitcoin's script-number push of the height.
        for h in [17u32, 255, 256, 65535, 8_388_607, 8_388_608, 1 << 30] {
            let script = bitcoin::script::Builder::new()
                .push_int(i64::from(h))
                .into_script();
            assert_eq!(bip34_height_push(h), script.as_bytes(), "height {h}");
        }
    }

    #[test]
    fn coinbase_parses_as_a_bitcoin_transaction() {
        let payouts = vec![
            Payout {
                script: ScriptBuf::from_bytes(vec![
                    0x00, 0x14, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                ]),
                amount: Amount::from_sat(1000),
            },
            Payout {
                script: ScriptBuf::from_bytes(
                    vec![0x51, 0x20].into_iter().chain([9u8; 32]).collect(),
                ),
                amount: Amount::from_sat(2000),
            },
        ];
        let mut sig = bip34_height_push(500);
        sig.extend_from_slice(b"/p2pool-rs/");
        let prefix = CoinbasePrefix::build(&sig, &[5; 32], &payouts);
        let full = prefix.finish(&[0xab; 32], 0x0102030405060708);
        let tx: Transaction = deserialize(&full).unwrap();
        assert!(tx.is_coinbase());
        assert_eq!(tx.output.len(), 4);
        assert_eq!(
            tx.output[0].script_pubkey.as_bytes()[..6],
            [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]
        );
        assert_eq!(tx.output[1].value, Amount::from_sat(1000));
        let last = tx.output[3].script_pubkey.as_bytes();
        assert_eq!(&last[..2], &[0x6a, 0x28]);
        assert_eq!(&last[2..34], &[0xab; 32]);
        assert_eq!(&last[34..], &0x0102030405060708u64.to_le_bytes());
        assert_eq!(
            tx.compute_txid().to_byte_array(),
            sha256d::Hash::hash(&full).to_byte_array()
        );
        let (coinb1, coinb2) = prefix.stratum_split(&[0xab; 32]);
        assert_eq!(
            [&coinb1[..], &0x0102030405060708u64.to_le_bytes(), &coinb2].concat(),
            full
        );
    }
}
