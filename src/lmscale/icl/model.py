"""The lab's view of its models: an `ICLConfig`'s model section as a registered model, and the
compiled predictions evaluation, probes and sweeps share.

The models themselves are registered in `lmscale.model.icl`: ``model.kind: gpt`` is the
vector-token GPT (``icl_gpt``), ``lsa`` von Oswald's linear self-attention (``icl_lsa``).
`model_spec(cfg)` maps the user-facing section (plus the prompt shape: format, task.d, n_points)
to the registered model's config; `model_of(cfg)` is that model.
"""

from __future__ import annotations

import json
from typing import Any, Callable, NamedTuple

import jax

from lmscale.icl.config import ICLConfig
from lmscale.model.base import Execution, Model, ModelSpec
from lmscale.model.icl import Forward, ICLGPTConfig, ICLLSAConfig
from lmscale.model.registry import get_model


def model_spec(cfg: ICLConfig) -> ModelSpec:
    """The registered model's config of `cfg` (``icl_gpt`` or ``icl_lsa``)."""
    m = cfg.model
    if m.kind == "lsa":
        return ICLLSAConfig(d=cfg.task.d, depth=m.depth, heads=m.heads, init_std=m.lsa_init_std, key_size=m.lsa_key_size)
    return ICLGPTConfig(depth=m.depth, width=m.width, heads=m.heads, mlp_ratio=m.mlp_ratio, init_std=m.init_std,
                        read_init=m.read_init, format=cfg.format, d=cfg.task.d, n_points=cfg.n_points)


def execution() -> Execution:
    """How the ICL models run outside training: as the one-device trainer runs them (the CPU
    kernels of `lmscale.model.ops` on CPU only)."""
    return Execution(cpu_kernels=jax.default_backend() == "cpu")


def model_of(cfg: ICLConfig, ex: Execution | None = None) -> Model:
    """The registered model of `cfg`'s model section."""
    return get_model(model_spec(cfg), ex or execution())


def forward(params: dict, xs, ys, cfg: ICLConfig, capture_hidden: bool = False) -> Forward:
    """Predictions for every prefix of prompts (xs (B, k, d), ys (B, k)); optionally hidden states."""
    return model_of(cfg).forward(params, xs, ys, capture_hidden=capture_hidden)


def predict(params: dict, xs, ys, cfg: ICLConfig):
    """(B, k) predictions (gpt: every prefix; lsa: (B, 1), the query's)."""
    return forward(params, xs, ys, cfg).pred


_COMPILED: dict[tuple, Any] = {}


def model_key(cfg: ICLConfig) -> str:
    """What fixes the model's function (not its data or training): model section, format, k, d."""
    return json.dumps({"model": cfg.model.model_dump(mode="json"), "format": cfg.format, "n": cfg.n_points, "d": cfg.task.d},
                      sort_keys=True)


def cached(key: tuple, make: Callable[[], Any]) -> Any:
    """`make()`, once per `key` in this process (compiled functions, trainers)."""
    if key not in _COMPILED:
        _COMPILED[key] = make()
    return _COMPILED[key]


def compiled(key: tuple, make: Callable[[], Callable]) -> Callable:
    """`jax.jit(make())`, once per `key` in this process: evaluation, ILWD, probes and sweeps call
    the same model many times, and a fresh jitted closure per call would recompile every time."""
    return cached(("jit",) + tuple(key), lambda: jax.jit(make()))


def predict_jit(cfg: ICLConfig) -> Callable:
    """The compiled `predict(params, xs, ys)` of `cfg`'s model (shared by every config with its `model_key`)."""
    return compiled(("predict", model_key(cfg)), lambda: lambda p, x, y: predict(p, x, y, cfg))


# ----------------------------------------------------------------------------------------------
# Sizes


class ICLParamCount(NamedTuple):
    total: int  # every parameter of this model
    garg_convention: int  # + GPT-2's unused token embedding (50257 x width), as Garg et al. count


def count_params(cfg: ICLConfig) -> ICLParamCount:
    """Parameters of `cfg`'s model, in total and in Garg et al.'s convention (closed forms of the registered model)."""
    model = model_of(cfg)
    return ICLParamCount(model.param_count().total, model.param_count_garg())
