"""A chia simulator root for tests, made offline the way `chia dev sim create` makes one.

    CHIA_ROOT=ROOT python chia_sim.py init ROOT MNEMONIC_FILE FULL_NODE_PORT RPC_PORT DAEMON_PORT

ROOT: the chia root to create (`chia dev sim --root-path PARENT -n NAME` with ROOT=PARENT/NAME);
the plots go to PARENT/simulator/plots, where chia's simulator looks for them (a symbolic link to a
kept directory whose path also ends in `simulator/plots` saves making them again: they depend
only on the key); the key from
MNEMONIC_FILE goes into the keyring under $CHIA_KEYS_ROOT. The ports are set in the root's
config. Unlike `chia dev sim create`, nothing is started: the test runs `chia_daemon` (the
simulator takes its keys from the daemon's keychain) and `chia_full_node_simulator` itself.
Prints one JSON line: chia_root, network, fingerprint, full_node_port, full_node_rpc_port.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


def init(root: Path, mnemonic: str, port: int, rpc_port: int, daemon_port: int) -> None:
    from chia.cmds.sim_funcs import create_chia_directory, generate_plots
    from chia.util.config import load_config, save_config
    from chia.util.keychain import Keychain

    keychain = Keychain()
    sk = keychain.add_key(mnemonic, None)
    fingerprint = sk.get_g1().get_fingerprint()
    (root.parent / "simulator" / "plots").mkdir(parents=True, exist_ok=True)
    create_chia_directory(root, fingerprint, None, None, False, False)
    config = load_config(root, "config.yaml")
    config["self_hostname"] = "127.0.0.1"
    config["daemon_port"] = daemon_port
    config["ui"]["daemon_port"] = daemon_port
    config["full_node"]["port"] = port
    config["full_node"]["rpc_port"] = rpc_port
    config["full_node"]["host"] = "127.0.0.1"
    config["network_overrides"]["config"]["simulator0"]["default_full_node_port"] = port
    save_config(root, "config.yaml", config)
    asyncio.run(generate_plots(config, root, fingerprint, True))
    print(
        json.dumps(
            {
                "chia_root": str(root),
                "network": config["full_node"]["selected_network"],
                "fingerprint": fingerprint,
                "full_node_port": port,
                "full_node_rpc_port": rpc_port,
            }
        ),
        flush=True,
    )


def main() -> None:
    if len(sys.argv) != 7 or sys.argv[1] != "init":
        sys.exit(__doc__)
    _, _, root, mnemonic_file, port, rpc_port, daemon_port = sys.argv
    mnemonic = Path(mnemonic_file).read_text().strip()
    init(Path(root), mnemonic, int(port), int(rpc_port), int(daemon_port))


if __name__ == "__main__":
    main()
