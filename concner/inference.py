"""Batched prediction: tags, character spans with scores, and uncertainty per sentence.

How it stays fast on CPU and independent of the batch size:
  * all sentences are tokenised in one batched call of the fast tokenizer;
  * long sentences become overlapping windows (:func:`concner.encoding.encode_windows`),
    each word taken from the window where it is most central (largest distance in
    sub-words to the window's edge; ties go to the earlier window);
  * windows are sorted by length (longest first) and padded only to the longest of their
    batch, so little compute goes to padding;
  * the forward pass runs under ``torch.inference_mode`` in eval mode (dropout off unless
    MC dropout is asked for), with bf16 autocast only on CUDA.
Padding is masked out, so a sentence's probabilities do not depend on its batch (up to
float rounding, far below 1e-5).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from concner.encoding import Collator, Encoded, encode_windows
from concner.errors import ConfigError
from concner.labels import Span
from concner.model import NerBundle
from concner.sentence import Sentence

DECODINGS = ("argmax", "viterbi")


@dataclass
class Prediction:
    """The model's reading of one sentence.

    Attributes:
        sentence_id: ``Sentence.id`` of the input.
        tags: one valid IOB2 tag per word (argmax with stray ``I-`` repaired to ``B-``, or
            the Viterbi path over valid IOB2 sequences; see ``ModelConfig.decoding``).
        spans: entities with character offsets into ``Sentence.text``; ``score`` is the mean
            over the entity's words of the word's highest tag probability.
        word_probs: ``[n_words, C]`` tag probabilities (float32), columns in schema order.
        mean_entropy: mean over words of the tag distribution's entropy (nats); 0 for an
            empty sentence.
        min_max_prob: lowest over words of the highest tag probability; 1 for an empty
            sentence.
    """

    sentence_id: str
    tags: list[str]
    spans: list[Span]
    word_probs: np.ndarray
    mean_entropy: float
    min_max_prob: float

    def to_dict(self, sentence: Sentence) -> dict:
        """JSON-ready record (used for ``concner predict`` output)."""
        return {
            "id": sentence.id,
            "lang": sentence.lang,
            "text": sentence.text,
            "tokens": list(sentence.tokens),
            "tags": list(self.tags),
            "spans": [
                {"start": s.start, "end": s.end, "label": s.label, "score": s.score,
                 "text": sentence.text[s.start:s.end]}
                for s in self.spans
            ],
            "mean_entropy": self.mean_entropy,
            "min_max_prob": self.min_max_prob,
        }


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU. Asking for CUDA without one raises."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for, but no CUDA GPU is available; "
                              "use 'auto' or 'cpu'")
        return torch.device(device)
    raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")


def iob2_transitions(tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Allowed IOB2 moves as additive log-scores: ``(start [C], transition [C_prev, C])``,
    0 where allowed and ``-inf`` where not (``I-X`` only after ``B-X``/``I-X``)."""
    n = len(tags)
    start = np.zeros(n)
    trans = np.zeros((n, n))
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            start[j] = -np.inf
            for i, prev in enumerate(tags):
                if prev[2:] != tag[2:] or prev == "O":
                    trans[i, j] = -np.inf
    return start, trans


def viterbi_iob2(probs: np.ndarray, tags: Sequence[str]) -> list[int]:
    """Tag ids of the most probable VALID IOB2 sequence, taking words as independent
    (``probs``: ``[n_words, C]``, columns in the order of ``tags``)."""
    n_words = len(probs)
    if n_words == 0:
        return []
    start, trans = iob2_transitions(tags)
    logp = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0))
    score = start + logp[0]  # [C]
    back = np.zeros((n_words, len(tags)), dtype=np.int64)
    for k in range(1, n_words):
        candidates = score[:, None] + trans  # [C_prev, C]
        back[k] = candidates.argmax(axis=0)
        score = candidates.max(axis=0) + logp[k]
    path = [int(score.argmax())]
    for k in range(n_words - 1, 0, -1):
        path.append(int(back[k, path[-1]]))
    return path[::-1]


def spans_from_tags(tags: Sequence[str], offsets: Sequence[tuple[int, int]],
                    word_scores: np.ndarray) -> list[Span]:
    """Spans of a VALID IOB2 sequence with ``score`` = mean of ``word_scores`` over the
    entity's words (``word_scores``: ``[n_words]``)."""
    spans: list[Span] = []
    start = None
    label = None
    for i, tag in enumerate(list(tags) + ["O"]):
        if start is not None and not (tag.startswith("I-") and tag[2:] == label):
            spans.append(Span(offsets[start][0], offsets[i - 1][1], label,
                              float(word_scores[start:i].mean())))
            start = None
        if tag.startswith("B-"):
            start, label = i, tag[2:]
    return spans


class Predictor:
    """Predicts with a :class:`NerBundle` (moved to ``device`` on construction).

    Args:
        bundle: the model. Its train/eval mode is restored after every call, so a trainer
            can evaluate mid-training.
        batch_size: sequences (sentences or windows) per forward pass.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        bf16: autocast to bfloat16 on CUDA (ignored on CPU).
        decoding: ``"argmax"`` (per word, stray ``I-`` repaired to ``B-``) or ``"viterbi"``
            (best valid IOB2 sequence); None takes ``bundle.config.decoding``.
    """

    def __init__(self, bundle: NerBundle, batch_size: int = 32, device: str = "auto", *,
                 bf16: bool = True, decoding: str | None = None):
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        self.decoding = bundle.config.decoding if decoding is None else decoding
        if self.decoding not in DECODINGS:
            raise ConfigError(f"decoding must be one of {DECODINGS}, got {self.decoding!r}")
        self.bundle = bundle
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        self.bf16 = bf16 and self.device.type == "cuda"
        self.bundle.model.to(self.device)
        self._collate = Collator(bundle.tokenizer.pad_token_id)

    # -- public API --------------------------------------------------------------------
    def predict(self, sentences: Sequence[Sentence]) -> list[Prediction]:
        """One :class:`Prediction` per sentence, in input order."""
        probs, _ = self._run(sentences, mc_dropout=False, embeddings=False)
        return [self._prediction(s, p) for s, p in zip(sentences, probs)]

    def predict_texts(self, texts: Sequence[str], lang: str) -> list[Prediction]:
        """Tokenise raw texts (:meth:`Sentence.from_text`, ids ``"0"``, ``"1"``, ...) and
        predict; span offsets index the given strings."""
        return self.predict(self.texts_to_sentences(texts, lang))

    @staticmethod
    def texts_to_sentences(texts: Sequence[str], lang: str) -> list[Sentence]:
        return [Sentence.from_text(str(i), lang, text) for i, text in enumerate(texts)]

    def word_probs(self, sentences: Sequence[Sentence], *, mc_dropout: bool = False) -> list[np.ndarray]:
        """Per sentence ``[n_words, C]`` tag probabilities. ``mc_dropout=True`` runs one
        stochastic pass with dropout on (call repeatedly for MC-dropout estimates)."""
        probs, _ = self._run(sentences, mc_dropout=mc_dropout, embeddings=False)
        return probs

    def sentence_embeddings(self, sentences: Sequence[Sentence]) -> np.ndarray:
        """``[N, H]`` masked-mean last hidden states (float32). A windowed sentence gets the
        mean of its windows' embeddings weighted by their lengths."""
        _, emb = self._run(sentences, mc_dropout=False, embeddings=True)
        return emb

    # -- internals ---------------------------------------------------------------------
    def _prediction(self, sentence: Sentence, probs: np.ndarray) -> Prediction:
        schema = self.bundle.schema
        if len(probs) == 0:
            return Prediction(sentence.id, [], [], probs, 0.0, 1.0)
        if self.decoding == "viterbi":
            tags = schema.decode(viterbi_iob2(probs, schema.tags))
        else:
            tags = schema.decode_valid(probs.argmax(axis=-1).tolist())
        top = probs.max(axis=-1)
        entropy = -(probs * np.log(np.clip(probs, 1e-12, 1.0))).sum(axis=-1)
        return Prediction(sentence.id, tags, spans_from_tags(tags, sentence.offsets, top), probs,
                          float(entropy.mean()), float(top.min()))

    def _autocast(self):
        if self.bf16:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _run(self, sentences: Sequence[Sentence], *, mc_dropout: bool, embeddings: bool):
        """Returns (per-sentence ``[n_words, C]`` arrays, ``[N, H]`` embeddings or None)."""
        model = self.bundle.model
        config = self.bundle.config
        n_labels = len(self.bundle.schema)
        probs = [np.zeros((len(s.tokens), n_labels), dtype=np.float32) for s in sentences]
        margin = [np.full(len(s.tokens), -1, dtype=np.int64) for s in sentences]
        emb_sum = emb_weight = None
        if embeddings:
            emb_sum = np.zeros((len(sentences), model.hidden_size), dtype=np.float64)
            emb_weight = np.zeros(len(sentences), dtype=np.float64)
        if not sentences:
            return probs, (emb_sum.astype(np.float32) if embeddings else None)

        windows = encode_windows(self.bundle.tokenizer, sentences, config.max_length,
                                 config.window_stride)
        order = sorted(range(len(windows)), key=lambda i: (-len(windows[i]), i))
        was_training = model.training
        model.train(mc_dropout)
        try:
            with torch.inference_mode(), self._autocast():
                for k in range(0, len(order), self.batch_size):
                    chunk = order[k:k + self.batch_size]
                    self._forward([windows[i] for i in chunk], chunk, len(windows), probs,
                                  margin, emb_sum, emb_weight)
        finally:
            model.train(was_training)
        if embeddings:
            emb = (emb_sum / np.maximum(emb_weight, 1.0)[:, None]).astype(np.float32)
            return probs, emb
        return probs, None

    def _forward(self, batch: list[Encoded], indices: list[int], n_windows: int,
                 probs: list[np.ndarray], margin: list[np.ndarray],
                 emb_sum: np.ndarray | None, emb_weight: np.ndarray | None) -> None:
        """Run one batch and write each word's probabilities into ``probs`` when this window
        is more central for it than any seen so far (``margin`` holds the best key)."""
        tensors = self._collate(batch)
        input_ids = tensors["input_ids"].to(self.device)
        attention = tensors["attention_mask"].to(self.device)
        word_ids = tensors["word_ids"]
        out = self.bundle.model(input_ids, attention)
        first = word_ids >= 0  # [B, T]
        # only first sub-words need a softmax: [N_first, C], rows in (batch row, position) order
        selected = torch.softmax(out.logits[first.to(self.device)].float(), dim=-1).cpu().numpy()
        counts = first.sum(dim=1).tolist()
        if emb_sum is not None:
            sent = out.sentence_repr.float().cpu().numpy()
            lengths = attention.sum(dim=1).cpu().numpy()
        start = 0
        for row, enc in enumerate(batch):
            rows = selected[start:start + counts[row]]
            start += counts[row]
            positions = np.flatnonzero(word_ids[row].numpy() >= 0)
            words = word_ids[row, positions].numpy()
            # distance to the nearest edge of the window (more context on both sides wins),
            # ties to the earlier window: independent of the order batches run in
            centrality = np.minimum(positions, len(enc) - 1 - positions)
            key = centrality * (n_windows + 1) + (n_windows - indices[row])
            owner = enc.sentence_index
            better = key > margin[owner][words]
            probs[owner][words[better]] = rows[better]
            margin[owner][words[better]] = key[better]
            if emb_sum is not None:
                emb_sum[owner] += sent[row] * lengths[row]
                emb_weight[owner] += lengths[row]
