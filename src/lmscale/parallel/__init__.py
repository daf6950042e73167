"""Device meshes and logical-axis sharding rules (MaxText/Levanter style)."""

from lmscale.parallel.mesh import batch_sharding, make_mesh
from lmscale.parallel.rules import DEFAULT_RULES, logical_to_mesh, param_shardings

__all__ = ["DEFAULT_RULES", "batch_sharding", "logical_to_mesh", "make_mesh", "param_shardings"]
