"""Experiments write their JSON, figure (PNG) and the CSV of its numbers."""

import csv
import json

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
    assert res["best_match"] in ("least_squares", "zero") and "best match" in table


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
