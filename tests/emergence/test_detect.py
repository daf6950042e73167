import math

import numpy as np
import pytest

from lmscale.emergence.detect import (analyze_curve, analyze_table, breakthroughness_linearity, fit_logistic,
                                      verdict)
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
