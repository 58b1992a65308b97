#!/usr/bin/env python3
"""Compare rmx with ONNX Runtime (and PyTorch) on the same encoder workloads.

Workloads (all-MiniLM-L6-v2 by default, fp32, CPU):
  (a) batch: B x L synthetic token ids (default 32 x 64): [CLS] + random ids
      from the vocabulary + [SEP], fixed seed; attention mask all ones.
      Reported: tokens/s (best and median over --iters timed iterations after
      warm-up), ms per batch, achieved GFLOP/s.
  (b) single: one sequence of --single-len tokens (default 37), latency in ms,
      median (and p90, best) over --single-runs runs after warm-up.

Engines:
  ORT      onnxruntime InferenceSession on a torch.onnx.export of BertModel
           (opset 17, dynamic batch/sequence axes, cached under benches/.cache),
           intra_op_num_threads=T, inter_op_num_threads=1, ORT_ENABLE_ALL,
           ORT_SEQUENTIAL.
  PyTorch  transformers BertModel (default SDPA attention), torch.set_num_threads(T),
           torch.inference_mode().
  rmx      `RMX bench --model DIR --batch-size B --seq-len L --iters N --single-iters S --threads T`,
           which prints one JSON line:
           {"batch_tokens_per_s", "batch_ms", "single_seq_len",
            "single_latency_ms", "isa", "precision", "bf16_kernel", "threads"}.
           If the binary is missing or fails, the other figures are still printed.
  rmx-bf16 the same with `--precision bf16` (linear layers on bf16 dot products,
           f32 sums: AMX tiles where the CPU has amx_bf16, else vdpbf16ps; the
           JSON's "bf16_kernel" says which); skipped with a note on CPUs without
           avx512_bf16.
  rmx-int8 the same with `--precision int8` (linear layers on AVX512-VNNI int8 dot
           products); skipped with a note on CPUs without avx512_vnni.
  ort-int8 ONNX Runtime on onnxruntime.quantization.quantize_dynamic of the same export
           (int8 weights per channel, uint8 activations quantized at run time): the
           int8 engine a user could pick instead of rmx-int8.

FLOP count (per forward of B sequences of L tokens; elementwise ops,
LayerNorm, softmax, GELU, biases and the embedding lookup are not counted):
  FLOPs = 2 * P_mm * B * L  +  n_layers * 4 * B * L^2 * H
  P_mm  = n_layers * (4 H^2 + 2 H I)     (Q, K, V, attn-out, FFN up, FFN down)
  The second term is QK^T (2 L^2 H per sequence per layer, over all heads)
  plus softmax(QK^T) V (another 2 L^2 H).
  all-MiniLM-L6-v2: H=384, I=1536, 6 layers: P_mm = 10,616,832;
  32 x 64 -> 43.49 + 1.21 = 44.69 GFLOP per batch.

Usage:  python benches/compare_ort.py [--model DIR] [--rmx target/release/rmx]
                                      [--iters 20] [--single-len 37] [--threads 2]
                                      [--engines ort,torch,rmx,rmx-bf16,ort-int8,rmx-int8]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
CLS_ID, SEP_ID = 101, 102
RMX_KEYS = ("batch_tokens_per_s", "batch_ms", "single_seq_len", "single_latency_ms")


def default_model_dir() -> Path:
    if os.environ.get("RMX_MODEL"):
        return Path(os.environ["RMX_MODEL"])
    home = os.environ.get("RMX_HOME")
    if not home:
        data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        home = os.path.join(data, "rmx")
    return Path(home) / "models" / "all-MiniLM-L6-v2"


def cpu_info() -> dict:
    info = {"machine": platform.machine(), "logical_cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            txt = f.read()
        for line in txt.splitlines():
            if line.startswith("model name"):
                info["model"] = line.split(":", 1)[1].strip()
                break
        flags = set()
        for line in txt.splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
        info["isa"] = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f in flags]
    except OSError:
        pass
    try:
        info["affinity_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    return info


def flops_per_forward(cfg: dict, batch: int, seq: int) -> dict:
    h, i, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    p_mm = n * (4 * h * h + 2 * h * i)
    dense = 2 * p_mm * batch * seq
    attn = n * 4 * batch * seq * seq * h
    return {"params_in_matmuls": p_mm, "dense_flops": dense, "attention_flops": attn, "total_flops": dense + attn}


def make_ids(rng: np.random.Generator, batch: int, seq: int, vocab: int) -> np.ndarray:
    """[CLS] + random ids in [1000, vocab) (skips [PAD]/[unused*]/specials) + [SEP]."""
    assert seq >= 2
    ids = rng.integers(1000, vocab, size=(batch, seq), dtype=np.int64)
    ids[:, 0] = CLS_ID
    ids[:, -1] = SEP_ID
    return ids


def summarise(times_s: list[float], tokens: int) -> dict:
    med = statistics.median(times_s)
    best = min(times_s)
    srt = sorted(times_s)
    p90 = srt[min(len(srt) - 1, int(round(0.9 * (len(srt) - 1))))]
    return {
        "runs": len(times_s),
        "median_ms": med * 1e3, "best_ms": best * 1e3, "p90_ms": p90 * 1e3,
        "median_tokens_per_s": tokens / med, "best_tokens_per_s": tokens / best,
    }


def time_fn(fn, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


# --------------------------------------------------------------------------
def load_torch_model(model_dir: Path, attn: str):
    import torch
    import transformers
    from transformers import BertModel

    transformers.logging.set_verbosity_error()  # no "pooler.* UNEXPECTED" load report
    transformers.logging.disable_progress_bar()

    model = BertModel.from_pretrained(str(model_dir), attn_implementation=attn, dtype=torch.float32,
                                      add_pooling_layer=False)
    return model.eval()


def export_onnx(model_dir: Path, path: Path, opset: int) -> None:
    import torch

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    model = Wrap(load_torch_model(model_dir, "eager")).eval()
    ids = torch.tensor(make_ids(np.random.default_rng(1), 2, 16, 30522))
    args = (ids, torch.ones_like(ids), torch.zeros_like(ids))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
    t0 = time.perf_counter()
    with torch.no_grad():
        try:
            # TorchScript-based exporter: one self-contained .onnx file.
            torch.onnx.export(model, args, str(tmp), input_names=names, output_names=["last_hidden_state"],
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False)
        except TypeError:  # very old torch without the dynamo kwarg
            torch.onnx.export(model, args, str(tmp), input_names=names, output_names=["last_hidden_state"],
                              dynamic_axes=axes, opset_version=opset, do_constant_folding=True)
    os.replace(tmp, path)
    print(f"[export] {path} ({path.stat().st_size / 1e6:.1f} MB, opset {opset}) in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)


def ensure_onnx(model_dir: Path, cache_dir: Path, opset: int, force: bool) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    gi = cache_dir / ".gitignore"
    if not gi.exists():
        gi.write_text("# generated by benches/compare_ort.py\n*\n")
    st = model_dir / "model.safetensors"
    stamp = f"{st.stat().st_size}-{int(st.stat().st_mtime)}"
    path = cache_dir / f"{model_dir.name}-opset{opset}-{stamp}.onnx"
    if force or not path.exists():
        export_onnx(model_dir, path, opset)
    else:
        print(f"[export] using cached {path}", file=sys.stderr)
    return path


def ensure_onnx_int8(onnx_path: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = onnx_path.with_name(onnx_path.stem + "-int8-dynamic.onnx")
    if not path.exists():
        print(f"[ort-int8] quantize_dynamic -> {path}", file=sys.stderr)
        quantize_dynamic(str(onnx_path), str(path), weight_type=QuantType.QInt8, per_channel=True)
    return path


def ort_session(onnx_path: Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])


def bench_ort(sess, batch_ids, single_ids, args) -> dict:
    def feed(ids):
        return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}

    fb, fs = feed(batch_ids), feed(single_ids)
    out_names = ["last_hidden_state"]
    tb = time_fn(lambda: sess.run(out_names, fb), args.warmup, args.iters)
    ts = time_fn(lambda: sess.run(out_names, fs), args.warmup_single, args.single_runs)
    return {"batch": summarise(tb, batch_ids.size), "single": summarise(ts, single_ids.size)}


def bench_torch(model, batch_ids, single_ids, args) -> dict:
    import torch

    def fwd(ids):
        t = torch.from_numpy(ids)
        with torch.inference_mode():
            return model(input_ids=t, attention_mask=torch.ones_like(t), token_type_ids=torch.zeros_like(t)).last_hidden_state

    tb = time_fn(lambda: fwd(batch_ids), args.warmup, args.iters)
    ts = time_fn(lambda: fwd(single_ids), args.warmup_single, args.single_runs)
    return {"batch": summarise(tb, batch_ids.size), "single": summarise(ts, single_ids.size)}


def run_rmx(args, model_dir: Path, precision: str) -> tuple[dict | None, str | None]:
    exe = Path(args.rmx)
    if not exe.is_absolute() and not exe.exists():
        exe = REPO_ROOT / args.rmx
    if not exe.exists():
        found = shutil.which(args.rmx)
        if not found:
            return None, (f"rmx binary not found at {args.rmx!r} (build it with `cargo build --release`); "
                          "showing ORT/PyTorch figures only")
        exe = Path(found)
    cmd = [str(exe), "bench", "--model", str(model_dir), "--batch-size", str(args.batch_size),
           "--seq-len", str(args.seq_len), "--iters", str(args.iters), "--single-iters", str(args.single_runs),
           "--threads", str(args.threads),
           "--precision", precision]
    print(f"[rmx] {' '.join(cmd)}", file=sys.stderr)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.rmx_timeout)
    except subprocess.TimeoutExpired:
        return None, f"rmx bench timed out after {args.rmx_timeout} s"
    except OSError as e:
        return None, f"could not run {exe}: {e}"
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-8:])
        return None, f"rmx bench exited with status {p.returncode}:\n{tail}"
    for line in reversed(p.stdout.strip().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        missing = [k for k in RMX_KEYS if k not in d]
        if missing:
            return None, f"rmx bench JSON lacks {missing}: {line}"
        return d, None
    return None, f"rmx bench printed no JSON line; stdout was:\n{p.stdout[-2000:]}"


# --------------------------------------------------------------------------
def fmt(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="model dir (default: rmx's default location)")
    ap.add_argument("--rmx", default="target/release/rmx", help="rmx binary (default: target/release/rmx)")
    ap.add_argument("--iters", type=int, default=20, help="timed batch iterations (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed batch warm-up iterations (default 3)")
    ap.add_argument("--single-len", type=int, default=37, help="tokens in the latency workload (default 37)")
    ap.add_argument("--single-runs", type=int, default=50, help="timed single-sequence runs (default 50)")
    ap.add_argument("--warmup-single", type=int, default=10, help="untimed single-sequence runs (default 10)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2, help="threads for every engine (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--cache-dir", type=Path, default=REPO_ROOT / "benches" / ".cache",
                    help="where the exported .onnx is cached (git-ignored; default benches/.cache)")
    ap.add_argument("--reexport", action="store_true", help="re-export the ONNX model even if cached")
    ap.add_argument("--engines", default="ort,torch,rmx,rmx-bf16,ort-int8,rmx-int8",
                    help="comma list of ort,torch,rmx,rmx-bf16,ort-int8,rmx-int8 (default all)")
    ap.add_argument("--rmx-timeout", type=int, default=900, help="seconds allowed for `rmx bench`")
    args = ap.parse_args()
    if args.opset < 17:
        ap.error("--opset must be >= 17")
    engines = {e.strip() for e in args.engines.split(",") if e.strip()}
    model_dir = (args.model or default_model_dir()).expanduser()
    if not (model_dir / "config.json").is_file():
        print(f"model not found in {model_dir}: run scripts/fetch-model.sh or pass --model DIR", file=sys.stderr)
        return 2
    cfg = json.loads((model_dir / "config.json").read_text())

    rng = np.random.default_rng(args.seed)
    batch_ids = make_ids(rng, args.batch_size, args.seq_len, cfg["vocab_size"])
    single_ids = make_ids(rng, 1, args.single_len, cfg["vocab_size"])
    fl_batch = flops_per_forward(cfg, args.batch_size, args.seq_len)
    fl_single = flops_per_forward(cfg, 1, args.single_len)

    versions = {"python": platform.python_version(), "numpy": np.__version__}
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    results: dict[str, dict] = {}
    notes: list[str] = []

    # ---- ONNX Runtime ----
    if engines & {"ort", "torch", "ort-int8"}:
        import torch

        torch.set_num_threads(args.threads)
        versions["torch"] = torch.__version__
    for engine in ("ort", "ort-int8"):
        if engine not in engines:
            continue
        import onnxruntime as ort

        versions["onnxruntime"] = ort.__version__
        onnx_path = ensure_onnx(model_dir, args.cache_dir, args.opset, args.reexport)
        if engine == "ort-int8":
            onnx_path = ensure_onnx_int8(onnx_path)
        sess = ort_session(onnx_path, args.threads)
        # sanity: ORT output == PyTorch output on the single sequence
        ref = load_torch_model(model_dir, "eager")
        with torch.inference_mode():
            t = torch.from_numpy(single_ids)
            want = ref(input_ids=t, attention_mask=torch.ones_like(t), token_type_ids=torch.zeros_like(t)).last_hidden_state.numpy()
        got = sess.run(["last_hidden_state"], {"input_ids": single_ids, "attention_mask": np.ones_like(single_ids),
                                               "token_type_ids": np.zeros_like(single_ids)})[0]
        d = float(np.abs(got - want).max())
        print(f"[{engine}] max |ORT - PyTorch| on the single sequence: {d:.2e}", file=sys.stderr)
        if d > 1e-3 and engine == "ort":
            notes.append(f"WARNING: ORT output differs from PyTorch by {d:.2e}")
        del ref
        print(f"[{engine}] timing (threads={args.threads})...", file=sys.stderr)
        results[engine] = bench_ort(sess, batch_ids, single_ids, args)
        results[engine]["max_abs_diff_vs_torch"] = d
        del sess

    # ---- PyTorch ----
    if "torch" in engines:
        import transformers

        versions["transformers"] = transformers.__version__
        model = load_torch_model(model_dir, "sdpa")
        print(f"[torch] timing (threads={torch.get_num_threads()}, attn=sdpa)...", file=sys.stderr)
        results["torch"] = bench_torch(model, batch_ids, single_ids, args)
        del model

    # ---- rmx (f32; bf16 where the CPU has avx512_bf16, int8 where it has avx512_vnni) ----
    for engine, feature in (("rmx-bf16", "avx512_bf16"), ("rmx-int8", "avx512_vnni")):
        if engine in engines and feature not in cpu_info().get("isa", []):
            notes.append(f"{engine}: skipped, this CPU has no {feature}")
            engines.discard(engine)
    for engine, precision in (("rmx", "f32"), ("rmx-bf16", "bf16"), ("rmx-int8", "int8")):
        if engine not in engines:
            continue
        rmx, err = run_rmx(args, model_dir, precision)
        if err:
            notes.append(f"{engine}: {err}")
        elif rmx is not None:
            if int(rmx.get("single_seq_len", args.single_len)) != args.single_len:
                notes.append(f"{engine} measured single latency at {rmx['single_seq_len']} tokens, "
                             f"ORT/PyTorch at {args.single_len} (--single-len)")
            if rmx.get("threads") not in (None, args.threads):
                notes.append(f"{engine} reports threads={rmx.get('threads')}, others use {args.threads}")
            results[engine] = {
                "batch": {"median_tokens_per_s": float(rmx["batch_tokens_per_s"]), "median_ms": float(rmx["batch_ms"])},
                "single": {"median_ms": float(rmx["single_latency_ms"])},
                "raw": rmx,
            }

    for r in results.values():
        r["batch"]["median_gflop_per_s"] = fl_batch["total_flops"] / (r["batch"]["median_ms"] * 1e-3) / 1e9
        if "best_ms" in r["batch"]:
            r["batch"]["best_gflop_per_s"] = fl_batch["total_flops"] / (r["batch"]["best_ms"] * 1e-3) / 1e9
        r["single"]["median_gflop_per_s"] = fl_single["total_flops"] / (r["single"]["median_ms"] * 1e-3) / 1e9

    # ---- report ----
    cpu = cpu_info()
    if load_before is not None:
        load_after = os.getloadavg()
        cpu["loadavg_1min_before_after"] = [round(load_before[0], 2), round(load_after[0], 2)]
        ncpu = cpu.get("affinity_cpus") or os.cpu_count() or 1
        if max(load_before[0], load_after[0]) > max(1.0, ncpu - args.threads + 0.5):
            notes.append(f"machine was busy (1-min load average {load_before[0]:.1f} -> {load_after[0]:.1f} "
                         f"on {ncpu} CPUs): timings are noisy, compare engines only within one run")
    cols = [("ort", "ORT"), ("torch", "PyTorch"), ("rmx", "rmx"), ("rmx-bf16", "rmx bf16"),
            ("ort-int8", "ORT int8"), ("rmx-int8", "rmx int8")]
    cols = [(k, n) for k, n in cols if k in engines]

    def row(label, get, spec):
        cells = []
        for k, _ in cols:
            try:
                v = get(results[k]) if k in results else None
            except KeyError:
                v = None
            cells.append(fmt(v, spec))
        return f"{label:<34}" + "".join(f"{c:>14}" for c in cells)

    b, L = args.batch_size, args.seq_len
    print()
    print(f"model {model_dir.name}  |  CPU {cpu.get('model', '?')} ({', '.join(cpu.get('isa', []))})  |  threads {args.threads}")
    print(f"batch workload {b} x {L} = {b * L} tokens, {fl_batch['total_flops'] / 1e9:.2f} GFLOP/forward; "
          f"single workload {args.single_len} tokens, {fl_single['total_flops'] / 1e9:.3f} GFLOP")
    print(f"{'':<34}" + "".join(f"{n:>14}" for _, n in cols))
    print(row(f"batch {b}x{L} tokens/s (median)", lambda r: r["batch"]["median_tokens_per_s"], ",.0f"))
    print(row(f"batch {b}x{L} tokens/s (best)", lambda r: r["batch"]["best_tokens_per_s"], ",.0f"))
    print(row(f"batch {b}x{L} ms/batch (median)", lambda r: r["batch"]["median_ms"], ",.1f"))
    print(row(f"batch {b}x{L} GFLOP/s (median)", lambda r: r["batch"]["median_gflop_per_s"], ",.1f"))
    print(row(f"single {args.single_len} tok latency ms (median)", lambda r: r["single"]["median_ms"], ".2f"))
    print(row(f"single {args.single_len} tok latency ms (p90)", lambda r: r["single"]["p90_ms"], ".2f"))
    print(row(f"single {args.single_len} tok GFLOP/s (median)", lambda r: r["single"]["median_gflop_per_s"], ",.1f"))

    ratios = {}
    for engine, label in (("rmx", "rmx"), ("rmx-bf16", "rmx bf16"), ("rmx-int8", "rmx int8")):
        if engine not in results:
            continue
        for k, n in (("ort", "ORT"), ("torch", "PyTorch"), ("ort-int8", "ORT int8")):
            if k not in results:
                continue
            rb = results[engine]["batch"]["median_tokens_per_s"] / results[k]["batch"]["median_tokens_per_s"]
            rbb = results[engine]["batch"]["median_tokens_per_s"] / results[k]["batch"]["best_tokens_per_s"]
            rs = results[k]["single"]["median_ms"] / results[engine]["single"]["median_ms"]
            ratios[f"{engine.replace('-', '_')}_over_{k.replace('-', '_')}"] = {
                "batch_throughput_vs_median": rb, "batch_throughput_vs_best": rbb, "single_latency_speedup": rs}
            print(f"{label}/{n}: batch throughput x{rb:.2f} (vs {n} best x{rbb:.2f}), "
                  f"single latency speedup x{rs:.2f}   (>1 = rmx faster)")
    if "ort" in results and "torch" in results:
        rb = results["ort"]["batch"]["median_tokens_per_s"] / results["torch"]["batch"]["median_tokens_per_s"]
        rs = results["torch"]["single"]["median_ms"] / results["ort"]["single"]["median_ms"]
        ratios["ort_over_torch"] = {"batch_throughput_vs_median": rb, "single_latency_speedup": rs}
        print(f"ORT/PyTorch: batch throughput x{rb:.2f}, single latency speedup x{rs:.2f}")
    for n in notes:
        print(f"NOTE: {n}")
    print("FLOPs = 2 * P_mm * tokens + n_layers * 4 * B * L^2 * H,  P_mm = n_layers * (4 H^2 + 2 H I)")

    summary = {
        "model": model_dir.name, "threads": args.threads, "batch_size": b, "seq_len": L,
        "single_len": args.single_len, "iters": args.iters, "single_runs": args.single_runs, "seed": args.seed,
        "flops_batch": fl_batch, "flops_single": fl_single, "cpu": cpu, "versions": versions,
        "results": results, "ratios": ratios, "notes": notes,
    }
    print(json.dumps(summary, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
