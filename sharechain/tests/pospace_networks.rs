//! The Chia networks' consensus constants as chia-blockchain 2.7.5 builds them
//! (`tests/vectors/chia/network_constants.csv`, written by `make_network_constants.py` from
//! chia's own `DEFAULT_CONSTANTS`, `initial-config.yaml` overrides and simulator constants).

use std::collections::HashMap;

use sharechain::pospace_share::ChiaNetwork;

fn constants() -> HashMap<(String, String), u128> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/chia/network_constants.csv");
    std::fs::read_to_string(path)
        .expect("vector")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            (
                (f[0].to_owned(), f[1].to_owned()),
                f[2].parse().expect("number"),
            )
        })
        .collect()
}

#[test]
fn chia_networks_match_chia_blockchain() {
    let c = constants();
    for network in [
        &ChiaNetwork::MAINNET,
        &ChiaNetwork::TESTNET11,
        &ChiaNetwork::SIMULATOR0,
    ] {
        let get = |name: &str| {
            *c.get(&(network.name.to_owned(), name.to_owned()))
                .unwrap_or_else(|| panic!("{} {name} in the vector", network.name))
        };
        let n = network.name;
        assert_eq!(u128::from(network.min_k), get("MIN_PLOT_SIZE_V1"), "{n}");
        assert_eq!(u128::from(network.max_k), get("MAX_PLOT_SIZE_V1"), "{n}");
        assert_eq!(
            network.difficulty_constant_factor,
            get("DIFFICULTY_CONSTANT_FACTOR"),
            "{n}"
        );
        assert_eq!(
            u128::from(network.pool_sub_slot_iters),
            get("POOL_SUB_SLOT_ITERS"),
            "{n}"
        );
        assert_eq!(
            u128::from(network.plot_filter_bits),
            get("NUMBER_ZERO_BITS_PLOT_FILTER_V1"),
            "{n}"
        );
        assert_eq!(
            u128::from(network.signage_points_per_sub_slot),
            get("NUM_SPS_SUB_SLOT"),
            "{n}"
        );
        assert_eq!(
            u128::from(network.iters_limit()),
            get("sp_interval_iters"),
            "{n}"
        );
        let heights: Vec<u128> = network
            .plot_filter_heights
            .iter()
            .map(|&h| u128::from(h))
            .collect();
        assert_eq!(
            heights,
            [
                "HARD_FORK_HEIGHT",
                "PLOT_FILTER_128_HEIGHT",
                "PLOT_FILTER_64_HEIGHT",
                "PLOT_FILTER_32_HEIGHT"
            ]
            .map(get),
            "{n}"
        );
        let mut checked = 0;
        for ((net, name), bits) in &c {
            let Some(height) = name.strip_prefix("prefix_bits@") else {
                continue;
            };
            if net != n {
                continue;
            }
            let height: u32 = height.parse().expect("height");
            assert_eq!(
                u128::from(network.plot_filter_prefix_bits(height)),
                *bits,
                "{n} at peak height {height}"
            );
            checked += 1;
        }
        assert!(checked >= 10, "{n}: {checked} heights");
    }
}
