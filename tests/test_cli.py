"""The CLI end to end: bad input gives one-line errors with exit status 2 and damages nothing."""

import json
import subprocess
import sys

import pytest

from tests.helpers import tree_bytes, invoke, run_cli, tiny_config, write_yaml


def _error_line(proc):
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr  # one line, the last thing printed
    return errors[0]


@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"model.widht": 32}, "unknown key 'model.widht'"),
        ({"model.width": "big"}, "model.width='big'"),
        ({"model.depth": -2}, "model.depth=-2"),
        ({"model.width": 30, "model.heads": 4}, "model.width=30 is not divisible by model.heads=4"),
        ({"data.corpus": "/nonexistent/plays.txt"}, "corpus '/nonexistent/plays.txt' not found"),
        ({"model.context": 100000}, "model.context=100000 is too long"),
    ],
)
def test_bad_configs(text_corpus, tmp_path, overrides, needle):
    cfg = write_yaml(tmp_path / "c.yaml", tiny_config(text_corpus, **overrides))
    proc = run_cli("train", cfg, "--run-dir", tmp_path / "run", "--no-progress")
    assert proc.returncode == 2
    assert needle in _error_line(proc)
    assert not (tmp_path / "run").exists()  # nothing written for a bad config


def test_bad_set_override_and_missing_config(text_corpus, tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", tiny_config(text_corpus))
    proc = run_cli("train", cfg, "--set", "train.steps", "--no-progress")
    assert proc.returncode == 2 and "expected key=value" in _error_line(proc)
    proc = run_cli("train", tmp_path / "missing.yaml")
    assert proc.returncode == 2 and "not found" in _error_line(proc)


def test_train_info_sample_resume_and_mismatch(text_corpus, tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", tiny_config(text_corpus, **{"train.steps": 20}))
    run = tmp_path / "run"
    proc = run_cli("train", cfg, "--run-dir", run, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "final val loss" in proc.stdout and "nats/token" in proc.stdout

    info = run_cli("info", run)
    assert info.returncode == 0 and "non-embedding" in info.stdout and "best val loss" in info.stdout

    s = run_cli("sample", run, "--prompt", "The king", "--max-tokens", "40", "--temperature", "0.8", "--top-k", "5")
    assert s.returncode == 0, s.stderr
    assert s.stdout.startswith("The king") and len(s.stdout) >= len("The king") + 30
    greedy1 = run_cli("sample", run, "--prompt", "The", "--max-tokens", "20", "--temperature", "0")
    greedy2 = run_cli("sample", run, "--prompt", "The", "--max-tokens", "20", "--temperature", "0", "--seed", "9")
    assert greedy1.stdout == greedy2.stdout  # greedy ignores the seed

    # Resuming a finished run trains nothing more and keeps the results.
    summary = json.loads((run / "summary.json").read_text())
    again = run_cli("train", run, "--no-progress")
    assert again.returncode == 0, again.stderr
    assert json.loads((run / "summary.json").read_text())["final_val_loss"] == summary["final_val_loss"]

    # Same directory, different config: refused, nothing touched.
    ckpts = tree_bytes(run / "checkpoints")
    other = write_yaml(tmp_path / "o.yaml", tiny_config(text_corpus, **{"train.steps": 20, "seed": 99}))
    proc = run_cli("train", other, "--run-dir", run, "--no-progress")
    assert proc.returncode == 2 and "another config (seed" in _error_line(proc)
    assert tree_bytes(run / "checkpoints") == ckpts
    bad = run_cli("sample", run, "--max-tokens", "0")
    assert bad.returncode == 2 and "--max-tokens=0" in _error_line(bad)


def test_corrupted_cache_via_cli(text_corpus, tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", tiny_config(text_corpus))
    proc = run_cli("data", "prepare", cfg)
    assert proc.returncode == 0, proc.stderr
    from lmscale.train.config import load_config
    from lmscale.data.prepare import data_dir

    path, _, _ = data_dir(load_config(cfg).data)
    (path / "val.bin").write_bytes(b"\x00")
    proc = run_cli("train", cfg, "--run-dir", tmp_path / "run", "--no-progress")
    assert proc.returncode == 2 and "is corrupted" in _error_line(proc)
    assert (path / "val.bin").read_bytes() == b"\x00"
    info = run_cli("data", "info")
    assert info.returncode == 0 and path.name[:20] in info.stdout.replace("\n", "")
    fixed = run_cli("data", "prepare", cfg, "--force")
    assert fixed.returncode == 0 and "val" in fixed.stdout


def test_model_commands():
    proc = run_cli("model", "ladder", "--depths", "2,4", "--vocab", "80", "--context", "64", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [(r["depth"], r["width"], r["heads"]) for r in rows] == [(2, 128, 2), (4, 256, 4)]
    bad = run_cli("model", "ladder", "--depths", "two")
    assert bad.returncode == 2 and "--depths" in _error_line(bad)


def test_usage_errors_exit_2(tmp_path):
    proc = run_cli("train", tmp_path / "x.yaml", "--bogus-option")
    assert proc.returncode == 2 and "No such option" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("sample", tmp_path, "--max-tokens", "abc")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_cli("train")
    assert proc.returncode == 2 and "Missing argument" in proc.stderr


def test_run_dir_is_usable_from_any_directory(text_corpus, tmp_path):
    """Relative corpus paths are stored absolute, so resume and sample work from elsewhere."""
    work = text_corpus.parent
    cfg = tiny_config("corpus.txt", **{"train.steps": 10})
    write_yaml(work / "rel.yaml", cfg)
    proc = run_cli("train", "rel.yaml", "--run-dir", "runs/rel", "--no-progress", cwd=work)
    assert proc.returncode == 0, proc.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = run_cli("train", work / "runs" / "rel", "--no-progress", cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    s = run_cli("sample", work / "runs" / "rel", "--prompt", "", "--max-tokens", "10", cwd=elsewhere)
    assert s.returncode == 0, s.stderr
    w = run_cli("sample", work / "runs" / "rel", "--prompt", "Zq", "--max-tokens", "5", cwd=elsewhere)
    assert w.returncode == 0 and "not in the training vocabulary" in w.stderr


def test_emergence_ledger_and_its_hidden_alias(tmp_path):
    from lmscale.cli import app  # the whole command tree, in-process (no JAX needed for these commands)

    syn, led = tmp_path / "syn", tmp_path / "ledger.sqlite"
    assert invoke(app, ["emergence", "synthetic", "--out", syn, "--scales", "5", "--examples", "0"]).exit_code == 0
    add = invoke(app, ["emergence", "ledger", "add", syn, "--ledger", led])
    assert add.exit_code == 0 and "100 in all" in add.stdout, add.output
    show = invoke(app, ["emergence", "ledger", "show", "--ledger", led])
    assert show.exit_code == 0 and "flipped" in show.stdout and "not-yet" in show.stdout, show.output
    alias = invoke(app, ["ledger", "show", "--ledger", led])  # the old spelling still works, and shows the same
    assert alias.exit_code == 0 and alias.stdout == show.stdout, alias.output
    commands = [ln.split()[0] for ln in invoke(app, ["--help"]).stdout.split("Commands:")[1].splitlines() if ln.strip()]
    assert "emergence" in commands and "ledger" not in commands  # the alias is hidden
    assert "ledger" in invoke(app, ["emergence", "--help"]).stdout
    assert "Same as `lmscale emergence ledger`" in invoke(app, ["ledger", "--help"]).stdout


def test_every_command_group_reports_bad_input_as_one_error_line(tmp_path):
    """Through the real `lmscale` command (one handler in lmscale.cli.main): one stderr line, exit 2.
    train, sample, data and model are covered above; sweep in tests/sweep/test_runner.py."""
    cases = [
        (["fit", tmp_path / "none.csv"], "not found"),
        (["plot", tmp_path / "none.csv"], "not found"),
        (["eval", tmp_path, "--tasks", "nope"], "unknown task 'nope'"),
        (["emergence", "analyze", tmp_path / "none.csv"], "does not exist"),
        (["emergence", "ledger", "show", "--ledger", tmp_path / "l.sqlite", "--metric", "bogus"], "--metric 'bogus'"),
        (["icl", "eval", tmp_path], "not an ICL run directory"),
        (["theory", "optimum", "--flops", "lots"], "--flops 'lots'"),
        (["mup", "coord-check", tmp_path / "c.yaml", "--widths", "32,abc"], "'abc' is not an integer"),
        (["demo", "bogus"], "demo 'bogus'"),
    ]
    procs = [subprocess.Popen([sys.executable, "-m", "lmscale", *map(str, args)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for args, _ in cases]  # all at once: ~10 s on 2 cores
    for (args, needle), p in zip(cases, procs):
        _, err = p.communicate(timeout=300)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert p.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, err)
        assert needle in lines[0], (args, lines[0])
    assert not (tmp_path / "l.sqlite").exists()


def test_the_one_error_handler_keeps_each_errors_exit_status():
    import typer

    from lmscale.errors import DivergedError, LmscaleError

    app = typer.Typer()

    @app.command()
    def boom(kind: str):
        raise {"user": LmscaleError("bad --x 1;\n expected 2"), "diverged": DivergedError("diverged at step 7"),
               "bug": ZeroDivisionError("a programming error")}[kind]

    r = invoke(app, ["user"])
    assert r.exit_code == 2 and r.stderr == "error: bad --x 1; expected 2\n" and r.stdout == ""
    r = invoke(app, ["diverged"])
    assert r.exit_code == 3 and r.stderr == "error: diverged at step 7\n"
    with pytest.raises(ZeroDivisionError):  # programming errors are not caught
        invoke(app, ["bug"])
