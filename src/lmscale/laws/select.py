"""Choosing a functional form honestly: rank candidate laws by how well they extrapolate.

In-sample fit always favours the more flexible form; what a scaling law is for is predicting
runs bigger than the ones it was fitted on. `rank_laws` fits each candidate form, then refits it
without the largest models (or the largest compute budget) and ranks the forms by the mean
absolute relative error on those held-out points (`lmscale.laws.extrapolation.extrapolation_check`),
reporting each form's held-out mean and max ARE, in-sample objective and number of parameters.

    ranking = rank_laws(data)                          # chinchilla, chinchilla-shared, kaplan-joint (+ data-constrained)
    print(ranking.summary()); ranking.best.law         # the chosen law, fitted on all the data

Ties: held-out errors are themselves noisy, so forms whose mean ARE is within `tie_rtol`
(relative, default 10%) or `tie_atol` (absolute) of the best count as tied, and the tie goes to
the form with fewer parameters (parsimony), then to the lower held-out error. The default
`tie_atol` is the noise level of a mean over the held-out points, sigma/sqrt(n_test), with sigma
the robust scale (1.4826 MAD) of the best form's in-sample log-loss residuals (about the relative
noise of one loss): differences below it cannot be told from seed noise. A form that cannot be fitted or checked (a missing column, too few points)
is listed last with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.data import ScalingData
from lmscale.laws.extrapolation import HOLDOUTS, ExtrapolationResult, extrapolation_check
from lmscale.laws.summary import format_table, jsonable

DEFAULT_CANDIDATES = ("chinchilla", "chinchilla-shared", "kaplan-joint", "data-constrained")


def default_candidates(data: ScalingData) -> tuple[str, ...]:
    """The joint laws of N and D worth comparing; data-constrained only when the data have a U column."""
    return tuple(c for c in DEFAULT_CANDIDATES if c != "data-constrained" or data.U is not None)


@dataclass
class RankedLaw:
    """One candidate: its fit on all the data, its extrapolation check, and why it is unranked (if so)."""

    name: str
    law: Any = None
    extrapolation: ExtrapolationResult | None = None
    n_params: int | None = None
    objective: float = math.nan
    mean_are: float = math.nan
    max_are: float = math.nan
    note: str = ""
    rank: int | None = None

    @property
    def ranked(self) -> bool:
        return self.rank is not None

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"rank": self.rank, "law": self.name, "held_out_mean_are": self.mean_are,
                         "held_out_max_are": self.max_are, "objective": self.objective, "n_params": self.n_params,
                         "params": getattr(self.law, "params_", None), "note": self.note or None})


@dataclass
class LawRanking:
    """Candidates in rank order (ranked ones first); `best` is the chosen one."""

    holdout: str
    entries: list[RankedLaw]
    tie_rtol: float
    tie_atol: float
    description: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def best(self) -> RankedLaw:
        if not self.entries or not self.entries[0].ranked:
            reasons = "; ".join(f"{e.name}: {e.note}" for e in self.entries)
            raise LmscaleError(f"no candidate law could be ranked by extrapolation ({reasons})")
        return self.entries[0]

    def __getitem__(self, name: str) -> RankedLaw:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def table(self) -> tuple[list[str], list[list[str]]]:
        head = ["rank", "law", "held-out mean ARE", "held-out max ARE", "in-sample objective", "params", "note"]
        rows = [[str(e.rank) if e.ranked else "-", e.name,
                 f"{e.mean_are:.3%}" if math.isfinite(e.mean_are) else "-",
                 f"{e.max_are:.3%}" if math.isfinite(e.max_are) else "-",
                 f"{e.objective:.6e}" if math.isfinite(e.objective) else "-",
                 "-" if e.n_params is None else str(e.n_params), e.note] for e in self.entries]
        return head, rows

    def title(self) -> str:
        return (f"laws ranked by extrapolation (hold out {self.description or self.holdout}; ties within "
                f"{self.tie_rtol:.0%} or {self.tie_atol:.2%} of the best mean ARE go to fewer parameters)")

    def summary(self) -> str:
        head, rows = self.table()
        lines = [format_table(head, rows, title=self.title())]
        if self.entries and self.entries[0].ranked:
            lines.append(f"chosen: {self.entries[0].name}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"holdout": self.holdout, "description": self.description,
                         "criterion": "held-out mean ARE (refit without the held-out rows)",
                         "tie_rtol": self.tie_rtol, "tie_atol": self.tie_atol,
                         "chosen": self.entries[0].name if self.entries and self.entries[0].ranked else None,
                         "ranking": [e.to_dict() for e in self.entries], "notes": self.notes})


def _noise_atol(entries: list[RankedLaw], data: ScalingData) -> float:
    """sigma/sqrt(n_test) of the entry with the lowest held-out mean ARE (see the module docstring)."""
    ok = [e for e in entries if math.isfinite(e.mean_are)]
    if not ok:
        return 0.0
    best = min(ok, key=lambda e: e.mean_are)
    r = np.log(np.asarray(best.law.predict(data), float)) - np.log(data.loss)
    sigma = 1.4826 * float(np.median(np.abs(r - np.median(r))))
    return sigma / math.sqrt(max(best.extrapolation.n_test, 1))


def _order(entries: list[RankedLaw], tie_rtol: float, tie_atol: float) -> list[RankedLaw]:
    ok = sorted((e for e in entries if math.isfinite(e.mean_are)), key=lambda e: (e.mean_are, e.n_params or 0))
    bad = [e for e in entries if not math.isfinite(e.mean_are)]
    out: list[RankedLaw] = []
    while ok:  # repeatedly: the most parsimonious form among those tied with the best remaining one
        best = ok[0].mean_are
        tied = [e for e in ok if e.mean_are <= best * (1 + tie_rtol) + tie_atol]
        pick = min(tied, key=lambda e: (e.n_params or 0, e.mean_are))
        out.append(pick)
        ok.remove(pick)
    for i, e in enumerate(out):
        e.rank = i + 1
    return out + bad


def rank_laws(data: ScalingData, candidates: Sequence[str] | None = None, holdout: str = "largest", *,
              tie_rtol: float = 0.1, tie_atol: float | None = None, law_kw: dict[str, Any] | None = None) -> LawRanking:
    """Fit each candidate law (names of `lmscale.laws.estimators.LAWS`) and rank by held-out mean ARE.

    holdout: 'largest' (all rows at the largest N) or 'largest-compute' (the largest compute
    budget). tie_rtol, tie_atol: the tie rule (module docstring; tie_atol None = the noise level). law_kw: estimator parameters passed to every candidate (e.g. delta). Each entry keeps
    the law fitted on all the data (`entry.law`) and its `ExtrapolationResult`.
    """
    from lmscale.laws.estimators import LAWS, make_law

    if not isinstance(data, ScalingData):
        raise LmscaleError(f"rank_laws expects a ScalingData (N, D, loss); got {type(data).__name__}")
    if holdout not in HOLDOUTS:
        raise LmscaleError(f"holdout={holdout!r}; expected one of {', '.join(HOLDOUTS)} (ranking needs held-out points)")
    for name, v in (("tie_rtol", tie_rtol), ("tie_atol", 0.0 if tie_atol is None else tie_atol)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
            raise LmscaleError(f"{name}={v!r}; expected a tolerance >= 0")
    cands = default_candidates(data) if candidates is None else tuple(candidates)
    if isinstance(candidates, str):
        cands = tuple(c.strip() for c in candidates.split(",") if c.strip())
    if not cands:
        raise LmscaleError("no candidate laws given; expected names such as chinchilla, kaplan-joint")
    unknown = [c for c in cands if c not in LAWS]
    if unknown:
        raise LmscaleError(f"candidate law {unknown[0]!r}; expected names from {', '.join(LAWS)}")
    if len(set(cands)) != len(cands):
        raise LmscaleError(f"candidate laws {', '.join(cands)} repeat a name; expected each law once")
    kw = dict(law_kw or {})
    entries = []
    description = ""
    for name in cands:
        e = RankedLaw(name=name)
        entries.append(e)
        try:
            law = make_law(name, **kw).fit(data)
        except LmscaleError as err:
            e.note = f"not fitted: {err}"
            continue
        e.law, e.n_params, e.objective = law, law.form_.n_params, float(law.objective_)
        try:
            ex = extrapolation_check(make_law(name, **kw), data, holdout)
        except LmscaleError as err:
            e.note = f"not checked: {err}"
            continue
        e.extrapolation, e.mean_are, e.max_are = ex, float(ex.mean_are), float(ex.max_are)
        description = description or ex.description
        if not law.converged_:
            e.note = "fit did not pass the convergence test"
    atol = _noise_atol(entries, data) if tie_atol is None else float(tie_atol)
    ranking = LawRanking(holdout=holdout, entries=_order(entries, float(tie_rtol), atol),
                         tie_rtol=float(tie_rtol), tie_atol=atol, description=description)
    descs = {e.extrapolation.description for e in entries if e.extrapolation is not None}
    if len(descs) > 1:  # 'largest' uses each form's size axis; joint laws all use N
        ranking.notes.append("the candidates held out different points: " + " | ".join(sorted(descs)))
    return ranking
