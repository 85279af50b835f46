"""Batched prediction: tags, character spans with scores, and uncertainty per sentence.

How it stays fast on CPU and independent of the batch size:
  * all sentences are tokenised in one batched call of the fast tokenizer;
  * long sentences become overlapping windows (:func:`concner.method.encoding.encode_windows`),
    each word taken from the window where it is most central (largest distance in
    sub-words to the window's edge; ties go to the earlier window);
  * windows are sorted by length (longest first) and cut into batches of at most
    ``batch_size`` windows and, on CPU, ``max_tokens`` padded tokens: padded only to the
    longest of their batch, and small enough for the activations to stay in cache;
  * the forward pass runs under ``torch.inference_mode`` in eval mode (dropout off unless
    MC dropout is asked for); on CPU the encoder's linear layers run prepacked for oneDNN
    (or in int8), see :mod:`concner.method.precision` and ``model.inference_precision``; bf16
    autocast on CUDA;
  * per-word results are gathered with array operations over the whole input, not per
    sentence.
Padding is masked out, so a sentence's probabilities do not depend on its batch (up to
float rounding, far below 1e-5 in fp32; int8 rows are quantised one by one, so int8 does
not depend on the batch either).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from concner.config import DECODINGS
from concner.errors import ConfigError
from concner.labels import Span
from concner.method.encoding import Collator, Encoded, encode_windows
from concner.method.model import NerBundle
from concner.method.precision import check_precision, int8_copy, packed_copy, weights_version
from concner.sentence import Sentence

#: default padded tokens per forward pass on CPU (see Predictor.max_tokens)
CPU_MAX_TOKENS = 1024


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
        batch_size: at most this many sequences (sentences or windows) per forward pass.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        bf16: autocast to bfloat16 on CUDA whatever the precision (the standard GPU path).
        decoding: ``"argmax"`` (per word, stray ``I-`` repaired to ``B-``) or ``"viterbi"``
            (best valid IOB2 sequence); None takes ``bundle.config.decoding``.
        precision: ``"fp32"``, ``"bf16"`` or ``"int8"`` (CPU only), see
            :mod:`concner.method.precision`; None takes ``bundle.config.inference_precision``.
        max_tokens: at most this many padded tokens (rows x longest) per forward pass; a
            longer sequence runs alone; 0: no limit. None: :data:`CPU_MAX_TOKENS` on CPU
            (small batches keep activations in cache and padding low), no limit on CUDA.
        prepack: on CPU, run fp32/bf16 linear layers with oneDNN-prepacked weights
            (:func:`concner.method.precision.packed_copy`; same numerics up to rounding order);
            False runs the bundle's own modules (torch's default path).

    On CPU the predictor runs a converted copy of the encoder's linear layers (prepacked,
    or int8), made on first use and remade whenever the bundle's weights have changed.
    """

    def __init__(self, bundle: NerBundle, batch_size: int = 64, device: str = "auto", *,
                 bf16: bool = True, decoding: str | None = None, precision: str | None = None,
                 max_tokens: int | None = None, prepack: bool = True):
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        self.decoding = bundle.config.decoding if decoding is None else decoding
        if self.decoding not in DECODINGS:
            raise ConfigError(f"decoding must be one of {DECODINGS}, got {self.decoding!r}")
        self.bundle = bundle
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)
        self.precision = check_precision(
            bundle.config.inference_precision if precision is None else precision, self.device)
        if max_tokens is None:
            max_tokens = CPU_MAX_TOKENS if self.device.type == "cpu" else 0
        if max_tokens < 0:
            raise ConfigError(f"max_tokens must be >= 0 (0: no limit), got {max_tokens}")
        self.max_tokens = int(max_tokens)
        #: bf16 matrix products (autocast, or a prepacked bf16 copy on CPU)
        self.bf16 = self.precision == "bf16" or (bf16 and self.device.type == "cuda")
        self.prepack = prepack
        self.bundle.model.to(self.device)
        self._collate = Collator(bundle.tokenizer.pad_token_id)
        self._copy: tuple[tuple, torch.nn.Module] | None = None  # (weights version, copy)

    # -- public API --------------------------------------------------------------------
    def predict(self, sentences: Sequence[Sentence]) -> list[Prediction]:
        """One :class:`Prediction` per sentence, in input order."""
        flat, bounds, _ = self._run(sentences, mc_dropout=False, embeddings=False)
        return self._predictions(sentences, flat, bounds)

    def predict_with_embeddings(self, sentences: Sequence[Sentence]
                                ) -> tuple[list[Prediction], np.ndarray]:
        """:meth:`predict` and :meth:`sentence_embeddings` ``[N, H]`` from one pass (what
        the diversity strategy needs after a pool prediction, without a second pass)."""
        flat, bounds, emb = self._run(sentences, mc_dropout=False, embeddings=True)
        return self._predictions(sentences, flat, bounds), emb

    def predict_in_chunks(self, sentences: Sequence[Sentence], *, chunk: int,
                          embeddings: bool = False,
                          on_chunk: Callable[[int], object] | None = None
                          ) -> tuple[list[Prediction], np.ndarray | None]:
        """:meth:`predict`, and with ``embeddings`` :meth:`sentence_embeddings` ``[N, H]``
        from the same pass, ``chunk`` sentences at a time (bounds memory on a large pool;
        the results do not depend on it). ``on_chunk(n)`` runs after each chunk of ``n``
        sentences (progress). Returns ``(predictions, embeddings or None)``."""
        if chunk < 1:
            raise ConfigError(f"chunk must be >= 1, got {chunk}")
        predictions: list[Prediction] = []
        parts: list[np.ndarray] = []
        for start in range(0, len(sentences), chunk):
            part = sentences[start:start + chunk]
            if embeddings:
                got, emb = self.predict_with_embeddings(part)
                parts.append(emb)
            else:
                got = self.predict(part)
            predictions += got
            if on_chunk is not None:
                on_chunk(len(part))
        if not embeddings:
            return predictions, None
        if not parts:
            return predictions, np.zeros((0, self.bundle.model.hidden_size), dtype=np.float32)
        return predictions, np.concatenate(parts)

    def _predictions(self, sentences: Sequence[Sentence], flat: np.ndarray,
                     bounds: np.ndarray) -> list[Prediction]:
        """``flat`` ``[total words, C]`` probabilities, sentence ``i``'s rows
        ``bounds[i]:bounds[i + 1]`` -> one :class:`Prediction` per sentence."""
        # per-word figures for all sentences at once: [total words]
        top = flat.max(axis=-1, initial=0.0)
        entropy = -(flat * np.log(np.clip(flat, 1e-12, 1.0))).sum(axis=-1)
        argmax = flat.argmax(axis=-1).tolist() if len(flat) else []
        return [self._prediction(sentence, flat[a:b], top[a:b], entropy[a:b], argmax[a:b])
                for sentence, (a, b) in zip(sentences, itertools.pairwise(bounds))]

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
        flat, bounds, _ = self._run(sentences, mc_dropout=mc_dropout, embeddings=False)
        return [flat[a:b] for a, b in itertools.pairwise(bounds)]

    def sentence_embeddings(self, sentences: Sequence[Sentence]) -> np.ndarray:
        """``[N, H]`` masked-mean last hidden states (float32). A windowed sentence gets the
        mean of its windows' embeddings weighted by their lengths."""
        _, _, emb = self._run(sentences, mc_dropout=False, embeddings=True)
        return emb

    # -- internals ---------------------------------------------------------------------
    def _prediction(self, sentence: Sentence, probs: np.ndarray, top: np.ndarray,
                    entropy: np.ndarray, argmax: list[int]) -> Prediction:
        """``probs`` ``[n_words, C]``; ``top``, ``entropy`` ``[n_words]`` (highest
        probability and entropy per word); ``argmax``: best tag id per word."""
        schema = self.bundle.schema
        if len(probs) == 0:
            return Prediction(sentence.id, [], [], probs, 0.0, 1.0)
        if self.decoding == "viterbi":
            tags = schema.decode(viterbi_iob2(probs, schema.tags))
        else:
            tags = schema.decode_valid(argmax)
        return Prediction(sentence.id, tags, spans_from_tags(tags, sentence.offsets, top), probs,
                          float(entropy.mean()), float(top.min()))

    def _network(self) -> tuple[torch.nn.Module, bool]:
        """The module that runs and whether to autocast it to bf16: the bundle's model, or
        on CPU its converted copy (remade when the bundle's weights changed since)."""
        model = self.bundle.model
        if self.device.type != "cpu" or (self.precision != "int8" and not self.prepack):
            return model, self.bf16
        version = weights_version(model)
        if self._copy is None or self._copy[0] != version:
            if self.precision == "int8":
                converted = int8_copy(model)
            else:
                dtype = torch.bfloat16 if self.bf16 else torch.float32
                converted = packed_copy(model, dtype) or model
            self._copy = (version, converted)
        network = self._copy[1]
        return network, self.bf16 and network is model

    def _run(self, sentences: Sequence[Sentence], *, mc_dropout: bool, embeddings: bool):
        """Returns ``(probs, bounds, embeddings)``: ``probs`` ``[total words, C]`` float32,
        sentence ``i``'s words are rows ``bounds[i]:bounds[i + 1]`` (``bounds`` ``[N + 1]``);
        ``embeddings`` ``[N, H]`` float32, or None."""
        model = self.bundle.model
        config = self.bundle.config
        n_labels = len(self.bundle.schema)
        n_words = np.array([len(s.tokens) for s in sentences], dtype=np.int64)
        first_word = np.concatenate([[0], np.cumsum(n_words)])  # [N + 1] flat word index
        emb_sum = emb_weight = None
        if embeddings:
            emb_sum = np.zeros((len(sentences), model.hidden_size), dtype=np.float64)
            emb_weight = np.zeros(len(sentences), dtype=np.float64)
        found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if sentences:
            windows = encode_windows(self.bundle.tokenizer, sentences, config.max_length,
                                     config.window_stride)
            order = sorted(range(len(windows)), key=lambda i: (-len(windows[i]), i))
            network, autocast = self._network()
            was_training = model.training
            model.train(mc_dropout)
            network.train(mc_dropout)
            try:
                with torch.inference_mode(), torch.autocast(self.device.type, torch.bfloat16,
                                                            enabled=autocast):
                    for chunk in plan_batches([len(windows[i]) for i in order], self.batch_size,
                                              self.max_tokens):
                        indices = [order[k] for k in chunk]
                        found.append(self._forward(network, [windows[i] for i in indices],
                                                   indices, len(windows), first_word,
                                                   emb_sum, emb_weight))
            finally:
                model.train(was_training)
                if network is not model:
                    network.eval()
        flat = np.zeros((int(first_word[-1]), n_labels), dtype=np.float32)
        if len(flat):
            where, key, rows = (np.concatenate(parts) for parts in zip(*found))
            # each word from the window where it is most central (the highest key)
            order = np.lexsort((key, where))
            where, rows = where[order], rows[order]
            last = np.append(where[1:] != where[:-1], True)
            flat[where[last]] = rows[last]
        emb = None
        if embeddings:
            emb = (emb_sum / np.maximum(emb_weight, 1.0)[:, None]).astype(np.float32)
        return flat, first_word, emb

    def _forward(self, network: torch.nn.Module, batch: list[Encoded], indices: list[int],
                 n_windows: int, first_word: np.ndarray, emb_sum: np.ndarray | None,
                 emb_weight: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Run one batch (windows ``indices``, longest first). Returns, for every word the
        batch holds, ``(flat word index [n], key [n], probabilities [n, C])``; the key is
        larger the more central the word is in its window (the distance in sub-words to
        the nearer edge: more context on both sides), ties to the earlier window, so the
        choice does not depend on the batches."""
        tensors = self._collate(batch)  # [B, T] each
        word_ids = tensors["word_ids"].numpy()
        lengths = tensors["attention_mask"].sum(dim=1).numpy()  # [B]
        out = network(tensors["input_ids"].to(self.device),
                      tensors["attention_mask"].to(self.device))
        first = word_ids >= 0  # [B, T]
        rows, positions = np.nonzero(first)  # in (batch row, position) order, as the mask
        selected = torch.softmax(out.logits[torch.from_numpy(first).to(self.device)].float(),
                                 dim=-1).cpu().numpy()  # [n, C]
        owner = np.array([e.sentence_index for e in batch], dtype=np.int64)[rows]
        centrality = np.minimum(positions, lengths[rows] - 1 - positions)
        key = centrality * (n_windows + 1) + (n_windows - np.asarray(indices)[rows])
        where = first_word[owner] + word_ids[rows, positions]
        if emb_sum is not None:
            sent = out.sentence_repr.float().cpu().numpy()  # [B, H]
            owners = np.array([e.sentence_index for e in batch], dtype=np.int64)
            np.add.at(emb_sum, owners, sent * lengths[:, None])
            np.add.at(emb_weight, owners, lengths.astype(np.float64))
        return where, key, selected


def plan_batches(lengths: Sequence[int], batch_size: int, max_tokens: int) -> list[range]:
    """Cut positions ``0..len(lengths)-1`` of sequences sorted longest first into
    consecutive batches of at most ``batch_size`` sequences and, when ``max_tokens`` > 0, at
    most ``max_tokens`` padded tokens (rows x the batch's first, longest, length); a batch
    holds at least one sequence."""
    batches, start = [], 0
    while start < len(lengths):
        cap = batch_size
        if max_tokens > 0:
            cap = min(cap, max(1, max_tokens // max(1, lengths[start])))
        batches.append(range(start, min(start + cap, len(lengths))))
        start += cap
    return batches
