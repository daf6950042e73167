"""Nothing changes on an error path: run directories are created only once the run is built, a
never-trained directory does not lock in the config that crashed, a changed corpus is refused
before its cache is rebuilt, an OS error while writing is one line that says what was kept, and a
resume on another machine says it will not be bitwise identical."""

import dataclasses
import errno

import jax
import numpy as np

import pytest

from lmscale.data.prepare import data_dir
from lmscale.errors import LmscaleError
from lmscale.train import checkpoint, core
from lmscale.train.config import validate_config
from lmscale.train.core import Checkpoints, Member, Reporter, TrainLog, fit
from lmscale.train.lm import train
from tests.helpers import tiny_config
from tests.train.test_core import batches, tiny_trainer


class Warnings(Reporter):
    def __init__(self):
        self.seen = []

    def warn(self, msg):
        self.seen.append(msg)


def member(run_dir, config=None, seed=0):
    return Member(seed=seed, batches=batches(seed), run_dir=run_dir, config=config or {"a": 1})


def test_a_run_that_cannot_be_built_writes_no_run_directory(tmp_path):
    def boom(keys):
        raise RuntimeError("the model does not fit (as XLA would abort)")

    broken = dataclasses.replace(tiny_trainer(), init_state=boom)
    with pytest.raises(RuntimeError, match="does not fit"):
        fit(broken, [member(tmp_path / "run")], 4, [Checkpoints(every=2, keep=2)])
    assert list(tmp_path.iterdir()) == []


def test_a_never_trained_directory_restarts_with_a_corrected_config_and_a_trained_one_is_kept(tmp_path):
    run = tmp_path / "run"
    core.open_run_dir(member(run, {"width": 10**9}))  # what a crash before the first step leaves
    rep = Warnings()
    fit(tiny_trainer(), [member(run, {"width": 16})], 4, [TrainLog(2), Checkpoints(every=2, keep=2)], reporter=rep)
    assert "never trained a step" in rep.seen[0]
    assert "width: 16" in (run / "config.yaml").read_text() and checkpoint.list_steps(run / "checkpoints") == [2, 4]
    with pytest.raises(LmscaleError, match=r"another config \(width \(16 -> 32\)\)"):
        fit(tiny_trainer(), [member(run, {"width": 32})], 4, [TrainLog(2)])
    assert "width: 16" in (run / "config.yaml").read_text()


def test_a_changed_corpus_is_refused_before_its_prepared_cache_is_touched(text_corpus, tmp_path):
    cfg = validate_config(tiny_config(text_corpus, **{"train.steps": 10}))
    run = tmp_path / "run"
    train(cfg, run)
    cache = data_dir(cfg.data)[0]
    before = {f.name: f.read_bytes() for f in cache.iterdir()}
    text_corpus.write_text(text_corpus.read_text() + "An extra line, changing the corpus.\n")
    with pytest.raises(LmscaleError, match="was trained on other data"):
        train(cfg, run)
    assert {f.name: f.read_bytes() for f in cache.iterdir()} == before


def test_an_os_error_while_writing_is_one_line_that_says_what_was_kept_and_the_run_resumes(tmp_path, monkeypatch):
    run = tmp_path / "run"
    save = checkpoint.save
    calls = []

    def full_at_second_save(*args, **kw):
        calls.append(args[1])
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(args[0]))
        return save(*args, **kw)

    monkeypatch.setattr(checkpoint, "save", full_at_second_save)
    with pytest.raises(LmscaleError) as err:
        fit(tiny_trainer(), [member(run)], 6, [TrainLog(1), Checkpoints(every=2, keep=5)])
    msg = str(err.value)
    assert "\n" not in msg and "No space left on device" in msg and f"{run}: checkpoint step 2" in msg
    monkeypatch.undo()
    assert checkpoint.list_steps(run / "checkpoints") == [2]
    resumed = fit(tiny_trainer(), [member(run)], 6, [TrainLog(1), Checkpoints(every=2, keep=5)])[0]
    fresh = fit(tiny_trainer(), [member(tmp_path / "fresh")], 6, [TrainLog(1), Checkpoints(every=2, keep=5)])[0]
    assert resumed["status"] == "done"
    ck = checkpoint.load_latest(run / "checkpoints", tiny_trainer().abstract_member_state())
    ref = checkpoint.load_latest(tmp_path / "fresh" / "checkpoints", tiny_trainer().abstract_member_state())
    assert ck.step == ref.step == 6 and fresh["status"] == "done"
    leaves = [[np.asarray(x).tobytes() for x in jax.tree.leaves(c.state)] for c in (ck, ref)]
    assert leaves[0] == leaves[1]  # bitwise the uninterrupted run


def test_a_resume_on_another_mesh_says_it_will_not_be_bitwise(tmp_path, monkeypatch):
    run = tmp_path / "run"
    fit(tiny_trainer(), [member(run)], 4, [Checkpoints(every=2, keep=2)], stop_at=2)
    meta = checkpoint.load_latest(run / "checkpoints", tiny_trainer().abstract_member_state()).meta
    assert meta["machine"] == core.machine_record(tiny_trainer()) and meta["machine"]["devices"] == 1
    rep = Warnings()
    fit(tiny_trainer(), [member(run)], 4, [Checkpoints(every=2, keep=2)], stop_at=3, reporter=rep)
    assert rep.seen == []  # the same machine: nothing to say
    elsewhere = {"platform": "cpu", "processes": 1, "devices": 8, "mesh": {"members": 1, "data": 8, "fsdp": 1, "tensor": 1}}
    monkeypatch.setattr(core, "machine_record", lambda trainer: elsewhere)
    fit(tiny_trainer(), [member(run)], 4, [Checkpoints(every=2, keep=2)], reporter=rep)
    assert len(rep.seen) == 1 and "1 cpu device(s)" in rep.seen[0] and "8 cpu device(s)" in rep.seen[0]
    assert "not be bitwise identical" in rep.seen[0]


class Lost(Exception):
    pass


class LosesItsJob(Reporter):
    """A sweep worker's reporter whose job becomes another worker's at `at` (the `check` text)."""

    def __init__(self, at):
        self.at, self.asked = at, []

    def check(self, before):
        self.asked.append(before)
        if before.startswith(self.at):
            raise Lost(before)


def test_the_core_asks_before_every_write_and_stops_there(tmp_path):
    with pytest.raises(Lost):
        fit(tiny_trainer(), [member(tmp_path / "a")], 6, [Checkpoints(every=2, keep=5)], reporter=LosesItsJob("opening"))
    assert list(tmp_path.iterdir()) == []  # nothing opened, created or rolled back
    rep = LosesItsJob("the hooks of step 4")
    with pytest.raises(Lost):
        fit(tiny_trainer(), [member(tmp_path / "b")], 6, [Checkpoints(every=2, keep=5)], reporter=rep)
    assert checkpoint.list_steps(tmp_path / "b" / "checkpoints") == [2]  # step 4's checkpoint never written
    assert rep.asked == ["opening the run directories", "the hooks of step 2", "the hooks of step 4"]
