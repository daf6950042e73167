"""Seed ensembles: members are their single runs, runs are deterministic and resume bitwise after
SIGKILL, and every member's run directory is an ordinary run directory.

The ensemble runs in subprocesses (it has to be killable) that share a persistent compilation
cache, so only the first one compiles; each run trains two vmapped members.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.train import checkpoint
from lmscale.train.config import validate_config
from lmscale.train.lm import train, train_ensemble
from lmscale.train.metrics import read_metrics
from lmscale.train.run import load_run
from tests.helpers import assert_same_final_state, tiny_config

STEPS = 40
SEEDS = (3, 4)
OVERRIDES = {"train.steps": STEPS, "model.dropout": 0.1, "train.grad_accum": 2, "train.log_every": 1,
             "train.checkpoint_every": 6, "train.keep_checkpoints": 2}
RUNNER = """
import json, sys
from lmscale.train.config import validate_config
from lmscale.train.lm import train_ensemble
raw, dirs, stop_at = json.loads(sys.argv[1])
train_ensemble([validate_config(c) for c in raw], dirs, stop_at=stop_at, vmap_members=2)
"""


def _configs(corpus, **extra) -> list[dict]:
    return [tiny_config(corpus, seed=s, name=f"tiny-s{s}", **OVERRIDES, **extra) for s in SEEDS]


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A corpus, and an environment whose subprocesses share one compilation cache."""
    root = tmp_path_factory.mktemp("ensemble")
    rng = np.random.default_rng(11)
    words = "when shall we three meet again in thunder lightning or rain hurly burly done battle lost won".split()
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(" ".join(rng.choice(words, 7)) for _ in range(7000)) + "\n", encoding="utf-8")
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=str(root / "jax-cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")
    return {"root": root, "corpus": corpus, "env": env}


def _start(base, dirs, stop_at=None):
    arg = json.dumps([_configs(base["corpus"]), [str(d) for d in dirs], stop_at])
    return subprocess.Popen([sys.executable, "-c", RUNNER, arg], env=base["env"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _run(base, dirs, stop_at=None):
    p = _start(base, dirs, stop_at)
    assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-3000:]


@pytest.fixture(scope="module")
def ref(base):
    dirs = [base["root"] / "ref" / f"s{s}" for s in SEEDS]
    _run(base, dirs)
    return dirs


@pytest.fixture(scope="module")
def single(base):
    """The second member's config trained alone by `train`."""
    run = base["root"] / "single"
    return run, train(validate_config(_configs(base["corpus"])[1]), run)


def _assert_bitwise(a_dir, b_dir):
    assert_same_final_state(a_dir, b_dir, STEPS)  # params and optimizer state
    la = [r["loss"] for r in read_metrics(a_dir / "metrics.jsonl") if r["kind"] == "train"]
    lb = [r["loss"] for r in read_metrics(b_dir / "metrics.jsonl") if r["kind"] == "train"]
    assert la == lb and len(la) == STEPS


def test_members_match_their_single_runs(base, ref, single):
    run, s = single
    e = json.loads((ref[1] / "summary.json").read_text())
    # Measured: |delta| ~1e-8 nats (vmapped kernels sum in another order); bitwise for the
    # unbatched CPU default, checked below.
    assert abs(e["final_val_loss"] - s["final_val_loss"]) < 1e-6
    pe, ps = load_run(ref[1]).params, load_run(run).params
    for x, y in zip(jax.tree.leaves(pe), jax.tree.leaves(ps)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=1e-5)
    te = [r for r in read_metrics(ref[1] / "metrics.jsonl") if r["kind"] == "train"]
    ts = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in te] == [r["step"] for r in ts]
    np.testing.assert_allclose([r["loss"] for r in te], [r["loss"] for r in ts], rtol=1e-5)
    assert {r["step"] for r in read_metrics(ref[1] / "metrics.jsonl") if r["kind"] == "eval"} == {0, 10, 20, 30, 40}

    # The CPU default runs members unbatched: each member is then its single run, bitwise.
    cfgs = [validate_config(c) for c in _configs(base["corpus"])]
    dirs = [base["root"] / "unbatched" / f"s{s}" for s in SEEDS]
    out = train_ensemble(cfgs, dirs)
    assert out[1]["final_val_loss"] == s["final_val_loss"]
    _assert_bitwise(dirs[1], run)


def test_member_run_dirs_are_ordinary_run_dirs(base, ref, single):
    _, s = single
    for seed, d in zip(SEEDS, ref):
        assert sorted(p.name for p in d.iterdir()) == sorted(p.name for p in single[0].iterdir())
        loaded = load_run(d)
        assert loaded.step == STEPS and loaded.cfg.seed == seed and loaded.cfg.name == f"tiny-s{seed}"
        summary = json.loads((d / "summary.json").read_text())
        assert summary["status"] == "done" and set(summary) == set(s)
        assert checkpoint.list_steps(d / "checkpoints") == [36, 40]
        # A later single run on a member's directory accepts its config and checkpoint.
        assert train(loaded.cfg, d) == summary


def test_ensemble_is_deterministic_and_pauses_exactly(base, ref):
    dirs = [base["root"] / "again" / f"s{s}" for s in SEEDS]
    _run(base, dirs, stop_at=17)
    for d in dirs:
        assert json.loads((d / "summary.json").read_text())["status"] == "paused"
        assert checkpoint.list_steps(d / "checkpoints")[-1] == 17
    _run(base, dirs)
    for a, b in zip(ref, dirs):
        _assert_bitwise(a, b)


def _last_step(run_dir):
    try:
        recs = read_metrics(run_dir / "metrics.jsonl")
    except FileNotFoundError:
        return 0
    return max((r["step"] for r in recs if r.get("kind") == "train"), default=0)


def test_sigkill_and_resume_is_bitwise_identical(base, ref):
    dirs = [base["root"] / "killed" / f"s{s}" for s in SEEDS]
    for kill_after in (8, 21):
        p = _start(base, dirs)
        deadline = time.time() + 300
        while _last_step(dirs[0]) < kill_after and p.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert _last_step(dirs[0]) < STEPS, "the run finished before it could be killed"
    # As if killed between the members' saves: the second member lacks the newest checkpoint,
    # so the restart must go back to the newest step both members have.
    newest = checkpoint.list_steps(dirs[1] / "checkpoints")[-1]
    checkpoint.drop(dirs[1] / "checkpoints", [newest])
    _run(base, dirs)
    for a, b in zip(ref, dirs):
        _assert_bitwise(a, b)


def test_mismatched_configs_are_rejected_in_one_line(base, tmp_path):
    raw = _configs(base["corpus"])
    dirs = [tmp_path / "a", tmp_path / "b"]
    other = dict(raw[1], train=dict(raw[1]["train"], optimizer=dict(raw[1]["train"]["optimizer"], lr=1e-2)))
    cases = [
        ([raw[0], other], dirs, r"member 1 \('tiny-s4'\) differs from member 0 \('tiny-s3'\) in train\.optimizer\.lr"),
        ([raw[0], dict(raw[1], seed=SEEDS[0])], dirs, r"repeat a seed"),
        (raw, [tmp_path / "a", tmp_path / "a"], r"repeat a directory"),
        (raw, dirs[:1], r"2 configs but 1 run directories"),
    ]
    for cfgs, run_dirs, match in cases:
        with pytest.raises(LmscaleError, match=match) as err:
            train_ensemble([validate_config(c) for c in cfgs], run_dirs)
        assert "\n" not in str(err.value)
    with pytest.raises(LmscaleError, match="vmap_members=3 does not divide"):
        train_ensemble([validate_config(c) for c in raw], dirs, vmap_members=3)
    assert not any(tmp_path.iterdir())  # nothing written
