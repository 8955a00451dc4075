#!/usr/bin/env python3
"""Generate Chia proof-of-space v1 test vectors with chiapos (the reference implementation).

Plots a small plot per (k, plot id), asks it for proofs on challenges sha256(u32_be(i)), checks each
proof with chiapos's own `Verifier().validate_proof` and writes one proof a line:

    plot_id_hex, k, challenge_hex, proof_hex, quality_hex

This is the format of `sharechain/tests/vectors/chia/pos_v1_k18.txt` and of `p2pool chia verify`.

Usage: python3 -m pip install chiapos==2.0.12
       scripts/gen_chia_vectors.py [--out DIR] [--k K ...] [--max-proofs N]

Plot ids are sha256 of a label, so the output is reproducible: the same chiapos version gives the
same plot and therefore the same proofs. Each plot checks that mutated proofs are rejected too.
"""

import argparse
import hashlib
import os
import sys
import tempfile

try:
    from chiapos import DiskPlotter, DiskProver, Verifier
except ImportError:
    sys.exit("chiapos is missing: python3 -m pip install chiapos==2.0.12")

# (k, plot-id label, how many challenges to try, stripe size). k 24 and 25 take minutes each;
# their checked-in files were made with `--k 24 --k 25 --max-proofs 16`.
PLOTS = [
    (18, b"p2pool-rs chia vectors k18 a", 40, 4000),
    (18, b"p2pool-rs chia vectors k18 b", 40, 4000),
    (19, b"p2pool-rs chia vectors k19", 40, 8192),
    (20, b"p2pool-rs chia vectors k20", 40, 16000),
    (21, b"p2pool-rs chia vectors k21", 30, 8192),
    (22, b"p2pool-rs chia vectors k22", 30, 8192),
    (23, b"p2pool-rs chia vectors k23", 30, 65536),
    (24, b"p2pool-rs chia vectors k24", 20, 65536),
    (25, b"p2pool-rs chia vectors k25", 20, 65536),
]


def challenge(i: int) -> bytes:
    return hashlib.sha256(i.to_bytes(4, "big")).digest()


def plot_vectors(k, label, n_challenges, stripe, max_proofs, workdir):
    plot_id = hashlib.sha256(label).digest()
    name = f"k{k}-{plot_id.hex()[:8]}.plot"
    path = os.path.join(workdir, name)
    DiskPlotter().create_plot_disk(
        workdir, workdir, workdir, name, k, bytes([1, 2, 3, 4, 5]), plot_id, 300, 0, stripe, 1, False
    )
    prover = DiskProver(path)
    verifier = Verifier()
    lines = []
    for i in range(n_challenges):
        ch = challenge(i)
        for index, quality in enumerate(prover.get_qualities_for_challenge(ch)):
            proof = prover.get_full_proof(ch, index)
            got = verifier.validate_proof(plot_id, k, ch, proof)
            assert got == quality, (k, i, index)
            # chiapos rejects a flipped bit and a wrong plot id as well.
            bad = bytes([proof[0] ^ 0x80]) + proof[1:]
            assert verifier.validate_proof(plot_id, k, ch, bad) is None
            assert verifier.validate_proof(bytes(32), k, ch, proof) is None
            lines.append(f"{plot_id.hex()}, {k}, {ch.hex()}, {proof.hex()}, {bytes(quality).hex()}")
            if len(lines) >= max_proofs:
                break
        if len(lines) >= max_proofs:
            break
    os.remove(path)
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="sharechain/tests/vectors/chia")
    parser.add_argument("--k", type=int, action="append", help="only these k (repeatable)")
    parser.add_argument("--max-proofs", type=int, default=24, help="proofs kept per plot")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    by_k = {}
    with tempfile.TemporaryDirectory() as workdir:
        for k, label, n, stripe in PLOTS:
            if args.k and k not in args.k:
                continue
            by_k.setdefault(k, []).extend(plot_vectors(k, label, n, stripe, args.max_proofs, workdir))
    for k, lines in sorted(by_k.items()):
        # k=18 has its own file of shared golden vectors; these are extra plot ids.
        name = f"pos_v1_k{k}_gen.txt" if k == 18 else f"pos_v1_k{k}.txt"
        with open(os.path.join(args.out, name), "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"{name}: {len(lines)} proofs", file=sys.stderr)


if __name__ == "__main__":
    main()
