"""Experiments write their JSON, figure (PNG) and the CSV of its numbers."""

import csv
import json

import numpy as np
import pytest
import yaml

from lmscale.icl.experiments import compare_run, eval_run, sweep


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_eval_and_compare_write_figure_and_csv(tiny_run, tmp_path):
    _, run = tiny_run
    res, table = eval_run(run, out=tmp_path)
    assert (tmp_path / "error_curve.png").stat().st_size > 1000
    rows = _rows(tmp_path / "error_curve.csv")
    assert len(rows) == 3 * 4 and {r["predictor"] for r in rows} == {"transformer", "least_squares", "zero"}
    assert json.loads((tmp_path / "eval.json").read_text())["k"] == [0, 1, 2, 3]
    assert "least_squares" in table
    ls = res["curves"]["least_squares"]["mean"]
    assert ls[2] < 1e-6 < ls[1]  # exact from k = d = 2 on (noiseless)
    res, table = compare_run(run, out=tmp_path)
    assert (tmp_path / "compare.png").is_file() and len(_rows(tmp_path / "compare.csv")) == 2 * 3
    assert "best match" in table
    # The best match is the learner nearest the model, recomputed from the error curves' predictions:
    # MSPD = mean over 1 <= k < d of E[(model - learner)^2] / d (d = 2: k = 1 only).
    from lmscale.icl.evaluate import MODEL, error_curves
    from lmscale.icl.train import load_run

    loaded = load_run(run)
    preds = error_curves(loaded.params, loaded.cfg).predictions
    mspd = {name: float(np.mean((np.asarray(preds[MODEL]) - np.asarray(p)) ** 2, axis=0)[1] / 2)
            for name, p in preds.items() if name != MODEL}
    assert set(mspd) == {"least_squares", "zero"}
    assert {r["learner"]: r["mspd"] for r in res["rows"]} == pytest.approx(mspd, rel=1e-6)
    assert abs(mspd["least_squares"] - mspd["zero"]) > 0.05 * max(mspd.values())  # a real choice
    assert res["best_match"] == min(mspd, key=mspd.get)
    assert [name for name, _ in res["ranking"]] == sorted(mspd, key=mspd.get)


def test_lsa_eval_writes_figure(lsa_run, tmp_path):
    _, run = lsa_run
    res, table = eval_run(run, out=tmp_path)
    assert res["kind"] == "lsa" and res["loss_zero"] > 0 and "loss_gd_best" in table
    assert abs(res["relative_gap"]) < 0.03  # the trained LSA is one tuned GD step
    assert (tmp_path / "lsa_vs_gd.png").is_file()
    assert {r["series"] for r in _rows(tmp_path / "lsa_vs_gd.csv")} >= {"lsa_train", "loss_gd_best"}


def test_sweep_tables_each_variant(tiny_raw, tmp_path):
    # Two seeds of the session's tiny model (the same compiled training chunk, two different models);
    # "=" in a variant name makes run names like "tiny-seed=1", which must load back.
    raw = tiny_raw | {"sweep": {"kind": "generic", "variants": [{"name": "s0", "set": []},
                                                                 {"name": "seed=1", "set": ["train.seed=1"]}]}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    res, table = sweep(tmp_path / "s.yaml", out=tmp_path / "out")
    assert list(res["table"]) == ["s0", "seed=1"] and set(res["table"]["s0"]) == {"least_squares", "zero"}
    assert res["table"]["s0"] != res["table"]["seed=1"]
    assert (tmp_path / "out" / "sweep.png").is_file() and len(_rows(tmp_path / "out" / "sweep.csv")) == 4
    assert json.loads((tmp_path / "out" / "seed=1" / "summary.json").read_text())["seeds"] == [1]
    assert "best match" in table
