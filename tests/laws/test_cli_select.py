"""`lmscale fit --law auto` and `--predict PLANNED.csv` through the Typer sub-app."""

import json

import numpy as np
import pytest

from lmscale.laws.bootstrap import bootstrap
from lmscale.laws.cli import fit_app
from lmscale.laws.data import load_scaling_data
from lmscale.laws.estimators import make_law
from tests import helpers

from .synth import TRUE_CHINCHILLA, chinchilla_loss, noisy_cli_grid


def invoke(*args):
    return helpers.invoke(fit_app, [str(a) for a in args])


def error_line(res):
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], res.stderr
    return errors[0]


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory):
    N, D, L = noisy_cli_grid()
    p = tmp_path_factory.mktemp("cli_select") / "runs.csv"
    p.write_text("N,D,loss\n" + "".join(f"{float(n)!r},{float(d)!r},{float(v)!r}\n" for n, d, v in zip(N, D, L)))
    return p


@pytest.fixture()
def planned(tmp_path):
    p = tmp_path / "planned.csv"
    p.write_text("name,N,D\nnext,1e10,2e11\nbig,7e10,1.4e12\n")
    return p


def test_law_auto_prints_ranking_then_the_chosen_law(runs_csv, tmp_path):
    out = tmp_path / "fit.json"
    res = invoke(runs_csv, "--law", "auto", "--out", out)
    assert res.exit_code == 0, res.stderr
    text = res.stdout
    assert "ranked by extrapolation" in text and "held-out mean ARE" in text
    assert text.index("ranked by extrapolation") < text.index("chinchilla law")  # ranking first, then the law
    for name in ("chinchilla-shared", "kaplan-joint"):
        assert name in text
    d = json.loads(out.read_text())
    assert d["ranking"]["chosen"] == "chinchilla" == d["law"]
    assert [r["law"] for r in d["ranking"]["ranking"]][0] == "chinchilla"
    assert d["command"]["law"] == "auto"
    assert d["extrapolation"]["mean_are"] == d["ranking"]["ranking"][0]["held_out_mean_are"]


def test_law_auto_needs_a_holdout(runs_csv):
    res = invoke(runs_csv, "--law", "auto", "--holdout", "none")
    assert res.exit_code == 2 and "--law auto ranks laws by extrapolation" in error_line(res)


def test_predict_csv_matches_law_predict_and_brackets(runs_csv, planned, tmp_path):
    res = invoke(runs_csv, "--law", "chinchilla", "--predict", planned, "--bootstrap", "40", "--holdout", "none")
    assert res.exit_code == 0, res.stderr
    csv_out, json_out = tmp_path / "planned.predicted.csv", tmp_path / "planned.predicted.json"
    assert csv_out.is_file() and json_out.is_file()
    lines = csv_out.read_text().splitlines()
    assert lines[0] == "name,N,D,loss_pred,loss_low,loss_high"
    rows = [ln.split(",") for ln in lines[1:]]
    assert [r[0] for r in rows] == ["next", "big"]
    law = make_law("chinchilla").fit(load_scaling_data(runs_csv))
    want = law.predict(np.array([1e10, 7e10]), np.array([2e11, 1.4e12]))
    got = np.array([float(r[3]) for r in rows])
    np.testing.assert_array_equal(got, want)
    lo, hi = np.array([float(r[4]) for r in rows]), np.array([float(r[5]) for r in rows])
    assert (lo < got).all() and (got < hi).all()
    # The interval is the bootstrap of this law with the CLI's seed (0) and resamples (40).
    boot = bootstrap(law, 40, seed=0)
    th = boot.theta[boot.converged]
    samp = law.form_.loss(th[:, None, :], N=np.array([1e10, 7e10])[None], D=np.array([2e11, 1.4e12])[None])
    np.testing.assert_allclose(lo, np.percentile(samp, 2.5, axis=0), rtol=1e-9)
    d = json.loads(json_out.read_text())
    assert d["n_resamples"] == 40 and d["rows"][1]["loss"] == got[1] and d["law"] == "chinchilla"
    assert "predictions written to" in res.stdout


def test_predict_csv_defaults_to_200_resamples_and_says_so(runs_csv, planned, tmp_path):
    out = tmp_path / "p.csv"
    res = invoke(runs_csv, "--predict", planned, "--predict-out", out, "--holdout", "none", "--out", tmp_path / "f.json")
    assert res.exit_code == 0, res.stderr
    assert "200 bootstrap resamples" in res.stderr
    d = json.loads((tmp_path / "p.json").read_text())
    assert d["n_resamples"] == 200
    assert not (tmp_path / "planned.predicted.csv").exists()
    f = json.loads((tmp_path / "f.json").read_text())
    assert f["predictions"]["csv"] == str(out) and f["predictions"]["n"] == 2


def test_predict_csv_with_law_auto(runs_csv, planned, tmp_path):
    res = invoke(runs_csv, "--law", "auto", "--predict", planned, "--bootstrap", "20")
    assert res.exit_code == 0, res.stderr
    d = json.loads((tmp_path / "planned.predicted.json").read_text())
    assert d["law"] == "chinchilla"
    law = make_law("chinchilla").fit(load_scaling_data(runs_csv))
    assert d["rows"][0]["loss"] == float(law.predict(1e10, 2e11))


def test_single_point_predict_still_works(runs_csv):
    res = invoke(runs_csv, "--predict", "7e10,1.4e12", "--holdout", "none")
    assert res.exit_code == 0, res.stderr
    law = make_law("chinchilla").fit(load_scaling_data(runs_csv))
    assert "predicted loss at" in res.stdout
    from lmscale.laws.summary import fmt

    assert fmt(float(law.predict(7e10, 1.4e12))) in res.stdout


@pytest.mark.parametrize("content, needle", [
    ("size,steps\n1,2\n", "missing column(s) N, D; found columns: size, steps"),
    ("N,D\n1e10,-5\n", "row 1 has D='-5' (not positive)"),
    ("N,D\n1e10,inf\n", "(infinite)"),
    ("N,D\nnan,2e11\n", "(NaN)"),
    ("1e10,2e11\n", "has no column names"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "is a binary file"),
    ("N,D\n" + "1e10,2e11\n" * 100_001, "more than 100,000 rows"),
])
def test_bad_planned_csv_is_one_line_error_and_writes_nothing(runs_csv, tmp_path, content, needle):
    p = tmp_path / "planned.csv"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "fit.json"
    res = invoke(runs_csv, "--predict", p, "--out", out)
    assert res.exit_code == 2
    assert needle in error_line(res)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["planned.csv"]  # nothing written
    assert "fitted the" not in res.stderr  # refused before the fit


@pytest.mark.parametrize("args, needle", [
    (["--predict-out", "x.csv"], "needs --predict PLANNED.csv (a CSV of planned runs)"),
    (["--predict", "missing.csv"], "not found"),
    (["--law", "auto", "--approach", "3", "--holdout", "none"], "--law auto"),
])
def test_bad_predict_options(runs_csv, tmp_path, args, needle):
    args = [str(tmp_path / a) if a.endswith(".csv") else a for a in args]
    res = invoke(runs_csv, *args)
    assert res.exit_code == 2 and needle in error_line(res)


def test_predict_out_must_be_csv(runs_csv, planned, tmp_path):
    res = invoke(runs_csv, "--predict", planned, "--predict-out", tmp_path / "x.json")
    assert res.exit_code == 2 and "expected a path ending in .csv" in error_line(res)
    assert not (tmp_path / "x.json").exists()


def test_fit_profiles_E_when_the_fit_puts_it_at_its_bound(tmp_path):
    """Small models on few tokens (the data-limited design of test_profile): E is not identified."""
    rng = np.random.default_rng(0)
    N = np.repeat(np.geomspace(1e6, 4e6, 4), 4)
    D = np.tile(np.geomspace(5e6, 2e7, 4), 4)
    L = chinchilla_loss(TRUE_CHINCHILLA, N, D) * np.exp(rng.normal(0, 3e-3, len(N)))
    p = tmp_path / "small.csv"
    p.write_text("N,D,loss\n" + "".join(f"{float(n)!r},{float(d)!r},{float(v)!r}\n" for n, d, v in zip(N, D, L)))
    out = tmp_path / "fit.json"
    res = invoke(p, "--holdout", "none", "--out", out)
    assert res.exit_code == 0, res.stderr
    assert "is at its bound, not an estimate" in res.stderr
    assert "profile of E over" in res.stdout and "E is NOT identified" in res.stdout
    d = json.loads(out.read_text())
    assert d["E_profile"]["identification"]["identified"] is False
    assert d["params"]["E"] < d["E_profile"]["rows"][0]["E"]


def test_fit_does_not_profile_an_identified_E(runs_csv, tmp_path):
    out = tmp_path / "fit.json"
    res = invoke(runs_csv, "--holdout", "none", "--out", out)
    assert res.exit_code == 0 and "profile of E" not in res.stdout and "E_profile" not in json.loads(out.read_text())
