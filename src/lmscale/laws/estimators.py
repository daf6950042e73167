"""Scikit-learn-style scaling-law estimators (Approach 3: fit a parametric loss law).

    law = ChinchillaLaw().fit(data)            # a ScalingData; arrays: ScalingData.from_arrays(N=..., D=..., loss=...)
    law.A_, law.B_, law.E_, law.alpha_, law.beta_, law.objective_, law.n_starts_converged_
    law.predict(N, D)                          # loss (nats/token), on every law
    law.optimal_allocation(C)                  # C, N_opt, D_opt, tokens_per_param, loss_opt at C FLOPs
    boot = bootstrap(law, 1000, seed=0)        # lmscale.laws.bootstrap: cluster bootstrap, percentile intervals
    ex = extrapolation_check(law, data)        # lmscale.laws.extrapolation: refit without the largest models
    print(summary(law, boot, ex))              # lmscale.laws.summary (also to_dict(law, boot, ex))

Scikit-learn's rules: `__init__` only stores its keyword parameters (`get_params`, `set_params`,
`clone`); `fit` validates them (a bad value is a one-line LmscaleError there), runs one multi-start
fit (the summed Huber, delta = 1e-3, of log-loss residuals from a grid of starts,
`lmscale.laws.fit`) and sets only attributes that end with an underscore: `form_`, `theta_`,
`params_`, the published parameters (`A_`, `alpha_`, `N_c_`, ...), `objective_`, `converged_`,
`n_starts_`, `data_`, ... The extrapolation check and the bootstrap are free functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.laws.bootstrap import BootstrapResult, bootstrap_fit
from lmscale.laws.data import ScalingData
from lmscale.laws.fit import MultiStartResult, fit_multistart
from lmscale.laws.forms import (ChinchillaForm, ChinchillaSharedForm, DataConstrainedForm, Form, KaplanForm,
                                KaplanJointForm)
from lmscale.laws.frontier import (FrontierResult, chinchilla_allocation, chinchilla_exponents, compute_array,
                                   default_compute, local_exponents, numeric_allocation)
from lmscale.laws.lbfgs import SCIPY_FTOL, SCIPY_GTOL
from lmscale.laws.objective import HuberLogObjective
from lmscale.laws.params import Params

BASE_PARAMS = ("delta", "reduction", "starts", "solver", "polish", "reach_rtol", "ftol", "gtol", "max_iter")


def _positive(value: Any) -> bool:
    try:
        return not isinstance(value, bool) and float(value) > 0
    except (TypeError, ValueError):
        return False


class ScalingLaw(Params):
    """Base estimator. Subclasses set the functional form and how data columns map to it.

    Parameters (all keyword; stored as given, validated by `fit`):
      delta: Huber threshold on log-loss residuals (1e-3 as Hoffmann et al.).
      reduction: 'sum' (default) or 'mean'. 'mean' exists to demonstrate the loss-scale trap:
        the stopping tests are absolute, so dividing the objective by n stops the optimiser early
        (the tight polish of the best end points partly hides this; use polish=False to see it).
      starts: None (the form's grid), an (k, p) array in fit space (`form_.theta_names`), or a dict
        (or list of dicts) of published parameters such as `HOFFMANN_2022`.
      solver: 'batched' (all starts at once) or 'scipy' (the per-start reference loop).
      polish: polish the best local optima with scipy L-BFGS-B at tight tolerances.
      reach_rtol: a start "reached" the optimum if its objective is within this relative tolerance.
      ftol, gtol, max_iter: the L-BFGS stopping tests (scipy's defaults) and iteration cap.
    """

    _own_params: tuple[str, ...] = ()  # a subclass's parameters, before the base ones in get_params

    def __init__(self, *, delta: float = 1e-3, reduction: str = "sum", starts=None, solver: str = "batched",
                 polish: bool = True, reach_rtol: float = 1e-5, ftol: float = SCIPY_FTOL, gtol: float = SCIPY_GTOL,
                 max_iter: int = 15000):
        self.delta = delta
        self.reduction = reduction
        self.starts = starts
        self.solver = solver
        self.polish = polish
        self.reach_rtol = reach_rtol
        self.ftol = ftol
        self.gtol = gtol
        self.max_iter = max_iter

    def _param_names(self) -> tuple[str, ...]:
        return (*self._own_params, *BASE_PARAMS)

    def _check_params(self) -> Form:
        """Validate the parameters (one-line LmscaleError naming the bad value); returns the functional form."""
        if self.reduction not in ("sum", "mean"):
            raise LmscaleError(f"reduction={self.reduction!r}; expected 'sum' or 'mean'")
        if self.solver not in ("batched", "scipy"):
            raise LmscaleError(f"solver={self.solver!r}; expected 'batched' or 'scipy'")
        if not _positive(self.delta):
            raise LmscaleError(f"delta={self.delta!r}; expected a positive Huber threshold such as 1e-3")
        for name in ("ftol", "gtol"):
            if not _positive(getattr(self, name)):
                raise LmscaleError(f"{name}={getattr(self, name)!r}; expected a positive tolerance such as 1e-8")
        if not (_positive(self.reach_rtol) or self.reach_rtol == 0):
            raise LmscaleError(f"reach_rtol={self.reach_rtol!r}; expected a relative tolerance >= 0 such as 1e-5")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 1:
            raise LmscaleError(f"max_iter={self.max_iter!r}; expected a positive integer such as 15000")
        if not isinstance(self.polish, (bool, np.bool_)):
            raise LmscaleError(f"polish={self.polish!r}; expected True or False")
        return self._make_form()

    def _make_form(self) -> Form:
        """The functional form this estimator fits (each law class supplies its own)."""
        raise TypeError(f"{type(self).__name__} is not a concrete law; use ChinchillaLaw, KaplanLaw, ...")

    # -- data ---------------------------------------------------------------------------------
    def _check_data(self, data) -> ScalingData:
        if not isinstance(data, ScalingData):
            raise LmscaleError(f"{type(self).__name__}.fit expects a ScalingData; got {type(data).__name__} "
                               "(wrap arrays with ScalingData.from_arrays(N=..., D=..., loss=...))")
        return data

    def _inputs(self, data: ScalingData) -> dict[str, np.ndarray]:
        return {v: getattr(data, v) for v in self.form_.variables}

    def _check_size(self, data: ScalingData) -> None:
        form = self.form_
        need = form.min_points
        if len(data) < need:
            raise LmscaleError(f"{data.source}: {len(data)} data point(s) for the {form.name} law; it needs at least "
                               f"{need} ({form.n_params} parameters + 1)")
        for v, a in self._inputs(data).items():
            if v != "U" and a is not None and np.isfinite(a).all() and len(np.unique(a)) < 2:
                raise LmscaleError(f"{data.source}: all {len(data)} points have the same {v}={a[0]:.4g}; "
                                   f"the {form.name} law needs at least 2 distinct values of {v}")

    def _objective(self, data: ScalingData, weights: np.ndarray | None = None) -> HuberLogObjective:
        X = self.form_.features(**self._inputs(data))
        return HuberLogObjective(self.form_, X, data.loss, delta=float(self.delta), reduction=self.reduction,
                                 weights=weights)

    def _start_array(self, obj: HuberLogObjective) -> np.ndarray:
        s = self.starts
        form = self.form_
        if s is None:
            return form.start_grid(obj.X, obj.logL)
        if isinstance(s, dict):
            s = [s]
        if isinstance(s, (list, tuple)) and s and isinstance(s[0], dict):
            return np.array([form.theta_from(d) for d in s], dtype=float)
        try:
            arr = np.atleast_2d(np.asarray(s, dtype=float))
        except (TypeError, ValueError):
            raise LmscaleError(f"starts={s!r}; expected None, an array of shape (k, {form.n_params}) or a dict "
                               "of parameters") from None
        if arr.ndim != 2 or arr.shape[1] != form.n_params:
            raise LmscaleError(f"starts have {arr.shape[-1]} columns; expected {form.n_params} "
                               f"({', '.join(form.theta_names)})")
        return arr

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, data: ScalingData) -> "ScalingLaw":
        """Fit to a ScalingData (one multi-start fit); returns self."""
        form = self._check_params()
        data = self._check_data(data)
        self.form_ = form
        form.features(**self._inputs(data))  # raises if a needed column is missing
        self._check_size(data)
        obj = self._objective(data)
        res = fit_multistart(obj, self._start_array(obj), solver=self.solver, do_polish=self.polish,
                             reach_rtol=self.reach_rtol, ftol=self.ftol, gtol=self.gtol, max_iter=self.max_iter)
        if not np.isfinite(res.objective):
            raise LmscaleError(f"{data.source}: the {form.name} objective is not finite at any start; "
                               "expected losses and sizes in plausible ranges (nats/token, params, tokens)")
        self._set_fitted(res, data)
        return self

    def _set_fitted(self, res: MultiStartResult, data: ScalingData) -> None:
        form = self.form_
        self.fit_result_ = res
        self.theta_ = res.theta
        self.params_ = {k: float(v) for k, v in form.params(res.theta).items()}
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
                               "params": {k: float(v) for k, v in form.params(o.theta).items()}}
                              for o in res.local_optima[:10]]
        self.n_points_ = len(data)
        self.data_ = data

    def _require_fitted(self) -> None:
        if not hasattr(self, "theta_"):
            raise LmscaleError(f"{type(self).__name__} is not fitted yet; call .fit(data) first")

    # -- prediction ---------------------------------------------------------------------------
    def _loss(self, **inputs) -> np.ndarray:
        return np.asarray(self.form_.loss(self.theta_, **{k: None if v is None else np.asarray(v, float)
                                                          for k, v in inputs.items()}), float)

    def predict(self, N, D=None) -> np.ndarray:
        """Predicted loss (nats/token) at N (parameters) and D (tokens), arrays that broadcast; or at a ScalingData."""
        self._require_fitted()
        if isinstance(N, ScalingData):
            if D is not None:
                raise LmscaleError("predict takes a ScalingData or N and D, not both")
            return self._loss(**self._inputs(N))
        if N is None or D is None:
            raise LmscaleError(f"{type(self).__name__}.predict needs N (parameters) and D (tokens); got "
                               f"{'no N' if N is None else 'no D'}")
        return self._loss(N=N, D=D)

    # -- derived quantities ---------------------------------------------------------------------
    def _allocation(self, theta: np.ndarray, C) -> dict[str, np.ndarray]:
        """N_opt, D_opt, tokens/param, loss_opt at compute C, for theta (p,) or samples (R, p) x C (m,) -> (R, m)."""
        raise LmscaleError(f"the {self.form_.name} law has no compute-optimal allocation; use a joint law of N and D")

    def has_allocation(self) -> bool:
        return type(self)._allocation is not ScalingLaw._allocation

    def _default_compute(self) -> float | None:
        return default_compute(self.data_)

    def derived(self, theta: np.ndarray, compute=None, predict_at=None) -> dict[str, np.ndarray]:
        """Derived quantities for parameters theta (p,) or samples (R, p): the exponents a, b (, G) and the
        allocation at `compute` (FLOPs: a scalar, or m values for (m,) / (R, m) arrays), and loss_at `predict_at`.

        Exponents that are local slopes (laws without a power-law frontier) are taken at a scalar
        `compute`, and at the default compute (10x the largest in the data) for a sequence.
        """
        theta = np.asarray(theta, float)
        out: dict[str, np.ndarray] = {}
        if self.has_allocation() and compute is not None:
            C = np.asarray(compute, float)
            out.update(self._exponents(theta, C if C.ndim == 0 else np.asarray(self._default_compute(), float)))
            th = theta[:, None, :] if (C.ndim == 1 and theta.ndim == 2) else theta
            out.update({k: np.asarray(v) for k, v in self._allocation(th, C).items()})
        if predict_at is not None:
            if isinstance(predict_at, dict):
                vals = predict_at
            else:
                vals = dict(zip(self.form_.variables, np.atleast_1d(np.asarray(predict_at, float))))
            out["loss_at"] = self.form_.loss(theta, **{k: np.asarray(v, float) for k, v in vals.items()})
        return out

    def _exponents(self, theta: np.ndarray, C) -> dict[str, np.ndarray]:
        return local_exponents(lambda c: self._allocation(theta, c), C)

    def optimal_allocation(self, C) -> dict[str, Any]:
        """Compute-optimal N (params), D (tokens), tokens/param and loss (nats/token) at C (FLOPs, C = 6ND):
        keys C, N_opt, D_opt, tokens_per_param, loss_opt; floats for a scalar C, arrays for an array."""
        self._require_fitted()
        if not self.has_allocation():
            self._allocation(self.theta_, C)  # raises: this law has no allocation
        C = compute_array(C)
        a = self._allocation(self.theta_, C)
        out = {"C": C, **{k: a[k] for k in ("N_opt", "D_opt", "tokens_per_param", "loss_opt")}}
        return {k: (float(v) if np.ndim(v) == 0 else np.asarray(v, float)) for k, v in out.items()}

    def frontier(self, C=None, *, C_min: float | None = None, C_max: float | None = None, n: int = 50,
                 bootstrap: BootstrapResult | None = None) -> FrontierResult:
        """The compute-optimal frontier over C (default: from the smallest budget in the data to C_max,
        default 10x the largest), with the bootstrap median and percentile band when `bootstrap` is given."""
        self._require_fitted()
        if C is None:
            lo = C_min or float(np.nanmin(self.data_.C))
            hi = C_max or max(self._default_compute() or lo * 1e3, lo * 10)
            C = np.geomspace(lo, hi, n)
        C = np.atleast_1d(np.asarray(C, float))
        point = {k: np.asarray(v, float) for k, v in self._allocation(self.theta_, C).items()}
        bands = {}
        conf = nres = None
        if bootstrap is not None:
            if bootstrap.theta is None:
                raise LmscaleError(f"bootstrap of {bootstrap.law!r} has no parameter samples; expected a bootstrap of "
                                   "this law (lmscale.laws.bootstrap.bootstrap(law, ...))")
            th = bootstrap.theta[bootstrap.converged]
            samp = self._allocation(th[:, None, :], C[None, :])
            q = bootstrap.confidence
            for k, v in samp.items():
                lo_, med, hi_ = np.nanpercentile(np.asarray(v, float), [50 * (1 - q), 50, 50 * (1 + q)], axis=0)
                bands[k] = (lo_, med, hi_)
            conf, nres = q, bootstrap.n_resamples
        return FrontierResult(law=self.form_.name, C=C, point=point, bands=bands, confidence=conf, n_resamples=nres)

    # -- uncertainty (the protocol of lmscale.laws.bootstrap.bootstrap) ----------------------------
    def _bootstrap_samples(self, n_resamples: int, rng: np.random.Generator, compute, predict_at, n_starts: int):
        """Cluster bootstrap (resample whole runs), every resample refitted in one batch; see `bootstrap`."""
        self._require_fitted()
        data = self.data_
        seed = rng  # bootstrap_fit draws the resamples from this Generator
        theta, _, conv = bootstrap_fit(lambda W: self._objective(data, W), self.theta_, self.fit_result_.local_optima,
                                       data.clusters(), n_resamples=n_resamples, seed=seed, n_starts=n_starts,
                                       max_iter=self.max_iter)
        point, samples = self._samples_at(theta, compute, predict_at)
        notes = []
        if data.run is None:
            notes.append("no run column: every row resampled on its own (fine for one final loss per run)")
        return point, samples, conv, theta, notes

    def _samples_at(self, theta: np.ndarray, compute, predict_at) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The point estimate and the per-resample samples (parameters, then the quantities derived at
        `compute` and `predict_at`) of resampled fit-space parameters `theta` (R, p)."""
        samples = {k: np.asarray(v, float) for k, v in self.form_.params(theta).items()}
        samples.update({k: np.asarray(v, float) for k, v in self.derived(theta, compute, predict_at).items()})
        point: dict[str, Any] = dict(self.params_)
        point.update({k: (float(v) if np.ndim(v) == 0 else np.asarray(v, float))
                      for k, v in self.derived(self.theta_, compute, predict_at).items()})
        return point, samples

    # -- reporting (delegates to lmscale.laws.summary) -----------------------------------------------
    def to_dict(self, bootstrap=None, extrapolation=None, **kw) -> dict[str, Any]:
        from lmscale.laws.summary import to_dict

        return to_dict(self, bootstrap, extrapolation, **kw)

    def summary(self, bootstrap=None, extrapolation=None, **kw) -> str:
        from lmscale.laws.summary import summary

        return summary(self, bootstrap, extrapolation, **kw)

    def __str__(self) -> str:
        return self.summary() if hasattr(self, "theta_") else repr(self)


class ChinchillaLaw(ScalingLaw):
    """L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, Approach 3).

    Fitted: A_, B_, E_ (nats/token), alpha_, beta_, plus a_ = beta/(alpha+beta), b_, G_ (the
    compute-optimal frontier N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b).
    """

    def _make_form(self):
        return ChinchillaForm()

    def _set_fitted(self, res, data) -> None:
        super()._set_fitted(res, data)
        ex = chinchilla_exponents(self.params_)
        self.a_, self.b_, self.G_ = (float(ex[k]) for k in ("a", "b", "G"))

    def _allocation(self, theta, C):
        return chinchilla_allocation(self.form_.params(theta), C)

    def _exponents(self, theta, C):
        return chinchilla_exponents(self.form_.params(theta))


class ChinchillaSharedLaw(ChinchillaLaw):
    """L(N, D) = E + A/N^alpha + B/D^alpha: the Chinchilla law with one shared exponent (4 parameters; a = b = 1/2)."""

    def _make_form(self):
        return ChinchillaSharedForm()


class KaplanLaw(ScalingLaw):
    """Single-variable Kaplan law L(X) = (X_c/X)^alpha_X [+ E], X in {'N', 'D', 'C'}.

    Kaplan et al. count N without embeddings: `nonembedding=True` fits against the N_nonembed column
    (and `predict(N)` then takes non-embedding parameter counts). `predict(N, D)` uses the fitted
    variable: N, D, or C = 6ND (or `predict(C=...)`).
    """

    _own_params = ("variable", "irreducible", "nonembedding")

    def __init__(self, variable: str = "N", irreducible: bool = True, nonembedding: bool = False, **kw):
        self.variable = variable
        self.irreducible = irreducible
        self.nonembedding = nonembedding
        super().__init__(**kw)

    def _check_params(self):
        if self.variable not in ("N", "D", "C"):
            raise LmscaleError(f"variable={self.variable!r}; expected 'N', 'D' or 'C'")
        if not isinstance(self.irreducible, (bool, np.bool_)):
            raise LmscaleError(f"irreducible={self.irreducible!r}; expected True or False")
        if self.nonembedding and self.variable != "N":
            raise LmscaleError(f"nonembedding=True applies to variable='N', not {self.variable!r}")
        return super()._check_params()

    def _make_form(self):
        return KaplanForm(self.variable, self.irreducible)

    def _inputs(self, data):
        if self.nonembedding:
            return {"N": data.require("N_nonembed", "nonembedding=True fits against non-embedding parameters")}
        return {self.variable: getattr(data, self.variable)}

    def predict(self, N=None, D=None, *, C=None) -> np.ndarray:
        """Predicted loss (nats/token) from the fitted variable: N, D, or C (FLOPs; C=..., or 6ND from N and D)."""
        self._require_fitted()
        if isinstance(N, ScalingData):
            return self._loss(**self._inputs(N))
        v = self.variable
        x = {"N": N, "D": D}.get(v)
        if v == "C":
            x = C if C is not None else (None if N is None or D is None else 6.0 * np.asarray(N, float) * np.asarray(D, float))
        if x is None:
            need = {"N": "N (parameters)", "D": "D (tokens)", "C": "C (FLOPs) as C=..., or N and D"}[v]
            raise LmscaleError(f"KaplanLaw(variable={v!r}) predicts from {need}; got "
                               + (", ".join(k for k, a in (("N", N), ("D", D), ("C", C)) if a is not None) or "nothing"))
        y = self._loss(**{v: x})
        given = [np.shape(a) for a in (N, D) if a is not None]  # the shape of predict(N, D) on every law
        return np.array(np.broadcast_to(y, np.broadcast_shapes(y.shape, *given)))


class KaplanJointLaw(ScalingLaw):
    """L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Kaplan et al. 2020, Eq. 1.5).

    The compute-optimal allocation is found numerically; its exponents a, b are local slopes at the target.
    """

    def _make_form(self):
        return KaplanJointForm()

    def _allocation(self, theta, C):
        theta = np.asarray(theta, float)
        return numeric_allocation(lambda N, D: self.form_.loss(theta, N=N, D=D), C)


class DataConstrainedLaw(ScalingLaw):
    """Muennighoff et al. 2023 data-constrained law (see `lmscale.laws.forms.DataConstrainedForm`).

    Needs U (unique tokens in the corpus) per point. `effective_params=True` also discounts excess
    parameters (R*_N). Allocations use `unique_tokens` (default: unlimited, i.e. no repetition).
    """

    _own_params = ("effective_params", "unique_tokens")

    def __init__(self, effective_params: bool = False, unique_tokens: float | None = None, **kw):
        self.effective_params = effective_params
        self.unique_tokens = unique_tokens
        super().__init__(**kw)

    def _check_params(self):
        if not isinstance(self.effective_params, (bool, np.bool_)):
            raise LmscaleError(f"effective_params={self.effective_params!r}; expected True or False")
        if self.unique_tokens is not None and not _positive(self.unique_tokens):
            raise LmscaleError(f"unique_tokens={self.unique_tokens!r}; expected None (unlimited) or a positive token count")
        return super()._check_params()

    def _make_form(self):
        return DataConstrainedForm(self.effective_params)

    def _check_data(self, data):
        data = super()._check_data(data)
        if data.U is None:
            raise LmscaleError(f"{data.source}: the data-constrained law needs a column U (unique tokens in the corpus)")
        return data

    def predict(self, N, D=None, *, U=None) -> np.ndarray:
        """Predicted loss (nats/token) at N (parameters), D (tokens) and U (unique tokens; None: no repetition)."""
        self._require_fitted()
        if isinstance(N, ScalingData):
            N, D, U = N.N, N.D, N.U
        if N is None or D is None:
            raise LmscaleError(f"DataConstrainedLaw.predict needs N (parameters) and D (tokens); got {'no N' if N is None else 'no D'}")
        return self._loss(N=N, D=D, U=U)

    def _allocation(self, theta, C):
        theta = np.asarray(theta, float)
        U = self.unique_tokens
        return numeric_allocation(lambda N, D: self.form_.loss(theta, N=N, D=D, U=None if U is None else np.full(np.shape(D), U)), C)


LAWS = {
    "chinchilla": lambda **kw: ChinchillaLaw(**kw),
    "chinchilla-shared": lambda **kw: ChinchillaSharedLaw(**kw),
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
