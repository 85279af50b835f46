"""The shared driver of marker-based backends (Apertium, Hugging Face seq2seq).

A subclass only turns a batch of marked texts into translated texts
(:meth:`MarkerTranslator.translate_texts`); this class marks the sentences, serves what it
can from the cache, sends the rest to the engine in batches, and projects the tags.
"""

from __future__ import annotations

from abc import abstractmethod

from concner.sentence import Sentence
from concner.translation.base import Progress, ProjectedPair, Translator, failed
from concner.translation.cache import TranslationCache
from concner.translation.markers import mark, project


class MarkerTranslator(Translator):
    """Base of engines that translate text with inline entity markers."""

    style: str = "html"
    batch_size: int = 64

    def __init__(self, *, cache: TranslationCache | None = None,
                 protect: frozenset[str] = frozenset()):
        self.cache = cache
        self.protect = frozenset(protect)
        #: how many texts were sent to the engine (cache misses), over this object's life
        self.engine_texts = 0

    @abstractmethod
    def translate_texts(self, texts: list[str], target_lang: str) -> list[str | None]:
        """Translate marked texts; ``None`` for a text whose output could not be aligned
        with its input (that pair fails, with the reason from :meth:`misaligned_reason`)."""

    def misaligned_reason(self) -> str:
        return "the engine's output could not be aligned with its input"

    def cache_model(self, target_lang: str) -> str:
        """The ``model`` part of the cache key (engine, pair, settings that change output)."""
        protect = ",".join(sorted(self.protect))
        return f"{self.model}|{self.style}|protect={protect}"

    def translate(self, sentences: list[Sentence], target_lang: str, *,
                  progress: Progress | None = None) -> list[ProjectedPair]:
        marked = [mark(s, self.style, protect=self.protect) for s in sentences]
        texts = [text for text, _ in marked]
        outputs: list[str | None] = [None] * len(texts)
        todo = list(range(len(texts)))
        model = self.cache_model(target_lang)
        if self.cache is not None:
            hits = self.cache.get_many(self.backend, model, target_lang, texts)
            todo = []
            for i, text in enumerate(texts):
                if text in hits:
                    outputs[i] = hits[text]
                else:
                    todo.append(i)
        done = len(texts) - len(todo)
        if progress is not None:
            progress(done, len(texts))
        unique_todo = list(dict.fromkeys(texts[i] for i in todo))
        translated: dict[str, str | None] = {}
        for start in range(0, len(unique_todo), self.batch_size):
            batch = unique_todo[start:start + self.batch_size]
            results = self.translate_texts(batch, target_lang)
            self.engine_texts += len(batch)
            translated.update(zip(batch, results))
            if self.cache is not None:
                self.cache.put_many(self.backend, model, target_lang,
                                    [(t, r) for t, r in zip(batch, results) if r is not None])
            in_batch = set(batch)
            done += sum(1 for i in todo if texts[i] in in_batch)
            if progress is not None:
                progress(min(done, len(texts)), len(texts))
        for i in todo:
            outputs[i] = translated[texts[i]]
        pairs = []
        for sentence, (text, refs), output in zip(sentences, marked, outputs):
            if output is None:
                pairs.append(failed(sentence, target_lang, self.misaligned_reason()))
                continue
            pairs.append(project(sentence, output, refs, target_lang, style=self.style,
                                 backend=self.backend))
        return pairs
