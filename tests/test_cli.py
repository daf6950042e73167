"""The CLI end to end: bad input gives one-line errors with exit status 2 and damages nothing."""

import json

import pytest

from tests.helpers import run_cli, tiny_config, write_yaml


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
    ckpts = {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}
    other = write_yaml(tmp_path / "o.yaml", tiny_config(text_corpus, **{"train.steps": 20, "seed": 99}))
    proc = run_cli("train", other, "--run-dir", run, "--no-progress")
    assert proc.returncode == 2 and "another config (seed" in _error_line(proc)
    assert {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()} == ckpts
    bad = run_cli("sample", run, "--max-tokens", "0")
    assert bad.returncode == 2 and "--max-tokens=0" in _error_line(bad)


def test_corrupted_cache_via_cli(text_corpus, tmp_path):
    cfg = write_yaml(tmp_path / "c.yaml", tiny_config(text_corpus))
    proc = run_cli("data", "prepare", cfg)
    assert proc.returncode == 0, proc.stderr
    from lmscale.config import load_config
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
