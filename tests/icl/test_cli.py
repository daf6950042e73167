"""`lmscale icl ...` through its typer app: one-line errors with status 2, and a tiny run end to end."""

import yaml

from lmscale.icl.cli import icl_app
from tests.helpers import invoke


def _write(tmp_path, raw):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    return str(p)


def _error(result):
    lines = [ln for ln in result.output.strip().splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_bad_configs_exit_2(tiny_raw, tmp_path):
    cfg = _write(tmp_path, tiny_raw)
    for overrides, needle in [(["n_points=0"], "n_points=0"), (["task.noise=-1"], "task.noise=-1"),
                              (["model.token_dim=9"], "model.token_dim=9 does not match task.d=2")]:
        args = ["train", cfg, "--run-dir", str(tmp_path / "r"), "--no-progress"]
        for o in overrides:
            args += ["--set", o]
        assert needle in _error(invoke(icl_app, args))
    assert not (tmp_path / "r").exists()  # nothing written for a bad config
    assert "not an ICL run directory" in _error(invoke(icl_app, ["eval", str(tmp_path)]))
    assert "no 'sweep' section" in _error(invoke(icl_app, ["sweep", cfg]))


def test_train_then_eval(tiny_raw, tmp_path):
    # The session's tiny config: its training chunk is already compiled.
    cfg = _write(tmp_path, tiny_raw)
    r = invoke(icl_app, ["train", cfg, "--run-dir", str(tmp_path / "r"), "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "done" in r.output
    r = invoke(icl_app, ["eval", str(tmp_path / "r")])
    assert r.exit_code == 0 and "error_curve.png" in r.output, r.output
    assert (tmp_path / "r" / "error_curve.csv").is_file()
    # Resuming with another config is refused without touching the run.
    before = (tmp_path / "r" / "config.yaml").read_text()
    r = invoke(icl_app, ["train", cfg, "--set", "train.steps=20", "--run-dir", str(tmp_path / "r")])
    assert "holds a run with another config" in _error(r)
    assert (tmp_path / "r" / "config.yaml").read_text() == before
