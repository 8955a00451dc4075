#!/usr/bin/env python3
"""Generate end-to-end Chia proof-of-space vectors: signage point → plot filter → challenge →
proof → quality → required iterations, the way a farmer and a node compute them.

One k=18 plot (chiapos 2.0.12); for signage points sp_i = sha256("sp" ‖ u32_be(i)) of a fixed
sub-slot challenge hash, the plot's proofs for the derived challenge are recorded with:

    plot_id, k, challenge_hash, sp_hash, filter_zero_bits, challenge, proof, quality, difficulty, iters

(filter_zero_bits: leading zero bits of the plot-filter hash; iters: chia-blockchain's
`calculate_iterations_quality` with DIFFICULTY_CONSTANT_FACTOR 2^67 and cc_sp_output_hash = sp,
or `overflow` where chia's uint64 would raise).

Usage: scripts/gen_chia_sp_vectors.py [OUT_FILE]
"""

import hashlib
import os
import sys
import tempfile

try:
    from chiapos import DiskPlotter, DiskProver, Verifier
except ImportError:
    sys.exit("chiapos is missing: python3 -m pip install chiapos==2.0.12")


def sha(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def iterations(quality: bytes, k: int, difficulty: int, cc_sp: bytes) -> str:
    sp_quality = int.from_bytes(sha(quality + cc_sp), "big")
    size = (2 * k + 1) * 2 ** (k - 1)
    iters = difficulty * 2**67 * sp_quality // (2**256 * size)
    # chia's uint64(...) raises past 64 bits.
    return "overflow" if iters >= 2**64 else str(max(iters, 1))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "sharechain/tests/vectors/chia/sp_k18.csv"
    k = 18
    plot_id = sha(b"p2pool-rs chia signage point vectors")
    challenge_hash = sha(b"p2pool-rs sub-slot challenge")
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        name = "sp.plot"
        DiskPlotter().create_plot_disk(
            workdir, workdir, workdir, name, k, bytes(5), plot_id, 300, 0, 4000, 1, False
        )
        prover = DiskProver(os.path.join(workdir, name))
        for i in range(200):
            sp = sha(b"sp" + i.to_bytes(4, "big"))
            filt = sha(plot_id + challenge_hash + sp)
            bits = bin(int.from_bytes(filt, "big"))[2:].zfill(256)
            zeros = len(bits) - len(bits.lstrip("0"))
            challenge = sha(filt)
            for index, quality in enumerate(prover.get_qualities_for_challenge(challenge)):
                proof = prover.get_full_proof(challenge, index)
                assert Verifier().validate_proof(plot_id, k, challenge, proof) == quality
                difficulty = [1, 1000, 2**30][len(rows) % 3]
                iters = iterations(bytes(quality), k, difficulty, sp)
                rows.append(
                    ", ".join(
                        [plot_id.hex(), str(k), challenge_hash.hex(), sp.hex(), str(zeros),
                         challenge.hex(), proof.hex(), bytes(quality).hex(), str(difficulty),
                         iters]
                    )
                )
            if len(rows) >= 12:
                break
    with open(out, "w") as f:
        f.write("\n".join(rows) + "\n")
    print(f"{out}: {len(rows)} proofs", file=sys.stderr)


if __name__ == "__main__":
    main()
