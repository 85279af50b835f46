"""Active-learning strategies on hand-made probability tensors, plus score_pool on a tiny model."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from concner.active import (
    STRATEGIES,
    Diversity,
    PoolOutputs,
    get_strategy,
    pad_ragged,
)
from concner.config import ActiveConfig
from concner.errors import ConfigError, DataFormatError, ModelError

torch.set_num_threads(1)
C = 7  # O + B/I of PER, ORG, LOC


def word(top: float, second: float | None = None, c: int = C) -> np.ndarray:
    """One word's label distribution: ``top`` on label 0, ``second`` on label 1, the rest spread."""
    p = np.zeros(c)
    p[0] = top
    used = top
    if second is not None:
        p[1] = second
        used += second
        rest = np.arange(2, c)
    else:
        rest = np.arange(1, c)
    p[rest] = (1.0 - used) / len(rest)
    return p


def sent(*words: np.ndarray) -> np.ndarray:
    return np.stack(words) if words else np.zeros((0, C))


def random_pool(n: int, seed: int = 0, *, max_len: int = 12, passes: int = 4, h: int = 6) -> PoolOutputs:
    """Ragged random pool with empty sentences, MC samples, representations and a teacher."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, size=n)
    lengths[::17] = 0  # the only empty sentences: s00000, s00017, ...
    probs = [rng.dirichlet(np.full(C, 0.3), size=int(t)) for t in lengths]
    mc = [rng.dirichlet(np.full(C, 0.3), size=(passes, int(t))) for t in lengths]
    teacher = [rng.dirichlet(np.full(C, 0.3), size=int(t)) for t in lengths]
    return PoolOutputs([f"s{i:05d}" for i in range(n)], probs, mc_samples=mc,
                       representations=rng.normal(size=(n, h)), teacher_probs=teacher)


def ids(selection) -> list[str]:
    return [s.sentence_id for s in selection]


# ---------------------------------------------------------------------------------------
# slow per-sentence reference implementations (plain Python loops over words)

def _h(p) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)



def _kl(x: list[float], m: list[float]) -> float:
    return sum(a * math.log(a / c) for a, c in zip(x, m) if a > 0)

def reference_scores(name: str, out: PoolOutputs) -> list[float]:
    result = []
    for i, probs in enumerate(out.word_probs):
        n = len(probs)
        if n == 0:
            result.append(0.0)
            continue
        if name == "least_confidence":
            result.append(1.0 - min(max(w) for w in probs))
        elif name == "mnlp":
            result.append(-sum(math.log(max(w)) for w in probs) / n)
        elif name == "mean_entropy":
            result.append(sum(_h(w) for w in probs) / n)
        elif name == "max_entropy":
            result.append(max(_h(w) for w in probs))
        elif name == "margin":
            gaps = []
            for w in probs:
                a, b = sorted(w, reverse=True)[:2]
                gaps.append(a - b)
            result.append(1.0 - min(gaps))
        elif name == "bald":
            samples = out.mc_samples[i]  # [K, n, C]
            total = 0.0
            for t in range(n):
                per_pass = [samples[k][t] for k in range(len(samples))]
                mean = [sum(p[c] for p in per_pass) / len(per_pass) for c in range(C)]
                total += _h(mean) - sum(_h(p) for p in per_pass) / len(per_pass)
            result.append(total / n)
        elif name == "teacher_student":
            total = 0.0
            for p, q in zip(probs, out.teacher_probs[i]):
                m = [(a + b) / 2 for a, b in zip(p, q)]
                total += 0.5 * _kl(p, m) + 0.5 * _kl(q, m)
            result.append(total / n)
        else:
            raise KeyError(name)
    return result


@pytest.mark.parametrize("name", ["least_confidence", "mnlp", "mean_entropy", "max_entropy",
                                  "margin", "bald", "teacher_student"])
def test_vectorised_scores_equal_slow_reference(name):
    out = random_pool(60, seed=3)
    fast = STRATEGIES[name].scores(out)
    assert fast.shape == (60,)
    np.testing.assert_allclose(fast, reference_scores(name, out), rtol=1e-6, atol=1e-7)


def test_pad_ragged_matches_rows_and_mask():
    arrays = [np.arange(6.0).reshape(3, 2), np.zeros((0, 2)), np.ones((1, 2))]
    padded, mask = pad_ragged(arrays)
    assert padded.shape == (3, 3, 2)
    assert mask.tolist() == [[True, True, True], [False] * 3, [True, False, False]]
    np.testing.assert_array_equal(padded[0], arrays[0])
    np.testing.assert_array_equal(padded[2, 0], arrays[2][0])
    assert not padded[1].any() and not padded[2, 1:].any()


# ---------------------------------------------------------------------------------------
# each strategy picks what it should

def test_least_confidence_and_mnlp_disagree_as_designed():
    one_hard_word = sent(word(0.4), word(0.99), word(0.99))  # worst word 0.4, mean log high
    all_unsure = sent(word(0.6), word(0.6), word(0.6))  # worst word 0.6, mean log lower
    sure = sent(word(0.99), word(0.99))
    out = PoolOutputs(["hard", "unsure", "sure"], [one_hard_word, all_unsure, sure])
    assert ids(get_strategy("least_confidence").select(out, 3)) == ["hard", "unsure", "sure"]
    assert ids(get_strategy("mnlp").select(out, 3)) == ["unsure", "hard", "sure"]


def test_scores_do_not_grow_with_sentence_length_alone():
    short = sent(*[word(0.7)] * 2)
    long = sent(*[word(0.7)] * 20)
    out = PoolOutputs(["long", "short"], [long, short])
    for name in ("mnlp", "mean_entropy", "max_entropy", "least_confidence"):
        s = STRATEGIES[name].scores(out)
        assert s[0] == pytest.approx(s[1]), name
    # equal scores are ties, broken by id
    assert ids(get_strategy("mnlp").select(out, 2)) == ["long", "short"]


def test_mean_and_max_entropy_pick_differently():
    one_flat_word = sent(np.full(C, 1.0 / C), *[word(0.999)] * 5)
    all_mid = sent(*[word(0.5)] * 5)
    out = PoolOutputs(["flat", "mid"], [one_flat_word, all_mid])
    assert ids(get_strategy("max_entropy").select(out, 1)) == ["flat"]
    assert ids(get_strategy("mean_entropy").select(out, 1)) == ["mid"]


def test_margin_prefers_a_near_tie_over_a_low_but_clear_maximum():
    tie = sent(word(0.5, 0.5), word(0.99))  # top two equal: margin 0
    spread = sent(word(0.4, 0.1), word(0.99))  # lower max, but a clear winner
    out = PoolOutputs(["tie", "spread"], [tie, spread])
    assert ids(get_strategy("margin").select(out, 1)) == ["tie"]
    assert ids(get_strategy("least_confidence").select(out, 1)) == ["spread"]


def test_bald_picks_model_disagreement_not_flat_predictions():
    a, b = np.eye(C)[0], np.eye(C)[1]
    half = 0.5 * (a + b)
    # both sentences have the same mean prediction (half/half); only "disagree" has passes
    # that disagree with each other
    disagree = np.stack([sent(a, a), sent(b, b), sent(a, a), sent(b, b)])
    agree = np.stack([sent(half, half)] * 4)
    out = PoolOutputs(["agree", "disagree"], [sent(half, half)] * 2, mc_samples=[agree, disagree])
    scores = get_strategy("bald").scores(out)
    assert scores[0] == pytest.approx(0.0, abs=1e-9)
    assert scores[1] == pytest.approx(math.log(2), rel=1e-6)
    assert ids(get_strategy("bald").select(out, 1)) == ["disagree"]
    assert get_strategy("mean_entropy").scores(out)[0] == pytest.approx(
        get_strategy("mean_entropy").scores(out)[1])


def test_bald_is_zero_for_a_deterministic_model():
    out = random_pool(40, seed=5)
    same = [np.repeat(p[None], 5, axis=0) for p in out.word_probs]
    deterministic = PoolOutputs(out.sentence_ids, out.word_probs, mc_samples=same)
    np.testing.assert_allclose(get_strategy("bald").scores(deterministic), 0.0, atol=1e-9)
    assert get_strategy("bald").scores(out).max() > 0.01


def test_teacher_student_picks_disagreement_and_is_symmetric():
    confident_per = sent(word(0.95))
    confident_org = np.roll(confident_per, 3, axis=1)
    out = PoolOutputs(["agree", "disagree"], [confident_per, confident_per],
                      teacher_probs=[confident_per, confident_org])
    assert ids(get_strategy("teacher_student").select(out, 1)) == ["disagree"]
    scores = get_strategy("teacher_student").scores(out)
    assert scores[0] == pytest.approx(0.0, abs=1e-12)
    assert 0 < scores[1] <= math.log(2)
    pool = random_pool(30, seed=2)
    swapped = PoolOutputs(pool.sentence_ids, pool.teacher_probs, teacher_probs=pool.word_probs)
    np.testing.assert_allclose(get_strategy("teacher_student").scores(pool),
                               get_strategy("teacher_student").scores(swapped), atol=1e-12)


def three_cluster_pool(seed: int = 0):
    """15 sentences in 3 tight clusters; cluster "a" is the most uncertain, then "b", "c"."""
    rng = np.random.default_rng(seed)
    centres = np.eye(8)[:3] * 10.0
    sids, probs, reps = [], [], []
    for c, (name, top) in enumerate([("a", 0.40), ("b", 0.50), ("c", 0.60)]):
        for j in range(5):
            sids.append(f"{name}{j}")
            probs.append(sent(word(top + 0.01 * j), word(top + 0.01 * j)))
            reps.append(centres[c] + rng.normal(scale=0.01, size=8))
    return PoolOutputs(sids, probs, representations=np.stack(reps))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_diversity_takes_the_best_of_each_cluster_where_uncertainty_takes_one_cluster(seed):
    out = three_cluster_pool(seed)
    assert ids(get_strategy("mnlp").select(out, 3, seed=seed)) == ["a0", "a1", "a2"]
    assert ids(Diversity(base="mnlp", factor=5).select(out, 3, seed=seed)) == ["a0", "b0", "c0"]


def test_diversity_only_clusters_the_top_candidates_and_respects_exclude():
    out = three_cluster_pool()
    # factor 1: the 3 candidates are all from cluster a, nothing else is considered
    assert ids(Diversity(base="mnlp", factor=1).select(out, 3)) == ["a0", "a1", "a2"]
    got = ids(Diversity(base="mnlp", factor=5).select(out, 3, exclude={"a0", "b0"}))
    assert got == ["a1", "b1", "c0"]


def test_diversity_never_wastes_a_place_on_an_empty_sentence():
    out = PoolOutputs(["e", "x", "y", "z"], [sent(), sent(word(0.5)), sent(word(0.6)), sent(word(0.7))],
                      representations=np.array([[0.0, 1], [1, 0], [1, 0.01], [-1, 0]]))
    got = Diversity(base="mnlp", factor=5).select(out, 2)
    assert "e" not in ids(got) and len(got) == 2
    assert ids(Diversity(base="mnlp", factor=5).select(out, 4))[-1] == "e"


def test_diversity_order_is_one_diverse_batch_after_another():
    out = three_cluster_pool()
    div = Diversity(base="mnlp", factor=5)
    order = div.order(out, 3)
    # each batch of 3 takes one sentence per cluster: the best left of a, b and c
    assert order[:3] == ["a0", "b0", "c0"] and order[3:6] == ["a1", "b1", "c1"]
    assert order[:3] == ids(div.select(out, 3))
    assert order[3:6] == ids(div.select(out, 3, exclude=set(order[:3])))
    assert sorted(order) == sorted(out.sentence_ids)  # the whole pool, each sentence once
    # plain uncertainty would ask for the whole of cluster a first
    assert get_strategy("mnlp").order(out, 3)[:5] == ["a0", "a1", "a2", "a3", "a4"]


def test_diversity_order_limit_leaves_the_rest_in_base_score_order():
    out = three_cluster_pool()
    order = Diversity(base="mnlp", factor=5).order(out, 3, limit=4)
    assert order[:3] == ["a0", "b0", "c0"]
    rest = [sid for sid in ids(get_strategy("mnlp").select(out, 15)) if sid not in order[:4]]
    assert order[4:] == rest and len(order) == 15 == len(set(order))
    with pytest.raises(ConfigError, match="batch_size"):
        Diversity().order(out, 0)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_order_starts_with_select_and_covers_the_pool_once(name):
    out = random_pool(40, seed=5)
    strategy = get_strategy(name)
    order = strategy.order(out, 8, seed=3)
    assert sorted(order) == sorted(out.sentence_ids)
    assert order[:8] == ids(strategy.select(out, 8, seed=3))
    assert order == strategy.order(out, 8, seed=3)


# ---------------------------------------------------------------------------------------
# contract of select() for every strategy

@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_select_never_returns_excluded_or_duplicates_and_is_reproducible(name):
    out = random_pool(80, seed=11)
    strategy = get_strategy(name)
    exclude = {f"s{i:05d}" for i in range(0, 80, 3)}
    got = strategy.select(out, 20, exclude=exclude, seed=7)
    assert len(got) == 20
    assert len(set(ids(got))) == 20
    assert not set(ids(got)) & exclude
    assert got == strategy.select(out, 20, exclude=exclude, seed=7)
    scores = [s.score for s in got]
    assert scores == sorted(scores, reverse=True)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), k=st.integers(0, 40), seed=st.integers(0, 5),
       excluded=st.sets(st.integers(0, 29), max_size=30), name=st.sampled_from(sorted(STRATEGIES)))
def test_select_contract_holds_for_any_pool_k_and_exclusion(n, k, seed, excluded, name):
    out = random_pool(n, seed=seed)
    exclude = {f"s{i:05d}" for i in excluded}
    got = ids(get_strategy(name).select(out, k, exclude=exclude, seed=seed))
    available = set(out.sentence_ids) - exclude
    assert len(got) == len(set(got)) == min(k, len(available))
    assert set(got) <= available


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_k_larger_than_the_pool_returns_the_whole_non_excluded_pool(name):
    out = random_pool(10, seed=1)
    got = get_strategy(name).select(out, 50, exclude={"s00003"})
    assert sorted(ids(got)) == sorted(set(out.sentence_ids) - {"s00003"})
    # empty sentences (s00000 has no words) come last
    assert ids(got)[-1] == "s00000"
    assert get_strategy(name).select(out, 0) == []


def test_random_depends_on_the_seed_only():
    out = random_pool(50)
    random = get_strategy("random")
    assert random.select(out, 10, seed=1) == random.select(out, 10, seed=1)
    assert ids(random.select(out, 10, seed=1)) != ids(random.select(out, 10, seed=2))


def test_ties_are_broken_by_sentence_id_whatever_the_pool_order():
    p = sent(word(0.5), word(0.8))
    out = PoolOutputs(["c", "a", "b"], [p, p.copy(), p.copy()],
                      representations=np.ones((3, 2)))
    for name in ("mnlp", "least_confidence", "margin", "mean_entropy"):
        assert ids(get_strategy(name).select(out, 3)) == ["a", "b", "c"]


def test_empty_sentences_score_zero_and_come_last():
    out = PoolOutputs(["a_empty", "z_sure"], [sent(), sent(word(1.0))])
    for name in ("least_confidence", "mnlp", "mean_entropy", "max_entropy", "margin"):
        assert STRATEGIES[name].scores(out)[0] == 0.0
        assert ids(STRATEGIES[name].select(out, 2)) == ["z_sure", "a_empty"]


# ---------------------------------------------------------------------------------------
# errors and configuration

def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(ConfigError, match="mnlp") as info:
        get_strategy("uncertainty")
    assert "bald" in str(info.value) and "'uncertainty'" in str(info.value)


def test_get_strategy_reads_the_active_config():
    strategy = get_strategy("diversity", ActiveConfig(diversity_candidates=2, diversity_base="margin"))
    assert strategy.factor == 2 and strategy.base.name == "margin"
    with pytest.raises(ConfigError, match="diversity_candidates"):
        get_strategy("diversity", ActiveConfig(diversity_candidates=0))
    with pytest.raises(ConfigError, match="unknown active-learning strategy"):
        get_strategy("diversity", ActiveConfig(diversity_base="nope"))


def test_missing_inputs_and_bad_k_raise_typed_errors():
    out = PoolOutputs(["a"], [sent(word(0.5))])
    with pytest.raises(ConfigError, match="MC-dropout"):
        get_strategy("bald").select(out, 1)
    with pytest.raises(ConfigError, match="representations"):
        get_strategy("diversity").select(out, 1)
    with pytest.raises(ConfigError, match="teacher"):
        get_strategy("teacher_student").select(out, 1)
    with pytest.raises(ConfigError, match=">= 0"):
        get_strategy("mnlp").select(out, -1)
    one_pass = PoolOutputs(["a"], [sent(word(0.5))], mc_samples=[sent(word(0.5))[None]])
    with pytest.raises(ConfigError, match="at least 2"):
        get_strategy("bald").select(one_pass, 1)


def test_pool_outputs_validate_ids_and_shapes():
    with pytest.raises(DataFormatError, match="twice"):
        PoolOutputs(["a", "a"], [sent(word(0.5))] * 2)
    with pytest.raises(ModelError, match="for 2 sentences"):
        PoolOutputs(["a", "b"], [sent(word(0.5))])
    with pytest.raises(ModelError, match=r"expected \[K, 1, C\]"):
        PoolOutputs(["a"], [sent(word(0.5))], mc_samples=[np.zeros((3, 2, C))])
    with pytest.raises(ModelError, match="teacher"):
        PoolOutputs(["a"], [sent(word(0.5))], teacher_probs=[np.zeros((2, C))])
    with pytest.raises(ModelError, match="representations"):
        PoolOutputs(["a"], [sent(word(0.5))], representations=np.zeros((2, 4)))


def test_a_10000_sentence_pool_is_scored_in_batched_ops():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, size=10_000)
    probs = [rng.dirichlet(np.ones(C), size=int(t)).astype(np.float32) for t in lengths]
    mc = [np.stack([p, p[::-1]]) for p in probs]
    out = PoolOutputs([f"s{i}" for i in range(10_000)], probs, mc_samples=mc,
                      representations=rng.normal(size=(10_000, 16)))
    start = time.perf_counter()
    for name in ("mnlp", "least_confidence", "mean_entropy", "margin", "bald", "diversity"):
        assert len(get_strategy(name).select(out, 50)) == 50
    # a per-sentence Python loop takes tens of seconds here; batched ops take about one
    assert time.perf_counter() - start < 20.0


# ---------------------------------------------------------------------------------------
# score_pool with a real (tiny) model

def test_score_pool_runs_a_tiny_model(tmp_path):
    pytest.importorskip("concner.method.inference", reason="concner/method/inference.py has not landed yet")
    from concner.active import score_pool
    from concner.method.inference import Predictor
    from concner.sentence import Sentence
    from tests.tiny import make_tiny_bundle

    bundle = make_tiny_bundle(tmp_path, seed=0)
    teacher = make_tiny_bundle(tmp_path, seed=1)
    words = ["John", "Smith", "visited", "Paris", "and", "Google", "in", "London"]
    pool = [Sentence.from_tokens(f"p{i}", "en", words[: 2 + i % 6]) for i in range(12)]
    predictor = Predictor(bundle, batch_size=4, device="cpu")

    out = score_pool(predictor, pool, "bald", mc_passes=3, seed=5)
    assert out.sentence_ids == [s.id for s in pool]
    assert [p.shape for p in out.word_probs] == [(len(s), 7) for s in pool]
    assert [m.shape for m in out.mc_samples] == [(3, len(s), 7) for s in pool]
    scores = get_strategy("bald").scores(out)
    assert scores.max() > 0  # dropout 0.1 makes the passes differ
    again = score_pool(predictor, pool, "bald", mc_passes=3, seed=5)
    np.testing.assert_allclose(get_strategy("bald").scores(again), scores, atol=1e-6)

    div = score_pool(predictor, pool, "diversity", mc_passes=3)
    assert div.representations.shape[0] == 12 and div.mc_samples is None
    assert len(get_strategy("diversity").select(div, 4)) == 4
    # embeddings from the prediction pass are used as they are, with no second pass
    preds, emb = predictor.predict_with_embeddings(pool)
    predictor.sentence_embeddings = None  # calling it would fail
    given = score_pool(predictor, pool, "diversity", mc_passes=3, representations=emb,
                       word_probs=[p.word_probs for p in preds])
    np.testing.assert_allclose(given.representations, div.representations, atol=1e-5)
    with pytest.raises(ConfigError, match="representations"):
        score_pool(predictor, pool, "diversity", mc_passes=3, representations=emb[:5])
    del predictor.sentence_embeddings

    ts = score_pool(predictor, pool, "teacher_student", mc_passes=3,
                    teacher=Predictor(teacher, batch_size=4, device="cpu"))
    assert get_strategy("teacher_student").scores(ts).min() > 0  # two different random heads
    with pytest.raises(ConfigError, match="teacher"):
        score_pool(predictor, pool, "teacher_student", mc_passes=3)
    with pytest.raises(ConfigError, match="mc_passes"):
        score_pool(predictor, pool, "bald", mc_passes=1)
