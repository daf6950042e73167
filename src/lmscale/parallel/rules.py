"""Logical axis names -> mesh axes.

Model code names every parameter dimension with a *logical* axis ('embed', 'mlp', ...). A rules
table maps each logical axis to an ordered tuple of mesh axes; a dimension is sharded over the
mesh axes that exist, have size > 1, are not already used by another dimension of the same
array, and divide the dimension evenly. Anything else is replicated. Changing the parallelism
strategy means changing this table, never the model.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

# FSDP shards parameters along 'embed'; tensor parallelism along mlp/heads/vocab; the batch is
# split over both data-parallel axes (data and fsdp), as in MaxText's base.yml.
DEFAULT_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", ("fsdp",)),
    ("mlp", ("tensor",)),
    ("heads", ("tensor",)),
    ("vocab", ("tensor",)),
    ("layers", ()),
    ("head_dim", ()),
    ("qkv", ()),
    ("context", ()),
)


def logical_to_mesh(
    spec: P, mesh: Mesh, rules: Sequence[tuple[str, tuple[str, ...]]] = DEFAULT_RULES, shape: Sequence[int] | None = None
) -> P:
    """Mesh PartitionSpec for a logical PartitionSpec (and, if given, the array's shape)."""
    table: Mapping[str, tuple[str, ...]] = dict(rules)
    used: set[str] = set()
    out = []
    for dim, name in enumerate(spec):
        if name is None:
            out.append(None)
            continue
        chosen = []
        size = 1
        for axis in table.get(name, ()):
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


def param_shardings(params, axes, mesh: Mesh, rules=DEFAULT_RULES):
    """NamedSharding per parameter from its logical axes."""
    return jax.tree.map(
        lambda x, spec: NamedSharding(mesh, logical_to_mesh(spec, mesh, rules, x.shape)),
        params,
        axes,
        is_leaf=lambda s: isinstance(s, P),
    )
