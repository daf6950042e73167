"""Tokenizers: character-level, byte-level and BPE (Hugging Face `tokenizers`).

Every tokenizer maps text to a NumPy array of ids and back, serialises to JSON (never pickle),
and states the unit its bits-per-unit figure is measured in ('char' or 'byte').
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from lmscale.config import TokenizerConfig
from lmscale.errors import LmscaleError

UNK = "\ufffd"  # stands for every character missing from the training split's vocabulary


class Tokenizer(ABC):
    kind: str
    unit: str  # what bits-per-unit counts: 'char' or 'byte'
    vocab_size: int

    @abstractmethod
    def encode(self, text: str) -> np.ndarray: ...

    @abstractmethod
    def decode(self, ids) -> str: ...

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    def count_units(self, text: str) -> int:
        return len(text) if self.unit == "char" else len(text.encode("utf-8"))

    def save(self, path: str | Path) -> None:
        from lmscale.fileio import atomic_write_json

        atomic_write_json(path, self.to_dict())


class CharTokenizer(Tokenizer):
    """Characters of the training split, sorted; id 0 is the unknown character."""

    kind = "char"
    unit = "char"

    def __init__(self, chars: list[str]):
        self.chars = [UNK] + [c for c in chars if c != UNK]
        self.vocab_size = len(self.chars)
        # Sorted code points -> ids, for vectorised encoding with searchsorted.
        cps = np.array([ord(c) for c in self.chars[1:]], dtype=np.int64)
        order = np.argsort(cps)
        self._cps = cps[order]
        self._ids = (order + 1).astype(np.int64)
        self._chars_arr = np.array(self.chars, dtype=object)

    @classmethod
    def train(cls, text: str) -> "CharTokenizer":
        return cls(sorted(set(text)))

    def encode(self, text: str) -> np.ndarray:
        cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        pos = np.searchsorted(self._cps, cps)
        pos = np.minimum(pos, len(self._cps) - 1)
        found = self._cps[pos] == cps
        return np.where(found, self._ids[pos], 0).astype(np.int64)

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64)
        ids = np.where((ids >= 0) & (ids < self.vocab_size), ids, 0)
        return "".join(self._chars_arr[ids])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "char", "chars": self.chars[1:]}


class ByteTokenizer(Tokenizer):
    """The 256 byte values of UTF-8; decoding replaces invalid sequences."""

    kind = "byte"
    unit = "byte"
    vocab_size = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def decode(self, ids) -> str:
        ids = np.asarray(ids, dtype=np.int64)
        return bytes(np.clip(ids, 0, 255).astype(np.uint8)).decode("utf-8", errors="replace")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "byte"}


class BPETokenizer(Tokenizer):
    """Byte-level BPE from Hugging Face `tokenizers` (GPT-2 style pre-tokenisation)."""

    kind = "bpe"
    unit = "byte"

    def __init__(self, hf):
        self.hf = hf
        self.vocab_size = hf.get_vocab_size()

    @classmethod
    def train(cls, docs: list[str], vocab_size: int) -> "BPETokenizer":
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import decoders, models, pre_tokenizers, trainers

        tok = HFTokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            special_tokens=["<|endoftext|>"],
            show_progress=False,
        )
        tok.train_from_iterator(docs, trainer=trainer)
        return cls(tok)

    @classmethod
    def from_file(cls, path: str | Path) -> "BPETokenizer":
        from tokenizers import Tokenizer as HFTokenizer

        path = Path(path)
        if not path.is_file():
            raise LmscaleError(f"tokenizer file {str(path)!r} not found; expected a Hugging Face tokenizer.json")
        try:
            return cls(HFTokenizer.from_file(str(path)))
        except Exception as err:
            raise LmscaleError(f"tokenizer file {str(path)!r} is not a valid tokenizer.json: {str(err).splitlines()[0]}") from None

    def encode(self, text: str) -> np.ndarray:
        # Encode paragraphs (split after blank lines) in batches: the Rust encoder parallelises
        # over a batch, very long strings are slow to pre-tokenise, and byte-level
        # pre-tokenisation never merges across the whitespace we split at.
        parts = [p for p in re.split(r"(?<=\n\n)(?=\S)", text) if p]
        out = []
        for i in range(0, len(parts), 4096):
            for enc in self.hf.encode_batch(parts[i : i + 4096], add_special_tokens=False):
                out.append(np.asarray(enc.ids, dtype=np.int64))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def decode(self, ids) -> str:
        return self.hf.decode([int(i) for i in np.asarray(ids).ravel()], skip_special_tokens=False)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "bpe", "hf": json.loads(self.hf.to_str())}


def build_tokenizer(cfg: TokenizerConfig, train_docs: list[str]) -> Tokenizer:
    if cfg.kind == "char":
        return CharTokenizer.train("".join(train_docs) + "\n")
    if cfg.kind == "byte":
        return ByteTokenizer()
    if cfg.path:
        return BPETokenizer.from_file(cfg.path)
    return BPETokenizer.train(train_docs, cfg.vocab_size)


def tokenizer_from_dict(d: dict[str, Any]) -> Tokenizer:
    kind = d.get("kind")
    if kind == "char":
        return CharTokenizer(list(d["chars"]))
    if kind == "byte":
        return ByteTokenizer()
    if kind == "bpe":
        from tokenizers import Tokenizer as HFTokenizer

        try:
            hf = HFTokenizer.from_str(json.dumps(d["hf"]))
        except Exception as err:  # the tokenizers library raises plain Exceptions on bad JSON
            raise ValueError(f"not a BPE tokenizer ({err})") from None
        return BPETokenizer(hf)
    raise LmscaleError(f"unknown tokenizer kind {kind!r}; expected 'char', 'byte' or 'bpe'")


def load_tokenizer(path: str | Path) -> Tokenizer:
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise LmscaleError(f"tokenizer {str(path)!r} cannot be read ({err}); expected lmscale tokenizer JSON") from None
    if not isinstance(d, dict):
        raise LmscaleError(f"tokenizer {str(path)!r} holds a {type(d).__name__}; expected lmscale tokenizer JSON (a mapping)")
    try:
        return tokenizer_from_dict(d)
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # valid JSON, not a tokenizer lmscale wrote
        raise LmscaleError(f"tokenizer {str(path)!r} is corrupt ({type(err).__name__}: {err}); expected lmscale "
                           "tokenizer JSON") from None
