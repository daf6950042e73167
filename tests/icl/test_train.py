"""Training: the loss falls, resume after a pause or a SIGKILL is bitwise identical, ensemble
members equal single runs (each in an ordinary run directory), prompts are today's, and a tiny
LSA approaches the best one-step-GD loss."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import yaml

from lmscale.errors import LmscaleError
from lmscale.icl import model as M
from lmscale.icl.config import validate_icl_config, with_overrides
from lmscale.icl.evaluate import lsa_report
from lmscale.icl.train import batch_for_step, batches, curriculum_at, icl_trainer, load_run, load_run_config, train
from lmscale.train import checkpoint
from lmscale.train.core import CHECKPOINTS
from lmscale.train.metrics import read_metrics
from lmscale.train.step import seed_keys


def _metrics(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _same_params(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _final_state(run, cfg, step):
    """The whole train state (params and Adam moments) of a run's checkpoint `step`, through the store."""
    return checkpoint.load(run / CHECKPOINTS, step, icl_trainer(cfg).abstract_member_state()).state


def test_a_few_steps_reduce_the_loss(tiny_run):
    cfg, run = tiny_run
    model = M.model_of(cfg)
    b = batch_for_step(cfg, 99, 0)  # held-out prompts (another seed)
    batch = {"xs": b.xs, "ys": b.ys}
    before = float(model.loss(model.init(seed_keys(0)[0]), batch)[0])  # the run's init (seed 0)
    after = float(model.loss(load_run(run).params, batch)[0])
    assert before > 3.5 and after < 2.6, (before, after)  # the zero predictor's loss is E[y²] = d = 2


def test_run_directory_and_summary(tiny_run):
    cfg, run = tiny_run
    assert load_run_config(run) == cfg
    s = json.loads((run / "summary.json").read_text())
    assert s["status"] == "done" and s["step"] == 100 and s["kind"] == "gpt" and s["seeds"] == [0]
    assert s["params"] == M.count_params(cfg).total and s["params_garg_convention"] == M.count_params(cfg).garg_convention
    assert s["final_train_loss"] == _metrics(run)[-1]["loss"]
    recs = [r for r in _metrics(run) if r["kind"] == "train"]
    assert [r["step"] for r in recs] == [50, 100]
    assert {"loss", "loss_avg", "lr", "ms_per_step", "d_active", "n_active"} <= set(recs[-1])
    assert (recs[-1]["d_active"], recs[-1]["n_active"]) == (2, 4)
    assert checkpoint.list_steps(run / CHECKPOINTS) == [50, 100]
    assert load_run(run).run_dir == run
    with pytest.raises(LmscaleError, match="member=1; run .* has 1 member"):
        load_run(run, member=1)


def test_resume_is_bitwise_identical(tiny_run, tmp_path):
    cfg, full = tiny_run
    s = train(cfg, tmp_path / "split", stop_at=50)
    assert s["status"] == "paused" and checkpoint.list_steps(tmp_path / "split" / "checkpoints")[-1] == 50
    assert load_run(tmp_path / "split").step == 50
    train(cfg, tmp_path / "split")
    a, b = load_run(full), load_run(tmp_path / "split")
    assert a.step == b.step == 100
    _same_params(a.params, b.params)
    _same_params(_final_state(full, cfg, 100), _final_state(tmp_path / "split", cfg, 100))  # Adam moments too
    strip = lambda ms: [{k: v for k, v in r.items() if k != "ms_per_step"} for r in ms]  # noqa: E731
    assert strip(_metrics(full)) == strip(_metrics(tmp_path / "split"))
    assert train(cfg, tmp_path / "split")["status"] == "done"  # finished: nothing to train


def test_sigkill_and_resume_is_bitwise_identical(tiny_run, tiny_raw, tmp_path):
    """`lmscale icl train` killed -9 inside a checkpoint save (its arrays written, its marker not),
    then resumed: the final train state equals the uninterrupted run's, bitwise."""
    cfg, full = tiny_run
    raw = tiny_raw | {"train": tiny_raw["train"] | {"log_every": 10, "checkpoint_every": 20, "keep_checkpoints": 3}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    run = tmp_path / "killed"
    env = dict(os.environ, LMSCALE_TEST_CHECKPOINT_DELAY="2")  # a 2 s window between arrays and marker
    p = subprocess.Popen([sys.executable, "-m", "lmscale", "icl", "train", str(path), "--run-dir", str(run), "--no-progress"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)

    def last_step():
        try:
            return max((r["step"] for r in read_metrics(run / "metrics.jsonl") if r.get("kind") == "train"), default=0)
        except FileNotFoundError:
            return 0

    deadline = time.time() + 300
    while last_step() < 40 and p.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # inside the save of step 40
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert 40 <= last_step() < 100, (last_step(), p.stderr.read().decode()[-2000:])
    assert checkpoint.list_steps(run / CHECKPOINTS)[-1] < 100
    killed_cfg = validate_icl_config(raw)
    s = train(killed_cfg, run)  # resumes from the newest committed checkpoint
    assert s["status"] == "done" and s["step"] == 100
    _same_params(_final_state(full, cfg, 100), _final_state(run, killed_cfg, 100))
    recs = [r for r in _metrics(run) if r["kind"] == "train"]
    assert [r["step"] for r in recs] == list(range(10, 101, 10))
    ref = {r["step"]: r["loss"] for r in _metrics(full) if r["kind"] == "train"}
    assert {r["step"]: r["loss"] for r in recs if r["step"] in ref} == ref


def _drop_key_bias(params):
    # The key bias adds q.b_k to every score of a query: softmax ignores it, its gradient is float
    # noise (~1e-9) and Adam turns that noise into lr-sized steps, differently under vmap.
    params["blocks"]["attn"]["bqkv"] = params["blocks"]["attn"]["bqkv"][:, ::2]  # (query, value) biases
    return params


def test_ensemble_members_equal_single_runs(tiny_run, tmp_path):
    cfg, single0 = tiny_run
    ens_cfg = with_overrides(cfg, ["train.seeds=2"])
    group = train(ens_cfg, tmp_path / "ens", vmap_members=2)  # both members in one vmapped step
    train(with_overrides(cfg, ["train.seed=1"]), tmp_path / "single1")
    # One member at a time (the CPU default): each member is bitwise its single run.
    train(ens_cfg, tmp_path / "ens-c1", vmap_members=1)
    for member, single in ((0, single0), (1, tmp_path / "single1")):
        _same_params(load_run(tmp_path / "ens-c1", member=member).params, load_run(single).params)
    for member, single in ((0, single0), (1, tmp_path / "single1")):
        a, b = (_drop_key_bias(dict(p)) for p in (load_run(tmp_path / "ens", member=member).params, load_run(single).params))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=2e-5)  # vmap reorders float sums
    # The members are different models (seeds 0 and 1), so the comparison above can fail.
    w0, w1 = (load_run(tmp_path / "ens", member=m).params["read_in"]["w"] for m in (0, 1))
    assert np.abs(np.asarray(w0) - np.asarray(w1)).max() > 0.1
    m = json.loads((tmp_path / "ens" / "summary.json").read_text())  # the group summary
    assert m == group and m["status"] == "done" and m["seeds"] == [0, 1]
    assert len(m["member_final_train_loss"]) == 2
    assert abs(m["member_final_train_loss"][1] - _metrics(tmp_path / "single1")[-1]["loss"]) < 1e-4
    # Every member is an ordinary run directory: the ICL config with its seed and seeds = 1.
    assert load_run_config(tmp_path / "ens") == ens_cfg
    for i in (0, 1):
        d = tmp_path / "ens" / "members" / str(i)
        mc = load_run_config(d)
        assert (mc.train.seed, mc.train.seeds) == (i, 1) and with_overrides(mc, ["train.seed=0", "train.seeds=2"]) == ens_cfg
        assert load_run(tmp_path / "ens", member=i).run_dir == d
        _same_params(load_run(d).params, load_run(tmp_path / "ens", member=i).params)
        assert json.loads((d / "summary.json").read_text())["final_train_loss"] == m["member_final_train_loss"][i]
        assert _metrics(d)[-1]["step"] == 100
    with pytest.raises(LmscaleError, match="member=2"):
        load_run(tmp_path / "ens", member=2)
    with pytest.raises(LmscaleError, match="vmap_members=3 does not divide train.seeds=2"):
        train(ens_cfg, tmp_path / "ens3", vmap_members=3)
    assert not (tmp_path / "ens3").exists()
    # The group refuses another config, as a single run does.
    with pytest.raises(LmscaleError, match="holds a run with another config"):
        train(with_overrides(ens_cfg, ["train.seeds=3"]), tmp_path / "ens")


def test_curriculum_schedule():
    cfg = validate_icl_config({"task": {"d": 4}, "n_points": 7, "train": {"curriculum": {
        "dims": {"start": 2, "end": 4, "inc": 1, "interval": 10}, "points": {"start": 3, "end": 7, "inc": 2, "interval": 10}}}})
    assert [curriculum_at(cfg, s) for s in (0, 9, 10, 25, 100)] == [(2, 3), (2, 3), (3, 5), (4, 7), (4, 7)]
    # The batch source: today's prompts for (seed, step) with d_active, and the mask of the first n_active positions.
    for step in (0, 12, 25):
        d_act, n_act = curriculum_at(cfg, step)
        got = batches(cfg, 3)(step)
        want = batch_for_step(cfg, 3, step, d_act)
        np.testing.assert_array_equal(np.asarray(got["xs"]), np.asarray(want.xs))
        np.testing.assert_array_equal(np.asarray(got["ys"]), np.asarray(want.ys))
        assert np.asarray(got["mask"]).shape == (64, 7)
        np.testing.assert_array_equal(np.asarray(got["mask"]), np.tile(np.arange(7) < n_act, (64, 1)))
        assert not np.asarray(got["xs"])[..., d_act:].any()  # the inactive dimensions are zero


# Digests (sha256 of the xs and ys bytes, first 16 hex digits) of batch_for_step before the port.
OLD_PROMPTS = {(0, 0, None): "a2178d507a2d460d", (1, 7, None): "684f4714b4c6c950", (0, 12, 3): "a756a8590295b25d"}


def test_prompts_are_the_old_prompts():
    import hashlib

    cfg = validate_icl_config({"task": {"d": 5}, "n_points": 11, "train": {"curriculum": {
        "dims": {"start": 2, "end": 5, "inc": 1, "interval": 10}, "points": {"start": 5, "end": 11, "inc": 2, "interval": 10}}}})

    def digest(xs, ys):
        h = hashlib.sha256()
        for name, x in (("['xs']", xs), ("['ys']", ys)):
            h.update(name.encode())
            h.update(np.asarray(x).tobytes())
        return h.hexdigest()[:16]

    for (seed, step, d_act), want in OLD_PROMPTS.items():
        b = batch_for_step(cfg, seed, step, d_act)
        assert digest(b.xs, b.ys) == want
    got = batches(cfg, 0)(12)  # curriculum_at(cfg, 12) == (3, 7)
    assert digest(got["xs"], got["ys"]) == OLD_PROMPTS[(0, 12, 3)]


def test_tiny_lsa_approaches_one_gd_step(lsa_run):
    cfg, run = lsa_run
    rep = lsa_report(load_run(run).params, cfg, n=4000)
    assert rep["loss_zero"] > 0.9  # E[y²] = d/3 = 1
    assert rep["loss_gd_best"] < 0.8 * rep["loss_zero"]
    assert abs(rep["relative_gap"]) < 0.03, rep  # 0.9% measured


def test_runs_from_before_the_training_core_still_load(tiny_run, tmp_path):
    """Run directories of the lab's own loop (one store of {"params", "opt"} states, an ensemble's
    members stacked in it) are still evaluated: `load_run` reads them."""
    from lmscale.fileio import atomic_write_yaml

    cfg, run = tiny_run
    state = _final_state(run, cfg, 100)
    old = {"params": state["params"], "opt": state["opt_state"]}
    single = tmp_path / "old-single"
    atomic_write_yaml(single / "config.yaml", cfg.to_dict())
    checkpoint.save(single / CHECKPOINTS, 100, old)
    got = load_run(single)
    assert got.step == 100 and got.run_dir == single
    _same_params(got.params, state["params"])
    ens_cfg = with_overrides(cfg, ["train.seeds=2"])
    ens = tmp_path / "old-ensemble"
    atomic_write_yaml(ens / "config.yaml", ens_cfg.to_dict())
    stacked = jax.tree.map(lambda x: np.stack([np.asarray(x), 2 * np.asarray(x)]), old)
    checkpoint.save(ens / CHECKPOINTS, 100, stacked)
    _same_params(load_run(ens, member=1).params, jax.tree.map(lambda x: 2 * np.asarray(x), state["params"]))
