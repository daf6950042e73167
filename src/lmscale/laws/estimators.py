"""Scikit-learn-style scaling-law estimators (Approach 3: fit a parametric loss law).

    law = ChinchillaLaw().fit(data)            # or .fit(N, D, loss)
    law.A_, law.B_, law.E_, law.alpha_, law.beta_, law.objective_, law.n_starts_converged_
    law.predict(N, D)                          # nats/token
    boot = law.bootstrap(1000, seed=0)         # cluster bootstrap, percentile intervals
    print(law.summary()); law.to_dict()        # readable table; JSON-serialisable dict

Every estimator minimises the summed Huber (delta = 1e-3) of log-loss residuals from a grid of
starts (`lmscale.laws.fit`), records how many starts reached the optimum, and, unless
`holdout='none'`, refits without the largest model(s) to report the extrapolation error (ARE).
Fitted attributes end with an underscore; the published parameters are also attributes
(`A_`, `alpha_`, `N_c_`, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.bootstrap import BootstrapResult, bootstrap_fit
from lmscale.laws.data import ScalingData
from lmscale.laws.extrapolation import HOLDOUTS, ExtrapolationResult, extrapolation_check
from lmscale.laws.fit import MultiStartResult, fit_multistart
from lmscale.laws.forms import ChinchillaForm, DataConstrainedForm, Form, KaplanForm, KaplanJointForm
from lmscale.laws.frontier import (FrontierResult, chinchilla_allocation, chinchilla_exponents, local_exponents,
                                   numeric_allocation)
from lmscale.laws.lbfgs import SCIPY_FTOL, SCIPY_GTOL
from lmscale.laws.objective import HuberLogObjective
from lmscale.laws.tables import fmt, format_table, jsonable

UNITS = {"N": "parameters (total)", "D": "tokens", "C": "FLOPs", "loss": "nats/token", "U": "unique tokens"}
DERIVED_HELP = {
    "a": "N_opt ~ C^a", "b": "D_opt ~ C^b", "G": "N_opt = G (C/6)^a", "N_opt": "params at target C",
    "D_opt": "tokens at target C", "tokens_per_param": "D_opt/N_opt at target C", "loss_opt": "loss at the optimum",
    "loss_at": "predicted loss at the given point",
}


class ScalingLaw:
    """Base estimator. Subclasses set the functional form and how data arrays map to it.

    Parameters (all keyword):
      delta: Huber threshold on log-loss residuals (1e-3 as Hoffmann et al.).
      reduction: 'sum' (default) or 'mean'. 'mean' exists to demonstrate the loss-scale trap:
        the stopping tests are absolute, so dividing the objective by n stops the optimiser early
        (the tight polish of the best end points partly hides this; use polish=False to see it).
      starts: None (the form's grid), an (k, p) array in fit space (`form.theta_names`), or a dict
        (or list of dicts) of published parameters such as `HOFFMANN_2022`.
      solver: 'batched' (all starts at once) or 'scipy' (the per-start reference loop).
      polish: polish the best local optima with scipy L-BFGS-B at tight tolerances.
      holdout: 'largest' (default; all rows at the largest size), 'largest-compute', or 'none'.
      target_compute: FLOPs at which derived quantities are reported (default: 10x the largest C).
      reach_rtol: a start "reached" the optimum if its objective is within this relative tolerance.
    """

    law_name = ""

    def __init__(self, *, delta: float = 1e-3, reduction: str = "sum", starts=None, solver: str = "batched",
                 polish: bool = True, holdout: str = "largest", target_compute: float | None = None,
                 reach_rtol: float = 1e-5, ftol: float = SCIPY_FTOL, gtol: float = SCIPY_GTOL, max_iter: int = 15000):
        if reduction not in ("sum", "mean"):
            raise LmscaleError(f"reduction={reduction!r}; expected 'sum' or 'mean'")
        if solver not in ("batched", "scipy"):
            raise LmscaleError(f"solver={solver!r}; expected 'batched' or 'scipy'")
        holdout = "none" if holdout is None else holdout
        if holdout not in HOLDOUTS:
            raise LmscaleError(f"holdout={holdout!r}; expected one of {', '.join(HOLDOUTS)}")
        if not delta > 0:
            raise LmscaleError(f"delta={delta!r}; expected a positive Huber threshold such as 1e-3")
        if target_compute is not None and not target_compute > 0:
            raise LmscaleError(f"target_compute={target_compute!r}; expected a positive number of FLOPs")
        self.delta, self.reduction, self.starts, self.solver, self.polish = float(delta), reduction, starts, solver, polish
        self.holdout, self.target_compute, self.reach_rtol = holdout, target_compute, reach_rtol
        self.ftol, self.gtol, self.max_iter = ftol, gtol, max_iter
        self.form = self._make_form()

    # -- construction -------------------------------------------------------------------------
    def _make_form(self) -> Form:
        """The functional form this estimator fits (each law class supplies its own)."""
        raise TypeError(f"{type(self).__name__} is not a concrete law; use ChinchillaLaw, KaplanLaw, ...")

    def _extra_params(self) -> dict[str, Any]:
        return {}

    def get_params(self) -> dict[str, Any]:
        return {"delta": self.delta, "reduction": self.reduction, "starts": self.starts, "solver": self.solver,
                "polish": self.polish, "holdout": self.holdout, "target_compute": self.target_compute,
                "reach_rtol": self.reach_rtol, "ftol": self.ftol, "gtol": self.gtol, "max_iter": self.max_iter,
                **self._extra_params()}

    def clone(self, **overrides) -> "ScalingLaw":
        """An unfitted copy with the same settings (sklearn's clone)."""
        return type(self)(**{**self.get_params(), **overrides})

    def __repr__(self) -> str:
        extra = ", ".join(f"{k}={v!r}" for k, v in self._extra_params().items())
        return f"{type(self).__name__}({extra})"

    # -- data ---------------------------------------------------------------------------------
    def _as_data(self, data, *arrays, loss=None, **named) -> ScalingData:
        if isinstance(data, ScalingData):
            if arrays or loss is not None:
                raise LmscaleError("pass either a ScalingData or arrays, not both")
            return data
        names = self.form.variables if not isinstance(self.form, DataConstrainedForm) else ("N", "D")
        vals = (data, *arrays)
        if loss is None and len(vals) == len(names) + 1:
            vals, loss = vals[:-1], vals[-1]
        if len(vals) != len(names) or loss is None:
            raise LmscaleError(f"{type(self).__name__}.fit expects a ScalingData or arrays "
                               f"({', '.join(names)}, loss); got {len(vals)} array(s)"
                               + (" and no loss" if loss is None else ""))
        return ScalingData.from_arrays(loss=loss, **dict(zip(names, vals)), **named)

    def _inputs(self, data: ScalingData) -> dict[str, np.ndarray]:
        return {v: getattr(data, v) for v in self.form.variables}

    def _check_size(self, data: ScalingData) -> None:
        need = self.form.min_points
        if len(data) < need:
            raise LmscaleError(f"{data.source}: {len(data)} data point(s) for the {self.form.name} law; it needs at least "
                               f"{need} ({self.form.n_params} parameters + 1)")
        for v, a in self._inputs(data).items():
            if v != "U" and a is not None and np.isfinite(a).all() and len(np.unique(a)) < 2:
                raise LmscaleError(f"{data.source}: all {len(data)} points have the same {v}={a[0]:.4g}; "
                                   f"the {self.form.name} law needs at least 2 distinct values of {v}")

    def _objective(self, data: ScalingData, weights: np.ndarray | None = None) -> HuberLogObjective:
        X = self.form.features(**self._inputs(data))
        return HuberLogObjective(self.form, X, data.loss, delta=self.delta, reduction=self.reduction, weights=weights)

    def _start_array(self, obj: HuberLogObjective) -> np.ndarray:
        s = self.starts
        if s is None:
            return self.form.start_grid(obj.X, obj.logL)
        if isinstance(s, dict):
            s = [s]
        if isinstance(s, (list, tuple)) and s and isinstance(s[0], dict):
            return np.array([self.form.theta_from(d) for d in s], dtype=float)
        arr = np.atleast_2d(np.asarray(s, dtype=float))
        if arr.shape[1] != self.form.n_params:
            raise LmscaleError(f"starts have {arr.shape[1]} columns; expected {self.form.n_params} "
                               f"({', '.join(self.form.theta_names)})")
        return arr

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, data, *arrays, loss=None, **named) -> "ScalingLaw":
        """Fit to a ScalingData (or arrays, see the class docstring); returns self."""
        data = self._as_data(data, *arrays, loss=loss, **named)
        self.form.features(**self._inputs(data))  # raises if a needed column is missing
        self._check_size(data)
        obj = self._objective(data)
        res = fit_multistart(obj, self._start_array(obj), solver=self.solver, do_polish=self.polish,
                             reach_rtol=self.reach_rtol, ftol=self.ftol, gtol=self.gtol, max_iter=self.max_iter)
        self._set_fitted(res, data)
        self.extrapolation_: ExtrapolationResult | None = None
        self.extrapolation_note_ = "extrapolation check: not requested (holdout='none')"
        if self.holdout != "none":
            self.extrapolation_, self.extrapolation_note_ = extrapolation_check(self, data, self.holdout)
        return self

    def _set_fitted(self, res: MultiStartResult, data: ScalingData) -> None:
        self.fit_result_ = res
        self.theta_ = res.theta
        self.params_ = {k: float(v) for k, v in self.form.params(res.theta).items()}
        for k, v in self.params_.items():
            setattr(self, k + "_", v)
        self.objective_ = res.objective
        self.converged_ = res.converged
        self.message_ = res.message
        self.grad_max_ = res.grad_max
        self.n_starts_ = res.n_starts
        self.n_starts_converged_ = res.n_reached
        self.frac_starts_converged_ = res.frac_reached
        self.local_optima_ = [{"objective": o.objective, "count": o.count,
                               "params": {k: float(v) for k, v in self.form.params(o.theta).items()}}
                              for o in res.local_optima[:10]]
        self.n_points_ = len(data)
        self.data_ = data
        finite_C = data.C[np.isfinite(data.C)]
        self.target_compute_ = (float(self.target_compute) if self.target_compute is not None
                                else float(10 * finite_C.max()) if len(finite_C) else None)
        self.bootstrap_: BootstrapResult | None = None
        if not np.isfinite(res.objective):
            raise LmscaleError(f"{data.source}: the {self.form.name} objective is not finite at any start; "
                               "expected losses and sizes in plausible ranges (nats/token, params, tokens)")

    def _require_fitted(self) -> None:
        if not hasattr(self, "theta_"):
            raise LmscaleError(f"{type(self).__name__} is not fitted yet; call .fit(data) first")

    # -- prediction ---------------------------------------------------------------------------
    def _predict_inputs(self, data, arrays, named) -> dict[str, np.ndarray]:
        if isinstance(data, ScalingData):
            return self._inputs(data)
        names = self.form.variables
        vals = (data, *arrays)
        out = dict(zip(names, vals))
        out.update(named)
        missing = [n for n in names if out.get(n) is None and n != "U"]
        if missing:
            raise LmscaleError(f"predict needs {', '.join(names)}; missing {', '.join(missing)}")
        return {k: np.asarray(v, float) for k, v in out.items()}

    def predict(self, data, *arrays, **named) -> np.ndarray:
        """Predicted loss (nats/token) at the given points (a ScalingData or arrays in the law's variables)."""
        self._require_fitted()
        return self.form.loss(self.theta_, **self._predict_inputs(data, arrays, named))

    # -- derived quantities ---------------------------------------------------------------------
    def _allocation(self, theta: np.ndarray, C) -> dict[str, np.ndarray]:
        """N_opt, D_opt, tokens/param, loss_opt at compute C, for theta (p,) or samples (R, p) x C (m,) -> (R, m)."""
        raise LmscaleError(f"the {self.form.name} law has no compute-optimal allocation; use a joint law of N and D")

    def has_allocation(self) -> bool:
        return type(self)._allocation is not ScalingLaw._allocation

    def derived(self, theta: np.ndarray, target_compute: float | None = None, predict_at=None) -> dict[str, np.ndarray]:
        """Derived quantities for parameters theta (p,) or (R, p): exponents, allocation at the target, loss_at."""
        theta = np.asarray(theta, float)
        out: dict[str, np.ndarray] = {}
        if self.has_allocation() and target_compute:
            out.update(self._exponents(theta, target_compute))
            alloc = self._allocation(theta, np.asarray(target_compute, float))
            out.update({k: np.asarray(v) for k, v in alloc.items()})
        if predict_at is not None:
            if isinstance(predict_at, dict):
                vals = predict_at
            else:
                vals = dict(zip(self.form.variables, np.atleast_1d(np.asarray(predict_at, float))))
            out["loss_at"] = self.form.loss(theta, **{k: np.asarray(v, float) for k, v in vals.items()})
        return out

    def _exponents(self, theta: np.ndarray, C: float) -> dict[str, np.ndarray]:
        return local_exponents(lambda c: self._allocation(theta, c), C)

    def optimal_allocation(self, C) -> dict[str, Any]:
        """Compute-optimal N (params), D (tokens), tokens/param and loss (nats/token) at C (FLOPs, C = 6ND)."""
        self._require_fitted()
        a = self._allocation(self.theta_, np.asarray(C, float))
        return {k: (float(v) if np.ndim(v) == 0 else np.asarray(v)) for k, v in {"C": np.asarray(C, float), **a}.items()}

    def frontier(self, C=None, *, C_min: float | None = None, C_max: float | None = None, n: int = 50,
                 bootstrap: BootstrapResult | None = None) -> FrontierResult:
        """The compute-optimal frontier over C (default: from the smallest budget in the data to the target),
        with the bootstrap median and percentile band when `bootstrap` is given."""
        self._require_fitted()
        if C is None:
            lo = C_min or float(np.nanmin(self.data_.C))
            hi = C_max or max(self.target_compute_ or lo * 1e3, lo * 10)
            C = np.geomspace(lo, hi, n)
        C = np.atleast_1d(np.asarray(C, float))
        point = {k: np.asarray(v, float) for k, v in self._allocation(self.theta_, C).items()}
        bands = {}
        conf = nres = None
        if bootstrap is not None:
            th = bootstrap.theta[bootstrap.converged]
            samp = self._allocation(th[:, None, :], C[None, :])
            q = bootstrap.confidence
            for k, v in samp.items():
                lo_, med, hi_ = np.nanpercentile(np.asarray(v, float), [50 * (1 - q), 50, 50 * (1 + q)], axis=0)
                bands[k] = (lo_, med, hi_)
            conf, nres = q, bootstrap.n_resamples
        return FrontierResult(law=self.form.name, C=C, point=point, bands=bands, confidence=conf, n_resamples=nres)

    # -- uncertainty --------------------------------------------------------------------------
    def bootstrap(self, n_resamples: int = 1000, seed: int | None = 0, confidence: float = 0.95, *,
                  target_compute: float | None = None, predict_at=None, n_starts: int = 6) -> BootstrapResult:
        """Cluster bootstrap (resample whole runs), refit each resample, percentile intervals.

        Intervals cover the parameters and the derived quantities at `target_compute` (FLOPs;
        default the law's target): a, b, G, N_opt, D_opt, tokens/param, loss at the optimum, and
        the loss at `predict_at` (e.g. (N, D) of a larger model). Stored as `bootstrap_`.
        """
        self._require_fitted()
        if n_resamples < 2:
            raise LmscaleError(f"n_resamples={n_resamples}; expected at least 2 (1000 or more for 95% intervals)")
        if not 0 < confidence < 1:
            raise LmscaleError(f"confidence={confidence}; expected a fraction such as 0.95")
        data = self.data_
        tc = target_compute or self.target_compute_
        theta, _, conv = bootstrap_fit(lambda W: self._objective(data, W), self.theta_, self.fit_result_.local_optima,
                                       data.clusters(), n_resamples=n_resamples, seed=seed, n_starts=n_starts,
                                       max_iter=self.max_iter)
        samples = {k: np.asarray(v, float) for k, v in self.form.params(theta).items()}
        samples.update({k: np.asarray(v, float) for k, v in self.derived(theta, tc, predict_at).items()})
        point = dict(self.params_)
        point.update({k: float(v) for k, v in self.derived(self.theta_, tc, predict_at).items()})
        notes = []
        if data.run is None:
            notes.append("no run column: every row resampled on its own (fine for one final loss per run)")
        res = BootstrapResult(law=self.form.name, n_resamples=n_resamples, n_converged=int(conv.sum()),
                              confidence=confidence, seed=seed, n_clusters=data.n_clusters, point=point,
                              samples=samples, converged=conv, target_compute=tc,
                              predict_at=None if predict_at is None else jsonable(predict_at), notes=notes, theta=theta)
        self.bootstrap_ = res
        return res

    # -- reporting ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Everything about the fit as plain JSON types (NaN/inf as null)."""
        self._require_fitted()
        d = self.data_
        tc = self.target_compute_
        derived = {k: float(v) for k, v in self.derived(self.theta_, tc).items()} if tc else {}
        out = {
            "law": self.form.name,
            "formula": self.form.formula,
            "units": {v: UNITS[v] for v in (*self.form.variables, "loss") if v in UNITS},
            "data": {"source": d.source, "n_points": len(d), "n_runs": d.n_clusters, "D_from_C": d.D_from_C,
                     "C_from_6ND": d.C_from_6ND},
            "objective": {"kind": "huber of log-loss residuals", "delta": self.delta, "reduction": self.reduction,
                          "value": self.objective_},
            "converged": self.converged_, "message": self.message_, "grad_max": self.grad_max_,
            "starts": {"n": self.n_starts_, "n_reached_optimum": self.n_starts_converged_,
                       "fraction_reached": self.frac_starts_converged_, "reach_rtol": self.reach_rtol,
                       "solver": self.solver, "stage1_status": self.fit_result_.status_counts},
            "params": self.params_,
            "fit_params": {n: float(v) for n, v in zip(self.form.theta_names, self.theta_)},
            "local_optima": self.local_optima_[:5],
            "target_compute": tc,
            "derived": derived,
            "extrapolation": self.extrapolation_.to_dict() if self.extrapolation_ is not None else None,
            "extrapolation_note": self.extrapolation_note_ or None,
            "bootstrap": self.bootstrap_.to_dict() if self.bootstrap_ is not None else None,
        }
        return jsonable(out)

    def summary(self) -> str:
        """A readable multi-line report: parameters (with bootstrap intervals if run), derived values, checks."""
        self._require_fitted()
        boot = self.bootstrap_
        lines = [f"{self.form.name} law: {self.form.formula}",
                 f"data: {self.data_.describe()}",
                 f"objective: {self.reduction} of Huber(delta={self.delta:g}) on log-loss residuals = "
                 f"{self.objective_:.6e}; {'converged' if self.converged_ else 'NOT converged'} "
                 f"(max |gradient| {self.grad_max_:.1e})",
                 f"starts: {self.n_starts_converged_} of {self.n_starts_} ({self.frac_starts_converged_:.1%}) reached "
                 f"the optimum (objective within {self.reach_rtol:g} relative); {len(self.fit_result_.local_optima)}"
                 f"{'+' if len(self.fit_result_.local_optima) >= 20 else ''} distinct end points"]
        head = ["parameter", "estimate"] + ([f"{boot.confidence:.0%} interval"] if boot else [])
        rows = []
        for k, v in self.params_.items():
            rows.append([k, fmt(v)] + ([f"({fmt(boot.interval(k)[0])}, {fmt(boot.interval(k)[1])})"] if boot else []))
        tc = (boot.target_compute if boot else None) or self.target_compute_  # the intervals' target, if any
        if tc and (self.has_allocation() or boot):
            der = self.derived(self.theta_, tc, boot.predict_at if boot else None)
            for k, v in der.items():
                cell = [f"{k} [{DERIVED_HELP.get(k, '')}]", fmt(float(v))]
                if boot:
                    cell.append(f"({fmt(boot.interval(k)[0])}, {fmt(boot.interval(k)[1])})" if k in boot.samples else "-")
                rows.append(cell)
        if tc and self.has_allocation():
            lines.append(f"derived values at target compute C = {fmt(tc)} FLOPs (C = 6ND):")
        lines.append(format_table(head, rows))
        if boot:
            lines.append(f"bootstrap: {boot.n_converged}/{boot.n_resamples} resamples converged, cluster bootstrap over "
                         f"{boot.n_clusters} runs")
        if self.extrapolation_ is not None:
            lines.append(self.extrapolation_.summary())
        elif self.extrapolation_note_:
            lines.append(self.extrapolation_note_)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary() if hasattr(self, "theta_") else repr(self)


class ChinchillaLaw(ScalingLaw):
    """L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, Approach 3).

    Fitted: A_, B_, E_ (nats/token), alpha_, beta_, plus a_ = beta/(alpha+beta), b_, G_ (the
    compute-optimal frontier N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b).
    """

    def _make_form(self):
        return ChinchillaForm()

    def fit(self, data, D=None, loss=None, **named) -> "ChinchillaLaw":
        args = () if D is None else (D,)
        super().fit(data, *args, loss=loss, **named)
        ex = chinchilla_exponents(self.params_)
        self.a_, self.b_, self.G_ = (float(ex[k]) for k in ("a", "b", "G"))
        return self

    def predict(self, N, D=None) -> np.ndarray:
        return super().predict(N, *(() if D is None else (D,)))

    def _allocation(self, theta, C):
        return chinchilla_allocation(self.form.params(theta), C)

    def _exponents(self, theta, C):
        return chinchilla_exponents(self.form.params(theta))


class KaplanLaw(ScalingLaw):
    """Single-variable Kaplan law L(X) = (X_c/X)^alpha_X [+ E], X in {'N', 'D', 'C'}.

    Kaplan et al. count N without embeddings: `nonembedding=True` fits against the N_nonembed column.
    """

    def __init__(self, variable: str = "N", irreducible: bool = True, nonembedding: bool = False, **kw):
        self.variable, self.irreducible, self.nonembedding = variable, irreducible, nonembedding
        if nonembedding and variable != "N":
            raise LmscaleError(f"nonembedding=True applies to variable='N', not {variable!r}")
        super().__init__(**kw)

    def _make_form(self):
        return KaplanForm(self.variable, self.irreducible)

    def _extra_params(self):
        return {"variable": self.variable, "irreducible": self.irreducible, "nonembedding": self.nonembedding}

    def _inputs(self, data):
        if self.nonembedding:
            return {"N": data.require("N_nonembed", "nonembedding=True fits against non-embedding parameters")}
        return {self.variable: getattr(data, self.variable)}

    def fit(self, data, loss=None, **named) -> "KaplanLaw":
        if not isinstance(data, ScalingData):
            return super().fit(ScalingData.from_arrays(loss=loss, **{self.variable: data}, **named))
        return super().fit(data, loss=loss, **named)

    def predict(self, x) -> np.ndarray:
        self._require_fitted()
        if isinstance(x, ScalingData):
            return self.form.loss(self.theta_, **self._inputs(x))
        return self.form.loss(self.theta_, **{self.variable: np.asarray(x, float)})


class KaplanJointLaw(ScalingLaw):
    """L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Kaplan et al. 2020, Eq. 1.5).

    The compute-optimal allocation is found numerically; its exponents a, b are local slopes at the target.
    """

    def _make_form(self):
        return KaplanJointForm()

    def fit(self, data, D=None, loss=None, **named) -> "KaplanJointLaw":
        return super().fit(data, *(() if D is None else (D,)), loss=loss, **named)

    def predict(self, N, D=None) -> np.ndarray:
        return super().predict(N, *(() if D is None else (D,)))

    def _allocation(self, theta, C):
        theta = np.asarray(theta, float)
        return numeric_allocation(lambda N, D: self.form.loss(theta, N=N, D=D), C)


class DataConstrainedLaw(ScalingLaw):
    """Muennighoff et al. 2023 data-constrained law (see `lmscale.laws.forms.DataConstrainedForm`).

    Needs U (unique tokens in the corpus) per point. `effective_params=True` also discounts excess
    parameters (R*_N). Allocations use `unique_tokens` (default: unlimited, i.e. no repetition).
    """

    def __init__(self, effective_params: bool = False, unique_tokens: float | None = None, **kw):
        self.effective_params, self.unique_tokens = effective_params, unique_tokens
        super().__init__(**kw)

    def _make_form(self):
        return DataConstrainedForm(self.effective_params)

    def _extra_params(self):
        return {"effective_params": self.effective_params, "unique_tokens": self.unique_tokens}

    def fit(self, data, D=None, loss=None, U=None, **named) -> "DataConstrainedLaw":
        if not isinstance(data, ScalingData):
            if U is None:
                raise LmscaleError("the data-constrained law needs U (unique tokens in the corpus) for every point")
            data = ScalingData.from_arrays(N=data, D=D, loss=loss, U=U, **named)
        elif data.U is None:
            raise LmscaleError(f"{data.source}: the data-constrained law needs a column U (unique tokens in the corpus)")
        return super().fit(data)

    def predict(self, N, D=None, U=None) -> np.ndarray:
        self._require_fitted()
        if isinstance(N, ScalingData):
            N, D, U = N.N, N.D, N.U
        return self.form.loss(self.theta_, N=np.asarray(N, float), D=np.asarray(D, float),
                              U=None if U is None else np.asarray(U, float))

    def _allocation(self, theta, C):
        theta = np.asarray(theta, float)
        U = self.unique_tokens
        return numeric_allocation(lambda N, D: self.form.loss(theta, N=N, D=D, U=None if U is None else np.full(np.shape(D), U)), C)


LAWS = {
    "chinchilla": lambda **kw: ChinchillaLaw(**kw),
    "kaplan-n": lambda **kw: KaplanLaw("N", **kw),
    "kaplan-d": lambda **kw: KaplanLaw("D", **kw),
    "kaplan-c": lambda **kw: KaplanLaw("C", **kw),
    "kaplan-joint": lambda **kw: KaplanJointLaw(**kw),
    "data-constrained": lambda **kw: DataConstrainedLaw(**kw),
}


def make_law(name: str, **kw) -> ScalingLaw:
    """A law by its CLI name: chinchilla, kaplan-n, kaplan-d, kaplan-c, kaplan-joint, data-constrained."""
    try:
        return LAWS[name](**kw)
    except KeyError:
        raise LmscaleError(f"law {name!r}; expected one of {', '.join(LAWS)}") from None
