"""Language-model run directories: resolving a config for its data, and loading a run.

A run directory holds ``config.yaml`` (the resolved config), ``tokenizer.json``, ``data.json``
(the prepared data's manifest), ``metrics.jsonl``, ``checkpoints/`` and ``summary.json``; the
training core (`lmscale.train.core`) creates and resumes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax

from lmscale.config import read_yaml
from lmscale.data.tokenizers import Tokenizer, load_tokenizer
from lmscale.errors import LmscaleError
from lmscale.fileio import load_json_file, read_json
from lmscale.train.config import RunConfig, validate_config
from lmscale.train.core import CHECKPOINTS, CONFIG, METRICS, SUMMARY, is_run_dir

__all__ = ["CHECKPOINTS", "CONFIG", "METRICS", "SUMMARY", "LoadedRun", "check_run_data", "is_run_dir", "load_run",
           "load_run_config", "resolve_paths", "resolve_vocab"]


def resolve_vocab(cfg: RunConfig, tokenizer_vocab: int) -> RunConfig:
    """Fill model.vocab_size from the tokenizer (padded), or check a given one is large enough
    (models without a vocabulary are left as they are)."""
    m = cfg.model
    if "vocab_size" not in type(m).model_fields:
        return cfg
    if m.vocab_size is None:
        pad = getattr(m, "pad_vocab_to", 1)
        v = -(-tokenizer_vocab // pad) * pad
        return cfg.model_copy(update={"model": m.model_copy(update={"vocab_size": v})})
    if m.vocab_size < tokenizer_vocab:
        raise LmscaleError(
            f"model.vocab_size={m.vocab_size} is smaller than the tokenizer's {tokenizer_vocab}; expected >= {tokenizer_vocab}"
        )
    return cfg


def load_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise LmscaleError(f"{str(run_dir)!r} is not an lmscale run directory; expected it to contain {CONFIG}")
    # Unreadable, binary, invalid or hostile (aliases) files are one-line errors (lmscale.config.read_yaml).
    raw = read_yaml(path, "run config", f"the {CONFIG} lmscale wrote")
    if not isinstance(raw, dict):
        raise LmscaleError(f"run config {str(path)!r} holds a {type(raw).__name__}; expected the mapping lmscale wrote")
    return validate_config(raw, source=str(path))


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
    _check_run_source(run_dir, manifest["source"]["checksum"], manifest["tokenizer"])


def check_run_source(run_dir: Path, checksum: str) -> None:
    """The source-checksum half of `check_run_data`, for before the data is prepared."""
    _check_run_source(run_dir, checksum, None)


def _check_run_source(run_dir: Path, checksum: str, tokenizer: dict[str, Any] | None) -> None:
    path = Path(run_dir) / "data.json"
    if not path.is_file():
        return
    try:
        old = read_json(path)
        old_sum, old_tok = old["source"]["checksum"], old["tokenizer"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # an unreadable record cannot be compared; the config check still applies
    if old_sum != checksum or (tokenizer is not None and old_tok != tokenizer):
        raise LmscaleError(
            f"run directory {str(run_dir)!r} was trained on other data (source checksum {str(old_sum)[:12]}, "
            f"tokenizer {old_tok}); the corpus now has checksum {str(checksum)[:12]} — "
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
    """Config, tokenizer and the newest usable checkpoint's parameters of a run (on one device)."""
    from lmscale.model.registry import get_model
    from lmscale.train import checkpoint
    from lmscale.train.optimizer import build_optimizer

    from lmscale.train.limits import check_params_fit

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    check_params_fit(cfg)  # a run from a larger machine: refused before its checkpoint is read
    tokenizer = load_tokenizer(run_dir / "tokenizer.json")
    model = get_model(cfg.model)
    optimizer = build_optimizer(cfg.train, model.axes, cfg.model)
    template = {"params": model.shapes, "opt_state": jax.eval_shape(optimizer.init, model.shapes)}
    ckpt = checkpoint.load_latest(run_dir / CHECKPOINTS, template, warn=warn)
    if ckpt is None:
        raise LmscaleError(f"run {str(run_dir)!r} has no usable checkpoint; expected checkpoints/step-* (train it first)")
    summary = load_json_file(run_dir / SUMMARY, "run summary") if (run_dir / SUMMARY).is_file() else None
    params = jax.tree.map(jax.numpy.asarray, ckpt.state["params"])
    return LoadedRun(cfg, tokenizer, params, ckpt.step, summary)
