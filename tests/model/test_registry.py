"""The model seam: a new architecture is one module plus its config class, found by the registry,
validated strictly, trained and resumed through the CLI with no edit anywhere in lmscale."""

import json
import os
import sys
from pathlib import Path

import jax
import pytest

from lmscale.errors import LmscaleError
from lmscale.model import registry
from lmscale.model.base import Model, ModelSpec
from lmscale.train.config import validate_config
from tests.helpers import run_cli, tiny_config, write_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_builtin_models_are_registered_with_counts_that_match_their_shapes():
    from lmscale.model.decoder import DecoderConfig

    assert {"decoder", "icl_gpt", "icl_lsa"} <= set(registry.kinds())
    for cfg in (DecoderConfig(depth=2, width=32, heads=2, context=8, vocab_size=11),
                DecoderConfig(depth=1, width=48, heads=4, context=8, vocab_size=13, activation="swiglu", bias=False,
                              tie_embeddings=False, positions="rope", norm="rmsnorm")):
        model = registry.get_model(cfg)
        model.check_counts()
        assert jax.tree.structure(model.shapes) == jax.tree.structure(jax.tree.map(lambda _: 0, model.axes,
                                                                                   is_leaf=lambda x: hasattr(x, "index")))


def test_a_stale_closed_form_count_is_caught(monkeypatch):
    from lmscale.model.decoder import Decoder, DecoderConfig
    from lmscale.model.sizing import ParamCount

    model = Decoder(DecoderConfig(depth=1, width=16, heads=2, context=4, vocab_size=7))
    real = model.param_count()
    monkeypatch.setattr(Decoder, "param_count", lambda self: ParamCount(real.total - 16, real.non_embedding - 16,
                                                                       real.embedding))
    with pytest.raises(AssertionError, match="param_count"):
        model.check_counts()


def test_registration_rules():
    class NoKind(Model):
        Config = ModelSpec

    with pytest.raises(TypeError, match="kind"):
        registry.register(NoKind)

    class Cfg(ModelSpec):
        kind: str = "other"

    class Mismatch(Model):
        kind = "mismatch"
        Config = Cfg

    with pytest.raises(TypeError, match="must default to 'mismatch'"):
        registry.register(Mismatch)


def test_a_module_added_under_model_is_discovered(tmp_path, monkeypatch):
    """Discovery imports every module of the lmscale.model package: a new file there is enough."""
    import lmscale.model as pkg

    (tmp_path / "toy_unigram.py").write_text(
        "from typing import Literal\n"
        "import jax.numpy as jnp\n"
        "from lmscale.model.base import Init, Model, ModelSpec\n"
        "from lmscale.model.registry import register\n"
        "class UnigramConfig(ModelSpec):\n"
        "    kind: Literal['toy_unigram'] = 'toy_unigram'\n"
        "    vocab_size: int = 5\n"
        "@register\n"
        "class Unigram(Model):\n"
        "    kind = 'toy_unigram'\n"
        "    Config = UnigramConfig\n"
        "    def declare(self, key):\n"
        "        return {'logits': Init.zeros((self.cfg.vocab_size,), ('vocab',))}\n"
        "    def apply(self, params, tokens, *, rng=None):\n"
        "        return jnp.broadcast_to(params['logits'], tokens.shape + params['logits'].shape)\n"
        "    def loss(self, params, batch, rng=None):\n"
        "        return -jnp.mean(self.apply(params, batch)[..., 0]), {}\n"
    )
    monkeypatch.setattr(pkg, "__path__", [*pkg.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    monkeypatch.delitem(sys.modules, "lmscale.model.toy_unigram", raising=False)
    assert "toy_unigram" in registry.kinds()
    cfg = validate_config({"model": {"kind": "toy_unigram", "vocab_size": 9}})
    assert type(cfg.model).__name__ == "UnigramConfig" and cfg.model.vocab_size == 9
    with pytest.raises(LmscaleError, match="unknown key 'model.depth'"):
        validate_config({"model": {"kind": "toy_unigram", "depth": 2}})  # its own strict config
    assert registry.get_model(cfg.model).param_count().total == 9


def test_a_plugin_model_trains_and_resumes_through_the_cli(text_corpus, tmp_path):
    env = {"LMSCALE_PLUGINS": "tests.model.toy_bigram",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    raw = tiny_config(text_corpus, **{"train.steps": 20, "train.optimizer.lr": 3e-2})
    raw["model"] = {"kind": "toy_bigram", "context": 16}
    cfg = write_yaml(tmp_path / "bigram.yaml", raw)
    run = tmp_path / "run"
    proc = run_cli("train", cfg, "--run-dir", run, "--no-progress", env_extra=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "done" and summary["step"] == 20
    evals = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5  # it learns bigrams
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "data.json", "metrics.jsonl",
                                                    "summary.json", "tokenizer.json"]
    V = json.loads((run / "data.json").read_text())["tokenizer"]["vocab_size"]
    assert summary["params_total"] == V * V + V
    info = run_cli("info", run, env_extra=env)
    assert info.returncode == 0 and "toy_bigram" in info.stdout, info.stderr
    again = run_cli("train", run, "--no-progress", env_extra=env)  # finished: nothing to do
    assert again.returncode == 0 and "already finished" in again.stderr
    # Without the plugin the kind is unknown: one line naming it and the registered kinds.
    bad = run_cli("train", cfg, "--run-dir", tmp_path / "other", "--no-progress")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        bad.stderr.strip()] and "unknown model.kind 'toy_bigram'; expected one of decoder" in bad.stderr
