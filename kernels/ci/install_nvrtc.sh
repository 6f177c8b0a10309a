#!/usr/bin/env bash
# Installs NVIDIA's NVRTC runtime compiler (the PyPI wheel
# nvidia-cuda-nvrtc-cu12) into a cache directory, without a CUDA toolkit and
# without root, and prints the directory that holds libnvrtc.so* on stdout
# (and nothing else on stdout), so CI can do:
#
#   export LD_LIBRARY_PATH="$(kernels/ci/install_nvrtc.sh)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
#   TIC_REQUIRE_NVRTC=1 cargo test -p tic-kernels
#
# Idempotent: when the pinned version is already in the cache it only prints
# the directory. Progress and errors go to stderr.
#
# Why 12.8: cudarc is built with its `cuda-12080` feature, the 12.8 NVRTC
# knows every GPU architecture up to Blackwell (sm_100, sm_120), and the CUBIN
# it emits is accepted by any driver of CUDA 12.8 or later, CUDA 13.x
# included (drivers load machine code built by older toolkits for the same
# architecture).
#
# Environment:
#   TIC_NVRTC_VERSION  wheel version (default 12.8.93)
#   TIC_NVRTC_CACHE    cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/tic-nvrtc)
#   PYTHON             python interpreter with pip (default python3)
set -euo pipefail

version="${TIC_NVRTC_VERSION:-12.8.93}"
cache_root="${TIC_NVRTC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tic-nvrtc}"
python="${PYTHON:-python3}"
prefix="$cache_root/$version"
libdir="$prefix/nvidia/cuda_nvrtc/lib"

have_lib() {
    compgen -G "$libdir/libnvrtc.so*" >/dev/null
}

if ! have_lib || [ ! -f "$prefix/.complete" ]; then
    if ! "$python" -m pip --version >/dev/null 2>&1; then
        echo "install_nvrtc.sh: $python has no pip; install python3-pip or set PYTHON" >&2
        exit 1
    fi
    echo "install_nvrtc.sh: installing nvidia-cuda-nvrtc-cu12==$version into $prefix" >&2
    # Install into a scratch directory and move it into place, so an
    # interrupted run never leaves a half-installed cache that looks complete.
    mkdir -p "$cache_root"
    tmp="$(mktemp -d "$cache_root/.install-XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    "$python" -m pip install --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --target "$tmp" "nvidia-cuda-nvrtc-cu12==$version" >&2
    touch "$tmp/.complete"
    rm -rf "$prefix"
    mv "$tmp" "$prefix"
    trap - EXIT
fi

if ! have_lib; then
    echo "install_nvrtc.sh: the wheel installed but $libdir has no libnvrtc.so*" >&2
    exit 1
fi
# cudarc looks for libnvrtc.so, libnvrtc.so.12, ...; the wheel ships
# libnvrtc.so.12 (and libnvrtc-builtins.so.12.x, which libnvrtc loads from
# the same directory). Add the unversioned name too, for other loaders.
if [ ! -e "$libdir/libnvrtc.so" ] && [ -e "$libdir/libnvrtc.so.12" ]; then
    ln -s libnvrtc.so.12 "$libdir/libnvrtc.so" 2>/dev/null || true
fi
echo "$libdir"
