import math

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.theory.ensemble import (
    BinomialDegrees,
    ConceptTextEnsemble,
    NVParams,
    PoissonDegrees,
    RegularEnsemble,
    concept_text_degrees,
    lambert_w_threshold,
)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"R": 1e4, "T": 4e4, "epsilon": 0.0}, "epsilon"),
        ({"R": 1e4, "T": 4e4, "epsilon": 1.0}, "epsilon"),
        ({"R": 1e4, "T": 4e4, "epsilon": 1.5}, "epsilon"),
        ({"R": 1e4, "T": 4e4, "epsilon": float("nan")}, "epsilon"),
        ({"R": 0.0, "T": 4e4}, "R (concepts)"),
        ({"R": 1e4, "T": -1.0}, "T (texts)"),
        ({"R": 1e4, "T": 4e4, "d_t": 1.5}, "d_t"),
        ({"R": 3.0, "T": 4e4}, "R=3.0"),
        ({"R": 1e4, "T": 4e4, "limit": "gauss"}, "limit"),
    ],
)
def test_invalid_ensembles_give_one_line_errors(kwargs, needle):
    with pytest.raises(LmscaleError) as err:
        ConceptTextEnsemble(**kwargs)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"epsilon": 1.2}, {"d_t": 1}, {"params_per_concept": 0}, {"tokens_per_text": -5}, {"alpha_variant": "code"}],
)
def test_invalid_nv_params(kwargs):
    with pytest.raises(LmscaleError):
        NVParams(**kwargs)


def test_invalid_regular():
    with pytest.raises(LmscaleError):
        RegularEnsemble(1, 6, 0.4)
    with pytest.raises(LmscaleError):
        RegularEnsemble(3, 6, -0.1)
    with pytest.raises(LmscaleError):
        RegularEnsemble(3, 6, 0.4, n=0)


def test_derived_quantities():
    e = ConceptTextEnsemble(R=1000.0, T=4500.0, d_t=6.0, epsilon=0.5)
    assert e.p == pytest.approx(0.006)
    assert e.n == pytest.approx(2000.0)
    assert e.kappa == pytest.approx(4.5)
    # Mean concept degree d_t T/R = 27, mean text degree d_t/eps = 12 (edge-perspective slopes at 1).
    assert e.lam_prime(1.0) == pytest.approx(0.006 * 4499)
    assert e.rho_prime(1.0) == pytest.approx(0.006 * 1999)


def test_binomial_polynomials_match_direct_powers():
    e = ConceptTextEnsemble(R=200.0, T=900.0, d_t=6.0, epsilon=0.5)
    p, T, n = e.p, e.T, e.n
    x = np.linspace(0.0, 1.0, 11)
    np.testing.assert_allclose(e.lam(x), (1 - p + p * x) ** (T - 1), rtol=1e-12)
    np.testing.assert_allclose(e.rho(x), (1 - p + p * x) ** (n - 1), rtol=1e-12)
    L = ((1 - p + p * x) ** T - (1 - p) ** T) / (1 - (1 - p) ** T)
    np.testing.assert_allclose(e.L(x), L, rtol=1e-12, atol=1e-300)
    assert e.L(1.0) == pytest.approx(1.0) and e.L(0.0) == 0.0
    # Derivatives by central differences.
    h = 1e-6
    xm = np.linspace(0.1, 0.9, 5)
    np.testing.assert_allclose(e.lam_prime(xm), (e.lam(xm + h) - e.lam(xm - h)) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(e.rho_prime(xm), (e.rho(xm + h) - e.rho(xm - h)) / (2 * h), rtol=1e-6)
    assert e.L_prime_one() == pytest.approx((e.L(1.0) - e.L(1.0 - h)) / h, rel=1e-4)
    assert e.L_prime_one() == pytest.approx(T * p / (1 - (1 - p) ** T))


def test_log_space_powers_stay_exact_at_huge_sizes():
    # R = 1e12: 1 - p u rounds to 1 in float64 (p = 6e-12), so naive powers are useless; log1p keeps
    # the binomial form and its departure from the Poisson limit, -(T-1)(p u)^2/2 + p u, exactly.
    R, T = 1e12, 4.5e12
    b = concept_text_degrees(R, T)
    po = concept_text_degrees(R, T, limit="poisson")
    u = np.array([0.01, 0.3, 1.0])
    p = 6.0 / R
    expected = p * u - (T - 1) * (p * u) ** 2 / 2  # log lam_bin - log lam_poisson to O(p^2 u^2)
    # log lam is ~ -27, so float64 resolves the difference to ~1e-14 absolute.
    np.testing.assert_allclose(b.log_lam_c(u) - po.log_lam_c(u), expected, rtol=1e-3, atol=2e-14)
    naive = (1 - p * 0.3) ** (T - 1)
    assert abs(naive / b.lam_c(0.3) - 1) > 1e-6  # the naive power is off already


def test_poisson_limit_is_approached_at_rate_p():
    u = 0.2
    diffs = []
    for R in (1e3, 1e4, 1e5):
        b = concept_text_degrees(R, 4.5 * R)
        po = b.poisson()
        assert isinstance(b, BinomialDegrees) and isinstance(po, PoissonDegrees)
        diffs.append(abs(b.rho_c(u) / po.rho_c(u) - 1))
    assert diffs[0] / diffs[1] == pytest.approx(10, rel=0.05)
    assert diffs[1] / diffs[2] == pytest.approx(10, rel=0.05)
    assert not concept_text_degrees(1e10, 4.5e10).poisson_is_exact()
    assert not concept_text_degrees(1e18, 4.5e18).poisson_is_exact()
    assert concept_text_degrees(1e19, 4.5e19).poisson_is_exact()


def test_nv_params_conversions():
    prm = NVParams()
    assert (prm.d_t, prm.epsilon, prm.params_per_concept, prm.tokens_per_text) == (6.0, 0.5, 2e5, 8e5)
    assert prm.alpha_variant == "published"
    assert prm.params(1e5) == pytest.approx(2e10)
    assert prm.tokens(1e6) == pytest.approx(8e11)
    assert prm.flops(1e5, 1e6) == pytest.approx(6 * 2e10 * 8e11)
    assert prm.model_compute(prm.flops(1e5, 1e6)) == pytest.approx(1e11)
    assert prm.flops_per_model_unit == pytest.approx(9.6e11)
    assert prm.replace(alpha_variant="released-code").alpha_variant == "released-code"
    e = prm.ensemble(1e4, 5e4)
    assert isinstance(e, ConceptTextEnsemble) and e.R == 1e4 and e.epsilon == 0.5


def test_lambert_w_threshold_matches_direct_minimisation():
    a, b = 27.0, 12.0
    eps, x = lambert_w_threshold(a, b)
    grid = np.linspace(0.2, 1.0, 200001)
    g = grid * np.exp(a * np.exp(-b * grid))
    assert float(eps) == pytest.approx(g.min(), rel=1e-10)
    assert float(x) == pytest.approx(grid[g.argmin()], abs=1e-5)
    # No waterfall for a <= e: the closed form reports NaN.
    assert math.isnan(float(lambert_w_threshold(2.0, 12.0)[0]))


def test_package_exports_resolve():
    import lmscale.theory as theory

    assert theory.__all__ == sorted(theory.__all__)
    for name in theory.__all__:
        assert getattr(theory, name) is not None
    assert theory.NVParams is NVParams
