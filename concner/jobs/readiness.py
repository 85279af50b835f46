"""The readiness rule: what a project still lacks before the worker retrains it by itself.

A project is *ready* for automatic retraining when it has

1. at least ``services.auto_retrain_min_source_labels`` labelled source sentences (outside
   dev),
2. text in every target language outside dev (the pool: distillation reads it,
   annotators correct from it; corrected sentences still count),
3. when the project trains with translations (``loss.use_translation``), usable
   translations of the source into at least one target language, and no translate run
   still queued or running (its pairs would arrive right after the retrain started),
4. gold dev sentences in at least one target language (without them a model is neither
   evaluated nor compared with the active one).

:func:`check` is pure (a :class:`ProjectFacts` in, a :class:`Readiness` out: each
requirement met or not, what is there, and what to do next, naming the app's control and
the command line's command); :func:`project_facts` reads the facts from the store. On-demand retrains
(the Training page's buttons, ``concner retrain``) run whether the project is ready or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProjectFacts:
    """What the rule looks at, per project (counts of sentences)."""

    name: str
    source_lang: str
    target_langs: tuple[str, ...]
    #: labelled source sentences outside dev (what a retrain learns from)
    source_labels: int
    #: target language -> target sentences outside dev: the pool and its corrected
    #: sentences (a pool people corrected completely still counts)
    target_text: Mapping[str, int] = field(default_factory=dict)
    #: target language -> source sentences with a usable translation into it
    translations: Mapping[str, int] = field(default_factory=dict)
    #: target language -> id of a translate run into it that is queued or running
    translating: Mapping[str, int] = field(default_factory=dict)
    #: target language -> gold dev sentences
    dev: Mapping[str, int] = field(default_factory=dict)
    uses_translation: bool = True
    min_source_labels: int = 100


@dataclass(frozen=True)
class Requirement:
    """One line of the checklist: ``have`` says what is there; what to do next (empty when
    met) in the app (``todo``: the page and control) and headless (``cli``: the command)."""

    key: str
    title: str
    met: bool
    have: str
    todo: str = ""
    cli: str = ""

    def next_step(self, where: str = "app") -> str:
        """What to do next, for the app (``where="app"``) or the command line (``"cli"``)."""
        return self.cli if where == "cli" else self.todo


@dataclass(frozen=True)
class Readiness:
    project: str
    requirements: tuple[Requirement, ...]

    @property
    def ready(self) -> bool:
        return all(r.met for r in self.requirements)

    @property
    def missing(self) -> list[Requirement]:
        return [r for r in self.requirements if not r.met]

    def summary(self) -> str:
        """``ready`` or ``not ready: <title>: <have>; ...`` (one line, for logs and the CLI)."""
        if self.ready:
            return "ready"
        return "not ready: " + "; ".join(f"{r.title.lower()}: {r.have}" for r in self.missing)

    def on_demand_warning(self, where: str = "app") -> str | None:
        """What an on-demand retrain of a project that is not ready should be told (it runs
        anyway), with the next steps for ``where`` ("app" or "cli"); None when ready."""
        if self.ready:
            return None
        return (f"project {self.project!r} is {self.summary()}. The retrain runs anyway, "
                "but its model may be weak or not evaluated; next: "
                + "; ".join(r.next_step(where) for r in self.missing))


def _per_lang(counts: Mapping[str, int], langs) -> str:
    return ", ".join(f"{lang} {counts.get(lang, 0):,}" for lang in langs)


def check(facts: ProjectFacts) -> Readiness:
    """The readiness rule applied to ``facts`` (see the module docstring)."""
    name, src = facts.name, facts.source_lang
    reqs = [Requirement(
        "source_labels", "Labelled source sentences",
        facts.source_labels >= facts.min_source_labels,
        f"{facts.source_labels:,} {src} (at least {facts.min_source_labels:,} needed: "
        "services.auto_retrain_min_source_labels)",
        f"import labelled {src} sentences: Data page, tab \"Source labelled data\"",
        f"concner project import {name} FILE --role source --split train --lang {src}")]
    for lang in facts.target_langs:
        n = facts.target_text.get(lang, 0)
        reqs.append(Requirement(
            f"target_text:{lang}", f"Text in {lang}", n > 0,
            f"{n:,} {lang} sentences outside dev (pool and corrected)",
            f"import {lang} text: Data page, tab \"Unlabelled target text\"",
            f"concner project import {name} FILE --role target --split pool --lang {lang}"))
    reqs.append(_translations(facts))
    with_dev = [lang for lang in facts.target_langs if facts.dev.get(lang, 0)]
    without = [lang for lang in facts.target_langs if lang not in with_dev]
    have = f"gold dev sentences: {_per_lang(facts.dev, facts.target_langs)}"
    if with_dev and without:
        have += f" ({', '.join(without)} not evaluated)"
    lang = (without or list(facts.target_langs) or ["LANG"])[0]
    reqs.append(Requirement(
        "dev", "Target dev set", bool(with_dev), have,
        f"import gold {lang} dev sentences: Data page, tab \"Gold target dev data\"",
        f"concner project import {name} FILE --role target --split dev --lang {lang}"))
    return Readiness(name, tuple(reqs))


def _translations(facts: ProjectFacts) -> Requirement:
    title = "Translations of the source"
    if not facts.uses_translation:
        return Requirement("translations", title, True,
                           "not needed: the project trains without translations "
                           "(loss.use_translation is off)")
    have = f"usable translations: {_per_lang(facts.translations, facts.target_langs)}"
    if facts.translating:
        runs = ", ".join(f"run {run} into {lang}" for lang, run in sorted(facts.translating.items()))
        return Requirement("translations", title, False, f"{have}; translating ({runs})",
                           "wait for the translate run to finish (Data page, tab "
                           "\"Machine-translate the source\", shows it)",
                           f"wait for the translate run to finish (concner project status "
                           f"{facts.name})")
    return Requirement(
        "translations", title, any(facts.translations.get(x, 0) for x in facts.target_langs),
        have,
        "translate the source: Data page, tab \"Machine-translate the source\", or upload "
        "your own in tab \"Upload translations\"; or train without them (Training page, "
        "\"use translations\")",
        f"concner project translate {facts.name} --backend apertium|dictionary|hf|file, or "
        f"concner project import {facts.name} FILE --role translation --split train")


def project_facts(store, name: str, config) -> ProjectFacts:
    """Read :class:`ProjectFacts` of project ``name`` from the store; ``config`` is the base
    configuration (its ``services.auto_retrain_min_source_labels`` and ``loss`` defaults;
    the project's own ``[loss]`` override of ``use_translation`` wins)."""
    project = store.get_project(name)
    source_labels, target_text, dev = 0, {}, {}
    for row in store.counts(name)["sentences"]:
        if row["role"] == "source" and row["split"] != "dev":
            source_labels += row["labelled"]
        elif row["role"] == "target" and row["split"] == "dev":
            dev[row["lang"]] = dev.get(row["lang"], 0) + row["labelled"]
        elif row["role"] == "target":  # the pool, and pool sentences people corrected
            target_text[row["lang"]] = target_text.get(row["lang"], 0) + row["sentences"]
    translating = {}
    for run in store.runs(name, kind="translate", limit=50):
        lang = (run.config or {}).get("target_lang")
        if run.status in ("queued", "running") and lang:
            translating.setdefault(lang, run.id)
    loss = (project.training_config or {}).get("loss") or {}
    return ProjectFacts(
        name=name, source_lang=project.source_lang, target_langs=tuple(project.target_langs),
        source_labels=source_labels, target_text=target_text,
        translations=store.usable_translations_by_lang(name), translating=translating,
        dev=dev, uses_translation=bool(loss.get("use_translation", config.loss.use_translation)),
        min_source_labels=config.services.auto_retrain_min_source_labels)


def project_readiness(store, name: str, config) -> Readiness:
    """:func:`check` of the stored project ``name``."""
    return check(project_facts(store, name, config))
