"""Compute-optimal allocation of the Nayak–Varshney model: R*(C), T*(C) and N*, D* vs FLOPs.

API (stable; all sizes float64 numpy arrays, one entry per compute budget):

    from lmscale.theory import NVParams, compute_optimal, predicted_allocation, fit_tokens_per_text
    params = NVParams()                       # d_t=6, eps=0.5, 2e5 params/concept, 8e5 tokens/text
    sweep = compute_optimal(np.logspace(2, 20, 200), params)   # C in MODEL units (C = R T)
    sweep.R_star, sweep.T_star                # concepts, texts
    sweep.N_star, sweep.D_star                # parameters, tokens
    sweep.C_flops                             # 6 N D (FLOPs)
    sweep.ratio                               # R*/sqrt(C)
    sweep.tokens_per_param                    # D*/N*
    sweep.eps_bp, sweep.P_b, sweep.delta, sweep.concepts_learned, sweep.at_edge
    sweep.exponents()                         # fitted slopes of log N*, log D* vs log C_FLOPs (~0.5)
    alloc = predicted_allocation(5.73e23, params)              # the same, but C given in FLOPs
    tau = fit_tokens_per_text(20.0, 5.73e23)  # tokens/text that makes D*/N* = 20 at that budget

R*(C) = argmax_R R_learnt(R, C/R): a 40-point grid over R in [0.2 sqrt(C), 0.6 sqrt(C)] (as the
released code), then a vectorised golden-section search between the best grid point's neighbours.
The objective is maximised as sqrt(C)(u - u_ref) - R delta(R) with u = R/sqrt(C): R_learnt itself
differs from R by O(1) concepts at R ~ 1e10, below float64 resolution of R, so the shifted form
keeps every digit of the trade-off. `at_edge` flags budgets whose optimum lies on the bracket edge
(C <~ 1e4, where the waterfall picture breaks down).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.theory._numerics import golden_min
from lmscale.theory.ensemble import NVParams
from lmscale.theory.finite_length import Waterfall, concepts_learned

GRID_POINTS = 40
BRACKET = (0.2, 0.6)
GOLDEN_ITERATIONS = 60


@dataclass(frozen=True)
class OptimumSweep:
    """The compute-optimal allocation at each budget (arrays of equal length, float64).

    C: compute in model units (R T); C_flops = 6 N D; R_star/T_star: concepts/texts;
    N_star/D_star: parameters/tokens; ratio = R*/sqrt(C); eps_bp, x_bp, alpha, z, P_B, P_b,
    delta (unlearned fraction), concepts_learned at the optimum; at_edge: optimum on the R bracket edge.
    """

    params: NVParams
    C: np.ndarray
    C_flops: np.ndarray
    R_star: np.ndarray
    T_star: np.ndarray
    N_star: np.ndarray
    D_star: np.ndarray
    ratio: np.ndarray
    tokens_per_param: np.ndarray
    eps_bp: np.ndarray
    x_bp: np.ndarray
    alpha: np.ndarray
    z: np.ndarray
    P_B: np.ndarray
    P_b: np.ndarray
    delta: np.ndarray
    concepts_learned: np.ndarray
    at_edge: np.ndarray

    def __len__(self) -> int:
        return len(self.C)

    def exponents(self, where=None) -> tuple[float, float]:
        """Least-squares slopes (a_N, a_D) of log N*, log D* against log C_FLOPs.

        `where` selects budgets (boolean mask or index array); by default those not at the edge.
        """
        sel = ~self.at_edge if where is None else where
        x = np.log(self.C_flops[sel])
        if x.size < 2:
            raise LmscaleError("need at least 2 compute budgets off the bracket edge to fit an exponent")
        a_n = float(np.polyfit(x, np.log(self.N_star[sel]), 1)[0])
        a_d = float(np.polyfit(x, np.log(self.D_star[sel]), 1)[0])
        return a_n, a_d

    def columns(self) -> dict[str, np.ndarray]:
        """The arrays by name (units in the names), e.g. for a CSV."""
        return {
            "C_model_units": self.C, "C_flops": self.C_flops, "R_star_concepts": self.R_star,
            "T_star_texts": self.T_star, "N_star_parameters": self.N_star, "D_star_tokens": self.D_star,
            "R_star_over_sqrtC": self.ratio, "tokens_per_parameter": self.tokens_per_param,
            "eps_bp": self.eps_bp, "x_bp": self.x_bp, "alpha": self.alpha, "z": self.z, "P_B": self.P_B,
            "P_b": self.P_b, "delta_unlearned_fraction": self.delta, "concepts_learned": self.concepts_learned,
            "at_edge": self.at_edge.astype(np.float64),
        }


def _as_budget(C, name: str) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(C, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise LmscaleError(f"{name} must be a positive finite number or a 1-D array of them; got {C!r}")
    return arr


def _waterfall_at(u: np.ndarray, C: np.ndarray, params: NVParams) -> Waterfall:
    R = u * np.sqrt(C)
    return concepts_learned(R, C / R, params.d_t, params.epsilon, params.alpha_variant, params.limit)


def compute_optimal(C, params: NVParams | None = None, *, bracket: tuple[float, float] = BRACKET,
                    grid_points: int = GRID_POINTS) -> OptimumSweep:
    """R*(C) = argmax_R R_learnt(R, C/R) for each compute budget C = R T (model units)."""
    params = params or NVParams()
    C = _as_budget(C, "compute C (model units, R*T)")
    lo_u, hi_u = bracket
    if not (0 < lo_u < hi_u):
        raise LmscaleError(f"bracket={bracket!r} is invalid: expected 0 < low < high (in units of sqrt(C))")
    min_r = params.d_t / (lo_u * np.sqrt(C))
    if np.any(min_r > 1):
        raise LmscaleError(
            f"compute C={C[min_r > 1][0]:.3g} is too small: the bracket's smallest R must be >= d_t={params.d_t:g}"
        )
    sqrt_c = np.sqrt(C)
    grid = np.linspace(lo_u, hi_u, grid_points)
    u_ref = 0.5 * (lo_u + hi_u)

    def objective(u: np.ndarray, c: np.ndarray) -> np.ndarray:
        # Minimised: -(R_learnt - u_ref sqrt(C)) = -[sqrt(C)(u - u_ref) - R delta].
        w = _waterfall_at(u, c, params)
        return -(np.sqrt(c) * (u - u_ref) - u * np.sqrt(c) * w.delta)

    f_grid = objective(grid[:, None], C[None, :])
    j = np.argmin(f_grid, axis=0)
    lo = grid[np.maximum(j - 1, 0)]
    hi = grid[np.minimum(j + 1, grid_points - 1)]
    u_star, _ = golden_min(lambda u: objective(u, C), lo, hi, GOLDEN_ITERATIONS)
    span = hi_u - lo_u
    at_edge = (u_star - lo_u < 1e-9 * span) | (hi_u - u_star < 1e-9 * span)
    at_edge |= ((j == 0) | (j == grid_points - 1)) & (np.minimum(u_star - lo_u, hi_u - u_star) < 1e-6 * span)
    w = _waterfall_at(u_star, C, params)
    R = u_star * sqrt_c
    T = C / R
    N, D = params.params(R), params.tokens(T)
    return OptimumSweep(
        params=params, C=C, C_flops=params.flops_from_model(C), R_star=R, T_star=T, N_star=N, D_star=D,
        ratio=u_star, tokens_per_param=D / N, eps_bp=np.asarray(w.eps_bp), x_bp=np.asarray(w.x_bp),
        alpha=np.asarray(w.alpha), z=np.asarray(w.z), P_B=np.asarray(w.P_B), P_b=np.asarray(w.P_b),
        delta=np.asarray(w.delta), concepts_learned=R * (1.0 - np.asarray(w.delta)), at_edge=at_edge,
    )


def predicted_allocation(C_flops, params: NVParams | None = None, **kwargs) -> OptimumSweep:
    """The compute-optimal N*, D* (and D*/N*) for FLOP budgets C_flops under `params`."""
    params = params or NVParams()
    C_flops = _as_budget(C_flops, "C_flops")
    return compute_optimal(params.model_compute(C_flops), params, **kwargs)


def fit_tokens_per_text(tokens_per_param: float, C_flops: float, params: NVParams | None = None) -> float:
    """Inverse of `predicted_allocation`: tokens_per_text such that D*/N* = tokens_per_param at C_flops.

    Only the ratio tokens_per_text/params_per_concept is identified by a measured D/N (it scales
    D*/N* = (tau/sigma) T*/R*); params_per_concept stays as given and tau is solved for, including
    the weak dependence of T*/R* on the model-unit budget C_flops/(6 sigma tau). Secant iteration
    on log tau (d log(D*/N*)/d log tau is ~1, so 3-4 optimum evaluations suffice); the result
    reproduces tokens_per_param to 1e-8 relative.
    """
    params = params or NVParams()
    if not (np.isfinite(tokens_per_param) and tokens_per_param > 0):
        raise LmscaleError(f"tokens_per_param={tokens_per_param!r} is invalid: expected a positive number")
    C_flops = float(_as_budget(C_flops, "C_flops")[0])
    sigma = params.params_per_concept
    # The bracket's smallest R must stay >= d_t: C (model units) >= (d_t/0.2)^2 caps tau.
    log_tau_max = np.log(C_flops / (6.0 * sigma * (params.d_t / BRACKET[0]) ** 2))

    def gap(log_tau: float) -> float:
        p = params.replace(tokens_per_text=float(np.exp(log_tau)))
        return float(np.log(predicted_allocation(C_flops, p).tokens_per_param[0] / tokens_per_param))

    s0 = min(np.log(tokens_per_param * sigma / 4.6), log_tau_max)  # T*/R* ~ 4.6 at large budgets
    f0 = gap(s0)
    s1 = min(s0 - f0, log_tau_max)
    for _ in range(30):
        if s1 == s0:
            break
        f1 = gap(s1)
        # R*/sqrt(C) is resolved to ~1e-9 (a maximum is flat), so D*/N* carries ~1e-9 noise.
        if abs(f1) < 1e-8:
            return float(np.exp(s1))
        step = f1 * (s1 - s0) / (f1 - f0) if f1 != f0 else f1
        s0, f0, s1 = s1, f1, min(s1 - step, log_tau_max)
    if abs(gap(s1)) > 1e-6:
        raise LmscaleError(
            f"no tokens_per_text reproduces {tokens_per_param:g} tokens/parameter at {C_flops:.3g} FLOPs "
            f"with {sigma:g} parameters/concept (the budget is too small for the theory's bracket)"
        )
    return float(np.exp(s1))
