"""Bad input never escapes as a traceback: the fast half of the adversarial catalogue, in-process.

The catalogue lives in benchmarks/adversarial.py (which runs all of it, slow cases and the sweep's
included, through the real `lmscale` command in subprocesses and prints a table). Each fast case
here runs through `lmscale.cli.app` and the CLI's one error handler, in a workspace holding a
trained tiny run, an ICL run, damaged copies of both, hostile YAML (alias bombs, deep nesting,
binary files) and bad CSVs, and must: exit with status 2, print exactly one line `error: ...` on
stderr naming the bad value, raise nothing (a traceback fails the test), finish within 5 s, and
leave every file and directory of the workspace as it was (all are hashed before and after).
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import invoke

ROOT = Path(__file__).resolve().parents[1]


def _catalogue_module():
    spec = importlib.util.spec_from_file_location("lmscale_adversarial", ROOT / "benchmarks" / "adversarial.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the file runs
    spec.loader.exec_module(mod)
    return mod


ADV = _catalogue_module()
FAST = [c for c in ADV.catalogue() if c.fast and c.owner != "sweep"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return ADV.build_workspace(tmp_path_factory.mktemp("adversarial"), big=False)


@pytest.mark.parametrize("case", FAST, ids=[c.name for c in FAST])
def test_bad_input_is_one_line_and_changes_nothing(case, workspace, monkeypatch):
    from lmscale.cli import app

    monkeypatch.chdir(workspace)
    monkeypatch.setenv("COLUMNS", "200")
    for k, v in case.env:
        monkeypatch.setenv(k, v)
    before = ADV.snapshot(workspace)
    t0 = time.perf_counter()
    r = invoke(app, list(case.args))  # an uncaught exception propagates: the test fails with its traceback
    seconds = time.perf_counter() - t0
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    if case.expect == "ok":
        assert r.exit_code == 0, r.output
        return
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.output
    if case.needle:
        assert case.needle.lower() in lines[0].lower(), lines[0]
    assert ADV.diff(before, ADV.snapshot(workspace)) == []
    assert seconds < ADV.LIMIT_S, f"{seconds:.1f} s"


def test_catalogue_is_a_superset_of_the_issue():
    """Issue 18's hostile user tried 225 bad inputs; the catalogue covers more, in every command group."""
    cases = ADV.catalogue()
    assert sum(c.expect == "error" for c in cases) >= 225
    areas = {c.area for c in cases}
    assert {"train", "sample", "info", "eval", "fit", "plot", "theory", "icl", "emergence", "mup", "demo", "usage",
            "sweep"} <= areas
    assert len({c.name for c in cases}) == len(cases)
