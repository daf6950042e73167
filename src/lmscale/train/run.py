"""Run directories: creation, config checks on resume, and loading a finished run.

A run directory holds ``config.yaml`` (the resolved config), ``tokenizer.json``, ``data.json``
(the prepared data's manifest), ``metrics.jsonl``, ``checkpoints/`` and ``summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import yaml

from lmscale.config import MeshConfig, RunConfig, config_diff, validate_config
from lmscale.data.tokenizers import Tokenizer, load_tokenizer
from lmscale.errors import LmscaleError
from lmscale.fileio import atomic_write_yaml, read_json

CONFIG = "config.yaml"
SUMMARY = "summary.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"


def resolve_vocab(cfg: RunConfig, tokenizer_vocab: int) -> RunConfig:
    """Fill model.vocab_size from the tokenizer (padded), or check a given one is large enough."""
    m = cfg.model
    if m.vocab_size is None:
        v = -(-tokenizer_vocab // m.pad_vocab_to) * m.pad_vocab_to
        return cfg.model_copy(update={"model": m.model_copy(update={"vocab_size": v})})
    if m.vocab_size < tokenizer_vocab:
        raise LmscaleError(
            f"model.vocab_size={m.vocab_size} is smaller than the tokenizer's {tokenizer_vocab}; expected >= {tokenizer_vocab}"
        )
    return cfg


def is_run_dir(path: Path) -> bool:
    return (Path(path) / CONFIG).is_file()


def load_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise LmscaleError(f"{str(run_dir)!r} is not an lmscale run directory; expected it to contain {CONFIG}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise LmscaleError(f"{str(path)!r} is not valid YAML: {err}") from None
    return validate_config(raw, source=str(path))


def check_or_write_config(run_dir: Path, cfg: RunConfig) -> bool:
    """Write the resolved config into a new run dir, or check it matches an existing run.

    Returns True if the directory already held this run (a resume).
    """
    run_dir = Path(run_dir)
    if is_run_dir(run_dir):
        existing = load_run_config(run_dir)
        diff = config_diff(existing.to_dict(), cfg.to_dict())
        if diff:
            shown = ", ".join(diff[:3]) + (f" and {len(diff) - 3} more" if len(diff) > 3 else "")
            raise LmscaleError(
                f"run directory {str(run_dir)!r} holds a run with another config ({shown}); "
                "expected the same config to resume, or a new --run-dir"
            )
        return True
    if run_dir.exists() and any(run_dir.iterdir()):
        raise LmscaleError(
            f"run directory {str(run_dir)!r} exists and is not an lmscale run; expected a new or empty directory"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_yaml(run_dir / CONFIG, cfg.to_dict())
    return False


@dataclass
class LoadedRun:
    cfg: RunConfig
    tokenizer: Tokenizer
    params: Any
    step: int
    summary: dict[str, Any] | None


def load_run(run_dir: str | Path) -> LoadedRun:
    """Config, tokenizer and the newest valid checkpoint's parameters of a run (on the host)."""
    from lmscale.parallel.mesh import make_mesh
    from lmscale.train import checkpoint
    from lmscale.train.step import build_trainer

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    trainer = build_trainer(cfg, make_mesh(MeshConfig(), jax.devices()[:1]))
    template = jax.eval_shape(trainer.init_state)
    ckpt = checkpoint.load_latest(run_dir / CHECKPOINTS, template)
    if ckpt is None:
        raise LmscaleError(f"run {str(run_dir)!r} has no usable checkpoint yet; expected checkpoints/step-*.npz")
    summary = read_json(run_dir / SUMMARY) if (run_dir / SUMMARY).is_file() else None
    return LoadedRun(cfg, tokenizer, ckpt.state["params"], ckpt.step, summary)
