//! Usernames as P2Pool reads them: `ADDRESS[.worker|_worker][+pseudo_difficulty][/share_difficulty]`.

use std::str::FromStr;

use bitcoin::{Address, Network};

use super::Miner;

/// Why a username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsernameError {
    /// The address part is not an address of the node's network.
    #[error("invalid payout address {address:?}: expected a {network} address ({kinds})")]
    Address {
        /// The address part as sent.
        address: String,
        /// The node's network.
        network: Network,
        /// The address kinds accepted on that network.
        kinds: &'static str,
    },
    /// A `+` or `/` difficulty is not a positive number.
    #[error("invalid difficulty {0:?} in username")]
    Difficulty(String),
}

/// The address kinds of a network, for error messages.
fn address_kinds(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "P2PKH 1…, P2SH 3…, P2WPKH/P2WSH bc1q…, P2TR bc1p…",
        Network::Regtest => "P2PKH m…/n…, P2SH 2…, P2WPKH/P2WSH bcrt1q…, P2TR bcrt1p…",
        _ => "P2PKH m…/n…, P2SH 2…, P2WPKH/P2WSH tb1q…, P2TR tb1p…",
    }
}

fn parse_difficulty(s: &str) -> Result<f64, UsernameError> {
    match f64::from_str(s.trim()) {
        Ok(d) if d.is_finite() && d > 0.0 => Ok(d),
        _ => Err(UsernameError::Difficulty(s.to_owned())),
    }
}

/// Parse a username into a [`Miner`] for `network`.
pub fn parse_username(username: &str, network: Network) -> Result<Miner, UsernameError> {
    let mut rest = username.trim();
    let mut pseudo_difficulty = None;
    let mut share_difficulty = None;
    // The suffixes may come in either order; each is the last of its symbol.
    for _ in 0..2 {
        let plus = rest.rfind('+');
        let slash = rest.rfind('/');
        match (plus, slash) {
            (Some(p), s) if s.is_none_or(|s| p > s) && pseudo_difficulty.is_none() => {
                pseudo_difficulty = Some(parse_difficulty(&rest[p + 1..])?);
                rest = &rest[..p];
            }
            (_, Some(s)) if share_difficulty.is_none() => {
                share_difficulty = Some(parse_difficulty(&rest[s + 1..])?);
                rest = &rest[..s];
            }
            _ => break,
        }
    }
    let (address, worker) = match rest.find(['.', '_']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let invalid = || UsernameError::Address {
        address: address.to_owned(),
        network,
        kinds: address_kinds(network),
    };
    let checked = Address::from_str(address)
        .map_err(|_| invalid())?
        .require_network(network)
        .map_err(|_| invalid())?;
    Ok(Miner {
        username: username.to_owned(),
        address: address.to_owned(),
        payout: checked.script_pubkey(),
        worker: worker.to_owned(),
        pseudo_difficulty,
        share_difficulty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGTEST: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

    #[test]
    fn table() {
        let cases: &[(&str, &str, Option<f64>, Option<f64>)] = &[
            ("", "", None, None),
            (".rig1", "rig1", None, None),
            ("_rig1", "rig1", None, None),
            ("+0.001", "", Some(0.001), None),
            ("/1000", "", None, Some(1000.0)),
            (".rig+2/300", "rig", Some(2.0), Some(300.0)),
            (".rig/300+2", "rig", Some(2.0), Some(300.0)),
            ("_a.b+1e-6", "a.b", Some(1e-6), None),
        ];
        for (suffix, worker, pseudo, share) in cases {
            let m = parse_username(&format!("{REGTEST}{suffix}"), Network::Regtest)
                .unwrap_or_else(|e| panic!("{suffix}: {e}"));
            assert_eq!(m.address, REGTEST);
            assert_eq!(&m.worker, worker, "{suffix}");
            assert_eq!(m.pseudo_difficulty, *pseudo, "{suffix}");
            assert_eq!(m.share_difficulty, *share, "{suffix}");
        }
    }

    #[test]
    fn wrong_network_names_accepted_kinds() {
        let e = parse_username(
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            Network::Regtest,
        )
        .unwrap_err();
        assert!(e.to_string().contains("bcrt1q"), "{e}");
        assert!(parse_username("garbage", Network::Bitcoin)
            .unwrap_err()
            .to_string()
            .contains("bc1p"));
        assert!(matches!(
            parse_username(&format!("{REGTEST}+abc"), Network::Regtest),
            Err(UsernameError::Difficulty(_))
        ));
        assert!(parse_username(&format!("{REGTEST}+-1"), Network::Regtest).is_err());
    }
}
