"""Metrics for in-context regression: error curves with bootstrap intervals, and distances between
learners (Garg et al. 2022; Akyürek et al. 2022 §4.1; Raventós et al. 2023). numpy; predictions are
(B, k) arrays (column i predicts x_i from the pairs before it), numpy or JAX.

    squared_error(pred, ys) -> (B, k)
    normalized_error(pred, ys, normalizer, n_boot=1000, ci=0.9, seed=0) -> CurveResult(mean, low, high)
        Garg's curve: mean over prompts / normaliser (d for linear, s for sparse: the zero
        predictor's error; `TaskConfig.normalizer`), a percentile bootstrap over prompts.
    spd(pred_a, pred_b, d=1) -> (k,)      Akyürek's squared prediction difference per k, divided by d
    mspd(pred_a, pred_b, d) -> float      SPD averaged over 1 <= k < d (the underdetermined regime)
    delta(pred_a, pred_b, d) -> float     Raventós' Delta = E[(1/KD) sum_k (a_k - b_k)^2]
    implied_weights(learner, ctx_xs, ctx_ys, probe_xs) -> (w (B, d), r2 (B,))
    ilwd(learner_a, learner_b, ctx_xs, ctx_ys, probe_xs, d=None) -> float
        Akyürek's implied linear weight difference E|w_a - w_b|^2 / d: exact weights for linear
        learners, else the min-norm OLS fit of the learner's predictions on probe inputs. Any object
        with `predict(ctx_xs, ctx_ys, query_xs) -> (B, q)` works (e.g. a wrapped trained model).
    best_match(model_pred, {name: pred}, d, distance="mspd") -> [(name, distance), ...] nearest first
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple

import numpy as np

from lmscale.errors import LmscaleError


class CurveResult(NamedTuple):
    mean: np.ndarray  # (k,)
    low: np.ndarray  # (k,) lower end of the bootstrap interval
    high: np.ndarray  # (k,)


def _pair(a, b, names=("pred_a", "pred_b")) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise LmscaleError(f"{names[0]} {a.shape} and {names[1]} {b.shape}; expected two arrays of shape (B, k)")
    return a, b


def _positive(x: float, name: str) -> float:
    if not (isinstance(x, (int, float, np.integer, np.floating)) and x > 0 and np.isfinite(x)):
        raise LmscaleError(f"{name}={x!r}; expected a positive number")
    return float(x)


def squared_error(pred, ys) -> np.ndarray:
    """(B, k) squared error of each prediction."""
    p, y = _pair(pred, ys, ("pred", "ys"))
    return (p - y) ** 2


def bootstrap_mean(values, n_boot: int = 1000, ci: float = 0.9, seed: int = 0) -> CurveResult:
    """Mean over axis 0 of (B, k) values with a percentile bootstrap interval over the B rows."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] < 1:
        raise LmscaleError(f"values {v.shape}; expected (B, k) with B >= 1")
    if not 0 < ci < 1:
        raise LmscaleError(f"ci={ci}; expected a confidence level in (0, 1)")
    if n_boot < 0:
        raise LmscaleError(f"n_boot={n_boot}; expected >= 0 resamples")
    mean = v.mean(axis=0)
    if n_boot == 0:
        return CurveResult(mean, mean.copy(), mean.copy())
    b = v.shape[0]
    rng = np.random.default_rng(seed)
    # Resample counts instead of indices: (n_boot, B) @ (B, k) never materialises n_boot * B * k.
    counts = rng.multinomial(b, np.full(b, 1.0 / b), size=n_boot).astype(np.float64)
    boot = counts @ v / b
    lo, hi = np.quantile(boot, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    return CurveResult(mean, lo, hi)


def normalized_error(pred, ys, normalizer: float, n_boot: int = 1000, ci: float = 0.9, seed: int = 0) -> CurveResult:
    """Garg's curve: squared error per position / normaliser, mean over prompts with a bootstrap CI."""
    norm = _positive(normalizer, "normalizer")
    return bootstrap_mean(squared_error(pred, ys) / norm, n_boot=n_boot, ci=ci, seed=seed)


def spd(pred_a, pred_b, d: float = 1.0) -> np.ndarray:
    """Akyürek's SPD per position: mean over prompts of (a - b)^2, divided by d."""
    a, b = _pair(pred_a, pred_b)
    return ((a - b) ** 2).mean(axis=0) / _positive(d, "d")


def mspd(pred_a, pred_b, d: int) -> float:
    """SPD averaged over the positions 1 <= k < d (Akyürek's Fig. 2-3; k = 0 is left out: every
    reference learner predicts 0 there, so it measures only the model's bias)."""
    curve = spd(pred_a, pred_b, d)
    hi = min(int(d), curve.shape[0])
    if hi < 2:
        raise LmscaleError(f"mspd needs positions 1 <= k < d; got d={d} and k={curve.shape[0]}; expected d >= 2 and k >= 2")
    return float(curve[1:hi].mean())


def delta(pred_a, pred_b, d: float) -> float:
    """Raventós' Delta = E[(1/(K D)) sum_k (a_k - b_k)^2]: the SPD averaged over all K positions."""
    return float(spd(pred_a, pred_b, d).mean())


def implied_weights(learner: Any, ctx_xs, ctx_ys, probe_xs) -> tuple[np.ndarray, np.ndarray]:
    """The weight vector a learner implies on one context: exact for linear learners (`learner.linear`),
    else the min-norm OLS fit of its predictions on probe inputs (B, q, d) or (q, d) shared. Returns
    (w (B, d), r2 (B,)): R^2 of the linear fit (1 for linear learners)."""
    from lmscale.icl.learners import LeastSquares

    ctx_xs = np.asarray(ctx_xs, dtype=np.float64)
    if ctx_xs.ndim != 3:
        raise LmscaleError(f"ctx_xs {ctx_xs.shape}; expected (B, k, d)")
    b, _, d = ctx_xs.shape
    if getattr(learner, "linear", False):
        return np.asarray(learner.weights(ctx_xs, ctx_ys), dtype=np.float64), np.ones(b)
    probe = np.asarray(probe_xs, dtype=np.float64)
    if probe.ndim == 2:
        probe = np.broadcast_to(probe, (b, *probe.shape))
    if probe.ndim != 3 or probe.shape[0] != b or probe.shape[2] != d:
        raise LmscaleError(f"probe_xs {probe.shape} does not match ctx_xs {ctx_xs.shape}; expected (B, q, d) or (q, d)")
    if not hasattr(learner, "predict"):
        raise LmscaleError(f"{type(learner).__name__} has no predict(ctx_xs, ctx_ys, query_xs); expected a learner")
    pred = np.asarray(learner.predict(ctx_xs, ctx_ys, probe), dtype=np.float64)
    if pred.shape != probe.shape[:2]:
        raise LmscaleError(f"predict returned {pred.shape}; expected (B, q) = {probe.shape[:2]}")
    w = LeastSquares().weights(probe, pred)
    resid = pred - np.einsum("bqd,bd->bq", probe, w)
    tot = ((pred - pred.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    r2 = 1 - (resid**2).sum(axis=1) / np.where(tot > 0, tot, 1.0)
    return w, np.where(tot > 0, r2, 1.0)


def ilwd(learner_a: Any, learner_b: Any, ctx_xs, ctx_ys, probe_xs, d: float | None = None) -> float:
    """Akyürek's ILWD: mean over prompts of |w_a - w_b|^2 / d (d defaults to the input dimension)."""
    wa, _ = implied_weights(learner_a, ctx_xs, ctx_ys, probe_xs)
    wb, _ = implied_weights(learner_b, ctx_xs, ctx_ys, probe_xs)
    norm = _positive(wa.shape[1] if d is None else d, "d")
    return float(((wa - wb) ** 2).sum(axis=1).mean() / norm)


def ilwd_curve(learner_a: Any, learner_b: Any, xs, ys, probe_xs, d: float | None = None) -> np.ndarray:
    """ILWD after n = 1..k context pairs (Akyürek's Fig. 1): (k,)."""
    xs = np.asarray(xs)
    return np.array([ilwd(learner_a, learner_b, xs[:, :n], np.asarray(ys)[:, :n], probe_xs, d)
                     for n in range(1, xs.shape[1] + 1)])


def best_match(model_pred, preds: Mapping[str, Any], d: int, distance: str = "mspd") -> list[tuple[str, float]]:
    """Reference learners ranked by distance to the model's predictions, nearest first.
    distance: 'mspd' (Akyürek, positions 1 <= k < d), 'spd' (mean SPD over all positions, = Raventós' Delta)."""
    if not preds:
        raise LmscaleError("best_match got no reference predictions; expected {name: (B, k) predictions}")
    if distance == "mspd":
        fn = lambda p: mspd(model_pred, p, d)  # noqa: E731
    elif distance == "spd":
        fn = lambda p: delta(model_pred, p, d)  # noqa: E731
    else:
        raise LmscaleError(f"distance={distance!r}; expected 'mspd' or 'spd'")
    return sorted(((name, fn(p)) for name, p in preds.items()), key=lambda t: t[1])
