#!/usr/bin/env bash
# Runs the whole test suite: unit, property, golden-vector and integration tests (loopback only).
set -euo pipefail
cd "$(dirname "$0")/.."
P2POOL_TEST_DEPS=1 scripts/setup.sh
. scripts/env.sh
# Benchmarks run once as smoke tests (small inputs), then the test suites.
cargo test --workspace --benches "$@"
cargo test --workspace --lib --bins --tests "$@"
