import os

import numpy as np
import pytest

from lmscale.config import DataConfig
from lmscale.data.prepare import prepare_data
from lmscale.errors import LmscaleError


def test_prepare_caches_and_reuses(text_corpus):
    cfg = DataConfig(corpus=str(text_corpus))
    logs = []
    a = prepare_data(cfg, log=logs.append)
    assert any("tokenising" in m for m in logs)
    text = text_corpus.read_text()
    n = a.manifest["splits"]["train"]["tokens"] + a.manifest["splits"]["val"]["tokens"]
    assert n == len(text) - 0  # one token per character
    assert a.tokenizer.decode(np.asarray(a.train[:50])) == text[:50]
    assert a.train.dtype == np.dtype("<u2")
    logs.clear()
    b = prepare_data(cfg, log=logs.append)
    assert logs == []  # no re-tokenisation
    assert b.path == a.path and b.manifest["created"] == a.manifest["created"]


def test_changed_source_is_detected(text_corpus):
    cfg = DataConfig(corpus=str(text_corpus))
    a = prepare_data(cfg)
    # Touch without changing: fingerprint differs, checksum equal -> reused.
    st = os.stat(text_corpus)
    os.utime(text_corpus, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    logs = []
    b = prepare_data(cfg, log=logs.append)
    assert logs == [] and b.manifest["created"] == a.manifest["created"]
    # Change the content: re-prepared.
    text_corpus.write_text(text_corpus.read_text() + "A brand new line with new words zq.\n")
    c = prepare_data(cfg, log=logs.append)
    assert any("changed" in m for m in logs)
    assert c.manifest["splits"]["val"]["tokens"] != a.manifest["splits"]["val"]["tokens"] or \
        c.manifest["splits"]["train"]["tokens"] != a.manifest["splits"]["train"]["tokens"]


def test_corrupted_cache_is_reported_and_left_untouched(text_corpus):
    cfg = DataConfig(corpus=str(text_corpus))
    a = prepare_data(cfg)
    bin_path = a.path / "train.bin"
    data = bin_path.read_bytes()
    bin_path.write_bytes(data[:-10])
    with pytest.raises(LmscaleError, match="corrupted .*train.bin has .* bytes") as exc:
        prepare_data(cfg)
    assert "\n" not in str(exc.value) and "--force" in str(exc.value)
    assert bin_path.read_bytes() == data[:-10]  # not modified
    bin_path.write_bytes(data[:-2] + b"\xff\xff")  # right size, wrong content
    with pytest.raises(LmscaleError, match="checksum"):
        prepare_data(cfg)
    (a.path / "manifest.json").write_text("{ not json")
    with pytest.raises(LmscaleError, match="manifest.json unreadable"):
        prepare_data(cfg)
    fixed = prepare_data(cfg, force=True)
    assert (fixed.path / "train.bin").read_bytes() == data


def test_byte_and_bpe_units(text_corpus):
    b = prepare_data(DataConfig(corpus=str(text_corpus), tokenizer={"kind": "byte"}))
    assert b.units_per_token() == pytest.approx(1.0)
    p = prepare_data(DataConfig(corpus=str(text_corpus), tokenizer={"kind": "bpe", "vocab_size": 300}))
    assert p.manifest["splits"]["val"]["unit"] == "byte"
    assert p.units_per_token() > 1.5  # BPE tokens span several bytes


def test_separate_validation_corpus_is_part_of_the_source(text_corpus, tmp_path):
    v = tmp_path / "val.txt"
    v.write_text("The king is dead.\n" * 20)
    cfg = DataConfig(corpus=str(text_corpus), val_corpus=str(v))
    a = prepare_data(cfg)
    assert a.manifest["splits"]["val"]["units"] == len(v.read_text())
    v.write_text("The king is dead.\n" * 60)
    logs = []
    b = prepare_data(cfg, log=logs.append)
    assert any("changed" in m for m in logs)
    assert b.manifest["splits"]["val"]["units"] == len(v.read_text())


def test_prepared_splits_hold_exactly_their_own_text(text_corpus):
    """train.bin decodes to the training text and val.bin to the validation text: no validation
    line is tokenised into training."""
    from lmscale.data.corpus import load_corpus

    cfg = DataConfig(corpus=str(text_corpus))
    p = prepare_data(cfg)
    c = load_corpus(cfg)
    assert p.tokenizer.decode(np.asarray(p.train)) == c.train_text()
    assert p.tokenizer.decode(np.asarray(p.val)) == c.val_text()
    assert c.train_text() + c.val_text() == text_corpus.read_text()
