import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lmscale.train.config import validate_config
from lmscale.errors import DivergedError, LmscaleError
from lmscale.train import checkpoint
from lmscale.train.lm import train
from lmscale.train.metrics import read_metrics
from lmscale.train.run import load_run
from tests.helpers import tree_bytes, assert_same_final_state, tiny_config, write_yaml


def test_tiny_run_learns_and_writes_a_complete_run_dir(text_corpus, tmp_path):
    cfg = validate_config(tiny_config(text_corpus, **{"train.steps": 60}))
    run = tmp_path / "run"
    s = train(cfg, run)
    assert s["status"] == "done" and s["step"] == 60
    recs = read_metrics(run / "metrics.jsonl")
    evals = [r for r in recs if r["kind"] == "eval"]
    trains = [r for r in recs if r["kind"] == "train"]
    assert [r["step"] for r in evals] == [0, 10, 20, 30, 40, 50, 60]
    assert [r["step"] for r in trains] == list(range(5, 61, 5))
    for key in ("step", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "flops_per_s", "epoch"):
        assert key in trains[-1]
    assert trains[-1]["tokens"] == 60 * 8 * 32
    # Loss at init is ln(vocab); training on this 30-word corpus must cut it well down.
    vocab = s["params_total"] and load_run(run).cfg.model.vocab_size
    assert evals[0]["val_loss"] == pytest.approx(math.log(vocab), abs=0.15)
    assert evals[-1]["val_loss"] < 0.75 * evals[0]["val_loss"]
    assert s["final_val_loss"] == evals[-1]["val_loss"] and s["final_val_sequences"] == 64
    assert s["final_val_bits_per_char"] == pytest.approx(s["final_val_loss"] / math.log(2))
    assert (run / "config.yaml").is_file() and (run / "tokenizer.json").is_file() and (run / "summary.json").is_file()
    assert checkpoint.list_steps(run / "checkpoints") == [40, 50, 60]


def test_same_config_and_seed_give_the_same_numbers(text_corpus, tmp_path):
    cfg = validate_config(tiny_config(text_corpus, **{"train.steps": 12, "model.dropout": 0.1}))
    a = train(cfg, tmp_path / "a")
    b = train(cfg, tmp_path / "b")
    assert a["final_val_loss"] == b["final_val_loss"]
    pa = load_run(tmp_path / "a").params
    pb = load_run(tmp_path / "b").params
    for x, y in zip(np.asarray(pa["blocks"]["mlp"]["w_in"]).ravel()[:100], np.asarray(pb["blocks"]["mlp"]["w_in"]).ravel()[:100]):
        assert x == y


def test_existing_run_with_another_config_is_refused(text_corpus, tmp_path):
    cfg = validate_config(tiny_config(text_corpus, **{"train.steps": 10}))
    run = tmp_path / "run"
    train(cfg, run)
    before = tree_bytes(run / "checkpoints")
    other = validate_config(tiny_config(text_corpus, **{"train.steps": 10, "train.optimizer.lr": 1e-2}))
    with pytest.raises(LmscaleError, match=r"another config \(train.optimizer.lr"):
        train(other, run)
    assert tree_bytes(run / "checkpoints") == before
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(LmscaleError, match="is not an lmscale run"):
        train(cfg, tmp_path / "junk")


def test_divergence_stops_with_status_and_keeps_last_good_checkpoint(text_corpus, tmp_path):
    cfg = validate_config(tiny_config(text_corpus, **{
        "train.steps": 20, "train.optimizer.lr": 1e30, "train.optimizer.grad_clip": None,
        "train.schedule": {"kind": "constant", "warmup": 0}, "train.checkpoint_every": 1,
    }))
    run = tmp_path / "run"
    with pytest.raises(DivergedError, match=r"training diverged at step (\d+): .*(nan|inf|non-finite)") as exc:
        train(cfg, run)
    assert exc.value.exit_code == 3
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "diverged"
    steps = checkpoint.list_steps(run / "checkpoints")
    assert steps and steps[-1] == summary["step"] - 1
    good = load_run(run)
    assert all(np.isfinite(np.asarray(x)).all() for x in __import__("jax").tree.leaves(good.params))


def _run_cli(cfg_path, run_dir, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "lmscale", "train", str(cfg_path), "--run-dir", str(run_dir), "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ), **kw,
    )


def _last_step(run_dir):
    try:
        recs = read_metrics(run_dir / "metrics.jsonl")
    except FileNotFoundError:
        return 0
    return max((r["step"] for r in recs if r.get("kind") == "train"), default=0)


def test_sigkill_and_resume_is_bitwise_identical(text_corpus, tmp_path):
    """Kill -9 twice at arbitrary points (between and right after checkpoints), resume, compare."""
    cfg = tiny_config(text_corpus, **{"train.steps": 60, "model.dropout": 0.1, "train.log_every": 1,
                                      "train.checkpoint_every": 7, "train.grad_accum": 2})
    path = write_yaml(tmp_path / "cfg.yaml", cfg)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    p = _run_cli(path, ref)
    assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-2000:]

    for kill_after in (11, 29):
        p = _run_cli(path, killed)
        deadline = time.time() + 300
        while _last_step(killed) < kill_after and p.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert _last_step(killed) < 60, "the run finished before it could be killed"
    p = _run_cli(path, killed)
    assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-2000:]

    assert_same_final_state(ref, killed, 60)
    ra = [r for r in read_metrics(ref / "metrics.jsonl") if r["kind"] == "train"]
    rb = [r for r in read_metrics(killed / "metrics.jsonl") if r["kind"] == "train"]
    assert [r["step"] for r in rb] == list(range(1, 61))
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]


def test_resume_refuses_changed_data_and_keeps_the_run(text_corpus, tmp_path):
    cfg = validate_config(tiny_config(text_corpus, **{"train.steps": 10}))
    run = tmp_path / "run"
    train(cfg, run)
    record = (run / "data.json").read_bytes(), (run / "tokenizer.json").read_bytes()
    text_corpus.write_text(text_corpus.read_text() + "An extra line, changing the corpus.\n")
    with pytest.raises(LmscaleError, match="was trained on other data"):
        train(cfg, run)
    assert ((run / "data.json").read_bytes(), (run / "tokenizer.json").read_bytes()) == record


def test_all_checkpoints_unusable_is_an_error_not_a_restart(text_corpus, tmp_path):
    cfg = validate_config(tiny_config(text_corpus, **{"train.steps": 20}))
    run = tmp_path / "run"
    train(cfg, run)
    for step in checkpoint.list_steps(run / "checkpoints"):
        for f in checkpoint.array_files(run / "checkpoints", step):
            f.write_bytes(f.read_bytes()[:50])
    before = (run / "metrics.jsonl").read_bytes()
    with pytest.raises(LmscaleError, match="none is usable"):
        train(cfg, run)
    assert (run / "metrics.jsonl").read_bytes() == before


def test_sampling_never_emits_padding_ids():
    import jax

    from lmscale.model.decoder import DecoderConfig
    from lmscale.train.sample import generate
    from tests.helpers import init_model

    cfg = DecoderConfig(depth=1, width=16, heads=2, context=8, vocab_size=40)
    params, _ = init_model(cfg, jax.random.key(0))
    out = generate(params, cfg, np.array([1, 2]), max_tokens=200, temperature=2.0, seed=1, vocab_limit=5)
    assert out.shape == (200,) and out.max() < 5 and len(np.unique(out)) > 1
    greedy = generate(params, cfg, np.array([1, 2]), max_tokens=30, temperature=0.0, seed=1)
    assert np.array_equal(greedy, generate(params, cfg, np.array([1, 2]), max_tokens=30, temperature=0.0, seed=7))
    with pytest.raises(LmscaleError, match="--temperature=nan"):
        generate(params, cfg, np.array([1]), temperature=float("nan"))
