"""The model seam: parameters declared once with their logical axes, the model protocol, and how it runs.

Every architecture is one module under `lmscale.model` holding a config class (a `ModelSpec`
subclass whose `kind` is the discriminator of `model:` sections) and a `Model` subclass
registered with `lmscale.model.registry.register`. A model is pure functions over a params
pytree (nested dicts of arrays):

- ``declare(key)``: the parameter tree, every leaf a `Param` (initial value + logical axis names,
  e.g. ``("layers", "embed", "mlp")``). This is the one place a parameter is written down;
  `init` and `axes` are two views of it, so the axes can never disagree with the params.
- ``init(key) -> params`` and ``axes`` (a tree of `PartitionSpec`s of logical names, from tracing
  `declare` with `jax.eval_shape`: nothing is drawn).
- ``apply(params, inputs, *, rng=None)``: the forward pass (``rng=None`` is evaluation mode).
- ``loss(params, batch, rng) -> (loss, metrics)``: a scalar to minimise and a dict of auxiliary
  values (the training core averages them over micro-batches).
- ``param_count()`` / ``flop_count()``: closed forms, which `check_counts` holds against the
  shapes `jax.eval_shape(init)` gives.

How a model runs (compute dtype, whether the CPU kernels of `lmscale.model.ops` are used, how
activations are sharded) is an `Execution` given at construction, so model code only names
logical axes and never sees a mesh: the training core (`lmscale.train`) builds the `Execution`
from the mesh and the sharding rules (`lmscale.parallel`).
"""

from __future__ import annotations

import abc
import math
import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from lmscale.config import Strict

Params = dict


# ----------------------------------------------------------------------------------------------
# Declarations


@jax.tree_util.register_pytree_node_class
class Param:
    """One parameter as declared: its (initial) value and the logical name of each dimension."""

    __slots__ = ("value", "axes")

    def __init__(self, value, axes: tuple[str | None, ...]):
        self.value = value
        self.axes = tuple(axes)

    def tree_flatten(self):
        return (self.value,), self.axes

    @classmethod
    def tree_unflatten(cls, axes, children):
        return cls(children[0], axes)

    def __repr__(self) -> str:
        return f"Param({getattr(self.value, 'shape', '?')}, {self.axes})"


def is_param(x: Any) -> bool:
    return isinstance(x, Param)


def is_spec(x: Any) -> bool:
    return isinstance(x, P)


def unbox(tree):
    """The values of a declared tree (the params)."""
    return jax.tree.map(lambda p: p.value, tree, is_leaf=is_param)


def axes_of(tree):
    """The logical `PartitionSpec` of every parameter of a declared tree."""
    return jax.tree.map(lambda p: P(*p.axes), tree, is_leaf=is_param)


class Init:
    """Draws parameters from one key. Each random parameter has its own stream,
    ``fold_in(key, crc32(name))``, so adding or removing a parameter never changes the others."""

    def __init__(self, key: jax.Array):
        self.key = key

    def _key(self, name: str) -> jax.Array:
        return jax.random.fold_in(self.key, zlib.crc32(name.encode()))

    def normal(self, name: str, shape, axes, std: float) -> Param:
        return Param(std * jax.random.normal(self._key(name), tuple(shape), jnp.float32), axes)

    def uniform(self, name: str, shape, axes, low: float, high: float) -> Param:
        return Param(jax.random.uniform(self._key(name), tuple(shape), jnp.float32, low, high), axes)

    @staticmethod
    def zeros(shape, axes) -> Param:
        return Param(jnp.zeros(tuple(shape), jnp.float32), axes)

    @staticmethod
    def ones(shape, axes) -> Param:
        return Param(jnp.ones(tuple(shape), jnp.float32), axes)


# ----------------------------------------------------------------------------------------------
# Configs and execution


class ModelSpec(Strict):
    """Base of every model's config section; `kind` selects the registered model (the discriminator)."""

    kind: str


def _no_constraint(x, names):
    del names
    return x


@dataclass(frozen=True)
class Execution:
    """How a model's functions run, decided by the training core, not by the model config.

    - `compute_dtype`: dtype of matmul inputs (norms, softmax and losses stay float32);
    - `cpu_kernels`: use the hand-written backward passes of `lmscale.model.ops` (fast on
      XLA:CPU; they reshape weights to 2-D, which would make GSPMD gather tensor-sharded ones);
      None: when JAX's default backend is the CPU;
    - `constrain(x, names)`: pins an activation's sharding from its logical axis names (the
      identity on one device; `lmscale.parallel.rules.Sharder` on a mesh).
    """

    compute_dtype: Any = jnp.float32
    cpu_kernels: bool | None = None
    constrain: Callable[[Any, tuple[str | None, ...]], Any] = _no_constraint

    @property
    def use_cpu_kernels(self) -> bool:
        return jax.default_backend() == "cpu" if self.cpu_kernels is None else self.cpu_kernels

    def shard(self, x, *names: str | None):
        return self.constrain(x, names)


DEFAULT_EXECUTION = Execution()


# ----------------------------------------------------------------------------------------------
# The protocol


class Model(abc.ABC):
    """Base class of registered models (see the module docstring); instances are cheap to make."""

    kind: ClassVar[str]
    Config: ClassVar[type[ModelSpec]]
    # Logical axis names this model uses beyond `lmscale.parallel.rules.DEFAULT_RULES`, with their
    # default mesh axes (e.g. {"experts": ("expert",)}); names missing from the rules are errors.
    logical_axes: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, cfg: ModelSpec, execution: Execution | None = None):
        if not isinstance(cfg, self.Config):
            raise TypeError(f"{type(self).__name__} needs a {self.Config.__name__}, got {type(cfg).__name__}")
        self.cfg = cfg
        self.execution = execution or DEFAULT_EXECUTION

    @abc.abstractmethod
    def declare(self, key: jax.Array):
        """The parameter tree with a `Param` (value + logical axes) at every leaf."""

    def init(self, key: jax.Array) -> Params:
        return unbox(self.declare(key))

    @cached_property
    def axes(self):
        """Logical `PartitionSpec` per parameter, from tracing `declare` (nothing is drawn)."""
        return axes_of(jax.eval_shape(self.declare, jax.random.key(0)))

    @cached_property
    def shapes(self):
        """`jax.ShapeDtypeStruct` per parameter: `jax.eval_shape(init)`."""
        return jax.eval_shape(self.init, jax.random.key(0))

    @abc.abstractmethod
    def apply(self, params: Params, inputs, *, rng: jax.Array | None = None):
        """The forward pass; `rng=None` means evaluation mode (no dropout)."""

    @abc.abstractmethod
    def loss(self, params: Params, batch, rng: jax.Array | None = None) -> tuple[jax.Array, dict[str, Any]]:
        """(scalar loss, auxiliary metrics) of one (micro-)batch."""

    def param_count(self):
        """Parameter counts (`lmscale.model.sizing.ParamCount`); by default from the shapes, with
        the parameters under a top-level 'embed' or 'unembed' key counted as embedding."""
        from lmscale.model.sizing import ParamCount

        total = embedding = 0
        for path, leaf in jax.tree_util.tree_flatten_with_path(self.shapes)[0]:
            n = math.prod(leaf.shape)
            total += n
            if getattr(path[0], "key", None) in ("embed", "unembed"):
                embedding += n
        return ParamCount(total=total, non_embedding=total - embedding, embedding=embedding)

    def flop_count(self, seq_len: int | None = None):
        """Training FLOPs per token (`lmscale.model.sizing.FlopCount`); by default 6 x the weight
        matrices' parameters (every parameter with two or more named axes outside 'embed')."""
        from lmscale.model.sizing import FlopCount

        matmul = 0
        flat_axes = jax.tree.leaves(self.axes, is_leaf=is_spec)
        for path_leaf, spec in zip(jax.tree_util.tree_flatten_with_path(self.shapes)[0], flat_axes):
            path, leaf = path_leaf
            if getattr(path[0], "key", None) != "embed" and sum(a is not None for a in spec) >= 2:
                matmul += math.prod(leaf.shape)
        return FlopCount(per_token=6.0 * matmul, per_token_causal=6.0 * matmul, matmul_params=matmul, attention=0.0,
                         convention="6*N_matmul per token (weight matrices only)")

    def check_counts(self) -> None:
        """Raise if `param_count()` disagrees with the shapes of `init` (a closed form gone stale)."""
        counted = self.param_count().total
        traced = sum(math.prod(x.shape) for x in jax.tree.leaves(self.shapes))
        if counted != traced:
            raise AssertionError(f"{type(self).__name__}: param_count() says {counted:,} parameters, init has {traced:,}")
