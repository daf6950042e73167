"""Logical axis names -> mesh axes, for weights and activations (MaxText's `logical_axis_rules`).

Model code names every parameter dimension ('embed', 'mlp', ...) and pins activations at block
boundaries by name ('activation_batch', 'activation_mlp', ...); it never sees a mesh. A rules
table (`mesh.rules` in the run config, merged onto `DEFAULT_RULES`) maps each logical name to
an ordered tuple of mesh axes. A dimension is sharded over the listed mesh axes that exist, have
size > 1, are not already used by another dimension of the same array, and divide the dimension
evenly; otherwise that dimension is replicated. A logical name the table does not know is an
error, never a silent replication. Changing the parallelism strategy means changing this table,
never the model.

The defaults: the batch (and every activation's batch axis) is split over both data-parallel
axes, data and fsdp; FSDP shards weights along 'embed'; tensor parallelism (Megatron-style)
shards weights and activations along heads, mlp and vocab, and keeps the residual stream
('activation_embed') replicated, so each block half ends in one all-reduce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import jax
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lmscale.errors import LmscaleError

MESH_AXES = ("data", "fsdp", "tensor")

Rules = Mapping[str, tuple[str, ...]]

DEFAULT_RULES: dict[str, tuple[str, ...]] = {
    # inputs and activations
    "batch": ("data", "fsdp"),
    "activation_batch": ("data", "fsdp"),
    "activation_length": (),
    "activation_embed": (),
    "activation_heads": ("tensor",),
    "activation_mlp": ("tensor",),
    "activation_vocab": ("tensor",),
    # weights
    "embed": ("fsdp",),
    "mlp": ("tensor",),
    "heads": ("tensor",),
    "vocab": ("tensor",),
    "layers": (),
    "head_dim": (),
    "qkv": (),
    "context": (),
}


def known_logical_axes() -> dict[str, tuple[str, ...]]:
    """Default rules plus the logical axes registered models declare (`Model.logical_axes`)."""
    from lmscale.model.registry import declared_logical_axes

    return {**DEFAULT_RULES, **declared_logical_axes()}


def resolve_rules(overrides: Mapping[str, Sequence[str]] | None = None) -> dict[str, tuple[str, ...]]:
    """The full table: defaults with `overrides` (logical name -> mesh axes) applied.

    Raises LmscaleError for an unknown logical name or mesh axis.
    """
    table = known_logical_axes()
    for name, axes in (overrides or {}).items():
        if name not in table:
            raise LmscaleError(f"mesh.rules names logical axis {name!r}; expected one of {', '.join(sorted(table))}")
        axes = tuple(axes)
        bad = [a for a in axes if a not in MESH_AXES]
        if bad or len(set(axes)) != len(axes):
            raise LmscaleError(f"mesh.rules.{name}={list(axes)}; expected distinct mesh axes from {', '.join(MESH_AXES)}")
        table[name] = axes
    return table


def logical_to_mesh(spec: P, mesh: Mesh, rules: Rules | None = None, shape: Sequence[int] | None = None) -> P:
    """Mesh PartitionSpec for a logical PartitionSpec (and, if given, the array's shape)."""
    table = DEFAULT_RULES if rules is None else rules
    used: set[str] = set()
    out = []
    for dim, name in enumerate(spec):
        if name is None:
            out.append(None)
            continue
        if name not in table:
            raise LmscaleError(
                f"logical axis {name!r} has no sharding rule; expected one of {', '.join(sorted(table))} "
                "(or add it to mesh.rules)"
            )
        chosen = []
        size = 1
        for axis in table[name]:
            n = mesh.shape.get(axis, 1)
            if n == 1 or axis in used:
                continue
            if shape is not None and shape[dim] % (size * n):
                continue
            chosen.append(axis)
            size *= n
        used.update(chosen)
        out.append(None if not chosen else chosen[0] if len(chosen) == 1 else tuple(chosen))
    return P(*out)


def param_shardings(shapes, axes, mesh: Mesh, rules: Rules | None = None):
    """NamedSharding per parameter from its logical axes (`shapes`: arrays or ShapeDtypeStructs)."""
    return jax.tree.map(
        lambda x, spec: NamedSharding(mesh, logical_to_mesh(spec, mesh, rules, x.shape)),
        shapes,
        axes,
        is_leaf=lambda s: isinstance(s, P),
    )


def opt_state_shardings(optimizer: optax.GradientTransformation, abstract_params, p_shardings, mesh: Mesh):
    """Shardings of `optimizer`'s state: every per-parameter leaf (Adam's moments...) shards like its
    parameter (`optax.tree_map_params` knows which leaves those are); counters are replicated."""
    abstract_state = jax.eval_shape(optimizer.init, abstract_params)
    replicated = NamedSharding(mesh, P())
    return optax.tree_map_params(
        optimizer, lambda _leaf, sharding: sharding, abstract_state, p_shardings,
        transform_non_params=lambda _leaf: replicated,
    )


@dataclass(frozen=True, eq=False)
class Sharder:
    """`Execution.constrain` on a mesh: pins an activation to the sharding its logical names map to."""

    mesh: Mesh
    rules: Any  # a resolved table

    def __call__(self, x, names):
        spec = logical_to_mesh(P(*names), self.mesh, self.rules, x.shape)
        return jax.lax.with_sharding_constraint(x, NamedSharding(self.mesh, spec))
