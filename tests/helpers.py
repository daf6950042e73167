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


def invoke(app, args):
    """Run a Typer (sub-)app in-process the way `lmscale` runs every command: through
    `lmscale.console.run_app`, the CLI's one error handler (an LmscaleError becomes one line
    `error: ...` and exit status 2). Output is captured as `typer.testing.CliRunner` captures it."""
    from typer.testing import CliRunner, Result

    from lmscale.console import run_app

    runner = CliRunner()
    code, exc = 0, None
    with runner.isolation() as (out, err, both):
        try:
            run_app(app, [str(a) for a in args], prog_name="lmscale")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
            exc = e if code else None
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, stderr, output = out.getvalue(), err.getvalue(), both.getvalue()
    return Result(runner, stdout, stderr, output, None, code, exc)


# The decoder's functions with the config as an argument (hashable, so `jax.jit(..., static_argnums=2)`
# works on them): thin views of the registered model's methods.


def init_model(cfg, key):
    """(params, logical axes) of a model config."""
    from lmscale.model.registry import get_model

    model = get_model(cfg)
    return model.init(key), model.axes


def apply(params, tokens, cfg, dropout_key=None, compute_dtype=None):
    return _model(cfg, compute_dtype).apply(params, tokens, rng=dropout_key)


def apply_with_stats(params, tokens, cfg):
    return _model(cfg, None).apply_with_stats(params, tokens)


def loss_fn(params, batch, cfg, dropout_key=None, compute_dtype=None):
    return _model(cfg, compute_dtype).loss(params, batch, dropout_key)[0]


def _model(cfg, compute_dtype):
    from lmscale.model.base import Execution
    from lmscale.model.registry import get_model

    return get_model(cfg, None if compute_dtype is None else Execution(compute_dtype=compute_dtype))


def final_state(run_dir, step):
    """The full train state (params and optimizer state) of a run's checkpoint `step`, as host arrays."""
    import jax

    from lmscale.train import checkpoint
    from lmscale.train.optimizer import build_optimizer
    from lmscale.train.run import load_run_config
    from lmscale.model.registry import get_model

    cfg = load_run_config(run_dir)
    model = get_model(cfg.model)
    template = {"params": model.shapes, "opt_state": jax.eval_shape(build_optimizer(cfg.train, model.axes, cfg.model).init,
                                                                    model.shapes)}
    return checkpoint.load(Path(run_dir) / "checkpoints", step, template).state


def assert_same_final_state(a_dir, b_dir, step):
    """Bitwise equality of two runs' train states (params and optimizer state) at `step`."""
    import jax
    import numpy as np

    a, b = final_state(a_dir, step), final_state(b_dir, step)
    fa, fb = jax.tree_util.tree_flatten_with_path(a)[0], jax.tree_util.tree_flatten_with_path(b)[0]
    assert [p for p, _ in fa] == [p for p, _ in fb]
    for (path, x), (_, y) in zip(fa, fb):
        assert np.array_equal(np.asarray(x), np.asarray(y)), jax.tree_util.keystr(path)


def tree_bytes(root) -> dict[str, bytes]:
    """Every file under `root` (relative path -> contents): to check that nothing was changed."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
