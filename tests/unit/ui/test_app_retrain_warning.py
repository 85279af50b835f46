"""An on-demand retrain from the Training page runs even when the project is not ready,
and the page says what is missing (concner/ui/jobs.py, concner/jobs/readiness.py)."""

from __future__ import annotations

from appkit import app_env, no_exception, open_page


def test_start_a_retrain_of_an_unready_project_queues_it_and_warns(monkeypatch, tmp_path):
    from storekit import make_sentences

    from concner.jobs import queue as tasks
    from concner.store import Store

    store = Store(app_env(monkeypatch, tmp_path))
    store.create_project("demo", source_lang="en", target_langs=["de"],
                         entity_types=["PER", "ORG", "LOC"], encoder="enc")
    store.import_sentences("demo", make_sentences("src", 5, "en", seed=1), role="source",
                           split="train")
    monkeypatch.setattr(tasks, "enqueue", lambda *args: None)
    at = open_page("training", project="demo")
    next(b for b in at.button if b.label == "Start a retrain").click()
    at.run()
    no_exception(at)
    (run,) = store.runs("demo", kind="retrain")
    assert run.status == "queued" and run.reason == "on_demand"
    (warning,) = [w.value for w in at.warning if "not ready" in w.value]
    assert warning.startswith("Project 'demo' is not ready") and "runs anyway" in warning
    assert 'Data page, tab "Gold target dev data"' in warning
    assert "concner project" not in warning  # the app names its controls, not commands


def test_the_sync_message_says_a_retrain_needs_the_switch_and_readiness(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from concner.jobs import queue as tasks

    synced = []
    monkeypatch.setattr(tasks, "sync", synced.append)

    def page():
        from concner.ui import jobs

        jobs.start_sync("demo")

    at = AppTest.from_function(page).run()
    no_exception(at)
    assert synced == ["demo"]
    (message,) = [s.value for s in at.success]
    assert "if the project's automatic retraining is on and it is ready" in message
