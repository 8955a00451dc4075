//! Per-network constants of PoSpace share chains: Chia's own consensus constants that a share's
//! proof is judged by (plot sizes, `DIFFICULTY_CONSTANT_FACTOR`, the plot filter schedule, pool
//! sub-slot iterations) and the share chain's own (identity, share period, window, retarget).

/// Mainnet `POOL_SUB_SLOT_ITERS`: a partial counts below a 64th of it.
const POOL_SUB_SLOT_ITERS: u64 = 37_600_000_000;

/// The constants of one PoSpace share-chain network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChiaNetwork {
    /// Short name: the Chia network's (`mainnet`, `testnet11`, `simulator0`) or `regtest`.
    pub name: &'static str,
    /// Share-chain identity: part of every signed share message, so a share of one network can
    /// never be valid on another.
    pub identity: [u8; 8],
    /// Smallest plot size (`MIN_PLOT_SIZE_V1`).
    pub min_k: u8,
    /// Largest plot size (`MAX_PLOT_SIZE_V1`).
    pub max_k: u8,
    /// `DIFFICULTY_CONSTANT_FACTOR`.
    pub difficulty_constant_factor: u128,
    /// `POOL_SUB_SLOT_ITERS`: a share's required iterations must be below a 64th of it.
    pub pool_sub_slot_iters: u64,
    /// `NUMBER_ZERO_BITS_PLOT_FILTER` before any reduction.
    pub plot_filter_bits: u8,
    /// Peak heights from which the plot filter loses one bit each (`HARD_FORK_HEIGHT`,
    /// `PLOT_FILTER_128_HEIGHT`, `PLOT_FILTER_64_HEIGHT`, `PLOT_FILTER_32_HEIGHT`).
    pub plot_filter_heights: &'static [u32],
    /// `NUM_SPS_SUB_SLOT`.
    pub signage_points_per_sub_slot: u8,
    /// Signage points per block on average (64 per sub-slot, 32 blocks per sub-slot): converts a
    /// peak-height distance into signage points across sub-slots.
    pub signage_points_per_block: u32,
    /// How many signage points older than its parent's a share's signage point may be.
    pub max_signage_point_lag: u32,
    /// Target seconds between shares.
    pub share_period: u32,
    /// Shares in the PPLNS window; also the history a share's rules read.
    pub window: u32,
    /// Shares over which the share rate is measured for the retarget.
    pub retarget_lookbehind: u32,
    /// Difficulty of the first share of a chain.
    pub initial_difficulty: u64,
    /// Lowest and highest share difficulty.
    pub min_difficulty: u64,
    /// Highest share difficulty.
    pub max_difficulty: u64,
    /// How far ahead of the local clock a share's timestamp may be, in seconds.
    pub max_future_secs: u64,
}

impl ChiaNetwork {
    /// Chia mainnet.
    pub const MAINNET: ChiaNetwork = ChiaNetwork {
        name: "mainnet",
        identity: [0x7c, 0x1e, 0x9a, 0x4f, 0x2b, 0x8d, 0x6e, 0x03],
        min_k: 32,
        max_k: 50,
        difficulty_constant_factor: 1 << 67,
        pool_sub_slot_iters: POOL_SUB_SLOT_ITERS,
        plot_filter_bits: 9,
        plot_filter_heights: &[5_496_000, 10_542_000, 15_592_000, 20_643_000],
        signage_points_per_sub_slot: 64,
        signage_points_per_block: 2,
        max_signage_point_lag: 16,
        share_period: 10,
        window: 8640,
        retarget_lookbehind: 100,
        initial_difficulty: 1,
        min_difficulty: 1,
        max_difficulty: 1 << 40,
        max_future_secs: 120,
    };

    /// Chia testnet11 (hard fork active from genesis, so its filter starts at 8 bits).
    pub const TESTNET11: ChiaNetwork = ChiaNetwork {
        name: "testnet11",
        identity: [0x2f, 0x5a, 0x81, 0xc4, 0xd9, 0x7e, 0x3b, 0x60],
        min_k: 18,
        difficulty_constant_factor: 10_052_721_566_054,
        plot_filter_heights: &[0, 6_029_568, 11_075_328, 16_121_088],
        window: 2880,
        ..Self::MAINNET
    };

    /// The Chia simulator (`chia dev sim`, network `simulator0`), with chia's test constants
    /// (16 signage points a sub-slot; the mainnet filter schedule from a 1-bit filter).
    pub const SIMULATOR0: ChiaNetwork = ChiaNetwork {
        name: "simulator0",
        identity: [0x95, 0xd3, 0xe7, 0xa1, 0x40, 0x6b, 0xc8, 0x2f],
        min_k: 18,
        difficulty_constant_factor: 1 << 25,
        plot_filter_bits: 1,
        signage_points_per_sub_slot: 16,
        signage_points_per_block: 1,
        window: 720,
        ..Self::MAINNET
    };

    /// The embedded regtest clock network: a signage point about every second, small constants,
    /// no plot filter, so k18 plots make shares within seconds.
    pub const REGTEST: ChiaNetwork = ChiaNetwork {
        name: "regtest",
        identity: [0x4b, 0x8c, 0x02, 0xf6, 0xe1, 0xa9, 0xd5, 0x73],
        min_k: 18,
        difficulty_constant_factor: 1 << 25,
        pool_sub_slot_iters: 32_768,
        plot_filter_bits: 0,
        plot_filter_heights: &[],
        share_period: 2,
        window: 200,
        retarget_lookbehind: 20,
        max_future_secs: 60,
        ..Self::MAINNET
    };

    /// All networks, for look-up by name.
    pub const ALL: [&'static ChiaNetwork; 4] = [
        &Self::MAINNET,
        &Self::TESTNET11,
        &Self::SIMULATOR0,
        &Self::REGTEST,
    ];

    /// The network called `name`.
    pub fn by_name(name: &str) -> Option<&'static ChiaNetwork> {
        Self::ALL.into_iter().find(|n| n.name == name)
    }

    /// A share counts when its required iterations are below this: one signage-point interval
    /// of the pool's sub-slot iterations (chia's `calculate_sp_interval_iters`).
    pub fn iters_limit(&self) -> u64 {
        self.pool_sub_slot_iters / u64::from(self.signage_points_per_sub_slot.max(1))
    }

    /// This network with its share difficulty fixed at `difficulty` (no retarget: the initial,
    /// lowest and highest difficulty are all `difficulty`), as Bitcoin's regtest can switch its
    /// retarget off. Its identity is derived from this one's and the difficulty, so shares of
    /// the two never validate on each other.
    pub fn with_fixed_difficulty(&self, difficulty: u64) -> ChiaNetwork {
        use bitcoin::hashes::{sha256, Hash, HashEngine};
        let difficulty = difficulty.max(1);
        let mut engine = sha256::Hash::engine();
        engine.input(&self.identity);
        engine.input(b"fixed share difficulty");
        engine.input(&difficulty.to_be_bytes());
        let hash = sha256::Hash::from_engine(engine).to_byte_array();
        let mut identity = [0u8; 8];
        identity.copy_from_slice(&hash[..8]);
        ChiaNetwork {
            identity,
            initial_difficulty: difficulty,
            min_difficulty: difficulty,
            max_difficulty: difficulty,
            ..self.clone()
        }
    }

    /// Plot-filter prefix bits at `peak_height` (chia's `calculate_prefix_bits`).
    pub fn plot_filter_prefix_bits(&self, peak_height: u32) -> u8 {
        let reductions = self
            .plot_filter_heights
            .iter()
            .filter(|&&h| peak_height >= h)
            .count();
        self.plot_filter_bits
            .saturating_sub(u8::try_from(reductions).unwrap_or(u8::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_and_names_are_distinct() {
        for (i, a) in ChiaNetwork::ALL.iter().enumerate() {
            assert_eq!(ChiaNetwork::by_name(a.name), Some(*a));
            for b in &ChiaNetwork::ALL[i + 1..] {
                assert_ne!(a.identity, b.identity);
            }
        }
    }

    #[test]
    fn filter_schedules() {
        let m = &ChiaNetwork::MAINNET;
        assert_eq!(m.plot_filter_prefix_bits(0), 9);
        assert_eq!(m.plot_filter_prefix_bits(5_496_000), 8);
        assert_eq!(m.plot_filter_prefix_bits(20_643_000), 5);
        assert_eq!(ChiaNetwork::TESTNET11.plot_filter_prefix_bits(0), 8);
        assert_eq!(ChiaNetwork::TESTNET11.plot_filter_prefix_bits(6_029_568), 7);
        assert_eq!(ChiaNetwork::REGTEST.plot_filter_prefix_bits(u32::MAX), 0);
        assert_eq!(m.iters_limit(), 587_500_000);
    }

    #[test]
    fn fixed_difficulty_is_another_network() {
        let fixed = ChiaNetwork::REGTEST.with_fixed_difficulty(5);
        assert_eq!(
            (
                fixed.initial_difficulty,
                fixed.min_difficulty,
                fixed.max_difficulty
            ),
            (5, 5, 5)
        );
        assert_ne!(fixed.identity, ChiaNetwork::REGTEST.identity);
        assert_ne!(
            fixed.identity,
            ChiaNetwork::REGTEST.with_fixed_difficulty(6).identity
        );
        assert_eq!(fixed, ChiaNetwork::REGTEST.with_fixed_difficulty(5));
        assert_eq!(fixed.name, "regtest");
    }
}
