from __future__ import annotations

import subprocess
import sys

import numpy as np

from lmscale.report.cli import default_out_dir, plot_app
from tests.helpers import invoke
from tests.report.conftest import check_png, read_csv


def _write_csv(path, data, columns=("N", "D", "loss")):
    lines = [",".join(columns)]
    for i in range(len(data)):
        vals = {"N": data.N[i], "D": data.D[i], "loss": data.loss[i],
                "budget": data.budget[i] if data.budget is not None else np.nan}
        lines.append(",".join(repr(float(vals[c])) for c in columns))
    path.write_text("\n".join(lines) + "\n")
    return path


def _error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


def test_plot_csv_writes_figures(tmp_path, grid_data):
    csv_path = _write_csv(tmp_path / "points.csv", grid_data)
    out = tmp_path / "figs"
    result = invoke(plot_app, [str(csv_path), "--out", str(out), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    for stem in ("kaplan", "loss_surface", "frontier", "residuals"):
        check_png(out / f"{stem}.png")
        assert str(out / f"{stem}.png") in result.output and str(out / f"{stem}.csv") in result.output
    rows = read_csv(out / "loss_surface.csv")
    assert len([r for r in rows if r["kind"] in ("point", "held_out")]) == len(grid_data)
    front = read_csv(out / "frontier.csv")
    lo, med, hi = (np.array([float(r[f"N_opt_{k}"]) for r in front]) for k in ("low", "median", "high"))
    assert np.all(lo <= med) and np.all(med <= hi)


def test_plot_default_out_dir_and_single_variable_law(tmp_path, grid_data):
    csv_path = _write_csv(tmp_path / "pts.csv", grid_data)
    result = invoke(plot_app, [str(csv_path), "--law", "kaplan-n"])
    assert result.exit_code == 0, result.output
    out = default_out_dir(csv_path)
    assert out == tmp_path / "pts-figures"
    assert sorted(p.name for p in out.glob("*.png")) == ["kaplan.png", "residuals.png"]


def test_plot_isoflop_csv_adds_the_isoflop_figure(tmp_path, isoflop_data):
    csv_path = _write_csv(tmp_path / "iso.csv", isoflop_data, columns=("N", "D", "loss", "budget"))
    result = invoke(plot_app, [str(csv_path), "--law", "kaplan-n", "--out", str(tmp_path / "f")])
    assert result.exit_code == 0, result.output
    assert sorted(p.stem for p in (tmp_path / "f").glob("*.png")) == ["isoflop", "kaplan", "residuals"]
    rows = read_csv(tmp_path / "f" / "isoflop.csv")
    assert len([r for r in rows if r["kind"] == "point"]) == len(isoflop_data)


def test_plot_missing_loss_column_exits_2_with_one_line(tmp_path, grid_data):
    bad = _write_csv(tmp_path / "bad.csv", grid_data, columns=("N", "D"))
    result = invoke(plot_app, [str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    errors = _error_lines(result)
    assert len(errors) == 1 and "loss" in errors[0] and "bad.csv" in errors[0]
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_plot_bad_options_exit_2(tmp_path, grid_data):
    csv_path = _write_csv(tmp_path / "p.csv", grid_data)
    result = invoke(plot_app, [str(csv_path), "--law", "nonsense"])
    assert result.exit_code == 2 and "nonsense" in _error_lines(result)[0]
    result = invoke(plot_app, [str(csv_path), "--bootstrap", "1"])
    assert result.exit_code == 2 and "--bootstrap 1" in _error_lines(result)[0]
    result = invoke(plot_app, [str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "not found" in _error_lines(result)[0]


def test_importing_the_command_does_not_import_matplotlib():
    code = "import sys, lmscale.report.cli; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _write_sweep(sweep, data, curves):
    """results.csv and curves.csv with the columns `lmscale.sweep.results.write_results` writes."""
    sweep.mkdir()
    res = ["run_id,trunk,family,status,seed,N,N_nonembed,D,C,C_6N,budget,loss,loss_se,best_loss,steps,fork_step"]
    for i, (n, d, y) in enumerate(zip(data.N.tolist(), data.D.tolist(), data.loss.tolist())):
        res.append(f"run{i},{data.run[i]},fam,done,0,{n!r},{0.9 * n!r},{d!r},{6 * n * d!r},{6 * n * d!r},,{y!r},0.01,{y!r},100,")
    res.append(f"run-pending,x,fam,pending,0,{1e9!r},{9e8!r},{1e11!r},{6e20!r},{6e20!r},,,,,100,")
    (sweep / "results.csv").write_text("\n".join(res) + "\n")
    cur = ["run_id,trunk,family,seed,N,N_nonembed,step,D,C,loss"]
    for k, (lab, n, d, y) in enumerate(zip(curves.curve, curves.N.tolist(), curves.D.tolist(), curves.loss.tolist())):
        cur.append(f"{lab},{lab},fam,0,{n!r},{0.9 * n!r},{k},{d!r},{6 * n * d!r},{y!r}")
    (sweep / "curves.csv").write_text("\n".join(cur) + "\n")


def test_plot_sweep_directory_uses_curves(tmp_path, grid_data, grid_curves):
    sweep = tmp_path / "sweep"
    _write_sweep(sweep, grid_data, grid_curves)
    result = invoke(plot_app, [str(sweep), "--law", "kaplan-n"])
    assert result.exit_code == 0, result.output
    out = sweep / "figures"
    assert sorted(p.stem for p in out.glob("*.png")) == ["kaplan", "residuals"]
    rows = read_csv(out / "kaplan.csv")
    assert len([r for r in rows if r["kind"] == "curve"]) == len(grid_curves)
    assert [r for r in rows if r["panel"] == "loss_vs_C" and r["kind"] == "fit" and r["series"] == "kaplan-c"]
    assert len([r for r in rows if r["panel"] == "loss_vs_N" and r["kind"] == "final"]) == len(grid_data)  # pending run left out
