"""`lmscale demo emergence` end to end on a tiny ladder (the real demo takes ~10 minutes)."""

from __future__ import annotations

import csv
import json

import pytest

from lmscale.emergence.demo import emergence_spec, mixture_tasks, run_emergence_demo
from lmscale.emergence.detect import MIN_POINTS
from lmscale.data.tasks import get_task
from lmscale.errors import LmscaleError
from lmscale.sweep.spec import expand, parse_spec
from tests.helpers import tiny_config

CORPUS = "skills:add2;lines=2000;val_lines=100"


def test_packaged_spec_is_valid_and_quick_keeps_the_largest_model():
    full, quick = emergence_spec(), emergence_spec(quick=True)
    s_full, base = parse_spec(full)
    s_quick, base_q = parse_spec(quick)
    runs, runs_q = expand(s_full, base, vocab_size=64), expand(s_quick, base_q, vocab_size=64)
    n = sorted(r.n_params for r in runs)
    assert 5 <= len(runs) <= 7 and n[-1] / n[0] >= 10  # 5-7 sizes spanning at least 10x in parameters
    assert len({r.tokens for r in runs}) == 1  # one token budget: only the size changes along the ladder
    nq = sorted(r.n_params for r in runs_q)
    assert MIN_POINTS <= len(nq) < len(n) and nq[-1] == n[-1] and set(nq) <= set(n)
    # The mirage arithmetic needs long answers: some trained task has L = answer + newline >= 4 tokens.
    assert max(get_task(t).max_answer + 1 for t in mixture_tasks(full)) >= 4


def test_spec_without_a_skills_mixture_is_a_one_line_error():
    spec = {"name": "x", "base": tiny_config("shakespeare"), "ladder": {"shapes": [{"depth": 1}]},
            "tokens": {"absolute": [1000]}}
    with pytest.raises(LmscaleError, match="skills mixture"):
        mixture_tasks(spec)


def test_demo_trains_evaluates_analyses_and_reports(tmp_path):
    base = tiny_config(CORPUS, **{"train.steps": 4, "train.eval_every": 4, "train.checkpoint_every": 100,
                                  "train.final_eval_sequences": 16, "train.schedule": {"kind": "constant", "warmup": 1}})
    widths = (8, 12, 16, 24)
    spec = {"name": "tiny-emergence", "base": base,
            "ladder": {"shapes": [{"depth": 1, "width": w, "heads": 2} for w in widths]},
            "tokens": {"absolute": [4 * 8 * 32]}}
    res = run_emergence_demo(tmp_path / "demo", spec=spec, n_examples=24, n_bootstrap=50)
    out = tmp_path / "demo"

    # The evaluation table: every model under every harness metric that applies to add2 (it has choices).
    rows = list(csv.DictReader(res.eval_csv.open()))
    assert len({r["run_id"] for r in rows}) == len(widths)
    assert {r["metric"] for r in rows} == {"exact_match", "token_accuracy", "edit_distance", "logprob", "token_prob",
                                           "mc_accuracy", "brier"}
    assert all(int(r["n_examples"]) == 24 for r in rows)
    # Four steps of training cannot add two numbers: exact match is 0 for every size, so not yet emergent.
    assert all(float(r["value"]) == 0.0 for r in rows if r["metric"] == "exact_match")
    (v,) = res.verdicts
    assert v.task == "add2" and v.verdict == "not-yet" and v.primary_metric == "exact_match"
    saved = json.loads((out / "emergence" / "verdicts.json").read_text())
    assert saved["verdicts"][0]["verdict"] == "not-yet"
    # Forecasts of the held-out largest model were made and checked against its measured value.
    largest = max(float(r["N"]) for r in rows)
    assert res.forecasts and all(f.held_out_x == largest for f in res.forecasts if f.x_name == "N")
    # Figures (PNG + CSV), a ledger inside the demo folder, the report.
    names = {p.name for p in res.figures}
    assert {"mirage_add2.png", "loss_and_transitions.png", "metric_vs_loss.png", "ledger_grid.png"} <= names
    assert all(p.is_file() and p.with_suffix(".csv").is_file() for p in res.figures)
    assert res.ledger == out / "ledger.sqlite" and res.ledger.is_file()
    report = res.report_md.read_text()
    assert "## Ladder" in report and report.count("| `tiny-emergence-L1W") == len(widths)
    assert "| add2 |" in report and "not-yet" in report and "Forecasts of the largest model" in report
    assert json.loads((out / "emergence.json").read_text())["verdicts"] == {"add2": "not-yet"}

