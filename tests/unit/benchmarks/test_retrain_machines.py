"""Retrain runs resume only on the machine that made them; other machines' are kept."""

from benchmarks.speed_retrain import split_by_machine

XEON, EPYC = "Intel Xeon, 2 cores, no GPU", "AMD EPYC, 2 cores, no GPU"


def _section(machine: str, seconds: float) -> dict:
    return {"runs": [{"variant": "before", "seed": 13, "full": {"seconds": seconds}}],
            "provenance": {"machine": machine}}


def test_another_machines_runs_are_set_aside_not_resumed():
    saved = {"retrain": _section(XEON, 650.0)}
    mine, elsewhere = split_by_machine(saved, EPYC)
    assert mine is None  # nothing to resume: the Xeon's 650 s is not this CPU's figure
    assert elsewhere == {XEON: saved["retrain"]}


def test_returning_to_a_machine_resumes_its_runs_and_keeps_the_others():
    saved = {"retrain": _section(EPYC, 480.0), "retrain_elsewhere": {XEON: _section(XEON, 650.0)}}
    mine, elsewhere = split_by_machine(saved, XEON)
    assert mine["runs"][0]["full"]["seconds"] == 650.0
    assert elsewhere == {EPYC: saved["retrain"]}
    mine, elsewhere = split_by_machine(saved, EPYC)
    assert mine is saved["retrain"] and elsewhere == {XEON: saved["retrain_elsewhere"][XEON]}
