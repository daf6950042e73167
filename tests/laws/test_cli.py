"""`lmscale fit` through the Typer sub-app (before it is registered in lmscale.cli): one-line errors, exit 2."""

import json

import pytest

from lmscale.laws.cli import fit_app
from tests import helpers

from .synth import isoflop_set, noisy_cli_grid


def invoke(*args):
    return helpers.invoke(fit_app, args)


def error_line(res):
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.stderr  # one line, the last thing printed
    return errors[0]


def write_csv(path, header, rows):
    path.write_text(header + "\n" + "\n".join(",".join(repr(float(v)) if not isinstance(v, str) else v for v in r)
                                              for r in rows) + "\n")
    return path


@pytest.fixture(scope="module")
def good_csv(tmp_path_factory):
    N, D, L = noisy_cli_grid()
    fam = ["a" if i % 2 else "b" for i in range(len(N))]
    return write_csv(tmp_path_factory.mktemp("cli") / "runs.csv", "N,D,loss,family",
                     list(zip(N, D, L, fam)))


@pytest.mark.parametrize("text, needle", [
    ("params,loss\n1e6,3\n", "missing column(s) D (or C); found columns: params, loss"),
    ("N,D,loss\n1e6,1e8,3\n2e6,-5,3\n", "row 2 has D=-5.0 (not positive)"),
    ("N,D,loss\n1e6,1e8,3\n2e6,2e8,nan\n", "row 2 has loss=nan (NaN)"),
    ("N,D,loss\n1e6,1e8,3\n2e6,2e8,2.9\n4e6,4e8,2.8\n", "3 data point(s) for the chinchilla law; it needs at least 6"),
])
def test_bad_inputs_exit_2_with_one_line(tmp_path, text, needle):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    res = invoke(p, "--out", tmp_path / "out.json")
    assert res.exit_code == 2
    assert needle in error_line(res)
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("args, needle", [
    (["--law", "hoffmann"], "--law 'hoffmann'; expected one of chinchilla"),
    (["--approach", "4"], "--approach 4"),
    (["--bootstrap", "1"], "--bootstrap 1"),
    (["--holdout", "smallest"], "--holdout 'smallest'"),
    (["--predict", "7e10"], "--predict '7e10'"),
    (["--family", "zzz"], "no rows of family 'zzz'"),
])
def test_bad_options(good_csv, args, needle):
    res = invoke(good_csv, *args)
    assert res.exit_code == 2 and needle in error_line(res)


def test_missing_path(tmp_path):
    res = invoke(tmp_path / "nope.csv")
    assert res.exit_code == 2 and "not found" in error_line(res)


def test_fit_prints_table_and_writes_json(good_csv, tmp_path):
    out = tmp_path / "fit.json"
    res = invoke(good_csv, "--law", "chinchilla", "--bootstrap", "30", "--target-compute", "1e22", "--predict",
                 "1e10,2e11", "--out", out, "--frontier-csv", tmp_path / "fr.csv")
    assert res.exit_code == 0, res.stderr
    for needle in ("chinchilla law", "alpha", "tokens_per_param", "95% interval", "reached the", "extrapolation",
                   "mean ARE", f"results written to {out}"):
        assert needle in res.stdout, needle
    d = json.loads(out.read_text())
    assert d["command"]["law"] == "chinchilla" and d["bootstrap"]["n_resamples"] == 30
    assert d["params"]["alpha"] == pytest.approx(0.33, abs=0.02)
    assert d["extrapolation"]["n_test"] == 5 and d["predict_at"]["N"] == 1e10
    assert (tmp_path / "fr.csv").read_text().startswith("C,N_opt")


def test_default_command_is_also_reachable_by_name(good_csv):
    res = invoke("run", good_csv, "--law", "kaplan-n", "--holdout", "none")
    assert res.exit_code == 0, res.stderr
    assert "kaplan-n law" in res.stdout and "alpha_N" in res.stdout


def test_approach_2(tmp_path):
    data, _ = isoflop_set(noise=1e-3)
    p = write_csv(tmp_path / "iso.csv", "N,D,C,loss", zip(data.N, data.D, data.C, data.loss))
    res = invoke(p, "--approach", "2", "--bootstrap", "20", "--out", tmp_path / "a2.json")
    assert res.exit_code == 0, res.stderr
    assert "IsoFLOP" in res.stdout and "a (N_opt ~ C^a)" in res.stdout
    d = json.loads((tmp_path / "a2.json").read_text())
    assert d["approach"] == 2 and d["a"] == pytest.approx(0.5, abs=0.02) and len(d["budgets"]) == 4


def test_compare_one_file_two_families(good_csv, tmp_path):
    res = invoke("compare", good_csv, "--family-a", "a", "--family-b", "b", "--bootstrap", "10",
                 "--out", tmp_path / "cmp.json")
    assert res.exit_code == 0, res.stderr
    assert "a vs b" in res.stdout
    d = json.loads((tmp_path / "cmp.json").read_text())
    assert set(d["fits"]) == {"a", "b"} and "crossings" in d["comparison"]


def test_compare_needs_families_with_one_file(good_csv):
    res = invoke("compare", good_csv)
    assert res.exit_code == 2 and "--family-a and --family-b" in error_line(res)


def test_approach_1_from_a_sweep_directory(tmp_path):
    from .synth import training_curves

    data, _ = training_curves(n_sizes=12, n_evals=40)
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    rows = [(c, c, "fam", n, 0.9 * n, d, 6 * n * d, loss) for c, n, d, loss in zip(data.curve, data.N, data.D, data.loss)]
    write_csv(sweep / "curves.csv", "run_id,trunk,family,N,N_nonembed,D,C,loss", rows)
    last = {}
    for r in rows:
        last[r[0]] = r
    write_csv(sweep / "results.csv", "run_id,trunk,family,N,N_nonembed,D,C,loss,best_loss,seed,status",
              [(*r, r[-1], "0", "done") for r in last.values()])
    res = invoke(sweep, "--approach", "1", "--bootstrap", "20", "--out", tmp_path / "a1.json")
    assert res.exit_code == 0, res.stderr
    assert "envelope of 12 training curves" in res.stdout
    d = json.loads((tmp_path / "a1.json").read_text())
    assert d["approach"] == 1 and d["a"] == pytest.approx(0.5, abs=0.05) and d["bootstrap"]["n_resamples"] == 20
