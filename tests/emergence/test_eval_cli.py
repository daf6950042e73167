import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from lmscale.train.config import validate_config
from lmscale.emergence.eval_cli import eval_app
from lmscale.emergence.results import read_eval_table
from lmscale.sweep.registry import REGISTRY, Registry
from tests.helpers import invoke, tiny_config

CORPUS = "skills:add2,parity;lines=3000;val_lines=100"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run directory as the trainer leaves it (config, tokenizer, a checkpoint at step 12, summary),
    with initial weights: the CLI's plumbing needs no trained model, and this compiles nothing."""
    import jax

    from lmscale.data.prepare import prepare_data
    from lmscale.fileio import atomic_write_json, atomic_write_yaml
    from lmscale.model.registry import get_model
    from lmscale.train import checkpoint
    from lmscale.train.optimizer import build_optimizer
    from lmscale.train.run import CHECKPOINTS, resolve_vocab

    cfg = validate_config(tiny_config(CORPUS, **{"model.depth": 1, "model.width": 16, "model.context": 64}))
    data = prepare_data(cfg.data)
    cfg = resolve_vocab(cfg, data.vocab_size)
    run = tmp_path_factory.mktemp("eval") / "run"
    run.mkdir()
    atomic_write_yaml(run / "config.yaml", cfg.to_dict())
    data.tokenizer.save(run / "tokenizer.json")
    # The checkpoint's structure is the trainer's state (eval_shape: nothing is compiled); the
    # weights are NumPy draws (norm scales 1) and the optimizer moments zeros.
    model = get_model(cfg.model)
    opt = build_optimizer(cfg.train, model.axes, cfg.model)
    template = {"params": model.shapes, "opt_state": jax.eval_shape(opt.init, model.shapes)}
    state = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)
    rng = np.random.default_rng(0)
    state["params"] = jax.tree_util.tree_map_with_path(
        lambda path, s: np.ones(s.shape, s.dtype) if "scale" in jax.tree_util.keystr(path)
        else rng.normal(0, 0.1, s.shape).astype(s.dtype), template["params"])
    checkpoint.save(run / CHECKPOINTS, 12, state)
    atomic_write_json(run / "summary.json", {"status": "done", "step": 12, "final_val_loss": 3.25})
    return run


def _errors(result):
    return [ln for ln in result.output.splitlines() if ln.startswith("error:")]


def test_eval_run_writes_the_long_table(tiny_run, tmp_path):
    out = tmp_path / "out"
    res = invoke(eval_app, [str(tiny_run), "--tasks", "add2,parity", "--n", "24", "--out", str(out),
                            "--bootstrap", "50", "--pass-budget", "200"])
    assert res.exit_code == 0, res.output
    table = read_eval_table(out)
    assert table.tasks() == ["add2", "parity"]
    assert set(table.metrics("parity")) == {"exact_match", "token_accuracy", "edit_distance", "logprob", "token_prob",
                                             "mc_accuracy", "brier", "pass_until"}
    row = table.filter(task="parity", metric="mc_accuracy").rows[0]
    assert row.n_examples == 24 and row.chance == 0.5 and row.step == 12 and row.N > 0 and row.answer_tokens == 2
    assert row.D == 12 * 8 * 64 and row.val_loss == 3.25
    # A second evaluation (2-shot, one metric) adds rows and keeps the first ones.
    res = invoke(eval_app, [str(tiny_run), "--tasks", "add2", "--k-shot", "2", "--n", "8", "--out", str(out),
                            "--metrics", "exact_match", "--bootstrap", "20"])
    assert res.exit_code == 0, res.output
    table = read_eval_table(out)
    assert table.k_shots("add2") == [0, 2] and len(table.filter(k_shot=2)) == 1


def test_eval_sweep_fills_the_registry(tiny_run, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(tiny_run, sweep / "runs" / "m1")
    reg = Registry(sweep / REGISTRY)
    plan = {"N": 1000.0, "N_nonembed": 900.0, "D": 6144.0, "C": 1e9, "family": "fam", "seed": 3}
    reg.add_runs([SimpleNamespace(run_id="m1", job="m1", order=0, row=lambda: plan, config={}),
                  SimpleNamespace(run_id="m2", job="m2", order=1, row=lambda: plan, config={})])
    reg.set_run("m1", "done", final_loss=2.5)  # m2 stays pending: not evaluated
    reg.close()
    res = invoke(eval_app, [str(sweep), "--tasks", "parity", "--n", "16", "--metrics", "exact_match,logprob",
                            "--bootstrap", "20"])
    assert res.exit_code == 0, res.output
    rows = read_eval_table(sweep).rows
    assert {(r.run_id, r.metric) for r in rows} == {("m1", "exact_match"), ("m1", "logprob")}
    assert all(r.N == 1000.0 and r.family == "fam" and r.val_loss == 2.5 for r in rows)
    reg = Registry(sweep / REGISTRY)
    stored = reg.evals()
    reg.close()
    assert {(r["run_id"], r["task"], r["metric"], r["k_shot"]) for r in stored} == {("m1", "parity", "exact_match", 0),
                                                                                   ("m1", "parity", "logprob", 0)}
    json.dumps(stored, allow_nan=False)  # NaNs were stored as nulls


def test_bad_input_is_a_one_line_error_and_writes_nothing(tiny_run, tmp_path):
    cases = [
        ([str(tiny_run), "--tasks", "add3,nope"], "unknown task 'nope'"),
        ([str(tiny_run), "--tasks", "add2", "--k-shot", "9"], "exceed the context"),
        ([str(tiny_run), "--tasks", "add2", "--metrics", "bleu"], "unknown metric"),
        ([str(tmp_path), "--tasks", "add2"], "neither a run directory"),
        ([str(tiny_run), "--tasks", " , "], "no task names"),
    ]
    for args, msg in cases:
        out = tmp_path / "o"
        res = invoke(eval_app, [*args, "--out", str(out), "--n", "4"])
        assert res.exit_code == 2, res.output
        errs = _errors(res)
        assert len(errs) == 1 and msg in errs[0], res.output
        assert not out.exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "eval.csv").write_text("run_id,N\nx,1\n")  # an earlier table that cannot be read is left alone
    res = invoke(eval_app, [str(tiny_run), "--tasks", "add2", "--out", str(bad), "--n", "4"])
    assert res.exit_code == 2 and "lacks column" in _errors(res)[0]
    assert (bad / "eval.csv").read_text() == "run_id,N\nx,1\n" and not (bad / "eval.json").exists()
    empty = tmp_path / "empty-sweep"
    Registry(empty / REGISTRY).close()
    res = invoke(eval_app, [str(empty), "--tasks", "add2"])
    assert res.exit_code == 2 and "no finished runs" in _errors(res)[0]
