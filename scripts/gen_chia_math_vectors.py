#!/usr/bin/env python3
"""Expected values for Chia's proof-of-space math, computed the way chia-blockchain does it.

Writes two CSV fixtures next to the PoS vectors (sharechain/tests/vectors/chia/):

- iterations.csv: `difficulty_constant_factor, quality_hex, k, difficulty, cc_sp_output_hash_hex,
  iters` with iters from `calculate_iterations_quality` (chia/consensus/pot_iterations.py) and
  `expected_plot_size` (chia/consensus/pos_quality.py), or `overflow` where chia's `uint64(...)`
  would raise.
- plot_filter.csv: `plot_id_hex, challenge_hash_hex, sp_hash_hex, filter_input_hex,
  pos_challenge_hex, leading_zero_bits` (chia/types/blockchain_format/proof_of_space.py), plus
  `og`/`pool` plot-id rows: `kind, pool_key_or_puzzle_hash_hex, plot_public_key_hex, plot_id_hex`.

Pure integer math and hashlib, so it needs nothing installed. Inputs are sha256 of labels.
"""

import hashlib
import os
import sys


def std_hash(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def expected_plot_size(k: int) -> int:
    return ((2 * k) + 1) * (2 ** (k - 1))


def calculate_iterations_quality(factor, quality, size, difficulty, cc_sp_output_hash):
    sp_quality_string = std_hash(quality + cc_sp_output_hash)
    iters = (
        int(difficulty)
        * int(factor)
        * int.from_bytes(sp_quality_string, "big", signed=False)
        // (int(pow(2, 256)) * int(expected_plot_size(size)))
    )
    if iters >= 2**64:
        return None  # chia's uint64(...) raises
    return max(iters, 1)


def h(label: str) -> bytes:
    return std_hash(label.encode())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "sharechain/tests/vectors/chia"
    rows = []
    for i in range(40):
        quality = h(f"quality {i}")
        cc_sp = h(f"cc sp {i}")
        k = [18, 25, 32, 33, 35, 38, 50][i % 7]
        difficulty = [1, 7, 1000, 2**20 + 3, 2**40, 2**64 - 1][i % 6]
        factor = [2**67, 2**67, 2**30, 10052721566054, 2**100][i % 5]
        iters = calculate_iterations_quality(factor, quality, k, difficulty, cc_sp)
        rows.append(
            f"{factor}, {quality.hex()}, {k}, {difficulty}, {cc_sp.hex()}, "
            + ("overflow" if iters is None else str(iters))
        )
    with open(os.path.join(out, "iterations.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")

    rows = []
    for i in range(40):
        plot_id, ch, sp = h(f"plot {i}"), h(f"challenge {i}"), h(f"sp {i}")
        filt = std_hash(plot_id + ch + sp)
        bits = bin(int.from_bytes(filt, "big"))[2:].zfill(256)
        zeros = len(bits) - len(bits.lstrip("0"))
        rows.append(f"filter, {plot_id.hex()}, {ch.hex()}, {sp.hex()}, {filt.hex()}, {std_hash(filt).hex()}, {zeros}")
    for i in range(4):
        pool_pk = h(f"pool pk {i}") + h(f"pool pk {i} tail")[:16]
        plot_pk = h(f"plot pk {i}") + h(f"plot pk {i} tail")[:16]
        puzzle_hash = h(f"pool puzzle hash {i}")
        rows.append(f"og, {pool_pk.hex()}, {plot_pk.hex()}, {std_hash(pool_pk + plot_pk).hex()}")
        rows.append(f"pool, {puzzle_hash.hex()}, {plot_pk.hex()}, {std_hash(puzzle_hash + plot_pk).hex()}")
    with open(os.path.join(out, "plot_filter.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
