"""The source-budget queue and teachers of the tuning-slice variants (issue 19 part 2),
without training anything: the order of ``cells()`` and which models a KD variant is
given."""

from __future__ import annotations

from pathlib import Path

from benchmarks import source_budget as sb


def _bench(tmp_path):
    args = sb.parse_args([])
    args.results, args.work = tmp_path / "rows.jsonl", tmp_path / "work"
    return sb.SourceBudget(args)


def test_slice_variants_run_only_on_their_slice_right_after_their_baselines(tmp_path):
    queue = list(dict.fromkeys(_bench(tmp_path).cells()))
    assert len(queue) == len(set(queue))
    for system, (budgets, seeds) in sb.SLICE.items():
        cells = [c for c in queue if c[0] == system and c[3] in seeds]
        assert {(b, d) for _, b, _, d in cells} == {(b, d) for b in budgets for d in seeds}
        assert {t for _, _, t, _ in cells} == set(sb.IN_DOMAIN)
        for _, budget, lang, seed in cells:
            at = queue.index((system, budget, lang, seed))
            baselines = [queue.index((s, budget, "in_domain" if s in sb.SHARED else lang, seed))
                         for s in sb.BUDGET_SYSTEMS if sb.is_main(s)]
            assert max(baselines) < at  # after the main systems' cells it is compared with
            nxt = next(c for c in queue[at:] if sb.is_main(c[0]))
            assert nxt[1:] != (budget, lang, seed)  # ...and not after the next block began
    # variant (d) runs at 3 seeds (issue 19): its other seeds at the queue's end, after
    # every main cell, so they never delay the grid
    t2 = [i for i, c in enumerate(queue) if c[0] == "concner_kd_t2" and c[3] != 1]
    assert {queue[i][3] for i in t2} == {2, 3}
    assert min(t2) > max(i for i, c in enumerate(queue) if sb.is_main(c[0]))
    # the variants' teachers come before them
    for system, teachers in sb.TEACHERS.items():
        for cell in (c for c in queue if c[0] == system):
            for teacher in teachers:
                target = "in_domain" if teacher in sb.SHARED else cell[2]
                assert queue.index((teacher, cell[1], target, cell[3])) < queue.index(cell)


def test_multi_teacher_kd_starts_from_concner_and_averages_with_source_only(tmp_path,
                                                                           monkeypatch):
    bench = _bench(tmp_path)
    loaded, trained, ran = [], [], []
    monkeypatch.setattr(sb.SourceBudget, "config",
                        lambda self, system, seed: type("C", (), {"loss": type("L", (), {
                            "use_translation": False, "kd": True})})())
    monkeypatch.setattr(sb.SourceBudget, "unlabelled", lambda self, lang: ["u"])
    monkeypatch.setattr(sb.SourceBudget, "run_cell", lambda self, *cell: ran.append(cell))

    def load(path):
        loaded.append(Path(path).name)
        return Path(path).name

    def fake_train(self, config, system, budget, seed, init, translations, unlabelled, path,
                   lang=None, extra_teachers=()):
        trained.append((system, init, list(extra_teachers), translations))
        return None, {"f1": {}}

    import concner.method.model

    monkeypatch.setattr(concner.method.model.NerBundle, "load", staticmethod(load))
    monkeypatch.setattr(sb.SourceBudget, "train", fake_train)
    _, extra = bench.trained_cell("concner_kd_multi", 100, "de", 1)
    # neither teacher exists in the empty work folder: both are trained first
    assert ran == [("concner", 100, "de", 1), ("source_only", 100, "in_domain", 1)]
    assert trained == [("concner_kd_multi", "concner-b100-de-s1", ["source_only-b100-en-s1"],
                        None)]
    assert extra["teachers"] == ["concner", "source_only"]
    trained.clear()
    bench.trained_cell("concner_kd", 100, "de", 1)  # quality.py's teacher, alone
    assert trained == [("concner_kd", "concner-b100-de-s1", [], None)]
