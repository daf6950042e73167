import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from lmscale.config import MeshConfig
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


def test_eight_simulated_devices_match_one_device():
    cfg = {
        "model": {"depth": 2, "width": 64, "heads": 4, "context": 32, "vocab_size": 96, "dropout": 0.1},
        "train": {"steps": 10, "batch_size": 16, "grad_accum": 2, "schedule": {"warmup": 2}},
    }
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2])] + sys.path)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("sharded_step.py")), json.dumps(cfg)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 8
    one = out["one"]
    for name in ("data8", "data2_fsdp2_tensor2"):
        other = out[name]
        assert other["eval_loss"] == pytest.approx(one["eval_loss"], rel=1e-5)
        np.testing.assert_allclose(other["train_losses"], one["train_losses"], rtol=1e-5)
        np.testing.assert_allclose(other["w_in"], one["w_in"], rtol=1e-4, atol=1e-6)
    assert out["data8"]["batch_sharding"] == "P(None, 'data')"
    assert out["data2_fsdp2_tensor2"]["w_in_sharding"] == "P(None, 'fsdp', 'tensor')"
    assert out["one"]["w_in_sharding"] == "P(None, None, None)"
    # data=-1 takes the most devices whose count divides the micro-batch
    assert out["auto_data"] == {"12": 4, "7": 1, "16": 8}


def test_cpu_cores_as_devices_respects_explicit_flags(monkeypatch):
    from lmscale.parallel.mesh import use_cpu_cores_as_devices

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=5")
    assert use_cpu_cores_as_devices() is None
    assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=5"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    monkeypatch.setenv("LMSCALE_CPU_DEVICES", "3")
    assert use_cpu_cores_as_devices() == 3
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_enable_fast_math=false --xla_force_host_platform_device_count=3"
