from decimal import Decimal, localcontext

import numpy as np
import pytest

from lmscale.theory.density_evolution import (
    asymptotic_bit_erasure,
    bp_threshold,
    de_fixed_point,
    de_step,
    de_trajectory,
    poisson_threshold,
)
from lmscale.theory.ensemble import ConceptTextEnsemble, PoissonDegrees, RegularEnsemble, concept_text_degrees


def test_regular_3_6_threshold_literature():
    th = bp_threshold(RegularEnsemble(3, 6, 0.4))
    assert th.eps_bp == pytest.approx(0.4294398, abs=2e-7)  # Richardson & Urbanke: 0.4294
    assert th.x_bp == pytest.approx(0.26057, abs=1e-4)
    assert th.waterfall
    # Tangency: x_BP is a fixed point of DE at eps_BP and the map's slope there is 1.
    e = RegularEnsemble(3, 6, th.eps_bp)
    assert float(de_step(e, th.eps_bp, th.x_bp)) == pytest.approx(th.x_bp, rel=1e-12)
    h = 1e-6
    slope = (de_step(e, th.eps_bp, th.x_bp + h) - de_step(e, th.eps_bp, th.x_bp - h)) / (2 * h)
    assert float(slope) == pytest.approx(1.0, abs=1e-6)


def test_density_evolution_below_and_above_threshold():
    below, above = RegularEnsemble(3, 6, 0.42), RegularEnsemble(3, 6, 0.44)
    assert float(de_fixed_point(below, 0.42)) < 1e-12
    x_up = float(de_fixed_point(above, 0.44))
    assert x_up > 0.1
    assert float(de_step(above, 0.44, x_up)) == pytest.approx(x_up, rel=1e-12)
    traj = de_trajectory(below, 0.42, iterations=50)
    assert traj.shape == (51,) and traj[0] == 0.42
    assert np.all(np.diff(traj) <= 0)  # monotone decrease from x_0 = eps
    assert asymptotic_bit_erasure(below) < 1e-12
    # Erased fraction when peeling stops: eps * L(y), y = 1 - rho(1 - x), with L(y) = y^3 for (3,6).
    y = 1 - (1 - x_up) ** 5
    assert float(asymptotic_bit_erasure(above)) == pytest.approx(0.44 * y**3, rel=1e-12)


def test_poisson_threshold_closed_form_matches_numeric():
    for a, b in [(27.0, 12.0), (54.0, 12.0), (20.0, 8.0)]:
        num = bp_threshold(PoissonDegrees(np.float64(a), np.float64(b)))
        cf = poisson_threshold(PoissonDegrees(np.float64(a), np.float64(b)))
        assert num.eps_bp == pytest.approx(cf.eps_bp, rel=1e-14)
        assert num.x_bp == pytest.approx(cf.x_bp, rel=1e-10)


def test_nv_threshold_increases_with_texts_per_concept_and_skips_the_trivial_minimum():
    eps = [bp_threshold(ConceptTextEnsemble(R=1e5, T=k * 1e5)).eps_bp for k in (3.5, 4.5, 5.5)]
    assert eps[0] < eps[1] < eps[2]
    th = bp_threshold(ConceptTextEnsemble(R=1e5, T=4.5e5))
    # g -> 0 as x -> 0 (degree-1 concepts), so the waterfall minimum sits past a local maximum.
    assert 0.3 < th.x_bp < 0.5 and 0.49 < th.eps_bp < 0.51


def test_no_waterfall_when_texts_are_too_sparse():
    th = bp_threshold(PoissonDegrees(np.float64(2.0), np.float64(12.0)))  # a < e: g increasing
    assert not th.waterfall and th.eps_bp == 1.0 and th.x_bp == 1.0


def test_batched_threshold_equals_scalar_calls():
    R = np.array([1e3, 1e6, 1e9])
    T = np.array([4.0, 4.6, 5.2]) * R
    batch = bp_threshold(concept_text_degrees(R, T))
    for i in range(3):
        one = bp_threshold(ConceptTextEnsemble(R=R[i], T=T[i]))
        assert batch.eps_bp[i] == pytest.approx(one.eps_bp, rel=1e-15)


def _decimal_threshold(R: float, T: float, d_t: int = 6, eps: float = 0.5) -> Decimal:
    """epsilon_BP with 40-digit decimals: golden-section minimum of g on [0.3, 0.5]."""
    with localcontext() as ctx:
        ctx.prec = 40
        Rd, Td = Decimal(R), Decimal(T)
        p = Decimal(d_t) / Rd
        n = Rd / Decimal(eps)
        one = Decimal(1)

        def log_g(x: Decimal) -> Decimal:
            r = ((n - 1) * (one - p * x).ln()).exp()
            return x.ln() - (Td - 1) * (one - p * r).ln()

        a, b = Decimal("0.3"), Decimal("0.5")
        k = (Decimal(5).sqrt() - 1) / 2
        c, d = b - k * (b - a), a + k * (b - a)
        fc, fd = log_g(c), log_g(d)
        for _ in range(70):
            if fc <= fd:
                b, d, fd = d, c, fc
                c = b - k * (b - a)
                fc = log_g(c)
            else:
                a, c, fc = c, d, fd
                d = a + k * (b - a)
                fd = log_g(d)
        return min(fc, fd).exp()


@pytest.mark.parametrize("R, kappa", [(4.7e9, 4.534), (4.6e5, 4.6)])
def test_threshold_matches_40_digit_reference_up_to_C_1e20(R, kappa):
    # At C = R T ~ 1e20, eps_BP - eps ~ 3e-5 must be resolved to many digits; float64 log space does it.
    T = kappa * R
    ref = float(_decimal_threshold(R, T))
    got = bp_threshold(ConceptTextEnsemble(R=R, T=T)).eps_bp
    assert got == pytest.approx(ref, rel=2e-15)
    assert got - 0.5 == pytest.approx(ref - 0.5, rel=1e-10)
