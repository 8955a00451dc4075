"""Makes a chia root's full node a lone one on 127.0.0.1 for the tests: given peer and RPC ports,
no introducer, no DNS seeders, no outbound peers, no UPnP, logs to a file.

Usage: CHIA_ROOT=DIR python configure_root.py PEER_PORT RPC_PORT [NETWORK]
"""

import os
import sys

import yaml

root = os.environ["CHIA_ROOT"]
path = os.path.join(root, "config", "config.yaml")
with open(path) as f:
    config = yaml.safe_load(f)
node = config["full_node"]
node["port"] = int(sys.argv[1])
node["rpc_port"] = int(sys.argv[2])
node["enable_upnp"] = False
node["target_outbound_peer_count"] = 0
node["dns_servers"] = []
node["introducer_peer"] = None
node["full_node_peers"] = []
node["exempt_peer_networks"] = ["127.0.0.1/32"]
if len(sys.argv) > 3:
    config["selected_network"] = sys.argv[3]
    node["selected_network"] = sys.argv[3]
config["daemon_port"] = 0
with open(path, "w") as f:
    yaml.safe_dump(config, f)
