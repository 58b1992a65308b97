#!/usr/bin/env python3
"""rmx-index vs hnswlib on the same data, in the same run.

Generates (once, deterministically) 100k normalised vectors of dim 1,152 around 1,000
Gaussian clusters plus 1,000 queries from the same mixture, and the exact top-10 by inner
product; writes them as .npy under --dir (default /tmp/rmx-bench). Then, each in its own
process (so peak memory and open time are per phase):
  hnswlib: build (M, ef_construction, --threads), save, load, single-thread queries per ef;
  rmx:     `cargo run --release -p rmx-index --example bench_ann` build / query on the same files.
Prints both side by side and, for each hnswlib point, rmx's q/s at equal-or-better recall.

    /work/pyenv/bin/python index/benches/compare_hnswlib.py [--n 100000] [--dim 1152]
        [--threads 2] [--m 16] [--efc 200] [--precision f32|f16] [--skip-build]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

EFS = [16, 24, 32, 48, 64, 96, 128]


def gen(a):
    os.makedirs(a.dir, exist_ok=True)
    tag = f"{a.n}x{a.dim}"
    paths = {k: os.path.join(a.dir, f"{k}-{tag}.npy") for k in ("base", "queries", "gt")}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    rng = np.random.default_rng(20240601)
    clusters = 1000
    centres = rng.standard_normal((clusters, a.dim), dtype=np.float32)

    def sample(count):
        lab = rng.integers(0, clusters, count)
        x = centres[lab] + rng.standard_normal((count, a.dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x, dtype=np.float32)

    base = sample(a.n)
    q = sample(a.nq)
    gt = np.empty((a.nq, 10), dtype=np.int32)
    for s in range(0, a.nq, 100):
        sc = q[s:s + 100] @ base.T
        top = np.argpartition(-sc, 10, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(sc, top, 1), axis=1)
        gt[s:s + 100] = np.take_along_axis(top, order, 1)
    np.save(paths["base"], base)
    np.save(paths["queries"], q)
    np.save(paths["gt"], gt)
    return paths


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def hnswlib_build(a, paths):
    import hnswlib
    x = np.load(paths["base"])
    t = time.perf_counter()
    p = hnswlib.Index(space="ip", dim=x.shape[1])
    p.init_index(max_elements=x.shape[0], M=a.m, ef_construction=a.efc, random_seed=7)
    p.set_num_threads(a.threads)
    p.add_items(x, np.arange(x.shape[0]))
    build = time.perf_counter() - t
    out = os.path.join(a.dir, f"hnswlib-{a.n}x{a.dim}-m{a.m}-efc{a.efc}.bin")
    p.save_index(out)
    print(json.dumps({"build_s": build, "peak_rss_mb": peak_mb(),
                      "data_mb": x.nbytes / 2**20, "file_size": os.path.getsize(out)}))


def hnswlib_query(a, paths):
    import hnswlib
    q = np.load(paths["queries"])
    gt = np.load(paths["gt"])
    path = os.path.join(a.dir, f"hnswlib-{a.n}x{a.dim}-m{a.m}-efc{a.efc}.bin")
    t = time.perf_counter()
    p = hnswlib.Index(space="ip", dim=q.shape[1])
    p.load_index(path, max_elements=a.n)
    open_ms = (time.perf_counter() - t) * 1e3
    p.set_num_threads(1)
    res = []
    for ef in EFS:
        p.set_ef(ef)
        for i in range(min(200, len(q))):          # warm-up, as rmx does
            p.knn_query(q[i:i + 1], k=10)
        t = time.perf_counter()
        hits = 0
        for i in range(len(q)):                    # one query per call, like rmx
            lab, _ = p.knn_query(q[i:i + 1], k=10)
            hits += len(set(lab[0].tolist()) & set(gt[i].tolist()))
        dt = time.perf_counter() - t
        res.append({"ef": ef, "qps": len(q) / dt, "recall": hits / (10 * len(q))})
    print(json.dumps({"open_ms": open_ms, "results": res}))


def sub(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"failed: {' '.join(args)}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--phase", default="all")
    ap.add_argument("--dir", default="/tmp/rmx-bench")
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--nq", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=1152)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--precision", default="f32")
    ap.add_argument("--skip-build", action="store_true")
    ap.add_argument("--skip-hnswlib", action="store_true")
    a = ap.parse_args()
    paths = gen(a)
    if a.phase == "hnswlib-build":
        return hnswlib_build(a, paths)
    if a.phase == "hnswlib-query":
        return hnswlib_query(a, paths)

    me = [sys.executable, os.path.abspath(__file__), "--dir", a.dir, "--n", str(a.n),
          "--dim", str(a.dim), "--threads", str(a.threads), "--m", str(a.m), "--efc", str(a.efc)]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "rmx-index", "--example", "bench_ann"],
                   cwd=root, check=True)
    exe = os.path.join(root, "target", "release", "examples", "bench_ann")
    idx = os.path.join(a.dir, f"rmx-{a.n}x{a.dim}-m{a.m}-efc{a.efc}-{a.precision}")

    hb = hq = None
    if not a.skip_hnswlib:
        if not a.skip_build:
            hb = sub(me + ["--phase", "hnswlib-build"])
        hq = sub(me + ["--phase", "hnswlib-query"])
    rb = None
    if not a.skip_build:
        rb = sub([exe, "build", "--base", paths["base"], "--out", idx, "--threads", str(a.threads),
                  "--m", str(a.m), "--efc", str(a.efc), "--precision", a.precision])
    rq = sub([exe, "query", "--index", idx, "--queries", paths["queries"], "--gt", paths["gt"],
              "--efs", ",".join(map(str, EFS))])

    print(f"data: {a.n} x {a.dim} clustered (1,000 clusters), {a.nq} queries, k=10, "
          f"M={a.m}, ef_construction={a.efc}, build threads={a.threads}, rmx precision={a.precision}")
    if hb or rb:
        print(f"{'':18}{'hnswlib':>14}{'rmx':>14}")
        if hb and rb:
            print(f"{'build (s)':18}{hb['build_s']:>14.1f}{rb['build_s']:>14.1f}")
            print(f"{'peak RSS (MB)':18}{hb['peak_rss_mb']:>14.0f}{rb['peak_rss_mb']:>14.0f}"
                  f"   (hnswlib's includes the {hb['data_mb']:.0f} MB numpy input)")
            print(f"{'file size (MB)':18}{hb['file_size'] / 2**20:>14.1f}{rb['file_size'] / 2**20:>14.1f}")
        elif rb:
            print(f"{'build (s)':18}{'-':>14}{rb['build_s']:>14.1f}")
    if hq:
        print(f"{'open (ms)':18}{hq['open_ms']:>14.2f}{rq['open_ms']:>14.2f}   (rmx: page cache evicted first)")
    print(f"\n{'ef':>5} | {'hnswlib q/s':>11} {'recall':>8} | {'rmx q/s':>9} {'recall':>8} | ratio rmx/hnswlib")
    for i, r in enumerate(rq["results"]):
        h = hq["results"][i] if hq else None
        hs = f"{h['qps']:>11.0f} {h['recall']:>8.4f}" if h else f"{'-':>11} {'-':>8}"
        ratio = f"{r['qps'] / h['qps']:.2f}" if h else "-"
        print(f"{r['ef']:>5} | {hs} | {r['qps']:>9.0f} {r['recall']:>8.4f} | {ratio}")
    if hq:
        print("\nat equal recall (rmx's fastest ef whose recall >= hnswlib's):")
        for h in hq["results"]:
            ok = [r for r in rq["results"] if r["recall"] >= h["recall"] - 1e-9]
            if ok:
                best = max(ok, key=lambda r: r["qps"])
                print(f"  hnswlib ef={h['ef']:>3} recall {h['recall']:.4f} {h['qps']:>7.0f} q/s  vs  "
                      f"rmx ef={best['ef']:>3} recall {best['recall']:.4f} {best['qps']:>7.0f} q/s"
                      f"  ratio {best['qps'] / h['qps']:.2f}")
            else:
                print(f"  hnswlib ef={h['ef']:>3} recall {h['recall']:.4f}: rmx never reaches it")


if __name__ == "__main__":
    main()
