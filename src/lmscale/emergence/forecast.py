"""Forecast a task's metric at the largest scale from the smaller models, and check it.

Three routes, each fitted with the largest scale held out:
- per-token: the per-token probability p (token_prob, else exp(logprob / L)) follows
  -log p = (x/c)^alpha, a straight line of log(-log p) in log x (Schaeffer et al. 2023); exact match
  is then predicted as p^L;
- PassUntil (Hu et al. 2023): F = log(-log y) of the pass rate (pass_until, else exact match where
  0 < y < 1) is linear in log x;
- two-step (Llama 3): compute -> validation loss with L(C) = E + A C^-a, then loss -> metric with a
  sigmoid y = chance + (1 - chance) / (1 + exp((loss - l0) / s)) fitted on the smaller models.
Each returns a Forecast with the prediction, the measured value and the absolute error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lmscale.emergence.results import Curve, EvalTable
from lmscale.errors import LmscaleError

ROUTES = ("per-token", "pass-until", "two-step")
MIN_TRAIN = {"per-token": 2, "pass-until": 2, "two-step": 4}


@dataclass
class Forecast:
    task: str
    route: str
    metric: str  # the metric predicted
    x_name: str
    held_out_x: float
    n_train: int
    predicted: float
    actual: float
    abs_error: float
    params: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        from lmscale.laws.tables import jsonable

        return jsonable(asdict(self))


def _too_few(task: str, route: str, have: int) -> LmscaleError:
    need = MIN_TRAIN[route]
    return LmscaleError(f"task {task!r}: the {route} forecast needs at least {need + 1} scales ({need} to fit, the "
                        f"largest held out); have {have}")


def _linear_fit(u: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    slope, icpt = np.polyfit(u, v, 1)
    return float(slope), float(icpt)


def _curve(table: EvalTable, task: str, metric: str, x: str, k_shot: int | None) -> Curve | None:
    try:
        return table.curve(task, metric, x=x, k_shot=k_shot)
    except LmscaleError:
        return None


def per_token_forecast(table: EvalTable, task: str, x: str = "N", k_shot: int | None = None) -> Forecast:
    """Fit log(-log p) linear in log x on all but the largest scale; predict exact match p^L there."""
    em = _curve(table, task, "exact_match", x, k_shot)
    if em is None:
        raise LmscaleError(f"task {task!r} has no exact_match values to forecast")
    L = em.answer_tokens
    src = _curve(table, task, "token_prob", x, k_shot)
    if src is not None:
        p, xs, name = src.y, src.x, "token_prob"
    else:
        lp = _curve(table, task, "logprob", x, k_shot)
        if lp is None or not (L > 0):
            raise LmscaleError(f"task {task!r} has neither token_prob nor logprob with answer_tokens; the per-token "
                               f"forecast needs one")
        p, xs, name = np.exp(lp.y / L), lp.x, "exp(logprob/L)"
    if not (L > 0):
        raise LmscaleError(f"task {task!r} has no answer_tokens (L); the per-token forecast maps p to p^L")
    x_hold = float(em.x[-1])
    train = (xs < x_hold) & (p > 0) & (p < 1)
    if train.sum() < MIN_TRAIN["per-token"]:
        raise _too_few(task, "per-token", int(train.sum()) + 1)
    alpha, icpt = _linear_fit(np.log10(xs[train]), np.log10(-np.log(p[train])))
    p_hat = math.exp(-(10 ** (icpt + alpha * math.log10(x_hold))))
    pred = p_hat ** L
    actual = float(em.y[-1])
    return Forecast(task=task, route="per-token", metric="exact_match", x_name=x, held_out_x=x_hold,
                    n_train=int(train.sum()), predicted=pred, actual=actual, abs_error=abs(pred - actual),
                    params={"alpha": alpha, "log10_c_term": icpt, "p_predicted": p_hat, "L": L},
                    note=f"-log p = 10^({icpt:.4g}) x^({alpha:.4g}) fitted to {name}; exact match = p^L")


def pass_until_forecast(table: EvalTable, task: str, x: str = "N", k_shot: int | None = None) -> Forecast:
    """Fit F = log(-log y) linear in log x on the smaller scales (0 < y < 1); predict y at the largest."""
    metric = "pass_until"
    c = _curve(table, task, metric, x, k_shot)
    if c is None:
        metric, c = "exact_match", _curve(table, task, "exact_match", x, k_shot)
    if c is None:
        raise LmscaleError(f"task {task!r} has neither pass_until nor exact_match values to forecast")
    x_hold = float(c.x[-1])
    train = (c.x < x_hold) & (c.y > 0) & (c.y < 1)
    if train.sum() < MIN_TRAIN["pass-until"]:
        raise _too_few(task, "pass-until", int(train.sum()) + 1)
    slope, icpt = _linear_fit(np.log10(c.x[train]), np.log10(-np.log(c.y[train])))
    pred = math.exp(-(10 ** (icpt + slope * math.log10(x_hold))))
    actual = float(c.y[-1])
    return Forecast(task=task, route="pass-until", metric=metric, x_name=x, held_out_x=x_hold,
                    n_train=int(train.sum()), predicted=pred, actual=actual, abs_error=abs(pred - actual),
                    params={"slope": slope, "intercept": icpt},
                    note=f"log10(-log {metric}) = {icpt:.4g} + {slope:.4g} log10 x")


def fit_loss_law(C: np.ndarray, loss: np.ndarray) -> dict[str, float]:
    """L(C) = E + A C^-a by least squares on the loss, from several starts. E is kept in (0, min loss)
    (E = min loss * sigmoid(e)) and A, a > 0 (log-parametrised), so noisy ladders give a sane law."""
    from scipy.optimize import least_squares

    lc = np.log(C)
    lmin = float(loss.min())

    def unpack(p):
        return lmin / (1 + math.exp(-p[0])), p[1], math.exp(p[2])

    def f(p):
        e, a_log, a = unpack(p)
        return e + np.exp(a_log - a * lc) - loss

    best = None
    for a0 in (0.05, 0.15, 0.3):
        for e_frac in (0.1, 0.5, 0.9):
            e0 = e_frac * lmin
            a_log0 = math.log(max(float(loss.max()) - e0, 1e-6)) + a0 * float(lc.min())
            p0 = np.array([math.log(e_frac / (1 - e_frac)), a_log0, math.log(a0)])
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    r = least_squares(f, p0, method="lm", max_nfev=5000)
            except (ValueError, np.linalg.LinAlgError, OverflowError):
                continue
            if np.all(np.isfinite(r.x)) and np.isfinite(r.cost) and (best is None or r.cost < best.cost):
                best = r
    if best is None:
        raise LmscaleError("the loss law L(C) = E + A C^-a did not converge on these points")
    e, a_log, a = unpack(best.x)
    return {"E": float(e), "A": float(math.exp(a_log)), "a": float(a)}


def loss_law(params: dict[str, float], C) -> np.ndarray:
    return params["E"] + params["A"] * np.asarray(C, float) ** -params["a"]


def fit_loss_sigmoid(loss: np.ndarray, y: np.ndarray, chance: float, top: float = 1.0) -> dict[str, float]:
    """y = chance + (top - chance) / (1 + exp((loss - l0) / s)) by least squares; (l0, s)."""
    from scipy.optimize import least_squares

    def f(p):
        with np.errstate(over="ignore"):  # exp overflow is a saturated sigmoid, which is the right value
            return chance + (top - chance) / (1 + np.exp((loss - p[0]) / math.exp(p[1]))) - y

    best = None
    spread = max(float(np.ptp(loss)), 1e-3)
    for l0 in np.linspace(loss.min() - spread, loss.max(), 5):
        r = least_squares(f, np.array([l0, math.log(spread / 4)]), method="lm", max_nfev=2000)
        if np.all(np.isfinite(r.x)) and (best is None or r.cost < best.cost):
            best = r
    return {"l0": float(best.x[0]), "s": float(math.exp(best.x[1])), "chance": chance, "top": top}


def two_step_forecast(table: EvalTable, task: str, metric: str = "exact_match", k_shot: int | None = None) -> Forecast:
    """Compute -> loss (E + A C^-a) -> metric (sigmoid of loss), fitted on all but the largest-compute run."""
    c_curve = _curve(table, task, metric, "C", k_shot)
    l_curve = _curve(table, task, metric, "val_loss", k_shot)
    if c_curve is None or l_curve is None:
        raise LmscaleError(f"task {task!r}: the two-step forecast needs {metric} with C (FLOPs) and val_loss "
                           f"(nats/token) for every run")
    if metric not in ("exact_match", "token_accuracy", "mc_accuracy", "pass_until", "token_prob"):
        raise LmscaleError(f"two-step forecast of {metric!r}; expected a bounded higher-is-better metric")
    runs = table.filter(task=task, metric=metric).final_rows().rows
    if k_shot is not None:
        runs = [r for r in runs if r.k_shot == k_shot]
    C = np.array([r.C for r in runs])
    loss = np.array([r.val_loss for r in runs])
    y = np.array([r.value for r in runs])
    ok = np.isfinite(C) & np.isfinite(loss) & (C > 0)
    C, loss, y = C[ok], loss[ok], y[ok]
    hold = C == C.max()
    if (~hold).sum() < MIN_TRAIN["two-step"]:
        raise _too_few(task, "two-step", int((~hold).sum()) + 1)
    law = fit_loss_law(C[~hold], loss[~hold])
    chance = c_curve.chance if math.isfinite(c_curve.chance) else 0.0
    sig = fit_loss_sigmoid(loss[~hold], y[~hold], chance)
    loss_hat = float(loss_law(law, C[hold].mean()))
    z = min((loss_hat - sig["l0"]) / sig["s"], 700.0)
    pred = chance + (1 - chance) / (1 + math.exp(z))
    actual = float(y[hold].mean())
    return Forecast(task=task, route="two-step", metric=metric, x_name="C", held_out_x=float(C.max()),
                    n_train=int((~hold).sum()), predicted=pred, actual=actual, abs_error=abs(pred - actual),
                    params={**law, "l0": sig["l0"], "s": sig["s"], "loss_predicted": loss_hat,
                            "loss_actual": float(loss[hold].mean())},
                    note=f"loss = {law['E']:.4g} + {law['A']:.4g} C^-{law['a']:.4g}; "
                         f"{metric} = sigmoid((l0 - loss)/s), l0 = {sig['l0']:.4g}, s = {sig['s']:.4g}")


def forecast_task(table: EvalTable, task: str, x: str = "N", k_shot: int | None = None) -> tuple[list[Forecast], list[str]]:
    """Every route that the table supports for this task: (forecasts, reasons the others were skipped)."""
    out, skipped = [], []
    calls = [("per-token", lambda: per_token_forecast(table, task, x, k_shot)),
             ("pass-until", lambda: pass_until_forecast(table, task, x, k_shot)),
             ("two-step", lambda: two_step_forecast(table, task, k_shot=k_shot))]
    for name, call in calls:
        try:
            out.append(call())
        except LmscaleError as e:
            skipped.append(f"{name}: {e}")
    return out, skipped


__all__ = ["Forecast", "per_token_forecast", "pass_until_forecast", "two_step_forecast", "forecast_task",
           "fit_loss_law", "loss_law", "fit_loss_sigmoid", "ROUTES"]
