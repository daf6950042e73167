"""`lmscale theory ...` through the Typer sub-app: numbers printed, one-line errors with exit status 2."""

import json

import numpy as np
import pytest

from lmscale.theory.cli import theory_app
from lmscale.theory.overlay import emergence_shape
from tests import helpers


def invoke(*args):
    return helpers.invoke(theory_app, args)


def error_line(res):
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def test_optimum_prints_the_chinchilla_budget():
    res = invoke("optimum", "--flops", "5.73e23")
    assert res.exit_code == 0, res.output
    row = [ln for ln in res.stdout.splitlines() if "5.730e+23" in ln][0]
    cells = [c.strip() for c in row.split("│") if c.strip()]
    N, D, tpp = float(cells[1]), float(cells[2]), float(cells[3])
    assert N == pytest.approx(7e10, rel=0.05) and D == pytest.approx(1.3e12, rel=0.05) and tpp == pytest.approx(18.5, abs=1)


def test_threshold_regular_3_6_literature_values():
    res = invoke("threshold", "--regular", "3,6", "--epsilon", "0.4", "--n", "1e4")
    assert res.exit_code == 0, res.output
    assert "0.429440" in res.stdout and "0.5604" in res.stdout and "0.9385" in res.stdout


@pytest.mark.parametrize("args, words", [
    (("threshold", "--R", "1e4", "--T", "5e4", "--epsilon", "1.5"), "epsilon"),
    (("threshold", "--R", "1e4", "--T", "5e4", "--dt", "1"), "d_t"),
    (("threshold", "--R", "-5", "--T", "5e4"), "R"),
    (("threshold", "--dt", "6"), "--R"),
    (("optimum", "--flops", "0"), "C_flops"),
    (("optimum", "--flops", "abc"), "--flops"),
    (("figures", "--only", "nope"), "figure"),
    (("figures", "--kl-units", "hartleys"), "kl_units"),
    (("figures", "--epsilon", "0"), "epsilon"),
    (("montecarlo", "--trials", "1"), "--trials"),
    (("overlay", "missing-dir"), "not found"),
])
def test_invalid_parameters_are_one_line_errors(args, words, tmp_path):
    res = helpers.invoke(theory_app, list(args) + (["--out", str(tmp_path / "o")] if args[0] in ("figures",) else []))
    assert words in error_line(res)
    assert not (tmp_path / "o").exists()


def test_figures_only_one(tmp_path):
    res = invoke("figures", "--out", tmp_path, "--only", "quantization")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "quantization.png").is_file() and (tmp_path / "quantization.csv").is_file()


def test_montecarlo_small(tmp_path):
    res = invoke("montecarlo", "--R", "300", "--trials", "8", "--er-degrees", "2", "--er-vertices", "3000")
    assert res.exit_code == 0, res.output
    assert "peeling decoder" in res.stdout and "0.79681" in res.stdout  # gamma(c = 2)


def test_overlay_command_on_a_csv(tmp_path):
    rng = np.random.default_rng(1)
    N = np.repeat(np.geomspace(1e7, 1e9, 5), 4)
    D = np.tile(np.geomspace(1e9, 1e11, 4), 5)
    L = 1.7 + 400 / N**0.3 + 400 / D**0.3 + rng.normal(0, 1e-4, len(N))
    csv = tmp_path / "runs.csv"
    csv.write_text("N,D,loss\n" + "".join(f"{float(n)!r},{float(d)!r},{float(loss)!r}\n" for n, d, loss in zip(N, D, L)))
    tasks = tmp_path / "tasks.csv"
    Nt = np.geomspace(1e6, 1e10, 10)
    acc = emergence_shape(Nt, np.log(1e8), 0.8, 0.0, 1.0, 3)
    tasks.write_text("N,task,accuracy\n" + "".join(f"{float(n)!r},copy,{float(a)!r}\n" for n, a in zip(Nt, acc))
                     + "1e6,tiny,0.1\n")
    res = invoke("overlay", csv, "--out", tmp_path / "ov", "--tasks", tasks)
    assert res.exit_code == 0, res.output
    saved = json.loads((tmp_path / "ov" / "theory_overlay.json").read_text())
    assert saved["fitted"]["params_per_concept"] > 0 and "params per concept" in res.stdout
    (fit,) = saved["tasks"]
    grid = np.geomspace(1e6, 1e10, 4000)
    true_half = grid[np.argmax(emergence_shape(grid, np.log(1e8), 0.8, 0.0, 1.0, 3) >= 0.5)]
    assert fit["task"] == "copy" and fit["rms_residual"] < 0.01
    assert fit["N_half_parameters"] == pytest.approx(true_half, rel=0.05)
    assert any("'tiny' not fitted" in n for n in saved["notes"])
    assert (tmp_path / "ov" / "theory_tasks.png").is_file() and (tmp_path / "ov" / "theory_tasks.csv").is_file()
