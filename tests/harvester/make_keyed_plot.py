#!/usr/bin/env python3
"""Makes k18 chiapos plots whose memos hold real BLS keys, as chia's plotter writes them.

Usage: make_keyed_plot.py OUT_DIR NAME KIND [FARMER_PK POOL_PK] where KIND is `og` (memo = pool
public key, farmer public key, local master secret key) or `contract` (memo = pool contract puzzle
hash, farmer public key, local master secret key); `contract:LABEL` takes another contract puzzle
hash for each label. Keys come from fixed seeds, so a cached plot
stays valid, unless a farmer's public keys are given (hex; the secret key is then unknown). Prints
one JSON object: the plot path, the farmer secret key, the pool public key and the plot key (hex).
"""
import hashlib
import json
import os
import sys
import tempfile

from chia_rs import AugSchemeMPL, G1Element
from chiapos import DiskPlotter


def key(label):
    return AugSchemeMPL.key_gen(hashlib.sha256(b"p2pool harvester test " + label).digest())


def derive(sk, path):
    for index in path:
        sk = AugSchemeMPL.derive_child_sk(sk, index)
    return sk


def main():
    out_dir, name, kind = sys.argv[1], sys.argv[2], sys.argv[3]
    farmer_sk = derive(key(b"farmer"), [12381, 8444, 0, 0])
    pool_sk = derive(key(b"pool"), [12381, 8444, 1, 0])
    local_master = key(b"local " + name.encode())
    local_sk = derive(local_master, [12381, 8444, 3, 0])
    farmer_pk, pool_pk, local_pk = farmer_sk.get_g1(), pool_sk.get_g1(), local_sk.get_g1()
    if len(sys.argv) > 5:
        farmer_pk = G1Element.from_bytes(bytes.fromhex(sys.argv[4]))
        pool_pk = G1Element.from_bytes(bytes.fromhex(sys.argv[5]))
        farmer_sk = None
    plot_pk = local_pk + farmer_pk
    if kind == "og":
        head = bytes(pool_pk)
    else:
        label = kind.split(":", 1)[1].encode() if ":" in kind else b""
        head = hashlib.sha256(b"p2pool harvester test contract" + label).digest()
        taproot_seed = hashlib.sha256(bytes(plot_pk) + bytes(local_pk) + bytes(farmer_pk)).digest()
        plot_pk = plot_pk + AugSchemeMPL.key_gen(taproot_seed).get_g1()
    plot_id = hashlib.sha256(head + bytes(plot_pk)).digest()
    memo = head + bytes(farmer_pk) + bytes(local_master)
    os.makedirs(out_dir, exist_ok=True)
    plot = os.path.join(out_dir, name + ".plot")
    if not os.path.exists(plot):
        with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
            DiskPlotter().create_plot_disk(
                tmp, tmp, tmp, name + ".plot", 18, memo, plot_id, 300, 32, 2000, 2, False
            )
            os.replace(os.path.join(tmp, name + ".plot"), plot)
    print(json.dumps({
        "plot": plot,
        "farmer_sk": bytes(farmer_sk).hex() if farmer_sk else None,
        "pool_pk": bytes(pool_pk).hex(),
        "plot_pk": bytes(plot_pk).hex(),
        "plot_id": plot_id.hex(),
        "pool_contract_puzzle_hash": None if kind == "og" else head.hex(),
    }))


if __name__ == "__main__":
    main()
