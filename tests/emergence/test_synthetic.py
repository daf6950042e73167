import math

import numpy as np
import pytest

from lmscale.emergence.results import EvalTable
from lmscale.emergence.synthetic import (DEFAULT_TASKS, exact_match, ladder, loss_of, mirage_rows, token_accuracy,
                                         wilson_interval)


def test_mirage_arithmetic_is_exact():
    N = np.geomspace(1e4, 1e10, 7)
    p = token_accuracy(N, c=2e4, alpha=-0.6)
    np.testing.assert_allclose(-np.log(p), (N / 2e4) ** -0.6, rtol=1e-12)
    np.testing.assert_allclose(exact_match(N, 2e4, -0.6, 30), np.exp(-30 * (N / 2e4) ** -0.6), rtol=1e-12)


def test_wilson_interval_closed_form():
    lo, hi = wilson_interval(5, 10)
    assert (float(lo), float(hi)) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    lo, hi = wilson_interval(0, 100)
    assert float(lo) == 0.0 and float(hi) == pytest.approx(0.036994, abs=1e-6)
    lo, hi = wilson_interval(100, 100)
    assert float(hi) == 1.0


def test_rows_are_consistent_without_noise():
    t = EvalTable(mirage_rows())
    assert len(t) == len(ladder()) * len(DEFAULT_TASKS) * 5
    for task in DEFAULT_TASKS:
        em = t.curve(task.name, "exact_match")
        tp = t.curve(task.name, "token_prob")
        lp = t.curve(task.name, "logprob")
        np.testing.assert_allclose(em.y, tp.y ** task.L, rtol=1e-12)
        np.testing.assert_allclose(lp.y, task.L * np.log(tp.y), rtol=1e-12)
        np.testing.assert_allclose(t.curve(task.name, "edit_distance").y, 1 - tp.y, rtol=1e-12)
        assert em.chance == pytest.approx(64.0 ** -task.L)
    c = EvalTable(mirage_rows()).curve("mirage_add", "exact_match", x="val_loss")
    np.testing.assert_allclose(np.sort(c.x), np.sort(loss_of(ladder())))


def test_noisy_rows_are_binomial_and_deterministic():
    a, b = mirage_rows(n_examples=50, seed=3), mirage_rows(n_examples=50, seed=3)
    assert [r.value for r in a] == [r.value for r in b]
    em = [r for r in a if r.metric == "exact_match"]
    assert all(abs(r.value * 50 - round(r.value * 50)) < 1e-9 for r in em)
    assert all(r.ci_low <= r.value <= r.ci_high for r in em)
    assert any(r.value != math.exp(0) and r.value != float(exact_match(r.N, 1.87e4, -0.6, 30)) for r in em)
