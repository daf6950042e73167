"""The theory beside a fitted law: constants fitted to the frontier, fit.json inputs, per-task emergence shapes."""

import json

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.laws import ChinchillaLaw, load_scaling_data
from lmscale.laws.bootstrap import bootstrap
from lmscale.laws.summary import to_dict
from lmscale.theory.overlay import emergence_shape, fit_task, load_task_curves, theory_overlay
from tests.laws.synth import chinchilla_grid

# alpha = beta: the law's frontier is N_opt ~ C^0.5 exactly, which the theory can match.
TRUE = {"A": 400.0, "B": 400.0, "E": 1.7, "alpha": 0.3, "beta": 0.3}


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    d = chinchilla_grid(TRUE, noise=1e-3, n_sizes=7, n_tokens=5, runs=True)
    path = tmp_path_factory.mktemp("overlay") / "runs.csv"
    path.write_text("N,D,loss,run\n" + "".join(f"{float(n)!r},{float(t)!r},{float(loss)!r},{r}\n"
                                              for n, t, loss, r in zip(d.N, d.D, d.loss, d.run)))
    return path


@pytest.fixture(scope="module")
def law(data_csv):
    return ChinchillaLaw().fit(load_scaling_data(data_csv))


@pytest.fixture(scope="module")
def boot(law):
    return bootstrap(law, 20, seed=0)


@pytest.fixture(scope="module")
def result(law, boot, tmp_path_factory):
    return theory_overlay(law, tmp_path_factory.mktemp("overlay_out"), bootstrap=boot)


def test_constants_reproduce_a_square_root_frontier(law, result):
    assert law.a_ == pytest.approx(0.5, abs=0.01)
    assert result.rms_log_N < 0.02
    assert result.theory_a == pytest.approx(0.5, abs=0.01)
    # Matching N_opt(C) at C = 6ND matches D_opt and so the tokens per parameter.
    assert result.tokens_per_param_theory == pytest.approx(result.tokens_per_param_law, rel=0.03)
    assert result.params_per_concept * result.tokens_per_text == pytest.approx(result.product, rel=1e-9)
    assert result.params_per_concept / result.tokens_per_text == pytest.approx(result.ratio, rel=1e-9)
    lo, hi = result.intervals["ratio"]
    assert lo < result.ratio < hi and result.confidence == 0.95


def test_files_and_markdown(result):
    names = {f.name for f in result.files}
    assert names == {"theory_overlay.png", "theory_overlay.csv", "theory_overlay.json"}
    saved = json.loads([f for f in result.files if f.suffix == ".json"][0].read_text())
    assert saved["fitted"]["params_per_concept"] == pytest.approx(result.params_per_concept)
    md = result.markdown()
    assert md.startswith("## ") and "tokens per text" in md and "| quantity | value | interval |" in md


def test_fit_json_from_fit_and_from_demo(law, boot, result, data_csv, tmp_path):
    fit = tmp_path / "fit.json"
    fit.write_text(json.dumps({"command": {}, **to_dict(law, boot)}))
    demo = tmp_path / "demo.json"
    demo.write_text(json.dumps({"demo": {}, "fit": to_dict(law, boot)}))
    for path in (fit, demo):
        r = theory_overlay(path, tmp_path / path.stem)
        # Same frontier over the same compute range (read from the data file the fit names).
        assert r.C_range == pytest.approx(result.C_range)
        assert r.ratio == pytest.approx(result.ratio, rel=1e-6)
    r = theory_overlay(data_csv, tmp_path / "from_csv")  # refit from the CSV
    assert r.ratio == pytest.approx(result.ratio, rel=0.02)


def test_bad_inputs(tmp_path):
    with pytest.raises(LmscaleError, match="not found"):
        theory_overlay(tmp_path / "missing.json", tmp_path / "o")
    bad = tmp_path / "kaplan.json"
    bad.write_text(json.dumps({"law": "kaplan-n", "params": {"N_c": 1.0, "alpha_N": 0.1}}))
    with pytest.raises(LmscaleError, match="kaplan-n"):
        theory_overlay(bad, tmp_path / "o")


def test_task_shape_is_recovered(tmp_path):
    N = np.geomspace(1e6, 1e10, 14)
    truth = dict(loc=np.log(3e7), scale=1.2, low=0.25, high=0.95, n_skills=4)
    acc = emergence_shape(N, **truth)
    path = tmp_path / "tasks.csv"
    path.write_text("N,task,accuracy\n" + "".join(f"{float(n)!r},arith,{float(a)!r}\n" for n, a in zip(N, acc)))
    curves = load_task_curves(path)
    f = fit_task("arith", *curves["arith"])
    assert f.rms < 1e-3
    assert f.N_onset == pytest.approx(3e7, rel=0.05) and f.low == pytest.approx(0.25, abs=0.01)
    assert f.high == pytest.approx(0.95, abs=0.01)
    with pytest.raises(LmscaleError, match="accuracy"):
        (tmp_path / "bad.csv").write_text("N,task,score_x\n1,a,2\n")
        load_task_curves(tmp_path / "bad.csv")


def test_eval_table_final_steps_of_one_metric(tmp_path):
    head = "run_id,N,task,k_shot,metric,value,step\n"
    rows = []
    for i, n in enumerate([1e6, 1e7, 1e8, 1e9]):
        for seed in (0, 1):
            run = f"r{i}s{seed}"
            rows.append(f"{run},{n},add,0,exact_match,0.9,100\n")  # an early checkpoint: ignored
            rows.append(f"{run},{n},add,0,exact_match,{0.1 * i + 0.01 * seed},\n")  # blank step = final
            rows.append(f"{run},{n},add,0,token_accuracy,0.5,\n")
    path = tmp_path / "eval.csv"
    path.write_text(head + "".join(rows))
    N, acc = load_task_curves(path)["add"]
    np.testing.assert_array_equal(N, [1e6, 1e7, 1e8, 1e9])
    np.testing.assert_allclose(acc, [0.005, 0.105, 0.205, 0.305])  # mean over the two seeds
    np.testing.assert_allclose(load_task_curves(path, "token_accuracy")["add"][1], 0.5)
    with pytest.raises(LmscaleError, match="metric 'brier'"):
        load_task_curves(path, "brier")
