"""Probes: closed-form R², a linear probe recovers a linear code, an MLP probe a nonlinear one."""

import numpy as np
import pytest

from lmscale.icl.probe import gradient_alignment, linear_probe, mlp_probe, probe_model, probe_targets, r2
from lmscale.icl.train import load_run


def test_r2_closed_form():
    t = np.array([[1.0], [2.0], [3.0]])
    assert r2(t, t) == 1.0
    assert r2(np.full_like(t, 2.0), t) == 0.0


def test_linear_and_mlp_probes():
    rng = np.random.default_rng(0)
    h = rng.normal(size=(2, 1200, 6))
    lin = h[0] @ rng.normal(size=(6, 2))  # layer 0 encodes the target linearly
    quad = h[1][:, :2] ** 2  # layer 1 only nonlinearly
    tgt = np.concatenate([lin[:, :1], quad[:, :1]], 1)
    p_lin = linear_probe(h[:, :1000], tgt[:1000], h[:, 1000:])
    assert r2(p_lin[0][:, :1], tgt[1000:, :1]) > 0.999
    assert r2(p_lin[1][:, 1:], tgt[1000:, 1:]) < 0.05
    p_mlp = mlp_probe(h[:, :1000].astype(np.float32), tgt[:1000], h[:, 1000:].astype(np.float32), hidden=64, steps=300, lr=1e-2)
    assert r2(p_mlp[1][:, 1:], tgt[1000:, 1:]) > 0.8


def test_targets_and_model_probes(tiny_run):
    xs = np.random.default_rng(1).normal(size=(5, 4, 2))
    w = np.array([1.0, -2.0])
    ys = xs @ w
    t = probe_targets(xs, ys, 3)
    np.testing.assert_allclose(t["w_ols"], np.tile(w, (5, 1)), atol=1e-8)
    np.testing.assert_allclose(t["xty"][0], xs[0, :3].T @ ys[0, :3])
    cfg, run = tiny_run
    cfg = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"probe_prompts": 64})})
    params = load_run(run).params
    rows = probe_model(params, cfg, ns=[2], mlp_steps=5)
    assert len(rows) == 3 * 2 * 2  # layers (read-in + 2 blocks) x targets x probe kinds
    assert {(r["layer"], r["target"], r["probe"]) for r in rows} == {
        (layer, t, p) for layer in (0, 1, 2) for t in ("xty", "w_ols") for p in ("linear", "mlp")}
    align = gradient_alignment(params, cfg, prompts=16)
    assert [a["n"] for a in align] == [1, 2, 3]
    # Each cosine, recomputed without autodiff: central differences of the prediction at x_n in x_n
    # (float64 inputs), against the min-norm least-squares weights of the n pairs before it.
    from lmscale.icl.evaluate import eval_batch, predict_batched

    b = eval_batch(cfg, n=16, stream=4)
    xs, ys = np.asarray(b.xs, np.float64), np.asarray(b.ys, np.float64)
    h = 1e-3
    for a in align:
        n = a["n"]
        g = np.zeros((16, 2))
        for j in range(2):
            up, down = xs.copy(), xs.copy()
            up[:, n, j] += h
            down[:, n, j] -= h
            g[:, j] = (predict_batched(params, up, ys, cfg)[:, n] - predict_batched(params, down, ys, cfg)[:, n]) / (2 * h)
        w = np.stack([np.linalg.pinv(x[:n]) @ y[:n] for x, y in zip(xs, ys)])
        cos = np.mean(np.sum(g * w, -1) / (np.linalg.norm(g, axis=-1) * np.linalg.norm(w, axis=-1)))
        assert a["cos_w_ols"] == pytest.approx(cos, abs=5e-3), (n, a, cos)
        assert a["cos_w_true"] == pytest.approx(np.mean(np.sum(g * np.asarray(b.w), -1) / (
            np.linalg.norm(g, axis=-1) * np.linalg.norm(np.asarray(b.w), axis=-1))), abs=5e-3)
