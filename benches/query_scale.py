#!/usr/bin/env python3
"""Whole-process query cost against small and large label sets, and streaming throughput.

  python3 benches/query_scale.py [--rmx target/release/rmx] [--data ../shared/data] [--runs 10]

1. Builds (once, cached under benches/.cache) an index of the 80 FewRel relations and one of
   the 11,665 Wikidata properties, then times `rmx query --text ...` as a whole process
   (start, model load, index open, one query, exit): median of --runs.
2. Streams --stream FewRel val_wiki sentences through `rmx query -k 1` and reports
   sentences/s and tokens/s (compare with `rmx bench`).
Only the Python standard library is needed.
"""
import argparse, json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(cmd, stdin=None):
    t = time.perf_counter()
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr}")
    return dt, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rmx", default=os.path.join(ROOT, "target/release/rmx"))
    ap.add_argument("--data", default=os.path.join(ROOT, "../shared/data"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--stream", type=int, default=2000)
    args = ap.parse_args()
    cache = os.path.join(ROOT, "benches/.cache")
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, ".gitignore"), "w") as f:
        f.write("*\n")

    desc = json.load(open(os.path.join(args.data, "rematching/fewrel/relation_description/relation_description_addsynonym_processed.json")))
    names = json.load(open(os.path.join(args.data, "fewrel/pid2name.json")))
    sets = {}
    with open(os.path.join(cache, "fewrel80.jsonl"), "w") as f:
        for r in desc:
            f.write(json.dumps({"id": r["relation"], "name": names.get(r["relation"], [r["relation"]])[0],
                                "description": " ".join(r["description"]), "head": r["h"], "tail": r["t"]}) + "\n")
    sets["fewrel-80"] = os.path.join(cache, "fewrel80.jsonl")
    wd = json.load(open(os.path.join(args.data, "wikidata/all_wikidata_properties.json")))
    with open(os.path.join(cache, "wikidata.jsonl"), "w") as f:
        seen = set()
        for p in wd:
            pid = p["property"].rsplit("/", 1)[-1]
            text = (p.get("propertyDescription") or p.get("propertyLabel") or "").strip()
            if pid in seen or not text:
                continue
            seen.add(pid)
            f.write(json.dumps({"id": pid, "name": p.get("propertyLabel", pid), "description": text}) + "\n")
    sets[f"wikidata-{len(seen)}"] = os.path.join(cache, "wikidata.jsonl")

    query = ["--text", "Marie Curie married Pierre Curie in 1895.", "--head", "Marie Curie", "--tail", "Pierre Curie", "-k", "5"]
    results = {}
    for name, path in sets.items():
        index = os.path.join(cache, f"index-{name}")
        # A cached index built by another rmx version or model is refused: rebuild it.
        stale = subprocess.run([args.rmx, "query", "--index", index] + query, capture_output=True).returncode != 0
        if stale:
            dt, _ = run([args.rmx, "index", "build", path, "-o", index])
            print(f"built {name} in {dt:.1f} s", file=sys.stderr)
        run([args.rmx, "query", "--index", index] + query)  # warm the page cache
        times = [run([args.rmx, "query", "--index", index] + query)[0] for _ in range(args.runs)]
        results[name] = statistics.median(times) * 1e3
        print(f"{name:>16}: whole-process query {results[name]:.1f} ms (median of {args.runs})")

    val = json.load(open(os.path.join(args.data, "fewrel/val_wiki.json")))
    lines, gold = [], []
    for rel, items in val.items():
        for it in items:
            lines.append(json.dumps({"tokens": it["tokens"], "h": {"pos": [min(it["h"][2][0]), max(it["h"][2][0]) + 1]},
                                     "t": {"pos": [min(it["t"][2][0]), max(it["t"][2][0]) + 1]}}))
            gold.append(rel)
    step = max(1, len(lines) // args.stream)
    lines, gold = lines[::step][: args.stream], gold[::step][: args.stream]
    stream = "\n".join(lines) + "\n"
    dt, out = run([args.rmx, "query", "--index", os.path.join(cache, "index-fewrel-80"), "-k", "1", "--batch-size", "64"], stream)
    words = sum(len(json.loads(l)["tokens"]) for l in lines)
    print(f"streaming: {len(lines)} FewRel sentences in {dt:.1f} s = {len(lines)/dt:.0f} sentences/s ({words/dt:.0f} words/s, whole process)")

    # f16 storage: same queries against an f16 copy of the 80-relation index.
    f16 = os.path.join(cache, "index-fewrel-80-f16")
    if subprocess.run([args.rmx, "query", "--index", f16] + query, capture_output=True).returncode != 0:
        run([args.rmx, "index", "build", sets["fewrel-80"], "-o", f16, "--precision", "f16"])
    _, out16 = run([args.rmx, "query", "--index", f16, "-k", "1", "--batch-size", "64"], stream)
    top32 = [json.loads(l)["results"][0] for l in out.splitlines()]
    top16 = [json.loads(l)["results"][0] for l in out16.splitlines()]
    agree = sum(a["id"] == b["id"] for a, b in zip(top32, top16)) / len(top32)
    max_err = max(abs(a["score"] - b["score"]) for a, b in zip(top32, top16))
    acc32 = sum(a["id"] == g for a, g in zip(top32, gold)) / len(gold)
    acc16 = sum(a["id"] == g for a, g in zip(top16, gold)) / len(gold)
    print(f"f16 vs f32 (80 candidates): top-1 agreement {agree:.4f}, max score difference {max_err:.2e}, accuracy {acc16:.4f} vs {acc32:.4f}")
    print(json.dumps({"query_ms": results, "stream_sentences_per_s": len(lines) / dt, "f16_top1_agreement": agree,
                      "f16_max_score_diff": max_err, "accuracy_f32": acc32, "accuracy_f16": acc16}))


if __name__ == "__main__":
    main()
