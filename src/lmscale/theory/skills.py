"""Skill graphs on top of the concept-text graph: emergence and plateaus (Nayak & Varshney 2024, §1.6-1.7 of the notes).

Skills come in L levels of S_l skills each. Two skills of level l are joined when at least
eta_l = round(exp(7 l / L)) pairs of learned concepts co-occur in some text and are attributed
to that skill pair. With R concepts, T texts and concept-in-text probability d_t/R:

    p_ss   = [1 - (1 - (d_t/R)^2)^T] / S_l^2          (one concept pair supports one skill pair)
    count  ~ Binomial(M, p_ss),  M = R(R-1)/2,  m = eta_l / M
    P_edge = 1 - exp(-M KL(m || p_ss))                 if m < p_ss  (Chernoff, mean above eta_l)
           = (2M)^-1/2 exp(-M KL(m || p_ss))           otherwise
    p_l    = P_edge * gamma_pre^(2 sigma_l),  sigma_l = round(log2 l)   (prerequisite skills)
    gamma_l = giant-component fraction of G(S_l, p_l)  (Lambert W; mean degree c = S_l p_l)
    accuracy of a task needing n skills of level l = gamma_l^n
    Acc = sum_l q(l) sum_n q(n) gamma_l^n,  q(n) uniform on n = 2..7.

Two choices reproduce the released code (github.com/nayakanuj/Size_Scaling_Emergence_Plateau) and
are switches here:
- `kl_units`: the released code computes KL in bits and puts it in exp(), so its exponent is
  1/ln 2 = 1.44 times too large. **Default "bits"** (matches the paper's figures); "nats" is the
  correct Chernoff exponent. Both give the same emergence scale to within a few percent (the step
  sits where M p_ss crosses eta_l); "nats" makes the steps slightly softer.
- `prereq`: the released code uses gamma_pre = 1 for the first 11 levels (positions 0..10) and the
  giant fraction of level 11 (position 10) for every later level. **Default "released"**;
  "chained" uses the previous level's giant fraction for each level; "none" drops prerequisites.

The emergence scale follows from M p_ss ~ T d_t^2 / (2 S_l^2) crossing eta_l:
N_l ~ varsigma (R*/T*) 2 S_l^2 eta_l / d_t^2 ~ 2.4e9 eta_l parameters at the defaults
(`emergence_scale_closed_form`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from lmscale.config import Strict
from lmscale.errors import LmscaleError
from lmscale.theory.random_graphs import giant_fraction

# q(l) = 0.4 Bin(100, 0.2) + 0.4 Bin(100, 0.6) + 0.2 Bin(100, 0.95): (weight, success probability) per mode.
MULTIMODAL = ((0.4, 0.2), (0.4, 0.6), (0.2, 0.95))
UNIMODAL = ((1.0, 0.5),)
LEVEL_DISTRIBUTIONS = {"unimodal": UNIMODAL, "multimodal": MULTIMODAL}


class SkillParams(Strict):
    """Skill-graph constants (defaults: the paper's)."""

    levels: int = Field(100, gt=0, description="number of skill levels L")
    skills_per_level: float = Field(1000.0, gt=1, description="skills per level S_l")
    d_t: float = Field(6.0, ge=2, description="mean number of learnable concepts per text")
    eta_rate: float = Field(7.0, gt=0, description="eta_l = round(exp(eta_rate * l / L)) supporting concept pairs")
    n_min: int = Field(2, ge=1, description="fewest skills a task needs")
    n_max: int = Field(7, ge=1, description="most skills a task needs (q(n) uniform on n_min..n_max)")
    kl_units: Literal["bits", "nats"] = Field("bits", description="bits = the released code (matches the figures); nats = correct")
    prereq: Literal["released", "chained", "none"] = Field("released", description="how prerequisite skills enter p_l")
    prereq_level: int = Field(11, ge=1, description="the level whose giant fraction is the released code's prerequisite factor")

    @model_validator(mode="after")
    def _check(self):
        if self.n_max < self.n_min:
            raise ValueError(f"n_max={self.n_max} < n_min={self.n_min}; expected n_min <= n_max")
        return self

    @classmethod
    def make(cls, **kw) -> "SkillParams":
        """Validated construction with a one-line LmscaleError on bad values."""
        from lmscale.config import _format_validation_error

        try:
            return cls(**kw)
        except ValidationError as err:
            raise LmscaleError(_format_validation_error(err, "(skill params)")) from None

    @property
    def level_index(self) -> np.ndarray:
        return np.arange(1, self.levels + 1)

    @property
    def eta(self) -> np.ndarray:
        """Supporting concept pairs needed per level: round(exp(eta_rate l / L)), l = 1..L."""
        return np.round(np.exp(self.eta_rate * self.level_index / self.levels))

    @property
    def sigma(self) -> np.ndarray:
        """Prerequisite skills per level: round(log2 l)."""
        return np.round(np.log2(self.level_index))

    @property
    def n_values(self) -> np.ndarray:
        return np.arange(self.n_min, self.n_max + 1)


def _check_sizes(R, T) -> tuple[np.ndarray, np.ndarray]:
    R, T = np.broadcast_arrays(np.asarray(R, float), np.asarray(T, float))
    if np.any(~np.isfinite(R)) or np.any(R <= 0) or np.any(~np.isfinite(T)) or np.any(T <= 0):
        raise LmscaleError("concepts R and texts T must be finite and positive; expected e.g. R = 1e4, T = 5e4")
    return R, T


def skill_pair_probability(R, T, d_t: float = 6.0, skills_per_level: float = 1000.0) -> np.ndarray:
    """p_ss = [1 - (1 - (d_t/R)^2)^T] / S_l^2, computed as -expm1(T log1p(-(d_t/R)^2)) / S_l^2."""
    R, T = _check_sizes(R, T)
    q = np.minimum((d_t / R) ** 2, 1.0)
    with np.errstate(divide="ignore"):
        co = -np.expm1(T * np.log1p(-q))
    return co / skills_per_level**2


def _scaled_kl(eta, M, p) -> np.ndarray:
    """M KL(eta/M || p) in nats, as eta log(eta/mu) + (M - eta)(log1p(-m) - log1p(-p)), mu = M p."""
    m = eta / M
    with np.errstate(divide="ignore", invalid="ignore"):
        return eta * np.log(eta / (M * p)) + (M - eta) * (np.log1p(-m) - np.log1p(-p))


def edge_probability(R, T, eta, d_t: float = 6.0, skills_per_level: float = 1000.0,
                     kl_units: str = "bits") -> np.ndarray:
    """Chernoff estimate of P(at least eta of the M = R(R-1)/2 concept pairs support a given skill pair).

    R, T and eta broadcast together. kl_units="bits" reproduces the released code (KL in bits
    inside exp); "nats" is the correct exponent. Zero when eta >= M (too few concept pairs).
    """
    if kl_units not in ("bits", "nats"):
        raise LmscaleError(f"kl_units={kl_units!r}; expected 'bits' (released code) or 'nats'")
    R, T = _check_sizes(R, T)
    p = skill_pair_probability(R, T, d_t, skills_per_level)
    eta = np.asarray(eta, float)
    M = R * (R - 1) / 2
    R, T, eta, M, p = np.broadcast_arrays(R, T, eta, M, p)
    expo = _scaled_kl(eta, M, p) / (np.log(2.0) if kl_units == "bits" else 1.0)
    feasible = (eta < M) & (p > 0)
    with np.errstate(all="ignore"):
        above = -np.expm1(-expo)
        below = np.exp(-expo) / np.sqrt(2 * M)
    out = np.where(eta / np.where(M > 0, M, 1.0) < p, above, below)
    return np.where(feasible, np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0), 0.0)


def level_giant_fractions(R, T, params: SkillParams | None = None) -> np.ndarray:
    """gamma_l for every level along (R, T): shape (L, len(R)); prerequisites as `params.prereq`."""
    sp = params or SkillParams()
    R, T = _check_sizes(np.atleast_1d(R), np.atleast_1d(T))
    pe = edge_probability(R[None, :], T[None, :], sp.eta[:, None], sp.d_t, sp.skills_per_level, sp.kl_units)
    sigma = sp.sigma
    gam = np.zeros(pe.shape)
    pre = np.ones(R.shape)
    for i in range(sp.levels):
        p_l = pe[i] * pre ** (2 * sigma[i])
        gam[i] = giant_fraction(sp.skills_per_level * p_l)
        if sp.prereq == "chained":
            pre = gam[i]
        elif sp.prereq == "released" and i == sp.prereq_level - 1:
            pre = gam[i]
    return gam


def level_distribution(kind: str | tuple = "unimodal", levels: int = 100) -> np.ndarray:
    """q(l) on l = 1..L: a mixture of Binomial(L, p) pmfs, given by name or as ((weight, p), ...)."""
    from scipy.stats import binom

    mix = LEVEL_DISTRIBUTIONS.get(kind) if isinstance(kind, str) else kind
    if mix is None:
        raise LmscaleError(f"level distribution {kind!r}; expected one of {', '.join(LEVEL_DISTRIBUTIONS)} or ((weight, p), ...)")
    ls = np.arange(1, levels + 1)
    return sum(w * binom.pmf(ls, levels, p) for w, p in mix)


def plateau_heights(kind: str | tuple = "multimodal") -> np.ndarray:
    """Accuracy plateaus of a mixture of well-separated modes: the cumulative mixture weights."""
    mix = LEVEL_DISTRIBUTIONS.get(kind) if isinstance(kind, str) else kind
    if mix is None:
        raise LmscaleError(f"level distribution {kind!r}; expected one of {', '.join(LEVEL_DISTRIBUTIONS)}")
    order = np.argsort([p for _, p in mix])
    return np.cumsum([mix[i][0] for i in order])


def task_accuracy(gamma, n) -> np.ndarray:
    """Accuracy of a task that needs n skills, each in the giant component with probability gamma."""
    return np.asarray(gamma, float) ** np.asarray(n, float)


def aggregate_accuracy(gammas: np.ndarray, q_l: np.ndarray, params: SkillParams | None = None) -> np.ndarray:
    """Acc = sum_l q(l) sum_n q(n) gamma_l^n with q(n) uniform over n_min..n_max; gammas (L, m) -> (m,)."""
    sp = params or SkillParams()
    n = sp.n_values
    per_level = np.mean(np.asarray(gammas)[:, None, :] ** n[None, :, None], axis=1)
    return np.asarray(q_l, float) @ per_level


@dataclass(frozen=True)
class EmergenceCurves:
    """Accuracy along a compute-optimal path (R, T) for one level, unimodal and multimodal q(l)."""

    N: np.ndarray  # parameters, varsigma R
    R: np.ndarray
    T: np.ndarray
    gammas: np.ndarray  # (L, m)
    single: np.ndarray  # gamma_level^n for (level, n) = `single_task`
    single_task: tuple[int, int]
    unimodal: np.ndarray
    multimodal: np.ndarray
    params: SkillParams


def emergence_curves(R, T, params_per_concept: float = 2e5, params: SkillParams | None = None,
                     single_task: tuple[int, int] = (11, 7)) -> EmergenceCurves:
    """The three accuracy curves of the paper's Fig. B along (R, T); N = params_per_concept * R."""
    sp = params or SkillParams()
    level, n = single_task
    if not 1 <= level <= sp.levels:
        raise LmscaleError(f"single-task level {level}; expected 1..{sp.levels}")
    R, T = _check_sizes(np.atleast_1d(R), np.atleast_1d(T))
    g = level_giant_fractions(R, T, sp)
    return EmergenceCurves(N=params_per_concept * R, R=R, T=T, gammas=g, single=task_accuracy(g[level - 1], n),
                           single_task=(level, n),
                           unimodal=aggregate_accuracy(g, level_distribution("unimodal", sp.levels), sp),
                           multimodal=aggregate_accuracy(g, level_distribution("multimodal", sp.levels), sp), params=sp)


def crossing(x, y, level: float = 0.5) -> float:
    """First x where y rises through `level` (interpolated linearly in log x); NaN if it never does."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    idx = np.flatnonzero((y[:-1] < level) & (y[1:] >= level))
    if not len(idx):
        return float("nan")
    i = idx[0]
    f = (level - y[i]) / (y[i + 1] - y[i])
    return float(np.exp(np.log(x[i]) + f * (np.log(x[i + 1]) - np.log(x[i]))))


def emergence_scale_closed_form(level, texts_per_concept: float, params_per_concept: float = 2e5,
                                params: SkillParams | None = None) -> np.ndarray:
    """N_l = varsigma (R/T) 2 S_l^2 eta_l / d_t^2: where M p_ss ~ T d_t^2/(2 S_l^2) reaches eta_l (parameters)."""
    sp = params or SkillParams()
    eta = np.round(np.exp(sp.eta_rate * np.asarray(level, float) / sp.levels))
    return params_per_concept / texts_per_concept * 2 * sp.skills_per_level**2 * eta / sp.d_t**2


__all__ = ["SkillParams", "MULTIMODAL", "UNIMODAL", "skill_pair_probability", "edge_probability",
           "level_giant_fractions", "level_distribution", "plateau_heights", "task_accuracy", "aggregate_accuracy",
           "EmergenceCurves", "emergence_curves", "crossing", "emergence_scale_closed_form", "giant_fraction"]
