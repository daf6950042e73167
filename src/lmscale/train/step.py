"""The jitted, sharded train and eval steps.

State is a dict ``{"params", "opt_state"}``. The train step takes the whole optimizer step's
batch shaped (grad_accum, micro_batch, T + 1), sharded over the mesh's batch axes; gradients of
the micro-batches are accumulated with `lax.scan` inside the same compiled program, so
accumulation costs no host round trips. Dropout keys are folded from (seed, step) inside the
step, so randomness depends only on the step number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lmscale.config import RunConfig
from lmscale.model import transformer
from lmscale.parallel.mesh import batch_axes_size, batch_sharding
from lmscale.parallel.rules import param_shardings
from lmscale.errors import LmscaleError
from lmscale.train.optimizer import build_optimizer

DROPOUT_STREAM = 0xD0


@dataclass
class Trainer:
    """Compiled step functions and shardings for one run config on one mesh."""

    cfg: RunConfig
    mesh: Mesh
    optimizer: optax.GradientTransformation
    state_shardings: Any
    batch_sharding: NamedSharding
    init_state: Callable[[], dict]
    train_step: Callable
    eval_step: Callable


def compute_dtype(cfg: RunConfig):
    return jnp.bfloat16 if cfg.train.precision == "bfloat16" else jnp.float32


def build_trainer(cfg: RunConfig, mesh: Mesh) -> Trainer:
    mcfg, tcfg = cfg.model, cfg.train
    n_batch = batch_axes_size(mesh)
    micro = tcfg.batch_size // tcfg.grad_accum
    if micro % n_batch:
        raise LmscaleError(
            f"train.batch_size={tcfg.batch_size} / grad_accum={tcfg.grad_accum} = {micro} sequences per micro-batch "
            f"is not divisible by the {n_batch} data-parallel devices; expected a multiple of {n_batch}"
        )
    dtype = compute_dtype(cfg)
    key = jax.random.key(cfg.seed)
    init_key = jax.random.fold_in(key, transformer.INIT_STREAM)
    dropout_root = jax.random.fold_in(key, DROPOUT_STREAM)

    abstract_params, axes = _axes_only(mcfg)
    p_shard = param_shardings(abstract_params, axes, mesh)
    optimizer = build_optimizer(tcfg, axes)

    def init_fn():
        params, _ = transformer.init(mcfg, init_key)
        params = jax.lax.with_sharding_constraint(params, p_shard)
        return {"params": params, "opt_state": optimizer.init(params)}

    # Let GSPMD propagate the parameter shardings into the optimizer state, then pin them.
    abstract_state = jax.eval_shape(init_fn)
    state_shardings = _state_shardings(abstract_state, p_shard, mesh)
    init_state = jax.jit(init_fn, out_shardings=state_shardings)
    b_shard = batch_sharding(mesh, leading=1)

    def loss_and_grad(params, batch, k):
        return jax.value_and_grad(transformer.loss_fn)(params, batch, mcfg, dropout_key=k, compute_dtype=dtype)

    def train_step(state, batch, step):
        params = state["params"]
        k = jax.random.fold_in(dropout_root, step) if mcfg.dropout > 0 else None

        def micro_step(carry, xs):
            loss_sum, grad_sum = carry
            i, mb = xs
            loss, grads = loss_and_grad(params, mb, None if k is None else jax.random.fold_in(k, i))
            return (loss_sum + loss, jax.tree.map(jnp.add, grad_sum, grads)), None

        if tcfg.grad_accum == 1:
            loss, grads = loss_and_grad(params, batch[0], k)
        else:
            zeros = jax.tree.map(jnp.zeros_like, params)
            (loss, grads), _ = jax.lax.scan(micro_step, (jnp.zeros((), jnp.float32), zeros), (jnp.arange(tcfg.grad_accum), batch))
            loss = loss / tcfg.grad_accum
            grads = jax.tree.map(lambda g: g / tcfg.grad_accum, grads)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = optimizer.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)
        # A state is good only if the loss, the gradients and every new parameter are finite:
        # the loop never checkpoints a state that is not.
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        for leaf in jax.tree.leaves(new_params):
            finite &= jnp.all(jnp.isfinite(leaf))
        metrics = {"loss": loss, "grad_norm": grad_norm, "update_norm": optax.tree.norm(updates), "finite": finite}
        return {"params": new_params, "opt_state": opt_state}, metrics

    jit_train = jax.jit(
        train_step,
        in_shardings=(state_shardings, b_shard, None),
        out_shardings=(state_shardings, None),
        donate_argnums=(0,),
    )

    def eval_step(params, batch):
        """Per-sequence mean loss (nats/token), shape (B,)."""
        return transformer.token_losses(params, batch, mcfg, compute_dtype=dtype).mean(axis=-1)

    eb_shard = batch_sharding(mesh, leading=0)
    jit_eval = jax.jit(eval_step, in_shardings=(state_shardings["params"], eb_shard), out_shardings=None)
    return Trainer(cfg, mesh, optimizer, state_shardings, b_shard, init_state, jit_train, jit_eval)


def _axes_only(mcfg):
    """(params shapes, axes) without allocating: axes are static PartitionSpecs."""
    holder = {}

    def f():
        params, axes = transformer.init(mcfg, jax.random.key(0))
        holder["axes"] = axes
        return params

    shapes = jax.eval_shape(f)
    return shapes, holder["axes"]


def _state_shardings(abstract_state, p_shard, mesh):
    """Optimizer moments shard like their parameters; scalars (step counts) are replicated."""
    replicated = NamedSharding(mesh, P())
    flat_p, _ = jax.tree_util.tree_flatten_with_path(p_shard)
    by_suffix = {jax.tree_util.keystr(path): s for path, s in flat_p}

    def pick(path, leaf):
        if leaf.ndim == 0:
            return replicated
        # optax moment trees (mu, nu) mirror the params tree: match on the params key path.
        ks = jax.tree_util.keystr(path)
        for suffix, s in by_suffix.items():
            if ks.endswith(suffix):
                return s
        return replicated

    opt = jax.tree_util.tree_map_with_path(pick, abstract_state["opt_state"])
    return {"params": p_shard, "opt_state": opt}


def shard_batch(trainer: Trainer, batch: np.ndarray) -> jax.Array:
    """Host batch (batch_size, T+1) -> device array (grad_accum, micro, T+1) sharded over the mesh."""
    a = trainer.cfg.train.grad_accum
    return jax.device_put(batch.reshape(a, batch.shape[0] // a, batch.shape[1]), trainer.batch_sharding)
