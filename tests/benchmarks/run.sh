#!/usr/bin/env bash
# The lossless benchmark in one command: the peers' virtual environment
# (../shared/scripts/install_peers.sh; cheap when already installed), a release
# build of tic, then bench_lossless.py with target/release/tic.
#   usage: tests/benchmarks/run.sh [bench_lossless.py options]   e.g. --out bench-results/lossless
#   PEERS_PY=/path/to/python skips the installer and uses that interpreter.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

if [ -z "${PEERS_PY:-}" ]; then
  installer=../shared/scripts/install_peers.sh
  venv=${TIC_PEERS:-$HOME/.cache/tic-peers}
  if [ ! -f "$installer" ]; then
    echo "run.sh: $installer not found (needs ../shared); set PEERS_PY to a python with zipnn and lmzip" >&2
    exit 1
  fi
  if ! PEERS_PY=$(bash "$installer" "$venv" | tail -n 1); then
    # Offline, say: an environment that is already there still does the job.
    [ -x "$venv/bin/python" ] || exit 1
    echo "run.sh: install_peers.sh failed; using the existing $venv" >&2
    PEERS_PY=$venv/bin/python
  fi
fi

cargo build --release -p tic-compiler -p tic-tests --bins
exec "$PEERS_PY" tests/benchmarks/bench_lossless.py --tic "$root/target/release/tic" "$@"
