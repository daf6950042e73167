"""Extrapolation check: fit without the largest models (or budgets), predict them, report ARE.

ARE = |L-hat - L| / L per held-out point (Choshen et al. 2024's absolute relative error), and its
mean over the held-out points. A law that interpolates well can still extrapolate badly; this is
the number that says how far to trust a prediction for a bigger model.

    ex = extrapolation_check(ChinchillaLaw(), data, holdout="largest")   # a free function, like sklearn's cross_validate
    ex.mean_are, ex.rows, summary(ex)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.data import ScalingData
from lmscale.laws.summary import fmt

if TYPE_CHECKING:
    from lmscale.laws.estimators import ScalingLaw

HOLDOUTS = ("largest", "largest-compute")


def group_budgets(C: np.ndarray, rtol: float = 0.1, budget: np.ndarray | None = None) -> np.ndarray:
    """Integer budget id per row: rows whose compute agrees within `rtol` (relative) share a budget.

    With a `budget` column (the requested budget of an IsoFLOP sweep) rows are grouped by it;
    otherwise sorted log C values are split wherever consecutive values differ by more than rtol,
    so nearly equal budgets (C from exact FLOP counts of different shapes) are merged.
    """
    C = np.asarray(C, float)
    if budget is not None and np.isfinite(budget).all():
        _, ids = np.unique(np.round(np.log(budget), 9), return_inverse=True)
        return ids.ravel()
    order = np.argsort(C)
    lc = np.log(C[order])
    breaks = np.concatenate([[0], np.cumsum(np.diff(lc) > np.log1p(rtol))])
    ids = np.empty(len(C), int)
    ids[order] = breaks
    return ids


def holdout_mask(data: ScalingData, holdout: str, scale_variable: str = "N", rtol: float = 0.1) -> tuple[np.ndarray, str]:
    """(test mask, description) for holdout 'largest' (all rows at the largest size) or 'largest-compute'."""
    if holdout == "largest":
        v = getattr(data, scale_variable)
        test = v >= v.max() * (1 - 1e-9)
        unit = {"N": "params", "D": "tokens", "C": "FLOPs"}.get(scale_variable, "")
        return test, f"largest {scale_variable} ({fmt(v.max())} {unit}): {int(test.sum())} point(s)"
    if holdout == "largest-compute":
        ids = group_budgets(data.C, rtol, data.budget)
        top = ids[np.argmax(data.C)]
        test = ids == top
        return test, f"largest compute budget (~{fmt(np.exp(np.log(data.C[test]).mean()))} FLOPs): {int(test.sum())} point(s)"
    raise LmscaleError(f"holdout={holdout!r}; expected one of {', '.join(HOLDOUTS)}")


@dataclass
class ExtrapolationResult:
    """Held-out prediction errors of a law refitted without the held-out rows."""

    holdout: str
    description: str
    n_train: int
    n_test: int
    mean_are: float
    max_are: float
    rows: list[dict[str, float]]
    train_params: dict[str, float]
    train_objective: float

    def summary(self) -> str:
        from lmscale.laws.summary import extrapolation_summary

        return extrapolation_summary(self)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        from lmscale.laws.summary import extrapolation_to_dict

        return extrapolation_to_dict(self)


def are(predicted: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Absolute relative error |L-hat - L| / L."""
    return np.abs(np.asarray(predicted, float) - np.asarray(observed, float)) / np.asarray(observed, float)


def extrapolation_check(est: "ScalingLaw", data: ScalingData, holdout: str = "largest") -> ExtrapolationResult:
    """Fit an unfitted copy of `est` (`est.clone()`) without the held-out rows and predict them.

    holdout: 'largest' (every row at the largest size, N for joint laws) or 'largest-compute' (the
    largest compute budget). Raises LmscaleError with the reason when the check cannot be made
    (too few points or a single value of a variable left for the fit).
    """
    if holdout not in HOLDOUTS:
        raise LmscaleError(f"holdout={holdout!r}; expected one of {', '.join(HOLDOUTS)}")
    if not (hasattr(est, "clone") and hasattr(est, "_check_params") and hasattr(est, "predict")):
        raise LmscaleError(f"{type(est).__name__} has no loss prediction; the extrapolation check needs an Approach-3 "
                           "law (ChinchillaLaw, KaplanLaw, KaplanJointLaw, DataConstrainedLaw)")
    if not isinstance(data, ScalingData):
        raise LmscaleError(f"data of type {type(data).__name__}; expected a ScalingData "
                           "(ScalingData.from_arrays(N=..., D=..., loss=...))")
    sub = est.clone()
    form = sub._check_params()
    test, desc = holdout_mask(data, holdout, form.scale_variable)
    train = ~test
    need = form.min_points
    n_train = int(train.sum())
    if not test.any() or n_train < need:
        raise LmscaleError(f"no extrapolation check: holding out {desc} leaves {n_train} points, the law needs {need}")
    for v in form.variables:
        col = getattr(data, v if not (v == "N" and getattr(est, "nonembedding", False)) else "N_nonembed")
        if col is not None and len(np.unique(col[train])) < 2 and v != "U":
            raise LmscaleError(f"no extrapolation check: after holding out {desc}, {v} takes a single value")
    sub.fit(data.subset(train))
    pred = sub.predict(data.subset(test))
    e = are(pred, data.loss[test])
    rows = [{"N": float(n), "D": float(d), "C": float(c), "loss": float(y), "predicted": float(p), "are": float(a)}
            for n, d, c, y, p, a in zip(data.N[test], data.D[test], data.C[test], data.loss[test], pred, e)]
    return ExtrapolationResult(holdout=holdout, description=desc, n_train=n_train, n_test=int(test.sum()),
                               mean_are=float(e.mean()), max_are=float(e.max()), rows=rows,
                               train_params={k: float(v) for k, v in sub.params_.items()},
                               train_objective=float(sub.objective_))
