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


def resolve_paths(cfg: RunConfig) -> RunConfig:
    """Make corpus and tokenizer paths absolute, so a run directory works from any directory."""
    d = cfg.data

    def absolute(value: str | None) -> str | None:
        """An existing local path (also after 'hf:') made absolute; names and None unchanged."""
        if value is None:
            return None
        prefix = "hf:" if value.startswith("hf:") else ""
        path = Path(value[len(prefix):]).expanduser()
        return prefix + str(path.resolve()) if path.exists() else value

    corpus = d.corpus if (d.corpus == "shakespeare" and d.format == "auto") else absolute(d.corpus)
    val = absolute(d.val_corpus)
    tok = d.tokenizer.model_copy(update={"path": absolute(d.tokenizer.path)})
    data = d.model_copy(update={"corpus": corpus, "val_corpus": val, "tokenizer": tok})
    return cfg.model_copy(update={"data": data})


def check_run_data(run_dir: Path, manifest: dict[str, Any]) -> None:
    """A run resumes only on the data it was trained on (same source checksum and tokenizer)."""
    path = Path(run_dir) / "data.json"
    if not path.is_file():
        return
    try:
        old = read_json(path)
        old_sum, old_tok = old["source"]["checksum"], old["tokenizer"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # an unreadable record cannot be compared; the config check still applies
    if old_sum != manifest["source"]["checksum"] or old_tok != manifest["tokenizer"]:
        raise LmscaleError(
            f"run directory {str(run_dir)!r} was trained on other data (source checksum {str(old_sum)[:12]}, "
            f"tokenizer {old_tok}); the corpus now has checksum {str(manifest['source']['checksum'])[:12]} — "
            "expected the same data to resume, or a new --run-dir"
        )


@dataclass
class LoadedRun:
    cfg: RunConfig
    tokenizer: Tokenizer
    params: Any
    step: int
    summary: dict[str, Any] | None


def load_run(run_dir: str | Path, warn=None) -> LoadedRun:
    """Config, tokenizer and the newest valid checkpoint's parameters of a run (on the host)."""
    from lmscale.parallel.mesh import make_mesh
    from lmscale.train import checkpoint
    from lmscale.train.step import build_trainer

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    trainer = build_trainer(cfg, make_mesh(MeshConfig(), jax.devices()[:1]))
    template = jax.eval_shape(trainer.init_state)
    ckpt = checkpoint.load_latest(run_dir / CHECKPOINTS, template, warn=warn)
    if ckpt is None:
        raise LmscaleError(f"run {str(run_dir)!r} has no usable checkpoint; expected checkpoints/step-*.npz")
    summary = read_json(run_dir / SUMMARY) if (run_dir / SUMMARY).is_file() else None
    return LoadedRun(cfg, tokenizer, ckpt.state["params"], ckpt.step, summary)
