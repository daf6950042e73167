"""The quantization model of neural scaling (Michaud, Liu, Girit, Tegmark 2023) as a second lens.

Knowledge comes in discrete quanta k = 1, 2, ..., used with Zipf frequencies
p_k = k^-(alpha+1) / zeta(alpha+1). An unlearned quantum costs `loss_per_quantum` nats on the
fraction p_k of tokens that need it, and learning is sharp (each quantum is learned or not). So a
model that has learned the first n quanta has

    L_n - L_inf = b * sum_{k>n} p_k = b * zeta(alpha+1, n+1) / zeta(alpha+1)   (Hurwitz zeta, exact)
                ~ b n^-alpha / (alpha zeta(alpha+1)).

- Parameters: n proportional to N (a fixed number of parameters per quantum): L - L_inf ~ N^-alpha.
- Data (multi-epoch): quantum k is learned once it has been seen often enough, D p_k >= tau, so
  n(D) = floor((D / (tau zeta(alpha+1)))^(1/(alpha+1))) and L - L_inf ~ D^-(alpha/(alpha+1)).
- Steps: the same with the number of examples S * batch in place of D.

`fit_exponent` reads a power-law exponent off any computed (or measured) curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmscale.errors import LmscaleError


def _check_alpha(alpha: float) -> float:
    a = float(alpha)
    if not np.isfinite(a) or a <= 0:
        raise LmscaleError(f"alpha={alpha!r}; expected a positive Zipf tail exponent (p_k ~ k^-(alpha+1)), e.g. 0.4")
    return a


def zipf_frequencies(k, alpha: float) -> np.ndarray:
    """p_k = k^-(alpha+1) / zeta(alpha+1) for quanta k >= 1 (normalised over infinitely many quanta)."""
    from scipy.special import zeta

    a = _check_alpha(alpha)
    k = np.asarray(k, float)
    if np.any(k < 1):
        raise LmscaleError("quantum index k must be >= 1")
    return k ** -(a + 1) / zeta(a + 1)


def tail_mass(n, alpha: float) -> np.ndarray:
    """sum_{k>n} p_k = zeta(alpha+1, n+1) / zeta(alpha+1): the use frequency of the unlearned quanta."""
    from scipy.special import zeta

    a = _check_alpha(alpha)
    n = np.floor(np.asarray(n, float))
    if np.any(n < 0):
        raise LmscaleError("number of learned quanta n must be >= 0")
    return zeta(a + 1, n + 1) / zeta(a + 1)


def loss_after_quanta(n, alpha: float, loss_per_quantum: float = np.log(2), loss_inf: float = 0.0) -> np.ndarray:
    """L_n = L_inf + b * tail_mass(n) (nats/token); b = ln 2 for binary tasks such as sparse parity."""
    return loss_inf + loss_per_quantum * tail_mass(n, alpha)


def quanta_from_params(N, params_per_quantum: float = 1.0) -> np.ndarray:
    """n = floor(N / params_per_quantum) quanta fit in N parameters."""
    if params_per_quantum <= 0:
        raise LmscaleError(f"params_per_quantum={params_per_quantum}; expected a positive number")
    return np.floor(np.asarray(N, float) / params_per_quantum)


def quanta_from_data(D, alpha: float, tau: float = 1.0) -> np.ndarray:
    """n(D) = #{k : D p_k >= tau} = floor((D / (tau zeta(alpha+1)))^(1/(alpha+1))) (D examples or tokens)."""
    from scipy.special import zeta

    a = _check_alpha(alpha)
    if tau <= 0:
        raise LmscaleError(f"tau={tau}; expected a positive number of uses needed to learn a quantum")
    D = np.asarray(D, float)
    # A relative nudge keeps k exactly at the threshold (D p_k == tau) on the learned side after rounding.
    return np.floor((D / (tau * zeta(a + 1))) ** (1.0 / (a + 1)) * (1 + 1e-12))


def loss_vs_params(N, alpha: float, params_per_quantum: float = 1.0, loss_per_quantum: float = np.log(2),
                   loss_inf: float = 0.0) -> np.ndarray:
    """L(N): the first N/params_per_quantum quanta learned; L - L_inf ~ N^-alpha."""
    return loss_after_quanta(quanta_from_params(N, params_per_quantum), alpha, loss_per_quantum, loss_inf)


def loss_vs_data(D, alpha: float, tau: float = 1.0, loss_per_quantum: float = np.log(2),
                 loss_inf: float = 0.0) -> np.ndarray:
    """L(D): quanta with D p_k >= tau learned; L - L_inf ~ D^-(alpha/(alpha+1)). Also L(S) with D = S * batch."""
    return loss_after_quanta(quanta_from_data(D, alpha, tau), alpha, loss_per_quantum, loss_inf)


def quantum_thresholds(k, alpha: float, *, params_per_quantum: float = 1.0, tau: float = 1.0) -> dict[str, np.ndarray]:
    """Where quantum k switches on: N_k = k * params_per_quantum (parameters), D_k = tau / p_k (data)."""
    k = np.asarray(k, float)
    return {"N": k * params_per_quantum, "D": tau / zipf_frequencies(k, alpha)}


def per_quantum_losses(x, k, alpha: float, axis: str = "N", *, params_per_quantum: float = 1.0, tau: float = 1.0,
                       loss_per_quantum: float = np.log(2)) -> np.ndarray:
    """(len(k), len(x)) loss on the tokens of quantum k: b before its threshold, 0 after (the sharp steps).

    Summing row k weighted by p_k gives L(x) - L_inf.
    """
    if axis not in ("N", "D"):
        raise LmscaleError(f"axis={axis!r}; expected 'N' (parameters) or 'D' (data or steps)")
    th = quantum_thresholds(k, alpha, params_per_quantum=params_per_quantum, tau=tau)[axis]
    x = np.asarray(x, float)
    return np.where(x[None, :] >= np.atleast_1d(th)[:, None] * (1 - 1e-12), 0.0, loss_per_quantum)


def predicted_exponents(alpha: float) -> dict[str, float]:
    """Loss exponents of the quantization model: N -> alpha, D and steps -> alpha/(alpha+1)."""
    a = _check_alpha(alpha)
    return {"N": a, "D": a / (a + 1), "S": a / (a + 1)}


def zipf_alpha_from_exponent(exponent: float, axis: str = "N") -> float:
    """Invert `predicted_exponents`: the alpha implied by a measured parameter (or data) exponent."""
    e = float(exponent)
    if axis == "N":
        return _check_alpha(e)
    if axis in ("D", "S"):
        if not 0 < e < 1:
            raise LmscaleError(f"data exponent {exponent}; expected 0 < exponent < 1 (alpha/(alpha+1))")
        return e / (1 - e)
    raise LmscaleError(f"axis={axis!r}; expected 'N', 'D' or 'S'")


@dataclass(frozen=True)
class ExponentFit:
    """L - L_inf = A x^-exponent fitted by least squares in log-log space."""

    exponent: float
    coefficient: float
    n_points: int
    rms_log_residual: float


def fit_exponent(x, loss, loss_inf: float = 0.0) -> ExponentFit:
    """Fit log(loss - loss_inf) = log A - exponent log x (points with loss <= loss_inf are dropped)."""
    x, y = np.asarray(x, float), np.asarray(loss, float) - loss_inf
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if ok.sum() < 2:
        raise LmscaleError(f"{int(ok.sum())} usable points; expected at least 2 with x > 0 and loss > loss_inf")
    lx, ly = np.log(x[ok]), np.log(y[ok])
    slope, icpt = np.polyfit(lx, ly, 1)
    res = ly - (icpt + slope * lx)
    return ExponentFit(exponent=float(-slope), coefficient=float(np.exp(icpt)), n_points=int(ok.sum()),
                       rms_log_residual=float(np.sqrt(np.mean(res**2))))


__all__ = ["zipf_frequencies", "tail_mass", "loss_after_quanta", "quanta_from_params", "quanta_from_data",
           "loss_vs_params", "loss_vs_data", "quantum_thresholds", "per_quantum_losses", "predicted_exponents",
           "zipf_alpha_from_exponent", "ExponentFit", "fit_exponent"]
