"""Function classes for in-context learning: prompts (x_1, f(x_1), ..., x_k, f(x_k)) drawn in JAX.

API (stable; `lmscale.icl.prompts` turns a `Batch` into tokens, `lmscale.icl.learners` predicts it):

    cfg = TaskConfig(kind="linear", d=5, noise=0.0)          # or task_config({...}) for one-line errors
    batch = sample_batch(cfg, jax.random.fold_in(jax.random.key(seed), step), batch=64, n_points=11)
    batch.xs (B, k, d) float32, batch.ys (B, k) float32, batch.w (B, d) float32 or None
    batch.query_xs / batch.query_ys: None, except for the OOD kinds whose queries differ from the
        context points (random_quadrants, orthogonal, overlapping): then the prediction at position i
        is for query_xs[:, i] (target query_ys[:, i]) from the pairs (xs, ys)[:, :i].

Function classes (Garg et al. 2022, `dtsip/in-context-learning:src/tasks.py`):
- ``linear``: y = w.x, w ~ N(0, tau^2 I_d);
- ``sparse_linear``: w with `sparsity` nonzero coordinates (uniform among the active ones), N(0, tau^2);
- ``relu2nn``: y = tau * sqrt(2/h) W2^T ReLU(W1^T x), W1 (d, h), W2 (h,) ~ N(0, 1), h = `hidden`;
- ``decision_tree``: a complete tree of depth `depth`; node n splits on sign(x_{c_n}) (x > 0 goes right),
  c_n uniform over the active coordinates; leaf values N(0, tau^2). (Garg draws c_n over all d even
  during the curriculum, where the zeroed coordinates always go left; we draw among the active ones.)
Every class adds label noise y += noise * N(0, 1). x ~ N(0, x_scale^2 I) ('gaussian') or
U(-x_scale, x_scale)^d ('uniform', von Oswald uses x_scale = 1).

Task diversity (Raventós et al. 2023): `pool_size = M` draws M tasks once from `pool_seed` (the same
pool for every batch and every caller: `task_pool(cfg)`, `pool_weights(cfg)` for dMMSE) and each
prompt picks one uniformly; `pool_size = None` draws a fresh task per prompt.

Curriculum (Garg): `d_active` (a Python int or a traced int) zeroes the coordinates >= d_active of
every x; `Batch.w` is the effective weight vector with those coordinates zeroed too (they never
affect y). The input width stays d.

Out-of-distribution evaluation (`OODConfig`, Garg's `src/eval.py` prompting strategies):
- ``skewed``: x = U diag(sqrt(lambda)) z with covariance eigenvalues lambda_i proportional to 1/i^2,
  normalised to sum d (the isotropic total variance); U a random rotation fixed by `ood.seed`;
- ``half_subspace``: x confined to a random d//2-dimensional subspace (fixed by `ood.seed`),
  covariance (d / (d//2)) times the projector, so E|x|^2 = d as in distribution;
- ``random_quadrants``: context points x_j -> |x_j| * s with one random sign pattern s per prompt
  (all context in one orthant); the query at position i is the unmodified x_i;
- ``orthogonal``: the query at position i is x_i made orthogonal to x_1..x_{i-1} (same norm); k <= d;
- ``overlapping``: the query at position i is a uniformly chosen earlier context point (i >= 1);
- ``scale_x``, ``scale_y`` multiply x and f(x); ``ood.noise`` adds label noise at evaluation.

`sample_batch` is deterministic in its key and jittable with `cfg`, `batch`, `n_points` static;
callers fold keys from (seed, step): ``jax.random.fold_in(jax.random.key(seed), step)``.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal, NamedTuple

from pydantic import Field, ValidationError, model_validator

from lmscale.config import MAX_WIDTH, Strict, format_validation_error
from lmscale.errors import LmscaleError

KINDS = ("linear", "sparse_linear", "relu2nn", "decision_tree")
OOD_KINDS = ("none", "skewed", "half_subspace", "random_quadrants", "orthogonal", "overlapping")
# OOD kinds whose queries are not the context points themselves (Batch.query_xs is set).
QUERY_OOD_KINDS = ("random_quadrants", "orthogonal", "overlapping")


class OODConfig(Strict):
    """Evaluation-time distribution shift; the defaults are in-distribution."""

    kind: Literal["none", "skewed", "half_subspace", "random_quadrants", "orthogonal", "overlapping"] = "none"
    scale_x: float = Field(1.0, gt=0, description="multiply every x by this (Garg's scale-x: 1/3, 1/2, 2, 3)")
    scale_y: float = Field(1.0, gt=0, description="multiply f(x) by this before noise (Garg's scale-y)")
    noise: float = Field(0.0, ge=0, description="extra label-noise std added at evaluation")
    seed: int = Field(0, ge=0, lt=2**31, description="fixes the skewed / half-subspace covariance")


class TaskConfig(Strict):
    """A function class and its input distribution (see the module docstring)."""

    kind: Literal["linear", "sparse_linear", "relu2nn", "decision_tree"] = "linear"
    d: int = Field(..., ge=1, le=MAX_WIDTH, description="input dimension (Garg: 20, Akyürek: 8, von Oswald: 10)")
    tau: float = Field(1.0, gt=0, description="task scale: w ~ N(0, tau^2 I); leaf values and net output scale")
    noise: float = Field(0.0, ge=0, description="label-noise std sigma (Bayes ridge lambda = sigma^2/tau^2)")
    sparsity: int = Field(3, ge=1, description="sparse_linear: nonzero coordinates s of w")
    hidden: int = Field(100, ge=1, le=MAX_WIDTH, description="relu2nn: hidden width h")
    depth: int = Field(4, ge=1, le=16, description="decision_tree: depth")
    pool_size: int | None = Field(None, ge=1, le=2**31 - 1, description="finite pool of M tasks (Raventós); null = fresh tasks")
    pool_seed: int = Field(0, ge=0, lt=2**31, description="the pool is drawn once from this seed")
    x_dist: Literal["gaussian", "uniform"] = "gaussian"
    x_scale: float = Field(1.0, gt=0, description="gaussian: std of x; uniform: x ~ U(-x_scale, x_scale)")
    ood: OODConfig = OODConfig()

    @model_validator(mode="after")
    def _consistent(self) -> "TaskConfig":
        if self.kind == "sparse_linear" and self.sparsity > self.d:
            raise ValueError(f"task.sparsity={self.sparsity} exceeds task.d={self.d}; expected s <= d")
        if self.ood.kind == "half_subspace" and self.d < 2:
            raise ValueError(f"task.ood.kind='half_subspace' needs task.d >= 2, got d={self.d}")
        return self

    @property
    def is_linear(self) -> bool:
        """Whether y = w.x (+ noise): Batch.w is set and the linear learners are the Bayes references."""
        return self.kind in ("linear", "sparse_linear")

    @property
    def normalizer(self) -> float:
        """Garg's plot normaliser: the zero predictor's squared error (d tau^2 for linear, s tau^2 for sparse)."""
        if self.kind == "linear":
            return self.d * self.tau**2 * self.x_scale**2
        if self.kind == "sparse_linear":
            return self.sparsity * self.tau**2 * self.x_scale**2
        return 1.0


def task_config(raw: dict[str, Any] | TaskConfig, source: str = "task") -> TaskConfig:
    """A `TaskConfig` from a dict; validation errors become one-line `LmscaleError`s."""
    if isinstance(raw, TaskConfig):
        return raw
    try:
        return TaskConfig.model_validate(raw)
    except ValidationError as err:
        raise LmscaleError(format_validation_error(err, source)) from None


class Batch(NamedTuple):
    xs: Any  # (B, k, d) float32
    ys: Any  # (B, k) float32
    w: Any = None  # (B, d) float32 for linear / sparse_linear, else None
    query_xs: Any = None  # (B, k, d): OOD queries (QUERY_OOD_KINDS), else None
    query_ys: Any = None  # (B, k): their targets


def check_prompt(cfg: TaskConfig, batch: int, n_points: int, d_active: Any = None) -> None:
    """Raise a one-line `LmscaleError` for an impossible prompt request (checked before tracing)."""
    if not isinstance(cfg, TaskConfig):
        raise LmscaleError(f"task config is a {type(cfg).__name__}; expected a lmscale.icl.tasks.TaskConfig")
    if int(batch) < 1:
        raise LmscaleError(f"batch={batch}; expected at least 1 prompt")
    if int(n_points) < 1:
        raise LmscaleError(f"n_points={n_points}; expected k >= 1 examples per prompt")
    if cfg.ood.kind == "orthogonal" and n_points > cfg.d:
        raise LmscaleError(
            f"ood.kind='orthogonal' with n_points={n_points} > d={cfg.d}; expected k <= d (no orthogonal "
            "direction is left after d points)"
        )
    if isinstance(d_active, int) and not 1 <= d_active <= cfg.d:
        raise LmscaleError(f"d_active={d_active}; expected 1 <= d_active <= d={cfg.d}")


# ----------------------------------------------------------------------------------------------
# Task parameters: a dict of arrays with a leading task axis; f(params, xs) evaluates them.


def _draw_params(cfg: TaskConfig, key, n: int, d_active):
    import jax
    import jax.numpy as jnp

    d = cfg.d
    active = jnp.arange(d) < d_active  # (d,)
    if cfg.kind == "linear":
        return {"w": cfg.tau * jax.random.normal(key, (n, d)) * active}
    if cfg.kind == "sparse_linear":
        kw, kp = jax.random.split(key)
        w = cfg.tau * jax.random.normal(kw, (n, d))
        # s coordinates uniformly among the active ones: the s smallest of uniform scores.
        scores = jnp.where(active, jax.random.uniform(kp, (n, d)), 2.0)
        rank = jnp.argsort(jnp.argsort(scores, axis=-1), axis=-1)
        return {"w": w * ((rank < cfg.sparsity) & active)}
    if cfg.kind == "relu2nn":
        k1, k2 = jax.random.split(key)
        return {
            "w1": jax.random.normal(k1, (n, d, cfg.hidden)) * active[:, None],
            "w2": jax.random.normal(k2, (n, cfg.hidden)),
        }
    k1, k2 = jax.random.split(key)  # decision_tree: nodes in heap order, root 0, children 2n+1, 2n+2
    nodes = 2 ** (cfg.depth + 1) - 1
    coords = jnp.floor(jax.random.uniform(k1, (n, nodes)) * d_active).astype(jnp.int32)
    return {"coords": jnp.minimum(coords, d - 1), "leaves": cfg.tau * jax.random.normal(k2, (n, nodes))}


def evaluate(cfg: TaskConfig, params: dict, xs):
    """f(x) for each prompt's task: params with leading axis B, xs (B, k, d) -> (B, k)."""
    import jax.numpy as jnp

    if cfg.kind in ("linear", "sparse_linear"):
        return jnp.einsum("bkd,bd->bk", xs, params["w"])
    if cfg.kind == "relu2nn":
        h = jnp.maximum(jnp.einsum("bkd,bdh->bkh", xs, params["w1"]), 0.0)
        return cfg.tau * math.sqrt(2.0 / cfg.hidden) * jnp.einsum("bkh,bh->bk", h, params["w2"])
    node = jnp.zeros(xs.shape[:2], jnp.int32)
    for _ in range(cfg.depth):
        c = jnp.take_along_axis(params["coords"], node, axis=1)  # (B, k)
        right = jnp.take_along_axis(xs, c[..., None], axis=2)[..., 0] > 0
        node = 2 * node + 1 + right.astype(jnp.int32)
    return jnp.take_along_axis(params["leaves"], node, axis=1)


def _pool_key(cfg: TaskConfig) -> TaskConfig:
    # The pool depends on the class, not on noise/OOD/x distribution: evaluation with other
    # noise or OOD settings sees the same M tasks.
    return TaskConfig(kind=cfg.kind, d=cfg.d, tau=cfg.tau, sparsity=cfg.sparsity, hidden=cfg.hidden,
                      depth=cfg.depth, pool_size=cfg.pool_size, pool_seed=cfg.pool_seed)


@functools.lru_cache(maxsize=8)
def _pool_cached(cfg: TaskConfig) -> dict:
    import jax
    import numpy as np

    # Possibly called while tracing sample_batch: evaluate now, as one compiled call.
    with jax.ensure_compile_time_eval():
        draw = jax.jit(_draw_params, static_argnums=(0, 2, 3))
        params = draw(cfg, jax.random.key(cfg.pool_seed), cfg.pool_size, cfg.d)
        return {k: np.asarray(v) for k, v in params.items()}


def task_pool(cfg: TaskConfig) -> dict:
    """The finite task pool of `cfg` (numpy arrays with leading axis M), drawn once from pool_seed."""
    if cfg.pool_size is None:
        raise LmscaleError("task.pool_size is null (fresh tasks); expected a finite pool size M >= 1")
    return _pool_cached(_pool_key(cfg))


def pool_weights(cfg: TaskConfig):
    """The pool's weight vectors (M, d) for linear / sparse_linear tasks (the dMMSE learner's prior)."""
    if not cfg.is_linear:
        raise LmscaleError(f"task.kind={cfg.kind!r} has no weight vectors; expected 'linear' or 'sparse_linear'")
    return task_pool(cfg)["w"]


# ----------------------------------------------------------------------------------------------
# Inputs and OOD transforms


def _draw_xs(cfg: TaskConfig, key, shape):
    import jax

    if cfg.x_dist == "uniform":
        return jax.random.uniform(key, shape, minval=-cfg.x_scale, maxval=cfg.x_scale)
    return cfg.x_scale * jax.random.normal(key, shape)


def ood_covariance_factor(cfg: TaskConfig):
    """The (d, d) matrix A with x = A z (z in distribution) for 'skewed' / 'half_subspace', else None.
    Covariance A A^T: eigenvalues proportional to 1/i^2 (skewed) or d/(d//2) on a random d//2-dim
    subspace (half_subspace); trace d in both cases. A numpy constant fixed by ood.seed."""
    if cfg.ood.kind not in ("skewed", "half_subspace"):
        return None
    return _covariance_factor(cfg.ood.kind, cfg.d, cfg.ood.seed)


@functools.lru_cache(maxsize=16)
def _covariance_factor(kind: str, d: int, seed: int):
    import numpy as np

    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))
    u = q * np.where(np.diag(r) < 0, -1.0, 1.0)  # Haar-distributed rotation
    lam = 1.0 / np.arange(1, d + 1) ** 2 if kind == "skewed" else (np.arange(d) < d // 2).astype(np.float64)
    lam = lam * d / lam.sum()
    a = (u * np.sqrt(lam)) @ u.T  # symmetric square root of U diag(lam) U^T
    a.setflags(write=False)
    return a.astype(np.float32)


def _orthogonal_queries(xs):
    """x_i made orthogonal to x_0..x_{i-1} with |x_i| kept: Gram-Schmidt via QR of X^T (k <= d)."""
    import jax.numpy as jnp

    q, r = jnp.linalg.qr(jnp.swapaxes(xs, 1, 2))  # q (B, d, k), r (B, k, k)
    diag = jnp.diagonal(r, axis1=1, axis2=2)  # the residual of x_i is diag_i * q_i
    sign = jnp.where(diag < 0, -1.0, 1.0)
    return jnp.swapaxes(q, 1, 2) * (sign * jnp.linalg.norm(xs, axis=-1))[..., None]


def _sample(cfg: TaskConfig, key, batch: int, n_points: int, d_active):
    import jax
    import jax.numpy as jnp

    k_task, k_x, k_noise, k_ood = jax.random.split(key, 4)
    d = cfg.d
    d_act = d if d_active is None else d_active
    active = jnp.arange(d) < d_act

    if cfg.pool_size is None:
        params = _draw_params(cfg, k_task, batch, d_act)
    else:
        pool = task_pool(cfg)
        idx = jax.random.randint(k_task, (batch,), 0, cfg.pool_size)
        params = {k: jnp.asarray(v)[idx] for k, v in pool.items()}
        if "w" in params:
            params["w"] = params["w"] * active

    xs = _draw_xs(cfg, k_x, (batch, n_points, d))
    factor = ood_covariance_factor(cfg)
    if factor is not None:
        xs = xs @ jnp.asarray(factor).T
    xs = xs * cfg.ood.scale_x

    ood = cfg.ood.kind
    query = None
    if ood == "random_quadrants":
        signs = jnp.where(jax.random.bernoulli(k_ood, 0.5, (batch, 1, d)), 1.0, -1.0)
        query = xs
        xs = jnp.abs(xs) * signs
    elif ood == "orthogonal":
        query = _orthogonal_queries(xs * active)
    elif ood == "overlapping":
        # position i >= 1 queries a uniformly chosen earlier point j < i; position 0 keeps x_0.
        u = jax.random.uniform(k_ood, (batch, n_points))
        j = jnp.floor(u * jnp.arange(n_points)).astype(jnp.int32)
        query = jnp.take_along_axis(xs, j[..., None], axis=1)
    xs = xs * active

    k_n1, k_n2, k_n3, k_n4 = jax.random.split(k_noise, 4)

    def labels(x, k1, k2):
        y = cfg.ood.scale_y * evaluate(cfg, params, x)
        if cfg.noise > 0:
            y = y + cfg.noise * jax.random.normal(k1, y.shape)
        if cfg.ood.noise > 0:
            y = y + cfg.ood.noise * jax.random.normal(k2, y.shape)
        return y

    ys = labels(xs, k_n1, k_n2)
    w = params["w"] if "w" in params else None
    if query is None:
        return Batch(xs.astype(jnp.float32), ys.astype(jnp.float32), w)
    query = query * active
    return Batch(xs.astype(jnp.float32), ys.astype(jnp.float32), w,
                 query.astype(jnp.float32), labels(query, k_n3, k_n4).astype(jnp.float32))


@functools.cache
def _jitted():
    import jax

    return jax.jit(_sample, static_argnums=(0, 2, 3))


def sample_batch(cfg: TaskConfig, key, batch: int, n_points: int, d_active: Any = None) -> Batch:
    """`batch` prompts of `n_points` examples each (see the module docstring). Deterministic in `key`;
    jitted with cfg/batch/n_points static; `d_active` may be a traced int (curriculum)."""
    check_prompt(cfg, batch, n_points, d_active)
    return _jitted()(cfg, key, int(batch), int(n_points), d_active)
