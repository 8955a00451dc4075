# Sourced by the scripts: keeps build output outside the work tree so it survives a fresh checkout.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/p2pool-rs/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"

# Real third-party programs for the tests (Bitcoin Core, pooler cpuminer, ckpool), when this
# machine has them: tests read their paths from these variables and say "skipped" without them.
for tools in "$(pwd)/../shared/tools/bin" /work/shared/tools/bin; do
  if [ -d "$tools" ]; then
    [ -x "$tools/bitcoind" ] && export BITCOIND="${BITCOIND:-$tools/bitcoind}"
    [ -x "$tools/minerd" ] && export MINERD="${MINERD:-$tools/minerd}"
    [ -x "$tools/ckpool" ] && export CKPOOL="${CKPOOL:-$tools/ckpool}"
    break
  fi
done
