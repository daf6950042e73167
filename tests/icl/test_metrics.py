"""Error curves, bootstrap intervals, SPD/MSPD/ILWD and best match (lmscale.icl.metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.icl.learners import make_learner
from lmscale.icl.metrics import (
    best_match,
    bootstrap_mean,
    delta,
    ilwd,
    ilwd_curve,
    implied_weights,
    mspd,
    normalized_error,
    spd,
    squared_error,
)


def linear_prompts(b, k, d, seed=0):
    rng = np.random.default_rng(seed)
    xs = rng.standard_normal((b, k, d))
    w = rng.standard_normal((b, d))
    return xs, np.einsum("bkd,bd->bk", xs, w)


def test_zero_predictor_normalised_error_is_one():
    xs, ys = linear_prompts(4000, 6, 5)
    res = normalized_error(np.zeros_like(ys), ys, 5.0, n_boot=500, seed=1)
    np.testing.assert_allclose(res.mean, 1.0, atol=0.06)
    assert np.all(res.low < res.mean) and np.all(res.mean < res.high)
    np.testing.assert_array_equal(squared_error(np.zeros_like(ys), ys), ys**2)


def test_bootstrap_interval_matches_normal_theory_and_is_deterministic():
    rng = np.random.default_rng(3)
    v = rng.standard_normal((2000, 3)) * np.array([1.0, 2.0, 4.0])
    res = bootstrap_mean(v, n_boot=2000, ci=0.9, seed=7)
    width = res.high - res.low
    np.testing.assert_allclose(width, 2 * 1.645 * np.array([1, 2, 4]) / np.sqrt(2000), rtol=0.1)
    again = bootstrap_mean(v, n_boot=2000, ci=0.9, seed=7)
    np.testing.assert_array_equal(res.low, again.low)
    flat = bootstrap_mean(v, n_boot=0)
    np.testing.assert_array_equal(flat.low, flat.mean)


def test_spd_mspd_delta():
    a = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0]])
    b = a + np.array([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 2.0, 1.0]])
    np.testing.assert_allclose(spd(a, b, d=2), [0, 1, 1, 0.5])
    np.testing.assert_allclose(spd(b, a, d=2), spd(a, b, d=2))
    assert mspd(a, b, d=3) == pytest.approx(2 / 3)  # positions 1, 2: mean of 2, 2, divided by d = 3
    assert delta(a, b, d=2) == pytest.approx(0.625)
    assert np.all(spd(a, a) == 0)


def test_ilwd_exact_and_fitted_weights():
    xs, ys = linear_prompts(50, 6, 4)
    probe = np.random.default_rng(1).standard_normal((50, 12, 4))
    ls = make_learner("least_squares")

    class Wrapped:  # only `predict`: its implied weights are fitted on the probe inputs
        def predict(self, cx, cy, q):
            return ls.predict(cx, cy, q)

    w_fit, r2 = implied_weights(Wrapped(), xs, ys, probe)
    np.testing.assert_allclose(w_fit, ls.weights(xs, ys), atol=1e-9)
    np.testing.assert_allclose(r2, 1.0)
    assert ilwd(Wrapped(), ls, xs, ys, probe) < 1e-15
    assert ilwd(ls, make_learner("ridge", lam=1e-8), xs[:, :2], ys[:, :2], probe) < 1e-12
    _, r2_knn = implied_weights(make_learner("knn"), xs, ys, probe)
    assert np.all(r2_knn < 1)
    # ILWD(OLS, averaging) against the closed form E|w_ols - w_avg|^2 / d.
    avg = make_learner("averaging")
    want = ((ls.weights(xs, ys) - avg.weights(xs, ys)) ** 2).sum(1).mean() / 4
    assert ilwd(ls, avg, xs, ys, probe[0]) == pytest.approx(want)
    curve = ilwd_curve(ls, avg, xs, ys, probe)
    assert curve.shape == (6,) and curve[-1] == pytest.approx(want)


def test_best_match_ranks_the_generating_learner_first():
    xs, ys = linear_prompts(500, 11, 5)
    preds = {name: make_learner(name).predict_prefixes(xs, ys) for name in ("least_squares", "knn", "averaging")}
    model = preds["least_squares"] + 0.01 * np.random.default_rng(2).standard_normal(ys.shape)
    for dist in ("mspd", "spd"):
        ranking = best_match(model, preds, d=5, distance=dist)
        assert [n for n, _ in ranking][0] == "least_squares" and ranking[0][1] < 1e-3 < ranking[1][1]
    # Garg/Akyürek check: SPD to least squares below SPD to 3-NN.
    assert spd(model, preds["least_squares"], 5).mean() < spd(model, preds["knn"], 5).mean()


def test_metric_errors():
    a = np.zeros((3, 4))
    with pytest.raises(LmscaleError, match="expected two arrays of shape"):
        spd(a, np.zeros((3, 5)))
    with pytest.raises(LmscaleError, match="normalizer=0"):
        normalized_error(a, a, 0)
    with pytest.raises(LmscaleError, match="d >= 2"):
        mspd(a, a, d=1)
    with pytest.raises(LmscaleError, match="ci=1.5"):
        bootstrap_mean(a, ci=1.5)
    with pytest.raises(LmscaleError, match="distance='l1'"):
        best_match(a, {"x": a}, d=2, distance="l1")
    with pytest.raises(LmscaleError, match="probe_xs"):
        implied_weights(make_learner("knn"), np.zeros((3, 2, 4)), np.zeros((3, 2)), np.zeros((3, 5, 2)))
