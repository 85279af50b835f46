"""The early-stopping replay uses the training loop's own stop rule."""

import random
from types import SimpleNamespace

import pytest

from benchmarks.early_stop_check import epochs_trained, replay
from concner.method.training_run import TrainingRun


def _loop_epochs(scores: list[float], patience: int) -> int:
    """Epochs the real loop trains: it asks ``_plateaued`` before every epoch after the first."""
    history = []
    for epoch, score in enumerate(scores, start=1):
        run = SimpleNamespace(tc=SimpleNamespace(early_stop_patience=patience), history=history)
        if epoch > 1 and TrainingRun._plateaued(run, "stage1"):
            return epoch - 1
        history.append({"stage": "stage1", "score": score})
    return len(scores)


@pytest.mark.parametrize("patience", [0, 1, 2, 3])
def test_the_replay_stops_where_the_training_loop_would(patience):
    rng = random.Random(patience)
    for _ in range(300):
        scores = [round(rng.random(), 1) for _ in range(rng.randint(1, 7))]  # ties included
        assert epochs_trained(scores, patience) == _loop_epochs(scores, patience), scores


def test_a_stop_before_the_best_epoch_is_counted_with_its_loss():
    rows = [{"budget": 100, "history": [{"stage": "stage1", "score": s}
                                        for s in (0.0, 0.0, 0.3, 0.5, 0.6)]},
            {"budget": 100, "history": [{"stage": "stage1", "score": s}
                                        for s in (0.2, 0.4, 0.5, 0.45, 0.5)]}]
    cell = replay(rows, 1)["100 stage1"]
    # the first stops after epoch 2 (0.0 is no better than 0.0), losing 0.6; the second
    # after epoch 4, its best (epoch 3) already in
    assert (cell["epochs_all"], cell["epochs_kept"]) == (10, 6)
    assert (cell["stopped_early"], cell["lost_best"]) == (2, 1)
    assert cell["mean_score_loss_where_lost"] == 60.0
