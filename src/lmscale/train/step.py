"""The jitted, sharded train and eval steps, for one run or for seed-ensemble members.

State is a dict ``{"params", "opt_state"}``. The train step takes the whole optimizer step's
batch shaped (grad_accum, micro_batch, T + 1), sharded over the mesh's batch axes; gradients of
the micro-batches are accumulated with `lax.scan` inside the same compiled program, so
accumulation costs no host round trips. Dropout keys are folded from (seed, step) inside the
step, so randomness depends only on the step number.

`build_trainer(cfg, mesh, members=c)` builds the same init and step for c seed-ensemble members
at once (`lmscale.train.ensemble`): every state leaf gets a leading members axis, the batch is
(c, grad_accum, micro_batch, T + 1), and the per-member init and dropout keys (derived from each
member's seed exactly as for a single run, see `member_keys`) are arguments, so one executable
serves every chunk of c members of an ensemble. For c > 1 the single-run functions are
`jax.vmap`ped over the members axis, which is split over a 'members' mesh axis when the mesh has
one (members are independent: no communication). For c = 1 the state stays unstacked and the
step is the single run's program with the keys as arguments: XLA:CPU keeps a size-1 vmap axis
in its kernels (10-15% slower) and copies a donated state that is reshaped around the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Sequence

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
MEMBERS = "members"  # the mesh axis (and leading state axis) of a seed ensemble


@dataclass
class Trainer:
    """Compiled step functions and shardings for one run config on one mesh.

    For `members` = c > 0 (seed-ensemble members) the functions take the members' keys:
    `init_state(init_keys)`, `train_step(state, batch, step, dropout_roots)` with the batch
    stacked on a leading axis of c, the state too when c > 1 (`stacked`), and per-member metrics
    of shape (c,), and `eval_step(params, batch, j)` evaluating member j.
    """

    cfg: RunConfig
    mesh: Mesh
    optimizer: optax.GradientTransformation
    state_shardings: Any
    batch_sharding: NamedSharding
    init_state: Callable[..., dict]
    train_step: Callable
    eval_step: Callable
    members: int = 0

    @property
    def stacked(self) -> bool:
        """Whether the state carries a leading members axis."""
        return self.members > 1


def compute_dtype(cfg: RunConfig):
    return jnp.bfloat16 if cfg.train.precision == "bfloat16" else jnp.float32


def seed_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """(parameter-init key, dropout root key) of a run: both folded from key(seed)."""
    key = jax.random.key(seed)
    return jax.random.fold_in(key, transformer.INIT_STREAM), jax.random.fold_in(key, DROPOUT_STREAM)


def member_keys(seeds: Sequence[int]) -> tuple[jax.Array, jax.Array]:
    """The `seed_keys` of several runs, stacked: (init keys, dropout roots), each of shape (len(seeds),)."""
    init, dropout = zip(*map(seed_keys, seeds))
    return jnp.stack(init), jnp.stack(dropout)


def build_trainer(cfg: RunConfig, mesh: Mesh, members: int = 0) -> Trainer:
    """The trainer of `cfg`, or with `members` = c > 0 that of c seed-ensemble members at once.

    A member with seed s computes what `build_trainer(cfg with seed s, mesh)` does: its init is
    bitwise the same, its steps too for c = 1 and up to float summation order for c > 1.
    """
    mcfg, tcfg = cfg.model, cfg.train
    n_batch = batch_axes_size(mesh)
    micro = tcfg.batch_size // tcfg.grad_accum
    if micro % n_batch:
        raise LmscaleError(
            f"train.batch_size={tcfg.batch_size} / grad_accum={tcfg.grad_accum} = {micro} sequences per micro-batch "
            f"is not divisible by the {n_batch} data-parallel devices; expected a multiple of {n_batch}"
        )
    dtype = compute_dtype(cfg)

    abstract_params, axes = _axes_only(mcfg)
    p_shard = param_shardings(abstract_params, axes, mesh)
    optimizer = build_optimizer(tcfg, axes, mcfg)

    def init_fn(init_key):
        params, _ = transformer.init(mcfg, init_key)
        params = jax.lax.with_sharding_constraint(params, p_shard)
        return {"params": params, "opt_state": optimizer.init(params)}

    def loss_and_grad(params, batch, k):
        return jax.value_and_grad(transformer.loss_fn)(params, batch, mcfg, dropout_key=k, compute_dtype=dtype)

    def train_step(state, batch, step, dropout_root):
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

    def eval_step(params, batch):
        """Per-sequence mean loss (nats/token), shape (B,)."""
        return transformer.token_losses(params, batch, mcfg, compute_dtype=dtype).mean(axis=-1)

    # Let GSPMD propagate the parameter shardings into the optimizer state, then pin them.
    abstract_state = jax.eval_shape(init_fn, seed_keys(cfg.seed)[0])
    state_shardings = _state_shardings(abstract_state, p_shard, mesh)
    b_shard = batch_sharding(mesh, leading=1)
    eb_shard = batch_sharding(mesh, leading=0)
    if not members:
        init_key, dropout_root = seed_keys(cfg.seed)
        init = partial(init_fn, init_key)
        step_fn = partial(train_step, dropout_root=dropout_root)
        eval_fn = eval_step
    else:
        spmd = MEMBERS if MEMBERS in mesh.axis_names else None
        vmap = partial(jax.vmap, spmd_axis_name=spmd)
        if members > 1:
            state_shardings = jax.tree.map(lambda s: _leading(s, spmd), state_shardings)
        b_shard = _leading(b_shard, spmd)

        def init(init_keys):
            if members == 1:
                return init_fn(init_keys[0])
            return vmap(init_fn)(init_keys)

        def step_fn(state, batch, step, dropout_roots):
            if members == 1:
                new_state, metrics = train_step(state, batch[0], step, dropout_roots[0])
                return new_state, jax.tree.map(lambda x: x[None], metrics)
            return vmap(train_step, in_axes=(0, 0, None, 0))(state, batch, step, dropout_roots)

        def eval_fn(params, batch, member):
            """One member's per-sequence losses: the single-run eval of that member's params."""
            if members == 1:
                return eval_step(params, batch)
            return eval_step(jax.tree.map(lambda x: x[member], params), batch)

    keys = (None,) if members else ()  # the members' keys or index: an argument, not a constant
    init_state = jax.jit(init, out_shardings=state_shardings)
    jit_train = jax.jit(
        step_fn,
        in_shardings=(state_shardings, b_shard, None, *keys),
        out_shardings=(state_shardings, None),
        donate_argnums=(0,),
    )
    jit_eval = jax.jit(eval_fn, in_shardings=(state_shardings["params"], eb_shard, *keys), out_shardings=None)
    return Trainer(cfg, mesh, optimizer, state_shardings, b_shard, init_state, jit_train, jit_eval, members)


def _leading(s: NamedSharding, axis: str | None) -> NamedSharding:
    """The sharding of the same array with a leading members axis (split over `axis`)."""
    return NamedSharding(s.mesh, P(axis, *s.spec))


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
    """Host batch ([members,] batch_size, T+1) -> device array ([members,] grad_accum, micro, T+1)
    sharded over the mesh."""
    a = trainer.cfg.train.grad_accum
    shape = (*batch.shape[:-2], a, batch.shape[-2] // a, batch.shape[-1])
    return jax.device_put(batch.reshape(shape), trainer.batch_sharding)
