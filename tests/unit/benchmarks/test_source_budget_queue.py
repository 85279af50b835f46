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


def _row(system, budget, lang, seed, f1):
    return {"system": system, "budget": budget, "target": lang, "seed": seed, "f1": {lang: f1}}


def test_a_variant_is_compared_with_its_base_on_the_same_seeds_only():
    """T = 2 at seed 1 beside ConCNER + KD at seeds 1-3: the gain is seed 1's difference, not
    seed 1 against the 3-seed mean (which a lucky seed would make look like a win); at
    3 seeds it wins only above the base's seed spread."""
    rows = []
    for seed, base in ((1, 0.46), (2, 0.36), (3, 0.31)):
        rows += [_row("concner_kd", 100, lang, seed, base) for lang in sb.IN_DOMAIN]
    rows += [_row("concner_kd_t2", 100, lang, 1, 0.47) for lang in sb.IN_DOMAIN]
    (t2,) = sb.variants_vs_base(rows, list(sb.IN_DOMAIN), [100])
    assert t2["base"] == "concner_kd" and list(t2["per_seed"]) == [1]
    assert abs(t2["mean_gain"] - 1.0) < 1e-6  # 47 - 46, not 47 - 37.7
    assert t2["wins"] == "not yet"
    rows += [_row("concner_kd_t2", 100, lang, seed, f1) for lang in sb.IN_DOMAIN
             for seed, f1 in ((2, 0.37), (3, 0.32))]
    (t2,) = sb.variants_vs_base(rows, list(sb.IN_DOMAIN), [100])
    assert t2["wins"] == "no"  # +1.0 at every seed, below a 7.6-point spread
    big = [dict(r, f1={r["target"]: r["f1"][r["target"]] + 0.1}) if r["system"] == "concner_kd_t2"
           else r for r in rows]
    assert sb.variants_vs_base(big, list(sb.IN_DOMAIN), [100])[0]["wins"] == "yes"  # +11


def test_the_trimmed_encoder_covers_the_whole_sweep_whatever_one_run_was_asked(tmp_path,
                                                                                monkeypatch):
    """A run started with ``--seeds 2 --budgets 100`` once trimmed the shared encoder to its
    own slice, and a second run beside it met text outside the vocabulary. The trim must
    cover every default seed, budget and target, and be named by that text."""
    from concner.encoders import trim
    from concner.sentence import Sentence

    def sent(sid, lang, word="w"):
        return Sentence(id=sid, lang=lang, tokens=[word])

    engine = {"word": "hola"}
    monkeypatch.setattr(sb, "permutation_sample", lambda seed, n, pool=None: [
        sent(f"en-s{seed}-{i}", "en") for i in range(n)])
    monkeypatch.setattr(sb.bd, "translations", lambda source, lang, work: (
        [sent(f"{s.id}-{lang}", lang, engine["word"]) for s in source], {}))
    monkeypatch.setattr(sb.SourceBudget, "dev", lambda self, lang: [sent(f"dev-{lang}", lang)])
    monkeypatch.setattr(sb.SourceBudget, "unlabelled",
                        lambda self, lang: [sent(f"unl-{lang}", lang)])
    covered = []

    def fake_trim(base, sentences, out, corpus_names=()):
        covered.append(sentences)
        Path(out).mkdir(parents=True)
        (Path(out) / "config.json").write_text("{}")

    monkeypatch.setattr(trim, "trim_encoder", fake_trim)

    def encoder(argv):
        args = sb.parse_args(argv + ["--encoder", str(tmp_path / "e5")])
        args.results, args.work = tmp_path / "rows.jsonl", tmp_path / "work"
        return sb.SourceBudget(args).encoder()

    narrow = encoder(["--seeds", "2", "--budgets", "100", "--langs", "de", "--zero-shot",
                      "--masakhaner", "hau"])
    ids = {s.id for s in covered[0]}
    for seed in sb.SEEDS:
        assert f"en-s{seed}-{max(sb.BUDGETS) - 1}" in ids  # every seed's largest sample
        for lang in sb.IN_DOMAIN:
            assert f"en-s{seed}-0-{lang}" in ids  # and its translations
    assert {f"dev-{lang}" for lang in ("en", *sb.ZERO_SHOT, *sb.MASAKHA)} <= ids
    # a wider run uses the same folder, without trimming again
    assert encoder(["--budgets", "500", "1000"]) == narrow and len(covered) == 1
    # another translation engine's words: another trim, in another folder
    engine["word"] = "hello"
    assert encoder([]) != narrow and len(covered) == 2
