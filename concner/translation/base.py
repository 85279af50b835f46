"""The translation interface shared by every backend, and the projected-pair types.

A backend turns labelled source sentences into sentences in a target language whose
IOB2 tags were carried over ("projected") from the source. Each result is a
:class:`ProjectedPair` with a :class:`Status`:

- ``ok``: the projection is exact (every source entity found once, on token boundaries);
- ``repaired``: a known, bounded defect was fixed (pieces of one entity merged, a lost
  marker recovered by finding the entity text, a span snapped to token boundaries); the
  ``reason`` says which, and the pair is used for training;
- ``failed``: the projection is broken (an entity lost, markers unbalanced, the engine's
  output misaligned); ``translated`` is ``None`` and the pair is never used for training.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from concner.sentence import Sentence

#: ``progress(done, total)``: called after each batch with sentences finished so far.
Progress = Callable[[int, int], None]


class Status(str, Enum):
    """Projection status of one pair."""

    OK = "ok"
    REPAIRED = "repaired"
    FAILED = "failed"


@dataclass
class ProjectedPair:
    """A source sentence and its translation with projected tags.

    Attributes:
        source: the source sentence (tags may be ``None`` for unlabelled text).
        translated: the target-language sentence (``lang`` = target, ``tags`` projected
            IOB2 when the source had tags, ``meta["source_id"]`` = ``source.id``,
            ``meta["projection"]`` = status), or ``None`` when the projection failed.
        status: ok / repaired / failed.
        reason: why the pair was repaired or failed ("" when ok).
        target_lang: the language asked for (known also when ``translated`` is None).
    """

    source: Sentence
    translated: Sentence | None
    status: Status
    reason: str = ""
    target_lang: str = ""

    @property
    def usable(self) -> bool:
        """True when the pair may be used for training (ok or repaired)."""
        return self.status is not Status.FAILED and self.translated is not None


def failed(source: Sentence, target_lang: str, reason: str) -> ProjectedPair:
    """A failed pair: no translation is kept, only the reason."""
    return ProjectedPair(source, None, Status.FAILED, reason, target_lang)


def usable_pairs(pairs: Sequence[ProjectedPair]) -> tuple[list[Sentence], list[Sentence]]:
    """The training view: ``(sources, translations)``, aligned index by index, with every
    failed pair left out. Nothing with a broken projection can pass through here."""
    sources: list[Sentence] = []
    translations: list[Sentence] = []
    for pair in pairs:
        if pair.usable:
            sources.append(pair.source)
            translations.append(pair.translated)  # type: ignore[arg-type]
    return sources, translations


def status_counts(pairs: Sequence[ProjectedPair]) -> dict[str, int]:
    """``{"ok": n, "repaired": n, "failed": n}`` over ``pairs``."""
    counts = {s.value: 0 for s in Status}
    for pair in pairs:
        counts[pair.status.value] += 1
    return counts


def projection_rates(pairs: Sequence[ProjectedPair]) -> dict[str, dict[str, float]]:
    """Per target language: ``{"n": pairs, "ok": share, "repaired": share, "failed": share}``."""
    groups: dict[str, list[ProjectedPair]] = {}
    for pair in pairs:
        groups.setdefault(pair.target_lang, []).append(pair)
    rates: dict[str, dict[str, float]] = {}
    for lang, group in sorted(groups.items()):
        n = len(group)
        rates[lang] = {"n": n, **{k: v / n for k, v in status_counts(group).items()}}
    return rates


class Translator(ABC):
    """One MT backend. Subclasses set ``backend`` and ``model`` (cache keys, reports)."""

    backend: str = "?"
    model: str = "?"

    @abstractmethod
    def translate(
        self, sentences: list[Sentence], target_lang: str, *, progress: Progress | None = None
    ) -> list[ProjectedPair]:
        """Translate ``sentences`` into ``target_lang`` and project their tags.

        Returns one pair per input sentence, in input order (failed ones included).
        ``progress(done, total)`` is called as batches finish.
        """
