#!/usr/bin/env bash
# Runs the pool node. Without arguments: regtest, with the embedded chain (no bitcoind needed).
# Any arguments are passed to `p2pool` (e.g. `scripts/run.sh --network mainnet -a ADDRESS`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
if [ $# -eq 0 ]; then set -- run --network regtest; fi
exec cargo run --release --bin p2pool -- "$@"
