from decimal import Decimal, localcontext

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.theory.ensemble import NVParams
from lmscale.theory.loss import (
    chinchilla_excess_loss,
    excess_entropy_bound,
    loglog_slope,
    loss_bound,
    train_error_probability,
)
from lmscale.theory.optimum import compute_optimal


def _exact(R: int, delta: str, d_t: int = 6) -> float:
    with localcontext() as ctx:
        ctx.prec = 50
        q = Decimal(d_t) / Decimal(R) * Decimal(delta)
        return float(1 - (1 - q) ** R - R * q * (1 - q) ** (R - 1))


@pytest.mark.parametrize("R, delta", [(50, "0.5"), (1000, "0.1"), (100000, "0.001"), (100000000, "1e-9")])
def test_train_error_matches_50_digit_reference(R, delta):
    assert train_error_probability(R, float(delta)) == pytest.approx(_exact(R, delta), rel=1e-12)


def test_small_delta_limit_and_naive_cancellation():
    R, delta = 1e8, 1e-9
    p = train_error_probability(R, delta)
    assert p == pytest.approx((6 * delta) ** 2 / 2, rel=1e-7)  # (d_t delta)^2/2, relative error O(delta)
    q = 6 / R * delta
    naive = 1 - (1 - q) ** R - R * q * (1 - q) ** (R - 1)
    assert abs(naive / p - 1) > 1e3  # the textbook form is pure rounding noise here
    assert train_error_probability(1e4, 0.0) == 0.0


def test_bound_and_chinchilla_excess():
    assert excess_entropy_bound(0.2) == pytest.approx(0.02)
    assert chinchilla_excess_loss(1.0, 1.0) == pytest.approx(406.4 + 410.7)
    # Chinchilla-70B on 1.4T tokens: 406.4/70e9^0.34 + 410.7/1.4e12^0.28 = 0.0832 + 0.1636.
    assert chinchilla_excess_loss(70e9, 1.4e12) == pytest.approx(0.2468, abs=5e-4)


def test_bound_falls_with_slope_about_minus_two_along_the_optimum():
    # The released code's grid and slices: logspace(2, 20, 200)[30:170:2], slope over entries 20:50.
    C = np.logspace(2, 20, 200)[30:170:2]
    lb = loss_bound(compute_optimal(C, NVParams(alpha_variant="released-code")))
    assert np.all(np.diff(lb.bound) < 0)
    # Fig. A(b): ~1e-1 at N* ~ 2e7 parameters ...
    assert 0.05 < lb.bound[0] < 0.25 and lb.N_star[0] == pytest.approx(2e7, rel=0.3)
    assert lb.bound[-1] < 1e-14 and lb.N_star[-1] > 3e13  # ... down to ~1e-15 at 4e13
    slope = lb.slope(slice(20, 50))
    assert -2.5 < slope < -1.8
    assert -0.4 < lb.chinchilla_slope(slice(20, 50)) < -0.25  # far shallower: the reviewers' gap


def test_errors():
    with pytest.raises(LmscaleError, match="delta"):
        train_error_probability(1e4, 1.5)
    with pytest.raises(LmscaleError, match="R="):
        train_error_probability(1.0, 0.1)
    with pytest.raises(LmscaleError, match="slope"):
        loglog_slope([1.0], [2.0])
