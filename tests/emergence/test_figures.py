import csv

import numpy as np
import pytest

from lmscale.emergence.figures import (ledger_grid_figure, loss_and_transitions_figure, metric_vs_loss_figure,
                                       mirage_figure)
from lmscale.emergence.ledger import Ledger
from lmscale.emergence.results import EvalTable
from lmscale.emergence.synthetic import DEFAULT_TASKS, ladder, loss_of, mirage_rows
from lmscale.errors import LmscaleError


@pytest.fixture(scope="module")
def table():
    return EvalTable(mirage_rows(ladder(7), tasks=DEFAULT_TASKS[:2]))


def _csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_mirage_figure_writes_plotted_numbers(table, tmp_path):
    f = mirage_figure(table, "mirage_add", tmp_path)
    assert f.png.name == "mirage_mirage_add.png" and f.png.stat().st_size > 10_000
    rows = _csv(f.csv)
    assert len(rows) == 7 * 5
    em = [r for r in rows if r["metric"] == "exact_match"]
    np.testing.assert_allclose([float(r["value"]) for r in em], table.curve("mirage_add", "exact_match").y)


def test_loss_and_metric_vs_loss(table, tmp_path):
    f = loss_and_transitions_figure(table, tmp_path)
    rows = _csv(f.csv)
    loss = [r for r in rows if r["series"] == "val_loss"]
    np.testing.assert_allclose([float(r["value"]) for r in loss], loss_of(ladder(7)))
    fit = [r for r in rows if r["series"] == "val_loss_fit"]
    np.testing.assert_allclose([float(r["value"]) for r in fit], loss_of([float(r["N"]) for r in fit]), rtol=1e-6)
    g = metric_vs_loss_figure(table, tmp_path / "mvl.png", {"mirage_add": 1.5})
    assert g.png.name == "mvl.png" and {r["task"] for r in _csv(g.csv)} == {"mirage_add", "jump_copy"}
    with pytest.raises(LmscaleError, match="expected N, C or D"):
        loss_and_transitions_figure(table, tmp_path, x="step")


def test_ledger_grid(table, tmp_path):
    with Ledger(tmp_path / "l.sqlite") as led:
        led.add(table, source="syn")
        stats = led.status(metric="exact_match")
    f = ledger_grid_figure(stats, tmp_path / "grid")
    rows = _csv(f.csv)
    assert len(rows) == 2 * 7 and {r["result"] for r in rows} == {"pass", "fail"}
    with pytest.raises(LmscaleError, match="empty"):
        ledger_grid_figure([], tmp_path)
