#!/usr/bin/env python3
"""Lossless benchmark: tic against ZipNN and lmzip on real model weights.

This is a measurement, not a test: it prints a table and the project's targets
marked PASS/FAIL, and exits non-zero only when some tool's round trip is not
byte-exact (or, with --strict, when a target fails).

    tests/benchmarks/run.sh [options]            # installs peers, builds tic, runs this
    PEERS_PY tests/benchmarks/bench_lossless.py [--tic target/release/tic] [--out results] [FILE ...]

Runs under the peers' virtual environment (../shared/scripts/install_peers.sh).
Default inputs: ../shared/models/*/model.safetensors and the example shards in
examples/model/. See tests/benchmarks/README.md for the method.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
MB = 1e6  # throughput unit: 10^6 bytes of the original file per second

# The project's targets.
SPEED_VS_ZIPNN = 1.5   # tic single-thread compress and decompress >= 1.5x ZipNN single-thread
SCALING_2T = 1.8       # tic at 2 threads >= 1.8x tic at 1 thread

ZIPNN_DTYPE = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}


# ------------------------------------------------------------------ helpers

def sha256_bytes(data) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def safetensors_dtypes(path: Path) -> dict[str, int]:
    """Bytes per dtype in a safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    out: dict[str, int] = {}
    for name, info in header.items():
        if name != "__metadata__":
            a, b = info["data_offsets"]
            out[info["dtype"]] = out.get(info["dtype"], 0) + (b - a)
    return out


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return {
        "nproc": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "ram_bytes": ram,
        "ram_gib": round(ram / 2**30, 1) if ram else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_start": list(os.getloadavg()),
        "repo_revision": rev,
    }


def cpu_snapshot() -> dict | None:
    """The machine's CPU time so far (all CPUs, /proc/stat: busy, and stolen
    by the hypervisor) and this process's own, its waited-for children's
    included, in seconds. None where /proc/stat is missing."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    if fields[0] != "cpu" or len(fields) < 9:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    own = os.times()
    return {"wall": time.monotonic(), "busy": (user + nice + system + irq + softirq) / tick,
            "steal": steal / tick,
            "own": own.user + own.system + own.children_user + own.children_system}


def others_cpu(start: dict | None, end: dict | None, cpus: int) -> dict | None:
    """What the rest of the machine took between two snapshots: CPU seconds
    other processes ran (all busy time less this benchmark's own, its tools
    included) and the hypervisor stole, as a share of the usable CPUs over
    the wall time. The load average cannot tell the benchmark's own threads
    from others', so this is what decides whether the run was disturbed."""
    if not start or not end or end["wall"] <= start["wall"]:
        return None
    wall = end["wall"] - start["wall"]
    others = max(0.0, (end["busy"] - start["busy"]) - (end["own"] - start["own"]))
    steal = end["steal"] - start["steal"]
    return {"wall_s": round(wall, 1), "others_cpu_s": round(others, 1), "steal_s": round(steal, 1),
            "share": round((others + steal) / (wall * cpus), 3)}


def timed(fn, warmup: int, repeat: int, before=lambda: None) -> tuple[list[float], object]:
    """Run fn(before()) warmup + repeat times; before() is untimed (clearing
    outputs, copying buffers). Return the timed durations and the last result."""
    times, result = [], None
    for i in range(warmup + repeat):
        arg = before()
        t0 = time.perf_counter()
        result = fn(arg)
        dt = time.perf_counter() - t0
        if i >= warmup:
            times.append(dt)
    return times, result


def clear(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


# ------------------------------------------------------------------ tools
#
# Each tool measures one (file, threads) pair and returns
#   {"size": compressed bytes, "compress_s": [...], "decompress_s": [...], "roundtrip": bool}
# raising ToolError when it cannot run.

class ToolError(Exception):
    pass


class Tic:
    """The tic binary, timed end to end as a subprocess: process start, reading the
    input, writing the artifact / restored file are all included."""

    name = "tic"

    def __init__(self, binary: Path, timeout: int):
        self.binary = binary
        self.timeout = timeout
        self.version = ""
        self.startup_s = None

    def how(self, threads: list[int]) -> str:
        return (f"`{self.binary}` as a subprocess, `--threads T` with T in {threads}; "
                "`compile --unsigned FILE -o OUT.tic` and `decompress --allow-unsigned OUT.tic -o DIR`; "
                "wall time end to end (process start, input read, output write included)")

    def _run(self, args: list[str]) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(self.binary), *args], capture_output=True, text=True,
                              timeout=self.timeout)
        if proc.returncode != 0:
            raise ToolError(f"`tic {' '.join(args)}` exited {proc.returncode}: "
                            f"{(proc.stderr or proc.stdout).strip()[-800:]}")
        return proc

    def probe(self, warmup: int, repeat: int) -> None:
        """Version, and how long a bare process start takes (reported, not subtracted)."""
        if not (self.binary.is_file() and os.access(self.binary, os.X_OK)):
            raise ToolError(f"{self.binary} does not exist (build it: cargo build --release -p tic-compiler)")
        for flag in ("--version", "--help"):
            proc = subprocess.run([str(self.binary), flag], capture_output=True, text=True, timeout=60)
            if proc.returncode == 0:
                if flag == "--version":
                    self.version = proc.stdout.strip()
                times, _ = timed(lambda _: subprocess.run([str(self.binary), flag], capture_output=True,
                                                        timeout=60), warmup, max(repeat, 5))
                self.startup_s = {"command": f"tic {flag}", "median_s": statistics.median(times)}
                return

    def measure(self, src: Path, threads: int, work: Path, warmup: int, repeat: int) -> dict:
        art = work / f"{src.name}.tic"
        outdir = work / "tic-out"
        t = ["--threads", str(threads)]
        ctimes, _ = timed(lambda _: self._run(t + ["compile", "--unsigned", str(src), "-o", str(art), "--force"]),
                          warmup, repeat, before=lambda: clear(art))
        if not art.is_file():
            raise ToolError(f"tic compile exited 0 but wrote no {art}")
        size = art.stat().st_size
        dtimes, _ = timed(lambda _: self._run(t + ["decompress", "--allow-unsigned", str(art), "-o", str(outdir), "--force"]),
                          warmup, repeat, before=lambda: clear(outdir))
        restored = outdir / src.name
        if not restored.is_file():
            raise ToolError(f"tic decompress exited 0 but wrote no {restored}")
        ok = sha256_file(restored) == sha256_file(src)
        inspect = None
        try:
            inspect = json.loads(self._run(["inspect", str(art), "--json"]).stdout)
        except (ToolError, ValueError, subprocess.SubprocessError) as e:
            inspect = {"error": str(e)[:300]}
        clear(art)
        clear(outdir)
        return {"size": size, "compress_s": ctimes, "decompress_s": dtimes, "roundtrip": ok,
                "inspect": inspect}


class TicCodec:
    """tic's codec in memory (tests/benchmarks/codec_bench.rs, binary
    tic-codec-bench): choosing each tensor's codec, encoding and decoding its
    chunks as tic compile / decompress cut them, timed inside the process on
    the file's bytes already in memory. No SHA-256 digests, no file I/O: the
    like-for-like figure next to ZipNN's in-memory API."""

    name = "tic codec"

    def __init__(self, binary: Path, timeout: int):
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise ToolError(f"{binary} does not exist (build it: cargo build --release -p tic-tests "
                            "--bin tic-codec-bench)")
        self.binary = binary
        self.timeout = timeout

    def how(self, threads: list[int]) -> str:
        return (f"`{self.binary.name} FILE --threads T`, T in {threads}: tic's codec on the file's bytes in "
                "memory (read beforehand, not timed); compress = choose every tensor's codec + encode every "
                "1 MiB chunk, decompress = decode every chunk into a new buffer; no SHA-256, no file I/O, "
                "timed in process (like ZipNN's row)")

    def measure(self, src: Path, data: bytes, dtype: str, threads: int, work: Path,
                warmup: int, repeat: int) -> dict:
        proc = subprocess.run([str(self.binary), str(src), "--threads", str(threads), "--warmup", str(warmup),
                               "--repeat", str(repeat)], capture_output=True, text=True, timeout=self.timeout)
        if proc.returncode != 0:
            raise ToolError(f"{self.binary.name} exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
        return json.loads(proc.stdout)


def sha256_floor(data: bytes, stored: int, repeat: int) -> dict:
    """What tic's digests alone cost on one core. tic compile takes SHA-256
    over every original byte twice (the file digest and the tensor digests)
    and over every stored byte once (the chunk digests); tic decompress
    checks every chunk digest before decoding and the file digest of what it
    wrote (which covers every tensor). Measured with hashlib (OpenSSL, SHA
    extensions when the CPU has them)."""
    times, _ = timed(lambda _: hashlib.sha256(data).digest(), 1, max(repeat, 3))
    one = statistics.median(times)
    out = {"sha256_mbps": len(data) / MB / one}
    for op, passes in (("compress", 2 + stored / len(data)), ("decompress", 1 + stored / len(data))):
        out[op] = {"passes": passes, "floor_mbps": len(data) / MB / (one * passes)}
    return out


def two_core_check(rounds: int = 15, mb: int = 8) -> dict | None:
    """Whether this machine runs two busy threads as fast as one: each round
    hashes an `mb` MB buffer on one thread, then two such buffers on two
    threads at once (hashlib drops the GIL), after 50 ms of idling, the
    gaps between the benchmark's runs. On some VMs a core that has been idle
    comes back late (the host has given its time away), which costs short
    multi-thread runs, such as the example shards' 10-15 ms, whatever the
    program: slowdown = two-thread time / one-thread time, 1.0 ideally."""
    if len(os.sched_getaffinity(0)) < 2:
        return None
    import threading
    bufs = [os.urandom(mb << 20), os.urandom(mb << 20)]
    one, two = [], []
    for _ in range(rounds):
        time.sleep(0.05)
        t0 = time.perf_counter()
        hashlib.sha256(bufs[0]).digest()
        one.append(time.perf_counter() - t0)
        time.sleep(0.05)
        threads = [threading.Thread(target=lambda b=b: hashlib.sha256(b).digest()) for b in bufs]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        two.append(time.perf_counter() - t0)
    base = statistics.median(one)
    slow = sorted(t / base for t in two)
    return {"rounds": rounds, "mb_per_thread": mb, "one_thread_ms": round(base * 1e3, 2),
            "slowdown_median": round(statistics.median(slow), 3), "slowdown_max": round(slow[-1], 3)}


class ZipNN:
    """zipnn's Python API on the file's bytes, in process, the way zipnn's own
    file scripts use it (ZipNN(is_streaming=True, bytearray_dtype=...)), with
    threads=T. The file is read into memory first; the read is not timed."""

    name = "ZipNN"

    def __init__(self):
        with warnings.catch_warnings():  # torch, imported by zipnn, warns about its own deprecations
            warnings.simplefilter("ignore")
            import zipnn
        self.mod = zipnn
        self.version = importlib.metadata.version("zipnn")

    def how(self, threads: list[int]) -> str:
        return (f"zipnn {self.version} Python API in process on the file's bytes: "
                f"`ZipNN(is_streaming=True, bytearray_dtype=<file dtype>, threads=T)`, T in {threads} "
                "(its only parallelism knob), default method and 1 MiB streaming chunks as zipnn's "
                "file scripts use; file read into memory beforehand, not timed. zipnn overwrites the "
                "buffer it is given, so every run gets a fresh copy, made outside the timing")

    def measure(self, src: Path, data: bytes, dtype: str, threads: int, work: Path,
                warmup: int, repeat: int) -> dict:
        bdt = ZIPNN_DTYPE.get(dtype)
        if bdt is None:
            raise ToolError(f"zipnn has no bytearray_dtype for {dtype}")

        def make():
            return self.mod.ZipNN(is_streaming=True, bytearray_dtype=bdt, threads=threads)

        ctimes, comp = timed(lambda a: a[0].compress(a[1]), warmup, repeat,
                             before=lambda: (make(), bytearray(data)))
        comp = bytes(comp)
        dtimes, restored = timed(lambda a: a[0].decompress(a[1]), warmup, repeat,
                                 before=lambda: (make(), bytearray(comp)))
        return {"size": len(comp), "compress_s": ctimes, "decompress_s": dtimes,
                "roundtrip": sha256_bytes(restored) == sha256_bytes(data)}


class Lmzip:
    """lmzip's `lmz` module. It has only a file API (lmz.compress(src, dst),
    lmz.decompress(src, dst)), so the file's bytes are first written to the work
    directory (tmpfs when available, i.e. memory) outside the timing; its
    reads and writes there are inside the timing."""

    name = "lmzip"

    def __init__(self):
        import lmz
        self.mod = lmz
        self.version = importlib.metadata.version("lmzip")
        self.backends = lmz.backends()

    def how(self, threads: list[int]) -> str:
        return (f"lmzip {self.version} (`lmz` module, backends {self.backends}) in process: "
                f"`lmz.compress(in, out, workers=T)` / `lmz.decompress(out, restored, workers=T)`, "
                f"T in {threads} (its only parallelism knob), other options default (level 1, 8 MiB chunks); "
                "it only takes paths, so input and outputs sit in the work directory (tmpfs = memory) and "
                "its reads/writes of them are timed")

    def measure(self, src: Path, data: bytes, dtype: str, threads: int, work: Path,
                warmup: int, repeat: int) -> dict:
        inp = work / "lmz-in" / src.name
        inp.parent.mkdir(parents=True, exist_ok=True)
        if not inp.exists():
            inp.write_bytes(data)
        arc = work / f"{src.name}.lmz"
        out = work / "lmz-out" / src.name
        out.parent.mkdir(parents=True, exist_ok=True)
        ctimes, _ = timed(lambda _: self.mod.compress(str(inp), str(arc), workers=threads),
                          warmup, repeat, before=lambda: clear(arc))
        size = arc.stat().st_size
        dtimes, _ = timed(lambda _: self.mod.decompress(str(arc), str(out), workers=threads, overwrite=True),
                          warmup, repeat, before=lambda: clear(out))
        ok = sha256_file(out) == sha256_bytes(data)
        for p in (arc, out, inp):
            clear(p)
        return {"size": size, "compress_s": ctimes, "decompress_s": dtimes, "roundtrip": ok}


# ------------------------------------------------------------------ benchmark

def default_inputs() -> list[Path]:
    files = sorted(SHARED.glob("models/*/model.safetensors"))
    files += sorted((REPO / "examples" / "model").glob("model-*-of-*.safetensors"))
    return files


def pick_workdir(arg: str | None, need: int) -> Path:
    if arg:
        base = Path(arg)
    else:
        shm = Path("/dev/shm")
        if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 * need:
            base = shm
        else:
            base = Path(tempfile.gettempdir())
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="tic-bench-", dir=base))


def label(path: Path) -> str:
    """Short name: relative to the repo, or ../shared/..., else as given."""
    p = path.resolve()
    for root, prefix in ((REPO, ""), (SHARED.resolve(), "../shared/")):
        if p.is_relative_to(root):
            return prefix + str(p.relative_to(root))
    return str(path)


def summarize(raw: dict, orig: int) -> dict:
    c, d = statistics.median(raw["compress_s"]), statistics.median(raw["decompress_s"])
    return {
        "size": raw["size"],
        "size_pct": 100.0 * raw["size"] / orig,
        "compress_s": c, "decompress_s": d,
        "compress_mbps": orig / MB / c, "decompress_mbps": orig / MB / d,
        "compress_runs_s": raw["compress_s"], "decompress_runs_s": raw["decompress_s"],
        "roundtrip": raw["roundtrip"],
        **({"inspect": raw["inspect"]} if raw.get("inspect") is not None else {}),
    }


def evaluate_targets(results: list[dict], tic_error: str | None,
                     startup_s: float | None = None) -> list[dict]:
    """PASS/FAIL/n/a per target and file. `startup_s`, a bare tic process start,
    is a part of every end-to-end run that one thread or two take alike: it
    bounds what a second thread can gain on a short run, and the scaling rows
    say by how much (Amdahl)."""
    targets = []
    tic_failed: set[str] = set()

    def add(name, file, ok, detail):
        if ok is None and file in tic_failed:
            ok, detail = False, "tic failed on this file (see its rows)"
        targets.append({"target": name, "file": file,
                        "status": "n/a" if ok is None else ("PASS" if ok else "FAIL"), "detail": detail})

    if tic_error:
        for name in ("size: tic <= best peer",
                     *(f"speed: tic 1T {op} >= {SPEED_VS_ZIPNN}x ZipNN 1T" for op in ("compress", "decompress")),
                     *(f"scaling: tic 2T {op} >= {SCALING_2T}x tic 1T" for op in ("compress", "decompress"))):
            add(name, "all files", None, tic_error)
        return targets
    by_file: dict[str, dict] = {}
    for r in results:
        if "error" not in r:
            by_file.setdefault(r["file"], {}).setdefault(r["tool"], {})[r["threads"]] = r
        elif r["tool"] == "tic":
            tic_failed.add(r["file"])
    files = list(dict.fromkeys(r["file"] for r in results))
    for f in files:
        tools = by_file.get(f, {})
        tic = tools.get("tic", {})
        why = "tic not measured"
        # 1. size
        peers = [(r["size"], n) for n, rs in tools.items() if not n.startswith("tic") for r in rs.values()]
        if tic and peers:
            orig = next(iter(tic.values()))["orig"]
            tsize = max(r["size"] for r in tic.values())
            best, who = min(peers)
            add("size: tic <= best peer", f, tsize <= best,
                f"tic {tsize:,} B ({100 * tsize / orig:.2f}%) vs best peer {who} {best:,} B "
                f"({100 * best / orig:.2f}%)")
        else:
            add("size: tic <= best peer", f, None, why if not tic else "no peer result")
        # 2. single-thread speed vs ZipNN: the tic commands end to end, and
        # tic's codec in memory (like for like with ZipNN's in-memory API).
        z1, t1 = tools.get("ZipNN", {}).get(1), tic.get(1)
        c1 = tools.get("tic codec", {}).get(1)
        floor = (t1 or {}).get("sha256_floor")
        for op in ("compress", "decompress"):
            key = f"{op}_mbps"
            name = f"speed: tic 1T {op} >= {SPEED_VS_ZIPNN}x ZipNN 1T"
            if t1 and z1:
                need = SPEED_VS_ZIPNN * z1[key]
                detail = (f"tic {t1[key]:.1f} MB/s vs needed {need:.1f} (ZipNN {z1[key]:.1f}); "
                          f"ratio {t1[key] / z1[key]:.2f}x")
                if floor:
                    f_op = floor[op]
                    detail += (f"; tic's SHA-256 digests alone ({f_op['passes']:.2f} passes at "
                               f"{floor['sha256_mbps']:.0f} MB/s) cap it at {f_op['floor_mbps']:.0f} MB/s = "
                               f"{f_op['floor_mbps'] / z1[key]:.2f}x ZipNN")
                add(name, f, t1[key] >= need, detail)
            else:
                add(name, f, None, why if not t1 else "no ZipNN single-thread result")
            name = f"speed: tic codec 1T {op} >= {SPEED_VS_ZIPNN}x ZipNN 1T (both in memory)"
            if c1 and z1:
                need = SPEED_VS_ZIPNN * z1[key]
                add(name, f, c1[key] >= need,
                    f"tic codec {c1[key]:.1f} MB/s vs needed {need:.1f} (ZipNN {z1[key]:.1f}); "
                    f"ratio {c1[key] / z1[key]:.2f}x")
            elif "tic codec" in tools or z1:
                add(name, f, None, "no tic codec result" if not c1 else "no ZipNN single-thread result")
        # 3. scaling
        t2 = tic.get(2)
        for op in ("compress", "decompress"):
            key = f"{op}_mbps"
            name = f"scaling: tic 2T {op} >= {SCALING_2T}x tic 1T"
            if t1 and t2:
                detail = f"tic 2T {t2[key]:.1f} MB/s vs 1T {t1[key]:.1f}: {t2[key] / t1[key]:.3f}x"
                one_s = t1["orig"] / 1e6 / t1[key]
                if startup_s and 0 < startup_s < one_s:
                    # The serial start plus the rest of the 1T run on two
                    # cores with no loss at all.
                    bound = one_s / (startup_s + (one_s - startup_s) / 2)
                    detail += (f"; the process start alone ({1000 * startup_s:.1f} ms of the "
                               f"{1000 * one_s:.1f} ms 1T run) bounds it at {bound:.2f}x")
                add(name, f, t2[key] >= SCALING_2T * t1[key], detail)
            else:
                add(name, f, None, why if not t1 else "fewer than 2 usable CPUs" if not t2 else "")
    return targets


# ------------------------------------------------------------------ output

def fmt_table(results: list[dict]) -> list[str]:
    head = ["file", "dtype", "MB", "tool", "threads", "size %", "compress MB/s", "decompress MB/s", "round trip"]
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r["file"], r["dtype"], f"{r['orig'] / MB:.1f}", r["tool"], str(r["threads"]),
                         "-", "-", "-", "error: " + r["error"][:120]])
        else:
            rows.append([r["file"], r["dtype"], f"{r['orig'] / MB:.1f}", r["tool"], str(r["threads"]),
                         f"{r['size_pct']:.2f}", f"{r['compress_mbps']:.1f}", f"{r['decompress_mbps']:.1f}",
                         "exact" if r["roundtrip"] else "MISMATCH"])
    return [head] + rows


def render_text(table: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for k, row in enumerate(table):
        lines.append("  ".join(c.ljust(w) if i in (0, 1, 3, 8) else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def two_core_md(tc: dict | None) -> str:
    if not tc:
        return ""
    return (f" Two-core check: two threads hashing {tc['mb_per_thread']} MB each after 50 ms idle took "
            f"{tc['slowdown_median']:.2f}x the time of one (median of {tc['rounds']}; worst "
            f"{tc['slowdown_max']:.2f}x; 1.00 = two full cores).")


def others_md(o: dict | None) -> str:
    if not o:
        return ""
    return (f" (the benchmark's own threads included); other processes ran {o['others_cpu_s']:.1f} CPU-s "
            f"and the hypervisor stole {o['steal_s']:.1f} s of the {o['wall_s']:.0f} s run: "
            f"{100 * o['share']:.1f}% of the usable CPUs")


def render_md(report: dict) -> str:
    m = report["machine"]
    table = fmt_table(report["results"])
    out = ["# tic lossless benchmark", "",
           f"Machine: {m['cpu_model']}, nproc {m['nproc']} ({m['usable_cpus']} usable), "
           f"RAM {m['ram_gib']} GiB, kernel {m['kernel']}, Python {m['python']}; "
           f"load average {m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end"
           f"{others_md(m.get('others_cpu'))}; "
           f"repo {m['repo_revision']}." + two_core_md(m.get("two_core_check")), "",
           f"Median of {report['settings']['repeat']} timed rounds after {report['settings']['warmup']} "
           f"warm-up round(s), every tool and thread count running once per round (so a slow phase of the "
           f"machine hits all alike); MB = 10^6 bytes of the original file; size % = compressed / original.", "",
           "| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    out += ["| " + " | ".join(row) + " |" for row in table[1:]]
    out += ["", "## Targets", "", "| status | target | file | detail |", "|---|---|---|---|"]
    out += [f"| {t['status']} | {t['target']} | {t['file']} | {t['detail']} |" for t in report["targets"]]
    out += ["", "## How each tool was run", ""]
    out += [f"- **{k}**: {v}" for k, v in report["tools"].items()]
    if report.get("tic_startup"):
        s = report["tic_startup"]
        out += ["", f"Bare tic process start (`{s['command']}`): {1000 * s['median_s']:.1f} ms median; "
                    "it is inside every tic figure above, not subtracted."]
    if report.get("notes"):
        out += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ main

def main() -> int:
    ap = argparse.ArgumentParser(description="Lossless benchmark: tic vs ZipNN and lmzip (not a test).")
    ap.add_argument("files", nargs="*", type=Path,
                    help="safetensors files (default: ../shared/models/*/model.safetensors and examples/model shards)")
    ap.add_argument("--tic", type=Path, default=Path(os.environ.get("TIC", REPO / "target" / "release" / "tic")),
                    help="tic binary (default: $TIC or target/release/tic)")
    ap.add_argument("--codec-bench", type=Path,
                    default=Path(os.environ.get("TIC_CODEC_BENCH", REPO / "target" / "release" / "tic-codec-bench")),
                    help="the in-memory codec benchmark binary (default: $TIC_CODEC_BENCH or "
                         "target/release/tic-codec-bench)")
    ap.add_argument("--tools", default="tic,codec,zipnn,lmzip",
                    help="comma-separated subset of tic,codec,zipnn,lmzip")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="the 'all cores' thread count (default: usable CPUs)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed rounds (each tool and thread count runs once per round); the median is reported")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds before the timed ones")
    ap.add_argument("--workdir", help="where artifacts and restored files go (default: a new dir in /dev/shm, else $TMPDIR)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds allowed per tic command")
    ap.add_argument("--out", type=Path, help="write results to OUT.json and OUT.md (a .json/.md suffix is replaced)")
    ap.add_argument("--strict", action="store_true", help="exit 2 when a target FAILs")
    args = ap.parse_args()

    wanted = {t.strip().lower() for t in args.tools.split(",") if t.strip()}
    files = args.files or default_inputs()
    if not files:
        print("no input files (../shared/models is missing and examples/model has no shards)", file=sys.stderr)
        return 1
    for f in files:
        if not f.is_file():
            print(f"not a file: {f}", file=sys.stderr)
            return 1

    machine = machine_info()
    machine["two_core_check"] = two_core_check()
    cpu_start = cpu_snapshot()
    all_t = max(1, args.threads)
    peer_threads = sorted({1, all_t})
    tic_threads = sorted({1, all_t} | ({2} if all_t >= 2 else set()))
    notes = []

    tools_how: dict[str, str] = {}
    tic = None
    tic_error = None
    if "tic" in wanted:
        tic = Tic(args.tic.resolve() if args.tic.exists() else args.tic, args.timeout)
        try:
            tic.probe(args.warmup, args.repeat)
            tools_how["tic"] = tic.how(tic_threads) + (f"; version: {tic.version}" if tic.version else "")
        except (ToolError, OSError, subprocess.SubprocessError) as e:
            tic_error = f"tic not measured: {e}"
            tools_how["tic"] = tic_error
            notes.append(tic_error)
            tic = None
    else:
        tic_error = "tic not measured (--tools)"
    codec = None
    if "codec" in wanted:
        try:
            codec = TicCodec(args.codec_bench.resolve() if args.codec_bench.exists() else args.codec_bench,
                             args.timeout)
            tools_how[codec.name] = codec.how(tic_threads)
        except ToolError as e:
            tools_how[TicCodec.name] = f"not measured: {e}"
            notes.append(f"tic codec not measured: {e}")
    peers = []
    for key, cls in (("zipnn", ZipNN), ("lmzip", Lmzip)):
        if key in wanted:
            try:
                p = cls()
                peers.append(p)
                tools_how[p.name] = p.how(peer_threads)
            except Exception as e:  # noqa: BLE001 - any import failure means "not installed"
                msg = f"{cls.name} not measured: {type(e).__name__}: {e}"
                tools_how[cls.name] = msg
                notes.append(msg + " (run ../shared/scripts/install_peers.sh and use its python)")

    work = pick_workdir(args.workdir, max(f.stat().st_size for f in files))
    print(f"machine: {machine['cpu_model']}, nproc {machine['nproc']} ({machine['usable_cpus']} usable), "
          f"RAM {machine['ram_gib']} GiB, load {machine['loadavg_start'][0]:.2f}")
    tc = machine["two_core_check"]
    if tc:
        print(f"two-core check: two threads of {tc['mb_per_thread']} MB SHA-256 each take "
              f"{tc['slowdown_median']:.2f}x (median; worst {tc['slowdown_max']:.2f}x) the time of one")
    print(f"work dir: {work}; {args.warmup} warm-up + {args.repeat} timed rounds (every tool once per round), "
          "median; "
          f"threads: tic {tic_threads}, peers {peer_threads}")
    for k, v in tools_how.items():
        print(f"  {k}: {v}")
    print(flush=True)

    results = []
    try:
        for src in files:
            data = src.read_bytes()       # also warms the page cache for tic
            orig = len(data)
            dtypes = safetensors_dtypes(src)
            dtype = max(dtypes, key=dtypes.get)
            base = {"file": label(src), "path": str(src), "dtype": dtype, "orig": orig,
                    "dtypes": dtypes, "sha256": sha256_bytes(data)}
            plan = []
            if tic:
                plan += [(tic, t) for t in tic_threads]
            if codec:
                plan += [(codec, t) for t in tic_threads]
            plan += [(p, t) for p in peers for t in peer_threads]
            # Rounds: every (tool, threads) pair runs once per round, so a
            # slow phase of a shared machine hits all of them alike and the
            # ratios stay fair. The first --warmup rounds are not timed.
            acc: dict[tuple, dict] = {}
            for rnd in range(args.warmup + args.repeat):
                for tool, t in plan:
                    a = acc.setdefault((tool.name, t), {"c": [], "d": [], "rt": True})
                    if "error" in a:
                        continue
                    try:
                        if tool is tic:
                            raw = tic.measure(src, t, work, 0, 1)
                        else:
                            # The codec bench is a new process per call: three
                            # untimed runs first bring it to the steady state
                            # the peers' long-lived process is in (a fresh
                            # process's first large allocations fault in new
                            # pages; its first timed run was up to 2x slower).
                            raw = tool.measure(src, data, dtype, t, work, 3 if tool is codec else 0, 1)
                    except Exception as e:  # noqa: BLE001 - report and go on with the other tools
                        a["error"] = f"{type(e).__name__}: {e}"
                        continue
                    a["raw"], a["rt"] = raw, a["rt"] and raw["roundtrip"]
                    if rnd >= args.warmup:
                        a["c"] += raw["compress_s"]
                        a["d"] += raw["decompress_s"]
            for tool, t in plan:
                row = {**base, "tool": tool.name, "threads": t}
                a = acc[(tool.name, t)]
                if "error" in a:
                    row["error"] = a["error"]
                else:
                    row.update(summarize({**a["raw"], "compress_s": a["c"], "decompress_s": a["d"],
                                          "roundtrip": a["rt"]}, orig))
                if tool is tic and t == 1 and "error" not in row:
                    row["sha256_floor"] = sha256_floor(data, row["size"], args.repeat)
                results.append(row)
                r = row
                status = (f"error: {r['error'][:200]}" if "error" in r else
                          f"{r['size_pct']:6.2f}%  compress {r['compress_mbps']:8.1f} MB/s  "
                          f"decompress {r['decompress_mbps']:8.1f} MB/s  "
                          f"{'exact' if r['roundtrip'] else 'ROUND TRIP MISMATCH'}")
                print(f"{base['file']:55s} {tool.name:6s} T={t:<2d} {status}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    machine["loadavg_end"] = list(os.getloadavg())
    others = others_cpu(cpu_start, cpu_snapshot(), machine["usable_cpus"])
    machine["others_cpu"] = others
    # The load average counts the benchmark's own threads (up to 1.5 at the
    # end of an idle machine's run), so only what others took is judged.
    if machine["loadavg_start"][0] > 0.5 * machine["usable_cpus"] or (others and others["share"] > 0.05):
        took = (f"other processes and the hypervisor took {100 * others['share']:.0f}% of the usable CPUs "
                "during the run" if others else "")
        notes.append(f"the machine was busy (1-minute load average {machine['loadavg_start'][0]:.1f} at start on "
                     f"{machine['usable_cpus']} usable CPUs{'; ' + took if took else ''}): other work competed "
                     "for the cores, so timings, multi-thread ones above all, are noisy; rerun on an idle "
                     "machine for figures to quote")
    if tc and tc["slowdown_median"] > 1.15:
        notes.append(f"two busy threads ran {tc['slowdown_median']:.2f}x (worst {tc['slowdown_max']:.2f}x) "
                     "as long as one after a short idle (two-core check, before the runs): the second core "
                     "comes back late, so short two-thread runs (the example shards above all) scale less "
                     "than the program allows")
    targets = evaluate_targets(results, tic_error,
                               tic.startup_s["median_s"] if tic and tic.startup_s else None)
    report = {
        "machine": machine,
        "settings": {"repeat": args.repeat, "warmup": args.warmup, "tic_threads": tic_threads,
                     "peer_threads": peer_threads, "workdir": str(work), "mb": "10^6 bytes",
                     "throughput": "original bytes / median wall seconds"},
        "tools": tools_how,
        "tic_startup": tic.startup_s if tic else None,
        "results": results,
        "targets": targets,
        "notes": notes,
    }

    print()
    print(render_text(fmt_table(results)))
    print()
    print("targets:")
    for t in targets:
        print(f"  {t['status']:4s}  {t['target']:42s} {t['file']}: {t['detail']}")
    if tic and tic.startup_s:
        print(f"\nbare tic process start ({tic.startup_s['command']}): "
              f"{1000 * tic.startup_s['median_s']:.1f} ms median, included in every tic figure")
    for n in notes:
        print(f"note: {n}")

    if args.out:
        base = args.out.with_suffix("") if args.out.suffix in (".json", ".md") else args.out
        base.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{base}.json").write_text(json.dumps(report, indent=2) + "\n")
        Path(f"{base}.md").write_text(render_md(report))
        print(f"\nwrote {base}.json and {base}.md")

    if any("error" not in r and not r["roundtrip"] for r in results):
        print("ROUND TRIP MISMATCH: some tool did not restore the input byte for byte", file=sys.stderr)
        return 1
    if any("error" in r for r in results):
        print("some measurements failed (see the error rows)", file=sys.stderr)
        return 1
    if args.strict and any(t["status"] == "FAIL" for t in targets):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
