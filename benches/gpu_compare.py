#!/usr/bin/env python3
"""rmx on a GPU against PyTorch on the same GPU: issue 15's goals, one JSON report.

Run by `scripts/gpu-check.sh run` on the lent GPU machine (PyTorch, no network, no Rust), or
with `--tiny --torch-device cpu` as the emulated dry run here. Steps:

  model     A BERT of the given config.json with seeded random weights (the fp32 default
            model is larger than what can be carried; speed does not depend on the values),
            saved as model.safetensors beside the carried tokenizer files.
  encoder   batch B x L synthetic ids (default 256 x 64: [CLS] + random ids + [SEP], no
            padding) and one sequence of --single-len tokens:
              PyTorch  BertModel (SDPA attention) + mean pooling, i.e. what
                       sentence-transformers computes, eager, inference_mode, fp32; then the
                       same model in bf16 and fp16 (the best is the reduced-precision figure);
              rmx      `rmx bench --device cuda` (fp32 GEMMs) and, when the build supports it,
                       `--precision bf16`.
            tokens/s of the batch (median of --iters), latency of the one sequence (median).
  train     --steps batches of --batch sentences of --data (FewRel form), the RE-Matching step
            (encoder + heads forward, matching loss with hardest negatives + adversarial CE,
            backward, AdamW): PyTorch eager fp32 (benches/compare_train.py's step) vs
            `rmx train --device cuda --log`; the first step of each is a warm-up.
  exactness `rmx embed` on the data's first --embed sentences on cpu and cuda: the lowest
            cosine (goal >= 0.99999); `rmx train` at seed 42 on cpu and cuda: the largest
            difference of the first steps' losses (goal <= 1e-4).

Prints one line per figure and writes everything to OUT/gpu-compare.json. Exit 0 when every
step ran (goals met or not: the report says), 1 when a step failed.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_train import mark, torch_steps  # noqa: E402

TINY = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 512, "type_vocab_size": 2}


def make_model(config: Path, tokenizer_dir: Path, out: Path, tiny: bool) -> Path:
    """A random-weight BERT of `config` (or the tiny one) with the carried tokenizer files."""
    from transformers import BertConfig, BertModel

    out.mkdir(parents=True, exist_ok=True)
    cfg = json.loads(config.read_text())
    if tiny:
        cfg.update(TINY)
    (out / "config.json").write_text(json.dumps(cfg))
    for f in tokenizer_dir.iterdir():
        if f.name not in ("config.json", "model.safetensors") and f.is_file():
            shutil.copy(f, out / f.name)
    torch.manual_seed(42)
    BertModel(BertConfig(**cfg), add_pooling_layer=False).save_pretrained(out, safe_serialization=True)
    return out


def synthetic_ids(rng: np.random.Generator, batch: int, seq: int, vocab: int) -> np.ndarray:
    ids = rng.integers(1000, vocab, size=(batch, seq), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102
    return ids


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def torch_encoder(model_dir: Path, device: str, dtype: torch.dtype, batch_ids: np.ndarray, single_ids: np.ndarray, iters: int) -> dict:
    from transformers import BertModel

    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = BertModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="sdpa").to(dev, dtype).eval()

    def embed(ids: np.ndarray) -> None:
        t = torch.from_numpy(ids).to(dev)
        with torch.inference_mode():
            h = model(input_ids=t, attention_mask=torch.ones_like(t)).last_hidden_state
            torch.nn.functional.normalize(h.mean(1), dim=-1)
        sync()

    def timed(ids: np.ndarray, runs: int) -> float:
        for _ in range(3):
            embed(ids)
        out = []
        for _ in range(runs):
            t0 = time.perf_counter()
            embed(ids)
            out.append(time.perf_counter() - t0)
        return median(out)

    batch_s, single_s = timed(batch_ids, iters), timed(single_ids, 5 * iters)
    return {"batch_tokens_per_s": batch_ids.size / batch_s, "single_latency_ms": 1e3 * single_s}


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return proc


def rmx_bench(rmx: str, model: Path, args, precision: str) -> dict:
    cmd = [rmx, "bench", "--device", "cuda", "--model", str(model), "--precision", precision, "--batch-size", str(args.batch_size),
           "--seq-len", str(args.seq_len), "--single-len", str(args.single_len), "--iters", str(args.iters), "--single-iters", str(5 * args.iters)]
    return json.loads(run(cmd).stdout.strip().splitlines()[-1])


def rmx_train(rmx: str, model: Path, data: Path, descriptions: Path, device: str, args, out: Path) -> list[dict]:
    log = out / f"train-{device}.jsonl"
    cmd = [rmx, "train", "--device", device, "--data", str(data), "--descriptions", str(descriptions), "--unseen", "none",
           "--model", str(model), "-o", str(out / f"ck-{device}"), "--epochs", "1", "--batch-size", str(args.batch), "--seed", "42",
           "--log", str(log)]
    run(cmd)
    return [json.loads(line) for line in log.read_text().splitlines()]


def rmx_embed(rmx: str, model: Path, texts: list[str], device: str) -> np.ndarray:
    lines = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    out = run([rmx, "embed", "--device", device, "--model", str(model)], input=lines).stdout
    return np.array([json.loads(line)["embedding"] for line in out.splitlines()], dtype=np.float64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rmx", required=True, help="the rmx binary built with --features cuda (or cuda-emu for the dry run)")
    ap.add_argument("--config", type=Path, required=True, help="config.json of the model to mimic (all-MiniLM-L6-v2)")
    ap.add_argument("--tokenizer", type=Path, required=True, help="directory with the tokenizer files")
    ap.add_argument("--data", type=Path, required=True, help="training sentences, FewRel form")
    ap.add_argument("--descriptions", type=Path, required=True, help="their relations' descriptions")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--torch-device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="dry run: a tiny model and small workloads")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--single-len", type=int, default=37)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--embed", type=int, default=256)
    args = ap.parse_args()
    if args.tiny:
        args.batch_size, args.seq_len, args.single_len, args.iters, args.steps, args.batch, args.embed = 4, 16, 9, 2, 2, 8, 8
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if args.torch_device == "cuda" else "cpu (dry run)"}
    failed = False

    def step(name: str, fn) -> None:
        nonlocal failed
        try:
            report[name] = fn()
            print(f"ok      {name}: {json.dumps(report[name])}", flush=True)
        except Exception as e:  # a failed step is reported; the others still run
            failed = True
            report[name] = {"error": str(e)}
            print(f"FAILED  {name}: {e}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        model = make_model(args.config, args.tokenizer, Path(tmp) / "model", args.tiny)
        vocab = json.loads((model / "config.json").read_text())["vocab_size"]
        rng = np.random.default_rng(0)
        batch_ids, single_ids = synthetic_ids(rng, args.batch_size, args.seq_len, vocab), synthetic_ids(rng, 1, args.single_len, vocab)
        dev = args.torch_device
        step("torch_fp32", lambda: torch_encoder(model, dev, torch.float32, batch_ids, single_ids, args.iters))
        if dev == "cuda":
            step("torch_bf16", lambda: torch_encoder(model, dev, torch.bfloat16, batch_ids, single_ids, args.iters))
            step("torch_fp16", lambda: torch_encoder(model, dev, torch.float16, batch_ids, single_ids, args.iters))
        step("rmx_fp32", lambda: rmx_bench(args.rmx, model, args, "f32"))
        step("rmx_bf16", lambda: rmx_bench(args.rmx, model, args, "bf16"))

        data = json.loads(args.data.read_text())
        sentences = [x for xs in data.values() for x in xs]
        texts = [" ".join(x["tokens"]) for x in sentences[: args.embed]]

        def exact_embeddings() -> dict:
            a, b = rmx_embed(args.rmx, model, texts, "cpu"), rmx_embed(args.rmx, model, texts, "cuda")
            cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            return {"sentences": len(texts), "min_cosine": float(cos.min()), "goal": 0.99999, "met": bool(cos.min() >= 0.99999)}

        step("exact_embeddings", exact_embeddings)

        subset = {}
        for r, xs in data.items():
            for x in xs:
                if sum(map(len, subset.values())) < args.steps * args.batch:
                    subset.setdefault(r, []).append(x)
        train_data = Path(tmp) / "train.json"
        train_data.write_text(json.dumps(subset))

        def train() -> dict:
            cuda_steps = rmx_train(args.rmx, model, train_data, args.descriptions, "cuda", args, Path(tmp))
            timed = [s for s in cuda_steps if "seconds" in s][1:]
            rmx_sps = sum(s["sentences"] for s in timed) / sum(s["seconds"] for s in timed)
            times, _ = torch_steps(model, subset, args.batch, args.steps, True, dev)
            torch_sps = args.batch * (len(times) - 1) / sum(times[1:])
            cpu_steps = rmx_train(args.rmx, model, train_data, args.descriptions, "cpu", args, Path(tmp))
            losses = lambda steps: [s["matching"] + s["adversarial"] for s in steps]  # noqa: E731
            diff = max(abs(a - b) for a, b in zip(losses(cpu_steps), losses(cuda_steps)))
            return {"rmx_sentences_per_s": rmx_sps, "torch_fp32_sentences_per_s": torch_sps, "ratio": rmx_sps / torch_sps, "goal_ratio": 2.0,
                    "max_loss_diff_cpu_vs_cuda": diff, "loss_goal": 1e-4, "loss_met": bool(diff <= 1e-4 and not math.isnan(diff))}

        step("train", train)

    def ratio(a: str, b: str, key: str, inverse: bool = False) -> float | None:
        x, y = report.get(a, {}).get(key), report.get(b, {}).get(key)
        return None if x is None or y is None else (y / x if inverse else x / y)

    best_reduced = max(("torch_bf16", "torch_fp16"), key=lambda k: report.get(k, {}).get("batch_tokens_per_s", 0))
    report["goals"] = {
        "encoder_fp32_tokens_ratio (>= 1)": ratio("rmx_fp32", "torch_fp32", "batch_tokens_per_s"),
        "encoder_bf16_tokens_ratio (>= 1)": ratio("rmx_bf16", best_reduced, "batch_tokens_per_s"),
        "single_latency_speedup (>= 1)": ratio("rmx_fp32", "torch_fp32", "single_latency_ms", inverse=True),
        "train_ratio (>= 2)": report.get("train", {}).get("ratio"),
    }
    print(json.dumps(report["goals"]))
    (args.out / "gpu-compare.json").write_text(json.dumps(report, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
