"""Probes of a trained ICL transformer: what its layers encode, and which weight vector it applies.

A simplified version of Akyürek et al. §5: instead of their position-attention probe, each probe
reads the residual stream of one layer at the position of y_n (the last label of n in-context
examples) and predicts a target computed from those n examples:

- ``xty``: X^T y, the moment a gradient step needs;
- ``w_ols``: the (min-norm) least-squares weights.

A linear probe (ridge, closed form) and a 2-layer GELU MLP probe (Adam, full batch, vmapped over
layers) are fitted on `eval.probe_prompts` prompts and scored by R² on a quarter as many held-out
prompts. A control is the same probe on a model trained with one fixed w (``task.pool_size: 1``).

`gradient_alignment`: the gradient of the prediction with respect to the query x_q against the
implied least-squares weight vector (Garg: cosine ≈ 1 for a model that runs least squares).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lmscale.errors import LmscaleError
from lmscale.icl import model as icl_model
from lmscale.icl.config import ICLConfig
from lmscale.icl.evaluate import eval_batch

TARGETS = ("xty", "w_ols")


def probe_targets(xs, ys, n: int) -> dict[str, np.ndarray]:
    """Targets from the first n examples: X^T y and the min-norm least-squares weights, (B, d)."""
    from lmscale.icl.learners import make_learner

    cx, cy = np.asarray(xs[:, :n], np.float64), np.asarray(ys[:, :n], np.float64)
    return {"xty": np.einsum("bnd,bn->bd", cx, cy), "w_ols": np.asarray(make_learner("least_squares").weights(cx, cy))}


def layer_features(params, cfg: ICLConfig, xs, ys, n: int, chunk: int = 1024) -> np.ndarray:
    """Residual streams (depth + 1, B, width) at the y_n token (index 2n - 1): read-in, then each block."""
    if cfg.model.kind != "gpt":
        raise LmscaleError("probes read the GPT's residual stream; expected model.kind='gpt'")
    fn = icl_model.compiled(("hidden", icl_model.model_key(cfg), n),
                            lambda: lambda p, x, y: icl_model.forward(p, x, y, cfg, capture_hidden=True).hidden[:, :, 2 * n - 1])
    return np.concatenate([np.asarray(fn(params, xs[i:i + chunk], ys[i:i + chunk])) for i in range(0, len(xs), chunk)], 1)


def _standardize(train, test):
    mu, sd = train.mean(-2, keepdims=True), train.std(-2, keepdims=True) + 1e-6
    return (train - mu) / sd, (test - mu) / sd


def r2(pred, target) -> float:
    """1 - SSE / SST over all target coordinates (held-out prompts)."""
    return float(1.0 - np.sum((pred - target) ** 2) / np.sum((target - target.mean(0)) ** 2))


def linear_probe(h_train, t_train, h_test, lam: float = 1e-3) -> np.ndarray:
    """Ridge regression with intercept per layer: h (L, B, W) -> predictions (L, B_test, d)."""
    a, b = _standardize(h_train.astype(np.float64), h_test.astype(np.float64))
    a = np.concatenate([a, np.ones(a.shape[:-1] + (1,))], -1)
    b = np.concatenate([b, np.ones(b.shape[:-1] + (1,))], -1)
    gram = np.einsum("lbi,lbj->lij", a, a) + lam * a.shape[1] * np.eye(a.shape[-1])
    w = np.linalg.solve(gram, np.einsum("lbi,bd->lid", a, t_train))
    return np.einsum("lbi,lid->lbd", b, w)


def mlp_probe(h_train, t_train, h_test, hidden: int = 256, steps: int = 500, lr: float = 1e-3, seed: int = 0) -> np.ndarray:
    """A 2-layer GELU MLP per layer (vmapped), Adam on the full batch; predictions (L, B_test, d)."""
    a, b = _standardize(h_train, h_test)
    mu, sd = t_train.mean(0), t_train.std(0) + 1e-6
    t = jnp.asarray((t_train - mu) / sd, jnp.float32)
    L, _, W = a.shape
    d = t.shape[-1]
    key = jax.random.key(seed)
    params = {
        "w1": jax.random.normal(jax.random.fold_in(key, 1), (L, W, hidden)) / np.sqrt(W), "b1": jnp.zeros((L, hidden)),
        "w2": jax.random.normal(jax.random.fold_in(key, 2), (L, hidden, d)) / np.sqrt(hidden), "b2": jnp.zeros((L, d)),
    }

    def apply(p, h):
        return jax.nn.gelu(h @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    opt = optax.adam(lr)

    def loss(p, h):
        return jnp.mean(jnp.square(apply(p, h) - t))

    @jax.jit
    def fit(p, h):
        def step(carry, _):
            p, s = carry
            g = jax.grad(loss)(p, h)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (p, opt.init(p)), None, length=steps)[0][0]

    fitted = jax.vmap(fit)(params, jnp.asarray(a, jnp.float32))
    pred = jax.vmap(apply)(fitted, jnp.asarray(b, jnp.float32))
    return np.asarray(pred) * sd + mu


def probe_model(params, cfg: ICLConfig, ns: list[int] | None = None, mlp_steps: int = 500) -> list[dict[str, Any]]:
    """R² per (n, layer, target, probe) on held-out prompts; layer 0 is the read-in output."""
    d = cfg.task.d
    ns = ns or sorted({max(1, d // 2), d, cfg.n_points - 1})
    bad = [n for n in ns if not 1 <= n < cfg.n_points]
    if bad:
        raise LmscaleError(f"probe n={bad[0]}; expected 1 <= n < n_points={cfg.n_points}")
    n_train = cfg.eval.probe_prompts
    b = eval_batch(cfg, n=n_train + max(1, n_train // 4), stream=3)
    rows = []
    for n in ns:
        h = layer_features(params, cfg, b.xs, b.ys, n)
        targets = probe_targets(np.asarray(b.xs), np.asarray(b.ys), n)
        for name in TARGETS:
            tgt = targets[name]
            fits = {"linear": linear_probe(h[:, :n_train], tgt[:n_train], h[:, n_train:]),
                    "mlp": mlp_probe(h[:, :n_train], tgt[:n_train], h[:, n_train:], steps=mlp_steps)}
            for kind, pred in fits.items():
                for layer in range(h.shape[0]):
                    rows.append({"n": n, "layer": layer, "target": name, "probe": kind, "r2": r2(pred[layer], tgt[n_train:])})
    return rows


def gradient_alignment(params, cfg: ICLConfig, prompts: int = 512) -> list[dict[str, Any]]:
    """Per n: mean cosine between d(prediction at x_{n+1})/d(x_{n+1}) and the least-squares
    weights of the first n examples (and the true w when the task has one)."""
    b = eval_batch(cfg, n=prompts, stream=4)

    @jax.jit
    def grads(xs, ys):
        # d pred_n / d x_n for every n in one program (n traced): (k, B, d).
        def one(n):
            g = jax.grad(lambda x: icl_model.predict(params, x, ys, cfg)[:, n].sum())(xs)
            return jnp.take(g, n, axis=1)

        return jax.lax.map(one, jnp.arange(xs.shape[1]))

    all_g = np.asarray(grads(b.xs, b.ys))
    rows = []
    for n in range(1, cfg.n_points):
        g = all_g[n]
        w_ols = probe_targets(np.asarray(b.xs), np.asarray(b.ys), n)["w_ols"]
        cos = lambda u, v: float(np.mean(np.sum(u * v, -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1) + 1e-12)))  # noqa: E731
        row = {"n": n, "cos_w_ols": cos(g, w_ols)}
        if b.w is not None:
            row["cos_w_true"] = cos(g, np.asarray(b.w))
        rows.append(row)
    return rows
