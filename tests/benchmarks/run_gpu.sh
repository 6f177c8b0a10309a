#!/usr/bin/env bash
# GPU loading benchmark (tic vs safetensors + PyTorch), on a machine with an
# NVIDIA GPU, PyTorch and the safetensors Python package.
#
#   tests/benchmarks/run_gpu.sh [--bin DIR] [--out DIR] [bench_gpu.py options]
#
# --bin DIR: take `tic` and `tic-gpu-bench` from DIR (a GPU machine without
# Rust: build them elsewhere with `cargo build --release -p tic-compiler -p
# tic-tests --bins` and copy them over); otherwise they are built here.
# NVRTC must be loadable: the CUDA toolkit's lib64 (which has libnvrtc.so)
# is added to LD_LIBRARY_PATH when it exists.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="" out="bench-results/gpu"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$bin" ]; then
  cargo build --release -p tic-compiler -p tic-tests --bins
  bin=target/release
fi
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  if [ -e "$d/libnvrtc.so" ]; then
    export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    break
  fi
done
exec python3 tests/benchmarks/bench_gpu.py --tic "$bin/tic" --bench "$bin/tic-gpu-bench" --out "$out" "${args[@]}"
