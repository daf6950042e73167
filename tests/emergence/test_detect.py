import math

import numpy as np
import pytest

from lmscale.emergence.detect import (CurveResult, analyze_curve, analyze_table, breakthroughness_linearity,
                                      fit_logistic, verdict)
from lmscale.emergence.results import Curve, EvalRow, EvalTable
from lmscale.emergence.synthetic import DEFAULT_TASKS, SyntheticTask, mirage_rows
from lmscale.errors import LmscaleError


def test_breakthroughness_and_linearity_closed_forms():
    # Linear: every step equal, B = L = number of steps.
    assert breakthroughness_linearity(np.arange(6.0)) == pytest.approx((5.0, 5.0))
    # Steps (1,1,1,9): I = 12, median step^2 = 1, mean = 21 -> B = 12, L = 12/sqrt(21).
    b, lin = breakthroughness_linearity([0, 1, 2, 3, 12])
    assert b == pytest.approx(12.0) and lin == pytest.approx(12 / math.sqrt(21))
    # Decreasing curve: I < 0.
    assert breakthroughness_linearity([3, 2, 1, 0])[0] == pytest.approx(-3.0)
    # Flat then one jump: the median step is 0, B is unbounded; L = sqrt(number of steps).
    b, lin = breakthroughness_linearity([0, 0, 0, 0, 1])
    assert b == math.inf and lin == pytest.approx(2.0)
    # Affine invariance: normalising to chance = 0, perfect = 1 changes nothing.
    y = np.array([0.1, 0.12, 0.2, 0.6, 0.9])
    np.testing.assert_allclose(breakthroughness_linearity(y), breakthroughness_linearity(3 * y - 0.25))


def test_logistic_fit_recovers_parameters():
    lx = np.linspace(3, 9, 13)
    y = 0.1 + 0.8 / (1 + np.exp(-(lx - 6.2) / 0.4))
    p, rss = fit_logistic(lx, y, np.ones_like(lx))
    np.testing.assert_allclose(p[:3], [0.1, 0.9, 6.2], atol=1e-5)
    assert math.exp(p[3]) == pytest.approx(0.4, rel=1e-4) and rss < 1e-12


def _verdicts(rows, **kw):
    return {v.task: v for v in analyze_table(EvalTable(rows), n_boot=200, **kw)}


def test_mirage_exact_match_emergent_per_token_smooth():
    """Schaeffer's arithmetic: p = exp(-(N/c)^alpha) is smooth, p^L is sharp; verdict metric-only."""
    v = _verdicts(mirage_rows())
    m = v["mirage_add"]
    assert m.verdict == "emergent-under-this-metric-only"
    em, tp = m.curves["exact_match"], m.curves["token_prob"]
    assert em.sharp and not tp.sharp
    assert em.ratio > 2 and em.onset < 0.01 and not em.above_chance_start
    assert tp.onset > 0.5 and tp.above_chance_start
    # The per-token cross-entropy is an exact power law in N with the generating exponent.
    assert tp.power_law_r2 == pytest.approx(1.0, abs=1e-12)
    assert tp.power_law_alpha == pytest.approx(-0.6, abs=1e-9)
    # And so is -log(EM)^(1/L): the exact-match curve itself follows the same law (PassUntil: no curvature).
    assert em.power_law_alpha == pytest.approx(-0.6, abs=1e-9) and abs(em.curvature) < 1e-9
    assert v["jump_copy"].verdict == "emergent"
    assert v["jump_copy"].curves["token_prob"].power_law_r2 < 0.9
    assert v["smooth_short"].verdict == "smooth"
    assert v["hard_mul"].verdict == "not-yet"


def test_mirage_with_sampling_noise_has_interval_excluding_smooth():
    v = _verdicts(mirage_rows(n_examples=500, seed=0))
    em = v["mirage_add"].curves["exact_match"]
    assert v["mirage_add"].verdict == "emergent-under-this-metric-only"
    assert em.interval == "intervals" and em.ratio_ci[0] > 1.0
    assert em.breakthroughness_ci[0] < em.breakthroughness < em.breakthroughness_ci[1]
    assert em.first_above_chance is not None and 1e5 < em.first_above_chance < 1e7
    assert v["hard_mul"].verdict == "not-yet" and v["jump_copy"].verdict == "emergent"
    # Deterministic given the seed.
    again = _verdicts(mirage_rows(n_examples=500, seed=0))["mirage_add"].curves["exact_match"]
    assert again.ratio_ci == em.ratio_ci


def test_linear_curve_is_smooth_and_loss_threshold():
    N = np.geomspace(1e5, 1e8, 7)
    rows = [EvalRow(run_id=f"r{i}", N=n, val_loss=4.0 - 0.3 * i, task="lin", metric="exact_match",
                    value=0.1 + 0.1 * i, chance=0.1, n_examples=-1) for i, n in enumerate(N)]
    (v,) = analyze_table(EvalTable(rows), n_boot=0)
    c = v.curves["exact_match"]
    assert v.verdict == "smooth" and c.ratio == pytest.approx(1.0)
    assert c.first_above_chance == pytest.approx(N[1])  # the first point sits at chance
    # Du et al.: above chance once the loss is at or below 3.7 nats/token.
    assert c.loss_threshold == pytest.approx(3.7)


def test_training_step_axis_and_too_few_points():
    rows = [EvalRow(run_id="a", N=1e6, step=s, task="t", metric="exact_match", value=v, chance=0.0)
            for s, v in zip([100, 200, 300, 400, 500, 600], [0, 0, 0, 0.02, 0.9, 0.95])]
    (v,) = analyze_table(EvalTable(rows), x="step", n_boot=0)
    assert v.verdict == "emergent" and v.x_name == "step"
    with pytest.raises(LmscaleError, match="needs at least 4"):
        analyze_table(EvalTable(rows[:3]), x="step")


def test_verdict_json_round_trip():
    import json

    v = _verdicts(mirage_rows(N=np.geomspace(1e4, 1e10, 7), tasks=[DEFAULT_TASKS[0]]))["mirage_add"]
    d = json.loads(json.dumps(v.to_dict()))
    assert d["verdict"] == v.verdict and set(d["curves"]) == set(v.curves)
    assert set(v.summary_row()) >= {"B", "L", "B_over_L", "delta_aic", "onset", "verdict"}
    with pytest.raises(LmscaleError):
        verdict({})


def test_emergent_when_continuous_metric_jumps_too():
    t = SyntheticTask("j", L=3, c=1e6, kind="logistic", width=0.1)
    v = _verdicts(mirage_rows(N=np.geomspace(1e4, 1e8, 9), tasks=[t]))["j"]
    assert v.verdict == "emergent" and v.curves["token_prob"].sharp
    lg = v.curves["token_prob"].logistic  # p itself is exactly 0.02 + 0.97 sigmoid((log10 N - 6) / 0.1)
    assert lg["midpoint"] == pytest.approx(1e6, rel=1e-4) and lg["width_10_90"] == pytest.approx(0.2 * math.log(9), rel=1e-4)


def test_analyze_curve_rejects_short_curves():
    c = Curve(x=np.array([1.0, 2.0, 3.0]), y=np.zeros(3), low=np.full(3, np.nan), high=np.full(3, np.nan),
              n=np.full(3, -1), chance=0.0, task="t", metric="exact_match")
    with pytest.raises(LmscaleError, match="has 3 scale"):
        analyze_curve(c)


def test_tasks_with_too_few_scales_are_skipped_with_a_note():
    rows = mirage_rows(N=np.geomspace(1e4, 1e10, 6), tasks=[DEFAULT_TASKS[0]])
    rows.append(EvalRow(run_id="x", N=1e6, task="lonely", metric="exact_match", value=0.5))
    notes: list[str] = []
    (v,) = analyze_table(EvalTable(rows), n_boot=0, skipped=notes)
    assert v.task == "mirage_add" and notes == ["task 'lonely' (k_shot=0) has 1 scale(s) along N; emergence "
                                                "detection needs at least 4"]


# ----------------------------------------------------------------------------------------------
# The sharpness rule at its edges: B/L >= 1.5 (README), the bootstrap lower bound of B/L above 1,
# a flat start (onset <= 0.1 or at chance at the smallest scale), above chance at the largest scale.
# Each threshold is probed just below and just above it, so moving it (or dropping a rule) flips one.

Z = 1.959963984540054


def _curve(steps, y0=0.0, chance=0.0, sd=None, metric="exact_match"):
    """A curve along N (one decade per point) with the given step sizes (scaled by 0.05)."""
    y = y0 + 0.05 * np.concatenate([[0.0], np.cumsum(steps)])
    n = len(y)
    low, high = (np.full(n, np.nan), np.full(n, np.nan)) if sd is None else (y - Z * sd, y + Z * sd)
    return Curve(x=np.geomspace(1e5, 1e9, n), y=y, low=low, high=high, n=np.full(n, -1), chance=chance, task="t",
                 metric=metric)


def _ratio_steps(r):
    """Steps (1, 1, 1, q) with B/L = sqrt(mean/median of the squared steps) = sqrt((3 + q^2)/4) = r."""
    return [1.0, 1.0, 1.0, math.sqrt(4 * r * r - 3)]


@pytest.mark.parametrize("r, sharp", [(1.0, False), (1.19, False), (1.21, False), (1.49, False), (1.51, True),
                                      (1.99, True), (2.01, True)])
def test_ratio_threshold_is_1_5_by_default(r, sharp):
    """Noise-free curves that start at chance (so the start is flat) and end above it: only B/L decides."""
    res = analyze_curve(_curve(_ratio_steps(r)), n_boot=0)
    assert res.ratio == pytest.approx(r, rel=1e-9) and res.interval == "none"
    assert not res.above_chance_start and res.above_chance_end
    assert res.sharp is sharp, res.reason
    # The same through analyze_table (its own default) and the verdict.
    c = _curve(_ratio_steps(r))
    rows = [EvalRow(run_id=f"r{i}", N=float(x), task="t", metric="exact_match", value=float(y), chance=0.0)
            for i, (x, y) in enumerate(zip(c.x, c.y))]
    (v,) = analyze_table(EvalTable(rows), n_boot=0)
    assert v.curves["exact_match"].sharp is sharp
    assert v.verdict == ("emergent" if sharp else "smooth")


def test_ratio_threshold_can_be_chosen():
    for r_min, below, above in ((1.2, 1.19, 1.21), (2.0, 1.99, 2.01)):
        assert not analyze_curve(_curve(_ratio_steps(below)), n_boot=0, ratio_min=r_min).sharp
        assert analyze_curve(_curve(_ratio_steps(above)), n_boot=0, ratio_min=r_min).sharp


@pytest.mark.parametrize("sd, sharp", [(0.01, True), (0.03, False)])
def test_bootstrap_lower_bound_of_ratio_must_exceed_1(sd, sharp):
    """B/L = 1.6 >= 1.5 in both cases; with sd 0.01 per point the 95% interval of B/L is (1.11, 1.82),
    with sd 0.03 it is (0.93, 2.25): the second cannot exclude a linear curve (B/L = 1), so it is not sharp."""
    res = analyze_curve(_curve(_ratio_steps(1.6), sd=sd), n_boot=1000, seed=0)
    assert res.ratio == pytest.approx(1.6) and res.interval == "intervals"
    assert (res.ratio_ci[0] > 1) is sharp, res.ratio_ci
    assert abs(res.ratio_ci[0] - 1) > 0.05  # far enough from the edge that the seed's draws cannot flip it
    assert res.sharp is sharp, res.reason
    assert analyze_curve(_curve(_ratio_steps(1.6), sd=sd), n_boot=1000, seed=0).ratio_ci == res.ratio_ci


@pytest.mark.parametrize("first, sharp", [(1.2, True), (1.5, False)])
def test_onset_threshold_0_1_when_the_curve_starts_above_chance(first, sharp):
    """Steps (first, 1, 1, 10) from 0.05 (above chance 0): onset = first / (first + 12), 0.091 or 0.111."""
    res = analyze_curve(_curve([first, 1.0, 1.0, 10.0], y0=0.05), n_boot=0)
    assert res.above_chance_start and res.ratio > 3
    assert res.onset == pytest.approx(first / (first + 12))
    assert res.sharp is sharp, res.reason


def test_a_curve_that_never_leaves_chance_is_not_sharp():
    res = analyze_curve(_curve(_ratio_steps(3.0), chance=0.5), n_boot=0)  # from 0 to 0.44, below chance 0.5
    assert res.ratio == pytest.approx(3.0) and not res.above_chance_end and not res.sharp


def test_above_chance_without_intervals_needs_1pct_of_the_chance_to_perfect_range():
    """Chance 0.25, perfect 1: a point counts as above chance from 0.25 + 0.01 * 0.75 = 0.2575 on;
    with an interval (or n_examples: Wilson) its lower bound must clear chance instead."""
    from lmscale.emergence.detect import above_chance

    y = np.array([0.257, 0.258, 0.5, 0.9])
    c = Curve(x=np.geomspace(1e5, 1e8, 4), y=y, low=np.full(4, np.nan), high=np.full(4, np.nan), n=np.full(4, -1),
              chance=0.25, task="t", metric="exact_match")
    assert above_chance(c).tolist() == [False, True, True, True]
    with_ci = Curve(x=c.x, y=y, low=y - np.array([0.01, 0.007, 0.3, 0.1]), high=y + 0.01, n=c.n, chance=0.25,
                    task="t", metric="exact_match")
    assert above_chance(with_ci).tolist() == [False, True, False, True]


def _result(metric, sharp, r2=math.nan, above_end=True):
    return CurveResult(task="t", metric=metric, x_name="N", n_points=5, x=[], y=[], chance=0.0, sharp=sharp,
                       power_law_r2=r2, above_chance_end=above_end, reason="r")


@pytest.mark.parametrize("cont, expected", [
    ({}, "emergent"),  # no continuous metric measured
    ({"token_prob": (False, math.nan)}, "emergent-under-this-metric-only"),
    ({"token_prob": (True, 0.979)}, "emergent"),  # sharp and not a clean power law (R^2 < 0.98)
    ({"token_prob": (True, 0.981)}, "emergent-under-this-metric-only"),  # sharp but a clean power law in -log p
    ({"token_prob": (False, math.nan), "token_accuracy": (True, 0.5)}, "emergent"),
])
def test_verdict_combines_the_primary_and_continuous_metrics(cont, expected):
    res = {"exact_match": _result("exact_match", True)}
    res.update({m: _result(m, s, r2) for m, (s, r2) in cont.items()})
    assert verdict(res).verdict == expected


def test_verdict_not_yet_and_smooth():
    assert verdict({"exact_match": _result("exact_match", True, above_end=False)}).verdict == "not-yet"
    assert verdict({"exact_match": _result("exact_match", False),
                    "token_prob": _result("token_prob", True, 0.5)}).verdict == "smooth"
