"""Compute-optimal allocation under C = 6 N D (FLOPs), closed form for Chinchilla, numeric otherwise.

For L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, Eq. 4):
    N_opt = G (C/6)^a,  D_opt = G^-1 (C/6)^b,  G = (alpha A / (beta B))^(1/(alpha+beta)),
    a = beta/(alpha+beta),  b = alpha/(alpha+beta),  so 6 N_opt D_opt = C exactly.
Other joint forms are minimised along the iso-compute line numerically (a coarse grid in log N,
then golden-section search), vectorised over compute values and bootstrap parameter samples.

`FrontierResult` holds the frontier over a range of C (point estimate, plus the bootstrap median
and percentile band when a `BootstrapResult` is given): arrays for plotting, a CSV writer, JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from lmscale.fileio import atomic_write_text
from lmscale.errors import LmscaleError

Params = dict[str, np.ndarray]


def default_compute(data) -> float | None:
    """The default compute (FLOPs) derived values are reported at: 10x the largest compute in the data
    (None when the data have no compute values)."""
    C = np.asarray(data.C, float)
    C = C[np.isfinite(C)]
    return float(10 * C.max()) if len(C) else None


def check_compute(C, name: str = "compute"):
    """A positive, finite compute: a float for a scalar, a 1-D float array for a sequence; else LmscaleError."""
    try:
        arr = np.asarray(C, float)
    except (TypeError, ValueError):
        raise LmscaleError(f"{name}={C!r}; expected a positive number of FLOPs or a sequence of them") from None
    if arr.ndim > 1 or arr.size == 0 or not (np.isfinite(arr) & (arr > 0)).all():
        raise LmscaleError(f"{name}={C!r}; expected a positive number of FLOPs (such as 1e21) or a 1-D sequence of them")
    return float(arr) if arr.ndim == 0 else arr


def compute_array(C) -> np.ndarray:
    """Compute values (FLOPs) as a float array of any shape (`optimal_allocation`'s argument); LmscaleError
    unless all are positive and finite. `check_compute` is the scalar-or-1-D form the bootstrap takes."""
    try:
        arr = np.asarray(C, float)
    except (TypeError, ValueError):
        arr = np.array(np.nan)
    if arr.size == 0 or not (np.isfinite(arr) & (arr > 0)).all():
        raise LmscaleError(f"C={C!r}; expected positive compute in FLOPs (a number such as 1e21, or an array of them)")
    return arr


def chinchilla_exponents(p: Params) -> dict[str, np.ndarray]:
    """a, b and G of the Chinchilla frontier (arrays broadcast like the parameters)."""
    A, B, alpha, beta = (np.asarray(p[k], float) for k in ("A", "B", "alpha", "beta"))
    with np.errstate(all="ignore"):
        s = alpha + beta
        G = (alpha * A / (beta * B)) ** (1.0 / s)
        return {"a": beta / s, "b": alpha / s, "G": G}


def chinchilla_loss(p: Params, N, D) -> np.ndarray:
    with np.errstate(all="ignore"):
        return p["E"] + p["A"] / np.asarray(N, float) ** p["alpha"] + p["B"] / np.asarray(D, float) ** p["beta"]


def chinchilla_allocation(p: Params, C) -> dict[str, np.ndarray]:
    """N_opt (params), D_opt (tokens), tokens/param and loss at the optimum (nats/token) for compute C (FLOPs)."""
    ex = chinchilla_exponents(p)
    C = np.asarray(C, float)
    with np.errstate(all="ignore"):
        N = ex["G"] * (C / 6.0) ** ex["a"]
        D = (C / 6.0) ** ex["b"] / ex["G"]
        return {"N_opt": N, "D_opt": D, "tokens_per_param": D / N, "loss_opt": chinchilla_loss(p, N, D)}


def numeric_allocation(loss: Callable[[np.ndarray, np.ndarray], np.ndarray], C, *, span: float = 25.0,
                       n_grid: int = 201, iters: int = 80) -> dict[str, np.ndarray]:
    """Minimise loss(N, D = C/(6N)) over log N for every element of C (and of the parameters inside `loss`).

    `loss(N, D)` must broadcast; C may have any shape that broadcasts with the parameters. The
    search covers log N within +-span of the 'square' point N = D = sqrt(C/6).
    """
    C = np.asarray(C, float)
    centre = 0.5 * np.log(C / 6.0)

    def f(x):
        N = np.exp(x)
        with np.errstate(all="ignore"):
            v = loss(N, C / (6.0 * N))
        return np.where(np.isfinite(v), v, np.inf)

    offs = np.linspace(-span, span, n_grid)
    step = offs[1] - offs[0]
    vals = np.stack([f(centre + o) for o in offs])
    k = np.argmin(vals, axis=0)
    lo = centre + offs[np.clip(k - 1, 0, n_grid - 1)]
    hi = centre + offs[np.clip(k + 1, 0, n_grid - 1)]
    hi = np.where(hi <= lo, lo + step, hi)
    gr = (np.sqrt(5.0) - 1.0) / 2.0
    x1, x2 = hi - gr * (hi - lo), lo + gr * (hi - lo)
    f1, f2 = f(x1), f(x2)
    for _ in range(iters):
        left = f1 < f2
        hi = np.where(left, x2, hi)
        lo = np.where(left, lo, x1)
        x1n = np.where(left, hi - gr * (hi - lo), x2)
        x2n = np.where(left, x1, lo + gr * (hi - lo))
        f1n = np.where(left, f(x1n), f2)
        f2n = np.where(left, f1, f(x2n))
        x1, x2, f1, f2 = x1n, x2n, f1n, f2n
    x = 0.5 * (lo + hi)
    N = np.exp(x)
    D = C / (6.0 * N)
    L = f(x)
    edge = (k == 0) | (k == n_grid - 1)  # no interior minimum within the search span
    N, D, L = (np.where(edge, np.nan, v) for v in (N, D, L))
    return {"N_opt": N, "D_opt": D, "tokens_per_param": D / N, "loss_opt": np.where(np.isfinite(L), L, np.nan)}


def local_exponents(alloc: Callable[[np.ndarray], dict[str, np.ndarray]], C) -> dict[str, np.ndarray]:
    """d log N_opt / d log C and d log D_opt / d log C at C (central differences over a factor e)."""
    C = np.asarray(C, float)
    up, dn = alloc(C * np.e ** 0.5), alloc(C * np.e ** -0.5)
    return {"a": np.log(up["N_opt"] / dn["N_opt"]), "b": np.log(up["D_opt"] / dn["D_opt"])}


@dataclass
class FrontierResult:
    """Compute-optimal N, D, tokens/param and loss over compute values C (FLOPs, C = 6ND).

    `point` holds the fitted law's values; `bands[name] = (low, median, high)` the bootstrap
    percentile band (empty without a bootstrap).
    """

    law: str
    C: np.ndarray
    point: dict[str, np.ndarray]
    bands: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    confidence: float | None = None
    n_resamples: int | None = None

    QUANTITIES = ("N_opt", "D_opt", "tokens_per_param", "loss_opt")

    def rows(self) -> list[dict[str, float]]:
        out = []
        for i, c in enumerate(self.C):
            r = {"C": float(c)}
            for q in self.QUANTITIES:
                r[q] = float(self.point[q][i])
                if q in self.bands:
                    lo, med, hi = self.bands[q]
                    r[f"{q}_median"], r[f"{q}_low"], r[f"{q}_high"] = float(med[i]), float(lo[i]), float(hi[i])
            out.append(r)
        return out

    def to_dict(self) -> dict:
        from lmscale.laws.summary import frontier_to_dict

        return frontier_to_dict(self)

    def to_csv(self, path) -> None:
        rows = self.rows()
        cols = list(rows[0]) if rows else ["C"]
        lines = [",".join(cols)] + [",".join(repr(r[c]) for c in cols) for r in rows]
        atomic_write_text(path, "\n".join(lines) + "\n")

    def summary(self) -> str:
        from lmscale.laws.summary import frontier_summary

        return frontier_summary(self)

    def __str__(self) -> str:
        return self.summary()
