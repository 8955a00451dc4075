//! A toy share kind for tracker tests: ids instead of hashes, explicit work and validity.
#![allow(dead_code, reason = "each test binary uses a different part")]

use std::fmt;

use bitcoin::hashes::Hash;
use sharechain::chain::{Chain, TrackedShare};
use sharechain::tracker::{ShareTracker, TrackerConfig, Verifier};
use sharechain::ShareHash;

/// Share `id` builds on `prev`, proves `work`, builds on external tip `tip`, and is `valid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toy {
    pub id: u32,
    pub prev: Option<u32>,
    pub work: u128,
    pub tip: u8,
    pub valid: bool,
}

pub fn h(id: u32) -> ShareHash {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&id.to_le_bytes());
    b[31] = 0x5a;
    ShareHash::from_byte_array(b)
}

pub fn id_of(hash: &ShareHash) -> u32 {
    let b = hash.to_byte_array();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

impl TrackedShare for Toy {
    type Tip = u8;
    fn hash(&self) -> ShareHash {
        h(self.id)
    }
    fn prev_hash(&self) -> Option<ShareHash> {
        self.prev.map(h)
    }
    fn work(&self) -> u128 {
        self.work
    }
    fn builds_on(&self, tip: &u8) -> bool {
        self.tip == *tip
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToyInvalid(pub u32);

impl fmt::Display for ToyInvalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "toy share {} is invalid", self.0)
    }
}

impl std::error::Error for ToyInvalid {}

#[derive(Debug, Default)]
pub struct ToyRules {
    /// Every share verified, in order.
    pub verified: Vec<u32>,
}

impl Verifier<Toy> for ToyRules {
    type Error = ToyInvalid;
    fn verify(&mut self, share: &Toy, _chain: &Chain<Toy>) -> Result<(), ToyInvalid> {
        self.verified.push(share.id);
        if share.valid {
            Ok(())
        } else {
            Err(ToyInvalid(share.id))
        }
    }
}

pub type ToyTracker = ShareTracker<Toy, ToyRules>;

pub fn tracker(chain_length: u32) -> ToyTracker {
    ShareTracker::new(TrackerConfig::new(chain_length), ToyRules::default())
}

/// A valid share with work 1 on tip 0.
pub fn toy(id: u32, prev: Option<u32>) -> Toy {
    Toy {
        id,
        prev,
        work: 1,
        tip: 0,
        valid: true,
    }
}

pub fn ids(hashes: &[ShareHash]) -> Vec<u32> {
    let mut v: Vec<u32> = hashes.iter().map(id_of).collect();
    v.sort_unstable();
    v
}
