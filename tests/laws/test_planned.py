"""Reading planned runs and predicting them (lmscale.laws.planned)."""

import json

import numpy as np
import pytest

from lmscale.errors import LmscaleError
from lmscale.laws.bootstrap import bootstrap
from lmscale.laws.estimators import make_law
from lmscale.laws.planned import MAX_PLANNED_ROWS, default_outputs, load_planned, predict_planned

from .synth import chinchilla_grid


@pytest.fixture(scope="module")
def fitted():
    law = make_law("chinchilla").fit(chinchilla_grid(seed=2))
    return law, bootstrap(law, 40, seed=0)


def test_load_keeps_columns_and_order(tmp_path):
    p = tmp_path / "plan.csv"
    p.write_text("name,N,D\nsmall,1e9,2e10\n\nbig,7e10,1.4e12\n")
    pl = load_planned(p)
    assert len(pl) == 2 and pl.header == ["name", "N", "D"] and pl.U is None
    np.testing.assert_array_equal(pl.N, [1e9, 7e10])
    assert pl.columns["name"] == ["small", "big"]
    assert default_outputs(p) == (tmp_path / "plan.predicted.csv", tmp_path / "plan.predicted.json")
    assert default_outputs(p, tmp_path / "x.csv") == (tmp_path / "x.csv", tmp_path / "x.json")


def test_predictions_equal_law_predict_and_interval_brackets(fitted, tmp_path):
    law, boot = fitted
    p = tmp_path / "plan.csv"
    N = np.array([1e9, 1e10, 7e10])
    D = np.array([2e10, 2e11, 1.4e12])
    p.write_text("N,D\n" + "".join(f"{float(n)!r},{float(d)!r}\n" for n, d in zip(N, D)))
    pred = predict_planned(law, load_planned(p), boot)
    np.testing.assert_array_equal(pred.loss, law.predict(N, D))
    assert (pred.low < pred.loss).all() and (pred.loss < pred.high).all()
    # Farther from the data, wider interval (relative).
    rel = (pred.high - pred.low) / pred.loss
    assert rel[2] > rel[0]
    csv_out, json_out = tmp_path / "o.csv", tmp_path / "o.json"
    pred.write(csv_out, json_out)
    lines = csv_out.read_text().splitlines()
    assert lines[0] == "N,D,loss_pred,loss_low,loss_high" and len(lines) == 4
    assert float(lines[3].split(",")[2]) == pred.loss[2]
    d = json.loads(json_out.read_text())
    assert d["n"] == 3 and d["rows"][1]["loss"] == pred.loss[1] and d["confidence"] == 0.95
    assert d["rows"][1]["interval"] == [pred.low[1], pred.high[1]]


def test_no_bootstrap_means_no_interval(fitted, tmp_path):
    law, _ = fitted
    p = tmp_path / "plan.csv"
    p.write_text("N,D\n1e9,2e10\n")
    pred = predict_planned(law, load_planned(p))
    assert pred.low is None and pred.csv_text().splitlines()[0] == "N,D,loss_pred"


def test_bootstrap_of_another_law_is_refused(fitted, tmp_path):
    law, _ = fitted
    other = make_law("kaplan-joint").fit(chinchilla_grid(seed=2))
    p = tmp_path / "plan.csv"
    p.write_text("N,D\n1e9,2e10\n")
    with pytest.raises(LmscaleError, match="no parameter samples of the chinchilla law"):
        predict_planned(law, load_planned(p), bootstrap(other, 4, seed=0))


def test_kaplan_single_variable_law_predicts_from_its_variable(tmp_path):
    law = make_law("kaplan-c").fit(chinchilla_grid(seed=2))
    p = tmp_path / "plan.csv"
    p.write_text("N,D\n1e9,2e10\n")
    pred = predict_planned(law, load_planned(p), bootstrap(law, 10, seed=0))
    assert pred.loss[0] == law.predict(1e9, 2e10)
    assert pred.low[0] < pred.loss[0] < pred.high[0]


BAD = [
    ("params,tokens_x\n1e9,2e10\n", "missing column(s) D"),
    ("N,loss\n1e9,2\n", "missing column(s) D"),
    ("1e9,2e10\n3e9,4e10\n", "has no column names"),
    ("N,D\n1e9,-2e10\n", "row 1 has D='-2e10' (not positive)"),
    ("N,D\n1e9,0\n", "(not positive)"),
    ("N,D\n1e9,nan\n", "(NaN)"),
    ("N,D\ninf,2e10\n", "(infinite)"),
    ("N,D\n1e9,abc\n", "row 1 has D='abc'; expected a positive number"),
    ("N,D\n1e9,\n", "row 1 has D=''"),
    ("N,D\n1e9,2e10,5\n", "has 3 fields; expected 2"),
    ("N,D\n", "has a header but no rows"),
    ("", "is empty"),
    ("N,N,D\n1,2,3\n", "repeated column names"),
]


@pytest.mark.parametrize("text, needle", BAD)
def test_bad_csv_is_one_line_error(tmp_path, text, needle):
    p = tmp_path / "plan.csv"
    p.write_text(text)
    with pytest.raises(LmscaleError) as err:
        load_planned(p)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_binary_and_huge_files_are_refused(tmp_path):
    p = tmp_path / "plan.csv"
    p.write_bytes(b"N,D\n1e9,2e10\n\x00\x01\x02")
    with pytest.raises(LmscaleError, match="is a binary file"):
        load_planned(p)
    p.write_bytes(b"N,D\n\xff\xfe1e9,2e10\n")
    with pytest.raises(LmscaleError, match="not UTF-8 text"):
        load_planned(p)
    p.write_text("N,D\n" + "1e9,2e10\n" * (MAX_PLANNED_ROWS + 1))
    with pytest.raises(LmscaleError, match="more than 100,000 rows"):
        load_planned(p)
    p.write_text("N,D\n" + "1e9,2e10\n" * MAX_PLANNED_ROWS)  # exactly at the limit is fine
    assert len(load_planned(p)) == MAX_PLANNED_ROWS
    with pytest.raises(LmscaleError, match="not found"):
        load_planned(tmp_path / "nope.csv")
    with pytest.raises(LmscaleError, match="is a directory"):
        load_planned(tmp_path)
