"""The compiled train step on 8 simulated CPU devices: what it communicates, and that it computes
what one device computes.

Read from the compiled HLO (`lower(...).compile().as_text()`): pure tensor parallelism
all-gathers no weight (the CPU kernels' 2-D weight views would, so they are off under it); FSDP
all-gathers each weight where it is used (forward and backward) and nothing else; pure data
parallelism gathers nothing and all-reduces the gradients. Every mesh gives one device's losses.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CONFIG = {
    # Dimensions chosen so no activation shape equals a (per-layer) weight shape or a 2-D view of one.
    # (Rotary positions: a learned (T, D) table has the shape of one sequence's activations.)
    "model": {"depth": 2, "width": 48, "heads": 4, "context": 20, "vocab_size": 43, "bias": False, "dropout": 0.1,
              "positions": "rope"},
    "train": {"steps": 10, "batch_size": 16, "grad_accum": 2, "schedule": {"warmup": 2}},
}


@pytest.fixture(scope="module")
def hlo():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2])] + sys.path)
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("hlo_step.py")), json.dumps(CONFIG)],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def views_of(shape) -> set[tuple[int, ...]]:
    """The shapes an array can travel as: itself, its 2-D views (leading dims x trailing dims, as
    `model.ops.linear` makes them) and their transposes."""
    s = tuple(shape)
    out = {s}
    for i in range(1, len(s)):
        two_d = (math.prod(s[:i]), math.prod(s[i:]))
        out.update({two_d, two_d[::-1]})
    return out


def weight_views(param_shapes) -> set[tuple[int, ...]]:
    """Every shape a parameter can travel as, whole or one layer of a stacked one."""
    out = set()
    for full in param_shapes:
        out |= views_of(full) | (views_of(full[1:]) if len(full) > 1 else set())
    return out


def gathered(mesh, floating_only: bool = True) -> list[tuple[int, ...]]:
    """Shapes of what the step all-gathers (float arrays: weights and activations, not token ids)."""
    return [tuple(shape) for op in mesh["collectives"]["all-gather"] for dtype, shape in op
            if not floating_only or dtype.startswith(("f", "bf"))]


def weight_gathers(mesh, views):
    return [s for s in gathered(mesh) if s in views]


def test_shapes_chosen_so_that_activations_are_not_weight_shaped(hlo):
    views = weight_views(hlo["param_shapes"])
    micro, T, D = CONFIG["train"]["batch_size"] // CONFIG["train"]["grad_accum"], CONFIG["model"]["context"], 48
    for b in (micro, micro // 2, micro // 4, micro // 8):
        assert (b, T, D) not in views and (b, T) not in views and (b * T, D) not in views


def test_pure_tensor_parallelism_all_gathers_no_weight(hlo):
    views = weight_views(hlo["param_shapes"])
    for name in ("tensor4", "data4_tensor2"):
        m = hlo["meshes"][name]
        assert not m["cpu_kernels"], name
        assert weight_gathers(m, views) == [], name
        assert m["collectives"]["all-reduce"], name  # the block outputs are all-reduced instead
        assert m["w_in_sharding"] == "P(None, None, 'tensor')"
    # The CPU kernels' reshape of wqkv (D, 3, H, Dh) to 2-D would gather it: the check sees it.
    forced = hlo["meshes"]["tensor4_cpu_kernels"]
    assert (48, 3, 4, 12) in weight_gathers(forced, views)
    # per layer: the wqkv weight and the qkv activations (the README's "4 all-gathers" at depth 2)
    assert len(gathered(forced)) == 2 * CONFIG["model"]["depth"]


def test_fsdp_all_gathers_each_weight_where_it_is_used_and_nothing_else(hlo):
    views = weight_views(hlo["param_shapes"])
    depth = CONFIG["model"]["depth"]
    for name in ("fsdp4",):
        m = hlo["meshes"][name]
        gathers, weights = gathered(m), weight_gathers(m, views)
        # Every float array gathered is a weight (the token ids are gathered for the embedding lookup).
        assert gathers and gathers == weights, (name, gathers)
        # Each weight matrix is gathered for the forward and the backward pass of each layer: at
        # least once, at most twice per layer (the tied embedding: as a table and as the readout).
        # (w_in (48, 192) and w_out (192, 48) travel as each other's transposes: counted together.)
        for shapes, uses in (([(48, 3, 4, 12)], depth), ([(4, 12, 48)], depth), ([(48, 192), (192, 48)], 2 * depth),
                             ([(43, 48)], 1)):
            as_views = set().union(*map(views_of, shapes))
            n = sum(1 for s in weights if s in as_views)
            assert uses <= n <= 2 * uses, (name, shapes, n)
        assert m["w_in_sharding"] == "P(None, 'fsdp', None)"
        assert m["mu_sharding"] == m["w_in_sharding"]  # optimizer moments shard like their parameter


def test_pure_data_parallelism_gathers_nothing_and_all_reduces_gradients(hlo):
    m = hlo["meshes"]["data8"]
    assert m["collectives"]["all-gather"] == []
    reduced = [tuple(shape) for op in m["collectives"]["all-reduce"] for _, shape in op]
    # Every weight's gradient (per layer) is summed over the data axis: w_in and w_out of both layers.
    assert sum(1 for s in reduced if s in views_of((48, 192))) >= 2 * CONFIG["model"]["depth"]
    assert m["batch_sharding"] == "P(None, None, 'data')"
    assert hlo["meshes"]["one"]["collectives"] == {k: [] for k in m["collectives"]}


def test_every_mesh_computes_what_one_device_computes(hlo):
    assert hlo["devices"] == 8
    one = hlo["meshes"]["one"]
    for name, other in hlo["meshes"].items():
        assert other["eval_loss"] == pytest.approx(one["eval_loss"], rel=1e-5), name
        np.testing.assert_allclose(other["train_losses"] if "train_losses" in other else other["losses"], one["losses"],
                                   rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(other["w_in"], one["w_in"], rtol=1e-4, atol=1e-6, err_msg=name)
    assert hlo["meshes"]["data2_fsdp2_tensor2"]["w_in_sharding"] == "P(None, 'fsdp', 'tensor')"
    assert hlo["meshes"]["data2_fsdp2_tensor2"]["mu_sharding"] == "P(None, 'fsdp', 'tensor')"
    assert one["w_in_sharding"] == "P(None, None, None)"
    # data=-1 takes the most devices whose count divides the micro-batch
    assert hlo["auto_data"] == {"12": 4, "7": 1, "16": 8}
