import json
import math

import numpy as np
import pytest

from lmscale.emergence.results import (COLUMNS, EvalRow, EvalTable, derive_token_prob, read_eval_table,
                                       write_eval_table)
from lmscale.errors import LmscaleError


def _rows():
    rows = []
    for i, n in enumerate([1e4, 1e5, 1e6]):
        for seed in (0, 1):
            common = dict(run_id=f"r{i}s{seed}", family="f", seed=seed, N=n, C=6 * n * 20 * n, D=20 * n, step=100,
                          val_loss=3.0 - i, task="add", answer_tokens=4.0)
            rows.append(EvalRow(**common, metric="exact_match", value=0.1 * i + 0.02 * seed, ci_low=0.0, ci_high=0.5,
                                n_examples=100, chance=0.0))
            rows.append(EvalRow(**common, metric="logprob", value=-4.0 + i, chance=-4 * math.log(64)))
    return rows


def test_round_trip_csv_json_and_dir(tmp_path):
    rows = _rows()
    csv_path, json_path = write_eval_table(tmp_path, rows)
    assert csv_path.name == "eval.csv" and json_path.name == "eval.json"
    assert csv_path.read_text().splitlines()[0] == ",".join(COLUMNS)
    for src in (tmp_path, csv_path, json_path):
        t = read_eval_table(src)
        assert len(t) == len(rows)
        for a, b in zip(t.rows, rows):  # every field survives (NaN where it was missing)
            for k in COLUMNS:
                va, vb = getattr(a, k), getattr(b, k)
                assert va == vb or (isinstance(va, float) and math.isnan(va) and math.isnan(vb)), k
    t = read_eval_table(json_path)
    assert json.loads(json_path.read_text())["schema"] == "lmscale.eval/1"
    assert math.isnan(t.rows[0].N_nonembed) and t.rows[0].higher_is_better is True


def test_curve_averages_seeds_and_takes_final_step():
    rows = _rows()
    # An earlier checkpoint of r0s0 must not enter the N curve, only the step curve.
    rows.append(EvalRow(run_id="r0s0", N=1e4, step=50, task="add", metric="exact_match", value=0.9))
    t = EvalTable(rows)
    c = t.curve("add", "exact_match", x="N")
    np.testing.assert_allclose(c.x, [1e4, 1e5, 1e6])
    np.testing.assert_allclose(c.y, [0.01, 0.11, 0.21])  # mean of seeds 0 and 1
    np.testing.assert_array_equal(c.n, [200, 200, 200])
    assert c.chance == 0.0 and c.answer_tokens == 4.0 and c.higher_is_better
    s = t.curve("add", "exact_match", x="step", run_id="r0s0")
    np.testing.assert_allclose(s.x, [50, 100])
    np.testing.assert_allclose(s.y, [0.9, 0.0])
    lc = t.curve("add", "exact_match", x="val_loss")
    np.testing.assert_allclose(lc.x, [1.0, 2.0, 3.0])


def test_k_shot_must_be_chosen_when_ambiguous():
    rows = [EvalRow(run_id="a", N=1.0, task="t", metric="exact_match", value=0.1, k_shot=k) for k in (0, 2)]
    with pytest.raises(LmscaleError, match="k_shot"):
        EvalTable(rows).curve("t", "exact_match")
    assert EvalTable(rows).curve("t", "exact_match", k_shot=2).k_shot == 2


def test_derive_token_prob():
    rows = [EvalRow(run_id="a", N=1.0, task="t", metric="logprob", value=-2.0, answer_tokens=4.0, chance=-8.0)]
    (tp,) = derive_token_prob(rows)
    assert tp.metric == "token_prob" and tp.value == pytest.approx(math.exp(-0.5))
    assert tp.chance == pytest.approx(math.exp(-2.0))


@pytest.mark.parametrize("text,match", [
    ("run_id,N,task,k_shot,metric\n", "lacks column"),
    ("run_id,N,task,k_shot,metric,value\n", "is empty"),
    ("run_id,N,task,k_shot,metric,value\na,1e6,t,0,bleu,0.5\n", "unknown metric 'bleu'"),
    ("run_id,N,task,k_shot,metric,value\na,big,t,0,exact_match,0.5\n", "column 'N' has 'big'"),
    ("run_id,N,task,k_shot,metric,value\na,-5,t,0,exact_match,0.5\n", "positive parameter count"),
    ("run_id,N,task,k_shot,metric,value\na,1e6,t,0.5,exact_match,0.5\n", "an integer"),
])
def test_bad_tables_give_one_line_errors(tmp_path, text, match):
    p = tmp_path / "eval.csv"
    p.write_text(text)
    with pytest.raises(LmscaleError, match=match) as e:
        read_eval_table(p)
    assert "\n" not in str(e.value) and "eval.csv" in str(e.value)


def test_missing_paths(tmp_path):
    with pytest.raises(LmscaleError, match="does not exist"):
        read_eval_table(tmp_path / "nope.csv")
    with pytest.raises(LmscaleError, match="has no eval.csv"):
        read_eval_table(tmp_path)
    with pytest.raises(LmscaleError, match="unknown metric"):
        EvalRow(run_id="a", N=1.0, task="t", metric="accuracy", value=0.0)
    with pytest.raises(LmscaleError, match="no evaluation rows"):
        write_eval_table(tmp_path, [])
