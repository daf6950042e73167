"""Run by test_hlo.py in a subprocess with 8 simulated CPU devices: compiles the train step of a
tiny decoder on several meshes and prints, as JSON, every collective of the compiled HLO with its
result shapes, beside the model's parameter shapes and a few losses."""

import json
import os
import re
import sys

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import dataclasses  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from lmscale.model.registry import get_model  # noqa: E402
from lmscale.parallel.mesh import make_mesh  # noqa: E402
from lmscale.train.config import validate_config  # noqa: E402
from lmscale.train.lm import lm_trainer  # noqa: E402
from lmscale.train.optimizer import build_optimizer  # noqa: E402
from lmscale.train.step import build_trainer, member_keys, shard_batch  # noqa: E402

COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")
SHAPE = re.compile(r"\b([a-z]+[0-9]*)\[([0-9,]*)\]")


def collectives(hlo: str) -> dict[str, list[list[list]]]:
    """kind -> one entry per op: the [dtype, shape] of each part of its result (a tuple has several)."""
    out: dict[str, list] = {k: [] for k in COLLECTIVES}
    for line in hlo.splitlines():
        if " = " not in line:
            continue
        lhs_type = line.split(" = ", 1)[1]
        for kind in COLLECTIVES:
            m = re.search(rf" {kind}(-start)?\(", lhs_type)
            if m:
                typ = lhs_type[: m.start()]
                out[kind].append([[dt, [int(d) for d in dims.split(",") if d]] for dt, dims in SHAPE.findall(typ)])
                break
    return out


def main() -> None:
    raw = json.loads(sys.argv[1])
    cfg0 = validate_config(raw)
    rng = np.random.default_rng(0)
    B, T, V = cfg0.train.batch_size, cfg0.model.context, cfg0.model.vocab_size
    batch = rng.integers(0, V, (1, B, T + 1)).astype(np.int32)
    shapes = [list(x.shape) for x in jax.tree.leaves(get_model(cfg0.model).shapes)]
    out = {"devices": len(jax.devices()), "param_shapes": shapes, "meshes": {}}
    for name, mesh_raw, n, kernels in [
        ("one", {"data": 1}, 1, None),
        ("data8", {"data": 8}, 8, None),
        ("fsdp4", {"data": 1, "fsdp": 4}, 4, None),
        ("tensor4", {"data": 1, "tensor": 4}, 4, None),
        ("tensor4_cpu_kernels", {"data": 1, "tensor": 4}, 4, True),
        ("data2_fsdp2_tensor2", {"data": 2, "fsdp": 2, "tensor": 2}, 8, None),
        ("data4_tensor2", {"data": 4, "tensor": 2}, 8, None),
    ]:
        cfg = validate_config(dict(raw, mesh=mesh_raw))
        mesh = make_mesh(cfg.mesh, jax.devices()[:n])
        tr = lm_trainer(cfg, mesh)
        if kernels is not None:  # force the CPU kernels (2-D weight views) to show what they cost
            model = get_model(cfg.model, dataclasses.replace(tr.model.execution, cpu_kernels=kernels))
            tr = build_trainer(model, build_optimizer(cfg.train, model.axes, cfg.model), mesh, rules=cfg.mesh.rules,
                               batch_size=B, grad_accum=cfg.train.grad_accum)
        init_keys, roots = member_keys([cfg.seed])
        state = tr.init_state(init_keys)
        eval_fn = tr.compile_eval(tr.model.sequence_losses)
        eval_loss = float(np.mean(np.asarray(eval_fn(state["params"], batch[0], 0))))
        b = shard_batch(tr, batch)
        hlo = tr.train_step.lower(state, b, jnp.int32(0), roots).compile().as_text()
        losses = []
        for step in range(3):
            state, m = tr.train_step(state, shard_batch(tr, batch), jnp.int32(step), roots)
            losses.append(float(m["loss"][0]))
        w = state["params"]["blocks"]["mlp"]["w_in"]
        mu = state["opt_state"][1][0].mu["blocks"]["mlp"]["w_in"]  # clip, then adamw's ScaleByAdamState
        out["meshes"][name] = {
            "collectives": collectives(hlo),
            "losses": losses,
            "w_in": np.asarray(jax.device_get(w)).ravel()[:64].tolist(),
            "w_in_sharding": str(w.sharding.spec),
            "mu_sharding": str(mu.sharding.spec),
            "cpu_kernels": tr.model.execution.use_cpu_kernels,
            "eval_loss": eval_loss,
            "batch_sharding": str(tr.batch_sharding.spec),
        }
    out["auto_data"] = {b: make_mesh(cfg0.mesh, batch=b).shape["data"] for b in (12, 7, 16)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
