"""Checkpoints: atomic, verified, no pickle.

A checkpoint is two files in ``<run>/checkpoints/``:

- ``step-00001000.npz``: every leaf of the train state (params and optimizer state), in
  flattening order, as ``leaf_00000``, ``leaf_00001``, ... (NumPy arrays, loaded with
  ``allow_pickle=False``);
- ``step-00001000.json``: the step, the leaves' key paths, shapes and dtypes, the npz's size and
  sha256, and the loader position and RNG seed (the data order and dropout keys are functions of
  (seed, step), so the step number is the whole loader and RNG state).

Both are written with write-then-rename; the JSON is written last and is the commit marker. On
load, checkpoints are tried newest first; one whose npz is missing, truncated or fails its
checksum, or whose leaves do not match the expected state, is skipped with a warning.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from lmscale.fileio import atomic_write_bytes, atomic_write_json, sha256_bytes, sha256_file

_NAME = re.compile(r"^step-(\d{8})\.json$")


@dataclass
class Checkpoint:
    step: int
    state: Any  # host NumPy pytree with the template's structure
    meta: dict[str, Any]


def _leaves(state) -> tuple[list[str], list[np.ndarray], Any]:
    flat, treedef = jax.tree_util.tree_flatten_with_path(state)
    paths = [jax.tree_util.keystr(p) for p, _ in flat]
    arrays = [np.asarray(jax.device_get(x)) for _, x in flat]
    return paths, arrays, treedef


def save(ckpt_dir: str | os.PathLike, step: int, state, extra: dict[str, Any] | None = None, keep: int = 2) -> Path:
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    paths, arrays, _ = _leaves(state)
    buf = io.BytesIO()
    np.savez(buf, **{f"leaf_{i:05d}": a for i, a in enumerate(arrays)})
    data = buf.getvalue()
    stem = f"step-{step:08d}"
    atomic_write_bytes(ckpt_dir / f"{stem}.npz", data)
    meta = {
        "step": step,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "npz_bytes": len(data),
        "npz_sha256": sha256_bytes(data),
        "leaves": [{"path": p, "shape": list(a.shape), "dtype": a.dtype.str} for p, a in zip(paths, arrays)],
        **(extra or {}),
    }
    atomic_write_json(ckpt_dir / f"{stem}.json", meta)
    _rotate(ckpt_dir, keep)
    return ckpt_dir / f"{stem}.npz"


def _rotate(ckpt_dir: Path, keep: int) -> None:
    steps = list_steps(ckpt_dir)
    for step in steps[:-keep] if keep > 0 else []:
        for suffix in (".json", ".npz"):  # marker first: a half-deleted checkpoint is never "valid"
            (ckpt_dir / f"step-{step:08d}{suffix}").unlink(missing_ok=True)


def clean_temporaries(ckpt_dir: str | os.PathLike) -> None:
    """Remove temporaries left by a process killed mid-write (never complete checkpoints)."""
    for f in Path(ckpt_dir).glob(".step-*.tmp"):
        f.unlink(missing_ok=True)


def list_steps(ckpt_dir: str | os.PathLike) -> list[int]:
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for f in d.iterdir() if (m := _NAME.match(f.name)))


def _load_one(ckpt_dir: Path, step: int, template) -> Checkpoint:
    stem = ckpt_dir / f"step-{step:08d}"
    meta = json.loads((stem.with_suffix(".json")).read_text(encoding="utf-8"))
    if meta.get("step") != step:
        raise ValueError(f"its metadata says step {meta.get('step')}")
    npz = stem.with_suffix(".npz")
    if not npz.is_file():
        raise ValueError("npz file missing")
    size = npz.stat().st_size
    if size != meta["npz_bytes"]:
        raise ValueError(f"npz has {size} bytes, expected {meta['npz_bytes']} (truncated?)")
    if sha256_file(npz) != meta["npz_sha256"]:
        raise ValueError("npz checksum mismatch (corrupted)")
    t_flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    if len(t_flat) != len(meta["leaves"]):
        raise ValueError(f"{len(meta['leaves'])} leaves, expected {len(t_flat)} (different model or optimizer)")
    arrays = []
    with np.load(npz, allow_pickle=False) as z:
        for i, ((path, leaf), info) in enumerate(zip(t_flat, meta["leaves"])):
            a = z[f"leaf_{i:05d}"]
            if (
                info["path"] != jax.tree_util.keystr(path)
                or tuple(a.shape) != tuple(leaf.shape)
                or np.dtype(a.dtype) != np.dtype(leaf.dtype)
            ):
                raise ValueError(f"leaf {info['path']} {a.shape} {a.dtype} does not match the expected "
                                 f"{jax.tree_util.keystr(path)} {tuple(leaf.shape)} {np.dtype(leaf.dtype)}")
            arrays.append(a)
    return Checkpoint(step=int(meta["step"]), state=jax.tree_util.tree_unflatten(treedef, arrays), meta=meta)


def load_latest(
    ckpt_dir: str | os.PathLike, template, warn: Callable[[str], None] | None = None
) -> Checkpoint | None:
    """Newest valid checkpoint matching `template`'s structure, or None."""
    ckpt_dir = Path(ckpt_dir)
    for step in reversed(list_steps(ckpt_dir)):
        try:
            return _load_one(ckpt_dir, step, template)
        except (ValueError, KeyError, OSError, json.JSONDecodeError, EOFError) as err:
            if warn:
                warn(f"checkpoint step {step} in {ckpt_dir} is unusable ({err}); trying the previous one")
        except Exception as err:  # zipfile.BadZipFile and friends from a torn npz
            if warn:
                warn(f"checkpoint step {step} in {ckpt_dir} is unusable ({type(err).__name__}: {err}); trying the previous one")
    return None
