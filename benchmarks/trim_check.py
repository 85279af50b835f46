"""Does vocabulary trimming change anything on covered text? And what does it save?

Trims MODEL to the given corpus files (unless --trimmed names an existing trimmed folder),
then encodes the first --limit sentences with both models and compares, on real tokens only:
the piece strings, the encoder's last hidden states, and the logits of a random linear head
(fixed seed, same weights on both). Also times a few AdamW training steps of each model, the
place where the 250k-row embedding matrix costs most. Writes benchmarks/results/trim_check.json.

    python benchmarks/trim_check.py --model models/e5-small \
        --corpus ../shared/data/panx/dev-en.tsv ../shared/data/panx/dev-de.tsv
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from concner.encoders.sources import read_trim_corpus, trim_model

RESULTS = Path(__file__).resolve().parent / "results" / "trim_check.json"


def _load(folder: Path):
    from transformers import AutoModel, AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder)), AutoModel.from_pretrained(str(folder)).eval()


def _outputs(tokenizer, model, head, batches):
    """Per batch: piece strings, masked hidden states ``[B, T, H]``, masked logits ``[B, T, C]``."""
    for words in batches:
        enc = tokenizer(words, is_split_into_words=True, padding=True, truncation=True,
                        max_length=128, return_tensors="pt")
        with torch.inference_mode():
            hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
            logits = head(hidden)
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pieces = [tokenizer.convert_ids_to_tokens(ids) for ids in enc["input_ids"].tolist()]
        yield pieces, hidden * mask, logits * mask


def _train_step_seconds(tokenizer, model, batch, steps: int) -> float:
    """Mean seconds of a forward + backward + AdamW step over ``steps`` (after one warm-up)."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    enc = tokenizer(batch, is_split_into_words=True, padding=True, truncation=True,
                    max_length=128, return_tensors="pt")
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
        out.pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step:
            times.append(time.perf_counter() - start)
    model.eval()
    return sum(times) / len(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="untrimmed model folder")
    parser.add_argument("--corpus", nargs="+", required=True, help="corpus files (CoNLL/TSV, text)")
    parser.add_argument("--lang", help="language of the corpus files when names do not say")
    parser.add_argument("--trimmed", help="trimmed folder (created from --corpus if missing)")
    parser.add_argument("--limit", type=int, default=700,
                        help="sentences compared, taken evenly from the corpus files")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=3, help="timed AdamW steps (0: skip)")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model_dir = Path(args.model)
    trimmed_dir = Path(args.trimmed) if args.trimmed else model_dir.parent / (model_dir.name + "-trim")
    trim_seconds = None
    if not (trimmed_dir / "trim_info.json").is_file():
        start = time.perf_counter()
        trim_model(model_dir, args.corpus, trimmed_dir, lang=args.lang)
        trim_seconds = round(time.perf_counter() - start, 1)
    info = json.loads((trimmed_dir / "trim_info.json").read_text(encoding="utf-8"))

    per_file = max(1, args.limit // len(args.corpus))  # every file (language) is compared
    sentences = [s for path in args.corpus for s in read_trim_corpus([path], args.lang)[:per_file]]
    words = [s.tokens for s in sentences]
    batches = [words[i:i + args.batch_size] for i in range(0, len(words), args.batch_size)]
    full_tok, full = _load(model_dir)
    trim_tok, trim = _load(trimmed_dir)
    torch.manual_seed(args.seed)
    head = torch.nn.Linear(full.config.hidden_size, 7)
    same_pieces, max_hidden, max_logit, n_tokens = True, 0.0, 0.0, 0
    start = time.perf_counter()
    full_out = list(_outputs(full_tok, full, head, batches))
    full_seconds = time.perf_counter() - start
    start = time.perf_counter()
    trim_out = list(_outputs(trim_tok, trim, head, batches))
    trim_seconds_fwd = time.perf_counter() - start
    for (p_a, h_a, l_a), (p_b, h_b, l_b) in zip(full_out, trim_out):
        same_pieces &= p_a == p_b
        max_hidden = max(max_hidden, float((h_a - h_b).abs().max()))
        max_logit = max(max_logit, float((l_a - l_b).abs().max()))
        n_tokens += sum(len(p) for p in p_a)

    step = {}
    if args.train_steps:
        batch = words[: args.batch_size]
        step = {"full_s": round(_train_step_seconds(full_tok, full, batch, args.train_steps), 3),
                "trimmed_s": round(_train_step_seconds(trim_tok, trim, batch, args.train_steps), 3),
                "batch_size": len(batch), "steps": args.train_steps}

    result = {
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                    # timings are only comparable between runs at a similar load
                    "load_average_1m_5m_15m": [round(x, 1) for x in os.getloadavg()]},
        "model": str(model_dir), "trimmed": str(trimmed_dir), "corpus": args.corpus,
        "trim_seconds": trim_seconds,
        "vocab": {"before": info["vocab_before"], "after": info["vocab_after"]},
        "parameters": {"before": info["params_before"], "after": info["params_after"]},
        "weights_mb": {"before": round(info["bytes_before"] / 2**20, 1),
                       "after": round(info["bytes_after"] / 2**20, 1)},
        "agreement": {"sentences": len(sentences), "tokens": n_tokens,
                      "identical_pieces": same_pieces, "max_abs_diff_hidden": max_hidden,
                      "max_abs_diff_logits_random_head": max_logit},
        "inference_seconds": {"full": round(full_seconds, 2), "trimmed": round(trim_seconds_fwd, 2)},
        "train_step": step,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result, indent=1))
    ok = same_pieces and max_hidden <= 1e-4 and max_logit <= 1e-4
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
