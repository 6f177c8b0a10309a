#!/usr/bin/env python3
"""Costs of tic's security features, each against its baseline in the same run.

- verify: `tic verify` throughput on a large signed artifact against the
  machine's SHA-256 speed times its cores (the faster of `sha256sum` and
  `openssl dgst -sha256`, single-threaded, on the same bytes). Target >= 90%.
- signing: `compile --sign` time against `compile --unsigned`. Target < 5% more.
- encryption: `compile --encrypt-to` and `decompress --identity` against the
  same artifact unencrypted, at 1 thread and on all cores. Target <= 15% more.

Standard library only. The large input is a synthetic BF16 model (normally
distributed weights, written once into the work directory) so the figures
are about throughput, not about one small model.

usage: bench_security.py [--tic PATH] [--size-mb N] [--repeat N] [--work DIR] [--out PATH]
"""
import argparse, json, os, platform, shutil, statistics, struct, subprocess, sys, time, random, math

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stderr.decode()}")
    return r


def timed(cmd, repeat, before=None):
    ts = []
    for _ in range(repeat + 1):  # one warm-up
        if before:
            before()
        t = time.perf_counter()
        run(cmd)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts[1:])


def make_model(path, size_mb):
    """A BF16 safetensors file of `size_mb` MB: 8 tensors of N(0, 0.02) weights."""
    if os.path.exists(path) and os.path.getsize(path) > size_mb * 1_000_000:
        return
    n_tensors = 8
    elems = size_mb * 1_000_000 // 2 // n_tensors
    rows = 1024
    cols = elems // rows
    rng = random.Random(1234)
    # A table of 65536 bf16 values drawn from N(0, 0.02), then sampled: fast in pure Python.
    table = []
    for _ in range(1 << 16):
        f = struct.unpack("<I", struct.pack("<f", rng.gauss(0.0, 0.02)))[0]
        table.append((f >> 16) & 0xFFFF)
    block = struct.pack(f"<{1 << 16}H", *table)
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    nbytes = rows * cols * 2
    for i in range(n_tensors):
        header[f"layer.{i}.weight"] = {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [off, off + nbytes]}
        off += nbytes
    j = json.dumps(header, separators=(",", ":"))
    j += " " * (-len(j) % 8)
    with open(path + ".part", "wb") as f:
        f.write(struct.pack("<Q", len(j)) + j.encode())
        for i in range(n_tensors):
            left = nbytes
            k = 0
            while left:
                # rotate the block so tensors differ
                b = block[(k * 2 * 7919) % len(block):] + block[: (k * 2 * 7919) % len(block)]
                f.write(b[:left])
                left -= min(left, len(b))
                k += 1
    os.replace(path + ".part", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tic", default=os.path.join(ROOT, "target/release/tic"))
    ap.add_argument("--size-mb", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--work", default="/dev/shm/tic-bench-security" if os.path.isdir("/dev/shm") else "/tmp/tic-bench-security")
    ap.add_argument("--out", help="write PATH.json and PATH.md")
    a = ap.parse_args()
    tic = a.tic
    os.makedirs(a.work, exist_ok=True)
    w = lambda *p: os.path.join(a.work, *p)
    cores = len(os.sched_getaffinity(0))
    model = w("model.safetensors")
    make_model(model, a.size_mb)
    size = os.path.getsize(model)

    run([tic, "keygen", "-o", w("k"), "--force"])
    run([tic, "keygen", "-o", w("k"), "--force"])
    symkey = w("sym.key")
    with open(symkey, "wb") as f:
        f.write(os.urandom(32))

    def rm(p):
        return lambda: shutil.rmtree(p, ignore_errors=True)

    res = {"machine": {"cores": cores, "cpu": cpu_model(), "python": platform.python_version()}, "input_bytes": size}
    rows = []
    for threads in sorted({1, cores}):
        T = ["--threads", str(threads)]
        c_plain = timed([tic, *T, "compile", "--unsigned", model, "-o", w("plain.tic"), "--force"], a.repeat)
        c_sign = timed([tic, *T, "compile", "--sign", w("k.key"), model, "-o", w("signed.tic"), "--force"], a.repeat)
        c_enc = timed([tic, *T, "compile", "--sign", w("k.key"), "--encrypt-key", symkey, model, "-o", w("enc.tic"), "--force"], a.repeat)
        d_plain = timed([tic, *T, "decompress", "--trusted-key", w("k.pub"), w("signed.tic"), "-o", w("out")], a.repeat, rm(w("out")))
        d_enc = timed([tic, *T, "decompress", "--trusted-key", w("k.pub"), "--identity", symkey, w("enc.tic"), "-o", w("out")], a.repeat, rm(w("out")))
        rows.append({"threads": threads, "compile_unsigned_s": c_plain, "compile_signed_s": c_sign, "compile_encrypted_s": c_enc,
                     "decompress_plain_s": d_plain, "decompress_encrypted_s": d_enc,
                     "signing_overhead": c_sign / c_plain - 1, "encrypt_overhead": c_enc / c_sign - 1, "decrypt_overhead": d_enc / d_plain - 1})
    res["compile_decompress"] = rows

    art = w("signed.tic")
    art_size = os.path.getsize(art)
    v = timed([tic, "verify", "--trusted-key", w("k.pub"), art], a.repeat)
    sha = {}
    for name, cmd in [("sha256sum", ["sha256sum", art]), ("openssl", ["openssl", "dgst", "-sha256", art])]:
        if shutil.which(cmd[0]):
            sha[name] = timed(cmd, a.repeat)
    best = min(sha.values())
    machine_rate = art_size / best * cores
    verify_rate = art_size / v
    res["verify"] = {"artifact_bytes": art_size, "verify_s": v, "verify_MBps": verify_rate / 1e6,
                     "sha256_single_MBps": {k: art_size / t / 1e6 for k, t in sha.items()},
                     "machine_sha256_MBps": machine_rate / 1e6, "fraction": verify_rate / machine_rate}

    lines = [f"# tic security costs ({size/1e6:.0f} MB BF16 input, {cores} cores, {res['machine']['cpu']})", ""]
    lines.append("| threads | compile unsigned s | signed s | signing overhead | encrypted s | encryption overhead | decompress s | encrypted s | decryption overhead |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for r in rows:
        lines.append(f"| {r['threads']} | {r['compile_unsigned_s']:.3f} | {r['compile_signed_s']:.3f} | {100*r['signing_overhead']:+.1f}% | "
                     f"{r['compile_encrypted_s']:.3f} | {100*r['encrypt_overhead']:+.1f}% | {r['decompress_plain_s']:.3f} | "
                     f"{r['decompress_encrypted_s']:.3f} | {100*r['decrypt_overhead']:+.1f}% |")
    lines.append("")
    vv = res["verify"]
    lines.append(f"verify: {vv['verify_MBps']:.0f} MB/s; SHA-256 single-thread " +
                 ", ".join(f"{k} {x:.0f} MB/s" for k, x in vv["sha256_single_MBps"].items()) +
                 f"; machine (best x {cores} cores) {vv['machine_sha256_MBps']:.0f} MB/s; verify reaches {100*vv['fraction']:.1f}%")
    lines.append("")
    lines.append("targets:")
    checks = []
    for r in rows:
        checks.append((f"signing adds < 5% to compile ({r['threads']} thr)", r["signing_overhead"] < 0.05))
        checks.append((f"encryption adds <= 15% to compile ({r['threads']} thr)", r["encrypt_overhead"] <= 0.15))
        checks.append((f"decryption adds <= 15% to decompress ({r['threads']} thr)", r["decrypt_overhead"] <= 0.15))
    checks.append(("verify >= 90% of SHA-256 x cores", vv["fraction"] >= 0.9))
    for name, passed in checks:
        lines.append(f"- {'PASS' if passed else 'FAIL'}: {name}")
        ok &= passed
    res["targets"] = {n: p for n, p in checks}
    text = "\n".join(lines)
    print(text)
    if a.out:
        os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
        with open(a.out + ".json", "w") as f:
            json.dump(res, f, indent=2)
        with open(a.out + ".md", "w") as f:
            f.write(text + "\n")
    return 0


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    sys.exit(main())
