"""What goes to and comes back from Argilla, without the SDK: dataset names, the API key,
predictions to push, pulled annotations, annotation guidelines.

:mod:`concner.argilla.client` (the only module importing ``argilla``) re-exports these.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from concner.config import ServicesConfig
from concner.errors import ConfigError
from concner.labels import Span
from concner.sentence import Sentence

ROLES = ("source", "target")
#: the Review page's link to a dataset sorted by ask order (the guidelines name it)
ASK_ORDER_LINK = "Open in Argilla, in ask order"

LABEL_HELP = {
    "PER": ("People, real or fictional, by name (not pronouns or job titles alone).",
            "[Ana María] vive en Lima; [Sun Yat-sen]"),
    "ORG": ("Organisations: companies, institutions, teams, parties, agencies.",
            "[Naciones Unidas]; [FC Barcelona]; [Google]"),
    "LOC": ("Locations: countries, cities, regions, rivers, mountains, buildings.",
            "[Madrid]; the [Nile]; [Kilimanjaro]"),
    "MISC": ("Other named entities: events, nationalities, works, products.",
             "the [World Cup]; [Spanish] cuisine"),
}


def dataset_name(project: str, role: str, lang: str) -> str:
    """Argilla dataset name for a project's ``source`` annotation or ``target`` correction
    dataset in ``lang``: lower-case ``[a-z0-9-]``, e.g. ``my-project-correct-sw``."""
    if role not in ROLES:
        raise ConfigError(f"Argilla dataset role must be one of {ROLES}, got {role!r}")
    slug = re.sub(r"[^a-z0-9]+", "-", project.lower()).strip("-")[:120]
    code = re.sub(r"[^a-z0-9]+", "-", lang.lower()).strip("-")
    if not slug or not code:
        raise ConfigError(f"cannot name an Argilla dataset for project {project!r}, language "
                          f"{lang!r}: use letters or digits in both")
    return f"{slug}-{'annotate' if role == 'source' else 'correct'}-{code}"


def resolve_api_key(services: ServicesConfig, env: Mapping[str, str] | None = None) -> str:
    """The Argilla API key: ``services.argilla_api_key`` (``CONCNER_SERVICES__ARGILLA_API_KEY``),
    then ``ARGILLA_API_KEY``, then Streamlit secrets (``argilla_api_key`` or
    ``[argilla] api_key``, only inside the app), then the local stack's credentials file
    (``concner argilla up``). Raises :class:`ConfigError` when none is set."""
    env = os.environ if env is None else env
    if services.argilla_api_key:
        return services.argilla_api_key
    if env.get("ARGILLA_API_KEY"):
        return env["ARGILLA_API_KEY"]
    if "streamlit" in sys.modules:  # inside the app: its secrets.toml
        try:
            secrets = sys.modules["streamlit"].secrets
            key = secrets.get("argilla_api_key") or (secrets.get("argilla") or {}).get("api_key")
            if key:
                return str(key)
        except FileNotFoundError:  # no secrets.toml at all: the next source
            key = None
    creds = os.path.join(os.path.expanduser(services.argilla_data_dir), "credentials.json")
    try:
        with open(creds, encoding="utf-8") as f:
            return json.load(f)["api_key"]
    except (OSError, ValueError, KeyError):
        pass
    raise ConfigError("no Argilla API key: set ARGILLA_API_KEY (or "
                      "CONCNER_SERVICES__ARGILLA_API_KEY, or argilla_api_key in Streamlit "
                      "secrets), or start a local server with `concner argilla up`")


@dataclass(frozen=True)
class SpanSuggestion:
    """The suggestion an Argilla record carries: a model's spans for one sentence.

    ``spans`` carry character offsets into the sentence text and an optional ``score``
    each; ``uncertainty`` (higher = less sure) and ``ask_order`` (the active-learning
    strategy's order, 1 = ask first) become sortable record metadata."""

    spans: Sequence[Span]
    uncertainty: float | None = None
    ask_order: int | None = None

    @classmethod
    def from_tags(cls, sentence: Sentence, tags: Sequence[str],
                  uncertainty: float | None = None) -> SpanSuggestion:
        return cls(sentence.with_tags(tags).spans, uncertainty)


@dataclass
class PushReport:
    dataset: str
    created: int = 0
    updated: int = 0
    skipped_answered: int = 0  # records a person already answered: left alone
    unchanged: int = 0


@dataclass(frozen=True)
class PulledAnnotation:
    """One annotator's submitted answer for one sentence, as IOB2 tags over its tokens."""

    sentence_id: str
    lang: str
    tags: list[str]
    author: str
    submitted_at: datetime  # UTC
    snapped_spans: int  # spans widened to whole tokens (character-level selections)
    dataset: str


@dataclass
class PullResult:
    dataset: str
    annotations: list[PulledAnnotation] = field(default_factory=list)
    #: opaque; pass back as ``since`` next time (persist it with the annotations)
    cursor: str | None = None
    #: answers that could not become tags: ``(sentence_id, author, reason)``, never dropped silently
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    #: seconds after which a pull may take answers this one could not see yet (the dataset
    #: changed within the clock lag, so an answer just committed may not be searchable),
    #: or None when everything up to the server's clock was visible
    recheck_after: float | None = None

    @property
    def snapped_spans(self) -> int:
        return sum(a.snapped_spans for a in self.annotations)


def guidelines_text(labels: Sequence[str], extra: Mapping[str, tuple[str, str]] | None = None,
                    *, role: str = "source") -> str:
    """Markdown guidelines explaining each label with an example (``[brackets]`` = span)."""
    helps = {**LABEL_HELP, **(extra or {})}
    task = ("Mark every named entity in the sentence; when the model's guess is pre-filled, "
            "check it as carefully as an empty sentence." if role == "source" else
            "The model's guesses are pre-filled: fix wrong spans, add missed ones, delete false ones.")
    intro = (f"# Named entities\n\n{task} Select whole words only; punctuation next to a name "
             "is not part of it. Entities never overlap. Submit a sentence with no entities "
             "as it is.\n\nWork in the suggested order, which puts first what the "
             "active-learning strategy expects the model to learn most from: open this "
             f"dataset from ConCNER Studio's Review page (**{ASK_ORDER_LINK}**), "
             "which opens it sorted by **Ask order**; otherwise Argilla shows the records "
             "in a shuffled order of your own, so choose **Sort → Ask order** (ascending) "
             "above the record.\n")
    lines = [intro, "| label | what | examples |", "|---|---|---|"]
    for lab in labels:
        what, example = helps.get(lab, (f"Entities of type {lab}.", "-"))
        lines.append(f"| **{lab}** | {what} | {example} |")
    return "\n".join(lines)
