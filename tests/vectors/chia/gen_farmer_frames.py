#!/usr/bin/env python3
"""Writes farmer_frames.json: the messages a farmer sends a harvester, encoded by
chia-blockchain's own classes (`chia.protocols.*`, `Message`), with the values they hold.
`tests/chia_vectors.rs` builds the same messages with the node's code and compares bytes.

Run with chia-blockchain 2.7.5's venv: ~/.cache/p2pool-rs/venv-chia/bin/python
tests/vectors/chia/gen_farmer_frames.py > tests/vectors/chia/farmer_frames.json
"""
import hashlib
import json

from chia_rs import AugSchemeMPL
from chia_rs.sized_ints import uint8, uint16, uint32, uint64
from chia_rs.sized_bytes import bytes32

from chia.protocols.harvester_protocol import (
    HarvesterHandshake,
    NewSignagePointHarvester2,
    PlotSyncIdentifier,
    PlotSyncResponse,
    PoolDifficulty,
    RequestSignatures,
)
from chia.protocols.outbound_message import Message, NodeType
from chia.protocols.protocol_message_types import ProtocolMessageTypes as T
from chia.protocols.shared_protocol import Handshake
from chia.util.keychain import mnemonic_to_seed
from chia.wallet.derive_keys import master_sk_to_farmer_sk, master_sk_to_pool_sk

MNEMONIC = "abandon " * 11 + "about"


def h(label):
    return bytes32(hashlib.sha256(label.encode()).digest())


def frame(msg_type, payload, msg_id=None):
    return bytes(Message(uint8(msg_type.value), None if msg_id is None else uint16(msg_id), bytes(payload))).hex()


def main():
    out = {}
    values = {
        "network_id": "regtest",
        "protocol_version": "0.0.38",
        "software_version": "p2pool-rs 0.1.0",
        "server_port": 0,
    }
    hs = Handshake(
        values["network_id"], values["protocol_version"], values["software_version"],
        uint16(values["server_port"]), uint8(NodeType.FARMER.value),
        [(uint16(1), "1"), (uint16(2), "1"), (uint16(3), "1")],
    )
    out["handshake"] = {"values": values, "frame": frame(T.handshake, hs)}

    master = AugSchemeMPL.key_gen(mnemonic_to_seed(MNEMONIC))
    farmer_pk = master_sk_to_farmer_sk(master).get_g1()
    pool_pk = master_sk_to_pool_sk(master).get_g1()
    out["harvester_handshake"] = {
        "values": {"mnemonic": MNEMONIC, "farmer_pk": bytes(farmer_pk).hex(), "pool_pk": bytes(pool_pk).hex()},
        "frame": frame(T.harvester_handshake, HarvesterHandshake([farmer_pk], [pool_pk])),
    }

    sp = {
        "challenge_hash": h("challenge").hex(),
        "sp_hash": h("signage point").hex(),
        "signage_point_index": 7,
        "peak_height": 450000003,
        "difficulty": 5,
        "sub_slot_iters": 32768,
        "contracts": [h("contract a").hex(), h("contract b").hex()],
    }
    for contracts in (sp["contracts"], []):
        message = NewSignagePointHarvester2(
            bytes32.fromhex(sp["challenge_hash"]), uint64(sp["difficulty"]), uint64(sp["sub_slot_iters"]),
            uint8(sp["signage_point_index"]), bytes32.fromhex(sp["sp_hash"]),
            [PoolDifficulty(uint64(sp["difficulty"]), uint64(sp["sub_slot_iters"]), bytes32.fromhex(c)) for c in contracts],
            uint32(sp["peak_height"]), uint32(0), None,
        )
        name = "new_signage_point_harvester" + ("" if contracts else "_og_only")
        out[name] = {"values": dict(sp, contracts=contracts), "frame": frame(T.new_signage_point_harvester, message)}

    rs = {
        "plot_identifier": "00" * 32 + "/plots/plot-k18.plot",
        "challenge_hash": h("challenge").hex(),
        "sp_hash": h("signage point").hex(),
        "message": h("share message").hex(),
        "id": 1,
    }
    request = RequestSignatures(
        rs["plot_identifier"], bytes32.fromhex(rs["challenge_hash"]), bytes32.fromhex(rs["sp_hash"]),
        [bytes32.fromhex(rs["message"])], None, None,
    )
    out["request_signatures"] = {"values": rs, "frame": frame(T.request_signatures, request, rs["id"])}

    ps = {"timestamp": 1765000000, "sync_id": 1765000000, "message_id": 3, "message_type": T.plot_sync_loaded2.value}
    response = PlotSyncResponse(
        PlotSyncIdentifier(uint64(ps["timestamp"]), uint64(ps["sync_id"]), uint64(ps["message_id"])),
        int(ps["message_type"]), None,
    )
    out["plot_sync_response"] = {"values": ps, "frame": frame(T.plot_sync_response, response)}
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
