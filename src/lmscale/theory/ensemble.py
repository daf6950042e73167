"""Concept–text graphs as LDPC codes on the erasure channel (Nayak & Varshney 2024, lower layer).

A model of capacity R concepts reads T texts. Each (text, concept) pair is an edge with probability
p = d_t/R; a fraction epsilon of the concept pool n = R/epsilon is unknown ("erased") and must be
learned by peeling. Concepts are the variable nodes, texts the check nodes.

One degree-distribution interface (`DegreeDistribution`) serves every ensemble: the binomial
concept–text ensemble, its Poisson limit and (l, r)-regular LDPC codes, so density evolution and the
finite-length scaling code never ask which one they have. All polynomials are evaluated in
complement form, f_c(u) = f(1 - u), because every argument the decoder needs is "one minus a small
number"; powers are exp(m * log1p(-p u)), exact in float64 for R up to ~1e17 (no float128).
Parameters are numpy arrays (or floats) that broadcast with the argument, so one call evaluates a
whole compute sweep.

`NVParams` holds the paper's constants and the unit conversions N = sigma R parameters,
D = tau T tokens, C_FLOPs = 6 N D.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lmscale.errors import LmscaleError

Limit = Literal["binomial", "poisson"]
AlphaVariant = Literal["published", "released-code"]
LIMITS = ("binomial", "poisson")
ALPHA_VARIANTS = ("published", "released-code")


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _pow_c(p, m, u) -> np.ndarray:
    """(1 - p u)^m in log space; exact for tiny p where (1 - p u) itself would round."""
    return np.exp(m * np.log1p(-p * u))


class DegreeDistribution(ABC):
    """Edge-perspective lambda (variables = concepts), rho (checks = texts) and node-perspective L.

    Subclasses implement the complement forms `lam_c(u) = lambda(1-u)`, `rho_c`, `lam_prime_c`,
    `rho_prime_c`, `L_c` and `L_prime_one()`; the plain forms below are derived from them.
    """

    # Public polynomials in the usual variable x.
    def lam(self, x) -> np.ndarray:
        return self.lam_c(1.0 - _arr(x))

    def rho(self, x) -> np.ndarray:
        return self.rho_c(1.0 - _arr(x))

    def lam_prime(self, x) -> np.ndarray:
        return self.lam_prime_c(1.0 - _arr(x))

    def rho_prime(self, x) -> np.ndarray:
        return self.rho_prime_c(1.0 - _arr(x))

    def L(self, x) -> np.ndarray:
        return self.L_c(1.0 - _arr(x))

    # Density evolution pieces (x = variable-to-check erasure probability).
    def log_lam_c(self, u) -> np.ndarray:
        return np.log(self.lam_c(u))

    def de_map(self, x, epsilon) -> np.ndarray:
        """One DE iteration x -> epsilon * lambda(1 - rho(1 - x))."""
        return _arr(epsilon) * self.lam_c(self.rho_c(_arr(x)))

    def log_g(self, x) -> np.ndarray:
        """log of g(x) = x / lambda(1 - rho(1 - x)); epsilon_BP is its (nontrivial) minimum."""
        x = _arr(x)
        return np.log(x) - self.log_lam_c(self.rho_c(x))

    def x_dlog_g(self, x) -> np.ndarray:
        """x d/dx log g(x) = 1 - x rho'(1-x) lambda'(y)/lambda(y), y = 1 - rho(1-x); zero at x_BP."""
        x = _arr(x)
        r = self.rho_c(x)
        return 1.0 - x * self.rho_prime_c(x) * self.lam_prime_c(r) / self.lam_c(r)

    # Subclass interface.
    @abstractmethod
    def lam_c(self, u) -> np.ndarray: ...

    @abstractmethod
    def rho_c(self, u) -> np.ndarray: ...

    @abstractmethod
    def lam_prime_c(self, u) -> np.ndarray: ...

    @abstractmethod
    def rho_prime_c(self, u) -> np.ndarray: ...

    @abstractmethod
    def L_c(self, u) -> np.ndarray: ...

    @abstractmethod
    def L_prime_one(self) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class BinomialDegrees(DegreeDistribution):
    """lambda(x) = (1 - p + p x)^(m_var - 1), rho(x) = (1 - p + p x)^(m_chk - 1).

    For the concept–text ensemble m_var = T (a concept's degree is Bin(T, p)) and m_chk = n = R/eps
    (a text's degree is Bin(n, p)); L is the zero-truncated node-perspective concept degree.
    """

    p: np.ndarray
    m_var: np.ndarray
    m_chk: np.ndarray

    def lam_c(self, u):
        return _pow_c(self.p, self.m_var - 1.0, _arr(u))

    def log_lam_c(self, u):
        return (self.m_var - 1.0) * np.log1p(-self.p * _arr(u))

    def rho_c(self, u):
        return _pow_c(self.p, self.m_chk - 1.0, _arr(u))

    def lam_prime_c(self, u):
        return (self.m_var - 1.0) * self.p * _pow_c(self.p, self.m_var - 2.0, _arr(u))

    def rho_prime_c(self, u):
        return (self.m_chk - 1.0) * self.p * _pow_c(self.p, self.m_chk - 2.0, _arr(u))

    def L_c(self, u):
        zero = _pow_c(self.p, self.m_var, 1.0)  # P(degree 0), removed by the zero truncation
        return (_pow_c(self.p, self.m_var, _arr(u)) - zero) / -np.expm1(self.m_var * np.log1p(-self.p))

    def L_prime_one(self):
        return self.m_var * self.p / -np.expm1(self.m_var * np.log1p(-self.p))

    def poisson(self) -> PoissonDegrees:
        """The large-size limit with the same mean degrees p*m_var and p*m_chk."""
        return PoissonDegrees(self.p * self.m_var, self.p * self.m_chk)

    def poisson_is_exact(self) -> np.ndarray:
        """True where the Poisson limit equals the binomial form to float64 resolution.

        m log1p(-p u) = -m p u (1 + p u/2 + ...), and the edge perspective uses m - 1 for m, so the
        exponents (up to the mean degree p m) differ by a relative O(p + 1/m). Criterion: that
        relative difference times the larger mean degree is below half an ulp (2^-53), so both
        forms round to the same float64 value. Reached only for R beyond ~1e18 concepts.
        """
        rel = np.maximum(self.p, 1.0 / np.minimum(self.m_var, self.m_chk))
        mean = self.p * np.maximum(self.m_var, self.m_chk)
        return rel * mean < np.finfo(np.float64).eps / 2


@dataclass(frozen=True, eq=False)
class PoissonDegrees(DegreeDistribution):
    """lambda(x) = exp(-a (1 - x)), rho(x) = exp(-b (1 - x)); a, b are the mean degrees."""

    a: np.ndarray
    b: np.ndarray

    def lam_c(self, u):
        return np.exp(-self.a * _arr(u))

    def log_lam_c(self, u):
        return -self.a * _arr(u)

    def rho_c(self, u):
        return np.exp(-self.b * _arr(u))

    def lam_prime_c(self, u):
        return self.a * np.exp(-self.a * _arr(u))

    def rho_prime_c(self, u):
        return self.b * np.exp(-self.b * _arr(u))

    def L_c(self, u):
        return (np.exp(-self.a * _arr(u)) - np.exp(-self.a)) / -np.expm1(-self.a)

    def L_prime_one(self):
        return self.a / -np.expm1(-self.a)


@dataclass(frozen=True, eq=False)
class RegularDegrees(DegreeDistribution):
    """(dv, dc)-regular LDPC: lambda(x) = x^(dv-1), rho(x) = x^(dc-1), L(x) = x^dv."""

    dv: np.ndarray
    dc: np.ndarray

    # Plain powers of 1 - u: the degrees are small integers, so nothing rounds away.
    def lam_c(self, u):
        return (1.0 - _arr(u)) ** (self.dv - 1.0)

    def log_lam_c(self, u):
        with np.errstate(divide="ignore"):
            return (self.dv - 1.0) * np.log1p(-_arr(u))

    def rho_c(self, u):
        return (1.0 - _arr(u)) ** (self.dc - 1.0)

    def lam_prime_c(self, u):
        return (self.dv - 1.0) * (1.0 - _arr(u)) ** (self.dv - 2.0)

    def rho_prime_c(self, u):
        return (self.dc - 1.0) * (1.0 - _arr(u)) ** (self.dc - 2.0)

    def L_c(self, u):
        return (1.0 - _arr(u)) ** self.dv

    def L_prime_one(self):
        return _arr(self.dv)


def _check_epsilon(epsilon) -> None:
    e = _arr(epsilon)
    if not np.all(np.isfinite(e)) or np.any((e <= 0) | (e >= 1)):
        raise LmscaleError(f"epsilon={epsilon!r} is invalid: expected an erasure fraction strictly between 0 and 1")


def _check_positive(name: str, value) -> None:
    v = _arr(value)
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        raise LmscaleError(f"{name}={value!r} is invalid: expected a positive finite number")


def _check_d_t(d_t) -> None:
    v = _arr(d_t)
    if not np.all(np.isfinite(v)) or np.any(v < 2):
        raise LmscaleError(f"d_t={d_t!r} is invalid: expected concepts per text >= 2")


def validate_concept_text(R, T, d_t, epsilon) -> None:
    """Raise LmscaleError (one line) unless R, T > 0, R >= d_t (so p = d_t/R <= 1), d_t >= 2, 0 < eps < 1."""
    _check_positive("R (concepts)", R)
    _check_positive("T (texts)", T)
    _check_d_t(d_t)
    _check_epsilon(epsilon)
    if np.any(_arr(R) < _arr(d_t)):
        raise LmscaleError(
            f"R={R!r} concepts is invalid: expected R >= d_t={d_t!r} so that the edge probability d_t/R <= 1"
        )


def concept_text_degrees(R, T, d_t=6.0, epsilon=0.5, limit: Limit = "binomial") -> DegreeDistribution:
    """Degree distribution of the concept–text ensemble; R, T may be arrays (broadcast)."""
    R, T, d_t, epsilon = _arr(R), _arr(T), _arr(d_t), _arr(epsilon)
    p = d_t / R
    n = R / epsilon
    if limit == "binomial":
        return BinomialDegrees(p, T, n)
    if limit == "poisson":
        return PoissonDegrees(p * T, p * n)
    raise LmscaleError(f"limit={limit!r} is invalid: expected one of {', '.join(LIMITS)}")


@dataclass(frozen=True)
class ConceptTextEnsemble:
    """R concepts (capacity), T texts, d_t unknown concepts per text on average, erasure fraction epsilon.

    Derived: p = d_t/R (edge probability), n = R/epsilon (concept pool = block length), mean concept
    degree d_t T/R, mean text degree d_t/epsilon. `limit` picks the exact binomial polynomials or
    their Poisson limit.
    """

    R: float
    T: float
    d_t: float = 6.0
    epsilon: float = 0.5
    limit: Limit = "binomial"

    def __post_init__(self) -> None:
        validate_concept_text(self.R, self.T, self.d_t, self.epsilon)
        if self.limit not in LIMITS:
            raise LmscaleError(f"limit={self.limit!r} is invalid: expected one of {', '.join(LIMITS)}")

    @property
    def p(self) -> float:
        return self.d_t / self.R

    @property
    def n(self) -> float:
        return self.R / self.epsilon

    @property
    def block_length(self) -> float:
        return self.n

    @property
    def kappa(self) -> float:
        """Texts per concept T/R: the only thing epsilon_BP depends on in the Poisson limit."""
        return self.T / self.R

    @property
    def degrees(self) -> DegreeDistribution:
        return concept_text_degrees(self.R, self.T, self.d_t, self.epsilon, self.limit)

    # Convenience delegates to the degree distribution.
    def lam(self, x):
        return self.degrees.lam(x)

    def rho(self, x):
        return self.degrees.rho(x)

    def lam_prime(self, x):
        return self.degrees.lam_prime(x)

    def rho_prime(self, x):
        return self.degrees.rho_prime(x)

    def L(self, x):
        return self.degrees.L(x)

    def L_prime_one(self) -> float:
        return float(self.degrees.L_prime_one())


@dataclass(frozen=True)
class RegularEnsemble:
    """(dv, dc)-regular LDPC code on the BEC(epsilon); `n` variable nodes (block length, optional)."""

    dv: int = 3
    dc: int = 6
    epsilon: float = 0.4
    n: float | None = None

    def __post_init__(self) -> None:
        if self.dv < 2 or self.dc < 2:
            raise LmscaleError(f"(dv, dc)=({self.dv}, {self.dc}) is invalid: expected both degrees >= 2")
        _check_epsilon(self.epsilon)
        if self.n is not None:
            _check_positive("n (block length)", self.n)

    @property
    def block_length(self) -> float | None:
        return self.n

    @property
    def degrees(self) -> DegreeDistribution:
        return RegularDegrees(_arr(float(self.dv)), _arr(float(self.dc)))


@dataclass(frozen=True)
class NVParams:
    """Nayak–Varshney constants and unit conversions (defaults: the paper's plots).

    N = params_per_concept * R parameters, D = tokens_per_text * T tokens, C_FLOPs = 6 N D, so
    compute in model units C = R T = C_FLOPs / (6 params_per_concept tokens_per_text).
    `alpha_variant` "published" uses the Amraoui et al. signs; "released-code" the authors' + signs.
    """

    d_t: float = 6.0
    epsilon: float = 0.5
    params_per_concept: float = 2e5
    tokens_per_text: float = 8e5
    alpha_variant: AlphaVariant = "published"
    limit: Limit = "binomial"

    def __post_init__(self) -> None:
        _check_d_t(self.d_t)
        _check_epsilon(self.epsilon)
        _check_positive("params_per_concept", self.params_per_concept)
        _check_positive("tokens_per_text", self.tokens_per_text)
        if self.alpha_variant not in ALPHA_VARIANTS:
            raise LmscaleError(
                f"alpha_variant={self.alpha_variant!r} is invalid: expected one of {', '.join(ALPHA_VARIANTS)}"
            )
        if self.limit not in LIMITS:
            raise LmscaleError(f"limit={self.limit!r} is invalid: expected one of {', '.join(LIMITS)}")

    @property
    def flops_per_model_unit(self) -> float:
        """C_FLOPs per unit of C = R T: 6 * params_per_concept * tokens_per_text."""
        return 6.0 * self.params_per_concept * self.tokens_per_text

    def params(self, R):
        """N (parameters) for R concepts."""
        return self.params_per_concept * _arr(R)

    def tokens(self, T):
        """D (tokens) for T texts."""
        return self.tokens_per_text * _arr(T)

    def flops(self, R, T):
        """C_FLOPs = 6 N D."""
        return 6.0 * self.params(R) * self.tokens(T)

    def model_compute(self, C_flops):
        """C = R T (model units) for a FLOP budget."""
        return _arr(C_flops) / self.flops_per_model_unit

    def flops_from_model(self, C):
        return _arr(C) * self.flops_per_model_unit

    def ensemble(self, R: float, T: float) -> ConceptTextEnsemble:
        return ConceptTextEnsemble(R=float(R), T=float(T), d_t=self.d_t, epsilon=self.epsilon, limit=self.limit)

    def replace(self, **changes) -> NVParams:
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        fields.update(changes)
        return NVParams(**fields)


def lambert_w_threshold(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form Poisson-limit threshold: (epsilon_BP, x_BP) for lambda = e^{-a(1-x)}, rho = e^{-b(1-x)}.

    d/dx log g = 1/x - a b e^{-b x} = 0 has, for a > e, a local maximum on W_0 and the tangency
    point x_BP = -W_{-1}(-1/a)/b on the lower branch; there a e^{-b x} = 1/(b x), so
    epsilon_BP = x_BP exp(1/(b x_BP)). NaN where a <= e (no waterfall) or x_BP > 1.
    """
    from scipy.special import lambertw

    a, b = np.broadcast_arrays(_arr(a), _arr(b))
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = a > math.e
        w = np.where(ok, lambertw(np.where(ok, -1.0 / a, -0.1), -1).real, np.nan)
        x = -w / b
        eps = x * np.exp(1.0 / (b * x))
    bad = ~ok | (x > 1.0)
    return np.where(bad, np.nan, eps), np.where(bad, np.nan, x)
