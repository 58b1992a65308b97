#!/usr/bin/env python3
"""Training throughput: rmx vs PyTorch on the same RE-Matching step, same sentences.

Workload: `--steps` batches of `--batch` FewRel sentences (default 6 x 128) of the
training relations of the reduced FewRel protocol (val_wiki minus the m = 5 `ori` test
relations), marked as the reference marks them (`#` around the head words, `@` around the
tail words), all-MiniLM-L6-v2 as the encoder, `--threads` threads (default 2).
One step = forward of the encoder and the heads, the matching loss with 7 drawn negatives
per sample + the adversarial CE, backward, AdamW step. The first step of each engine is
a warm-up and is not timed.

Engines:
  PyTorch  transformers BertModel in train mode (dropout on, as the reference trains) or
           --no-dropout, heads as in the reference (`fclayer` Linear(2d, d), `code`
           Embedding(1, d), adversary GRL -> Linear -> Tanh -> Linear), the loss written
           vectorised (faster than the reference's per-sample Python loop: a conservative
           baseline), torch.optim.AdamW (weight decay 0.01), torch.set_num_threads(T).
  rmx      `rmx train` on the same sentences written to a temporary FewRel file, one
           epoch, `--log` JSON lines: the `seconds` of each step.

Prints sentences/s and tokens/s for each, and the ratio. Peak memory of rmx is printed
from /usr/bin/time when available.

Usage: python benches/compare_train.py [--rmx target/release/rmx] [--steps 6] [--batch 128]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, BertModel

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def default_model() -> Path:
    if os.environ.get("RMX_MODEL"):
        return Path(os.environ["RMX_MODEL"])
    home = Path(os.environ.get("RMX_HOME", Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "rmx"))
    return home / "models" / "all-MiniLM-L6-v2"


def sentences(n: int, seed: int) -> dict[str, list]:
    wiki = json.loads((DATA / "fewrel/val_wiki.json").read_text())
    test = json.loads((DATA / "rematching/rel2id/fewrel_rel2id/fewrel_rel2id_5_ori.json").read_text())["test"]
    pool = [(r, x) for r, xs in wiki.items() if r not in test for x in xs]
    random.Random(seed).shuffle(pool)
    out: dict[str, list] = {}
    for r, x in pool[:n]:
        out.setdefault(r, []).append(x)
    return out


def mark(x: dict) -> tuple[str, ...]:
    words = x["tokens"]
    h = x["h"][2][0]
    t = x["t"][2][0]
    (hs, he), (ts, te) = (min(h), max(h) + 1), (min(t), max(t) + 1)
    if hs < ts:
        w = words[:hs] + ["#"] + words[hs:he] + ["#"] + words[he:ts] + ["@"] + words[ts:te] + ["@"] + words[te:]
    else:
        w = words[:ts] + ["@"] + words[ts:te] + ["@"] + words[te:hs] + ["#"] + words[hs:he] + ["#"] + words[he:]
    return " ".join(w)


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -0.5 * g


def torch_steps(model_dir: Path, data: dict[str, list], batch: int, steps: int, dropout: bool, device: str = "cpu") -> tuple[list[float], int]:
    """Times `steps` RE-Matching steps in PyTorch eager fp32 on `device` ("cpu" or "cuda")."""
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    tok = AutoTokenizer.from_pretrained(model_dir)
    bert = BertModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="sdpa", torch_dtype=torch.float32).to(dev)
    bert.train(dropout)
    d = bert.config.hidden_size
    rels = sorted(data)
    samples = [(mark(x), rels.index(r)) for r in rels for x in data[r]]
    random.Random(1).shuffle(samples)
    head_id, tail_id = tok.convert_tokens_to_ids("#"), tok.convert_tokens_to_ids("@")
    fc = torch.nn.Linear(2 * d, d).to(dev)
    code = torch.nn.Parameter((torch.randn(d) * 0.02).to(dev))
    adv = torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.Tanh(), torch.nn.Linear(d, len(rels))).to(dev)
    desc = F.normalize(torch.randn(len(rels), 3, d), dim=-1).to(dev)
    params = list(bert.parameters()) + list(fc.parameters()) + [code] + list(adv.parameters())
    opt = torch.optim.AdamW(params, lr=2e-5, weight_decay=0.01)
    times, tokens = [], 0
    for s in range(steps):
        chunk = samples[s * batch:(s + 1) * batch]
        enc = tok([c[0] for c in chunk], padding=True, return_tensors="pt").to(dev)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        labels = torch.tensor([c[1] for c in chunk], device=dev)
        sync()
        t0 = time.perf_counter()
        H = bert(input_ids=ids, attention_mask=mask).last_hidden_state  # [B, L, d]
        B, L = ids.shape
        pos = torch.arange(L, device=dev).expand(B, L)
        hm = (ids == head_id).float().cumsum(1)
        tm = (ids == tail_id).float().cumsum(1)
        head_open = (ids == head_id).int().argmax(1)
        tail_open = (ids == tail_id).int().argmax(1)
        head_span = (hm == 1) & (ids != head_id)
        tail_span = (tm == 1) & (ids != tail_id)
        neg_inf = torch.finfo(H.dtype).min
        eh = H.masked_fill(~head_span[..., None], neg_inf).max(1).values
        et = H.masked_fill(~tail_span[..., None], neg_inf).max(1).values
        rows = torch.arange(B, device=dev)
        markers = torch.cat([H[rows, head_open], H[rows, tail_open]], -1)
        x = fc(markers)
        Hd = H.detach()
        a = torch.softmax((Hd @ code).masked_fill(mask == 0, -1e5), 1)
        xs = (a[..., None] * Hd).sum(1)
        rev = F.cross_entropy(adv(GradReverse.apply(xs)), labels)
        xp = x - ((x * xs).sum(-1, keepdim=True) / (xs * xs).sum(-1, keepdim=True)) * xs
        parts = torch.stack([torch.tanh(xp), torch.tanh(eh), torch.tanh(et)], 1)  # [B, 3, d]
        cos = torch.einsum("bpd,rpd->brp", F.normalize(parts, dim=-1), desc)
        scores = cos @ torch.tensor([0.34, 0.33, 0.33], device=dev)  # [B, R]
        pos_s = scores[rows, labels]
        draws = torch.stack([torch.randperm(B)[:7] for _ in range(B)]).to(dev)
        neg_mask = torch.zeros(B, len(rels), dtype=torch.bool, device=dev)
        neg_mask[rows[:, None], labels[draws]] = True
        neg_mask[rows, labels] = False
        neg = scores.masked_fill(~neg_mask, 0.0).max(1).values.clamp(min=0)
        loss = F.relu(0.06 - pos_s + neg).mean() + rev
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
        tokens += int(mask.sum())
    return times, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rmx", default=str(REPO / "target/release/rmx"))
    ap.add_argument("--model", default=str(default_model()))
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-dropout", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = sentences(args.steps * args.batch, seed=0)
    n = sum(len(v) for v in data.values())

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.json"
        path.write_text(json.dumps(data))
        log = Path(tmp) / "log.jsonl"
        cmd = [args.rmx, "--threads", str(args.threads), "train", "--data", str(path),
               "--descriptions", str(DATA / "rematching/fewrel/relation_description/relation_description_addsynonym_processed.json"),
               "--unseen", "none", "--model", args.model, "-o", str(Path(tmp) / "ck"), "--epochs", "1",
               "--batch-size", str(args.batch), "--log", str(log)]
        timed = ["/usr/bin/time", "-f", "%M"] + cmd if Path("/usr/bin/time").exists() else cmd
        proc = subprocess.run(timed, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"rmx train failed ({proc.returncode}):\n{proc.stderr}")
        steps = [json.loads(l) for l in log.read_text().splitlines()][1:]
        rmx_s = sum(s["seconds"] for s in steps)
        rmx_sent = sum(s["sentences"] for s in steps) / rmx_s
        rmx_tok = sum(s["tokens"] for s in steps) / rmx_s
        peak = proc.stderr.strip().splitlines()[-1] if timed is not cmd else "n/a"

    times, tokens = torch_steps(Path(args.model), data, args.batch, args.steps, not args.no_dropout)
    t_s = sum(times[1:])
    t_sent = args.batch * (len(times) - 1) / t_s
    t_tok = tokens * (len(times) - 1) / len(times) / t_s  # about: the mean tokens per step
    print(f"{n} sentences, batch {args.batch}, {args.threads} threads, {args.steps - 1} timed steps each")
    print(f"PyTorch {torch.__version__} ({'dropout on' if not args.no_dropout else 'no dropout'}): {t_sent:7.1f} sentences/s  {t_tok:8.0f} tokens/s  {t_s / (len(times) - 1):.2f} s/step")
    print(f"rmx:                           {rmx_sent:7.1f} sentences/s  {rmx_tok:8.0f} tokens/s  {rmx_s / len(steps):.2f} s/step  peak RSS {peak} KiB")
    print(f"ratio rmx / PyTorch: {rmx_sent / t_sent:.2f}x")


if __name__ == "__main__":
    main()
