#!/usr/bin/env bash
# Installs what building and testing p2pool-rs needs on a fresh Debian machine:
# cmake and Boost headers (Bitcoin Core's validation engine is compiled by the `bitcoinkernel`
# crate), plus the test-only tools. Safe to run again: it installs only what is missing.
set -euo pipefail

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
[ -e /usr/include/boost/version.hpp ] || need_apt+=(libboost-dev)
if [ "${P2POOL_TEST_DEPS:-0}" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  # Runtime libraries of the real Bitcoin Core, cpuminer and ckpool the tests run when present.
  for lib in libzmq5:libzmq.so.5 libcurl4:libcurl.so.4 libjansson4:libjansson.so.4; do
    ldconfig -p | grep -q "${lib#*:}" || need_apt+=("${lib%%:*}")
  done
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup: installing ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ "${P2POOL_TEST_DEPS:-0}" = 1 ]; then
  if ! python3 -c 'import chiapos' >/dev/null 2>&1; then
    echo "setup: installing chiapos (reference verifier for the Chia tests and benchmark)" >&2
    python3 -m pip install -q 'chiapos==2.0.12' || echo "setup: chiapos unavailable; tests that compare against it use checked-in vectors" >&2
  fi
fi

if [ "${P2POOL_TEST_DEPS:-0}" = 1 ]; then
  # plotfile's tests plot with chiapos and read through a local S3 server (moto); a venv outside
  # the tree keeps both away from the system Python. Without it those tests say "skipped".
  venv="$HOME/.cache/p2pool-rs/venv-plots"
  if ! "$venv/bin/python" -c 'import chiapos, moto' >/dev/null 2>&1; then
    echo "setup: installing chiapos and moto into $venv (plot-reading tests)" >&2
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q 'chiapos==2.0.12' 'moto[server]'; } ||
      echo "setup: venv for plot tests unavailable; those tests will be skipped" >&2
  fi
fi

if [ "${P2POOL_TEST_DEPS:-0}" = 1 ]; then
  # The harvester tests plot with real BLS keys in the memo (chia_rs, in the plotting venv), and
  # may run chia-blockchain's own farmer (its own venv, so its pins stay away from the plot tools).
  venv="$HOME/.cache/p2pool-rs/venv-plots"
  if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c 'import chia_rs' >/dev/null 2>&1; then
    echo "setup: installing chia_rs into $venv (harvester tests)" >&2
    "$venv/bin/pip" install -q chia_rs || echo "setup: chia_rs unavailable; the harvester session test will be skipped" >&2
  fi
  # The same venv runs the private test network (tests/chia_testnet: chia's full node and
  # Timelord; the VDF clients need only chiavdf, which chia-blockchain depends on).
  venv="$HOME/.cache/p2pool-rs/venv-chia"
  if ! "$venv/bin/python" -c 'import chia.farmer, chia.timelord, chiavdf, chiapos' >/dev/null 2>&1; then
    echo "setup: installing chia-blockchain 2.7.5 into $venv (about 80 s)" >&2
    { [ -x "$venv/bin/python" ] || python3 -m venv "$venv"; } &&
      "$venv/bin/pip" install -q 'chia-blockchain==2.7.5' ||
      echo "setup: chia-blockchain unavailable; tests against chia's farmer will be skipped" >&2
  fi
fi
