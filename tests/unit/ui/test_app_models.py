"""The Models page: every version with per-language and per-label dev F1 side by side, the
difference to the active one, folder, training data, state and why; the promotion rule in
words; Pin / Roll back / Unpin buttons that change the active version and queue its pool
prediction. A store with three published versions (no training: a tiny untrained model)."""

from __future__ import annotations

import pytest
from appkit import app_env, no_exception, open_page
from storekit import make_project, publish_evaluated

COUNTS = {"source": 24, "translated": 20, "target": 3, "annotations": 30}


@pytest.fixture
def store(tmp_path, monkeypatch):
    from tiny import make_tiny_bundle

    from concner.jobs.registry import ModelRegistry
    from concner.store import Store

    url = app_env(monkeypatch, tmp_path)
    monkeypatch.setenv("CONCNER_SERVICES__PROMOTE_RULE", "every_language")
    store = Store(url)
    make_project(store, "p", "enc", n_source=4, n_dev=2, n_pool=4, targets=("es", "de"))
    registry = ModelRegistry(store, str(tmp_path / "models"), promote_rule="every_language")
    bundle = make_tiny_bundle(tmp_path)
    labels = {"PER": 0.9, "LOC": 0.6}
    per_label = {lang: {k: {"f1": v, "support": 5} for k, v in labels.items()}
                 for lang in ("es", "de")}
    publish_evaluated(store, registry, "p", bundle, {"es": 0.70, "de": 0.7368},
                      label_counts=COUNTS, per_label=per_label)
    # v2: better mean, es only evaluated (de F1 missing), worse PER
    publish_evaluated(store, registry, "p", bundle, {"es": 0.80}, mean=0.80,
                      per_label={"es": {"PER": {"f1": 0.85}, "LOC": {"f1": 0.7}}})
    # v3: its mean is 1 point below the active v2's: not promoted
    publish_evaluated(store, registry, "p", bundle, {"es": 0.81, "de": 0.7278}, mean=0.79)
    return store


def _versions(at):
    return at.dataframe[0].value.set_index("version")


def test_every_version_side_by_side_with_words_for_missing_values(store):
    at = open_page("models", project="p")
    no_exception(at)
    frame = _versions(at)
    assert list(frame.index) == ["v3", "v2", "v1"]
    cells = {str(c) for c in frame.to_numpy().ravel()}
    assert not cells & {"None", "nan", "NaN", "<NA>"}
    v1, v2, v3 = frame.loc["v1"], frame.loc["v2"], frame.loc["v3"]
    assert (v2["state"], v1["state"], v3["state"]) == ("active", "was active", "not promoted")
    assert (v1["es F1"], v1["de F1"], v2["de F1"]) == ("70.0", "73.7", "not evaluated")
    assert (v1["es vs active"], v2["es vs active"], v3["es vs active"]) == (
        "-10.0", "active", "+1.0")
    assert v3["de vs active"] == "active not evaluated"
    assert v1["trained on"] == "24 source / 20 translated / 3 target"
    mv = {v.version: v for v in store.model_versions("p")}
    assert v3["folder"] == mv[3].path and mv[3].path.endswith("v0003")
    assert v3["why"].startswith("not promoted: ")  # the decision the run recorded
    markdown = "\n".join(m.value for m in at.markdown)
    assert ("Promote when neither the mean target dev F1 nor any target language's dev F1 is "
            "more than 0.5 points below the active version's") in markdown
    assert 'services.promote_rule = "every_language"' in markdown
    labels = at.dataframe[1].value.set_index(["language", "label"])
    assert labels.loc[("es", "PER"), "v2"] == "85.0"
    assert labels.loc[("es", "PER"), "v1"] == "90.0 (+5.0)"
    assert labels.loc[("de", "PER"), "v2"] == "not evaluated"


def test_pin_roll_back_and_unpin_from_the_page(store):
    at = open_page("models", project="p")
    at.button(key="models-rollback").click().run()
    no_exception(at)
    assert store.active_model_version("p").version == 1
    assert store.get_project("p").pinned_version_id == store.active_model_version("p").id
    assert any("v1 is active instead of v2 and pinned" in s.value for s in at.success)
    predict = store.runs("p", kind="predict")
    assert len(predict) == 1 and predict[0].status == "queued"
    frame = _versions(at)
    assert frame.loc["v1", "state"] == "active, pinned"
    assert frame.loc["v1", "why"].startswith("pinned: stays active until unpinned; when "
                                             "made: promoted: ")
    assert frame.loc["v2", "state"] == "was active" and frame.loc["v2", "es vs active"] == \
        "+10.0"
    at.selectbox(key="models-version").set_value(3).run()
    at.button(key="models-pin").click().run()
    no_exception(at)
    assert store.active_model_version("p").version == 3
    assert _versions(at).loc["v3", "state"] == "active, pinned"
    at.button(key="models-unpin").click().run()
    no_exception(at)
    assert store.get_project("p").pinned_version_id is None
    assert any("v3 is no longer pinned" in s.value for s in at.success)
    assert at.button(key="models-unpin").disabled


def test_evaluate_a_version_on_the_current_dev_sets_from_the_page(store):
    at = open_page("models", project="p")
    frame = _versions(at)
    assert frame.loc["v1", "scored on"].startswith("older dev set")  # no fingerprint kept
    at.selectbox(key="models-version").set_value(1).run()
    at.button(key="models-evaluate").click().run()
    no_exception(at)
    v1 = next(v for v in store.model_versions("p") if v.version == 1)
    queued = [r for r in store.runs("p", kind="evaluate") if r.status == "queued"]
    assert [r.model_version_id for r in queued] == [v1.id]
    assert any("Evaluation of v1 of 'p' on the current dev sets queued" in s.value
               for s in at.success)
