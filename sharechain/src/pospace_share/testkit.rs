//! Building PoSpace shares from the checked-in chiapos proofs (`tests/vectors/chia/
//! pospace_share_proofs_k18.csv`), for tests and benchmarks: the regtest signage point grid the proofs answer,
//! and shares signed the way a harvester and farmer sign (local and farmer key halves, each
//! prepending the plot key).

use bitcoin::hashes::{sha256, Hash};
use chia_bls::{PublicKey, SecretKey, Signature};
use chia_protocol::{Bytes, Bytes32, ProofOfSpace};

use super::params::ChiaNetwork;
use super::signage::SignagePoint;
use super::wire::{PoSpaceShare, ShareContent, SHARE_FORMAT_VERSION};
use crate::pospace::pos_challenge;
use crate::share::ShareHash;

fn sha(parts: &[&[u8]]) -> [u8; 32] {
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(p);
    }
    sha256::Hash::hash(&all).to_byte_array()
}

/// Signage point number `n` of the regtest grid: 64 per sub-slot, a block every two.
pub fn grid_signage_point(n: u32) -> SignagePoint {
    SignagePoint {
        challenge_hash: sha(&[b"cc", &(n / 64).to_be_bytes()]),
        sp_hash: sha(&[b"sp", &n.to_be_bytes()]),
        index: (n % 64) as u8,
        peak_height: n / 2,
    }
}

/// One OG plot's keys and proofs.
#[derive(Debug, Clone)]
pub struct ProofBook {
    pub local_sk: SecretKey,
    pub farmer_sk: SecretKey,
    pub pool_pk: PublicKey,
    pub plot_pk: PublicKey,
    pub plot_id: [u8; 32],
    /// (signage point number, proof) in grid order.
    pub proofs: Vec<(u32, Vec<u8>)>,
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix("# ")?.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("header {name}"))
}

fn arr<const N: usize>(hex_text: &str) -> [u8; N] {
    hex::decode(hex_text.trim())
        .expect("hex")
        .try_into()
        .expect("length")
}

impl ProofBook {
    /// Parses the proofs file's text.
    pub fn parse(text: &str) -> ProofBook {
        let local_sk = SecretKey::from_bytes(&arr(field(text, "local_sk"))).expect("local sk");
        let farmer_sk = SecretKey::from_bytes(&arr(field(text, "farmer_sk"))).expect("farmer sk");
        let pool_pk = PublicKey::from_bytes(&arr(field(text, "pool_pk"))).expect("pool pk");
        let plot_pk = local_sk.public_key() + &farmer_sk.public_key();
        let plot_id = crate::pospace::plot_id_og(&pool_pk.to_bytes(), &plot_pk.to_bytes());
        assert_eq!(
            plot_id,
            arr::<32>(field(text, "plot_id")),
            "plot id from keys"
        );
        let proofs = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let (n, p) = l.split_once(',').expect("n, proof");
                (
                    n.trim().parse().expect("n"),
                    hex::decode(p.trim()).expect("proof hex"),
                )
            })
            .collect();
        ProofBook {
            local_sk,
            farmer_sk,
            pool_pk,
            plot_pk,
            plot_id,
            proofs,
        }
    }

    /// The harvester's and farmer's signature halves of `message`, aggregated.
    pub fn sign(&self, message: &[u8; 32]) -> Signature {
        let mut aug = self.plot_pk.to_bytes().to_vec();
        aug.extend_from_slice(message);
        chia_bls::sign_raw(&self.local_sk, &aug) + &chia_bls::sign_raw(&self.farmer_sk, &aug)
    }

    /// Unsigned content answering proof `i` of the book.
    pub fn content(
        &self,
        i: usize,
        prev: Option<ShareHash>,
        difficulty: u64,
        timestamp: u64,
        payout: [u8; 32],
    ) -> ShareContent {
        let (n, proof) = &self.proofs[i];
        let sp = grid_signage_point(*n);
        let challenge = pos_challenge(&self.plot_id, &sp.challenge_hash, &sp.sp_hash);
        ShareContent {
            version: SHARE_FORMAT_VERSION,
            prev_share: prev,
            challenge_hash: sp.challenge_hash,
            sp_hash: sp.sp_hash,
            signage_point_index: sp.index,
            peak_height: sp.peak_height,
            proof_of_space: ProofOfSpace::new(
                Bytes32::new(challenge),
                Some(self.pool_pk),
                None,
                self.plot_pk,
                0,
                0,
                0,
                0,
                18,
                Bytes::new(proof.clone()),
            ),
            payout_puzzle_hash: payout,
            difficulty,
            timestamp,
        }
    }

    /// Signs `content` for `network`.
    pub fn share(&self, content: &ShareContent, network: &ChiaNetwork) -> PoSpaceShare {
        content
            .sign(&self.sign(&content.message(network)), network)
            .expect("a well-formed share")
    }

    /// The signage point proof `i` answers.
    pub fn signage_point(&self, i: usize) -> SignagePoint {
        grid_signage_point(self.proofs[i].0)
    }
}
