#!/usr/bin/env python3
"""PyTorch oracle for rmx's RE-Matching training step (forward, backward, AdamW).

Model = rmx's design of RE-Matching (see tests/oracle/TRAINING.md for how it
relates to the reference implementation zweny/RE-Matching), on the tiny random
BERT in tests/fixtures/tiny_bert/, in fp64, dropout OFF (eval-mode BERT).

  H      = last hidden layer of the input encoder, one unpadded sequence at a time
  e_h    = column-wise TRUE max of H[hs:he]  (no ReLU),  e_t likewise
  x      = context.weight @ [H[head_marker]; H[tail_marker]] + context.bias
  a      = softmax_j(distill.query . sg(H_j)),   x* = sum_j a_j sg(H_j)
           (sg = stop gradient: no gradient into the encoder along this path;
            distill.query gets one from the projection and from the adversary)
  adv    = CE(adversary.1(tanh(adversary.0(GRL_0.5(x*)))), train_label), mean
  x^p    = x - (x.x* / |x*|^2) x*      (x* NOT detached here: grad flows to q)
  c, h, t = tanh(x^p), tanh(e_h), tanh(e_t)
  s(i,r) = (1-2a) cos(c_i, d_ctx[r]) + a cos(h_i, d_h[r]) + a cos(t_i, d_t[r])
  hinge_i = max(0, gamma - s(i, r_i) + max(0, max_{r in N_i} s(i, r)))
  loss   = mean_i hinge_i + adv

Outputs (under --out, default tests/fixtures/):
  train_step_golden.safetensors  (inputs f32/i64, goldens f64)
  train_step_golden.json         (tensor spec, hyper-parameters, checks,
                                  fp32-vs-fp64 differences, tolerances, versions)

Usage (from the repository root; ~1 min on 2 cores):
  /work/pyenv/bin/python tests/oracle/gen_train_fixtures.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import random
import sys
from pathlib import Path

import numpy as np
import safetensors
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import BertModel, get_linear_schedule_with_warmup

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parents[2]
TINY_DIR = REPO_ROOT / "tests" / "fixtures" / "tiny_bert"
COMMAND = "/work/pyenv/bin/python tests/oracle/gen_train_fixtures.py"

# ---------------------------------------------------------------- hyper-parameters
ALPHA = 0.33          # train.py --alpha
GAMMA = 0.06          # train.py --gamma
GRL_LAMBDA = 0.5      # model.py GradientReversal default
NUM_NEG = 7           # train.py --num_negsample
LR = 1e-3             # fixture value (reference default is 2e-6: too small to see a move)
BETAS = (0.9, 0.999)  # torch.optim.AdamW defaults (reference passes only lr)
EPS = 1e-8
WEIGHT_DECAY = 0.01   # torch.optim.AdamW default, applied to every parameter
TOTAL_STEPS = 10      # schedule length (fixture)
WARMUP_RATIO = 0.1    # train.py --warm_up; num_warmup_steps = TOTAL_STEPS * 0.1 (a float)
N_STEPS = 5           # optimizer steps recorded

CLS, SEP, HASH, AT = 2, 3, 48, 49   # tiny_bert/tokenizer.json ids of [CLS] [SEP] '#' '@'
N_TRAIN_RELATIONS = 6               # adversary output size
# Batch relation table: 4 relations; their training-relation ids (adversary labels).
REL_TRAIN_LABEL = [4, 0, 5, 2]
# Relation (table index) of each sample: 12 samples, 7 of relation 0 so that one
# sample's 7 drawn negatives can all be of its own relation (N_i empty).
SAMPLE_REL = [0, 1, 0, 2, 0, 3, 0, 1, 0, 2, 0, 0]
FORCED_EMPTY_SAMPLE = 0  # its draw is set to the 7 positions of relation 0 (a legal draw)

HEAD_NAMES = ["context.weight", "context.bias", "distill.query",
              "adversary.0.weight", "adversary.0.bias", "adversary.1.weight", "adversary.1.bias"]


# ---------------------------------------------------------------- batch
def make_batch(seed: int = 0) -> list[dict]:
    """12 marked sequences of 8..20 tokens: [CLS] ... # head # ... @ tail @ ... [SEP]
    (or tail first). Word ids avoid specials and the two marker ids."""
    rng = random.Random(seed)
    words = [i for i in range(5, 128) if i not in (HASH, AT)]
    lengths = [8, 20, 13, 9, 17, 11, 15, 20, 10, 14, 19, 12]
    samples = []
    for i, n in enumerate(lengths):
        head_first = i % 3 != 1
        n_words = n - 6  # CLS, SEP and 4 markers
        lh = rng.randint(1, min(4, n_words - 1))
        lt = rng.randint(1, min(4, n_words - lh))
        rest = n_words - lh - lt
        # split `rest` into before / between / after
        cuts = sorted([rng.randint(0, rest), rng.randint(0, rest)])
        before, between, after = cuts[0], cuts[1] - cuts[0], rest - cuts[1]
        if i == 0:
            before = 0  # head marker right after [CLS]
            between, after = 0, rest
        if i == 1:
            after = 0   # last entity closes right before [SEP]
            between = rest - before
        w = lambda k: [rng.choice(words) for _ in range(k)]
        first = (HASH, lh) if head_first else (AT, lt)
        second = (AT, lt) if head_first else (HASH, lh)
        ids = [CLS] + w(before)
        pos = {}
        for k, (mark, ln) in enumerate((first, second)):
            if k == 1:
                ids += w(between)
            pos[mark] = len(ids)
            ids += [mark] + w(ln) + [mark]
        ids += w(after) + [SEP]
        assert len(ids) == n, (i, len(ids), n)
        hm, tm = pos[HASH], pos[AT]
        samples.append(dict(ids=ids, head_marker=hm, tail_marker=tm,
                            head_span=(hm + 1, hm + 1 + lh), tail_span=(tm + 1, tm + 1 + lt),
                            relation=SAMPLE_REL[i], train_label=REL_TRAIN_LABEL[SAMPLE_REL[i]]))
        s = samples[-1]
        assert ids[s["head_span"][1]] == HASH and ids[s["tail_span"][1]] == AT
        assert ids.count(HASH) == 2 and ids.count(AT) == 2
    return samples


def draw_negatives(samples: list[dict], seed: int) -> tuple[list[list[int]], list[list[int]]]:
    """Reference semantics (model.py REMatchingModel.forward): per sample, an
    independent random.sample(range(B), 7) of batch POSITIONS (the sample itself
    and samples of the same relation can be drawn); the negative relations are the
    relations of the drawn samples that differ from the sample's own."""
    rng = random.Random(seed)
    B = len(samples)
    R = len(REL_TRAIN_LABEL)
    positions, mask = [], []
    for i, s in enumerate(samples):
        draw = rng.sample(range(B), NUM_NEG)
        if i == FORCED_EMPTY_SAMPLE:
            draw = [j for j in range(B) if samples[j]["relation"] == s["relation"]][:NUM_NEG]
            assert len(draw) == NUM_NEG
        positions.append(draw)
        m = [0] * R
        for j in draw:
            if samples[j]["relation"] != s["relation"]:
                m[samples[j]["relation"]] = 1
        mask.append(m)
    return positions, mask


# ---------------------------------------------------------------- parameters
def f32_exact(t: torch.Tensor) -> torch.Tensor:
    """Round to f32 and back: the f32 implementation starts from the same values."""
    return t.float().double()


def init_heads(d: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = lambda shape, std: f32_exact(std * torch.randn(shape, generator=g, dtype=torch.float64))
    return {
        "context.weight": n((d, 2 * d), 0.1),
        "context.bias": n((d,), 0.1),
        "distill.query": n((d,), 0.3),
        "adversary.0.weight": n((d, d), 0.2),
        "adversary.0.bias": n((d,), 0.1),
        "adversary.1.weight": n((N_TRAIN_RELATIONS, d), 0.3),
        "adversary.1.bias": n((N_TRAIN_RELATIONS,), 0.1),
    }


def init_descriptions(d: int, seed: int) -> dict[str, torch.Tensor]:
    """Frozen description side: unit vectors (rounded to f32) per relation."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for part in ("ctx", "head", "tail"):
        v = torch.randn((len(REL_TRAIN_LABEL), d), generator=g, dtype=torch.float64)
        out[part] = f32_exact(v / v.norm(dim=1, keepdim=True))
    return out


class GradReverse(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by -lambda."""

    @staticmethod
    def forward(ctx, x, lam):
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.lam * g, None


# ---------------------------------------------------------------- forward
def forward(bert: BertModel, heads: dict, desc: dict, samples: list[dict], neg_mask: torch.Tensor,
            hsg: list[torch.Tensor] | None = None, grl: bool = True, keep: bool = False) -> dict:
    """One forward pass. `hsg` replaces sg(H) on the distillation path (for finite
    differences: holding it fixed gives exactly the stop-gradient derivative).
    `grl=False` drops the gradient reversal (for checks only)."""
    dt = heads["context.weight"].dtype
    H_list, eh, et, mk, xs, attn = [], [], [], [], [], []
    for i, s in enumerate(samples):
        ids = torch.tensor([s["ids"]], dtype=torch.long)
        H = bert(input_ids=ids, attention_mask=torch.ones_like(ids),
                 token_type_ids=torch.zeros_like(ids)).last_hidden_state[0]
        if keep:
            H.retain_grad()
        H_list.append(H)
        hs, he = s["head_span"]
        ts, te = s["tail_span"]
        eh.append(H[hs:he].max(dim=0).values)
        et.append(H[ts:te].max(dim=0).values)
        mk.append(torch.cat([H[s["head_marker"]], H[s["tail_marker"]]]))
        Hs = H.detach() if hsg is None else hsg[i]
        a = torch.softmax(Hs @ heads["distill.query"], dim=0)
        attn.append(a)
        xs.append(a @ Hs)
    e_h, e_t, markers, x_star = torch.stack(eh), torch.stack(et), torch.stack(mk), torch.stack(xs)
    x = markers @ heads["context.weight"].T + heads["context.bias"]
    coef = (x * x_star).sum(-1, keepdim=True) / (x_star * x_star).sum(-1, keepdim=True)
    x_proj = x - coef * x_star
    c, h, t = torch.tanh(x_proj), torch.tanh(e_h), torch.tanh(e_t)
    cos = lambda u, v: F.cosine_similarity(u[:, None, :], v[None, :, :], dim=-1)  # [B, R]
    scores = (1 - 2 * ALPHA) * cos(c, desc["ctx"]) + ALPHA * cos(h, desc["head"]) + ALPHA * cos(t, desc["tail"])
    rel = torch.tensor([s["relation"] for s in samples])
    pos = scores.gather(1, rel[:, None])[:, 0]
    masked = torch.where(neg_mask.bool(), scores, torch.full_like(scores, -math.inf))
    best, best_arg = masked.max(dim=1)
    neg = best.clamp_min(0.0)  # empty N_i -> -inf -> 0
    hinge = (GAMMA - pos + neg).clamp_min(0.0)
    matching = hinge.mean()
    z = GradReverse.apply(x_star, GRL_LAMBDA) if grl else x_star
    logits = torch.tanh(z @ heads["adversary.0.weight"].T + heads["adversary.0.bias"]) @ heads["adversary.1.weight"].T \
        + heads["adversary.1.bias"]
    labels = torch.tensor([s["train_label"] for s in samples])
    adversarial = F.cross_entropy(logits, labels)
    out = dict(matching=matching, adversarial=adversarial, total=matching + adversarial)
    if keep:
        for v in (e_h, e_t, x, x_star, x_proj, c, h, t, logits):
            v.retain_grad()
        out.update(H_list=H_list, e_h=e_h, e_t=e_t, x=x, attn=torch.cat(attn), x_star=x_star, x_proj=x_proj,
                   c=c, h=h, t=t, scores=scores, pos=pos, neg=neg, hinge=hinge, logits=logits,
                   neg_arg=torch.where(best > 0, best_arg, torch.full_like(best_arg, -1)),
                   best=best, markers=markers)
    return out


# ---------------------------------------------------------------- the run
def load_bert(dtype) -> BertModel:
    m = BertModel.from_pretrained(str(TINY_DIR), attn_implementation="eager", dtype=dtype)
    m.eval()  # dropout OFF
    assert not m.training
    return m


def build(dtype, head_seed: int, desc_seed: int):
    bert = load_bert(dtype)
    heads = {k: v.to(dtype).clone().requires_grad_(True) for k, v in init_heads(bert.config.hidden_size, head_seed).items()}
    desc = {k: v.to(dtype) for k, v in init_descriptions(bert.config.hidden_size, desc_seed).items()}
    return bert, heads, desc


def all_params(bert, heads) -> dict[str, torch.Tensor]:
    p = dict(bert.named_parameters())
    p.update(heads)
    return p


def train(dtype, samples, neg_mask, head_seed, desc_seed):
    """Step 0: forward/backward (recorded); then N_STEPS AdamW steps on the same
    batch with the reference's linear warmup/decay schedule."""
    bert, heads, desc = build(dtype, head_seed, desc_seed)
    params = all_params(bert, heads)
    opt = torch.optim.AdamW(list(params.values()), lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY,
                            foreach=False)
    sched = get_linear_schedule_with_warmup(opt, TOTAL_STEPS * WARMUP_RATIO, TOTAL_STEPS)
    traj = {"matching": [], "adversarial": [], "total": [], "lr": [], "decisions": []}
    first = None
    for step in range(N_STEPS + 1):
        opt.zero_grad(set_to_none=True)
        out = forward(bert, heads, desc, samples, neg_mask, keep=True)
        for k in ("matching", "adversarial", "total"):
            traj[k].append(out[k].item())
        traj["decisions"].append(decisions(out, samples, neg_mask.bool()))
        if step == N_STEPS:
            break
        out["total"].backward()
        if step == 0:
            first = (out, {n: (None if p.grad is None else p.grad.detach().clone()) for n, p in params.items()})
        traj["lr"].append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    final = {n: p.detach().clone() for n, p in params.items()}
    return dict(first=first, traj=traj, final=final, bert=bert, heads=heads, desc=desc, params=params)


def decisions(out, samples, mask) -> dict:
    """Discrete choices an implementation must reproduce, with their margins."""
    hinge_arg = (GAMMA - out["pos"] + out["neg"]).detach()
    sc = out["scores"].detach()
    best = out["best"].detach()
    gaps = []
    for i in range(sc.shape[0]):
        cand = sorted([float(v) for v in sc[i][mask[i]]], reverse=True)
        if len(cand) >= 2:
            gaps.append(cand[0] - cand[1])
    # max-pool: gap between the top two rows of each column of each span
    pool_gaps = []
    for i, s in enumerate(samples):
        H = out["H_list"][i].detach()
        for a, b in (s["head_span"], s["tail_span"]):
            if b - a >= 2:
                top2 = H[a:b].topk(2, dim=0).values
                pool_gaps.append(float((top2[0] - top2[1]).min()))
    return {
        "active": [bool(v > 0) for v in hinge_arg],
        "neg_arg": [int(v) for v in out["neg_arg"]],
        "min_abs_hinge_arg": float(hinge_arg.abs().min()),
        "min_abs_best_negative": float(best[torch.isfinite(best)].abs().min()),
        "min_gap_top2_negatives": min(gaps) if gaps else None,
        "min_gap_maxpool_top2": min(pool_gaps) if pool_gaps else None,
    }


# ---------------------------------------------------------------- checks
def finite_difference_check(samples, neg_mask, head_seed, desc_seed, n_per=4, h=1e-6) -> dict:
    """fp64 central differences of the loss parts against the oracle's gradients.
    sg(H) is held at its unperturbed value (that is what the stop gradient means),
    and the gradient into distill.query is d(matching)/dq - lambda * d(adv)/dq."""
    bert, heads, desc = build(torch.float64, head_seed, desc_seed)
    params = all_params(bert, heads)
    out = forward(bert, heads, desc, samples, neg_mask, keep=True)
    hsg = [H.detach().clone() for H in out["H_list"]]
    out["total"].backward()
    grads = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
    used_ids = sorted({t for s in samples for t in s["ids"]})
    g = torch.Generator().manual_seed(123)
    checks = {}
    names = HEAD_NAMES + ["embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight",
                          "encoder.layer.0.attention.self.query.weight", "encoder.layer.1.output.dense.weight",
                          "encoder.layer.1.output.LayerNorm.bias"]
    worst = 0.0
    with torch.no_grad():
        for name in names:
            p = params[name]
            rows = []
            for k in range(n_per):
                if name == "embeddings.word_embeddings.weight":
                    idx = (used_ids[int(torch.randint(len(used_ids), (1,), generator=g))],
                           int(torch.randint(p.shape[1], (1,), generator=g)))
                elif name == "embeddings.position_embeddings.weight":
                    idx = (int(torch.randint(20, (1,), generator=g)), int(torch.randint(p.shape[1], (1,), generator=g)))
                else:
                    idx = tuple(int(torch.randint(s, (1,), generator=g)) for s in p.shape)
                old = p[idx].item()
                vals = []
                for sgn in (+1, -1):
                    p[idx] = old + sgn * h
                    o = forward(bert, heads, desc, samples, neg_mask, hsg=hsg)
                    vals.append((float(o["matching"]), float(o["adversarial"])))
                p[idx] = old
                dm = (vals[0][0] - vals[1][0]) / (2 * h)
                da = (vals[0][1] - vals[1][1]) / (2 * h)
                fd = dm + (-GRL_LAMBDA if name == "distill.query" else 1.0) * da
                an = float(grads[name][idx])
                err = abs(fd - an) / max(1e-6, abs(an), abs(fd))
                worst = max(worst, err)
                rows.append({"index": list(idx), "autograd": an, "finite_diff": fd, "rel_err": err})
            checks[name] = rows
    assert worst < 1e-5, f"finite differences disagree: worst relative error {worst:.3e}"

    # torch.autograd.gradcheck on the heads with H fixed (no GRL: plain derivatives)
    def heads_only(which):
        def f(cw, cb, q, a0w, a0b, a1w, a1b):
            hd = dict(zip(HEAD_NAMES, (cw, cb, q, a0w, a0b, a1w, a1b)))
            return heads_loss(hsg, hd, desc, samples, neg_mask)[which]
        return f

    inputs = tuple(heads[n].detach().clone().requires_grad_(True) for n in HEAD_NAMES)
    gc_m = torch.autograd.gradcheck(heads_only("matching"), inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
    gc_a = torch.autograd.gradcheck(heads_only("adversarial"), inputs, eps=1e-6, atol=1e-7, rtol=1e-5)
    assert gc_m and gc_a
    return {"worst_relative_error": worst, "step_h": h, "entries": checks,
            "gradcheck_heads_matching": bool(gc_m), "gradcheck_heads_adversarial": bool(gc_a)}


def heads_loss(Hs, hd, desc, samples, neg_mask):
    """The heads on fixed hidden states (for gradcheck)."""
    eh, et, mk = [], [], []
    for i, s in enumerate(samples):
        H = Hs[i]
        eh.append(H[slice(*s["head_span"])].max(0).values)
        et.append(H[slice(*s["tail_span"])].max(0).values)
        mk.append(torch.cat([H[s["head_marker"]], H[s["tail_marker"]]]))
    x_star = torch.stack([torch.softmax(H @ hd["distill.query"], 0) @ H for H in Hs])
    x = torch.stack(mk) @ hd["context.weight"].T + hd["context.bias"]
    x_proj = x - ((x * x_star).sum(-1, keepdim=True) / (x_star * x_star).sum(-1, keepdim=True)) * x_star
    c, h, t = torch.tanh(x_proj), torch.tanh(torch.stack(eh)), torch.tanh(torch.stack(et))
    cos = lambda u, v: F.cosine_similarity(u[:, None, :], v[None, :, :], dim=-1)
    scores = (1 - 2 * ALPHA) * cos(c, desc["ctx"]) + ALPHA * cos(h, desc["head"]) + ALPHA * cos(t, desc["tail"])
    rel = torch.tensor([s["relation"] for s in samples])
    pos = scores.gather(1, rel[:, None])[:, 0]
    neg = torch.where(neg_mask.bool(), scores, torch.full_like(scores, -math.inf)).max(1).values.clamp_min(0.0)
    hinge_arg = GAMMA - pos + neg
    matching = hinge_arg.clamp_min(0.0).mean()
    logits = torch.tanh(x_star @ hd["adversary.0.weight"].T + hd["adversary.0.bias"]) @ hd["adversary.1.weight"].T \
        + hd["adversary.1.bias"]
    adversarial = F.cross_entropy(logits, torch.tensor([s["train_label"] for s in samples]))
    return {"matching": matching, "adversarial": adversarial, "hinge_arg": hinge_arg}


def reference_projection_check(out) -> float:
    """The reference computes x^p as emb_proj(x, x - emb_proj(x, x*)), i.e. the
    projection of x onto its own component orthogonal to x*, which is x^p itself."""
    x, xs = out["x"].detach(), out["x_star"].detach()
    proj = lambda a, b: ((a * b).sum(-1, keepdim=True) / (b * b).sum(-1, keepdim=True)) * b
    ref = proj(x, x - proj(x, xs))
    return float((ref - out["x_proj"].detach()).abs().max())


def adamw_by_hand(p0: dict, grads_per_step: list[dict], lrs: list[float]) -> dict:
    """torch.optim.AdamW written out; parameters without a gradient are skipped."""
    p = {n: v.clone() for n, v in p0.items()}
    m = {n: torch.zeros_like(v) for n, v in p0.items()}
    v2 = {n: torch.zeros_like(v) for n, v in p0.items()}
    for k, (gs, lr) in enumerate(zip(grads_per_step, lrs), start=1):
        for n, g in gs.items():
            if g is None:
                continue
            p[n] = p[n] * (1 - lr * WEIGHT_DECAY)
            m[n] = BETAS[0] * m[n] + (1 - BETAS[0]) * g
            v2[n] = BETAS[1] * v2[n] + (1 - BETAS[1]) * g * g
            bc1, bc2 = 1 - BETAS[0] ** k, 1 - BETAS[1] ** k
            p[n] = p[n] - (lr / bc1) * m[n] / (v2[n].sqrt() / math.sqrt(bc2) + EPS)
    return p


def adamw_check(samples, neg_mask, head_seed, desc_seed) -> float:
    """Re-run the fp64 trajectory recording gradients, replay AdamW by hand."""
    bert, heads, desc = build(torch.float64, head_seed, desc_seed)
    params = all_params(bert, heads)
    p0 = {n: p.detach().clone() for n, p in params.items()}
    opt = torch.optim.AdamW(list(params.values()), lr=LR, betas=BETAS, eps=EPS, weight_decay=WEIGHT_DECAY, foreach=False)
    sched = get_linear_schedule_with_warmup(opt, TOTAL_STEPS * WARMUP_RATIO, TOTAL_STEPS)
    gseq, lrs = [], []
    for _ in range(N_STEPS):
        opt.zero_grad(set_to_none=True)
        forward(bert, heads, desc, samples, neg_mask)["total"].backward()
        gseq.append({n: (None if p.grad is None else p.grad.detach().clone()) for n, p in params.items()})
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # the by-hand replay uses the recorded gradients; those depend on the torch
    # trajectory, so this checks the update rule, not the gradients
    mine = adamw_by_hand(p0, gseq, lrs)
    return max(float((mine[n] - p.detach()).abs().max()) for n, p in params.items())


# ---------------------------------------------------------------- main
def versions() -> dict:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "safetensors": safetensors.__version__,
            "numpy": np.__version__}


def sha256_file(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# Smallest margin allowed on every discrete decision (hinge on/off, negative
# floored or not, which negative, which max-pool row), at every recorded step:
# f32 noise on scores is ~1e-6 and on hidden states ~1e-5 after 5 steps.
MARGIN_SCORE = 5e-4
MARGIN_POOL = 5e-5


def acceptable(run) -> tuple[bool, str]:
    """Fixture quality: every branch of the loss is exercised and every discrete
    decision has a margin far above f32 noise, at every recorded step."""
    ds = run["traj"]["decisions"]
    d0 = ds[0]
    neg0 = run["first"][0]["neg"].detach()
    best0 = run["first"][0]["best"].detach()
    n_active = sum(d0["active"])
    floored_nonempty = [i for i in range(len(d0["active"])) if torch.isfinite(best0[i]) and best0[i] < 0]
    if not (3 <= n_active <= len(d0["active"]) - 2):
        return False, f"active hinges {n_active}"
    if not floored_nonempty:
        return False, "no sample whose negatives all score < 0"
    if not any(d0["active"][i] for i in floored_nonempty):
        return False, "floored sample inactive"
    if not any(a and n >= 0 for a, n in zip(d0["active"], d0["neg_arg"])):
        return False, "no active hinge with a real negative"
    if not d0["active"][FORCED_EMPTY_SAMPLE]:
        return False, "empty-negatives sample inactive"
    for k, d in enumerate(ds):
        if d["min_abs_hinge_arg"] < MARGIN_SCORE or d["min_abs_best_negative"] < MARGIN_SCORE:
            return False, f"hinge/floor margin at step {k}"
        if d["min_gap_top2_negatives"] is not None and d["min_gap_top2_negatives"] < MARGIN_SCORE:
            return False, f"negative argmax margin at step {k}"
        if d["min_gap_maxpool_top2"] is not None and d["min_gap_maxpool_top2"] < MARGIN_POOL:
            return False, f"max-pool margin at step {k}"
    return True, "ok"


def maxabs(a, b) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "fixtures")
    ap.add_argument("--seed", type=int, default=42,
                    help="head/description seed (42: the first acceptable one, found by --search)")
    ap.add_argument("--search", action="store_true", help="search seeds 0.. for the first acceptable fixture")
    args = ap.parse_args()

    samples = make_batch(0)
    neg_positions, neg_mask_l = draw_negatives(samples, seed=0)
    neg_mask = torch.tensor(neg_mask_l, dtype=torch.int64)
    print("lengths", [len(s["ids"]) for s in samples], "tokens", sum(len(s["ids"]) for s in samples))
    print("negative-relation mask per sample", neg_mask_l)

    # Pick the first seed whose fixture exercises every branch with safe margins.
    seeds = range(0, 2000) if args.search else [args.seed]
    bert0 = load_bert(torch.float64)
    with torch.no_grad():
        H0 = [bert0(input_ids=torch.tensor([s["ids"]])).last_hidden_state[0] for s in samples]
    for seed in seeds:
        # cheap step-0 pre-filter on the heads alone
        hd0 = init_heads(bert0.config.hidden_size, 1000 + seed)
        desc0 = init_descriptions(bert0.config.hidden_size, 2000 + seed)
        with torch.no_grad():
            arg0 = heads_loss(H0, hd0, desc0, samples, neg_mask)["hinge_arg"]
        n_act = int((arg0 > 0).sum())
        if not (3 <= n_act <= len(samples) - 2 and arg0[FORCED_EMPTY_SAMPLE] > 0):
            continue
        run = train(torch.float64, samples, neg_mask, head_seed=1000 + seed, desc_seed=2000 + seed)
        ok, why = acceptable(run)
        print(f"seed {seed}: {why}")
        if ok:
            break
    else:
        sys.exit("no acceptable seed")
    head_seed, desc_seed = 1000 + seed, 2000 + seed
    out0, grads0 = run["first"]
    traj = run["traj"]
    print("losses (total) per step:", [f"{v:.6f}" for v in traj["total"]])
    print("lr per step:", traj["lr"])

    # ---- fp32 run of the same thing
    run32 = train(torch.float32, samples, neg_mask, head_seed, desc_seed)
    out32, grads32 = run32["first"]
    same_decisions = all(a["active"] == b["active"] and a["neg_arg"] == b["neg_arg"]
                         for a, b in zip(traj["decisions"], run32["traj"]["decisions"]))
    assert same_decisions, "fp32 run takes different discrete decisions"

    # ---- checks
    fd = finite_difference_check(samples, neg_mask, head_seed, desc_seed)
    print(f"finite differences: worst relative error {fd['worst_relative_error']:.2e}; gradcheck ok")
    proj_diff = reference_projection_check(out0)
    assert proj_diff < 1e-12, proj_diff
    adam_diff = adamw_check(samples, neg_mask, head_seed, desc_seed)
    print(f"AdamW by hand vs torch.optim.AdamW: {adam_diff:.2e}")
    assert adam_diff < 1e-12, adam_diff
    # padded batch with attention mask = one sequence at a time (rmx packs)
    with torch.no_grad():
        bert = run["bert"]
        bert64 = load_bert(torch.float64)
        T = max(len(s["ids"]) for s in samples)
        ids = torch.zeros((len(samples), T), dtype=torch.long)
        am = torch.zeros_like(ids)
        for i, s in enumerate(samples):
            ids[i, :len(s["ids"])] = torch.tensor(s["ids"])
            am[i, :len(s["ids"])] = 1
        padded = bert64(input_ids=ids, attention_mask=am, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        pad_diff = max(maxabs(padded[i, :len(s["ids"])], out0["H_list"][i].detach()) for i, s in enumerate(samples))
    assert pad_diff < 1e-10, pad_diff

    # ---- tensors
    B, R, d = len(samples), len(REL_TRAIN_LABEL), run["bert"].config.hidden_size
    starts = np.cumsum([0] + [len(s["ids"]) for s in samples]).tolist()
    i64 = lambda v: torch.tensor(v, dtype=torch.int64)
    f64 = lambda t: t.detach().to(torch.float64).contiguous()
    T: dict[str, torch.Tensor] = {}
    for i, s in enumerate(samples):
        T[f"sample.{i}.input_ids"] = i64(s["ids"])
    T["batch.input_ids"] = i64([t for s in samples for t in s["ids"]])
    T["batch.starts"] = i64(starts)
    T["batch.head_marker"] = i64([s["head_marker"] for s in samples])
    T["batch.tail_marker"] = i64([s["tail_marker"] for s in samples])
    T["batch.head_span"] = i64([list(s["head_span"]) for s in samples])
    T["batch.tail_span"] = i64([list(s["tail_span"]) for s in samples])
    T["batch.relation"] = i64([s["relation"] for s in samples])
    T["batch.train_label"] = i64([s["train_label"] for s in samples])
    T["batch.neg_positions"] = i64(neg_positions)
    T["batch.neg_relation_mask"] = neg_mask.clone()
    desc = init_descriptions(d, desc_seed)
    T["relations.ctx"] = desc["ctx"].float()
    T["relations.head"] = desc["head"].float()
    T["relations.tail"] = desc["tail"].float()
    T["relations.train_label"] = i64(REL_TRAIN_LABEL)
    for n, v in init_heads(d, head_seed).items():
        T[f"init.{n}"] = v.float()
    # forward intermediates (step 0, fp64)
    T["fwd.hidden"] = f64(torch.cat([H for H in out0["H_list"]]))
    for k in ("e_h", "e_t", "markers", "x", "attn", "x_star", "x_proj", "c", "h", "t", "scores", "pos", "neg",
              "hinge", "logits"):
        T[f"fwd.{k}"] = f64(out0[k])
    T["fwd.neg_arg"] = out0["neg_arg"].to(torch.int64)
    for k in ("matching", "adversarial", "total"):
        T[f"loss.{k}"] = f64(out0[k])
    # gradients of activations (total loss; x_star's includes the reversed adversary part)
    T["grad_act.hidden"] = f64(torch.cat([H.grad for H in out0["H_list"]]))
    for k in ("e_h", "e_t", "x", "x_star", "x_proj", "c", "h", "t", "logits"):
        T[f"grad_act.{k}"] = f64(out0[k].grad)
    no_grad = []
    for n, g in grads0.items():
        if g is None:
            no_grad.append(n)
        else:
            T[f"grad.{n}"] = f64(g)
    T["traj.lr"] = torch.tensor(traj["lr"], dtype=torch.float64)
    for k in ("matching", "adversarial", "total"):
        T[f"traj.loss.{k}"] = torch.tensor(traj[k], dtype=torch.float64)
    for n, v in run["final"].items():
        T[f"final.{n}"] = f64(v)

    # ---- fp32 vs fp64
    def rel(a, b):
        return maxabs(a, b) / max(float(b.abs().max()), 1e-30)
    diff = {"forward": {}, "loss": {}, "grad": {}, "grad_act": {}, "traj": {}, "final": {}}
    for k in ("e_h", "e_t", "x", "attn", "x_star", "x_proj", "c", "h", "t", "scores", "pos", "neg", "hinge", "logits"):
        diff["forward"][k] = maxabs(out32[k], out0[k])
    diff["forward"]["hidden"] = max(maxabs(a, b) for a, b in zip(out32["H_list"], out0["H_list"]))
    for k in ("matching", "adversarial", "total"):
        diff["loss"][k] = maxabs(out32[k], out0[k])
    for n, g in grads0.items():
        if g is not None:
            diff["grad"][n] = {"max_abs": maxabs(grads32[n], g), "max_rel_to_max": rel(grads32[n], g),
                               "max_abs_value": float(g.abs().max())}
    for k in ("x", "x_star", "c", "h", "t", "e_h", "e_t", "logits"):
        diff["grad_act"][k] = maxabs(out32[k].grad, out0[k].grad)
    diff["grad_act"]["hidden"] = max(maxabs(a.grad, b.grad) for a, b in zip(out32["H_list"], out0["H_list"]))
    for k in ("matching", "adversarial", "total"):
        diff["traj"][k] = max(abs(a - b) for a, b in zip(run32["traj"][k], traj[k]))
    p_init = all_params(load_bert(torch.float64), init_heads(d, head_seed))
    for n, v in run["final"].items():
        diff["final"][n] = {"max_abs": maxabs(run32["final"][n], v), "max_abs_move": maxabs(v, p_init[n])}
    worst = lambda dd: max((v["max_abs"] if isinstance(v, dict) else v) for v in dd.values())
    print("fp32 vs fp64 max |diff|: " + ", ".join(f"{k} {worst(v):.2e}" for k, v in diff.items()))

    # ---- write
    out_dir = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    st_path = out_dir / "train_step_golden.safetensors"
    save_file(T, str(st_path), metadata={"rmx_fixture": json.dumps(
        {"generator": "tests/oracle/gen_train_fixtures.py", "torch": torch.__version__,
         "transformers": transformers.__version__}, sort_keys=True)})
    size = st_path.stat().st_size
    print(f"{st_path}: {size:,} bytes, {len(T)} tensors")
    assert size < 1_100_000

    spec = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in T.items()}
    meta = {
        "generator": "tests/oracle/gen_train_fixtures.py",
        "command": COMMAND,
        "versions": versions(),
        "encoder": {"dir": "tests/fixtures/tiny_bert", "model_safetensors_sha256": sha256_file(TINY_DIR / "model.safetensors"),
                    "initial_values": "tests/fixtures/tiny_bert/model.safetensors (f32, used exactly, upcast to f64)",
                    "run": "BertModel (eager attention), eval() => dropout OFF, one unpadded sequence at a time, "
                           "attention mask all ones, token type ids all zeros, positions 0..len-1"},
        "hyper_parameters": {
            "alpha": ALPHA, "gamma": GAMMA, "grl_lambda": GRL_LAMBDA, "num_neg_sample": NUM_NEG,
            "n_train_relations": N_TRAIN_RELATIONS, "optimizer": "torch.optim.AdamW (foreach=False)",
            "lr": LR, "betas": list(BETAS), "eps": EPS, "weight_decay": WEIGHT_DECAY,
            "weight_decay_applies_to": "every parameter that has a gradient (no exclusions), as in the reference",
            "schedule": "transformers.get_linear_schedule_with_warmup(num_warmup_steps=TOTAL_STEPS*0.1=1.0, "
                        "num_training_steps=10); lr(k) = LR*k/warmup for k < warmup else LR*max(0,(10-k)/(10-warmup)), "
                        "k = number of optimizer steps already taken",
            "total_schedule_steps": TOTAL_STEPS, "warmup_ratio": WARMUP_RATIO, "steps_recorded": N_STEPS,
            "lr_per_step": traj["lr"],
            "gradient_clipping": None, "dropout": "off (eval mode); the reference trains with BERT dropout 0.1 ON",
            "precision": "fp64 goldens; inputs stored as f32 (exactly representable, used as-is in fp64)",
            "head_init_seed": head_seed, "description_seed": desc_seed, "batch_seed": 0, "negatives_seed": 0,
            "head_init": "context.weight N(0,0.1^2), context.bias N(0,0.1^2), distill.query N(0,0.3^2), "
                         "adversary.0.weight N(0,0.2^2), adversary.0.bias N(0,0.1^2), adversary.1.weight N(0,0.3^2), "
                         "adversary.1.bias N(0,0.1^2) (torch.Generator fp64 normals rounded to f32); "
                         "fixture scales, not the reference's N(0,0.02^2)/zero-bias init",
        },
        "model": {
            "e_h": "column-wise max of H[head_span] (true max, no ReLU); e_t likewise",
            "x": "context.weight @ concat(H[head_marker], H[tail_marker]) + context.bias",
            "attn": "softmax over the sequence's tokens of distill.query . sg(H_j) (no 1/sqrt(d) scale)",
            "x_star": "sum_j attn_j sg(H_j); gradient reaches distill.query only",
            "adversary": "logits = adversary.1(tanh(adversary.0(GRL(x_star)))); CE mean over the batch; "
                         "GRL identity forward, -0.5 * grad backward",
            "x_proj": "x - (x.x_star / x_star.x_star) x_star (x_star not detached: gradient flows to distill.query)",
            "c,h,t": "tanh(x_proj), tanh(e_h), tanh(e_t)",
            "scores": "s[i,r] = (1-2 alpha) cos(c_i, relations.ctx[r]) + alpha cos(h_i, relations.head[r]) + alpha cos(t_i, relations.tail[r])",
            "pos": "s[i, batch.relation[i]]",
            "neg": "max(0, max_{r : neg_relation_mask[i,r]=1} s[i,r]); 0 when the mask row is empty",
            "hinge": "max(0, gamma - pos + neg)",
            "loss": "matching = mean_i hinge_i; total = matching + adversarial (one backward of the sum; the "
                    "reference's two backward calls accumulate the same gradients)",
        },
        "batch": {
            "samples": [dict(ids=s["ids"], head_marker=s["head_marker"], tail_marker=s["tail_marker"],
                             head_span=list(s["head_span"]), tail_span=list(s["tail_span"]), relation=s["relation"],
                             train_label=s["train_label"]) for s in samples],
            "marker_ids": {"#": HASH, "@": AT, "[CLS]": CLS, "[SEP]": SEP},
            "span_convention": "[start, end) positions inside the sequence; tokens strictly between the two markers",
            "negatives": "neg_positions[i] = random.Random(0).sample(range(12), 7) drawn in sample order (the reference "
                         "draws batch POSITIONS per sample, self included); neg_relation_mask[i, r] = 1 iff some drawn "
                         f"position has relation r != relation[i]. Sample {FORCED_EMPTY_SAMPLE}'s draw is set to the 7 "
                         "positions of its own relation (a legal draw) so its negative set is empty (neg = 0). The same "
                         "negatives are used for all steps of the trajectory (the reference redraws every forward).",
        },
        "coverage_step0": {
            "active_hinge": traj["decisions"][0]["active"],
            "neg_arg": traj["decisions"][0]["neg_arg"],
            "note": "neg_arg = relation giving neg, -1 when neg = 0 (empty set, or all negatives score < 0)",
        },
        "decision_margins_per_step": traj["decisions"],
        "parameters_without_gradient": no_grad,
        "parameters_without_gradient_note": "pooler.* is not in the loss: grad None, so AdamW skips it entirely "
                                            "(no weight decay either). Rows of embeddings that the batch does not use "
                                            "(word ids, positions >= 20, token type 1) have a ZERO gradient, not None: "
                                            "AdamW still decays them by (1 - lr*wd) each step.",
        "checks": {
            "finite_differences": fd,
            "reference_double_projection_vs_x_proj_max_abs": proj_diff,
            "adamw_by_hand_vs_torch_max_abs": adam_diff,
            "padded_batch_vs_unpadded_hidden_max_abs": pad_diff,
            "fp32_run_same_discrete_decisions": same_decisions,
        },
        "fp32_vs_fp64": diff,
        "recommended_f32_tolerances": TOLERANCES,
        "tensors": spec,
        "tensor_groups": {
            "sample.{i}.input_ids": "i64 [len_i] token ids of sample i, markers included, no padding",
            "batch.*": "i64 packed ids/starts (starts has B+1 entries), marker positions, spans [B,2], relation "
                       "(index into relations.*), train_label (adversary class), neg_positions [B,7], "
                       "neg_relation_mask [B,R]",
            "relations.*": "f32 [R,d] frozen description vectors (unit up to f32 rounding); train_label [R]",
            "init.{name}": "f32 initial head parameters (encoder: tests/fixtures/tiny_bert/model.safetensors)",
            "fwd.*": "f64 step-0 forward: hidden [T,d] packed, e_h/e_t/x/x_star/x_proj/c/h/t [B,d], markers [B,2d], "
                     "attn [T] packed, scores [B,R], pos/neg/hinge [B], neg_arg i64 [B], logits [B,n_train]",
            "loss.*": "f64 [] step-0 matching, adversarial, total",
            "grad.{name}": "f64 gradient of loss.total for every parameter that has one (HF encoder names, heads)",
            "grad_act.*": "f64 gradient of loss.total w.r.t. activations (x_star includes the reversed adversary part "
                          "and the projection part; hidden excludes the stop-gradient path)",
            "traj.lr": "f64 [5] lr used by optimizer step k=1..5 (step 1 has lr 0: warmup)",
            "traj.loss.*": "f64 [6] loss after k = 0..5 optimizer steps (k=0 is loss.*)",
            "final.{name}": "f64 every parameter after 5 AdamW steps (pooler unchanged)",
        },
    }
    with open(out_dir / "train_step_golden.json", "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print("wrote", out_dir / "train_step_golden.json")


# Recommended tolerances for an f32 implementation (max |diff| against the f64
# goldens), ~10-100x the fp32-vs-fp64 torch differences measured by this script
# (recorded under "fp32_vs_fp64" in the JSON).
TOLERANCES = {
    "fwd.hidden, fwd.e_h, fwd.e_t, fwd.markers, fwd.x, fwd.x_star, fwd.x_proj, fwd.c, fwd.h, fwd.t, fwd.logits":
        {"atol": 1e-4, "measured_max": "1.7e-6"},
    "fwd.attn": {"atol": 1e-5, "measured_max": "2.8e-7"},
    "fwd.scores, fwd.pos, fwd.neg, fwd.hinge": {"atol": 1e-5, "measured_max": "9e-8"},
    "fwd.neg_arg, hinge active set": {"exact": True,
                                      "note": "every decision has margin >= 5e-4 (scores) / 5e-5 (max-pool rows) at all steps"},
    "loss.*": {"atol": 1e-5, "measured_max": "4.3e-8"},
    "grad_act.*": {"atol": 1e-6, "measured_max": "1.2e-8"},
    "grad.* (all)": {"atol": 1e-5, "measured_max": "1.3e-7 (largest |grad| 0.62)",
                     "note": "or per tensor max|diff| <= 1e-4 * max|grad| + 1e-7"},
    "grad.encoder.layer.*.attention.self.key.bias": {
        "atol": 1e-6, "note": "exactly 0 in exact arithmetic (softmax is invariant to q.b_k); the goldens hold f64 "
                             "round-off (~1e-18) and torch f32 gives ~1e-9: compare absolutely, never relatively"},
    "traj.loss.*": {"atol": 2e-5, "measured_max": "6.5e-7 (grows with the step)"},
    "traj.lr": {"atol": 1e-12},
    "final.* (all but key.bias)": {"atol": 2e-5, "measured_max": "5.5e-7 (parameters moved by up to 3.4e-3)"},
    "final.encoder.layer.*.attention.self.key.bias": {
        "atol": 3.4e-3, "note": "Adam turns the pure-noise gradient into steps of up to lr each (f32 vs f64 measured "
                                "3.8e-4); bound by sum(traj.lr) = 3.33e-3, or check only the weight-decay part"},
    "final.pooler.*": {"exact": True, "note": "no gradient: untouched, not even decayed"},
}

if __name__ == "__main__":
    main()
