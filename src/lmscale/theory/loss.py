"""Loss side of the Nayak–Varshney model: training error, the excess-entropy bound, Chinchilla's excess loss.

A text is "unexplained" when it still holds >= 2 unlearned concepts. With R concepts of which a
fraction delta stay unlearned and edge probability p = d_t/R, the number of unlearned concepts in
a text is Bin(R, p delta), so

    P_e,train = P(Bin(R, p delta) >= 2) = 1 - (1 - p delta)^R - R p delta (1 - p delta)^(R-1)
              ~ (d_t delta)^2 / 2 for small delta,

and Pinsker gives the excess-entropy lower bound KL >= P_e,train^2 / 2 (nats/token). The code's
"simplified" form drops a -p delta term; here the exact tail is evaluated with the regularised
incomplete beta function (P(Bin(R, q) >= 2) = I_q(2, R - 1)), which keeps full relative accuracy
where 1 - ... - ... would cancel to zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lmscale.errors import LmscaleError

# Hoffmann et al. 2022 (Approach 3): L(N, D) = E + A/N^alpha + B/D^beta; the excess drops E = 1.69.
CHINCHILLA_A = 406.4
CHINCHILLA_B = 410.7
CHINCHILLA_ALPHA = 0.34
CHINCHILLA_BETA = 0.28


def train_error_probability(R, delta, d_t=6.0) -> np.ndarray:
    """P(a text has >= 2 unlearned concepts) for R concepts, unlearned fraction delta, p = d_t/R."""
    from scipy.special import betainc

    R, delta, d_t = (np.asarray(v, dtype=np.float64) for v in (R, delta, d_t))
    if np.any(R < 2) or np.any(R < d_t):
        raise LmscaleError(f"R={R!r} concepts is invalid: expected R >= max(2, d_t)")
    if np.any((delta < 0) | (delta > 1)) or not np.all(np.isfinite(delta)):
        raise LmscaleError(f"delta={delta!r} is invalid: expected an unlearned fraction in [0, 1]")
    q = d_t / R * delta
    return betainc(2.0, R - 1.0, q)


def excess_entropy_bound(P_e) -> np.ndarray:
    """Pinsker lower bound on the excess cross-entropy (nats/token): P_e^2 / 2."""
    return 0.5 * np.asarray(P_e, dtype=np.float64) ** 2


def chinchilla_excess_loss(N, D, A: float = CHINCHILLA_A, B: float = CHINCHILLA_B,
                           alpha: float = CHINCHILLA_ALPHA, beta: float = CHINCHILLA_BETA) -> np.ndarray:
    """A/N^alpha + B/D^beta (nats/token) for N parameters and D tokens (Hoffmann et al. 2022)."""
    return A / np.asarray(N, dtype=np.float64) ** alpha + B / np.asarray(D, dtype=np.float64) ** beta


@dataclass(frozen=True)
class LossBound:
    """Along a compute-optimal sweep: N* (parameters), D* (tokens), P_e,train, the bound and Chinchilla's excess."""

    N_star: np.ndarray
    D_star: np.ndarray
    P_e_train: np.ndarray
    bound: np.ndarray
    chinchilla_excess: np.ndarray

    def slope(self, where=None) -> float:
        """Least-squares slope of log bound vs log N* over `where` (default: every finite, positive entry)."""
        return loglog_slope(self.N_star, self.bound, where)

    def chinchilla_slope(self, where=None) -> float:
        return loglog_slope(self.N_star, self.chinchilla_excess, where)


def loglog_slope(x, y, where=None) -> float:
    """Slope of the least-squares line through (log x, log y) over the selected, positive entries."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    sel = np.ones(x.shape, dtype=bool) if where is None else np.zeros(x.shape, dtype=bool)
    if where is not None:
        sel[where] = True
    sel &= np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    if sel.sum() < 2:
        raise LmscaleError("need at least 2 positive points to fit a log-log slope")
    return float(np.polyfit(np.log(x[sel]), np.log(y[sel]), 1)[0])


def loss_bound(sweep) -> LossBound:
    """The excess-entropy bound along an `OptimumSweep` (from `compute_optimal`)."""
    p_e = train_error_probability(sweep.R_star, sweep.delta, sweep.params.d_t)
    return LossBound(
        N_star=sweep.N_star, D_star=sweep.D_star, P_e_train=p_e, bound=excess_entropy_bound(p_e),
        chinchilla_excess=chinchilla_excess_loss(sweep.N_star, sweep.D_star),
    )
