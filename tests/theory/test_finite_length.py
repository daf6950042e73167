import numpy as np
import pytest
from scipy.stats import norm

from lmscale.errors import LmscaleError
from lmscale.theory.ensemble import ConceptTextEnsemble, RegularEnsemble
from lmscale.theory.finite_length import BETA_REGULAR_3_6, concepts_learned, scaling_alpha, waterfall


def test_regular_3_6_alpha_published_and_released_code():
    e = RegularEnsemble(3, 6, 0.4, n=1e4)
    assert waterfall(e).alpha == pytest.approx(0.5604, abs=1e-4)  # Amraoui et al. 2009
    assert waterfall(e, "released-code").alpha == pytest.approx(0.939, abs=1e-3)  # notes §1.9


def test_nv_alpha_both_variants():
    e = ConceptTextEnsemble(R=4e5, T=4.6 * 4e5)
    assert waterfall(e).alpha == pytest.approx(0.59, abs=0.005)
    assert waterfall(e, "released-code").alpha == pytest.approx(0.94, abs=0.005)


def test_waterfall_formulas():
    e = ConceptTextEnsemble(R=1e4, T=4.7e4)
    w = waterfall(e)
    n = 1e4 / 0.5
    assert w.z == pytest.approx(np.sqrt(n) * (w.eps_bp - 0.5) / w.alpha, rel=1e-14)
    assert w.P_B == pytest.approx(norm.sf(w.z), rel=1e-14)
    assert w.log_P_B == pytest.approx(np.log(w.P_B), rel=1e-12)
    # gamma_BP = eps_BP L(y_BP), with L the zero-truncated Bin(T, p) node degree polynomial.
    assert w.gamma_bp == pytest.approx(w.eps_bp * float(e.L(w.y_bp)), rel=1e-14)
    assert 0 < w.gamma_bp < w.eps_bp
    assert w.P_b == pytest.approx(w.gamma_bp * w.P_B, rel=1e-14)
    assert w.delta == pytest.approx(w.P_b / 0.5)
    assert w.concepts_learned == pytest.approx(1e4 * (1 - w.delta))


def test_shift_lowers_z_by_beta_n_to_minus_two_thirds():
    e = RegularEnsemble(3, 6, 0.42, n=2e4)
    w0, w1 = waterfall(e), waterfall(e, beta=BETA_REGULAR_3_6)
    dz = np.sqrt(2e4) * BETA_REGULAR_3_6 * 2e4 ** (-2 / 3) / w0.alpha
    assert w0.z - w1.z == pytest.approx(dz, rel=1e-12)
    assert w1.P_B > w0.P_B


def test_log_P_B_stays_finite_where_P_B_underflows():
    w = waterfall(ConceptTextEnsemble(R=1e9, T=6e9))
    assert w.P_B == 0.0 and np.isfinite(w.log_P_B) and w.log_P_B < -700


def test_vectorised_equals_scalar():
    R = np.array([1e3, 1e5, 1e7])
    T = np.array([5.0, 4.7, 4.6]) * R
    batch = concepts_learned(R, T, variant="released-code")
    for i in range(3):
        one = waterfall(ConceptTextEnsemble(R=R[i], T=T[i]), "released-code")
        assert batch.concepts_learned[i] == pytest.approx(one.concepts_learned, rel=1e-14)
        assert batch.alpha[i] == pytest.approx(one.alpha, rel=1e-12)


def test_alpha_is_symmetric_in_the_variant_only_through_the_signs():
    e = RegularEnsemble(3, 6, 0.4)
    from lmscale.theory.density_evolution import bp_threshold

    th = bp_threshold(e)
    pub = scaling_alpha(e.degrees, th.eps_bp, th.x_bp, "published")
    rel = scaling_alpha(e.degrees, th.eps_bp, th.x_bp, "released-code")
    assert rel > pub  # the released code ADDs the three terms the paper subtracts


def test_errors():
    with pytest.raises(LmscaleError, match="block length"):
        waterfall(RegularEnsemble(3, 6, 0.4))
    with pytest.raises(LmscaleError, match="variant"):
        waterfall(ConceptTextEnsemble(R=1e3, T=5e3), variant="code")
    with pytest.raises(LmscaleError, match="epsilon"):
        concepts_learned(1e3, 5e3, epsilon=1.0)
