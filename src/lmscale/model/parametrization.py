"""Standard (SP) and maximal-update (muP) parametrisation: the role of every parameter, in one table.

Under SP (GPT-2) the best Adam learning rate drifts with width, so each member of a model family
needs its own sweep. muP (Yang et al., Tensor Programs V; microsoft/mup semantics for Adam)
rescales init, learning rates and two forward multipliers so that every activation keeps its
size as width grows and one LR sweep on a narrow proxy transfers to the whole family.

With m = width / mup_base_width (every width-like dimension — embed, mlp, heads*head_dim —
grows by the same m, because mlp_ratio is a ratio and heads*head_dim = width):

==========  ==========================================  =========  ========  ===========================
role        which parameters                            init std   Adam LR   forward
==========  ==========================================  =========  ========  ===========================
embedding   under 'embed' (tokens, learned positions)   σ          η         (tokens+positions) · α_in
hidden      two width-like axes (wqkv, wo, MLP mats)    σ/√m       η/m       unchanged
readout     'unembed' (untied readout matrix)           0 (or σ)   η         logits · α_out / m
vector      everything else (biases, norm gains)        as SP      η         unchanged
==========  ==========================================  =========  ========  ===========================

plus, for every parameter, Adam eps ε/m; and attention scores q·k · 8/d_head instead of
q·k/√d_head (microsoft/mup's choice: a function of d_head alone, so it is right whether a
family grows heads or head_dim, and it equals SP at d_head = 64). σ is `init_std`, with GPT-2's
1/√(2L) on residual output projections kept (that is depth, not width). SP is the same table
with every multiplier 1.

Why each entry:
- hidden η/m: Adam's update has entries of size η whatever the gradient's scale, and a matrix
  contracting over a width-m dimension sums m correlated updates, so its output would grow ∝ m.
- readout α_out/m: the readout contracts over width too. Zero init (the default, as the mup
  authors recommend) removes the random O(1/√m) logits at init, so logits are born at zero and
  grow only by learning. `mup_zero_readout: false` keeps SP's width-independent σ instead
  (microsoft/mup's MuReadout default; still muP, the random logits just fade as 1/√m). Measured
  on the baby GPT at width 64 (m = 1): a zero readout first sits on the unigram plateau, as no
  gradient reaches the body until the readout has grown, costing 0.19 nats after 326 steps
  and 0.03 after 1302 (lr 4e-3, 10% warmup), so short runs are better off with `false`.
- ε/m for every parameter, not only hidden matrices: with the 1/m logit multiplier every
  backpropagated gradient (hence √v̂) shrinks as 1/m — measured at widths 64/256/1024 for
  embeddings, hidden matrices, readout, gains and biases alike — so a fixed ε would swamp Adam's
  denominator in wide models and silently lower their LR (the nanoGPT-mup fix).
- weight decay is decoupled and left alone: each step shrinks a decayed parameter by η·λ
  whatever its role (microsoft/mup's MuAdam keeps the same per-step shrink for torch's AdamW by
  multiplying λ by m where it divides the LR by m).

Tied embeddings (MuSharedReadout): the shared matrix keeps the 'embedding' role (init σ, LR η)
and the readout still multiplies logits by α_out/m; it cannot be zero-initialised, so its logits
start at O(1/√m) instead of 0, the known exception the mup authors document.

The scaling is applied exactly once: `transformer.init` rescales a fresh SP init, and
`train.optimizer.build_optimizer` reads the LR/eps multipliers from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
from jax.sharding import PartitionSpec as P

if TYPE_CHECKING:  # the configs of the models that use it (decoder-shaped)
    from lmscale.model.decoder import DecoderConfig as ModelConfig

ROLES = ("embedding", "hidden", "readout", "vector")

# Attention-score numerator under muP: 8/d_head == 1/sqrt(d_head) at d_head = 64 (microsoft/mup).
MUP_ATTN_NUMERATOR = 8.0


@dataclass(frozen=True)
class RoleScaling:
    """Multipliers on SP's init std and Adam LR for one parameter role."""

    init_std: float = 1.0  # 0.0 means zero-initialised
    lr: float = 1.0


def width_mult(cfg: ModelConfig) -> float:
    """m_d = width / mup_base_width under muP; 1 under SP."""
    if cfg.parametrization != "mup":
        return 1.0
    return cfg.width / cfg.mup_base_width


def scalings(cfg: ModelConfig) -> dict[str, RoleScaling]:
    """The table above for this config: role -> multipliers (all 1 under SP)."""
    if cfg.parametrization != "mup":
        return {r: RoleScaling() for r in ROLES}
    m = width_mult(cfg)
    return {
        "embedding": RoleScaling(init_std=1.0, lr=1.0),
        "hidden": RoleScaling(init_std=1.0 / math.sqrt(m), lr=1.0 / m),
        "readout": RoleScaling(init_std=0.0 if cfg.mup_zero_readout else 1.0, lr=1.0),
        "vector": RoleScaling(init_std=1.0, lr=1.0),
    }


def eps_multiplier(cfg: ModelConfig) -> float:
    """Multiplier on Adam's eps, the same for every parameter: 1/m under muP, 1 under SP."""
    return 1.0 / width_mult(cfg)


def _width_like_dims(spec: P) -> int:
    """How many dimensions of a parameter grow with width; heads x head_dim together are one."""
    names = set(spec)
    return ("embed" in names) + ("mlp" in names) + bool(names & {"heads", "head_dim"})


def role_of(path, spec: P) -> str:
    """Role of one parameter from its key path and logical axes (see the module table)."""
    top = getattr(path[0], "key", None)
    if top == "embed":
        return "embedding"
    if top == "unembed":
        return "readout"
    return "hidden" if _width_like_dims(spec) >= 2 else "vector"


def param_roles(axes) -> Any:
    """A tree like `axes` holding each parameter's role name."""
    return jax.tree_util.tree_map_with_path(role_of, axes, is_leaf=lambda s: isinstance(s, P))


def per_leaf(axes, cfg: ModelConfig, field: str) -> Any:
    """A tree like `axes` holding each parameter's `field` multiplier ('init_std' or 'lr')."""
    table = scalings(cfg)
    return jax.tree.map(lambda role: getattr(table[role], field), param_roles(axes))


def rescale_init(params, axes, cfg: ModelConfig):
    """Turn a fresh SP init into this parametrisation's init; the identity (same arrays) under SP."""
    if cfg.parametrization != "mup":
        return params
    mults = per_leaf(axes, cfg, "init_std")
    return jax.tree.map(lambda x, s: x if s == 1.0 else x * s, params, mults)


def attention_scale(cfg: ModelConfig) -> float:
    """Multiplier on q·k: 1/sqrt(d_head) (SP) or 8/d_head (muP)."""
    if cfg.parametrization == "mup":
        return MUP_ATTN_NUMERATOR / cfg.head_dim
    return 1.0 / math.sqrt(cfg.head_dim)


def input_multiplier(cfg: ModelConfig) -> float | None:
    """Multiplier on the embedding output, or None when there is none (SP)."""
    return cfg.mup_input_alpha if cfg.parametrization == "mup" else None


def logit_multiplier(cfg: ModelConfig) -> float | None:
    """Multiplier on the logits, α_out/m under muP, or None when there is none (SP)."""
    return cfg.mup_output_alpha / width_mult(cfg) if cfg.parametrization == "mup" else None
