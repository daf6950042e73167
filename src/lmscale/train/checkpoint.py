"""The checkpoint store: the one module that knows how checkpoints lie on disk.

A checkpoint of step s is, in ``<run>/checkpoints/``:

- ``step-<s:08d>/``: the array state (params and optimizer state) written by Orbax
  (`orbax.checkpoint.StandardCheckpointHandler`), so sharded arrays are saved without being
  gathered onto one host, and multi-process runs save and restore their own shards;
- ``step-<s:08d>.json``: the commit marker, written last (write-then-rename), holding the step, the
  state's leaves (key path, shape, dtype), the size and sha256 of every file Orbax wrote, and the
  loader position and RNG (the data order and dropout keys are functions of (seed, step), so the
  step number is the whole loader and RNG state).

Loading tries checkpoints newest first and skips, with a warning, one whose marker is unreadable,
whose files are missing, truncated or fail their checksum, or whose leaves do not match the
state expected. The sha256 is what decides: Orbax itself restores a checkpoint with a flipped
byte in an array file without complaint (measured with orbax-checkpoint 0.12.8; the test does
the same). A process killed mid-save leaves an Orbax temporary or a step directory without its
marker; neither is ever loaded, and `clean_temporaries` removes them.

Checkpoints written before the Orbax store (``step-<s>.npz`` with an npz sha256 in the marker) are
still read, so older runs can be sampled, evaluated and resumed; new checkpoints are Orbax's.
Nothing is pickled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from lmscale.fileio import atomic_write_json, sha256_file

FORMAT = "lmscale-orbax-1"
_MARKER = re.compile(r"^step-(\d{8})\.json$")
_ORBAX_TMP = ".orbax-checkpoint-tmp"
# Tests set this to a number of seconds to sleep between the array write and the commit marker,
# to kill a process deterministically inside that window.
SAVE_DELAY_ENV = "LMSCALE_TEST_CHECKPOINT_DELAY"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, torn, corrupted, or of another state)."""


@dataclass
class Checkpoint:
    step: int
    state: Any  # the template's structure: jax arrays (Orbax) or host NumPy arrays (older npz checkpoints)
    meta: dict[str, Any]


def _stem(step: int) -> str:
    return f"step-{step:08d}"


def _checkpointer():
    import orbax.checkpoint as ocp

    return ocp.Checkpointer(ocp.StandardCheckpointHandler())


def _primary() -> bool:
    return jax.process_index() == 0


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        from orbax.checkpoint import multihost

        multihost.sync_global_processes(name)


def _leaf_records(state) -> list[dict[str, Any]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(state)
    return [{"path": jax.tree_util.keystr(p), "shape": list(x.shape), "dtype": np.dtype(x.dtype).str} for p, x in flat]


def _file_records(root: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        out[f.relative_to(root).as_posix()] = {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
    return out


def save(ckpt_dir: str | os.PathLike, step: int, state, extra: dict[str, Any] | None = None, keep: int | None = 2) -> Path:
    """Save `state` as step `step` (replacing an earlier save of that step) and keep the newest `keep`."""
    ckpt_dir = Path(ckpt_dir).absolute()
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    arrays = ckpt_dir / _stem(step)
    if _primary():
        (ckpt_dir / f"{_stem(step)}.json").unlink(missing_ok=True)  # uncommit first
        shutil.rmtree(arrays, ignore_errors=True)
    _sync(f"lmscale-ckpt-clear-{step}")
    import orbax.checkpoint as ocp

    try:
        with _quiet_orbax():
            _checkpointer().save(arrays, args=ocp.args.StandardSave(state))
    except Exception as err:
        # Orbax's array writer (TensorStore) reports a full disk or a read-only directory as a
        # ValueError carrying the OS error code; give it back as the OSError it is, with nothing
        # half-written left behind.
        code = re.search(r"os_error_code='?(\d+)", str(err))
        if isinstance(err, OSError) or code is None:
            raise
        shutil.rmtree(arrays, ignore_errors=True)
        for tmp in ckpt_dir.glob(f"{_stem(step)}{_ORBAX_TMP}*"):
            shutil.rmtree(tmp, ignore_errors=True)
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(arrays)) from None
    delay = os.environ.get(SAVE_DELAY_ENV)
    if delay:
        time.sleep(float(delay))
    if _primary():
        meta = {
            "format": FORMAT,
            "step": step,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "leaves": _leaf_records(state),
            "files": _file_records(arrays),
            **(extra or {}),
        }
        atomic_write_json(ckpt_dir / f"{_stem(step)}.json", meta)
        if keep is not None:
            prune(ckpt_dir, keep)
    _sync(f"lmscale-ckpt-commit-{step}")
    return arrays


@contextlib.contextmanager
def _quiet_orbax():
    """Orbax logs a failed write from each of its threads (several tracebacks) before raising it;
    the one error raised is reported instead."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def list_steps(ckpt_dir: str | os.PathLike) -> list[int]:
    """Committed steps (those with a marker), oldest first."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for f in d.iterdir() if (m := _MARKER.match(f.name)))


def drop(ckpt_dir: str | os.PathLike, steps) -> None:
    """Delete these checkpoints, each marker first (a half-deleted checkpoint is never valid)."""
    d = Path(ckpt_dir)
    for step in steps:
        (d / f"{_stem(step)}.json").unlink(missing_ok=True)
        shutil.rmtree(d / _stem(step), ignore_errors=True)
        (d / f"{_stem(step)}.npz").unlink(missing_ok=True)


def prune(ckpt_dir: str | os.PathLike, keep: int) -> None:
    """Keep the newest `keep` checkpoints."""
    steps = list_steps(ckpt_dir)
    drop(ckpt_dir, steps[:-keep] if keep > 0 else steps)


def clean_temporaries(ckpt_dir: str | os.PathLike) -> None:
    """Remove what a process killed mid-save left: Orbax temporaries, step directories without a
    marker, and temporaries of the atomic file writes (never a committed checkpoint)."""
    d = Path(ckpt_dir)
    if not d.is_dir():
        return
    committed = set(list_steps(d))
    for f in d.iterdir():
        name = f.name
        if name.startswith(".step-") and name.endswith(".tmp"):
            f.unlink(missing_ok=True)
        elif _ORBAX_TMP in name or (f.is_dir() and re.fullmatch(r"step-\d{8}", name) and int(name[5:]) not in committed):
            shutil.rmtree(f, ignore_errors=True)


def copy(src_dir: str | os.PathLike, step: int, dst_dir: str | os.PathLike) -> None:
    """Copy the committed checkpoint `step` into another run's checkpoint directory (WSD branches);
    the marker is copied last, so an interrupted copy is never a checkpoint."""
    src, dst = Path(src_dir), Path(dst_dir)
    dst.mkdir(parents=True, exist_ok=True)
    stem = _stem(step)
    if (src / stem).is_dir():
        shutil.copytree(src / stem, dst / stem, dirs_exist_ok=True)
    if (src / f"{stem}.npz").is_file():
        shutil.copy2(src / f"{stem}.npz", dst / f"{stem}.npz")
    shutil.copy2(src / f"{stem}.json", dst / f"{stem}.json")


def _check_leaves(meta: dict[str, Any], template) -> None:
    t_flat, _ = jax.tree_util.tree_flatten_with_path(template)
    leaves = meta.get("leaves")
    if not isinstance(leaves, list) or len(leaves) != len(t_flat):
        n = len(leaves) if isinstance(leaves, list) else "no"
        raise CheckpointError(f"{n} leaves, expected {len(t_flat)} (different model or optimizer)")
    for (path, leaf), info in zip(t_flat, leaves):
        want = (jax.tree_util.keystr(path), tuple(leaf.shape), np.dtype(leaf.dtype).str)
        got = (info.get("path"), tuple(info.get("shape", ())), info.get("dtype"))
        if got != want:
            raise CheckpointError(f"leaf {got[0]} {got[1]} {got[2]} does not match the expected {want[0]} {want[1]} {want[2]}")


def _verify_files(root: Path, files: dict[str, Any]) -> None:
    if not root.is_dir():
        raise CheckpointError("its array directory is missing")
    for rel, info in files.items():
        f = root / rel
        if not f.is_file():
            raise CheckpointError(f"file {rel} is missing")
        size = f.stat().st_size
        if size != info["bytes"]:
            raise CheckpointError(f"file {rel} has {size} bytes, expected {info['bytes']} (truncated?)")
        if sha256_file(f) != info["sha256"]:
            raise CheckpointError(f"file {rel} fails its sha256 checksum (corrupted)")


def _with_sharding(template):
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None) or device), template
    )


def load(ckpt_dir: str | os.PathLike, step: int, template) -> Checkpoint:
    """Checkpoint `step`, verified against its marker and `template` (a pytree of arrays or
    ShapeDtypeStructs; their shardings, if any, are where Orbax restores the arrays).
    Raises CheckpointError when it cannot be used."""
    d = Path(ckpt_dir).absolute()
    try:
        meta = json.loads((d / f"{_stem(step)}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CheckpointError(f"its marker is unreadable ({err})") from None
    if not isinstance(meta, dict) or meta.get("step") != step:
        raise CheckpointError(f"its marker says step {meta.get('step') if isinstance(meta, dict) else meta!r}")
    _check_leaves(meta, template)
    if "npz_sha256" in meta:
        return Checkpoint(step, _load_npz(d / f"{_stem(step)}.npz", meta, template), meta)
    if meta.get("format") != FORMAT or not isinstance(meta.get("files"), dict):
        raise CheckpointError(f"its marker has format {meta.get('format')!r}; expected {FORMAT!r}")
    _verify_files(d / _stem(step), meta["files"])
    import orbax.checkpoint as ocp

    try:
        state = _checkpointer().restore(d / _stem(step), args=ocp.args.StandardRestore(_with_sharding(template)))
    except Exception as err:  # a torn or foreign Orbax tree that passed the checks above
        raise CheckpointError(f"Orbax cannot restore it ({type(err).__name__}: {err})") from None
    return Checkpoint(step, state, meta)


def _load_npz(npz: Path, meta: dict[str, Any], template):
    """A checkpoint of the npz format that preceded the Orbax store (leaves in flattening order)."""
    if not npz.is_file():
        raise CheckpointError("npz file missing")
    if npz.stat().st_size != meta.get("npz_bytes") or sha256_file(npz) != meta["npz_sha256"]:
        raise CheckpointError("npz file is truncated or fails its sha256 checksum (corrupted)")
    _, treedef = jax.tree_util.tree_flatten(template)
    try:
        with np.load(npz, allow_pickle=False) as z:
            arrays = [z[f"leaf_{i:05d}"] for i in range(treedef.num_leaves)]
    except Exception as err:  # a torn zip
        raise CheckpointError(f"npz file is unreadable ({type(err).__name__}: {err})") from None
    return jax.tree_util.tree_unflatten(treedef, arrays)


def load_latest(
    ckpt_dir: str | os.PathLike, template, warn: Callable[[str], None] | None = None
) -> Checkpoint | None:
    """Newest usable checkpoint matching `template`, or None (each unusable one is named in a warning)."""
    for step in reversed(list_steps(ckpt_dir)):
        try:
            return load(ckpt_dir, step, template)
        except CheckpointError as err:
            if warn:
                warn(f"checkpoint step {step} in {ckpt_dir} is unusable ({err}); trying the previous one")
    return None


def array_files(ckpt_dir: str | os.PathLike, step: int) -> list[Path]:
    """The files holding checkpoint `step`'s array data (not Orbax's metadata), for tests and tools
    that inspect or damage them."""
    d = Path(ckpt_dir)
    if (d / f"{_stem(step)}.npz").is_file():
        return [d / f"{_stem(step)}.npz"]
    meta = json.loads((d / f"{_stem(step)}.json").read_text(encoding="utf-8"))
    # TensorStore's OCDBT keeps the data in files under 'd/' directories
    return [d / _stem(step) / rel for rel in meta.get("files", {}) if "d" in rel.split("/")[:-1]]
