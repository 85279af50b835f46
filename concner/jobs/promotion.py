"""The promotion rule: when a new model version replaces the active one, in words.

Two rules (``services.promote_rule``), both with a tolerance of
``services.promote_tolerance`` F1 points:

- ``mean``: the new version's mean target dev F1 is at most the tolerance below the
  active version's;
- ``every_language``: that, and no target language that both versions were evaluated on
  drops by more than the tolerance (a mean can hide one language getting worse).

A pinned active version is never replaced (:mod:`concner.jobs.registry` pins and unpins).
:meth:`PromotionRule.decide` is pure: the registry hands it the F1 of the new version and
the stored F1 of the active one (F1 values are fractions in [0, 1]; texts show points).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from concner.config import ServicesConfig
from concner.settings import check_setting


@dataclass(frozen=True)
class Scores:
    """Dev F1 of one model version: ``mean`` over its target languages (None when it has
    no dev F1) and ``by_lang`` (language -> F1; may be empty when only the mean is known)."""

    mean: float | None
    by_lang: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def _points(f1: float) -> str:
    return f"{100 * f1:.2f}"


@dataclass(frozen=True)
class PromotionRule:
    """``rule`` (one of :data:`concner.config.PROMOTE_RULES`) and ``tolerance`` (F1 points)."""

    rule: str = "mean"
    tolerance: float = 0.5

    def __post_init__(self):  # the checks declared with the settings in concner/config.py
        check_setting(ServicesConfig, "services", "promote_rule", self.rule)
        check_setting(ServicesConfig, "services", "promote_tolerance", self.tolerance)

    @classmethod
    def from_config(cls, config) -> PromotionRule:
        s = config.services
        return cls(s.promote_rule, s.promote_tolerance)

    def phrase(self) -> str:
        """The rule in a few words: when a new version is promoted."""
        tol = f"{self.tolerance:g}"
        if self.rule == "mean":
            return (f"promote when the mean target dev F1 is at most {tol} points below the "
                    "active version's")
        return (f"promote when neither the mean target dev F1 nor any target language's dev "
                f"F1 is more than {tol} points below the active version's")

    def describe(self) -> str:
        """The rule as the model page states it, with the settings that make it."""
        return (f"{self.phrase()[0].upper()}{self.phrase()[1:]} "
                f"(services.promote_rule = \"{self.rule}\", "
                f"services.promote_tolerance = {self.tolerance:g}). A pinned version stays "
                "active whatever the new versions score.")

    def decide(self, new: Scores, active: Scores | None, *, active_version: int | None = None,
               pinned_version: int | None = None) -> Decision:
        """Promote ``new`` over ``active`` (None: there is no active version)?

        ``pinned_version`` (the active version's number when it is pinned) wins over the
        scores; ``active_version`` names the active one in the reason."""
        if active is None:
            return Decision(True, "no active model yet")
        if pinned_version is not None:
            return Decision(False, f"v{pinned_version} is pinned; Unpin on the Models page "
                                   "returns to the rule")
        name = f"the active v{active_version}" if active_version is not None else "the active"
        if new.mean is None:
            return Decision(False, "the new model has no dev F1 (no gold dev sentences) to "
                                   "compare")
        if active.mean is None:
            return Decision(True, f"{name} has no dev F1")
        rule = f"rule: {self.phrase()}"
        floor = active.mean - self.tolerance / 100.0
        mean_change = f"{_points(new.mean - active.mean).lstrip('-')} points"
        if new.mean < floor:
            return Decision(False, f"mean dev F1 {_points(new.mean)} is {mean_change} below "
                                   f"{name}'s {_points(active.mean)}; {rule}")
        mean_ok = (f"mean dev F1 {_points(new.mean)} is "
                   f"{100 * (new.mean - active.mean):+.2f} points against {name}'s "
                   f"{_points(active.mean)}")
        if self.rule == "mean":
            return Decision(True, f"{mean_ok}; {rule}")
        return self._every_language(new, active, name, mean_ok, rule)

    def _every_language(self, new: Scores, active: Scores, name: str, mean_ok: str,
                        rule: str) -> Decision:
        common = sorted(set(new.by_lang) & set(active.by_lang))
        if not common:
            return Decision(True, f"{mean_ok}; no language F1 of {name} to compare per "
                                  f"language, so the mean decided; {rule}")
        drops = [(lang, active.by_lang[lang], new.by_lang[lang]) for lang in common
                 if new.by_lang[lang] < active.by_lang[lang] - self.tolerance / 100.0]
        if drops:
            worst = " and ".join(f"{lang} dropped {_points(old - now)} points from {_points(old)} "
                                 f"to {_points(now)}" for lang, old, now in drops)
            return Decision(False, f"{worst} against {name}, although the {mean_ok}; {rule}")
        changes = ", ".join(f"{lang} {100 * (new.by_lang[lang] - active.by_lang[lang]):+.2f}"
                            for lang in common)
        return Decision(True, f"{mean_ok}; per language {changes} points; {rule}")
