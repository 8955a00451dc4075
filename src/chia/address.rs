//! Chia addresses: a puzzle hash in bech32m, `xch…` on mainnet and `txch…` on the test networks
//! (testnet11, the simulator, the regtest clock), as chia's `encode_puzzle_hash`.

use bech32::primitives::decode::CheckedHrpstring;
use bech32::Bech32m;
use sharechain::pospace_share::ChiaNetwork;

/// Why a string is not a payout address of the network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Not valid bech32m (bad characters, checksum, or mixed case); holds the decoder's message.
    #[error("not a bech32m address: {0}")]
    Encoding(String),
    /// A bech32m string whose prefix is not this network's (`xch` for mainnet, `txch` for the
    /// test networks).
    #[error("address prefix {got:?}: this network's addresses start with {want:?}")]
    Prefix {
        /// The prefix found, lowercased.
        got: String,
        /// This network's prefix.
        want: &'static str,
    },
    /// The data part is not 32 bytes; holds its length in bytes.
    #[error("address holds {0} bytes, a puzzle hash is 32")]
    Length(usize),
}

/// The address prefix of `network`.
pub fn prefix(network: &ChiaNetwork) -> &'static str {
    if network.name == ChiaNetwork::MAINNET.name {
        "xch"
    } else {
        "txch"
    }
}

/// The puzzle hash an address of `network` pays.
pub fn parse_address(address: &str, network: &ChiaNetwork) -> Result<[u8; 32], AddressError> {
    let checked = CheckedHrpstring::new::<Bech32m>(address.trim())
        .map_err(|e| AddressError::Encoding(e.to_string()))?;
    let want = prefix(network);
    let got = checked.hrp().to_lowercase();
    if got != want {
        return Err(AddressError::Prefix { got, want });
    }
    let bytes: Vec<u8> = checked.byte_iter().collect();
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| AddressError::Length(bytes.len()))
}

/// The address of `network` that pays `puzzle_hash` (chia's `encode_puzzle_hash`).
pub fn encode_address(puzzle_hash: &[u8; 32], network: &ChiaNetwork) -> String {
    let hrp = bech32::Hrp::parse_unchecked(prefix(network));
    // 32 bytes under a 3- or 4-letter prefix are far below bech32's length limit.
    bech32::encode::<Bech32m>(hrp, puzzle_hash).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_chia_encodes_them() {
        // chia.util.bech32m.encode_puzzle_hash (chia-blockchain 2.7.5).
        let main = "xch1qqqsyqcyq5rqwzqfpg9scrgwpugpzysnzs23v9ccrydpk8qarc0srg6dkm";
        let expected: Vec<u8> = (0..32).collect();
        assert_eq!(
            parse_address(main, &ChiaNetwork::MAINNET).unwrap().to_vec(),
            expected
        );
        let test = "txch1qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurswpc8qurskhc8nk";
        assert_eq!(parse_address(test, &ChiaNetwork::REGTEST).unwrap(), [7; 32]);
        assert_eq!(encode_address(&[7; 32], &ChiaNetwork::REGTEST), test);
        let zero_to_31: [u8; 32] = expected.clone().try_into().unwrap();
        assert_eq!(encode_address(&zero_to_31, &ChiaNetwork::MAINNET), main);
        assert!(matches!(
            parse_address(main, &ChiaNetwork::REGTEST),
            Err(AddressError::Prefix { .. })
        ));
        let mut bad = test.to_owned();
        bad.pop();
        bad.push('q');
        assert!(matches!(
            parse_address(&bad, &ChiaNetwork::REGTEST),
            Err(AddressError::Encoding(_))
        ));
    }
}
