#!/usr/bin/env python3
"""Makes chiapos plots and the answers chiapos's own DiskProver gives for them.

Usage: make_plots.py OUT_DIR SPEC... where SPEC is NAME:K:CHALLENGES (e.g. k18a:18:300).
For each spec, OUT_DIR/NAME.plot is plotted by chiapos (skipped when it already exists) and
OUT_DIR/NAME.expected gets one line per challenge:
    challenge_hex -                                 (no proof)
    challenge_hex quality_hex proof_hex [...]       (one quality/proof pair per proof, in order)
Challenges are sha256(NAME || i) for i in 0..CHALLENGES, so the Rust test can recompute them.
"""
import hashlib
import os
import sys
import tempfile

from chiapos import DiskPlotter, DiskProver


def make(out_dir, name, k, count):
    plot = os.path.join(out_dir, name + ".plot")
    expected = os.path.join(out_dir, name + ".expected")
    if not os.path.exists(plot):
        plot_id = hashlib.sha256(b"plotfile test plot " + name.encode()).digest()
        # Memo lengths differ between plots so header parsing sees more than one layout.
        memo = bytes(range(48 + 16 * (k % 4))) if name.endswith("a") else bytes(112)
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            DiskPlotter().create_plot_disk(
                tmp, tmp, tmp, name + ".plot", k, memo, plot_id, 300, 32, 2000, 2, False
            )
            # Tests may ask for the same plot at once: each writes its own file, then renames.
            os.replace(os.path.join(tmp, name + ".plot"), plot)
    if os.path.exists(expected):
        return
    prover = DiskProver(plot)
    lines = []
    for i in range(count):
        challenge = hashlib.sha256(name.encode() + i.to_bytes(4, "big")).digest()
        qualities = prover.get_qualities_for_challenge(challenge)
        if not qualities:
            lines.append(challenge.hex() + " -")
            continue
        parts = [challenge.hex()]
        for index, q in enumerate(qualities):
            parts.append(bytes(q).hex())
            parts.append(bytes(prover.get_full_proof(challenge, index)).hex())
        lines.append(" ".join(parts))
    part = "%s.%d.part" % (expected, os.getpid())
    with open(part, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(part, expected)


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for spec in sys.argv[2:]:
        name, k, count = spec.split(":")
        make(out_dir, name, int(k), int(count))


if __name__ == "__main__":
    main()
