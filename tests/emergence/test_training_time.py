import json

import numpy as np
import pytest

from lmscale.emergence.results import read_eval_table
from lmscale.emergence.training_time import grokking_split, induction_batch, run_experiment, summarize
from lmscale.errors import LmscaleError


def test_induction_batch_repeats_a_random_length_segment():
    toks, mask = induction_batch(0, 3, batch=16, vocab=64, half=8)
    again, _ = induction_batch(0, 3, batch=16, vocab=64, half=8)
    np.testing.assert_array_equal(toks, again)
    assert toks.shape == (16, 16) and mask.shape == (16, 15)
    lens = set()
    for b in range(16):
        ln = int(mask[b].argmax())  # first predictable target index = ln
        lens.add(ln)
        assert 4 <= ln <= 8 and mask[b].sum() == ln - 1
        np.testing.assert_array_equal(toks[b, ln:2 * ln], toks[b, :ln])
        j = np.flatnonzero(mask[b])  # each masked target (token j+1) copies the token ln earlier
        np.testing.assert_array_equal(toks[b, j + 1], toks[b, j + 1 - ln])
    assert len(lens) > 1  # the offset varies, so copying by position cannot solve it


def test_grokking_split():
    train, test = grokking_split(7, 0.5, seed=0)
    assert len(train) + len(test) == 49 and 20 <= len(train) <= 30  # 14 of the 28 unordered pairs
    both = np.concatenate([train, test])
    np.testing.assert_array_equal(both[:, 3], (both[:, 0] + both[:, 1]) % 7)
    assert (both[:, 2] == 7).all() and len({tuple(r) for r in both}) == 49
    # Mirrors stay together: no test pair can be answered by commutativity from a train pair.
    seen = {(int(x), int(y)) for x, y, _, _ in train}
    assert all((int(y), int(x)) not in seen for x, y, _, _ in test)


def test_summary_judges_excess_over_the_control():
    steps = np.arange(0, 801, 10)
    heuristic = 0.015 + 0.15 / (1 + np.exp(-(steps - 120) / 15))  # both depths learn it early
    induction = heuristic + 0.8 / (1 + np.exp(-(steps - 450) / 20))  # only depth 2
    mk = lambda acc: [{"step": int(s), "acc_repeated": float(a), "loss_repeated": 1.0, "loss_first": 4.0}  # noqa: E731
                      for s, a in zip(steps, acc)]
    s = summarize("induction", {"depth1": mk(heuristic), "depth2": mk(induction)}, chance=1 / 64)
    assert s["depth2"]["verdict"] == "emergent"
    assert s["depth2"]["transition_step"] == pytest.approx(450, abs=1)
    assert s["depth2"]["width_10_90_steps"] == pytest.approx(2 * np.log(9) * 20, rel=1e-3)
    assert s["depth1"]["verdict"] == "smooth"  # its only rise is at the start: no plateau before it


def test_tiny_runs_write_curves_and_step_table(tmp_path):
    # One depth keeps the test to one compilation; the depth comparison is tested above on known curves.
    r = run_experiment("induction", tmp_path / "ind", {"steps": 12, "half": 8, "width": 16, "heads": 2, "depths": [2],
                                                       "eval_every": 3, "eval_batch": 8, "warmup": 2})
    t = read_eval_table(tmp_path / "ind")
    assert t.tasks() == ["induction_depth2"]
    c = t.curve("induction_depth2", "token_accuracy", x="step")
    np.testing.assert_array_equal(c.x, [0, 3, 6, 9, 12])
    summary = json.loads((tmp_path / "ind" / "induction_summary.json").read_text())
    assert set(summary["models"]) == {"depth2"} and summary["config"]["steps"] == 12
    assert (tmp_path / "ind" / "induction_curves.png").is_file() and 0 <= r["summary"]["depth2"]["final"] <= 1
    # Untrained: loss on the repeated half near log(64) nats/token.
    assert summary["models"]["depth2"]["loss_repeated_start"] == pytest.approx(np.log(64), abs=0.1)
    g = run_experiment("grokking", tmp_path / "grok", {"p": 7, "steps": 12, "width": 16, "heads": 2, "eval_every": 4})
    assert set(g["summary"]["grokking"]) >= {"train_acc_99_step", "test_acc_95_step", "verdict"}
    with pytest.raises(LmscaleError, match="unknown training-time experiment"):
        run_experiment("parity", tmp_path)
    with pytest.raises(LmscaleError, match="bad induction setting: stepz"):
        run_experiment("induction", tmp_path, {"stepz": 3})
    with pytest.raises(LmscaleError, match="gives 3 evaluations; the detector needs at least 4"):
        run_experiment("grokking", tmp_path, {"steps": 8, "eval_every": 4})
