import os

import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from lmscale.parallel.mesh import MeshConfig
from lmscale.errors import LmscaleError
from lmscale.parallel import logical_to_mesh, make_mesh


class FakeMesh:
    def __init__(self, **shape):
        self.shape = shape


def test_rules_map_logical_axes_to_mesh_axes():
    mesh = FakeMesh(data=2, fsdp=2, tensor=2)
    assert logical_to_mesh(P("batch"), mesh) == P(("data", "fsdp"))
    assert logical_to_mesh(P("layers", "embed", "mlp"), mesh) == P(None, "fsdp", "tensor")
    # a mesh axis is used once per array; indivisible dimensions are replicated
    assert logical_to_mesh(P("embed", "embed"), mesh) == P("fsdp", None)
    assert logical_to_mesh(P("vocab", "embed"), mesh, shape=(81, 128)) == P(None, "fsdp")
    # size-1 mesh axes are dropped: one device is a mesh of one
    assert logical_to_mesh(P("batch"), FakeMesh(data=1, fsdp=1, tensor=1)) == P(None)


def test_mesh_sizes():
    import jax

    mesh = make_mesh(MeshConfig(), jax.devices()[:1])
    assert isinstance(mesh, Mesh) and dict(mesh.shape) == {"data": 1, "fsdp": 1, "tensor": 1}
    with pytest.raises(LmscaleError, match="needs a multiple of 4 devices"):
        make_mesh(MeshConfig(data=4), jax.devices()[:1])


def test_unknown_logical_axis_is_an_error_not_a_silent_replication():
    mesh = FakeMesh(data=2, fsdp=2, tensor=2)
    with pytest.raises(LmscaleError, match="logical axis 'experts' has no sharding rule"):
        logical_to_mesh(P("layers", "experts"), mesh)
    with pytest.raises(LmscaleError, match="logical axis 'embed' has no sharding rule"):
        logical_to_mesh(P("embed"), mesh, rules={"mlp": ("tensor",)})


def test_model_constrains_activations_by_logical_name_at_block_boundaries():
    """Layers only name axes: the execution's `constrain` sees every activation the decoder pins,
    each named with logical names the rules know, the residual stream at every block boundary."""
    import jax
    import jax.numpy as jnp

    from lmscale.model.base import Execution
    from lmscale.model.decoder import DecoderConfig
    from lmscale.model.registry import get_model
    from lmscale.parallel.rules import DEFAULT_RULES

    seen = []

    def record(x, names):
        seen.append((tuple(names), x.ndim))
        return x

    cfg = DecoderConfig(depth=3, width=32, heads=4, context=8, vocab_size=17)
    model = get_model(cfg, Execution(constrain=record))
    jax.eval_shape(model.loss, model.shapes, jnp.zeros((2, 9), jnp.int32), None)
    assert all(len(names) == ndim for names, ndim in seen)
    assert {n for names, _ in seen for n in names if n is not None} <= set(DEFAULT_RULES)
    residual = ("activation_batch", "activation_length", "activation_embed")
    # one trace of the scanned block (its input) plus the stack's output
    assert sum(names == residual for names, _ in seen) == 2
    assert ("activation_batch", "activation_length", "activation_mlp") in [n for n, _ in seen]
    assert ("activation_batch", "activation_length", "activation_heads", None) in [n for n, _ in seen]
    assert ("activation_batch", "activation_length", "activation_vocab") in [n for n, _ in seen]


# Losses, weights and collectives on 8 simulated devices: tests/parallel/test_hlo.py.


def test_cpu_cores_as_devices_respects_explicit_flags(monkeypatch):
    from lmscale.parallel.mesh import use_cpu_cores_as_devices

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=5")
    assert use_cpu_cores_as_devices() is None
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=5"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    monkeypatch.setenv("LMSCALE_CPU_DEVICES", "3")
    assert use_cpu_cores_as_devices() == 3
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=3"
