"""The compiled, sharded train step of any model and loss, for k seed-ensemble members at once.

State is ``{"params", "opt_state"}``. The train step takes the whole optimizer step's batch (any
pytree whose leaves lead with the batch axis) reshaped to (grad_accum, micro_batch, ...) and
sharded over the mesh's batch axes; micro-batch gradients are accumulated with `lax.scan`
inside the compiled program (their mean: the gradient of the mean loss), so accumulation costs
no host round trips. Keys come from (seed, purpose, step): parameters from
``fold_in(key(seed), INIT_STREAM)``, the loss's randomness (dropout) from
``fold_in(fold_in(fold_in(key(seed), DROPOUT_STREAM), step), micro_batch)``.

A trainer serves chunks of c members (`members` = c): every state leaf gets a leading members
axis, the batch is (c, grad_accum, micro_batch, ...), and the members' init keys and dropout
roots are arguments, so one executable serves every chunk of an ensemble. For c > 1 the
member functions are `jax.vmap`ped (the members axis split over a 'members' mesh axis when the
mesh has one: members are independent, no communication). For c = 1 — a single run, which is an
ensemble of one — the state stays unstacked and the step is the member function itself: XLA:CPU
keeps a size-1 vmap axis in its kernels (10-15% slower) and copies a donated state that is
reshaped around the step.

Optimizer-state shardings come from `optax.tree_map_params` (moments shard like their params).

A trainer built with a `batch_fn` (a jittable ``(seed, step) -> batch`` of one member, such as the
ICL lab's prompt sampler) draws its batches inside the compiled program and runs n steps per call
(`run_steps(n)`: a `lax.scan` over the steps), so small models are not held back by a dispatch
and a separate batch program per step.
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

from lmscale.errors import LmscaleError
from lmscale.model.base import Execution, Model
from lmscale.parallel.mesh import batch_axes_size, batch_sharding
from lmscale.parallel.rules import Rules, Sharder, opt_state_shardings, param_shardings

INIT_STREAM = 0x1417  # parameter-init keys: fold_in(key(seed), INIT_STREAM)
DROPOUT_STREAM = 0xD0  # the loss's randomness: fold_in(key(seed), DROPOUT_STREAM), then step, micro-batch
MEMBERS = "members"  # the mesh axis (and leading state axis) of a seed ensemble

LossFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, dict[str, Any]]]


def seed_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """(parameter-init key, dropout root key) of a run: both folded from key(seed)."""
    key = jax.random.key(seed)
    return jax.random.fold_in(key, INIT_STREAM), jax.random.fold_in(key, DROPOUT_STREAM)


def member_keys(seeds: Sequence[int]) -> tuple[jax.Array, jax.Array]:
    """The `seed_keys` of several runs, stacked: (init keys, dropout roots), each of shape (len(seeds),)."""
    init, dropout = zip(*map(seed_keys, seeds))
    return jnp.stack(init), jnp.stack(dropout)


def execution_for(mesh: Mesh, rules: Rules, compute_dtype=jnp.float32) -> Execution:
    """How models run on `mesh`: activation constraints from the rules when the mesh has several
    devices; `lmscale.model.ops`'s CPU kernels only on CPU and only without tensor parallelism
    (they view weights as 2-D matrices, which would make GSPMD all-gather tensor-sharded ones)."""
    cpu_kernels = jax.default_backend() == "cpu" and mesh.shape.get("tensor", 1) == 1
    if mesh.devices.size == 1:
        return Execution(compute_dtype=compute_dtype, cpu_kernels=cpu_kernels)
    return Execution(compute_dtype=compute_dtype, cpu_kernels=cpu_kernels, constrain=Sharder(mesh, rules))


@dataclass
class Trainer:
    """Compiled step functions and shardings of one model, loss and optimizer on one mesh.

    `init_state(init_keys)`; `train_step(state, batch, step, dropout_roots)` with the batch from
    `shard_batch`, the state stacked on a leading members axis when c > 1 (`stacked`), returning
    per-member metrics of shape (c, ...); `compile_eval(fn)` jits ``fn(params, batch) -> array``
    for member j of a chunk (``f(params, batch, j)``).
    """

    model: Model
    mesh: Mesh
    rules: Rules
    optimizer: optax.GradientTransformation
    grad_accum: int
    members: int
    state_shardings: Any
    member_shardings: Any  # one member's (unstacked) state shardings
    batch_sharding: NamedSharding
    eval_batch_sharding: NamedSharding
    init_state: Callable
    train_step: Callable
    member_init: Callable  # one member's init from its key (unjitted)
    batch_fn: Callable | None = None  # jittable (seed, step) -> one member's batch, drawn in the program
    _run_steps: Any = None  # n -> compiled n-step function (device batches only)

    def run_steps(self, length: int) -> Callable:
        """``f(state, step0, n, seeds, dropout_roots) -> (state, metrics)``: steps step0 .. step0 + n - 1
        (n <= `length`) with batches from `batch_fn`, in one compiled call of `length` iterations;
        metrics stacked (length, members, ...), those past n zero."""
        if self.batch_fn is None:
            raise ValueError("run_steps needs a trainer built with batch_fn")
        return self._run_steps(length)

    @property
    def stacked(self) -> bool:
        """Whether the state carries a leading members axis."""
        return self.members > 1

    def compile_eval(self, fn: Callable) -> Callable:
        """``f(params, batch, j)``: `fn` on member j's params of a chunk, jitted with the mesh's shardings."""
        c = self.members

        def member_fn(params, batch, member):
            return fn(params if c == 1 else jax.tree.map(lambda x: x[member], params), batch)

        return jax.jit(member_fn, in_shardings=(self.state_shardings["params"], self.eval_batch_sharding, None),
                       out_shardings=None)

    def abstract_member_state(self):
        """ShapeDtypeStructs (with shardings) of one member's state: what its checkpoints hold."""
        shapes = jax.eval_shape(self.member_init, jax.random.key(0))
        return jax.tree.map(lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes,
                            self.member_shardings)


def build_trainer(
    model: Model,
    optimizer: optax.GradientTransformation,
    mesh: Mesh,
    *,
    rules: Rules,
    batch_size: int,
    grad_accum: int = 1,
    members: int = 1,
    loss: LossFn | None = None,
    batch_fn: Callable | None = None,
) -> Trainer:
    """The trainer of `model` with `loss` (default `model.loss`) for chunks of `members` members
    (`batch_fn`: batches drawn inside the program, see the module docstring).

    A member with seed s computes what a single run with seed s does: its init is bitwise the
    same, its steps too for c = 1 and up to float summation order for c > 1.
    """
    if members < 1:
        raise ValueError(f"members={members}; expected >= 1")
    n_batch = batch_axes_size(mesh, rules)
    micro = batch_size // grad_accum
    if batch_size % grad_accum or micro % n_batch:
        raise LmscaleError(
            f"train.batch_size={batch_size} / grad_accum={grad_accum} = {batch_size / grad_accum:g} sequences per "
            f"micro-batch is not a multiple of the {n_batch} data-parallel devices; expected a multiple of {n_batch}"
        )
    loss_fn = loss or model.loss
    p_shard = param_shardings(model.shapes, model.axes, mesh, rules)
    member_shardings = {"params": p_shard, "opt_state": opt_state_shardings(optimizer, model.shapes, p_shard, mesh)}

    def init_fn(init_key):
        params = jax.lax.with_sharding_constraint(model.init(init_key), p_shard)
        return {"params": params, "opt_state": optimizer.init(params)}

    def value_and_grad(params, batch, k):
        return jax.value_and_grad(loss_fn, has_aux=True)(params, batch, k)

    def member_step(state, batch, step, dropout_root):
        params = state["params"]
        k = jax.random.fold_in(dropout_root, step)
        if grad_accum == 1:
            (loss_v, aux), grads = value_and_grad(params, jax.tree.map(lambda x: x[0], batch), k)
        else:
            def micro_step(carry, xs):
                i, mb = xs
                (lv, aux_i), g = value_and_grad(params, mb, jax.random.fold_in(k, i))
                return jax.tree.map(jnp.add, carry, (lv, aux_i, g)), None

            (lv0, aux0), g0 = jax.eval_shape(value_and_grad, params, jax.tree.map(lambda x: x[0], batch), k)
            zero = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), (lv0, aux0, g0))
            (loss_v, aux, grads), _ = jax.lax.scan(micro_step, zero, (jnp.arange(grad_accum), batch))
            # The mean over micro-batches: the gradient of the whole step's mean loss.
            loss_v, aux, grads = jax.tree.map(lambda x: x / grad_accum, (loss_v, aux, grads))
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = optimizer.update(grads, state["opt_state"], params)
        new_params = optax.apply_updates(params, updates)
        # A state is good only if the loss, the gradients and every new parameter are finite:
        # the loop never checkpoints a state that is not.
        finite = jnp.isfinite(loss_v) & jnp.isfinite(grad_norm)
        for leaf in jax.tree.leaves(new_params):
            finite &= jnp.all(jnp.isfinite(leaf))
        metrics = {"loss": loss_v, "grad_norm": grad_norm, "update_norm": optax.tree.norm(updates), "finite": finite,
                   **aux}
        return {"params": new_params, "opt_state": opt_state}, metrics

    spmd = MEMBERS if MEMBERS in mesh.axis_names else None
    vmap = partial(jax.vmap, spmd_axis_name=spmd)
    b_shard = _leading(batch_sharding(mesh, leading=1, rules=rules), spmd)
    state_shardings = member_shardings
    if members > 1:
        state_shardings = jax.tree.map(lambda s: _leading(s, spmd), member_shardings)

    def init(init_keys):
        if members == 1:
            return init_fn(init_keys[0])
        return vmap(init_fn)(init_keys)

    def step_fn(state, batch, step, dropout_roots):
        if members == 1:
            new_state, metrics = member_step(state, jax.tree.map(lambda x: x[0], batch), step, dropout_roots[0])
            return new_state, jax.tree.map(lambda x: x[None], metrics)
        return vmap(member_step, in_axes=(0, 0, None, 0))(state, batch, step, dropout_roots)

    init_state = jax.jit(init, out_shardings=state_shardings)
    jit_train = jax.jit(
        step_fn,
        in_shardings=(state_shardings, b_shard, None, None),
        out_shardings=(state_shardings, None),
        donate_argnums=(0,),
    )
    run_steps = None
    if batch_fn is not None:
        compiled: dict[int, Callable] = {}
        split = partial(_split_micro, grad_accum)

        def member_batch(seed, step):
            return jax.tree.map(split, batch_fn(seed, step))

        def one_step(state, step, seeds, dropout_roots):
            if members == 1:
                batch = jax.tree.map(lambda x: x[None], member_batch(seeds[0], step))
            else:
                batch = jax.vmap(member_batch, in_axes=(0, None))(seeds, step)
            if mesh.devices.size > 1:
                batch = jax.lax.with_sharding_constraint(batch, b_shard)
            return step_fn(state, batch, step, dropout_roots)

        def steps_fn(state, step0, n_active, seeds, dropout_roots, length):
            # Always `length` iterations, the ones past `n_active` skipped: every call runs the same
            # program whatever its number of steps, so where calls begin and end (a resume, a
            # pause) cannot change a single bit (a 1-step scan compiles to other code than a longer one).
            metrics_shape = jax.eval_shape(one_step, state, step0, seeds, dropout_roots)[1]

            def body(state, i):
                def skip(state):
                    return state, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metrics_shape)

                return jax.lax.cond(i < n_active, lambda st: one_step(st, step0 + i, seeds, dropout_roots), skip, state)

            return jax.lax.scan(body, state, jnp.arange(length, dtype=jnp.int32))

        def run_steps(length: int) -> Callable:
            if length not in compiled:
                compiled[length] = jax.jit(partial(steps_fn, length=length),
                                           in_shardings=(state_shardings, None, None, None, None),
                                           out_shardings=(state_shardings, None), donate_argnums=(0,))
            return compiled[length]

    return Trainer(model, mesh, rules, optimizer, grad_accum, members, state_shardings, member_shardings, b_shard,
                   batch_sharding(mesh, leading=0, rules=rules), init_state, jit_train, init_fn, batch_fn, run_steps)


def _split_micro(grad_accum: int, x):
    """(batch_size, ...) -> (grad_accum, micro_batch, ...)."""
    return x.reshape(grad_accum, x.shape[0] // grad_accum, *x.shape[1:])


def _leading(s: NamedSharding, axis: str | None) -> NamedSharding:
    """The sharding of the same array with a leading members axis (split over `axis`)."""
    return NamedSharding(s.mesh, P(axis, *s.spec))


def shard_batch(trainer: Trainer, batch) -> Any:
    """Host batch pytree (leaves (members, batch_size, ...)) -> device pytree (members, grad_accum,
    micro, ...) sharded over the mesh."""
    a = trainer.grad_accum

    def split(x):
        x = np.asarray(x) if not isinstance(x, jax.Array) else x
        return x.reshape(x.shape[0], a, x.shape[1] // a, *x.shape[2:])

    return jax.device_put(jax.tree.map(split, batch), trainer.batch_sharding)
