"""Atomic file writes and small JSON helpers.

Everything a run or a cache writes goes through `atomic_write_*`: the bytes land in a temporary
file in the same directory, are fsync'ed, then renamed over the target. A reader (or a process
killed mid-write) therefore sees either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from lmscale.errors import LmscaleError

MAX_JSON_BYTES = 256 * 1024**2  # bytes; lmscale's JSON files (summaries, manifests, fits) are KiB to MiB


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_write_yaml(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_json_file(path: str | os.PathLike, what: str = "file", expected: str = "the JSON lmscale wrote") -> Any:
    """A JSON file's contents, every failure a one-line `LmscaleError` naming the file: unreadable
    (permissions, a directory, I/O), over MAX_JSON_BYTES, not UTF-8 (binary), not JSON, or nested
    so deeply that the parser recurses out (RecursionError)."""
    name = str(path)
    try:
        size = os.stat(path).st_size
        if size > MAX_JSON_BYTES:
            raise LmscaleError(f"{what} {name!r} is {size:,} bytes; expected at most {MAX_JSON_BYTES:,} ({expected})")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise LmscaleError(f"cannot read {what} {name!r} ({err.strerror or err}); expected {expected}") from None
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # JSONDecodeError is a ValueError
        why = "nested too deeply" if isinstance(err, RecursionError) else " ".join(str(err).split())[:200]
        raise LmscaleError(f"{what} {name!r} is corrupt ({why}); expected {expected}") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_dir() -> Path:
    """Root of lmscale's cache: $LMSCALE_CACHE, else $XDG_CACHE_HOME/lmscale, else ~/.cache/lmscale."""
    env = os.environ.get("LMSCALE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "lmscale"


def csv_cell(v: Any) -> str:
    """One CSV cell that reads back exactly: '' for None and NaN, true/false for booleans, integers as
    integers, floats in their shortest round-trip form ('inf' and '-inf' kept). NumPy scalars too."""
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()  # a NumPy scalar: its Python value
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "" if v != v else repr(v)
    return str(v)
