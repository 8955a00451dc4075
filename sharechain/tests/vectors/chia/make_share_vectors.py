#!/usr/bin/env python3
"""Golden vectors for PoSpace shares, made with Chia's own tools (not with the Rust code).

Plots: k18 plots written by chiapos's DiskPlotter with real BLS keys, as chia does it:
local key + farmer key -> plot public key = local_pk + farmer_pk; plot id = sha256(pool_pk ||
plot_pk) for an OG plot, sha256(pool_contract_puzzle_hash || plot_pk) for a pool plot (checked
against chia_rs `ProofOfSpace.compute_plot_id`). Proofs come from chiapos's DiskProver and are
checked with its Verifier; `ProofOfSpace` is built and serialized by chia_rs; the share message
is signed by the harvester (local key) and the farmer (farmer key) with chia_rs AugSchemeMPL,
each prepending the plot public key, and aggregated, exactly as a harvester and farmer answer
`request_signatures`.

Share encoding (big-endian, Chia Streamable conventions), share-format version 1:
    u8 version | Option<bytes32> parent share | bytes32 challenge_hash | bytes32 sp_hash |
    u8 signage_point_index | u32 peak_height | ProofOfSpace | bytes32 payout_puzzle_hash |
    u64 difficulty | u64 timestamp | G2 signature (96)
message = sha256(DOMAIN || network identity (8) || everything before the signature)
share hash = sha256(all of it)

Writes, next to this script:
  pospace_shares.csv      one share per line: name, network, share hex, proof-of-space hex (chia_rs),
                  plot id, message, share hash, quality, required iterations (or an error name
                  for shares that decoding must refuse)
  pospace_share_proofs_k18.csv  many (signage point number, proof) pairs of one OG plot for chains built in
                  tests and the benchmark (regtest signage point grid, see `sp_of` below)

Usage: ~/.cache/p2pool-rs/venv-chia/bin/python make_share_vectors.py [PROOFS]
(venv: python3 -m venv ~/.cache/p2pool-rs/venv-chia &&
       ~/.cache/p2pool-rs/venv-chia/bin/pip install chiapos==2.0.12 chia_rs)
"""

import hashlib
import os
import sys
import tempfile

from chiapos import DiskPlotter, DiskProver, Verifier
from chia_rs import AugSchemeMPL, ProofOfSpace

DOMAIN = b"p2pool-rs pospace share"
K = 18

# Network constants the vectors are made for (mirrors sharechain::pospace_share::params).
NETWORKS = {
    "mainnet": dict(
        identity=bytes.fromhex("7c1e9a4f2b8d6e03"),
        dcf=2**67,
        pool_sub_slot_iters=37_600_000_000,
        filter_base=9,
        filter_heights=[5_496_000, 10_542_000, 15_592_000, 20_643_000],
        initial_difficulty=1,
    ),
    "testnet11": dict(
        identity=bytes.fromhex("2f5a81c4d97e3b60"),
        dcf=10052721566054,
        pool_sub_slot_iters=37_600_000_000,
        filter_base=9,
        filter_heights=[0, 6_029_568, 11_075_328, 16_121_856],
        initial_difficulty=1,
    ),
    "regtest": dict(
        identity=bytes.fromhex("4b8c02f6e1a9d573"),
        dcf=2**25,
        pool_sub_slot_iters=32768,
        filter_base=0,
        filter_heights=[],
        initial_difficulty=1,
    ),
}


def sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def prefix_bits(net: dict, height: int) -> int:
    return max(0, net["filter_base"] - sum(1 for h in net["filter_heights"] if height >= h))


def passes_filter(bits: int, filt: bytes) -> bool:
    return bits == 0 or int.from_bytes(filt, "big") >> (256 - bits) == 0


def iterations(net: dict, quality: bytes, k: int, difficulty: int, sp: bytes) -> int:
    # chia-blockchain pot_iterations.calculate_iterations_quality
    sp_quality = int.from_bytes(sha(quality + sp), "big")
    size = (2 * k + 1) * 2 ** (k - 1)
    return max(1, difficulty * net["dcf"] * sp_quality // (2**256 * size))


def sp_of(n: int):
    """Regtest signage point grid: 64 signage points per sub-slot, a block every 2."""
    return sha(b"cc" + u32(n // 64)), sha(b"sp" + u32(n)), n % 64, n // 2


class Plot:
    def __init__(self, workdir, name, seed, pool_contract):
        self.local_sk = AugSchemeMPL.key_gen(sha(b"local " + seed))
        self.farmer_sk = AugSchemeMPL.key_gen(sha(b"farmer " + seed))
        self.pool_sk = AugSchemeMPL.key_gen(sha(b"pool " + seed))
        self.plot_pk = self.local_sk.get_g1() + self.farmer_sk.get_g1()
        if pool_contract:
            self.pool_pk, self.contract = None, sha(b"contract " + seed)
            self.plot_id = sha(self.contract + bytes(self.plot_pk))
        else:
            self.pool_pk, self.contract = self.pool_sk.get_g1(), None
            self.plot_id = sha(bytes(self.pool_pk) + bytes(self.plot_pk))
        DiskPlotter().create_plot_disk(
            workdir, workdir, workdir, name, K, bytes(5), self.plot_id, 300, 0, 4000, 1, False
        )
        self.prover = DiskProver(os.path.join(workdir, name))

    def proof(self, challenge_hash, sp):
        challenge = sha(sha(self.plot_id + challenge_hash + sp))
        qualities = self.prover.get_qualities_for_challenge(challenge)
        if not qualities:
            return None
        proof = self.prover.get_full_proof(challenge, 0)
        quality = Verifier().validate_proof(self.plot_id, K, challenge, proof)
        assert quality == qualities[0]
        return challenge, bytes(proof), bytes(quality)

    def pos(self, challenge, proof, size=K, version=0):
        pos = ProofOfSpace(challenge, self.pool_pk, self.contract, self.plot_pk, version, 0, 0, 0,
                           size, proof)
        assert pos.compute_plot_id() == self.plot_id
        return pos

    def sign(self, message):
        # Harvester and farmer halves, each prepending the plot key (chia's harvester/farmer API).
        return AugSchemeMPL.aggregate([
            AugSchemeMPL.sign(self.local_sk, message, self.plot_pk),
            AugSchemeMPL.sign(self.farmer_sk, message, self.plot_pk),
        ])


def share_bytes(net, prev, ch, sp, index, peak, pos_bytes, payout, difficulty, ts, plot):
    unsigned = (bytes([1]) + (b"\x01" + prev if prev else b"\x00") + ch + sp + bytes([index])
                + u32(peak) + pos_bytes + payout + u64(difficulty) + u64(ts))
    message = sha(DOMAIN + net["identity"] + unsigned)
    sig = plot.sign(message)
    assert AugSchemeMPL.verify(plot.plot_pk, message, sig)
    full = unsigned + bytes(sig)
    return full, message


def find_sp(plot, net, peak, tag):
    """A signage point (grinding sp hashes) whose filter the plot passes and that has a proof."""
    ch = sha(b"challenge " + tag)
    for i in range(1_000_000):
        sp = sha(b"sp " + tag + u32(i))
        if not passes_filter(prefix_bits(net, peak), sha(plot.plot_id + ch + sp)):
            continue
        got = plot.proof(ch, sp)
        if got:
            return ch, sp, got
    raise SystemExit("no signage point found")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    n_proofs = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        og = Plot(workdir, "og.plot", b"og", pool_contract=False)
        nft = Plot(workdir, "nft.plot", b"nft", pool_contract=True)
        payout = sha(b"payout puzzle hash")

        def good(name, net_name, plot, peak, tag, prev=None):
            net = NETWORKS[net_name]
            ch, sp, (challenge, proof, quality) = find_sp(plot, net, peak, tag)
            pos = plot.pos(challenge, proof)
            diff = net["initial_difficulty"]
            full, message = share_bytes(net, prev, ch, sp, 7, peak, bytes(pos), payout, diff,
                                        1_700_000_000, plot)
            iters = iterations(net, quality, K, diff, sp)
            assert iters < net["pool_sub_slot_iters"] // 64
            rows.append([name, net_name, full.hex(), bytes(pos).hex(), plot.plot_id.hex(),
                         message.hex(), sha(full).hex(), quality.hex(), str(iters)])
            return ch, sp, challenge, proof

        good("testnet11_og", "testnet11", og, 1000, b"t11-og")
        good("testnet11_pool_contract", "testnet11", nft, 7_000_000, b"t11-nft")
        ch, sp, challenge, proof = good("regtest_og", "regtest", og, 50, b"reg-og")
        good("regtest_child", "regtest", og, 60, b"reg-child", prev=sha(b"some parent"))

        def bad(name, net_name, pos, error):
            net = NETWORKS[net_name]
            full, message = share_bytes(net, None, ch, sp, 7, 50, bytes(pos), payout, 1,
                                        1_700_000_000, og)
            rows.append([name, net_name, full.hex(), bytes(pos).hex(), "", message.hex(),
                         sha(full).hex(), "", error])

        # What decoding must refuse, serialized by chia_rs itself.
        both = ProofOfSpace(challenge, og.pool_pk, sha(b"x"), og.plot_pk, 0, 0, 0, 0, K, proof)
        bad("both_pool_key_and_contract", "regtest", both, "PoolTarget")
        neither = ProofOfSpace(challenge, None, None, og.plot_pk, 0, 0, 0, 0, K, proof)
        bad("neither_pool_key_nor_contract", "regtest", neither, "PoolTarget")
        bad("k17", "regtest", og.pos(challenge, proof[:17 * 8], size=17), "PlotSize")
        bad("k18_on_mainnet", "mainnet", og.pos(challenge, proof), "PlotSize")
        bad("oversize_proof", "regtest", og.pos(challenge, proof + bytes(8)), "ProofLength")
        bad("short_proof", "regtest", og.pos(challenge, proof[:-1]), "ProofLength")
        v2 = ProofOfSpace(challenge, og.pool_pk, None, og.plot_pk, 1, 3, 0, 2, 0, proof)
        bad("v2_proof", "regtest", v2, "V2Proof")

        with open(os.path.join(here, "pospace_shares.csv"), "w") as f:
            f.write("# name, network, share, proof_of_space, plot_id, message, share_hash, "
                    "quality, iters|decode error\n")
            for r in rows:
                f.write(", ".join(r) + "\n")

        # Proofs of the OG plot on the regtest signage point grid, for chains and benchmarks.
        lines = []
        n = 0
        while len(lines) < n_proofs:
            ch, sp, _, _ = sp_of(n)
            got = og.proof(ch, sp)
            if got:
                lines.append(f"{n}, {got[1].hex()}")
            n += 1
        with open(os.path.join(here, "pospace_share_proofs_k18.csv"), "w") as f:
            f.write("# OG k18 plot on the regtest signage point grid: n, proof\n")
            f.write(f"# local_sk {bytes(og.local_sk).hex()}\n")
            f.write(f"# farmer_sk {bytes(og.farmer_sk).hex()}\n")
            f.write(f"# pool_pk {bytes(og.pool_pk).hex()}\n")
            f.write(f"# plot_id {og.plot_id.hex()}\n")
            f.write("\n".join(lines) + "\n")
    print(f"{len(rows)} shares, {len(lines)} proofs", file=sys.stderr)


if __name__ == "__main__":
    main()
