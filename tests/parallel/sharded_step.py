"""Run by test_sharding.py in a subprocess with 8 simulated CPU devices; prints JSON."""

import json
import os
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from lmscale.config import MeshConfig, validate_config  # noqa: E402
from lmscale.parallel import make_mesh  # noqa: E402
from lmscale.train.step import build_trainer, shard_batch  # noqa: E402

raw = json.loads(sys.argv[1])
cfg = validate_config(raw)
batch = np.random.default_rng(0).integers(0, cfg.model.vocab_size, (cfg.train.batch_size, cfg.model.context + 1)).astype(np.int32)
out = {"devices": len(jax.devices())}
for name, mesh_cfg, devs in [
    ("one", MeshConfig(), jax.devices()[:1]),
    ("data8", MeshConfig(data=8), jax.devices()),
    ("data2_fsdp2_tensor2", MeshConfig(data=2, fsdp=2, tensor=2), jax.devices()),
]:
    mesh = make_mesh(mesh_cfg, devs)
    tr = build_trainer(cfg, mesh)
    state = tr.init_state()
    eval_loss = float(np.mean(np.asarray(tr.eval_step(state["params"], batch))))
    losses = []
    for step in range(3):
        state, m = tr.train_step(state, shard_batch(tr, batch), jnp.int32(step))
        losses.append(float(m["loss"]))
    w = state["params"]["blocks"]["mlp"]["w_in"]
    out[name] = {
        "eval_loss": eval_loss,
        "train_losses": losses,
        "w_in": np.asarray(jax.device_get(w)).ravel()[:64].tolist(),
        "w_in_sharding": str(w.sharding.spec),
        "batch_sharding": str(tr.batch_sharding.spec),
    }
out["auto_data"] = {b: make_mesh(MeshConfig(), batch=b).shape["data"] for b in (12, 7, 16)}
print(json.dumps(out))
