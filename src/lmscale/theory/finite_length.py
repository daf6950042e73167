"""Finite-length (waterfall) scaling: block and bit erasure rates and the concepts a model learns.

Amraoui, Montanari, Richardson & Urbanke (2009): P_B(n, eps) ~ Q(sqrt(n) (eps_BP - beta n^(-2/3) - eps) / alpha),
Q = 1 - Phi evaluated as ndtr(-z) (accurate in the upper tail; log_ndtr for log P_B).
Nayak & Varshney drop the shift (beta = 0, the default here too). With x = x_BP, xb = 1 - x,
y = y_BP and eps = eps_BP the scaling parameter is (published signs)

    alpha^2 = [rho(xb)^2 - rho(xb^2) + rho'(xb)(1 - 2 x rho(xb)) - xb^2 rho'(xb^2)] / [L'(1) lambda(y)^2 rho'(xb)^2]
            + [eps^2 lambda(y)^2 - eps^2 lambda(y^2) - y^2 eps^2 lambda'(y^2)] / [L'(1) lambda(y)^2]

The authors' released code has + in front of the last term of each numerator ("released-code"
variant: alpha ~ 0.94 instead of ~0.59 on their ensemble, 0.939 instead of 0.5604 on (3,6)).
Bit level: P_b = gamma_BP P_B with gamma_BP = eps_BP L(y_BP); concepts learned R (1 - P_b/eps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.theory.density_evolution import Threshold, bp_threshold
from lmscale.theory.ensemble import (
    ALPHA_VARIANTS,
    DegreeDistribution,
    concept_text_degrees,
    validate_concept_text,
)

# Amraoui et al. 2009, Table I: beta/Omega for the (3,6)-regular ensemble on the BEC.
BETA_REGULAR_3_6 = 0.6169


def _check_variant(variant: str) -> None:
    if variant not in ALPHA_VARIANTS:
        raise LmscaleError(f"alpha variant {variant!r} is invalid: expected one of {', '.join(ALPHA_VARIANTS)}")


def scaling_alpha(degrees: DegreeDistribution, eps_bp, x_bp, variant: str = "published") -> np.ndarray:
    """The Amraoui scaling parameter alpha at the tangency point (arrays broadcast)."""
    _check_variant(variant)
    sign = -1.0 if variant == "published" else 1.0
    x = np.asarray(x_bp, dtype=np.float64)
    eps2 = np.asarray(eps_bp, dtype=np.float64) ** 2
    u2 = x * (2.0 - x)  # 1 - xb^2
    r = degrees.rho_c(x)  # rho(xb) = 1 - y
    rp = degrees.rho_prime_c(x)  # rho'(xb)
    y = 1.0 - r
    v2 = r * (2.0 - r)  # 1 - y^2
    lam_y = degrees.lam_c(r)
    lp1 = degrees.L_prime_one()
    xb2 = (1.0 - x) ** 2
    num1 = r * r - degrees.rho_c(u2) + rp * (1.0 - 2.0 * x * r) + sign * xb2 * degrees.rho_prime_c(u2)
    num2 = eps2 * lam_y**2 + sign * eps2 * degrees.lam_c(v2) + sign * y * y * eps2 * degrees.lam_prime_c(v2)
    alpha2 = num1 / (lp1 * lam_y**2 * rp**2) + num2 / (lp1 * lam_y**2)
    with np.errstate(invalid="ignore"):
        return np.sqrt(alpha2)


@dataclass(frozen=True)
class Waterfall:
    """Finite-length prediction for one ensemble (floats) or a batch (arrays).

    z = sqrt(n)(eps_BP - beta n^(-2/3) - eps)/alpha; P_B = Q(z), log_P_B = log Q(z) (finite even
    where P_B underflows); P_b = gamma_BP P_B; unlearned fraction delta = P_b/eps; concepts learned
    R (1 - delta).
    """

    eps_bp: np.ndarray
    x_bp: np.ndarray
    y_bp: np.ndarray
    alpha: np.ndarray
    gamma_bp: np.ndarray
    z: np.ndarray
    P_B: np.ndarray
    log_P_B: np.ndarray
    P_b: np.ndarray
    delta: np.ndarray
    concepts_learned: np.ndarray


def _waterfall_from(deg, th: Threshold, n, epsilon, R, variant: str, beta) -> Waterfall:
    from scipy.special import log_ndtr, ndtr  # Q(z) = ndtr(-z); lighter to import than scipy.stats

    alpha = scaling_alpha(deg, th.eps_bp, th.x_bp, variant)
    gamma = th.eps_bp * deg.L_c(1.0 - th.y_bp)
    shift = 0.0 if beta is None else beta * n ** (-2.0 / 3.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.sqrt(n) * (th.eps_bp - shift - epsilon) / alpha
    # No waterfall (g increasing): the asymptotic decoder succeeds for every eps < eps_BP = 1.
    z = np.where(th.waterfall, z, np.inf)
    P_B = ndtr(-z)
    log_P_B = log_ndtr(-z)
    P_b = gamma * P_B
    delta = P_b / epsilon
    return Waterfall(
        eps_bp=th.eps_bp, x_bp=th.x_bp, y_bp=th.y_bp, alpha=alpha, gamma_bp=gamma, z=z, P_B=P_B,
        log_P_B=log_P_B, P_b=P_b, delta=delta, concepts_learned=R * (1.0 - delta),
    )


def _scalarize(w: Waterfall) -> Waterfall:
    if all(np.ndim(v) == 0 for v in vars(w).values()):
        return Waterfall(**{k: float(v) for k, v in vars(w).items()})
    return w


def waterfall(ensemble, variant: str = "published", beta: float | None = None, epsilon=None) -> Waterfall:
    """P_B, P_b and concepts learned for a `ConceptTextEnsemble` or a `RegularEnsemble` with `n` set.

    `epsilon` overrides the ensemble's channel erasure rate (e.g. to scan eps at fixed graph size).
    For a regular ensemble "concepts learned" counts decoded variables out of epsilon*n erased ones.
    """
    _check_variant(variant)
    n = ensemble.block_length
    if n is None:
        raise LmscaleError("the ensemble has no block length n: expected RegularEnsemble(..., n=<variables>)")
    eps = ensemble.epsilon if epsilon is None else np.asarray(epsilon, dtype=np.float64)
    deg = ensemble.degrees
    th = bp_threshold(deg)
    return _scalarize(_waterfall_from(deg, th, float(n), eps, eps * float(n), variant, beta))


def concepts_learned(R, T, d_t=6.0, epsilon=0.5, variant: str = "published", limit: str = "binomial",
                     beta: float | None = None) -> Waterfall:
    """Vectorised waterfall over arrays of (R, T) concepts/texts (broadcast); returns a `Waterfall`."""
    _check_variant(variant)
    validate_concept_text(R, T, d_t, epsilon)
    R, T = np.asarray(R, dtype=np.float64), np.asarray(T, dtype=np.float64)
    deg = concept_text_degrees(R, T, d_t, epsilon, limit)
    th = bp_threshold(deg)
    shape = np.broadcast_shapes(R.shape, T.shape)
    return _scalarize(_waterfall_from(deg, th, R / epsilon, epsilon, np.broadcast_to(R, shape), variant, beta))
