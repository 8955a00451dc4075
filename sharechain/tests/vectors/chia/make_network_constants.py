#!/usr/bin/env python3
"""The consensus constants a PoSpace share is judged by, per Chia network, as chia-blockchain
itself builds them (not as the Rust code has them).

- mainnet: `DEFAULT_CONSTANTS` with the mainnet overrides of chia's `initial-config.yaml`.
- testnet11: the same with the testnet11 overrides, through `update_testnet_overrides`, as a
  full node started with `selected_network: testnet11` does.
- simulator0 (`chia dev sim`): chia's `test_constants` (`chia.simulator.block_tools`) with the
  overrides `chia dev sim create` writes for it (a copy of testnet0's, with its own genesis),
  as `start_simulator` builds its `BlockTools`.

Writes `network_constants.csv` next to this script, one `network, name, value` a line, plus the
plot-filter prefix bits chia's `calculate_prefix_bits` gives at a set of peak heights
(`prefix_bits@HEIGHT`) and `sp_interval_iters` for the pool's sub-slot iterations
(`calculate_sp_interval_iters(constants, POOL_SUB_SLOT_ITERS)`, the limit of a pool partial).

Usage: ~/.cache/p2pool-rs/venv-chia/bin/python make_network_constants.py
(the venv `P2POOL_TEST_DEPS=1 scripts/setup.sh` installs: chia-blockchain 2.7.5)
"""

import copy
import importlib.resources
import os

import yaml
from chia.consensus.constants import replace_str_to_bytes
from chia.consensus.default_constants import DEFAULT_CONSTANTS, update_testnet_overrides
from chia.consensus.pot_iterations import calculate_sp_interval_iters
from chia.simulator.block_tools import test_constants
from chia.types.blockchain_format.proof_of_space import calculate_prefix_bits
from chia_rs import PlotParam
from chia_rs.sized_ints import uint8, uint32, uint64

NAMES = [
    "MIN_PLOT_SIZE_V1",
    "MAX_PLOT_SIZE_V1",
    "DIFFICULTY_CONSTANT_FACTOR",
    "POOL_SUB_SLOT_ITERS",
    "NUMBER_ZERO_BITS_PLOT_FILTER_V1",
    "NUM_SPS_SUB_SLOT",
    "NUM_SP_INTERVALS_EXTRA",
    "HARD_FORK_HEIGHT",
    "PLOT_FILTER_128_HEIGHT",
    "PLOT_FILTER_64_HEIGHT",
    "PLOT_FILTER_32_HEIGHT",
]

HEIGHTS = [
    0,
    1,
    3_693_395,
    5_495_999,
    5_496_000,
    6_029_568,
    10_542_000,
    11_075_328,
    15_592_000,
    16_121_088,
    16_121_856,
    20_643_000,
    4_000_000_000,
]


def initial_config():
    text = importlib.resources.files("chia.util").joinpath("initial-config.yaml").read_text()
    return yaml.safe_load(text)


def network(name, config):
    overrides = copy.deepcopy(config["network_overrides"]["constants"].get(name, {}))
    update_testnet_overrides(name, overrides)
    return replace_str_to_bytes(DEFAULT_CONSTANTS, **overrides)


def simulator(config):
    overrides = copy.deepcopy(config["network_overrides"]["constants"]["testnet0"])
    genesis = "eb8c4d20b322be8d9fddbf9412016bdffe9a2901d7edb0e364e94266d0e095f7"
    overrides["GENESIS_CHALLENGE"] = genesis
    overrides["AGG_SIG_ME_ADDITIONAL_DATA"] = genesis
    return replace_str_to_bytes(test_constants, **overrides)


def main():
    config = initial_config()
    networks = {
        "mainnet": network("mainnet", config),
        "testnet11": network("testnet11", config),
        "simulator0": simulator(config),
    }
    v1 = PlotParam.make_v1(uint8(32))
    lines = ["# network, constant, value (chia-blockchain 2.7.5; make_network_constants.py)"]
    for net, constants in networks.items():
        for name in NAMES:
            lines.append(f"{net}, {name}, {int(getattr(constants, name))}")
        pool = uint64(constants.POOL_SUB_SLOT_ITERS)
        lines.append(f"{net}, sp_interval_iters, {int(calculate_sp_interval_iters(constants, pool))}")
        for h in HEIGHTS:
            bits = calculate_prefix_bits(constants, uint32(h), v1)
            lines.append(f"{net}, prefix_bits@{h}, {bits}")
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "network_constants.csv")
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines) - 1} constants to {out}")


if __name__ == "__main__":
    main()
