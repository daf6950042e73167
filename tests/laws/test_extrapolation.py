"""Extrapolation check: held-out largest models, ARE = |L-hat - L| / L."""

import numpy as np
import pytest

from lmscale.laws import ChinchillaLaw, ScalingData
from lmscale.laws.extrapolation import are, extrapolation_check, group_budgets, holdout_mask

from .synth import chinchilla_grid


def test_are_definition():
    np.testing.assert_allclose(are([2.2, 1.8], [2.0, 2.0]), [0.1, 0.1])


def test_holdout_largest_takes_every_row_at_max_N():
    d = chinchilla_grid(n_sizes=5, n_tokens=4)
    test, desc = holdout_mask(d, "largest")
    assert test.sum() == 4 and (d.N[test] == d.N.max()).all() and "4 point(s)" in desc


def test_extrapolation_are_matches_manual_refit():
    d = chinchilla_grid(noise=2e-3, seed=4)
    law = ChinchillaLaw(holdout="largest").fit(d)
    ex = law.extrapolation_
    test = d.N == d.N.max()
    manual = ChinchillaLaw(holdout="none").fit(d.subset(~test))
    pred = manual.predict(d.N[test], d.D[test])
    expect = np.abs(pred - d.loss[test]) / d.loss[test]
    assert ex.mean_are == pytest.approx(expect.mean(), rel=1e-6)
    np.testing.assert_allclose([r["are"] for r in ex.rows], expect, rtol=1e-6)
    np.testing.assert_allclose([r["predicted"] for r in ex.rows], pred, rtol=1e-9)
    assert ex.n_train == (~test).sum() and ex.max_are >= ex.mean_are
    assert "mean ARE" in ex.summary()


def test_largest_compute_holdout_groups_nearly_equal_budgets():
    C = np.array([1e18, 1.02e18, 0.99e18, 1e19, 1.05e19, 1e20, 0.97e20, 1.01e20])
    ids = group_budgets(C, rtol=0.1)
    assert len(np.unique(ids)) == 3 and ids[5] == ids[6] == ids[7]
    N = np.array([1e6, 2e6, 4e6, 1e6, 2e6, 1e6, 2e6, 4e6])
    d = ScalingData.from_arrays(N=N, C=C, loss=np.linspace(4, 3, 8))
    test, _ = holdout_mask(d, "largest-compute")
    assert test.sum() == 3


def test_too_few_points_left_gives_a_note_not_a_fit():
    d = chinchilla_grid(n_sizes=2, n_tokens=4)  # 8 points; holding out 4 leaves 4 < 6
    res, note = extrapolation_check(ChinchillaLaw(holdout="none"), d, "largest")
    assert res is None and "leaves 4 points, the law needs 6" in note
    law = ChinchillaLaw().fit(d)
    assert law.extrapolation_ is None and "no extrapolation check" in law.summary()
