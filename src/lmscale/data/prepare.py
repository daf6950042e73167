"""Prepared data: tokenised splits cached as memory-mapped arrays with a manifest.

Layout of one prepared dataset, under ``<cache>/data/<name>-<key>/``::

    manifest.json   source (kind, location, fingerprint, checksum), tokenizer, dtype, per-split
                    token/unit/document counts and sha256 of each token file
    tokenizer.json  the tokenizer (lmscale JSON)
    train.bin       token ids, little-endian uint16 (uint32 for vocabularies over 65,536)
    val.bin

The key hashes the source location and the data/tokenizer settings, so a second run with the
same config reuses the cache without re-tokenising. A source whose files changed (fingerprint
differs and so does the content checksum) is re-prepared; a cache whose files do not match its
manifest is reported as corrupted and left untouched.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lmscale.config import DataConfig
from lmscale.data.corpus import SourceSpec, load_corpus, resolve_source
from lmscale.data.tokenizers import Tokenizer, build_tokenizer, load_tokenizer
from lmscale.errors import LmscaleError
from lmscale.fileio import atomic_write_json, cache_dir, read_json, sha256_file

MANIFEST_VERSION = 1


@dataclass
class PreparedData:
    path: Path
    manifest: dict[str, Any]
    tokenizer: Tokenizer
    train: np.ndarray  # memory-mapped token ids
    val: np.ndarray

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def units_per_token(self, split: str = "val") -> float:
        s = self.manifest["splits"][split]
        return s["units"] / max(1, s["tokens"])


def _settings_key(cfg: DataConfig, spec: SourceSpec) -> dict[str, Any]:
    t = cfg.tokenizer
    tok: dict[str, Any] = {"kind": t.kind}
    if t.kind == "bpe" and t.path:
        tok["path"] = str(Path(t.path).resolve())
        tok["file_sha256"] = sha256_file(tok["path"]) if Path(tok["path"]).is_file() else None
    elif t.kind == "bpe":
        tok["vocab_size"] = t.vocab_size
    key: dict[str, Any] = {"source": spec.kind, "location": spec.location, "tokenizer": tok, "manifest": MANIFEST_VERSION}
    if spec.kind == "shakespeare":
        from lmscale.data.shakespeare import CONVERTER_VERSION

        key["val_plays"] = cfg.val_plays
        key["converter"] = CONVERTER_VERSION
    else:
        key.update(
            text_field=cfg.text_field,
            val_corpus=str(Path(cfg.val_corpus).resolve()) if cfg.val_corpus and not cfg.val_corpus.startswith("hf:") else cfg.val_corpus,
            val_fraction=cfg.val_fraction,
        )
        if spec.kind == "hf":
            key.update(hf_split=cfg.hf_split, hf_config=cfg.hf_config)
    return key


def data_dir(cfg: DataConfig) -> tuple[Path, SourceSpec, dict[str, Any]]:
    spec = resolve_source(cfg.corpus, cfg.format)
    if cfg.val_corpus:
        # The held-out corpus is part of the source: its files are fingerprinted and checksummed too.
        vspec = resolve_source(cfg.val_corpus, cfg.format)
        spec = SourceSpec(spec.kind, spec.location, spec.files + vspec.files, (vspec,))
    settings = _settings_key(cfg, spec)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    name = "shakespeare" if spec.kind == "shakespeare" else Path(spec.location).name.replace(".", "_")[:40]
    return cache_dir() / "data" / f"{name}-{cfg.tokenizer.kind}-{digest}", spec, settings


def _dtype_for(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 65536 else np.dtype("<u4")


def _corrupted(path: Path, why: str) -> LmscaleError:
    return LmscaleError(
        f"prepared data at {str(path)!r} is corrupted ({why}); expected files matching its manifest — "
        "rebuild it with `lmscale data prepare CONFIG --force`"
    )


def _open(path: Path, verify: bool = True) -> PreparedData:
    try:
        manifest = read_json(path / "manifest.json")
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _corrupted(path, f"manifest.json unreadable: {err}") from None
    try:
        if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
            raise _corrupted(path, f"manifest version {manifest.get('version')!r}, expected {MANIFEST_VERSION}")
        dtype = np.dtype(manifest["dtype"])
        arrays = {}
        for split in ("train", "val"):
            info = manifest["splits"][split]
            f = path / f"{split}.bin"
            if not f.is_file():
                raise _corrupted(path, f"{split}.bin missing")
            size = f.stat().st_size
            if size != info["tokens"] * dtype.itemsize:
                raise _corrupted(path, f"{split}.bin has {size} bytes, manifest expects {info['tokens'] * dtype.itemsize}")
            if verify and sha256_file(f) != info["sha256"]:
                raise _corrupted(path, f"{split}.bin checksum differs from the manifest")
            arrays[split] = np.memmap(f, dtype=dtype, mode="r")
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise _corrupted(path, f"manifest field missing or malformed: {err}") from None
    try:
        tokenizer = load_tokenizer(path / "tokenizer.json")
    except Exception:  # LmscaleError, KeyError, or whatever the tokenizers library raises
        raise _corrupted(path, "tokenizer.json unreadable") from None
    return PreparedData(path, manifest, tokenizer, arrays["train"], arrays["val"])


def prepare_data(
    cfg: DataConfig, force: bool = False, log: Callable[[str], None] | None = None
) -> PreparedData:
    """Prepare (or reuse) the tokenised train/val splits for `cfg`."""
    log = log or (lambda msg: None)
    path, spec, settings = data_dir(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One preparer at a time per dataset (sweeps start many runs at once); the others wait and reuse.
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _prepare_locked(cfg, force, log, path, spec, settings)


def source_checksum(cfg: DataConfig) -> str:
    """The corpus's content checksum now, preparing and writing nothing (the cached manifest's
    when its file fingerprint still matches): a resume checks its data with it before
    `prepare_data` may re-tokenise a changed corpus over the cache."""
    path, spec, _ = data_dir(cfg)
    try:
        src = read_json(path / "manifest.json")["source"]
        if spec.files and src["fingerprint"] == json.loads(json.dumps(spec.fingerprint())):
            return src["checksum"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return spec.checksum(cfg)


def _prepare_locked(cfg, force, log, path: Path, spec: SourceSpec, settings) -> PreparedData:
    for stale in path.parent.glob(f".{path.name}.*"):  # left by a killed build
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    if path.exists() and not force:
        if not (path / "manifest.json").exists():
            raise _corrupted(path, "manifest.json missing")
        data = _open(path)
        src = data.manifest["source"]
        fingerprint = spec.fingerprint()
        if fingerprint == src.get("fingerprint") and spec.files:
            return data
        checksum = spec.checksum(cfg)  # sources without files (HF datasets) are always checksummed
        if checksum == src.get("checksum"):
            if fingerprint != src.get("fingerprint"):
                # Touched but unchanged (e.g. copied): remember the new fingerprint, keep the tokens.
                data.manifest["source"]["fingerprint"] = fingerprint
                atomic_write_json(path / "manifest.json", data.manifest)
            return data
        log(f"source {spec.location} changed since it was prepared; re-tokenising")
    return _build(cfg, path, spec, settings, log)


def _build(cfg: DataConfig, path: Path, spec: SourceSpec, settings: dict[str, Any], log) -> PreparedData:
    t0 = time.perf_counter()
    fingerprint = spec.fingerprint()
    checksum = spec.checksum(cfg)
    corpus = load_corpus(cfg)
    log(f"tokenising {corpus.name} ({len(corpus.train)} train / {len(corpus.val)} val documents) with {cfg.tokenizer.kind}")
    tokenizer = build_tokenizer(cfg.tokenizer, corpus.train)
    dtype = _dtype_for(tokenizer.vocab_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        splits = {}
        for split, text in (("train", corpus.train_text()), ("val", corpus.val_text())):
            ids = tokenizer.encode(text)
            if ids.size == 0:
                raise LmscaleError(f"the {split} split of corpus {cfg.corpus!r} is empty after tokenisation; expected text")
            ids.astype(dtype).tofile(tmp / f"{split}.bin")
            splits[split] = {
                "tokens": int(ids.size),
                "units": tokenizer.count_units(text),
                "unit": tokenizer.unit,
                "documents": len(corpus.train if split == "train" else corpus.val),
                "sha256": sha256_file(tmp / f"{split}.bin"),
            }
        tokenizer.save(tmp / "tokenizer.json")
        manifest = {
            "version": MANIFEST_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": {"kind": spec.kind, "location": spec.location, "fingerprint": fingerprint, "checksum": checksum},
            "settings": settings,
            "corpus": corpus.metadata,
            "tokenizer": {"kind": tokenizer.kind, "vocab_size": tokenizer.vocab_size, "unit": tokenizer.unit},
            "dtype": dtype.str,
            "splits": splits,
            "seconds": round(time.perf_counter() - t0, 3),
        }
        atomic_write_json(tmp / "manifest.json", manifest)
        # Swap in the new directory; an old one is moved aside first and removed only after.
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"prepared {splits['train']['tokens']:,} train + {splits['val']['tokens']:,} val tokens in {path}")
    return _open(path, verify=False)


def data_info(cfg: DataConfig) -> dict[str, Any] | None:
    """Manifest of the prepared data for `cfg`, or None if it was never prepared."""
    path, _, _ = data_dir(cfg)
    if not (path / "manifest.json").exists():
        return None
    return _open(path, verify=False).manifest | {"path": str(path)}
