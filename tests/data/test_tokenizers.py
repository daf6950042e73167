import numpy as np
import pytest

from lmscale.config import TokenizerConfig
from lmscale.data.tokenizers import UNK, BPETokenizer, ByteTokenizer, CharTokenizer, build_tokenizer, tokenizer_from_dict
from lmscale.errors import LmscaleError


def test_char_roundtrip_and_unknown():
    tok = CharTokenizer.train("hello world\n")
    assert tok.vocab_size == len(set("hello world\n")) + 1
    ids = tok.encode("hello")
    assert tok.decode(ids) == "hello"
    # Characters absent from the training split map to id 0, decoded as the replacement char.
    ids = tok.encode("hez")
    assert ids[-1] == 0 and tok.decode(ids) == "he" + UNK
    # ids follow sorted character order, after the unknown token
    assert tok.encode(" ")[0] == 1 + sorted(set("hello world\n")).index(" ")
    again = tokenizer_from_dict(tok.to_dict())
    assert np.array_equal(again.encode("world"), tok.encode("world"))


def test_byte_roundtrip_any_unicode():
    tok = ByteTokenizer()
    text = "naïve — ünïcödé ✓"
    ids = tok.encode(text)
    assert ids.max() < 256 and len(ids) == len(text.encode("utf-8"))
    assert tok.decode(ids) == text
    assert tok.count_units(text) == len(text.encode("utf-8"))


def test_bpe_train_roundtrip_and_load_from_file(tmp_path):
    docs = ["the quick brown fox jumps over the lazy dog\n" * 50, "to be or not to be, that is the question\n" * 50]
    tok = build_tokenizer(TokenizerConfig(kind="bpe", vocab_size=300), docs)
    assert 260 <= tok.vocab_size <= 300
    text = "the question of the lazy fox\n"
    ids = tok.encode(text)
    assert len(ids) < len(text)  # merges happened
    assert tok.decode(ids) == text
    path = tmp_path / "tokenizer.json"
    tok.hf.save(str(path))
    loaded = build_tokenizer(TokenizerConfig(kind="bpe", path=str(path)), [])
    assert np.array_equal(loaded.encode(text), ids)
    again = tokenizer_from_dict(tok.to_dict())
    assert np.array_equal(again.encode(text), ids)


def test_bpe_bad_file(tmp_path):
    with pytest.raises(LmscaleError, match="not found"):
        BPETokenizer.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(LmscaleError, match="not a valid tokenizer.json"):
        BPETokenizer.from_file(bad)
