"""The batched L-BFGS: many independent problems in lock-step, scipy-like stopping rules."""

import numpy as np
import pytest
from scipy.optimize import minimize

from lmscale.laws.lbfgs import CONVERGED_FTOL, CONVERGED_GTOL, NON_FINITE_START, minimize_batched


def rosen(X, rows=None):
    x, y = X[:, 0], X[:, 1]
    f = (1 - x) ** 2 + 100 * (y - x * x) ** 2
    g = np.stack([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)], axis=1)
    return f, g


def test_rosenbrock_from_many_starts():
    starts = np.random.default_rng(0).uniform(-2, 2, (200, 2))
    res = minimize_batched(rosen, starts, gtol=1e-8, ftol=1e-15)
    assert res.converged.all()
    np.testing.assert_allclose(res.x, 1.0, atol=1e-5)
    ref = minimize(lambda z: tuple(v[0] for v in rosen(z[None])), starts[0], jac=True, method="L-BFGS-B")
    assert res.n_iter[0] < 3 * ref.nit + 20  # comparable work to scipy's L-BFGS-B


def test_per_row_problems_and_status():
    # Row i minimises sum((x - c_i)^2 * w_i): each start carries its own data through `rows`.
    C = np.array([[1.0, -2.0, 3.0], [0.5, 0.5, 0.5], [-4.0, 0.0, 2.0]])
    W = np.array([[1.0, 10.0, 100.0], [1.0, 1.0, 1.0], [3.0, 2.0, 1.0]])

    def fg(X, rows):
        r = X - C[rows]
        return (W[rows] * r * r).sum(1), 2 * W[rows] * r

    res = minimize_batched(fg, np.zeros((6, 3)), np.array([0, 1, 2, 0, 1, 2]), gtol=1e-10)
    np.testing.assert_allclose(res.x, C[[0, 1, 2, 0, 1, 2]], atol=1e-8)
    assert set(res.status) <= {CONVERGED_GTOL, CONVERGED_FTOL}


def test_non_finite_start_is_reported_not_fatal():
    def fg(X, rows):
        f = (X ** 2).sum(1)
        f[rows == 0] = np.nan  # problem 0 is broken everywhere
        return f, 2 * X

    res = minimize_batched(fg, np.ones((3, 2)))
    assert res.status[0] == NON_FINITE_START
    assert res.converged[1:].all()


def test_scale_dependent_stopping_is_the_trap():
    # The same problem divided by 1e6: the absolute gradient test passes immediately (the trap).
    def fg_scaled(X, rows=None):
        f, g = rosen(X)
        return f / 1e6, g / 1e6

    x0 = np.array([[-1.2, 1.0]])
    full = minimize_batched(rosen, x0)
    scaled = minimize_batched(fg_scaled, x0)
    assert np.abs(full.x - 1).max() < 1e-2
    assert np.abs(scaled.x - 1).max() > 1e-2 and scaled.n_iter[0] < full.n_iter[0]


@pytest.mark.parametrize("memory", [3, 10])
def test_memory_sizes(memory):
    res = minimize_batched(rosen, np.array([[-1.2, 1.0], [2.0, 2.0]]), memory=memory, gtol=1e-9, ftol=1e-15)
    np.testing.assert_allclose(res.x, 1.0, atol=1e-5)
