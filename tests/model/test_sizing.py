import pytest

from lmscale.model.decoder import DecoderConfig
from lmscale.model import count_flops, count_params, ladder


def test_gpt2_small_parameter_count():
    # GPT-2 small (HF / nanoGPT): 124,439,808 parameters; nanoGPT prints 123.65M without wpe.
    cfg = DecoderConfig(vocab_size=50257)
    n = count_params(cfg)
    assert n.total == 124_439_808
    assert n.total - 1024 * 768 == 123_653_376
    assert n.non_embedding == 124_439_808 - 50257 * 768 - 1024 * 768


def test_flops_match_nanogpt_estimate_mfu():
    # nanoGPT: N = params minus position embeddings; flops/token = 6N + 12*L*H*Q*T
    cfg = DecoderConfig(vocab_size=50257)
    f = count_flops(cfg)
    N = 123_653_376
    assert f.per_token == 6 * N + 12 * 12 * 12 * 64 * 1024
    assert f.per_token_causal == 6 * N + 6 * 12 * 12 * 64 * 1024
    assert "6*N_matmul" in f.convention


def test_baby_gpt_count():
    # nanoGPT prints 0.80M parameters for the baby GPT (vocab 65, no bias, excluding wpe)
    cfg = DecoderConfig(depth=4, width=128, heads=4, context=64, vocab_size=65, bias=False)
    n = count_params(cfg)
    assert n.total - 64 * 128 == 795_904


def test_untied_swiglu_rmsnorm_count():
    cfg = DecoderConfig(depth=3, width=64, heads=4, context=32, vocab_size=100, norm="rmsnorm",
                      positions="rope", activation="swiglu", tie_embeddings=False, bias=False, mlp_ratio=2.0)
    per_layer = 2 * 64 + 4 * 64 * 64 + 3 * 64 * 128
    assert count_params(cfg).total == 3 * per_layer + 64 + 2 * 100 * 64
    assert count_params(cfg).non_embedding == 3 * per_layer + 64


def test_ladder_from_depth_dial():
    models = ladder(depths=[2, 4, 6], aspect_ratio=64, head_dim=64, vocab_size=100, context=128)
    assert [(m.depth, m.width, m.heads) for m in models] == [(2, 128, 2), (4, 256, 4), (6, 384, 6)]
    sizes = [count_params(m).non_embedding for m in models]
    assert sizes == sorted(sizes)
    # nanochat rounds width up to a multiple of head_dim
    assert ladder(depths=[3], aspect_ratio=64, head_dim=128, vocab_size=10)[0].width == 256
    explicit = ladder(shapes=[{"depth": 1, "width": 32, "heads": 2}], vocab_size=10, context=8)
    assert explicit[0].width == 32
    with pytest.raises(ValueError):
        ladder()
