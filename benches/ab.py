#!/usr/bin/env python3
"""A/B of two rmx binaries, alternated in one run (A B, B A, A B, ...), so that both see the
same machine state: `rmx bench` (batch throughput and one-sentence latency, per precision;
`--precisions ''` skips it)
and `rmx train` on the workload of compare_train.py (`--train-steps` batches of 128 FewRel
sentences of the training relations, the first step a warm-up). Prints the median and the
spread (min-max) of each figure per binary, and B / A.

Usage: python3 benches/ab.py A_BINARY B_BINARY [--rounds 3] [--precisions f32,bf16,int8]
       [--train-steps 4] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import tempfile
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def bench(binary: str, precision: str, threads: int) -> dict[str, float]:
    out = subprocess.run([binary, "--threads", str(threads), "bench", "--precision", precision, "--iters", "5", "--single-iters", "30"],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    return {f"{precision} batch tokens/s": r["batch_tokens_per_s"], f"{precision} single ms": r["single_latency_ms"]}


def training_data(path: Path, n: int) -> None:
    """`n` sentences of the m = 5 training relations of val_wiki, shuffled with seed 0."""
    wiki = json.loads((DATA / "fewrel/val_wiki.json").read_text())
    test = json.loads((DATA / "rematching/rel2id/fewrel_rel2id/fewrel_rel2id_5_ori.json").read_text())["test"]
    pool = [(r, x) for r, xs in wiki.items() if r not in test for x in xs]
    random.Random(0).shuffle(pool)
    out: dict[str, list] = {}
    for r, x in pool[:n]:
        out.setdefault(r, []).append(x)
    path.write_text(json.dumps(out))


def train(binary: str, data: Path, threads: int, tmp: Path) -> dict[str, float]:
    log = tmp / "log.jsonl"
    subprocess.run([binary, "--threads", str(threads), "train", "--data", str(data),
                    "--descriptions", str(DATA / "rematching/fewrel/relation_description/relation_description_addsynonym_processed.json"),
                    "--unseen", "none", "-o", str(tmp / "ck"), "--epochs", "1", "--batch-size", "128", "--log", str(log)],
                   capture_output=True, text=True, check=True)
    steps = [json.loads(line) for line in log.read_text().splitlines()][1:]
    return {"train sentences/s": sum(s["sentences"] for s in steps) / sum(s["seconds"] for s in steps)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precisions", default="f32,bf16,int8")
    ap.add_argument("--train-steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    results: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "train.json"
        if args.train_steps:
            training_data(data, args.train_steps * 128)
        for r in range(args.rounds):
            # A B, B A, A B, ...: a drift in the machine's load hits both alike.
            order = (("A", args.a), ("B", args.b)) if r % 2 == 0 else (("B", args.b), ("A", args.a))
            for name, binary in order:
                figures = {}
                for p in filter(None, args.precisions.split(",")):
                    figures.update(bench(binary, p, args.threads))
                if args.train_steps:
                    figures.update(train(binary, data, args.threads, tmp))
                for k, v in figures.items():
                    results[name].setdefault(k, []).append(v)
    print(f"{args.rounds} rounds alternated, {args.threads} threads; median (min-max); best = the fastest run of each")
    for k in results["A"]:
        a, b = results["A"][k], results["B"][k]
        ma, mb = statistics.median(a), statistics.median(b)
        best = min if k.endswith("ms") else max
        print(f"{k:24s} A {ma:9.2f} ({min(a):.2f}-{max(a):.2f})   B {mb:9.2f} ({min(b):.2f}-{max(b):.2f})   "
              f"B/A median {mb / ma:.3f}, best {best(b) / best(a):.3f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
