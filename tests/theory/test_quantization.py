"""Quantization model: exact Zipf tails, the predicted exponents, and exponent recovery from computed curves."""

import numpy as np
import pytest
from scipy.special import zeta

from lmscale.errors import LmscaleError
from lmscale.theory.quantization import (fit_exponent, loss_after_quanta, loss_vs_data, loss_vs_params,
                                         per_quantum_losses, predicted_exponents, quanta_from_data, tail_mass,
                                         zipf_alpha_from_exponent, zipf_frequencies)


def test_tail_mass_is_the_exact_sum():
    a = 0.4
    k = np.arange(1, 200_001)
    p = zipf_frequencies(k, a)
    assert tail_mass(0, a) == pytest.approx(1.0, rel=1e-14)
    # sum_{k>n} p_k for n = 10, from the direct sum plus the (Hurwitz-zeta) remainder beyond 200000.
    direct = p[10:].sum() + tail_mass(200_000, a)
    assert tail_mass(10, a) == pytest.approx(direct, rel=1e-12)
    assert tail_mass(10, a) == pytest.approx(zeta(1.4, 11) / zeta(1.4), rel=1e-14)


def test_loss_after_quanta_asymptotics():
    a, b = 0.4, np.log(2)
    n = 1e8
    # L_n ~ b n^-alpha / (alpha zeta(alpha+1)) for large n.
    assert loss_after_quanta(n, a, b) == pytest.approx(b * n**-a / (a * zeta(1 + a)), rel=1e-7)


def test_fit_recovers_parameter_exponent():
    """README: `fit_exponent` recovers alpha = 0.4 to 2e-6 (from N = 1e3 on: 3.6e-7; the
    discreteness of the first quanta costs more from N = 1e2: 4.1e-6)."""
    N = np.geomspace(1e3, 1e9, 200)
    assert fit_exponent(N, loss_vs_params(N, 0.4)).exponent == pytest.approx(0.4, abs=2e-6)
    N = np.geomspace(1e2, 1e9, 200)
    fit = fit_exponent(N, loss_vs_params(N, 0.4))
    assert fit.exponent == pytest.approx(0.4, abs=6e-6)
    assert fit.rms_log_residual < 3e-4


def test_fit_recovers_data_exponent():
    """alpha / (alpha + 1) to 2e-6 from D = 1e4 on (1.3e-6); 5.4e-6 from D = 1e3."""
    D = np.geomspace(1e4, 1e14, 200)
    assert fit_exponent(D, loss_vs_data(D, 0.4, tau=1.0)).exponent == pytest.approx(0.4 / 1.4, abs=2e-6)
    D = np.geomspace(1e3, 1e14, 200)
    fit = fit_exponent(D, loss_vs_data(D, 0.4, tau=1.0))
    assert fit.exponent == pytest.approx(0.4 / 1.4, abs=6e-6)
    assert predicted_exponents(0.4) == pytest.approx({"N": 0.4, "D": 0.4 / 1.4, "S": 0.4 / 1.4})
    assert zipf_alpha_from_exponent(0.4 / 1.4, "D") == pytest.approx(0.4)


def test_quantum_learned_exactly_at_threshold():
    a = 0.4
    k = np.array([1.0, 2.0, 5.0, 37.0])
    D_k = 1.0 / zipf_frequencies(k, a)
    np.testing.assert_array_equal(quanta_from_data(D_k, a), k)
    np.testing.assert_array_equal(quanta_from_data(D_k * 0.999, a), k - 1)


def test_per_quantum_steps_sum_to_the_loss():
    a = 0.4
    k = np.arange(1, 1001)
    D = np.geomspace(1, 1e4, 40)
    steps = per_quantum_losses(D, k, a, "D")
    assert set(np.unique(steps)) <= {0.0, np.log(2)}
    # Each row is one step from ln 2 to 0 (learning is sharp).
    assert np.all(np.diff(steps, axis=1) <= 0)
    assembled = zipf_frequencies(k, a) @ steps + np.log(2) * tail_mass(1000, a)
    np.testing.assert_allclose(assembled, loss_vs_data(D, a), rtol=1e-12)


def test_bad_alpha_is_an_error():
    with pytest.raises(LmscaleError, match="alpha"):
        tail_mass(3, -0.1)
