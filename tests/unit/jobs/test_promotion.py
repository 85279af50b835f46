"""The promotion rule: a setting (rule + tolerance), validated, stated in words in every
decision; the every-language rule refuses a version whose mean hides one language's drop;
the registry feeds it the stored per-language F1 of the active version."""

from __future__ import annotations

import pytest

from concner.config import config_from_dict
from concner.errors import ConfigError
from concner.jobs.promotion import PromotionRule, Scores

# the reported case: v3's mean is within 0.5 of v2's, but de dropped 0.9 points
V2 = Scores(0.7184, {"es": 0.7000, "de": 0.7368})
V3 = Scores(0.7176, {"es": 0.7082, "de": 0.7278})


def test_rule_and_tolerance_are_settings_validated_naming_the_key():
    config = config_from_dict({"services": {"promote_rule": "every_language",
                                            "promote_tolerance": 0.25}}, env={})
    rule = PromotionRule.from_config(config)
    assert (rule.rule, rule.tolerance) == ("every_language", 0.25)
    with pytest.raises(ConfigError, match="services.promote_rule must be one of mean, "
                                          "every_language, got 'median'"):
        config_from_dict({"services": {"promote_rule": "median"}}, env={})
    with pytest.raises(ConfigError, match=r"services.promote_tolerance must be in \[0, 100\]"):
        config_from_dict({"services": {"promote_tolerance": -1}}, env={})
    with pytest.raises(ConfigError, match="services.promote_rule"):
        PromotionRule("median", 0.5)


def test_the_mean_rule_promotes_the_reported_case_and_says_so_with_its_rule():
    decision = PromotionRule("mean", 0.5).decide(V3, V2, active_version=2)
    assert decision.promote
    assert decision.reason == ("mean dev F1 71.76 is -0.08 points against the active v2's "
                               "71.84; rule: promote when the mean target dev F1 is at most "
                               "0.5 points below the active version's")


def test_the_every_language_rule_refuses_a_mean_that_hides_a_drop():
    decision = PromotionRule("every_language", 0.5).decide(V3, V2, active_version=2)
    assert not decision.promote
    assert decision.reason.startswith("de dropped 0.90 points from 73.68 to 72.78 against "
                                      "the active v2")
    assert ("rule: promote when neither the mean target dev F1 nor any target language's "
            "dev F1 is more than 0.5 points below the active version's") in decision.reason
    # a looser tolerance lets the same version through, naming each language's change
    loose = PromotionRule("every_language", 1.0).decide(V3, V2, active_version=2)
    assert loose.promote and "per language de -0.90, es +0.82 points" in loose.reason


def test_the_every_language_rule_checks_the_mean_and_languages_compared_only():
    rule = PromotionRule("every_language", 0.5)
    # mean worse beyond the tolerance: refused even though no single language is compared
    refused = rule.decide(Scores(0.70, {"sw": 0.70}), Scores(0.80, {"es": 0.80}),
                          active_version=4)
    assert not refused.promote and "below the active v4's 80.00" in refused.reason
    # a language the active version was never evaluated on cannot count as a drop
    new_lang = rule.decide(Scores(0.80, {"es": 0.80, "sw": 0.10}), Scores(0.80, {"es": 0.80}),
                           active_version=4)
    assert new_lang.promote and "per language es +0.00 points" in new_lang.reason
    only_mean = rule.decide(Scores(0.80, {"es": 0.80}), Scores(0.80, {}), active_version=4)
    assert only_mean.promote and "so the mean decided" in only_mean.reason


def test_a_pinned_active_version_is_never_replaced():
    better = Scores(0.99, {"es": 0.99, "de": 0.99})
    decision = PromotionRule("mean", 0.5).decide(better, V2, active_version=2,
                                                 pinned_version=2)
    assert not decision.promote and decision.reason.startswith("v2 is pinned")


def test_the_rule_described_in_words_names_its_settings():
    text = PromotionRule("every_language", 0.25).describe()
    assert text.startswith("Promote when neither the mean target dev F1 nor any target "
                           "language's dev F1 is more than 0.25 points below the active "
                           "version's")
    assert 'services.promote_rule = "every_language"' in text
    assert "services.promote_tolerance = 0.25" in text


def test_the_registry_compares_with_the_stored_per_language_f1_of_the_active(tmp_path):
    from storekit import publish_evaluated
    from tiny import make_tiny_bundle

    from concner.jobs.registry import ModelRegistry
    from concner.store import Store

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.create_project("p", source_lang="en", target_langs=["es", "de"],
                         entity_types=["PER", "ORG", "LOC"], encoder="enc")
    registry = ModelRegistry(store, str(tmp_path / "models"), promote_rule="every_language",
                             promote_tolerance=0.5)
    bundle = make_tiny_bundle(tmp_path)

    def publish(scores: Scores):
        return publish_evaluated(store, registry, "p", bundle, dict(scores.by_lang),
                                 mean=scores.mean)

    assert publish(V2).promoted
    third = publish(V3)
    assert not third.promoted and third.reason.startswith("de dropped 0.90 points")
    assert store.active_model_version("p").version == 1


def test_a_later_evaluation_of_the_active_version_is_what_a_new_one_is_compared_with(tmp_path):
    """The active v1 was trained when only es had dev sentences; evaluated again once de
    got a dev set, its mean over es and de is what the next version must match."""
    from storekit import publish_evaluated
    from tiny import make_tiny_bundle

    from concner.jobs.registry import ModelRegistry
    from concner.store import Store

    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.create_project("p", source_lang="en", target_langs=["es", "de"],
                         entity_types=["PER", "ORG", "LOC"], encoder="enc")
    registry = ModelRegistry(store, str(tmp_path / "models"), promote_tolerance=0.5)
    bundle = make_tiny_bundle(tmp_path)
    v1 = publish_evaluated(store, registry, "p", bundle, {"es": 0.70}).version
    run_id, _ = store.request_run("p", kind="evaluate", model_version_id=v1.id)
    store.add_metrics(run_id, "dev", {lang: {"precision": f1, "recall": f1, "f1": f1,
                                             "support": 10}
                                      for lang, f1 in {"es": 0.70, "de": 0.50}.items()},
                      model_version_id=v1.id)
    scores = registry.version_scores("p", v1)
    assert scores.by_lang == {"es": 0.70, "de": 0.50}
    assert scores.mean == pytest.approx(0.60) and v1.mean_f1 == pytest.approx(0.70)
    v2 = publish_evaluated(store, registry, "p", bundle, {"es": 0.69, "de": 0.52})
    assert v2.promoted and "against the active v1's 60.00" in v2.reason
