"""Evaluation of a trained ICL model against the reference learners.

- `error_curves`: normalised squared error versus the number of in-context examples k for the
  model and each learner of `eval.learners`, with bootstrap intervals over prompts (Garg).
- `compare`: SPD per k, MSPD (k < d) and ILWD (implied weights fitted on probe inputs) between
  the model and each learner, and the best-matching learner (Akyürek).
- `lsa_report`: for the linear self-attention model, its test loss against one GD step with the
  best step size (closed form over the evaluation prompts), the zero predictor and OLS (von Oswald).

Evaluation prompts come from ``key(eval.seed)``, never the training stream, with
`eval.task_overrides` applied to the task (OOD prompts, fresh tasks for a finite-pool model).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from lmscale.errors import LmscaleError
from lmscale.icl import model as icl_model
from lmscale.icl.config import ICLConfig, LearnerSpec

MODEL = "transformer"


def eval_task(cfg: ICLConfig):
    """The task prompts are drawn from in evaluation: `task` with `eval.task_overrides` applied."""
    from pydantic import ValidationError

    from lmscale.icl.tasks import TaskConfig

    if not cfg.eval.task_overrides:
        return cfg.task
    try:
        return TaskConfig.model_validate(cfg.task.model_dump() | cfg.eval.task_overrides)
    except ValidationError as err:
        from lmscale.config import format_validation_error

        raise LmscaleError(format_validation_error(err, "eval.task_overrides")) from None


def eval_batch(cfg: ICLConfig, n: int | None = None, stream: int = 0, task=None):
    from lmscale.icl.tasks import sample_batch

    key = jax.random.fold_in(jax.random.key(cfg.eval.seed), stream)
    return sample_batch(task or eval_task(cfg), key, n or cfg.eval.prompts, cfg.n_points)


def predict_batched(params, xs, ys, cfg: ICLConfig, chunk: int = 1024) -> np.ndarray:
    """Model predictions (B, k) in chunks of prompts (one compiled program per chunk size)."""
    fn = icl_model.predict_jit(cfg)
    out = [np.asarray(fn(params, xs[i:i + chunk], ys[i:i + chunk])) for i in range(0, xs.shape[0], chunk)]
    return np.concatenate(out, axis=0)


def make_learners(cfg: ICLConfig, specs: list[LearnerSpec] | None = None) -> dict[str, Any]:
    """{label: learner} for `specs` (default `eval.learners`); the training task supplies ridge's
    lam='bayes' and dMMSE's pool (the tasks the model was trained on; args.pool_size picks the pool
    of that size from the same pool_seed instead) and noise."""
    from lmscale.icl.learners import make_learner

    out = {}
    for s in specs if specs is not None else cfg.eval.learners:
        args, task = dict(s.args), cfg.task
        if s.name == "dmmse" and "pool_size" in args:  # the pool of another run (task-diversity sweeps)
            task = task.model_copy(update={"pool_size": int(args.pop("pool_size"))})
        learner = make_learner(s.name, task=task, **args)
        out[s.label or learner.label] = learner
    return out


class ModelAsLearner:
    """A trained model with the learners' `predict(ctx_xs, ctx_ys, query_xs)` interface (for ILWD):
    each query is appended to the context as the next x and read at its position."""

    def __init__(self, params, cfg: ICLConfig):
        self.params, self.cfg = params, cfg
        self._cache: dict[bytes, np.ndarray] = {}  # ILWD asks the same contexts again for each learner

    def predict(self, ctx_xs, ctx_ys, query_xs):
        import hashlib

        key = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in (ctx_xs, ctx_ys, query_xs))).digest()
        if key not in self._cache:
            if len(self._cache) >= 256:
                self._cache.clear()
            self._cache[key] = self._predict(np.asarray(ctx_xs), np.asarray(ctx_ys), np.asarray(query_xs))
        return self._cache[key]

    def _predict(self, ctx_xs, ctx_ys, query_xs):
        B, n, d = ctx_xs.shape
        q = query_xs.shape[1]
        xs = np.concatenate([np.repeat(ctx_xs[:, None], q, 1), query_xs[:, :, None]], axis=2).reshape(B * q, n + 1, d)
        ys = np.concatenate([np.repeat(ctx_ys[:, None], q, 1), np.zeros((B, q, 1), ctx_ys.dtype)], axis=2).reshape(B * q, n + 1)
        pred = predict_batched(self.params, jnp.asarray(xs), jnp.asarray(ys), self.cfg)
        return pred[:, -1].reshape(B, q)


class Curves(NamedTuple):
    k: np.ndarray  # number of in-context examples before each prediction
    curves: dict[str, Any]  # label -> metrics.CurveResult (mean, low, high), normalised error
    normalizer: float
    predictions: dict[str, np.ndarray]  # label -> (B, k) predictions
    ys: np.ndarray


def error_curves(params, cfg: ICLConfig, learners: dict[str, Any] | None = None) -> Curves:
    from lmscale.icl.metrics import normalized_error

    if cfg.model.kind != "gpt":
        raise LmscaleError("error curves need a model that predicts every prefix; expected model.kind='gpt'")
    b = eval_batch(cfg)
    xs, ys = np.asarray(b.xs), np.asarray(b.ys)
    qs = None if b.query_xs is None else np.asarray(b.query_xs)
    if qs is None:
        preds = {MODEL: predict_batched(params, b.xs, b.ys, cfg)}
    else:  # OOD queries differ from the context points: one causal pass per position
        cols = [predict_batched(params, jnp.asarray(xs).at[:, i].set(qs[:, i]), b.ys, cfg)[:, i] for i in range(xs.shape[1])]
        preds = {MODEL: np.stack(cols, 1)}
        ys = np.asarray(b.query_ys)
    for label, learner in (learners if learners is not None else make_learners(cfg)).items():
        preds[label] = np.asarray(learner.predict_prefixes(xs, np.asarray(b.ys), qs))
    norm = eval_task(cfg).normalizer
    e = cfg.eval
    curves = {
        label: normalized_error(p, ys, norm, n_boot=e.bootstrap, ci=e.confidence, seed=e.seed)
        for label, p in preds.items()
    }
    return Curves(np.arange(cfg.n_points), curves, norm, preds, ys)


def compare(params, cfg: ICLConfig, curves: Curves | None = None, ilwd_prompts: int = 256) -> dict[str, Any]:
    """Distances between the model and each learner, divided by d (Akyürek): SPD per k, MSPD over
    1 <= k < d, Raventós' Δ (SPD over all k) and ILWD after n = 1..k-1 pairs (implied weights of the
    model fitted on 2d probe inputs); the learners ranked by MSPD."""
    from lmscale.icl.metrics import best_match, delta, ilwd_curve, mspd, spd

    curves = curves or error_curves(params, cfg)
    d = cfg.task.d
    model_pred = curves.predictions[MODEL]
    refs = {k: v for k, v in curves.predictions.items() if k != MODEL}
    b = eval_batch(cfg, n=ilwd_prompts, stream=1)
    n_probe = max(2 * d, 8)
    probe_xs = np.asarray(eval_batch(cfg, n=ilwd_prompts * n_probe, stream=2).xs)[:, 0].reshape(ilwd_prompts, n_probe, d)
    wrapped = ModelAsLearner(params, cfg)
    # The model reads at most n_points - 1 context pairs before a query.
    xs, ys = np.asarray(b.xs)[:, :-1], np.asarray(b.ys)[:, :-1]
    rows = []
    for label, learner in make_learners(cfg).items():
        ilwd_k = ilwd_curve(wrapped, learner, xs, ys, probe_xs, d)
        rows.append({"learner": label, "spd": spd(model_pred, refs[label], d).tolist(),
                     "mspd": mspd(model_pred, refs[label], d) if d >= 2 else float("nan"),
                     "delta": delta(model_pred, refs[label], d), "ilwd": ilwd_k.tolist(), "ilwd_mean": float(ilwd_k.mean())})
    ranking = best_match(model_pred, refs, d, "mspd" if d >= 2 else "spd")
    return {"rows": rows, "ranking": ranking, "best_match": ranking[0][0], "k_ilwd": list(range(1, cfg.n_points)), "d": d}


def lsa_report(params, cfg: ICLConfig, n: int = 10_000) -> dict[str, Any]:
    """Test loss (y units², plain MSE) of the LSA, of one GD step from zero with the best step size,
    of the zero predictor and OLS, and the mean squared difference between LSA and GD predictions."""
    from lmscale.icl.learners import best_gd_lr, make_learner

    b = eval_batch(cfg, n=n)
    xs, ys = np.asarray(b.xs, np.float64), np.asarray(b.ys, np.float64)
    ctx_x, ctx_y, q_x, y_q = xs[:, :-1], ys[:, :-1], xs[:, -1:], ys[:, -1]
    pred = np.asarray(icl_model.predict(params, b.xs, b.ys, cfg))[:, 0]
    eta = best_gd_lr(ctx_x, ctx_y, q_x, y_q[:, None])
    gd = np.asarray(make_learner("gd", steps=1, lr=eta).predict(ctx_x, ctx_y, q_x))[:, 0]
    ols = np.asarray(make_learner("least_squares").predict(ctx_x, ctx_y, q_x))[:, 0]
    mse = lambda p: float(np.mean(np.square(p - y_q)))  # noqa: E731
    return {
        "prompts": n, "loss_model": mse(pred), "loss_gd_best": mse(gd), "eta_best": eta, "loss_zero": mse(0 * y_q),
        "loss_ols": mse(ols), "model_vs_gd_msd": float(np.mean(np.square(pred - gd))),
        "relative_gap": mse(pred) / mse(gd) - 1.0,
    }
