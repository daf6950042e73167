"""Approach 2 (IsoFLOP parabolas) on synthetic profiles with a known optimum."""

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.laws import IsoFLOPAllocation, ScalingData

from .synth import isoflop_set


def test_symmetric_profiles_give_exact_exponent():
    # alpha = beta: iso-compute loss is symmetric in ln N about the optimum, so the vertex is exact.
    data, p = isoflop_set()
    est = IsoFLOPAllocation().fit(data)
    assert est.a_ == pytest.approx(0.5, abs=1e-9) and est.b_ == pytest.approx(0.5, abs=1e-9)
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    for b in est.budgets_:
        assert b.N_opt == pytest.approx(G * (b.C / 6) ** 0.5, rel=1e-9)
        assert b.D_opt * b.N_opt * 6 == pytest.approx(b.C)
    assert est.warnings_ == [] and est.n_budgets_used_ == 4
    at = est.predict(1e23)
    assert at["N_opt"] == pytest.approx(G * (1e23 / 6) ** 0.5, rel=1e-6)


def test_noise_and_nearly_equal_budgets():
    data, _ = isoflop_set(noise=2e-3, jitter=0.02, seed=3, n=9)
    est = IsoFLOPAllocation(budget_rtol=0.1).fit(data)
    assert len(est.budgets_) == 4  # C values within 2% are merged into their budget
    assert est.a_ == pytest.approx(0.5, abs=0.05)
    boot = est.bootstrap(200, seed=0, target_compute=1e22)
    lo, hi = boot.interval("a")
    assert lo < 0.5 < hi and boot.n_converged > 150
    assert "a = 0.5" in est.summary() or "a = 0.49" in est.summary() or "a = 0.50" in est.summary()


def test_unequal_exponents_are_recovered_approximately():
    data, p = isoflop_set(alpha=0.34, beta=0.28, A=406.4, B=410.7, E=1.69, span=1.0, n=9)
    est = IsoFLOPAllocation().fit(data)
    assert est.a_ == pytest.approx(p["beta"] / (p["alpha"] + p["beta"]), abs=0.01)


def test_warning_when_vertex_outside_sampled_range():
    data, _ = isoflop_set(offset=2.5, span=1.0)  # all sizes sampled well above the optimum
    est = IsoFLOPAllocation().fit(data)
    assert len(est.warnings_) == 4
    assert all("outside the sampled range" in w for w in est.warnings_)
    skipped = IsoFLOPAllocation(drop_outside=True)
    with pytest.raises(LmscaleError, match="usable IsoFLOP budget"):
        skipped.fit(data)


def test_warning_when_parabola_opens_downward():
    data, _ = isoflop_set(budgets=(1e18, 1e19, 1e20))
    L = data.loss.copy()
    m = np.isclose(data.C, 1e20, rtol=0.01)
    L[m] = 5.0 - (np.log(data.N[m]) - np.log(data.N[m]).mean()) ** 2 * 0.01  # a maximum, not a minimum
    bad = ScalingData.from_arrays(N=data.N, D=data.D, C=data.C, loss=L)
    est = IsoFLOPAllocation().fit(bad)
    assert est.n_budgets_used_ == 2
    assert any("opens downward" in w for w in est.warnings_)
    assert any("only 2 budgets" in w for w in est.warnings_)
    assert "warning:" in est.summary()
