"""Extrapolation check: fit without the largest models (or budgets), predict them, report ARE.

ARE = |L-hat - L| / L per held-out point (Choshen et al. 2024's absolute relative error), and its
mean over the held-out points. A law that interpolates well can still extrapolate badly; this is
the number that says how far to trust a prediction for a bigger model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.data import ScalingData
from lmscale.laws.tables import fmt, format_table, jsonable

if TYPE_CHECKING:
    from lmscale.laws.estimators import ScalingLaw

HOLDOUTS = ("largest", "largest-compute", "none")


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
        head = (f"extrapolation check (hold out {self.description}; fit on {self.n_train}): "
                f"mean ARE {self.mean_are:.3%}, max {self.max_are:.3%}")
        rows = [[fmt(r["N"]), fmt(r["D"]), fmt(r["C"]), fmt(r["loss"]), fmt(r["predicted"]), f"{r['are']:.3%}"]
                for r in self.rows]
        return format_table(["N (params)", "D (tokens)", "C (FLOPs)", "loss", "predicted", "ARE"], rows, title=head)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"holdout": self.holdout, "description": self.description, "n_train": self.n_train,
                         "n_test": self.n_test, "mean_are": self.mean_are, "max_are": self.max_are,
                         "train_params": self.train_params, "train_objective": self.train_objective,
                         "points": self.rows})


def are(predicted: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Absolute relative error |L-hat - L| / L."""
    return np.abs(np.asarray(predicted, float) - np.asarray(observed, float)) / np.asarray(observed, float)


def extrapolation_check(law: "ScalingLaw", data: ScalingData, holdout: str = "largest") -> tuple[ExtrapolationResult | None, str]:
    """Refit a copy of `law` without the held-out rows; (result, note). result is None when data are too few."""
    test, desc = holdout_mask(data, holdout, law.form.scale_variable)
    train = ~test
    need = law.form.min_points
    n_train = int(train.sum())
    if not test.any() or n_train < need:
        return None, f"no extrapolation check: holding out {desc} leaves {n_train} points, the law needs {need}"
    for v in law.form.variables:
        col = getattr(data, v if not (v == "N" and getattr(law, "nonembedding", False)) else "N_nonembed")
        if col is not None and len(np.unique(col[train])) < 2 and v != "U":
            return None, f"no extrapolation check: after holding out {desc}, {v} takes a single value"
    sub = law.clone(holdout="none").fit(data.subset(train))
    pred = sub.predict(data.subset(test))
    e = are(pred, data.loss[test])
    rows = [{"N": float(n), "D": float(d), "C": float(c), "loss": float(y), "predicted": float(p), "are": float(a)}
            for n, d, c, y, p, a in zip(data.N[test], data.D[test], data.C[test], data.loss[test], pred, e)]
    res = ExtrapolationResult(holdout=holdout, description=desc, n_train=n_train, n_test=int(test.sum()),
                              mean_are=float(e.mean()), max_are=float(e.max()), rows=rows,
                              train_params={k: float(v) for k, v in sub.params_.items()},
                              train_objective=float(sub.objective_))
    return res, ""
