#!/usr/bin/env bash
# The main job on the example model shipped in examples/model: make a signing
# key, compile (signed), inspect, verify, decompress, and check that every
# restored file is byte-for-byte the original.
#   usage: bash examples/demo.sh [WORKDIR]     (default: a new temporary dir)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cargo build --release -q -p tic-compiler --manifest-path "$root/Cargo.toml"
tic="$root/target/release/tic"

set -x
"$tic" keygen -o "$work/signing" --force
"$tic" compile --sign "$work/signing.key" "$root/examples/model" -o "$work/model.tic" --force
"$tic" inspect "$work/model.tic"
"$tic" verify "$work/model.tic" --trusted-key "$work/signing.pub"
"$tic" decompress "$work/model.tic" --trusted-key "$work/signing.pub" -o "$work/restored" --force
set +x

(cd "$root/examples/model" && find . -type f -print0 | sort -z | xargs -0 sha256sum) > "$work/original.sha256"
(cd "$work/restored" && sha256sum -c --quiet "$work/original.sha256")
echo "byte-for-byte identical: $(wc -l < "$work/original.sha256") files restored from $work/model.tic"
