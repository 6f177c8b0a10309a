#!/usr/bin/env python3
"""Lossy benchmark: tic's lossy codecs against SZ3 on real model weights.

A measurement, not a test. For each model in ../shared/models (the F32
all-MiniLM-L6-v2 and its BF16 rounding) and each setting it measures:

- size: the tic artifact of model.safetensors (`tic compile --lossy`) as a
  percentage of the original file; for SZ3 (`pysz`, same run, matched
  bounds) the SZ3 streams of the same tensors plus tic's lossless bytes for
  the tensors left lossless;
- error on the lossy-coded elements: pointwise relative error (mean, RMS,
  max, and the fraction of elements above the nominal bound), max absolute
  error, sign flips and nonzeros turned to zero, from the decoded file
  (`tic decompress`) against the original;
- model quality: sentence embeddings of the original and the decoded model
  (sentence_transformers, offline) on a fixed set of generated sentences:
  mean and worst cosine similarity.

Two scopes per setting: `all` codes every float tensor lossy (`*=SETTING`,
the pure codec comparison); `proj` keeps norms, biases and embeddings
lossless and codes the other `*.weight` matrices (the rules of tic's
presets). SZ3 gets the same scopes.

    tests/benchmarks/run_lossy.sh [options]      # builds tic, runs this
    PEERS_PY tests/benchmarks/bench_lossy.py [--tic target/release/tic] [--out DIR] [--quick]

Writes DIR/lossy_results.json, DIR/lossy_tables.md and the plots
DIR/lossy_size_quality.png and DIR/lossy_size_error.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"

# The lossless-kept tensors of the `proj` scope (tic's presets use these).
KEEP = ("*norm*", "*Norm*", "*ln_*", "*.bias", "*embed*", "*wte*", "*wpe*", "*lm_head*")

MANTISSA = [2, 3, 4, 5, 6]
ABS = [1e-4, 3e-4, 1e-3, 3e-3]
REL = [0.003, 0.01, 0.03, 0.1]


# ------------------------------------------------------------------ safetensors

def read_st(path: Path):
    """(header bytes, {name: (dtype, shape, begin, end)}, data bytes)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        tensors[name] = (info["dtype"], info["shape"], a, b)
    return raw[:8 + n], tensors, raw[8 + n:]


def to_f64(dtype: str, buf: bytes) -> np.ndarray:
    if dtype == "BF16":
        u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).astype(np.float64)
    if dtype == "F16":
        return np.frombuffer(buf, dtype="<f2").astype(np.float64)
    if dtype == "F32":
        return np.frombuffer(buf, dtype="<f4").astype(np.float64)
    raise ValueError(dtype)


def f32_to_bf16_bytes(x: np.ndarray) -> bytes:
    """Round float32 to BF16, ties to even (no NaNs in weights)."""
    u = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
    return r.tobytes()


def glob_match(pattern: str, name: str) -> bool:
    import fnmatch
    return fnmatch.fnmatchcase(name, pattern)


def in_scope(scope: str, name: str, dtype: str) -> bool:
    if dtype not in ("BF16", "F16", "F32"):
        return False
    if scope == "all":
        return True
    if any(glob_match(p, name) for p in KEEP):
        return False
    return glob_match("*.weight", name)


def rules_for(scope: str, setting: str) -> str:
    if scope == "all":
        return f"*={setting}"
    return ",".join(f"{p}=lossless" for p in KEEP) + f",*.weight={setting}"


# ------------------------------------------------------------------ errors

class Err:
    """Accumulates error figures over the lossy-coded elements."""

    def __init__(self, rel_bound: float | None, abs_bound: float | None):
        self.rel_bound, self.abs_bound = rel_bound, abs_bound
        self.n = 0
        self.n_rel = 0
        self.sum_rel = 0.0
        self.sum_rel2 = 0.0
        self.max_rel = 0.0
        self.max_abs = 0.0
        self.over = 0
        self.sign_flips = 0
        self.to_zero = 0
        self.rels: list[np.ndarray] = []

    def add(self, o: np.ndarray, d: np.ndarray):
        fin = np.isfinite(o)
        o, d = o[fin], d[fin]
        err = np.abs(d - o)
        self.n += o.size
        self.max_abs = max(self.max_abs, float(err.max(initial=0.0)))
        nz = o != 0
        rel = err[nz] / np.abs(o[nz])
        self.n_rel += rel.size
        self.sum_rel += float(rel.sum())
        self.sum_rel2 += float((rel * rel).sum())
        self.max_rel = max(self.max_rel, float(rel.max(initial=0.0)))
        self.rels.append(rel.astype(np.float32))
        if self.rel_bound is not None:
            self.over += int((rel > self.rel_bound).sum())
        elif self.abs_bound is not None:
            self.over += int((err > self.abs_bound).sum())
        self.sign_flips += int((np.signbit(o[nz]) != np.signbit(d[nz])).sum())
        self.to_zero += int((d[nz] == 0).sum())

    def summary(self) -> dict:
        n = max(self.n_rel, 1)
        allrel = np.concatenate(self.rels) if self.rels else np.zeros(1, np.float32)
        med, p99 = (float(v) for v in np.percentile(allrel, [50, 99]))
        return {
            "median_rel": med,
            "p99_rel": p99,
            "elements": self.n,
            "mean_rel": self.sum_rel / n,
            "rms_rel": (self.sum_rel2 / n) ** 0.5,
            "max_rel": self.max_rel,
            "max_abs": self.max_abs,
            "frac_over_bound": self.over / max(self.n, 1),
            "sign_flips": self.sign_flips,
            "nonzero_to_zero": self.to_zero,
        }


def nominal(setting: str):
    """(pointwise relative bound, absolute bound) a setting names."""
    kind, v = setting.split(":")
    if kind == "mantissa":
        return 2.0 ** -(int(v) + 1), None
    if kind == "rel":
        return float(v), None
    return None, float(v)


# ------------------------------------------------------------------ model quality

def sentences(n: int) -> list[str]:
    """A fixed, varied set of English sentences (seeded templates)."""
    rng = random.Random(20240611)
    subj = ["The engineer", "A small child", "My neighbour", "The committee", "Our team",
            "The old fisherman", "A robot", "The pianist", "Every student", "The doctor",
            "A stray cat", "The pilot", "The farmer", "A journalist", "The museum guide"]
    verb = ["repaired", "painted", "described", "ignored", "celebrated", "measured",
            "sold", "photographed", "translated", "questioned", "built", "carried"]
    obj = ["the broken bicycle", "a letter from Paris", "the quarterly budget",
           "an ancient map", "the noisy engine", "a bowl of soup", "the chess problem",
           "a wooden bridge", "the election results", "a blue umbrella",
           "the software release", "a pile of books", "the mountain trail"]
    when = ["yesterday", "before sunrise", "during the storm", "after lunch",
            "last winter", "on Tuesday", "in a hurry", "without a word", "twice"]
    where = ["in the garden", "at the station", "near the river", "in the laboratory",
             "on the roof", "at the market", "in a quiet library", "by the harbour"]
    questions = ["How do I reset my password?", "What is the capital of Australia?",
                 "Why is the sky blue?", "Where can I buy fresh bread?",
                 "Which train goes to the airport?", "Is it going to rain tomorrow?",
                 "How many moons does Jupiter have?", "What time does the shop close?"]
    facts = ["Water boils at one hundred degrees Celsius at sea level.",
             "Photosynthesis turns light into chemical energy.",
             "The stock market fell sharply on Monday.",
             "Neural networks learn by adjusting their weights.",
             "The recipe needs two eggs and a cup of flour.",
             "Vaccines train the immune system to recognise a virus.",
             "The football match ended in a draw.",
             "Compression makes files smaller without losing meaning."]
    out = []
    while len(out) < n:
        r = rng.random()
        if r < 0.15:
            s = rng.choice(questions)
        elif r < 0.3:
            s = rng.choice(facts)
        else:
            s = f"{rng.choice(subj)} {rng.choice(verb)} {rng.choice(obj)} {rng.choice(where)} {rng.choice(when)}."
        if rng.random() < 0.2:
            s = s.rstrip(".?") + ", and " + rng.choice(facts).lower()
        out.append(s)
    return out


class Embedder:
    def __init__(self, n_sentences: int):
        import torch
        from sentence_transformers import SentenceTransformer
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
        try:
            import transformers
            transformers.utils.logging.disable_progress_bar()
            transformers.utils.logging.set_verbosity_error()
        except Exception:  # noqa: BLE001 - only cosmetics
            pass
        self.ST = SentenceTransformer
        self.sentences = sentences(n_sentences)
        self.ref: dict[str, np.ndarray] = {}

    def embed(self, model_dir: Path) -> np.ndarray:
        m = self.ST(str(model_dir), device="cpu")
        e = m.encode(self.sentences, batch_size=64, convert_to_numpy=True)
        return e.astype(np.float64)

    def cosine(self, ref: np.ndarray, e: np.ndarray) -> dict:
        c = (ref * e).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(e, axis=1))
        return {"mean_cos": float(c.mean()), "min_cos": float(c.min())}


def model_dir_with(orig_dir: Path, st_path: Path, into: Path) -> Path:
    """A model directory like orig_dir whose model.safetensors is st_path."""
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    for e in orig_dir.iterdir():
        if e.name == "model.safetensors":
            continue
        (into / e.name).symlink_to(e.resolve())
    (into / "model.safetensors").symlink_to(st_path.resolve())
    return into


# ------------------------------------------------------------------ tic and SZ3

def run(cmd: list[str]) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"bench_lossy: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p


def tic_inspect(tic: str, art: Path) -> dict:
    return json.loads(run([tic, "inspect", str(art), "--json"]).stdout)


def tic_lossy(tic: str, st: Path, rules: str | None, work: Path):
    """(artifact bytes, decoded file path, inspect JSON, compile s, decompress s)."""
    art = work / "a.tic"
    out = work / "restored"
    cmd = [tic, "-q", "compile", str(st), "-o", str(art), "--unsigned", "--force"]
    if rules:
        cmd += ["--lossy", rules]
    t = time.perf_counter()
    run(cmd)
    tc = time.perf_counter() - t
    t = time.perf_counter()
    run([tic, "-q", "decompress", str(art), "-o", str(out), "--allow-unsigned", "--force"])
    td = time.perf_counter() - t
    return art.stat().st_size, out / st.name, tic_inspect(tic, art), tc, td


def sz3_roundtrip(x: np.ndarray, shape, mode: str, eb: float):
    from pysz import sz, szConfig, szErrorBoundMode
    cfg = szConfig()
    cfg.errorBoundMode = szErrorBoundMode.ABS if mode == "abs" else szErrorBoundMode.REL
    if mode == "abs":
        cfg.absErrorBound = eb
    else:
        cfg.relErrorBound = eb
    a = np.ascontiguousarray(x.astype(np.float32).reshape(shape if len(shape) else (1,)))
    comp, _ = sz.compress(a, cfg)
    dec, _ = sz.decompress(comp, np.float32, a.shape)
    return len(comp), np.asarray(dec, dtype=np.float32).reshape(-1)


# ------------------------------------------------------------------ main

def machine_info(tic: str) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import importlib.metadata as md
    vers = {}
    for pkg in ("numpy", "torch", "sentence-transformers", "pysz", "safetensors"):
        try:
            vers[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            vers[pkg] = None
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cpus_usable": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": vers,
        "tic": run([tic, "--version"]).stdout.strip(),
        "commit": commit,
    }


def measure_model(args, tic: str, model_dir: Path, emb: Embedder, work: Path) -> dict:
    st = model_dir / "model.safetensors"
    size = st.stat().st_size
    hdr, tensors, data = read_st(st)
    dtypes = sorted({t[0] for t in tensors.values() if t[0] in ("BF16", "F16", "F32")})
    print(f"\n== {model_dir.name}: {size} bytes, float dtypes {dtypes}", flush=True)
    ref = emb.embed(model_dir)
    base_size, _, base_inspect, tc, td = tic_lossy(tic, st, None, work)
    lossless_stored = {t["name"]: t["stored_bytes"] for t in base_inspect["tensor_list"]}
    print(f"  lossless tic: {100 * base_size / size:.2f}% ({tc:.1f} s / {td:.1f} s)", flush=True)
    orig = {name: to_f64(d, data[a:b]) for name, (d, shp, a, b) in tensors.items()
            if d in ("BF16", "F16", "F32")}
    res = {"model": model_dir.name, "file_bytes": size, "dtypes": dtypes,
           "lossless_bytes": base_size, "lossless_pct": 100 * base_size / size, "runs": []}
    # Sanity: the lossless artifact restores the model exactly (cosine 1).
    _, dec_path, _, _, _ = tic_lossy(tic, st, None, work)
    q = emb.cosine(ref, emb.embed(model_dir_with(model_dir, dec_path, work / "m")))
    res["lossless_cos"] = q
    print(f"  lossless round trip: cos {q['mean_cos']:.6f} (min {q['min_cos']:.6f})", flush=True)

    settings = ([f"mantissa:{k}" for k in MANTISSA] + [f"abs:{e:g}" for e in ABS]
                + [f"rel:{e:g}" for e in REL])
    if args.quick:
        settings = ["mantissa:4", "abs:1e-3", "rel:0.01"]
    for scope in ("all", "proj"):
        scoped = [n for n, (d, *_r) in tensors.items() if in_scope(scope, n, d)]
        scoped_bytes = sum(tensors[n][3] - tensors[n][2] for n in scoped)
        for setting in settings:
            rb, ab = nominal(setting)
            # tic
            nbytes, dec_path, insp, tc, td = tic_lossy(tic, st, rules_for(scope, setting), work)
            _, dt, ddata = read_st(dec_path)
            err = Err(rb, ab)
            lossy_names = {t["name"] for t in insp["lossy_tensors"]}
            for n in scoped:
                if n in lossy_names:
                    d, _, a, b = dt[n]
                    err.add(orig[n], to_f64(d, ddata[a:b]))
            stored = sum(t["stored_bytes"] for t in insp["tensor_list"] if t["name"] in scoped)
            q = emb.cosine(ref, emb.embed(model_dir_with(model_dir, dec_path, work / "m")))
            row = {"tool": "tic", "scope": scope, "setting": setting,
                   "lossy_tensors": len(lossy_names), "size_pct": 100 * nbytes / size,
                   "scoped_pct": 100 * stored / max(scoped_bytes, 1),
                   "compile_s": tc, "decompress_s": td, **err.summary(), **q}
            res["runs"].append(row)
            print(f"  tic {scope:4} {setting:12} size {row['size_pct']:6.2f}%  "
                  f"scoped {row['scoped_pct']:6.2f}%  mean rel {100 * row['mean_rel']:7.4f}%  "
                  f"max rel {100 * row['max_rel']:8.3f}%  cos {row['mean_cos']:.6f} "
                  f"(min {row['min_cos']:.6f})  [{len(lossy_names)} lossy]", flush=True)
            if setting.startswith("mantissa"):
                continue
            # SZ3 at the matched bound (abs: ABS; rel: SZ3's REL, which is
            # relative to each tensor's value range, not pointwise).
            mode, eb = setting.split(":")
            eb = float(eb)
            err = Err(rb, ab)
            sz_bytes = 0
            out = bytearray(data)
            for n in scoped:
                d, shp, a, b = tensors[n]
                nb, dec = sz3_roundtrip(orig[n], shp, mode, eb)
                sz_bytes += nb
                err.add(orig[n], dec.astype(np.float64))
                if d == "F32":
                    out[a:b] = dec.astype("<f4").tobytes()
                elif d == "BF16":
                    out[a:b] = f32_to_bf16_bytes(dec)
                else:
                    out[a:b] = dec.astype("<f2").tobytes()
            rest = sum(v for k, v in lossless_stored.items() if k not in scoped)
            total = len(hdr) + sz_bytes + rest
            p = work / "sz3.safetensors"
            p.write_bytes(hdr + bytes(out))
            q = emb.cosine(ref, emb.embed(model_dir_with(model_dir, p, work / "m")))
            row = {"tool": "sz3", "scope": scope, "setting": f"{mode}:{eb:g}",
                   "size_pct": 100 * total / size,
                   "scoped_pct": 100 * sz_bytes / max(scoped_bytes, 1),
                   **err.summary(), **q}
            res["runs"].append(row)
            print(f"  sz3 {scope:4} {row['setting']:12} size {row['size_pct']:6.2f}%  "
                  f"scoped {row['scoped_pct']:6.2f}%  mean rel {100 * row['mean_rel']:7.4f}%  "
                  f"max rel {100 * row['max_rel']:8.3f}%  cos {row['mean_cos']:.6f} "
                  f"(min {row['min_cos']:.6f})  over bound {100 * row['frac_over_bound']:.2f}%",
                  flush=True)
    return res


def fmt_pct(x: float, nd=2) -> str:
    return f"{x:.{nd}f}%"


def pct(x: float) -> str:
    """A relative error as a percentage; huge ones in scientific notation."""
    v = 100 * x
    return f"{v:.3f}%" if v < 1e4 else f"{v:.1e}%"


def tables(results: list[dict]) -> str:
    lines = []
    for r in results:
        lc = r["lossless_cos"]
        lines.append(f"### {r['model']} ({', '.join(r['dtypes'])}, {r['file_bytes']:,} bytes; "
                     f"tic lossless {r['lossless_pct']:.2f}%, its round trip cos "
                     f"{lc['mean_cos']:.6f})\n")
        for scope, title in (("all", "every float tensor lossy"),
                             ("proj", "weight matrices lossy; norms, biases, embeddings lossless")):
            lines.append(f"**Scope `{scope}`: {title}.** Size: whole file (artifact, or SZ3 streams "
                         "plus tic's lossless bytes for the other tensors). Scoped: bytes of the lossy "
                         "tensors alone against their original bytes. Errors over the lossy elements; "
                         "`> bound`: elements whose pointwise relative error (absolute error for `abs`) "
                         "exceeds the nominal bound.\n")
            lines.append("| tool | setting | size | scoped | mean rel | median rel | p99 rel | RMS rel "
                         "| max rel | max abs | > bound | sign flips | →0 | mean cos | min cos |")
            lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            for row in r["runs"]:
                if row["scope"] != scope:
                    continue
                lines.append(
                    f"| {row['tool']} | {row['setting']} | {fmt_pct(row['size_pct'])} | "
                    f"{fmt_pct(row['scoped_pct'])} | {pct(row['mean_rel'])} | "
                    f"{pct(row['median_rel'])} | {pct(row['p99_rel'])} | "
                    f"{pct(row['rms_rel'])} | {pct(row['max_rel'])} | "
                    f"{row['max_abs']:.2e} | {fmt_pct(100 * row['frac_over_bound'], 2)} | "
                    f"{row['sign_flips']} | {row['nonzero_to_zero']} | {row['mean_cos']:.6f} | "
                    f"{row['min_cos']:.6f} |")
            lines.append("")
    return "\n".join(lines)


def plots(results: list[dict], out: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    style = {"mantissa": ("tic mantissa:K", "o", "tab:blue"),
             "abs": ("tic abs:EB", "s", "tab:green"),
             "rel": ("tic rel:EB", "^", "tab:orange")}
    for what, fname, ylabel in (
            ("cos", "lossy_size_quality.png", "1 - mean cosine similarity (log; 0 drawn at 1e-6)"),
            ("err", "lossy_size_error.png",
             "median pointwise relative error (log; 0 drawn at 1e-4)")):
        fig, axes = plt.subplots(len(results), 2, figsize=(12, 4.6 * len(results)), squeeze=False)
        for i, r in enumerate(results):
            for j, scope in enumerate(("all", "proj")):
                ax = axes[i][j]
                groups: dict[tuple, list] = {}
                for row in r["runs"]:
                    if row["scope"] != scope:
                        continue
                    # A setting that left every tensor lossless (finer than
                    # the dtype, or not smaller) has nothing to plot.
                    if row["tool"] == "tic" and row.get("lossy_tensors", 1) == 0:
                        continue
                    kind = row["setting"].split(":")[0]
                    groups.setdefault((row["tool"], kind), []).append(row)
                for (tool, kind), rows in sorted(groups.items()):
                    rows.sort(key=lambda x: x["size_pct"])
                    xs = [x["size_pct"] for x in rows]
                    if what == "cos":
                        ys = [max(1 - x["mean_cos"], 1e-6) for x in rows]
                    else:
                        ys = [max(x["median_rel"], 1e-4) for x in rows]
                    if tool == "tic":
                        label, marker, color = style[kind]
                        ls = "-"
                    else:
                        label = f"SZ3 {'ABS' if kind == 'abs' else 'REL (value-range)'}"
                        marker, color, ls = ("x", "tab:red", "--") if kind == "abs" else ("D", "tab:purple", "--")
                    ax.plot(xs, ys, ls, marker=marker, color=color, label=label)
                    for x, y, row in zip(xs, ys, rows):
                        ax.annotate(row["setting"].split(":")[1], (x, y), fontsize=7,
                                    xytext=(3, 3), textcoords="offset points")
                ax.axvline(r["lossless_pct"], color="grey", lw=0.8, ls=":")
                if what == "cos":
                    ax.axhline(1e-3, color="grey", lw=0.8, ls=":")
                    ax.text(ax.get_xlim()[0], 1.1e-3, " cosine 0.999", fontsize=7, color="grey")
                ax.set_yscale("log")
                ax.set_xlabel("size, % of the original model.safetensors (dotted: tic lossless)")
                ax.set_ylabel(ylabel)
                ax.set_title(f"{r['model']} ({'/'.join(r['dtypes'])}), scope {scope}")
                ax.grid(True, which="both", alpha=0.3)
                ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tic", default=str(REPO / "target/release/tic"))
    ap.add_argument("--out", default=str(REPO / "tests/benchmarks/results"))
    ap.add_argument("--models", nargs="*", help="model directories (default ../shared/models/*)")
    ap.add_argument("--sentences", type=int, default=256)
    ap.add_argument("--quick", action="store_true", help="three settings only (a smoke run)")
    ap.add_argument("--replot", action="store_true",
                    help="only rewrite the tables and plots from OUT/lossy_results.json")
    args = ap.parse_args()
    if args.replot:
        out = Path(args.out)
        doc = json.loads((out / "lossy_results.json").read_text())
        (out / "lossy_tables.md").write_text(tables(doc["results"]))
        plots(doc["results"], out)
        return 0
    models = [Path(m) for m in args.models] if args.models else sorted(
        p for p in (SHARED / "models").glob("*") if (p / "model.safetensors").is_file())
    if not models:
        print("bench_lossy: SKIPPED: no models in ../shared/models", file=sys.stderr)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    emb = Embedder(args.sentences)
    info = machine_info(args.tic)
    print(json.dumps(info, indent=1))
    results = []
    with tempfile.TemporaryDirectory(prefix="tic-lossy-") as w:
        for m in models:
            results.append(measure_model(args, args.tic, m, emb, Path(w)))
    doc = {"machine": info, "sentences": args.sentences, "results": results}
    (out / "lossy_results.json").write_text(json.dumps(doc, indent=1))
    (out / "lossy_tables.md").write_text(tables(results))
    plots(results, out)
    print(f"\nwrote {out}/lossy_results.json, lossy_tables.md, lossy_size_quality.png, lossy_size_error.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
