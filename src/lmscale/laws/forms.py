"""Functional forms of scaling laws, written for batched fitting in log-loss space.

Each form predicts log L (L in nats/token) for a batch of parameter vectors theta (S, p) at n
points: `forward(theta, X)` returns log L-hat (S, n) plus intermediates, and `backward` contracts
the Jacobian with a vector v (S, n) to give sum_n v_sn d log L-hat_sn / d theta (S, p). Only that
product is ever needed (the objective's gradient), so no (S, n, p) Jacobian is built.

Parametrisations keep every term positive and the problem well scaled: a term K / X^alpha is
exp(k - alpha log X), so log L-hat is a log-sum-exp of affine functions (Hoffmann et al. 2022).
`params(theta)` maps to the published parameters (A, B, E, ...) and works on arrays of thetas.

Forms:
- `ChinchillaForm`: L = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, Eq. 2).
- `ChinchillaFixedEForm(E)`: the same with E fixed (4 fitted parameters; `lmscale.laws.profile`).
- `ChinchillaSharedForm`: the same with one exponent, alpha = beta (4 parameters).
- `KaplanForm(variable)`: L = (X_c/X)^alpha_X [+ E] for X in N, D or C (Kaplan et al. 2020, Table 5).
- `KaplanJointForm`: L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (Kaplan et al. 2020, Eq. 1.5).
- `DataConstrainedForm`: Muennighoff et al. 2023 (arXiv 2305.16264, Eq. 5): the Chinchilla form at
  effective data D' = U_D + U_D R*_D (1 - exp(-R_D/R*_D)), with U_D = min(D, U) unique tokens seen
  and R_D = D/U_D - 1 repeated epochs beyond the first (so D' = D without repetition); optionally
  effective parameters N' = U_N + U_N R*_N (1 - exp(-R_N/R*_N)), U_N = min(N, N_opt(U_D)) the
  compute-optimal size for U_D unique tokens under the same law, R_N = N/U_N - 1. It needs the
  column U (unique tokens available in the corpus).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import itertools
from typing import Any

import numpy as np

from lmscale.errors import LmscaleError

CLIP = 700.0  # exp() overflows at ~709; clipping keeps absurd trial points finite (the line search rejects them)


def _exp(x: np.ndarray) -> np.ndarray:
    return np.exp(np.clip(x, -CLIP, CLIP))


def _col(theta: np.ndarray, i: int) -> np.ndarray:
    return theta[:, i : i + 1]


class Form(ABC):
    """Base class: names, data columns, starting grid and the batched forward/backward pass."""

    name: str = ""
    formula: str = ""
    theta_names: tuple[str, ...] = ()
    param_names: tuple[str, ...] = ()
    variables: tuple[str, ...] = ()  # ScalingData columns used as inputs
    scale_variable: str = "N"  # the "size" axis used by holdout='largest'

    @property
    def n_params(self) -> int:
        return len(self.theta_names)

    @property
    def min_points(self) -> int:
        return self.n_params + 1

    def features(self, **arrays: np.ndarray) -> dict[str, np.ndarray]:
        """Inputs for forward(): logs of the variables (and raw values where needed)."""
        out = {}
        for v in self.variables:
            a = arrays.get(v)
            a = None if a is None else np.asarray(a, dtype=float)
            if a is None or not np.isfinite(a).all():
                raise LmscaleError(f"the {self.name} law needs the column {v}; it is missing from the data")
            out["l" + v] = np.log(a)
            out[v] = a
        return out

    @abstractmethod
    def forward(self, theta: np.ndarray, X: dict[str, np.ndarray]) -> tuple[np.ndarray, Any]:
        ...

    @abstractmethod
    def backward(self, theta: np.ndarray, X: dict[str, np.ndarray], cache: Any, v: np.ndarray) -> np.ndarray:
        ...

    @abstractmethod
    def params(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        ...

    @abstractmethod
    def theta_from(self, params: dict[str, float]) -> np.ndarray:
        ...

    @abstractmethod
    def start_grid(self, X: dict[str, np.ndarray], logL: np.ndarray) -> np.ndarray:
        ...

    def log_predict(self, theta: np.ndarray, X: dict[str, np.ndarray]) -> np.ndarray:
        return self.forward(np.atleast_2d(theta), X)[0]

    @abstractmethod
    def loss(self, theta: np.ndarray, **v: np.ndarray) -> np.ndarray:
        """L-hat (nats/token) with numpy broadcasting: theta[..., i] against the variable arrays.

        Used for predictions and for bootstrap-sample quantities, e.g. theta (R, 1, p) against
        N, D of shape (m,) gives (R, m).
        """
        ...


def _grid(*axes) -> np.ndarray:
    return np.array(list(itertools.product(*axes)), dtype=float)


class ChinchillaForm(Form):
    """L = E + A/N^alpha + B/D^beta, fitted as LSE(a - alpha log N, b - beta log D, e)."""

    name = "chinchilla"
    formula = "L(N, D) = E + A/N^alpha + B/D^beta"
    theta_names = ("a", "b", "e", "alpha", "beta")
    param_names = ("A", "B", "E", "alpha", "beta")
    variables = ("N", "D")

    def forward(self, theta, X):
        a, b, e, al, be = (_col(theta, i) for i in range(5))
        e1 = np.multiply(al, X["lN"])
        np.subtract(a, e1, out=e1)
        e1 = _exp(e1)
        e2 = np.multiply(be, X["lD"])
        np.subtract(b, e2, out=e2)
        e2 = _exp(e2)
        E = _exp(e)
        s = e1 + e2
        s += E
        return np.log(s), (e1, e2, E, s)

    def backward(self, theta, X, cache, v):
        e1, e2, E, s = cache
        u = v / s
        g1, g2 = u * e1, u * e2
        return np.stack([g1.sum(1), g2.sum(1), E[:, 0] * u.sum(1), -(g1 @ X["lN"]), -(g2 @ X["lD"])], axis=1)

    def loss(self, theta, N, D):
        t = np.asarray(theta, float)
        with np.errstate(all="ignore"):
            return (np.exp(t[..., 0] - t[..., 3] * np.log(N)) + np.exp(t[..., 1] - t[..., 4] * np.log(D))
                    + np.exp(t[..., 2]))

    def params(self, theta):
        theta = np.asarray(theta, dtype=float)
        with np.errstate(over="ignore"):  # a runaway bootstrap resample may overflow to inf: reported, not warned
            return {"A": np.exp(theta[..., 0]), "B": np.exp(theta[..., 1]), "E": np.exp(theta[..., 2]),
                    "alpha": theta[..., 3], "beta": theta[..., 4]}

    def theta_from(self, params):
        return np.array([np.log(params["A"]), np.log(params["B"]), np.log(params["E"]), params["alpha"], params["beta"]])

    def start_grid(self, X, logL):
        # Hoffmann et al.'s grid: alpha, beta in {0, .5, ..., 2}, e in {-1, -.5, ..., 1}, a, b in {0, 5, ..., 25}: 4500 starts.
        return _grid(np.arange(0, 30, 5), np.arange(0, 30, 5), np.arange(-1, 1.5, 0.5), np.arange(0, 2.5, 0.5),
                     np.arange(0, 2.5, 0.5))


class _ConstrainedChinchillaForm(ChinchillaForm):
    """ChinchillaForm with some parameters fixed or tied: theta_full = theta @ M.T + c (a linear map).

    forward/backward/loss/params are ChinchillaForm's on the full vector (the backward pass is
    the full gradient times M, the chain rule for a linear map), so the log-sum-exp maths lives in
    one place. Subclasses set `theta_names`, `_M` (5, p), `_c` (5,) and `_keep` (the full-theta
    coordinates that are free, in order, for `theta_from`).
    """

    _M: np.ndarray
    _c: np.ndarray
    _keep: tuple[int, ...]

    def full_theta(self, theta) -> np.ndarray:
        """The 5-vector (a, b, e, alpha, beta) of ChinchillaForm; broadcasts over leading axes."""
        return np.asarray(theta, float) @ self._M.T + self._c

    def forward(self, theta, X):
        return super().forward(self.full_theta(theta), X)

    def backward(self, theta, X, cache, v):
        return super().backward(self.full_theta(theta), X, cache, v) @ self._M

    def loss(self, theta, N, D):
        return super().loss(self.full_theta(theta), N, D)

    def params(self, theta):
        return super().params(self.full_theta(theta))

    def _complete(self, params: dict[str, float]) -> dict[str, float]:
        return dict(params)

    def theta_from(self, params):
        return super().theta_from(self._complete(params))[list(self._keep)]

    def start_grid(self, X, logL):
        # Hoffmann et al.'s grid restricted to the free coordinates (duplicates removed).
        full = super().start_grid(X, logL)
        return np.unique(full[:, list(self._keep)], axis=0)


class ChinchillaFixedEForm(_ConstrainedChinchillaForm):
    """L = E + A/N^alpha + B/D^beta with E fixed (given): fits (a, b, alpha, beta), for profiling E.

    `params` still reports E (the fixed value), so the frontier and allocation code apply unchanged.
    """

    theta_names = ("a", "b", "alpha", "beta")
    param_names = ("A", "B", "E", "alpha", "beta")
    _keep = (0, 1, 3, 4)

    def __init__(self, E: float):
        try:
            E = float(E)
        except (TypeError, ValueError):
            raise LmscaleError(f"E={E!r}; expected a positive irreducible loss in nats/token") from None
        if not (np.isfinite(E) and E > 0):
            raise LmscaleError(f"E={E!r}; expected a positive finite irreducible loss in nats/token")
        self.E = E
        self.name = "chinchilla-fixed-E"
        self.formula = f"L(N, D) = E + A/N^alpha + B/D^beta, E = {E:.6g} fixed"
        M = np.zeros((5, 4))
        M[[0, 1, 3, 4], [0, 1, 2, 3]] = 1.0
        self._M = M
        self._c = np.array([0.0, 0.0, np.log(E), 0.0, 0.0])

    def _complete(self, params):
        return {**params, "E": self.E}


class ChinchillaSharedForm(_ConstrainedChinchillaForm):
    """L = E + A/N^alpha + B/D^alpha: the Chinchilla form with one shared exponent (alpha = beta), 4 parameters.

    `params` reports beta (= alpha) too, so the closed-form allocation applies (a = b = 1/2).
    """

    name = "chinchilla-shared"
    formula = "L(N, D) = E + A/N^alpha + B/D^alpha  (alpha = beta)"
    theta_names = ("a", "b", "e", "alpha")
    param_names = ("A", "B", "E", "alpha", "beta")
    _keep = (0, 1, 2, 3)
    _M = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0], [0, 0, 0, 1.0]])
    _c = np.zeros(5)

    def _complete(self, params):
        return {"beta": params["alpha"], **params}

    def start_grid(self, X, logL):
        full = ChinchillaForm.start_grid(self, X, logL)
        return full[full[:, 3] == full[:, 4]][:, :4]


# Hoffmann et al. 2022's published Approach-3 values, unrounded as used by Epoch and Pearce & Song.
HOFFMANN_2022 = {"A": float(np.exp(6.0073404)), "B": float(np.exp(6.0179186)), "E": float(np.exp(0.5267228)),
                 "alpha": 0.33917, "beta": 0.28491}


class KaplanForm(Form):
    """L = (X_c/X)^alpha [+ E] for X in {N, D, C}; fitted as log L = LSE(k - alpha log X [, e]), k = alpha log X_c."""

    def __init__(self, variable: str = "N", irreducible: bool = True):
        if variable not in ("N", "D", "C"):
            raise LmscaleError(f"variable={variable!r}; expected 'N', 'D' or 'C'")
        self.variable = variable
        self.irreducible = bool(irreducible)
        self.name = f"kaplan-{variable.lower()}"
        self.variables = (variable,)
        self.scale_variable = variable
        unit = {"N": "parameters", "D": "tokens", "C": "FLOPs"}[variable]
        self.formula = f"L({variable}) = ({variable}_c/{variable})^alpha_{variable}" + (" + E" if irreducible else "") + f"  [{variable} in {unit}]"
        self.theta_names = ("k", "alpha") + (("e",) if irreducible else ())
        self.param_names = (f"alpha_{variable}", f"{variable}_c") + (("E",) if irreducible else ())

    def forward(self, theta, X):
        lx = X["l" + self.variable]
        t = np.multiply(_col(theta, 1), lx)
        np.subtract(_col(theta, 0), t, out=t)
        if not self.irreducible:
            return t, None
        e1 = _exp(t)
        E = _exp(_col(theta, 2))
        s = e1 + E
        return np.log(s), (e1, E, s)

    def backward(self, theta, X, cache, v):
        lx = X["l" + self.variable]
        if not self.irreducible:
            return np.stack([v.sum(1), -(v @ lx)], axis=1)
        e1, E, s = cache
        u = v / s
        g1 = u * e1
        return np.stack([g1.sum(1), -(g1 @ lx), E[:, 0] * u.sum(1)], axis=1)

    def loss(self, theta, **v):
        t = np.asarray(theta, float)
        x = v.get(self.variable)
        if x is None:
            raise LmscaleError(f"the {self.name} law needs {self.variable}; it was not given")
        with np.errstate(all="ignore"):
            out = np.exp(t[..., 0] - t[..., 1] * np.log(x))
            return out + np.exp(t[..., 2]) if self.irreducible else out

    def params(self, theta):
        theta = np.asarray(theta, dtype=float)
        k, al = theta[..., 0], theta[..., 1]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            xc = np.exp(k / al)
        out = {f"alpha_{self.variable}": al, f"{self.variable}_c": xc}
        if self.irreducible:
            out["E"] = np.exp(theta[..., 2])
        return out

    def theta_from(self, params):
        al = params[f"alpha_{self.variable}"]
        th = [al * np.log(params[f"{self.variable}_c"]), al]
        if self.irreducible:
            th.append(np.log(params["E"]))
        return np.array(th, dtype=float)

    def start_grid(self, X, logL):
        lx = X["l" + self.variable]
        mx, mL = float(np.median(lx)), float(np.median(logL))
        alphas = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8)
        if not self.irreducible:
            # log L = k - alpha log X is linear: anchor k at the median point, plus the OLS line itself.
            starts = [(al * mx + mL + dk, al) for al in alphas for dk in (-1.0, 0.0, 1.0)]
            slope, icpt = np.polyfit(lx, logL, 1)
            starts.append((icpt, -slope))
            return np.array(starts, dtype=float)
        lmin = float(np.min(logL))
        starts = []
        for al in alphas:
            for q in (0.0, 0.5, 0.8, 0.95):  # E as a fraction of the smallest loss (q = 0: E negligible)
                e = lmin + np.log(max(q, 1e-3))
                rest = np.log(max(np.exp(mL) - np.exp(e), 1e-3 * np.exp(mL)))
                for dk in (-1.0, 0.0, 1.0):
                    starts.append((al * mx + rest + dk, al, e))
        return np.array(starts, dtype=float)


class KaplanJointForm(Form):
    """L = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D, fitted as alpha_D * LSE(p - r log N, q - log D).

    theta = (p, q, r, alpha_D) with r = alpha_N/alpha_D, p = r log N_c, q = log D_c.
    """

    name = "kaplan-joint"
    formula = "L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D"
    theta_names = ("p", "q", "r", "alpha_D")
    param_names = ("alpha_N", "alpha_D", "N_c", "D_c")
    variables = ("N", "D")

    def forward(self, theta, X):
        p, q, r, ad = (_col(theta, i) for i in range(4))
        u = p - r * X["lN"]
        w = q - X["lD"]
        m = np.maximum(u, w)
        eu, ew = np.exp(u - m), np.exp(w - m)
        z = eu + ew
        lse = m + np.log(z)
        return ad * lse, (eu / z, ew / z, lse)

    def backward(self, theta, X, cache, v):
        wu, ww, lse = cache
        ad = _col(theta, 3)
        s = v * ad
        gu = s * wu
        return np.stack([gu.sum(1), (s * ww).sum(1), -(gu @ X["lN"]), (v * lse).sum(1)], axis=1)

    def loss(self, theta, N, D):
        t = np.asarray(theta, float)
        with np.errstate(all="ignore"):
            return np.exp(t[..., 3] * np.logaddexp(t[..., 0] - t[..., 2] * np.log(N), t[..., 1] - np.log(D)))

    def params(self, theta):
        theta = np.asarray(theta, dtype=float)
        p, q, r, ad = (theta[..., i] for i in range(4))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            nc = np.exp(p / r)
        return {"alpha_N": r * ad, "alpha_D": ad, "N_c": nc, "D_c": np.exp(q)}

    def theta_from(self, params):
        r = params["alpha_N"] / params["alpha_D"]
        return np.array([r * np.log(params["N_c"]), np.log(params["D_c"]), r, params["alpha_D"]], dtype=float)

    def start_grid(self, X, logL):
        # log N_c, log D_c in {15, 20, ..., 40}; r = alpha_N/alpha_D and alpha_D spanning Kaplan's 0.076/0.103 widely.
        return np.array([(r * lnc, lq, r, ad) for lnc in range(15, 45, 5) for lq in range(15, 45, 5)
                         for r in (0.5, 0.75, 1.0, 1.5) for ad in (0.05, 0.1, 0.2, 0.4)], dtype=float)


class DataConstrainedForm(Form):
    """Muennighoff et al. 2023: the Chinchilla form at effective data D' (and optionally effective params N').

    theta = (a, b, e, alpha, beta, rho_D[, rho_N]) with R*_D = exp(rho_D) (> 0). The published
    fit (their Eq. 5 on C4-like data) has R*_D = 15.4 and R*_N = 5.3.
    """

    name = "data-constrained"
    variables = ("N", "D", "U")

    def __init__(self, effective_params: bool = False):
        self.effective_params = bool(effective_params)
        self.formula = ("L = E + A/N'^alpha + B/D'^beta, D' = U_D + U_D R*_D (1 - exp(-R_D/R*_D)), U_D = min(D, U), "
                        "R_D = D/U_D - 1" + ("; N' likewise with U_N = min(N, N_opt(U_D)), R_N = N/U_N - 1"
                                              if effective_params else "; N' = N"))
        self.theta_names = ("a", "b", "e", "alpha", "beta", "rho_D") + (("rho_N",) if effective_params else ())
        self.param_names = ("A", "B", "E", "alpha", "beta", "R_D_star") + (("R_N_star",) if effective_params else ())

    def features(self, **arrays):
        X = super().features(**arrays)
        UD = np.minimum(X["D"], X["U"])
        X["UD"] = UD
        X["RD"] = X["D"] / UD - 1.0
        return X

    @staticmethod
    def _effective(U, R, rstar):
        """(log X', d log X'/d log R*) for X' = U (1 + R* (1 - exp(-R/R*)))."""
        x = np.exp(-R / rstar)
        xe = U * (1.0 + rstar * (1.0 - x))
        dxe = U * (rstar * (1.0 - x) - R * x)  # d X'/d log R*
        return np.log(xe), dxe / xe

    def _lN_eff(self, theta, X):
        if not self.effective_params:
            return X["lN"], None
        a, b, al, be = (_col(theta, i) for i in (0, 1, 3, 4))
        al_c, be_c = np.maximum(al, 1e-6), np.maximum(be, 1e-6)
        # Compute-optimal N for U_D unique tokens: N = G (G D)^(a/b) with G = (alpha A/(beta B))^(1/(alpha+beta)).
        lun_opt = (np.log(al_c) + a - np.log(be_c) - b + be_c * np.log(X["UD"])) / al_c
        lUN = np.minimum(X["lN"], lun_opt)
        UN = np.exp(lUN)
        RN = X["N"] / UN - 1.0
        return self._effective(UN, RN, _exp(_col(theta, 6)))[0], None

    def forward(self, theta, X):
        a, b, e, al, be, rd = (_col(theta, i) for i in range(6))
        lDe, dlDe = self._effective(X["UD"], X["RD"], _exp(rd))
        lNe, _ = self._lN_eff(theta, X)
        e1 = _exp(a - al * lNe)
        e2 = _exp(b - be * lDe)
        E = _exp(e)
        s = e1 + e2 + E
        return np.log(s), (e1, e2, E, s, lNe, lDe, dlDe)

    def backward(self, theta, X, cache, v):
        e1, e2, E, s, lNe, lDe, dlDe = cache
        if self.effective_params:
            return self._fd_backward(theta, X, v)
        u = v / s
        g1, g2 = u * e1, u * e2
        be = _col(theta, 4)
        return np.stack([g1.sum(1), g2.sum(1), E[:, 0] * u.sum(1), -(g1 * lNe).sum(1), -(g2 * lDe).sum(1),
                         -(g2 * be * dlDe).sum(1)], axis=1)

    def _fd_backward(self, theta, X, v):
        # U_N depends on the parameters through a min(); central differences are accurate enough here.
        g = np.empty(theta.shape)
        for j in range(theta.shape[1]):
            h = 1e-6 * np.maximum(1.0, np.abs(theta[:, j]))
            tp, tm = theta.copy(), theta.copy()
            tp[:, j] += h
            tm[:, j] -= h
            lp, lm = self._logpred(tp, X), self._logpred(tm, X)
            g[:, j] = ((lp - lm) * v).sum(1) / (2 * h)
        return g

    def _logpred(self, theta, X):
        a, b, e, al, be, rd = (_col(theta, i) for i in range(6))
        lDe, _ = self._effective(X["UD"], X["RD"], _exp(rd))
        lNe, _ = self._lN_eff(theta, X)
        return np.log(_exp(a - al * lNe) + _exp(b - be * lDe) + _exp(e))

    def loss(self, theta, N, D, U=None):
        """U = unique tokens available; None or inf means no repetition (the Chinchilla form)."""
        t = np.asarray(theta, float)
        N, D = np.asarray(N, float), np.asarray(D, float)
        U = np.full(np.shape(D), np.inf) if U is None else np.asarray(U, float)
        X = {"lN": np.log(N), "N": N}
        UD = np.minimum(D, U)
        with np.errstate(all="ignore"):
            lDe, _ = self._effective(UD, D / UD - 1.0, np.exp(t[..., 5]))
            lNe = np.log(N)
            if self.effective_params:
                al, be = np.maximum(t[..., 3], 1e-6), np.maximum(t[..., 4], 1e-6)
                lun_opt = (np.log(al) + t[..., 0] - np.log(be) - t[..., 1] + be * np.log(UD)) / al
                UN = np.exp(np.minimum(X["lN"], lun_opt))
                lNe, _ = self._effective(UN, N / UN - 1.0, np.exp(t[..., 6]))
            return np.exp(t[..., 0] - t[..., 3] * lNe) + np.exp(t[..., 1] - t[..., 4] * lDe) + np.exp(t[..., 2])

    def params(self, theta):
        theta = np.asarray(theta, dtype=float)
        out = {"A": np.exp(theta[..., 0]), "B": np.exp(theta[..., 1]), "E": np.exp(theta[..., 2]),
               "alpha": theta[..., 3], "beta": theta[..., 4], "R_D_star": np.exp(theta[..., 5])}
        if self.effective_params:
            out["R_N_star"] = np.exp(theta[..., 6])
        return out

    def theta_from(self, params):
        th = [np.log(params["A"]), np.log(params["B"]), np.log(params["E"]), params["alpha"], params["beta"],
              np.log(params["R_D_star"])]
        if self.effective_params:
            th.append(np.log(params["R_N_star"]))
        return np.array(th, dtype=float)

    def start_grid(self, X, logL):
        base = _grid(np.arange(0, 30, 5), np.arange(0, 30, 5), (-1.0, 0.0, 1.0), (0.25, 0.5, 1.0), (0.25, 0.5, 1.0),
                     np.log([5.0, 15.4, 50.0]))
        if self.effective_params:
            base = np.concatenate([base, np.full((len(base), 1), np.log(5.3))], axis=1)
        return base
