"""A toy architecture registered from outside lmscale, to show that a new model is one module and
its config: a bigram language model (next-token logits from the current token alone).

Loaded by `lmscale` through ``LMSCALE_PLUGINS=tests.model.toy_bigram``; nothing in lmscale names it.
"""

from typing import Literal

import jax
import jax.numpy as jnp
from pydantic import Field

from lmscale.model.base import Init, Model, ModelSpec
from lmscale.model.registry import register


class BigramConfig(ModelSpec):
    kind: Literal["toy_bigram"] = "toy_bigram"
    vocab_size: int | None = Field(None, gt=0)
    context: int = Field(16, gt=0, description="window length the data pipeline cuts")
    init_std: float = Field(0.02, gt=0)


@register
class Bigram(Model):
    kind = "toy_bigram"
    Config = BigramConfig

    def declare(self, key):
        V = self.cfg.vocab_size
        return {"table": {"logits": Init(key).normal("table.logits", (V, V), ("vocab", None), self.cfg.init_std),
                          "bias": Init.zeros((V,), (None,))}}

    def apply(self, params, tokens, *, rng=None):
        return jnp.take(params["table"]["logits"], tokens, axis=0) + params["table"]["bias"]

    def _token_losses(self, params, windows):
        logits = self.apply(params, windows[:, :-1])
        picked = jnp.take_along_axis(logits, windows[:, 1:, None], axis=-1)[..., 0]
        return jax.nn.logsumexp(logits, axis=-1) - picked

    def loss(self, params, batch, rng=None):
        return self._token_losses(params, batch).mean(), {}

    def sequence_losses(self, params, batch):
        return self._token_losses(params, batch).mean(axis=-1)
