"""Compare two fitted laws (e.g. two model families): where do their compute-optimal losses cross?

Each law's compute-optimal loss L*(C) (loss at N_opt, D_opt for compute C = 6ND) is evaluated on
a log-spaced grid of C. A crossing is a sign change of L*_a - L*_b, located by linear
interpolation in log C. The bootstrap pairs independent resamples of the two laws and reports
the fraction of pairs that cross in the range and the percentile interval of the first crossing
among those. When the point estimates do not cross, the result says so and which family is
lower throughout, rather than extrapolating a crossing outside the range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.data import ScalingData
from lmscale.laws.bootstrap import bootstrap
from lmscale.laws.estimators import ScalingLaw, make_law
from lmscale.laws.summary import fmt


def crossings(C: np.ndarray, diff: np.ndarray) -> np.ndarray:
    """C values (FLOPs) where `diff` (rows: curves over C) changes sign; NaN-padded (rows, max crossings).

    For a 1-D `diff` a 1-D array of all crossings is returned.
    """
    one = diff.ndim == 1
    d = np.atleast_2d(diff)
    lc = np.log(C)
    s = np.sign(d)
    change = (s[:, :-1] * s[:, 1:] < 0) & np.isfinite(d[:, :-1]) & np.isfinite(d[:, 1:])
    rows = []
    for r in range(len(d)):
        idx = np.flatnonzero(change[r])
        t = d[r, idx] / (d[r, idx] - d[r, idx + 1])
        rows.append(np.exp(lc[idx] + t * (lc[idx + 1] - lc[idx])))
    if one:
        return rows[0]
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), max(width, 1)), np.nan)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


@dataclass
class CompareResult:
    """Where the compute-optimal loss curves of two laws cross (if they do), with a bootstrap interval."""

    law: str
    label_a: str
    label_b: str
    C_range: tuple[float, float]
    crossings: list[float]
    lower_at_start: str
    lower_at_end: str
    message: str
    C: np.ndarray = field(repr=False)
    loss_a: np.ndarray = field(repr=False)
    loss_b: np.ndarray = field(repr=False)
    n_pairs: int = 0
    fraction_crossing: float | None = None
    interval: tuple[float, float] | None = None
    confidence: float | None = None

    @property
    def crossing(self) -> float | None:
        return self.crossings[0] if self.crossings else None

    def summary(self) -> str:
        from lmscale.laws.summary import compare_summary

        return compare_summary(self)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        from lmscale.laws.summary import compare_to_dict

        return compare_to_dict(self)


def compare(law_a: ScalingLaw, law_b: ScalingLaw, *, labels: tuple[str, str] = ("a", "b"),
            C_range: tuple[float, float] | None = None, n_grid: int = 400, n_resamples: int = 200,
            seed: int | None = 0, confidence: float = 0.95) -> CompareResult:
    """Crossing of two fitted laws' compute-optimal loss curves; `n_resamples=0` skips the bootstrap.

    The default range runs from the smallest compute in either data set to 1000x the largest.
    """
    for law in (law_a, law_b):
        law._require_fitted()
        if not law.has_allocation():
            raise LmscaleError(f"the {law.form_.name} law has no compute-optimal frontier; compare needs a joint law of N and D")
    if C_range is None:
        lo = min(np.nanmin(law_a.data_.C), np.nanmin(law_b.data_.C))
        hi = 1e3 * max(np.nanmax(law_a.data_.C), np.nanmax(law_b.data_.C))
        C_range = (float(lo), float(hi))
    if not (0 < C_range[0] < C_range[1]):
        raise LmscaleError(f"compute range {C_range}; expected 0 < C_min < C_max (FLOPs)")
    C = np.geomspace(C_range[0], C_range[1], n_grid)
    La = np.asarray(law_a._allocation(law_a.theta_, C)["loss_opt"], float)
    Lb = np.asarray(law_b._allocation(law_b.theta_, C)["loss_opt"], float)
    xs = [float(c) for c in crossings(C, La - Lb)]
    name = lambda d: labels[0] if d < 0 else labels[1]  # noqa: E731  lower loss is better
    first, last = name(La[0] - Lb[0]), name(La[-1] - Lb[-1])
    if xs:
        msg = (f"curves cross at C = {', '.join(fmt(x) for x in xs)} FLOPs: {first} has the lower compute-optimal loss "
               f"below, {last} above")
    else:
        msg = f"no crossing in range: {first} has the lower compute-optimal loss throughout"
    res = CompareResult(law=law_a.form_.name, label_a=labels[0], label_b=labels[1], C_range=C_range, crossings=xs,
                        lower_at_start=first, lower_at_end=last, message=msg, C=C, loss_a=La, loss_b=Lb)
    if n_resamples:
        ba = bootstrap(law_a, n_resamples, seed=seed)
        bb = bootstrap(law_b, n_resamples, seed=None if seed is None else seed + 1)
        ok = ba.converged & bb.converged
        ta, tb = ba.theta[ok], bb.theta[ok]
        sa = np.asarray(law_a._allocation(ta[:, None, :], C[None, :])["loss_opt"], float)
        sb = np.asarray(law_b._allocation(tb[:, None, :], C[None, :])["loss_opt"], float)
        first_x = crossings(C, sa - sb)[:, 0]
        crossed = np.isfinite(first_x)
        res.n_pairs = int(ok.sum())
        res.fraction_crossing = float(crossed.mean()) if res.n_pairs else None
        res.confidence = confidence
        if crossed.sum() >= 2:
            lo, hi = np.exp(np.percentile(np.log(first_x[crossed]), [50 * (1 - confidence), 50 * (1 + confidence)]))
            res.interval = (float(lo), float(hi))
    return res


def compare_families(data: ScalingData, family_a: str, family_b: str, *, law: str = "chinchilla",
                     law_options: dict | None = None, **kw) -> CompareResult:
    """Fit `law` to each family of `data` and compare their compute-optimal loss curves (see `compare`)."""
    opts = dict(law_options or {})
    la = make_law(law, **opts).fit(data.select_family(family_a))
    lb = make_law(law, **opts).fit(data.select_family(family_b))
    return compare(la, lb, labels=(family_a, family_b), **kw)
