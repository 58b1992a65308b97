#!/usr/bin/env python3
"""One-shot `rmx query` as a whole process (start, model load, index open, one query, exit),
for two or more rmx binaries alternated on the same index.

  python3 benches/query_ab.py --index IDX [--model DIR] [--rounds 3] [--runs 15] OLD/rmx NEW/rmx

Each round runs every binary once as a warm-up, then --runs times, in turn; it prints each
binary's median per round and fastest run, and the ratio of the medians of the round medians
to the first binary's. Only the Python standard library is needed. Run it on a quiet machine.
"""
import argparse, statistics, subprocess, sys, time

QUERY = ["--text", "Ludwig van Beethoven was born in Bonn.", "--head", "Ludwig van Beethoven", "--tail", "Bonn", "-k", "5"]


def once(cmd):
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.decode(errors='replace')}")
    return dt * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binaries", nargs="+", help="rmx binaries to compare (the first is the baseline)")
    ap.add_argument("--index", required=True, help="index directory built by `rmx index build`")
    ap.add_argument("--model", help="model or checkpoint directory (default: rmx's default model)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    extra = ["--index", args.index] + (["--model", args.model] if args.model else [])
    medians = {b: [] for b in args.binaries}
    fastest = {b: [] for b in args.binaries}
    for _ in range(args.rounds):
        for b in args.binaries:
            cmd = [b, "query"] + extra + QUERY
            once(cmd)
            times = [once(cmd) for _ in range(args.runs)]
            medians[b].append(statistics.median(times))
            fastest[b].append(min(times))
    base = statistics.median(medians[args.binaries[0]])
    for b in args.binaries:
        m = statistics.median(medians[b])
        print(f"{b}: medians " + " · ".join(f"{x:.1f}" for x in medians[b]) + " ms; fastest " + " · ".join(f"{x:.1f}" for x in fastest[b]) + f" ms; / first {m / base:.2f}")
    print("load average:", " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()
