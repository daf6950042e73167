import math

import pytest

from lmscale.emergence.ledger import Ledger, default_threshold
from lmscale.emergence.results import EvalRow, EvalTable
from lmscale.errors import LmscaleError


def _table(values, Ns=(1e5, 1e6, 1e7, 1e8), task="add", metric="exact_match", run="r"):
    return EvalTable([EvalRow(run_id=f"{run}{i}", N=n, C=120 * n * n, task=task, metric=metric, value=v, chance=0.0)
                      for i, (n, v) in enumerate(zip(Ns, values))], source=f"sweep-{run}")


def test_default_thresholds():
    assert default_threshold("exact_match", 0.0) == 0.5
    assert default_threshold("mc_accuracy", 0.25) == pytest.approx(0.625)
    assert default_threshold("edit_distance", math.nan) == 0.5
    assert math.isnan(default_threshold("logprob", -10.0))


def test_flip_not_yet_and_idempotent_add(tmp_path):
    with Ledger(tmp_path / "l.sqlite") as led:
        assert led.add(_table([0.0, 0.1, 0.7, 0.9])) == 4
        led.add(_table([0.0, 0.0, 0.0, 0.01], task="mul"))
        led.add(_table([0.0, 0.1, 0.7, 0.9]))  # the same sweep again: no duplicates
        assert led.count() == 8
        (add,) = led.status("add")
        assert add.state == "flipped" and add.flip_N == 1e7 and add.flip_C == pytest.approx(120 * 1e14)
        assert add.passed == [False, False, True, True] and add.best_value == 0.9 and add.threshold == 0.5
        assert [s.task for s in led.not_yet()] == ["mul"] and [s.task for s in led.flips()] == ["add"]
    # Persistent: a new sweep with a bigger model flips "mul"; the earlier rows are still there.
    with Ledger(tmp_path / "l.sqlite") as led:
        led.add(_table([0.8], Ns=(1e9,), task="mul", run="s"))
        (mul,) = led.status("mul")
        assert mul.state == "flipped" and mul.flip_N == 1e9 and mul.sources == 2
        assert led.sources() == ["sweep-r", "sweep-s"]


def test_thresholds_and_unjudged_metrics(tmp_path):
    with Ledger(tmp_path) as led:  # a directory: ledger.sqlite inside
        led.add(_table([0.6, 0.7, 0.8, 0.9]), thresholds={"exact_match": 0.75})
        led.add(_table([-3.0, -2.0, -1.0, -0.5], metric="logprob", task="lp"))
        (s,) = led.status("add")
        assert s.state == "flipped" and s.flip_N == 1e7
        assert led.status("lp")[0].state == "unjudged"
        assert led.path.name == "ledger.sqlite"
        with pytest.raises(LmscaleError, match="no task 'nope'"):
            led.status("nope")
        with pytest.raises(LmscaleError, match="unknown metric"):
            led.add(_table([0.1]), thresholds={"bleu": 0.5})
