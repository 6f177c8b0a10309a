#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls this script).
#  - installs NVRTC from PyPI (no GPU needed) so the CUDA kernels are compiled
#    by the test suite; CI requires it, elsewhere the kernel test says when it
#    skips;
#  - checks formatting, lints and the API docs' links, then runs every test
#    of the workspace.
# Tests that use the real models in ../shared run when it is present and say
# SKIPPED when it is not.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -f kernels/ci/install_nvrtc.sh ]; then
  if nvrtc_dir=$(bash kernels/ci/install_nvrtc.sh); then
    export LD_LIBRARY_PATH="$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "tests/run.sh: NVRTC from $nvrtc_dir"
  else
    echo "tests/run.sh: could not install NVRTC; kernel compilation will be skipped" >&2
  fi
fi
if [ "${CI:-}" = "true" ]; then
  export TIC_REQUIRE_NVRTC=1
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
# The API docs build without a broken or private link.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps -q
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set -o pipefail
cargo test --workspace --all-targets 2>&1 | tee "$log"
cargo test --workspace --doc 2>&1 | tee -a "$log"
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "\n%d passed, %d failed, %d skipped\n", p, f, s }' "$log"
