"""`lmscale demo` end to end on a tiny ladder (the real demo takes ~10 minutes)."""

from __future__ import annotations

import json

from lmscale.demo import demo_spec, run_demo
from lmscale.sweep.spec import expand, parse_spec


def test_packaged_demo_spec_is_valid_and_quick_is_a_subset():
    full, quick = demo_spec(), demo_spec(quick=True)
    s_full, base = parse_spec(full)
    s_quick, _ = parse_spec(quick)
    runs = expand(s_full, base, vocab_size=81)
    assert len(runs) == 24 and len({r.n_params for r in runs}) == 6
    assert len(expand(s_quick, base, vocab_size=81)) == 12
    assert all(r.fork_step is None or r.fork_step > 0 for r in runs)


def test_demo_runs_fits_and_reports(text_corpus, tmp_path, sweep_spec_factory):
    spec = sweep_spec_factory(text_corpus)
    res = run_demo(tmp_path / "demo", n_bootstrap=50, spec=spec)
    h = res.headline
    assert h["runs_done"] == 9 and h["points"] == 9
    # README: the extrapolation to the held-out largest model has mean ARE < 5% (the real demo: 1.99%).
    assert 0 < h["extrapolation_are"] < 0.05, h["extrapolation_are"]
    assert h["intervals_95"]["alpha"][0] <= res.law.alpha_ <= h["intervals_95"]["alpha"][1]
    fit = json.loads(res.fit_json.read_text())
    assert fit["fit"]["law"] and fit["demo"]["params"]["E"] == res.law.E_
    report = res.report_md.read_text()
    assert "Extrapolation" in report
    # The theory's compute-optimal prediction sits beside the fitted law, with its fitted constants.
    assert "## The information-theoretic prediction beside the fitted law" in report
    overlay = json.loads((tmp_path / "demo" / "theory" / "theory_overlay.json").read_text())
    assert overlay["fitted"]["params_per_concept"] > 0 and overlay["fitted"]["tokens_per_text"] > 0
    # Run again: the sweep is finished, nothing is retrained, the same numbers come out.
    again = run_demo(tmp_path / "demo", n_bootstrap=50, spec=spec)
    assert again.headline["params"] == h["params"]
