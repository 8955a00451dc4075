#!/usr/bin/env python3
"""A private, offline Chia network on loopback: chia-blockchain's full node and Timelord, with
VDF clients from `vdf_client.py`, fast enough for tests on a small machine.

Run with the python of the venv holding chia-blockchain (2.7.5):
  chia_testnet.py init ROOT    a chia root in ROOT (`chia init`, the network's constants and
                               config, certificates, a keyring in ROOT/keys)
  chia_testnet.py start ROOT   start the full node, the timelord and its VDF clients (one process
                               group, ended with `stop` or when the caller of `start` dies); wait
                               for the full node's RPC; print one JSON line: chia_root, network,
                               ports, pids
  chia_testnet.py check ROOT   with the network started: chia's own farmer and harvester with k18
                               plots on it, until the peak grows and a block from those plots is
                               in the chain; print one JSON line of figures (signage points per
                               second, time to the first block, CPU use of the network)
  chia_testnet.py restart-full-node ROOT
                               with the network started: end its full node (SIGTERM) and start it
                               again on the same root, database and ports; wait for its RPC
  chia_testnet.py stop ROOT    end everything `start` started
Logs: chia's in ROOT/log/debug.log, the processes' output in ROOT/log/*.out.
"""
import argparse
import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

NETWORK = "p2poolsim"
HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
STATE = "testnet.json"
# The same farmer keys every run, so plots made for them are kept between runs.
MNEMONIC = "abandon " * 11 + "about"


def _hash(label):
    return hashlib.sha256(b"p2pool-rs " + NETWORK.encode() + b" " + label).hexdigest()


GENESIS_CHALLENGE = _hash(b"genesis challenge")

# Small and fast: a 256-bit discriminant, 32768 iterations per sub-slot in 64 signage points
# (512 iterations each), k18 plots, no plot filter, and a difficulty that lets a few k18 plots
# win a block every few tens of signage points.
CONSTANTS = {
    "GENESIS_CHALLENGE": GENESIS_CHALLENGE,
    "AGG_SIG_ME_ADDITIONAL_DATA": GENESIS_CHALLENGE,
    "GENESIS_PRE_FARM_POOL_PUZZLE_HASH": _hash(b"pre-farm pool"),
    "GENESIS_PRE_FARM_FARMER_PUZZLE_HASH": _hash(b"pre-farm farmer"),
    "DISCRIMINANT_SIZE_BITS": 256,
    "NUM_SPS_SUB_SLOT": 64,
    "SUB_SLOT_ITERS_STARTING": 32768,
    "DIFFICULTY_STARTING": 2048,
    "DIFFICULTY_CONSTANT_FACTOR": 2**25,
    "MIN_PLOT_SIZE_V1": 18,
    "NUMBER_ZERO_BITS_PLOT_FILTER_V1": 0,
    "NUMBER_ZERO_BITS_PLOT_FILTER_V2": 0,
    "HARD_FORK_HEIGHT": 0,
}
NETWORK_CONFIG = {"address_prefix": "txch", "default_full_node_port": 58444}


def env(root):
    e = dict(os.environ)
    e["CHIA_ROOT"] = str(root)
    e["CHIA_KEYS_ROOT"] = str(Path(root) / "keys")
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def chia(root, *args, check=True):
    out = subprocess.run(
        [str(BIN / "chia"), *args], env=env(root), stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    if check and out.returncode != 0:
        raise SystemExit(f"chia {' '.join(args)} failed: {out.stdout}{out.stderr}")
    return out.stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def edit_config(root, change):
    from chia.util.config import lock_and_load_config, save_config

    with lock_and_load_config(Path(root), "config.yaml") as config:
        change(config)
        save_config(Path(root), "config.yaml", config)


def load_state(root):
    """The network's settings (`testnet.json`), its supervisor's pid (`supervisor.pid`, written by
    `start`) and its processes (`run.json`, written by the supervisor)."""
    root = Path(root)
    path = root / STATE
    state = json.loads(path.read_text()) if path.exists() else {}
    pid_file = root / "supervisor.pid"
    state["supervisor"] = int(pid_file.read_text()) if pid_file.exists() else None
    run = root / "run.json"
    state["pids"] = json.loads(run.read_text()) if run.exists() else {}
    return state


def _write(path, text):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def save_state(root, state):
    settings = {k: v for k, v in state.items() if k not in ("supervisor", "pids")}
    _write(Path(root) / STATE, json.dumps(settings, indent=1))


# --- init ------------------------------------------------------------------------------------


def cmd_init(args):
    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "log").mkdir(exist_ok=True)
    chia(root, "init")

    def change(c):
        c["self_hostname"] = "127.0.0.1"
        c["selected_network"] = NETWORK
        overrides = c["network_overrides"]
        overrides["constants"][NETWORK] = dict(CONSTANTS)
        overrides["config"][NETWORK] = dict(NETWORK_CONFIG)
        for section in c.values():
            if isinstance(section, dict) and "selected_network" in section:
                section["selected_network"] = NETWORK
        c["logging"]["log_level"] = "INFO"
        for section in c.values():
            if isinstance(section, dict) and "logging" in section:
                section["logging"]["log_level"] = "INFO"
        fn = c["full_node"]
        fn["enable_upnp"] = False
        fn["dns_servers"] = []
        fn["introducer_peer"] = None
        fn["full_node_peers"] = []
        fn["target_outbound_peer_count"] = 0
        fn["target_peer_count"] = 10
        fn["send_uncompact_interval"] = 0
        fn["db_readers"] = 1
        fn["reserved_cores"] = 1
        c["wallet"]["dns_servers"] = []
        tl = c["timelord"]
        tl["vdf_clients"]["ip"] = ["127.0.0.1", "localhost"]
        tl["vdf_server"]["host"] = "127.0.0.1"
        tl["start_rpc_server"] = False
        tl["bluebox_mode"] = False
        c["timelord_launcher"]["host"] = "127.0.0.1"
        c["timelord_launcher"]["process_count"] = 0
        c["harvester"]["start_rpc_server"] = False

    edit_config(root, change)
    save_state(root, {"network": NETWORK, "constants": CONSTANTS})
    print(json.dumps({"chia_root": str(root), "network": NETWORK}))


# --- start / supervise / stop ----------------------------------------------------------------


def _pdeathsig():
    """Children die with their parent (Linux), so a killed supervisor leaves no orphans."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(root, name, argv):
    out = open(Path(root) / "log" / f"{name}.out", "ab")
    return subprocess.Popen(
        argv, env=env(root), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, preexec_fn=_pdeathsig
    )


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmd_supervise(args):
    """The process group leader: starts the network, ends it on SIGTERM or the watched pid's death."""
    root = Path(args.root)
    state = load_state(root)
    ports = state["ports"]
    stopping = []
    restart = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    # `restart-full-node`: the full node alone ends and starts again.
    signal.signal(signal.SIGUSR1, lambda *_: restart.append(1))
    children = {
        "full_node": spawn(root, "full_node", [str(BIN / "chia_full_node")]),
        "timelord": spawn(root, "timelord", [str(BIN / "chia_timelord")]),
    }
    for i in range(args.vdf_clients):
        children[f"vdf_client_{i}"] = spawn(
            root,
            f"vdf_client_{i}",
            [
                sys.executable,
                str(HERE / "vdf_client.py"),
                "127.0.0.1",
                str(ports["timelord_vdf"]),
                str(i),
                "--ips",
                str(args.ips),
            ],
        )
    _write(root / "run.json", json.dumps({name: p.pid for name, p in children.items()}))
    while not stopping:
        if args.watch_pid and not _alive(args.watch_pid):
            break
        if restart:
            restart.clear()
            old = children["full_node"]
            old.terminate()
            try:
                old.wait(timeout=30)
            except subprocess.TimeoutExpired:
                old.kill()
                old.wait()
            print("supervisor: full node restarting", flush=True)
            children["full_node"] = spawn(root, "full_node", [str(BIN / "chia_full_node")])
            _write(root / "run.json", json.dumps({name: p.pid for name, p in children.items()}))
        if any(p.poll() is not None for p in children.values()):
            dead = [n for n, p in children.items() if p.poll() is not None]
            print(f"supervisor: {dead} exited; ending the network", flush=True)
            break
        time.sleep(0.5)
    for p in children.values():
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 15
    for p in children.values():
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return 0


async def _rpc(root, port, call, *args):
    from chia.full_node.full_node_rpc_client import FullNodeRpcClient
    from chia.util.config import load_config

    config = load_config(Path(root), "config.yaml")
    client = await FullNodeRpcClient.create("127.0.0.1", port, Path(root), config)
    try:
        return await asyncio.wait_for(getattr(client, call)(*args), 10)
    finally:
        client.close()
        await client.await_closed()


def blockchain_state(root, port):
    try:
        return asyncio.run(_rpc(root, port, "get_blockchain_state"))
    except Exception:  # noqa: BLE001 - not answering yet
        return None


def log_tails(root, lines=25):
    out = []
    for f in sorted((Path(root) / "log").glob("*")):
        if f.is_file():
            text = f.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {f.name}\n" + "\n".join(text))
    return "\n".join(out)


def cmd_start(args):
    root = Path(args.root).resolve()
    state = load_state(root)
    if "network" not in state:
        raise SystemExit(f"{root} has no test network; run init first")
    if state.get("supervisor") and _alive(state["supervisor"]):
        raise SystemExit(f"the network in {root} is running (pid {state['supervisor']}); stop it first")
    ports = {
        "full_node": free_port(),
        "full_node_rpc": free_port(),
        "timelord_vdf": free_port(),
        "timelord": free_port(),
        "farmer": free_port(),
        "farmer_rpc": free_port(),
        "harvester": free_port(),
        "daemon": free_port(),
    }

    def change(c):
        c["daemon_port"] = ports["daemon"]
        c["ui"]["daemon_port"] = ports["daemon"]
        c["network_overrides"]["config"][NETWORK]["default_full_node_port"] = ports["full_node"]
        fn = c["full_node"]
        fn["port"] = ports["full_node"]
        fn["rpc_port"] = ports["full_node_rpc"]
        node = [{"host": "127.0.0.1", "port": ports["full_node"]}]
        c["timelord"]["full_node_peers"] = node
        c["timelord"]["vdf_server"]["port"] = ports["timelord_vdf"]
        c["timelord"]["port"] = ports["timelord"]
        c["timelord_launcher"]["port"] = ports["timelord_vdf"]
        c["farmer"]["full_node_peers"] = node
        c["farmer"]["port"] = ports["farmer"]
        c["farmer"]["rpc_port"] = ports["farmer_rpc"]
        c["harvester"]["farmer_peers"] = [{"host": "127.0.0.1", "port": ports["farmer"]}]
        c["harvester"]["port"] = ports["harvester"]

    edit_config(root, change)
    state["ports"] = ports
    save_state(root, state)
    (root / "run.json").unlink(missing_ok=True)
    watch = args.watch_pid if args.watch_pid is not None else os.getppid()
    log = open(root / "log" / "supervisor.out", "ab")
    sup = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "supervise",
            str(root),
            "--watch-pid",
            str(watch),
            "--ips",
            str(args.ips),
            "--vdf-clients",
            str(args.vdf_clients),
        ],
        env=env(root),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _write(root / "supervisor.pid", str(sup.pid))
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if sup.poll() is not None:
            break
        bc = blockchain_state(root, ports["full_node_rpc"])
        if bc is not None:
            state = load_state(root)
            print(
                json.dumps(
                    {
                        "chia_root": str(root),
                        "network": NETWORK,
                        "full_node_peer_port": ports["full_node"],
                        "full_node_rpc_port": ports["full_node_rpc"],
                        "timelord_vdf_port": ports["timelord_vdf"],
                        "farmer_port": ports["farmer"],
                        "farmer_rpc_port": ports["farmer_rpc"],
                        "supervisor_pid": sup.pid,
                        "pids": state.get("pids", {}),
                        "keys_root": str(root / "keys"),
                    }
                ),
                flush=True,
            )
            return 0
        time.sleep(1)
    print(f"the full node's RPC did not answer within {args.timeout} s\n{log_tails(root)}", file=sys.stderr)
    stop(root)
    return 1


def stop(root):
    state = load_state(root)
    pid = state.get("supervisor")
    if not pid:
        return
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _group_members(pid):
            time.sleep(0.2)
    if _group_members(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for child in state.get("pids", {}).values():  # anything that left the group
        if _alive(child):
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
    (Path(root) / "supervisor.pid").unlink(missing_ok=True)


def cmd_restart_full_node(args):
    root = Path(args.root).resolve()
    state = load_state(root)
    if not state.get("supervisor") or not _alive(state["supervisor"]):
        raise SystemExit(f"the network in {root} is not running; start it first")
    old = state["pids"].get("full_node")
    os.kill(state["supervisor"], signal.SIGUSR1)
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        pid = load_state(root)["pids"].get("full_node")
        if pid != old and blockchain_state(root, state["ports"]["full_node_rpc"]) is not None:
            print(json.dumps({"full_node_pid": pid, "previous_pid": old}), flush=True)
            return 0
        time.sleep(1)
    print(f"the restarted full node's RPC did not answer within {args.timeout} s\n{log_tails(root)}", file=sys.stderr)
    return 1


def cmd_stop(args):
    stop(Path(args.root).resolve())
    return 0


def _group_members(pgid):
    members = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(d.name))
    return members


def _cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


# --- check -----------------------------------------------------------------------------------


def _key_line(text, prefix):
    for line in text.splitlines():
        if line.strip().startswith(prefix):
            return line.split(":", 1)[1].strip()
    raise SystemExit(f"no {prefix!r} in `chia keys show`: {text}")


async def _farmer_sps(root, port):
    from chia.farmer.farmer_rpc_client import FarmerRpcClient
    from chia.util.config import load_config

    config = load_config(Path(root), "config.yaml")
    client = await FarmerRpcClient.create("127.0.0.1", port, Path(root), config)
    try:
        return await asyncio.wait_for(client.get_signage_points(), 10)
    finally:
        client.close()
        await client.await_closed()


async def _blocks(root, port, start, end):
    from chia.full_node.full_node_rpc_client import FullNodeRpcClient
    from chia.util.config import load_config

    config = load_config(Path(root), "config.yaml")
    client = await FullNodeRpcClient.create("127.0.0.1", port, Path(root), config)
    try:
        return await asyncio.wait_for(client.get_all_block(start, end), 20)
    finally:
        client.close()
        await client.await_closed()


def cmd_check(args):
    from chia.util.bech32m import encode_puzzle_hash

    root = Path(args.root).resolve()
    state = load_state(root)
    if not state.get("supervisor") or not _alive(state["supervisor"]):
        raise SystemExit(f"the network in {root} is not running; start it first")
    ports = state["ports"]

    if "Fingerprint" not in chia(root, "keys", "show", check=False):
        mnemonic = root / "keys" / "mnemonic.txt"
        mnemonic.parent.mkdir(parents=True, exist_ok=True)
        mnemonic.write_text(MNEMONIC + "\n")
        chia(root, "keys", "add", "-f", str(mnemonic), "-l", "testnet")
    shown = chia(root, "keys", "show")
    farmer_pk = _key_line(shown, "Farmer public key (m/12381/8444/0/0)")
    pool_pk = _key_line(shown, "Pool public key (m/12381/8444/1/0)")
    # A directory of their own: every plot the harvester farms is one of these.
    plot_dir = Path(args.plot_dir or Path.home() / f".cache/p2pool-rs/plots/testnet-{farmer_pk[:16]}")
    plot_ids = set()
    t0 = time.monotonic()
    for name in [f"t{i}" for i in range(args.plots)]:
        out = subprocess.run(
            [
                sys.executable,
                str(HERE.parent / "harvester" / "make_keyed_plot.py"),
                str(plot_dir),
                name,
                "og",
                farmer_pk,
                pool_pk,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        made = json.loads(out.stdout.strip().splitlines()[-1])
        plot_ids.add(plot_id_og(bytes.fromhex(pool_pk), bytes.fromhex(made["plot_pk"])))
    plotting = time.monotonic() - t0
    target = encode_puzzle_hash(bytes.fromhex(_hash(b"farmer target")), "txch")

    def change(c):
        c["farmer"]["xch_target_address"] = target
        c["pool"]["xch_target_address"] = target
        c["harvester"]["plot_directories"] = [str(plot_dir)]

    edit_config(root, change)
    cpu0, wall0 = _cpu_seconds(_group_members(state["supervisor"])), time.monotonic()
    # The farmer reads its keys from the keychain through chia's daemon (the network needs none).
    daemon = spawn(root, "check_daemon", [str(BIN / "chia_daemon")])
    farmer = spawn(root, "check_farmer", [str(BIN / "chia_farmer")])
    harvester = spawn(root, "check_harvester", [str(BIN / "chia_harvester")])
    procs = (daemon, farmer, harvester)
    result = None
    try:
        result = _watch(root, ports, plot_ids, args.timeout, procs, args.blocks)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    wall = time.monotonic() - wall0
    cpu = _cpu_seconds(_group_members(state["supervisor"])) - cpu0
    if result is None:
        print(f"no block from the plots within {args.timeout} s\n{log_tails(root)}", file=sys.stderr)
        return 1
    result.update(
        plots=len(plot_ids),
        plotting_s=round(plotting, 1),
        network_cpu_s=round(cpu, 1),
        network_cpu_share=round(cpu / wall, 3),
        wall_s=round(wall, 1),
    )
    print(json.dumps(result), flush=True)
    return 0


def plot_id_og(pool_pk, plot_pk):
    """The id of an OG plot (pool public key), as chia computes it."""
    return hashlib.sha256(bytes(pool_pk) + bytes(plot_pk)).digest()


def _watch(root, ports, plot_ids, timeout, procs, blocks):
    """Signage points seen by the farmer and blocks by our plots, until `blocks` of them are in."""
    start = time.monotonic()
    sps = {}
    first_sp = first_block = None
    start_height = None
    ours = 0
    checked = -1
    while time.monotonic() - start < timeout:
        if any(p.poll() is not None for p in procs):
            print("the daemon, farmer or harvester exited", file=sys.stderr)
            return None
        try:
            for sp in asyncio.run(_farmer_sps(root, ports["farmer_rpc"])):
                key = sp["signage_point"]["challenge_chain_sp"]
                if key not in sps:
                    sps[key] = time.monotonic()
                    first_sp = first_sp or sps[key]
        except Exception:  # noqa: BLE001 - the farmer's RPC is not up yet
            pass
        bc = blockchain_state(root, ports["full_node_rpc"])
        peak = bc["peak"].height if bc and bc.get("peak") is not None else None
        if start_height is None and bc is not None:
            start_height = -1 if peak is None else peak
        if peak is not None and peak > checked:
            for block in asyncio.run(_blocks(root, ports["full_node_rpc"], checked + 1, peak + 1)):
                pos = block.reward_chain_block.proof_of_space
                if pos.pool_public_key is not None:
                    if plot_id_og(pos.pool_public_key, pos.plot_public_key) in plot_ids:
                        ours += 1
                        first_block = first_block or time.monotonic()
            checked = peak
        if ours >= blocks and peak is not None and peak > start_height:
            span = max(sps.values()) - min(sps.values()) if len(sps) > 1 else 0
            return {
                "peak_height": peak,
                "start_height": start_height,
                "blocks_by_plots": ours,
                "signage_points": len(sps),
                "sps_per_second": round((len(sps) - 1) / span, 2) if span else None,
                "first_sp_s": round(first_sp - start, 1) if first_sp else None,
                "first_block_s": round(first_block - start, 1),
                "last_block_s": round(time.monotonic() - start, 1),
            }
        time.sleep(1)
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("init")
    p.add_argument("root")
    p.set_defaults(fn=cmd_init)
    for name, fn in (("start", cmd_start), ("supervise", cmd_supervise)):
        p = sub.add_parser(name)
        p.add_argument("root")
        p.add_argument("--ips", type=float, default=512, help="VDF iterations per second per chain (0: no limit)")
        p.add_argument("--vdf-clients", type=int, default=3)
        p.add_argument("--watch-pid", type=int, default=None, help="end when this process dies (default: the caller)")
        p.add_argument("--timeout", type=float, default=120)
        p.set_defaults(fn=fn)
    p = sub.add_parser("check")
    p.add_argument("root")
    p.add_argument("--plots", type=int, default=3)
    p.add_argument("--plot-dir", default=None)
    p.add_argument("--blocks", type=int, default=3, help="blocks from the plots to wait for")
    p.add_argument("--timeout", type=float, default=300)
    p.set_defaults(fn=cmd_check)
    p = sub.add_parser("restart-full-node")
    p.add_argument("root")
    p.add_argument("--timeout", type=float, default=120)
    p.set_defaults(fn=cmd_restart_full_node)
    p = sub.add_parser("stop")
    p.add_argument("root")
    p.set_defaults(fn=cmd_stop)
    args = parser.parse_args()
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
