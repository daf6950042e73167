"""Device mesh construction: axes ('data', 'fsdp', 'tensor').

One CPU device is a mesh of one; the same code shards over every device JAX sees. Tests
simulate 8 CPU devices with XLA_FLAGS=--xla_force_host_platform_device_count=8.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lmscale.config import MeshConfig
from lmscale.errors import LmscaleError
from lmscale.parallel.rules import DEFAULT_RULES, logical_to_mesh

MESH_AXES = ("data", "fsdp", "tensor")


def make_mesh(cfg: MeshConfig | None = None, devices=None) -> Mesh:
    cfg = cfg or MeshConfig()
    devices = list(devices if devices is not None else jax.devices())
    n = len(devices)
    sizes = {"data": cfg.data, "fsdp": cfg.fsdp, "tensor": cfg.tensor}
    fixed = int(np.prod([v for v in sizes.values() if v != -1]))
    if n % fixed:
        raise LmscaleError(f"mesh {sizes} needs a multiple of {fixed} devices; found {n}")
    for k, v in sizes.items():
        if v == -1:
            sizes[k] = n // fixed
    if int(np.prod(list(sizes.values()))) != n:
        raise LmscaleError(f"mesh {sizes} uses {int(np.prod(list(sizes.values())))} devices; found {n}")
    grid = np.array(devices).reshape([sizes[a] for a in MESH_AXES])
    return Mesh(grid, MESH_AXES)


def batch_axes_size(mesh: Mesh, rules=DEFAULT_RULES) -> int:
    spec = logical_to_mesh(P("batch"), mesh, rules)[0]
    if spec is None:
        return 1
    names = spec if isinstance(spec, tuple) else (spec,)
    return int(np.prod([mesh.shape[a] for a in names]))


def batch_sharding(mesh: Mesh, leading: int = 0, rules=DEFAULT_RULES) -> NamedSharding:
    """Sharding for a batch whose batch axis comes after `leading` unsharded axes."""
    spec = logical_to_mesh(P("batch"), mesh, rules)
    return NamedSharding(mesh, P(*([None] * leading), spec[0]))
