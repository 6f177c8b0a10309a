#!/usr/bin/env python3
"""GPU loading: tic against safetensors + PyTorch, on the GPU machine.

Run by tests/benchmarks/run_gpu.sh, which passes the built binaries. For each
model (synthetic BF16 and F32 weights made here with PyTorch, big enough to
fill the GPU, plus any artifacts given with --artifact), in one run:

- the memory-bandwidth ceiling: a device-to-device copy (bytes read + written
  per second, CUDA events, median), and from it the ceiling of a decoder that
  reads the stored bytes once and writes the decoded bytes once;
- tic's decode kernels alone (tic-gpu-bench: CUDA events, median of many runs),
  in GB/s of decoded output and as a fraction of that ceiling;
- end to end, in one warm process each: tic (open + signature + load: every
  chunk read from the page cache, checked against its signed SHA-256, staged,
  copied and decoded on the GPU), signed, and signed + encrypted; against
  `safetensors.torch.load_file(..., device="cuda:0")` of the original file
  (page cache too), median of runs after a warm-up run.

Prints a Markdown table and writes JSON and Markdown to --out.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time


def sh(cmd, **kw):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw)


def copy_rate_gbps(torch):
    x = torch.empty(1 << 31, dtype=torch.uint8, device="cuda")
    y = torch.empty_like(x)
    times = []
    for i in range(13):
        s = torch.cuda.Event(enable_timing=True)
        e = torch.cuda.Event(enable_timing=True)
        s.record()
        y.copy_(x)
        e.record()
        torch.cuda.synchronize()
        if i >= 3:
            times.append(s.elapsed_time(e))
    del x, y
    return 2 * (1 << 31) / statistics.median(times) / 1e6


def safetensors_load_s(path, runs, torch):
    from safetensors.torch import load_file

    secs = []
    for i in range(runs + 1):
        torch.cuda.synchronize()
        t = time.perf_counter()
        d = load_file(path, device="cuda:0")
        torch.cuda.synchronize()
        secs.append(time.perf_counter() - t)
        del d
        torch.cuda.empty_cache()
    return secs[1:]


def make_model(path, dtype, gbytes, torch):
    from safetensors.torch import save_file

    if os.path.exists(path):
        return
    torch.manual_seed(0)
    per = 8192 * 16384
    esize = torch.tensor([], dtype=dtype).element_size()
    count = max(1, int(gbytes * 1e9 / (per * esize)))
    # Weights shaped like a trained model's: gaussian with a per-row scale.
    t = {}
    for i in range(count):
        w = torch.randn(8192, 16384, device="cuda") * (0.02 * torch.rand(8192, 1, device="cuda") + 0.005)
        t[f"layers.{i}.weight"] = w.to(dtype).cpu()
    save_file(t, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tic", required=True)
    ap.add_argument("--bench", required=True, help="tic-gpu-bench binary")
    ap.add_argument("--work", default="/tmp/tic-gpu-bench")
    ap.add_argument("--gb", type=float, default=4.0, help="size of each synthetic model")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kernel-runs", type=int, default=30)
    ap.add_argument("--tune", nargs="*", default=[], help="also time the kernels with these WARPS:TABLES launch shapes")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import torch

    os.makedirs(args.work, exist_ok=True)
    w = args.work
    sh([args.tic, "keygen", "-o", f"{w}/k", "--force"])
    with open(f"{w}/sym.key", "w") as f:
        f.write(os.urandom(32).hex())
    os.chmod(f"{w}/sym.key", 0o600)

    copy = copy_rate_gbps(torch)
    gpu = torch.cuda.get_device_name(0)
    print(f"{gpu}: device-to-device copy {copy:.0f} GB/s (read + written)", flush=True)
    rows = []
    for name, dtype in [("synthetic BF16", torch.bfloat16), ("synthetic F32", torch.float32)]:
        st = f"{w}/{name.split()[1].lower()}.safetensors"
        make_model(st, dtype, args.gb, torch)
        size = os.path.getsize(st)
        arts = {}
        for kind, extra in [("signed", []), ("signed+encrypted", ["--encrypt-key", f"{w}/sym.key"])]:
            out = f"{w}/{os.path.basename(st)}.{kind}.tic"
            sh([args.tic, "compile", "--sign", f"{w}/k.key", *extra, st, "-o", out, "--force"])
            arts[kind] = out
        st_s = safetensors_load_s(st, args.runs, torch)
        torch.cuda.empty_cache()
        for kind, art in arts.items():
            cmd = [args.bench, art, "--trusted-key", f"{w}/k.pub", "--kernel-runs", str(args.kernel_runs),
                   "--load-runs", str(args.runs)]
            if "encrypted" in kind:
                cmd += ["--identity", f"{w}/sym.key"]
            for t in args.tune:
                cmd += ["--tune", t]
            r = json.loads(sh(cmd).stdout)
            # Where a load's time goes (the runtime's debug log), from `tic load`.
            load_cmd = [args.tic, "load", art, "--trusted-key", f"{w}/k.pub", "--device", "cuda:0"]
            if "encrypted" in kind:
                load_cmd += ["--identity", f"{w}/sym.key"]
            env = dict(os.environ, TIC_LOG="tic_runtime=debug")
            stages = []
            for _ in range(2):
                p = subprocess.run(load_cmd, text=True, capture_output=True, env=env)
                stages += [l.split("DEBUG", 1)[-1].strip() for l in p.stderr.splitlines() if "GPU load of" in l]
            dec, stored = r["decoded_bytes"], r["stored_bytes"]
            kms = statistics.median(r["kernel_ms"])
            kgbps = dec / kms / 1e6
            ceiling = copy * dec / (dec + stored)
            load = statistics.median(r["load_s"])
            loadv = statistics.median(r["load_verified_s"])
            st_med = statistics.median(st_s)
            rows.append({
                "model": name, "artifact": kind, "gpu": r["gpu"], "original_bytes": size,
                "stored_bytes": stored, "decoded_bytes": dec, "size_pct": 100 * stored / dec,
                "kernel_ms_median": kms, "kernel_GBps": kgbps, "ceiling_GBps": ceiling,
                "fraction_of_ceiling": kgbps / ceiling, "tic_load_s": load,
                "tic_load_GBps": dec / load / 1e9, "tic_load_and_tensor_digests_s": loadv,
                "safetensors_load_s": st_med, "safetensors_GBps": size / st_med / 1e9,
                "tic_over_safetensors": load / st_med, "gpu_open_s": r["gpu_open_s"],
                "kernel_GBps_by_warps_and_shared_tables": {k: dec / v / 1e6 for k, v in r["kernel_median_ms_by_warps_and_shared_tables"].items()},
                "tic_load_stages": stages,
                "raw": r, "safetensors_s": st_s,
            })
            print(json.dumps({k: v for k, v in rows[-1].items() if k not in ("raw",)}), flush=True)
    md = [f"# GPU loading on {gpu}", "",
          f"Device-to-device copy: {copy:.0f} GB/s (bytes read + written, CUDA events, median of 10).",
          "Ceiling: the copy rate shared out over reading the stored bytes once and writing the decoded bytes once.",
          "",
          "| model | artifact | size | kernels GB/s (median) | ceiling GB/s | of ceiling | tic load | safetensors+torch | tic / safetensors | tic load + tensor digests |",
          "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['model']} ({r['decoded_bytes']/1e9:.2f} GB) | {r['artifact']} | {r['size_pct']:.2f}% | "
                  f"{r['kernel_GBps']:.0f} | {r['ceiling_GBps']:.0f} | {100*r['fraction_of_ceiling']:.0f}% | "
                  f"{1e3*r['tic_load_s']:.0f} ms ({r['tic_load_GBps']:.1f} GB/s) | {1e3*r['safetensors_load_s']:.0f} ms "
                  f"({r['safetensors_GBps']:.1f} GB/s) | {r['tic_over_safetensors']:.2f}x | {1e3*r['tic_load_and_tensor_digests_s']:.0f} ms |")
    md += ["", "Where a `tic load` process's load stage goes (the runtime's debug log, second run):", ""]
    for r in rows:
        if r["tic_load_stages"]:
            md.append(f"- {r['model']}, {r['artifact']}: {r['tic_load_stages'][-1]}")
    text = "\n".join(md) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(f"{args.out}/gpu.md", "w") as f:
        f.write(text)
    with open(f"{args.out}/gpu.json", "w") as f:
        json.dump({"gpu": gpu, "copy_GBps": copy, "rows": rows}, f, indent=1)
    print(text)


if __name__ == "__main__":
    main()
