"""Approach 1 (envelope of training curves) on curves generated from a known law."""

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.laws import EnvelopeAllocation, ScalingData
from lmscale.laws.bootstrap import bootstrap
from lmscale.laws.envelope import gaussian_smooth

from .synth import training_curves


def test_envelope_recovers_half_half():
    data, p = training_curves(alpha=0.3, beta=0.3)
    est = EnvelopeAllocation().fit(data)
    assert est.a_ == pytest.approx(0.5, abs=0.03)
    assert est.b_ == pytest.approx(0.5, abs=0.03)
    assert len(np.unique(est.envelope_["N"])) >= 10
    # D at each envelope point is the winning run's tokens at that compute: C = 6ND.
    np.testing.assert_allclose(6 * est.envelope_["N"] * est.envelope_["D"], est.envelope_["C"], rtol=1e-6)
    boot = bootstrap(est, 50, seed=0)
    assert boot.n_converged >= 45
    lo, hi = boot.interval("a")
    # Measured: a = 0.4989, 95% interval (0.480, 0.502): it holds the estimate and the truth, and is narrow.
    assert lo < est.a_ < hi and lo < 0.5 < hi and 0.005 < hi - lo < 0.05, (lo, est.a_, hi)


def test_envelope_unequal_exponents():
    data, p = training_curves(alpha=0.34, beta=0.28, A=406.4, B=410.7, E=1.69)
    est = EnvelopeAllocation().fit(data)
    assert est.a_ == pytest.approx(0.28 / 0.62, abs=0.03)


def test_smoothing_keeps_constants_and_reduces_noise():
    y = np.full(50, 3.0)
    np.testing.assert_allclose(gaussian_smooth(y, 3.0), y)
    noisy = 3.0 + np.random.default_rng(0).normal(0, 0.05, 200)
    assert gaussian_smooth(noisy, 5.0).std() < noisy.std() / 3


def test_needs_several_curves():
    d = ScalingData.from_arrays(N=[1e6] * 3, D=[1e8, 2e8, 4e8], loss=[4, 3.5, 3.2], run=["a"] * 3)
    with pytest.raises(LmscaleError, match="training curve"):
        EnvelopeAllocation().fit(d)
