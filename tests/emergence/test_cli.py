import json

from lmscale.emergence.cli import emergence_app
from tests.helpers import invoke


def test_synthetic_then_analyze(tmp_path):
    r = invoke(emergence_app, ["synthetic", "--out", str(tmp_path), "--scales", "9", "--examples", "400"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "res"
    r = invoke(emergence_app, ["analyze", str(tmp_path), "--out", str(out), "--bootstrap", "100"])
    assert r.exit_code == 0, r.output
    assert "emergent-under-this-metric-only" in r.output and "not-yet" in r.output
    saved = json.loads((out / "verdicts.json").read_text())
    assert saved["ratio_min"] == 1.5  # README: sharp means B/L >= 1.5 (and its interval's lower bound > 1)
    v = {d["task"]: d for d in saved["verdicts"]}
    assert v["mirage_add"]["verdict"] == "emergent-under-this-metric-only"
    assert v["hard_mul"]["verdict"] == "not-yet"
    fc = json.loads((out / "forecasts.json").read_text())["forecasts"]
    assert {f["route"] for f in fc} == {"per-token", "pass-until", "two-step"}
    for name in ("verdicts.csv", "mirage_mirage_add.png", "mirage_mirage_add.csv", "loss_and_transitions.png",
                 "metric_vs_loss.png"):
        assert (out / name).is_file(), name


def test_analyze_errors_are_one_line_exit_2(tmp_path):
    (tmp_path / "eval.csv").write_text("run_id,N,task,k_shot,metric,value\n")
    for args, msg in [
        (["analyze", str(tmp_path)], "is empty"),
        (["analyze", str(tmp_path / "none.csv")], "does not exist"),
        (["analyze", str(tmp_path), "--x", "width"], "--x 'width'"),
    ]:
        r = invoke(emergence_app, args)
        assert r.exit_code == 2 and msg in r.output and r.output.strip().count("\n") == 0, r.output
    (tmp_path / "eval.csv").write_text("run_id,N,task,k_shot,metric,value\na,1,t,0,exact_match,0\n"
                                       "b,2,t,0,exact_match,0.5\n")
    r = invoke(emergence_app, ["analyze", str(tmp_path)])
    assert r.exit_code == 2 and "needs at least 4" in r.output
    assert not (tmp_path / "emergence").exists()


def test_ledger_add_show(tmp_path):  # `lmscale emergence ledger add|show`
    invoke(emergence_app, ["synthetic", "--out", str(tmp_path), "--scales", "5", "--examples", "0"])
    led = tmp_path / "ledger.sqlite"
    for _ in range(2):
        r = invoke(emergence_app, ["ledger", "add", str(tmp_path), "--ledger", str(led)])
        assert r.exit_code == 0, r.output
    assert "100 in all" in r.output  # 5 scales x 4 tasks x 5 metrics, not doubled
    r = invoke(emergence_app, ["ledger", "show", "--ledger", str(led), "--grid", str(tmp_path / "grid.png")])
    assert r.exit_code == 0, r.output
    assert "flipped" in r.output and "not-yet" in r.output and (tmp_path / "grid.png").is_file()
    r = invoke(emergence_app, ["ledger", "show", "--ledger", str(led), "--task", "nope"])
    assert r.exit_code == 2 and "no task 'nope'" in r.output
    assert r.stderr.startswith("error: ") and r.stderr.strip().count("\n") == 0 and r.stdout == ""  # one line
    r = invoke(emergence_app, ["ledger", "add", str(tmp_path), "--ledger", str(led), "--threshold", "exact_match"])
    assert r.exit_code == 2 and "METRIC=VALUE" in r.output


def test_training_time_bad_input_exits_2_before_training(tmp_path):
    r = invoke(emergence_app, ["training-time", "parity", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "unknown training-time experiment 'parity'" in r.output
    r = invoke(emergence_app, ["training-time", "grokking", "--out", str(tmp_path / "x"), "--set", "steps=8",
                               "--set", "eval_every=4"])
    assert r.exit_code == 2 and "needs at least 4" in r.output
    r = invoke(emergence_app, ["training-time", "induction", "--out", str(tmp_path / "x"), "--set", "width=0"])
    assert r.exit_code == 2 and "width" in r.output
    assert not (tmp_path / "x").exists()
