//! Per-network constants of the share chain.
//!
//! Mainnet follows the original P2Pool (30 s shares, a day of shares in the PPLNS window,
//! 200-share retarget look-behind, SPREAD 3). Test networks use smaller chains; regtest lets a
//! CPU miner find a share every few seconds.

use bitcoin::pow::Target;
use bitcoin::Network;

/// The share-format versions this build understands; the last one is what it mines.
pub const SHARE_VERSIONS: &[u64] = &[1];

/// Distance from a share to its `far_share_hash` (P2Pool's 100).
pub const FAR_SHARE_DISTANCE: u32 = 100;

/// Constants of one share-chain network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkParams {
    /// Short name (`mainnet`, `testnet4`, `signet`, `regtest`).
    pub name: &'static str,
    /// The Bitcoin network the shares are mined on.
    pub network: Network,
    /// Prefix of every ref hash: shares of one network can never be valid on another.
    pub identifier: [u8; 8],
    /// Target seconds between shares.
    pub share_period: u32,
    /// Shares in the PPLNS window; also the history a share needs before it can be verified.
    /// At least [`FAR_SHARE_DISTANCE`].
    pub chain_length: u32,
    /// Shares over which the pool's hash rate is measured for the retarget.
    pub target_lookbehind: u32,
    /// The PPLNS window covers at most this many blocks' worth of work.
    pub spread: u32,
    /// Easiest share target (lowest share difficulty), big-endian; see [`Self::max_target`].
    pub max_target_be: [u8; 32],
    /// Hardest share target, big-endian; see [`Self::min_target`].
    pub min_target_be: [u8; 32],
    /// Most coinbase outputs paying miners (the smallest payees beyond it are cut).
    pub max_payouts: usize,
    /// Share-format versions accepted on this network, oldest first.
    pub share_versions: &'static [u64],
    /// Percent of recent work that must vote for a version before shares may switch to it.
    pub version_switch_percent: u32,
    /// How far ahead of the local clock a share's timestamp may be, in seconds.
    pub max_future_secs: u32,
    /// Default libp2p port of the share network.
    pub p2p_port: u16,
    /// Default worker (stratum/getwork/HTTP) port.
    pub worker_port: u16,
    /// bitcoind's default JSON-RPC port on this network.
    pub bitcoind_rpc_port: u16,
    /// bitcoind's default P2P port on this network.
    pub bitcoind_p2p_port: u16,
}

/// `2^256 / 2^bits - 1`: the target at which a hash needs `2^bits` attempts on average.
const fn target_bits(bits: u32) -> [u8; 32] {
    let mut bytes = [0xffu8; 32];
    let full = (bits / 8) as usize;
    let mut i = 0;
    while i < full {
        bytes[i] = 0;
        i += 1;
    }
    if bits % 8 != 0 {
        bytes[full] = 0xff >> (bits % 8);
    }
    bytes
}

impl NetworkParams {
    /// Bitcoin mainnet.
    pub const MAINNET: NetworkParams = NetworkParams {
        name: "mainnet",
        network: Network::Bitcoin,
        identifier: [0xa8, 0x67, 0x72, 0xe5, 0xa8, 0x47, 0x8f, 0x58],
        share_period: 30,
        chain_length: 24 * 60 * 60 / 10,
        target_lookbehind: 200,
        spread: 3,
        max_target_be: target_bits(32),
        min_target_be: [0; 32],
        max_payouts: 4000,
        share_versions: SHARE_VERSIONS,
        version_switch_percent: 95,
        max_future_secs: 600,
        p2p_port: 9333,
        worker_port: 9332,
        bitcoind_rpc_port: 8332,
        bitcoind_p2p_port: 8333,
    };

    /// Bitcoin testnet4.
    pub const TESTNET4: NetworkParams = NetworkParams {
        name: "testnet4",
        network: Network::Testnet4,
        identifier: [0x77, 0x92, 0x60, 0x12, 0x5a, 0xd3, 0x18, 0x95],
        share_period: 30,
        chain_length: 60 * 60 / 10 * 4,
        target_lookbehind: 200,
        spread: 3,
        max_target_be: target_bits(20),
        min_target_be: [0; 32],
        max_payouts: 4000,
        share_versions: SHARE_VERSIONS,
        version_switch_percent: 60,
        max_future_secs: 600,
        p2p_port: 19333,
        worker_port: 19332,
        bitcoind_rpc_port: 48332,
        bitcoind_p2p_port: 48333,
    };

    /// Bitcoin signet: testnet4's share-chain rules on its own identifier and ports.
    pub const SIGNET: NetworkParams = NetworkParams {
        name: "signet",
        network: Network::Signet,
        identifier: [0xbd, 0x72, 0xe2, 0xd2, 0x94, 0x0f, 0x50, 0x4e],
        p2p_port: 39333,
        worker_port: 39332,
        bitcoind_rpc_port: 38332,
        bitcoind_p2p_port: 38333,
        ..Self::TESTNET4
    };

    /// Bitcoin regtest: shares every few seconds for a CPU miner.
    pub const REGTEST: NetworkParams = NetworkParams {
        name: "regtest",
        network: Network::Regtest,
        identifier: [0x39, 0x96, 0x4c, 0xb3, 0x8f, 0x2c, 0x13, 0x34],
        share_period: 3,
        chain_length: 400,
        target_lookbehind: 20,
        spread: 3,
        max_target_be: target_bits(12),
        min_target_be: [0; 32],
        max_payouts: 4000,
        share_versions: SHARE_VERSIONS,
        version_switch_percent: 60,
        max_future_secs: 600,
        p2p_port: 29333,
        worker_port: 29332,
        bitcoind_rpc_port: 18443,
        bitcoind_p2p_port: 18444,
    };

    /// The parameters of a network by name (`main`/`mainnet`/`bitcoin`, `testnet4`, `signet`,
    /// `regtest`).
    pub fn by_name(name: &str) -> Option<&'static NetworkParams> {
        match name {
            "mainnet" | "main" | "bitcoin" => Some(&Self::MAINNET),
            "testnet4" => Some(&Self::TESTNET4),
            "signet" => Some(&Self::SIGNET),
            "regtest" => Some(&Self::REGTEST),
            _ => None,
        }
    }

    /// All networks.
    pub fn all() -> [&'static NetworkParams; 4] {
        [
            &Self::MAINNET,
            &Self::TESTNET4,
            &Self::SIGNET,
            &Self::REGTEST,
        ]
    }

    /// Easiest share target (lowest share difficulty).
    pub fn max_target(&self) -> Target {
        Target::from_be_bytes(self.max_target_be)
    }

    /// Hardest share target.
    pub fn min_target(&self) -> Target {
        Target::from_be_bytes(self.min_target_be)
    }

    /// The share-format version new shares are mined with.
    pub fn current_share_version(&self) -> u64 {
        self.share_versions[self.share_versions.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_ports_are_distinct() {
        let all = NetworkParams::all();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.identifier, b.identifier);
                assert_ne!(a.p2p_port, b.p2p_port);
                assert_ne!(a.worker_port, b.worker_port);
            }
            assert!(a.target_lookbehind <= a.chain_length);
            assert!(
                a.chain_length >= FAR_SHARE_DISTANCE,
                "far share must stay in history"
            );
            assert!(a.min_target() < a.max_target());
        }
    }

    #[test]
    fn max_targets_are_powers_of_two_minus_one() {
        let t = NetworkParams::MAINNET.max_target_be;
        assert_eq!(&t[..4], &[0, 0, 0, 0]);
        assert!(t[4..].iter().all(|&b| b == 0xff));
        let r = NetworkParams::REGTEST.max_target_be;
        assert_eq!(&r[..2], &[0x00, 0x0f]);
    }

    #[test]
    fn regtest_lets_a_cpu_find_shares_quickly() {
        // At most 2^12 attempts per share at the easiest target: a CPU does that in microseconds,
        // and the retarget then settles on one share per `share_period` (3 s).
        assert_eq!(
            crate::target::work_of(NetworkParams::REGTEST.max_target()),
            1 << 12
        );
        const { assert!(NetworkParams::REGTEST.share_period <= 5) };
    }
}
