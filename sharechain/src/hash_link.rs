//! `hash_link`: prove that a coinbase ends with known bytes from a SHA-256 midstate.
//!
//! A share does not carry its coinbase. It carries the SHA-256 state after the coinbase's whole
//! 64-byte blocks before the ref hash, the few bytes after those blocks, and the length. Anyone can
//! then finish the hash with the bytes that must end every coinbase (the ref-hash output and the
//! lock time) and get the coinbase txid the block header commits to.

use bitcoin::hashes::{sha256, sha256d, Hash, HashEngine};
use thiserror::Error;

/// SHA-256 midstate of a coinbase prefix: proves the coinbase ends with known bytes without
/// sending the whole coinbase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct HashLink {
    /// SHA-256 state after the whole 64-byte blocks of the prefix.
    pub state: [u8; 32],
    /// Prefix bytes after those blocks, before the constant ending.
    pub extra_data: Vec<u8>,
    /// Length of the prefix in bytes.
    pub length: u64,
}

/// Why a hash link cannot be finished.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HashLinkError {
    /// `extra_data` does not have the length implied by `length` and the constant ending.
    #[error("hash link extra data has {got} bytes, expected {expected}")]
    ExtraDataLength {
        /// Bytes `extra_data` holds.
        got: usize,
        /// Bytes `length` and the constant ending imply.
        expected: usize,
    },
    /// The described prefix is shorter than the constant ending it must contain.
    #[error("hash link length {length} is shorter than the constant ending ({ending} bytes)")]
    TooShort {
        /// The link's `length`, in bytes.
        length: u64,
        /// Length of the constant ending, in bytes.
        ending: usize,
    },
}

/// The hash link of `prefix`, which must end with `const_ending`.
pub fn prefix_to_hash_link(prefix: &[u8], const_ending: &[u8]) -> HashLink {
    debug_assert!(prefix.ends_with(const_ending));
    let whole = prefix.len() / 64 * 64;
    let mut engine = sha256::HashEngine::default();
    engine.input(&prefix[..whole]);
    let extra_end = prefix.len() - const_ending.len();
    let extra_data = if extra_end > whole {
        prefix[whole..extra_end].to_vec()
    } else {
        Vec::new()
    };
    HashLink {
        state: engine.midstate().to_byte_array(),
        extra_data,
        length: prefix.len() as u64,
    }
}

/// Finishes the hash of `prefix ‖ data` from its link; returns the double SHA-256.
pub fn check_hash_link(
    link: &HashLink,
    const_ending: &[u8],
    data: &[u8],
) -> Result<[u8; 32], HashLinkError> {
    if link.length < const_ending.len() as u64 {
        return Err(HashLinkError::TooShort {
            length: link.length,
            ending: const_ending.len(),
        });
    }
    let extra_length = (link.length % 64) as usize;
    let expected = extra_length.saturating_sub(const_ending.len());
    if link.extra_data.len() != expected {
        return Err(HashLinkError::ExtraDataLength {
            got: link.extra_data.len(),
            expected,
        });
    }
    let mut tail = [0u8; 128];
    let n = link.extra_data.len();
    tail[..n].copy_from_slice(&link.extra_data);
    tail[n..n + const_ending.len()].copy_from_slice(const_ending);
    let joined = &tail[..n + const_ending.len()];
    let extra = &joined[joined.len() - extra_length..];
    let midstate = sha256::Midstate::from_byte_array(link.state);
    let mut engine =
        sha256::HashEngine::from_midstate(midstate, (link.length as usize) - extra_length);
    engine.input(extra);
    engine.input(data);
    let single = sha256::Hash::from_engine(engine);
    Ok(
        sha256d::Hash::from_byte_array(sha256::Hash::hash(single.as_byte_array()).to_byte_array())
            .to_byte_array(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_finishes_to_the_plain_hash_for_every_split() {
        let ending = b"constant-end";
        for len in 12..200 {
            let mut prefix: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let at = prefix.len() - ending.len();
            prefix[at..].copy_from_slice(ending);
            let data = b"ref-hash-and-nonce";
            let link = prefix_to_hash_link(&prefix, ending);
            let mut whole = prefix.clone();
            whole.extend_from_slice(data);
            let expected = sha256d::Hash::hash(&whole).to_byte_array();
            assert_eq!(
                check_hash_link(&link, ending, data).unwrap(),
                expected,
                "len {len}"
            );
            let mut bad = link.clone();
            bad.state[0] ^= 1;
            assert_ne!(check_hash_link(&bad, ending, data).unwrap(), expected);
        }
    }

    #[test]
    fn wrong_extra_length_is_an_error_not_a_panic() {
        let link = HashLink {
            state: [0; 32],
            extra_data: vec![1; 40],
            length: 70,
        };
        assert_eq!(
            check_hash_link(&link, b"abc", b"x"),
            Err(HashLinkError::ExtraDataLength {
                got: 40,
                expected: 3
            })
        );
        let short = HashLink {
            state: [0; 32],
            extra_data: vec![],
            length: 1,
        };
        assert!(matches!(
            check_hash_link(&short, b"abc", b"x"),
            Err(HashLinkError::TooShort { .. })
        ));
    }
}
