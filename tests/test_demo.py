"""`lmscale demo` end to end on a tiny IsoFLOP sweep (the real demo takes ~10 minutes; its figures
are measured in the README, not asserted here)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmscale.demo import BEYOND, demo_spec, run_demo, sampled_budgets
from lmscale.sweep.spec import expand, parse_spec


def test_packaged_demo_spec_is_an_isoflop_design_and_quick_keeps_the_three_smallest_budgets():
    full, quick = demo_spec(), demo_spec(quick=True)
    s_full, base = parse_spec(full)
    s_quick, _ = parse_spec(quick)
    runs = expand(s_full, base, vocab_size=81)  # the embedded corpus has 81 distinct characters
    by_budget: dict[float, list] = {}
    for r in runs:
        by_budget.setdefault(r.budget, []).append(r)
    # Issue 12: at least 3 budgets, each with at least 5 model sizes; every model one WSD trunk.
    assert len(by_budget) == 5 and all(len({r.n_params for r in rs}) >= 5 for rs in by_budget.values())
    assert len(runs) == 26 and len({r.trunk for r in runs}) == 8
    assert all(r.fork_step is None or r.fork_step > 0 for r in runs)
    q = expand(s_quick, base, vocab_size=81)
    assert sorted({r.budget for r in q}) == sorted(by_budget)[:3] and len(q) == 16
    assert all(len({r.n_params for r in q if r.budget == b}) >= 5 for b in {r.budget for r in q})
    # One decade from the smallest budget to the largest: one trunk per model pays for all of them.
    assert max(by_budget) / min(by_budget) == pytest.approx(10.0)


@pytest.fixture
def isoflop_spec(text_corpus):
    from tests.helpers import tiny_config

    base = tiny_config(text_corpus, **{"train.schedule": {"kind": "wsd", "warmup": 2, "min_lr": 3e-4, "decay_fraction": 0.25},
                                       "train.checkpoint_every": 100, "train.eval_every": 50, "train.batch_size": 4,
                                       "model.context": 16})
    return {
        "name": "tiny-isoflop-demo",
        "base": base,
        "ladder": {"shapes": [{"depth": 1, "width": w, "heads": 2} for w in (8, 12, 16, 24)]},
        "tokens": {"isoflop": {"budgets": [1e8, 2e8, 4e8], "flops": "exact", "min_points": 4}},
        "branches": "wsd",
    }


def test_demo_runs_three_approaches_and_reports_them_side_by_side(isoflop_spec, tmp_path):
    res = run_demo(tmp_path / "demo", n_bootstrap=20, spec=isoflop_spec)
    h = res.headline
    assert h["runs_done"] == 12 and h["points"] == 12
    budgets = sampled_budgets(res.law.data_)
    assert len(budgets) == 3
    # Derived quantities at the sampled budgets and one decade beyond the largest, never further.
    assert h["report_compute_flops"][:3] == pytest.approx(budgets.tolist())
    assert h["report_compute_flops"][3] == pytest.approx(BEYOND * budgets[-1]) and len(h["report_compute_flops"]) == 4
    for k in (1, 2, 3):
        row = h["approaches"][k]
        if "error" in row:  # a tiny sweep may defeat Approaches 1-2; the reason is then reported
            assert k != 3 and row["error"]
            continue
        assert len(row["tokens_per_param"]) == 4 and len(row["tokens_per_param_interval"][0]) == 4
    # Approach 3's frontier: tokens/param = D_opt / N_opt = C / (6 N_opt^2) on C = 6ND.
    C = np.array(h["report_compute_flops"])
    a3 = h["approaches"][3]
    assert np.allclose(a3["tokens_per_param"], C / (6 * np.array(a3["N_opt"]) ** 2), rtol=1e-9)
    assert a3["a"] == pytest.approx(res.law.a_) and a3["a_interval"][0] <= res.law.a_ <= a3["a_interval"][1]
    # Agreement is read off the interval of the difference: it agrees exactly when 0 lies inside.
    for g in h["agreement"].values():
        assert g["agree"] == (g["interval_95"][0] <= 0 <= g["interval_95"][1])
    # Every check says what it measured, and "met" is the comparison it names.
    ch = h["checks"]
    if "extrapolation_are" in ch:
        assert ch["extrapolation_are"]["met"] == (h["extrapolation_are"] < 0.03)
    if "approach2_a_interval_width" in ch:
        lo, hi = h["approaches"][2]["a_interval"]
        assert ch["approach2_a_interval_width"]["value"] == pytest.approx(hi - lo)
    if "vertices" in h["approaches"][2]:
        verts = h["approaches"][2]["vertices"]
        assert ch["every_vertex_bracketed"]["met"] == all(v["used"] and not v["edge"] for v in verts)
        assert all(not v["used"] for v in verts if v["edge"])  # an edge minimum never enters the exponent fit
    fit = json.loads(res.fit_json.read_text())
    assert fit["fit"]["law"] and fit["demo"]["params"]["E"] == res.law.E_
    report = res.report_md.read_text()
    for section in ("## Where the compute-optimal model lies, by three methods", "## The irreducible loss",
                    "## Which functional form the data support", "## Checks",
                    "## The information-theoretic prediction beside the fitted law"):
        assert section in report
    assert ("E is NOT identified" in report) == (h["E"]["identified"] is False)
    # Run again: the sweep is finished, nothing is retrained, the same numbers come out.
    again = run_demo(tmp_path / "demo", n_bootstrap=20, spec=isoflop_spec)
    assert again.headline["params"] == h["params"] and again.headline["approaches"] == h["approaches"]
