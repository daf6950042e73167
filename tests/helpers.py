"""Helpers shared by tests: tiny configs and running the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def tiny_config(corpus: str | Path, **overrides) -> dict:
    """A run config small enough to train in seconds on one CPU core."""
    cfg = {
        "name": "tiny",
        "seed": 3,
        "data": {"corpus": str(corpus), "tokenizer": {"kind": "char"}},
        "model": {"depth": 2, "width": 32, "heads": 2, "context": 32, "bias": False},
        "train": {
            "steps": 30,
            "batch_size": 8,
            "optimizer": {"lr": 3e-3, "beta2": 0.99},
            "schedule": {"kind": "cosine", "warmup": 5, "min_lr": 3e-4},
            "eval_every": 10,
            "eval_sequences": 16,
            "final_eval_sequences": 64,
            "log_every": 5,
            "checkpoint_every": 10,
            "keep_checkpoints": 3,
        },
    }
    for key, value in overrides.items():
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return cfg


def write_yaml(path: Path, cfg: dict) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def run_cli(*args, env_extra: dict | None = None, timeout: int = 600, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "lmscale", *map(str, args)],
        capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd,
    )
