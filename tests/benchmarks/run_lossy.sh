#!/usr/bin/env bash
# The lossy benchmark in one command: the peers' virtual environment
# (../shared/scripts/install_peers.sh; cheap when already installed) plus
# matplotlib for the plots, a release build of tic, then bench_lossy.py.
#   usage: tests/benchmarks/run_lossy.sh [bench_lossy.py options]   (default --out tests/benchmarks/results)
#   PEERS_PY=/path/to/python skips the installer and uses that interpreter.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

if [ -z "${PEERS_PY:-}" ]; then
  installer=../shared/scripts/install_peers.sh
  venv=${TIC_PEERS:-$HOME/.cache/tic-peers}
  if [ -f "$installer" ] && PEERS_PY=$(bash "$installer" "$venv" | tail -n 1); then
    :
  elif [ -x "$venv/bin/python" ]; then
    echo "run_lossy.sh: install_peers.sh unavailable or failed; using the existing $venv" >&2
    PEERS_PY=$venv/bin/python
  else
    echo "run_lossy.sh: no peers environment; set PEERS_PY to a python with numpy, pysz and sentence-transformers" >&2
    exit 1
  fi
fi
"$PEERS_PY" -c "import matplotlib" 2>/dev/null || "$PEERS_PY" -m pip install -q matplotlib

cargo build --release -p tic-compiler
exec "$PEERS_PY" tests/benchmarks/bench_lossy.py --tic "$root/target/release/tic" "$@"
