"""The muP coordinate check (widths 32-256, 3 Adam steps, real tokens): flat under muP, growing under SP."""

import numpy as np
import pytest
from typer.testing import CliRunner

from lmscale.errors import LmscaleError
from lmscale.mup import coord_check as coord_check_module
from lmscale.mup.cli import mup_app
from lmscale.mup.coord_check import FLAT_TOL, coord_check
from lmscale.train.config import validate_config
from tests.helpers import tiny_config, write_yaml

WIDTHS = (32, 64, 128, 256)
LR = 3e-3  # 3x baby GPT's peak LR, no warmup: large enough that SP's growth shows after one step


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The same small English-like corpus as conftest's `text_corpus`, shared by the module."""
    words = ("the king queen lord lady sword crown night day love death heart blood fair foul "
             "good sweet noble gentle brave honest true false speak hear thee thou thy").split()
    rng = np.random.default_rng(0)
    lines = [" ".join(rng.choice(words, int(rng.integers(3, 9)))).capitalize() + ("." if i % 3 else ",")
             for i in range(2400)]
    path = tmp_path_factory.mktemp("coord") / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def base_cfg(corpus):
    # depth 2, context 32, batch 8; heads fixed at 4, so head_dim grows 8 -> 64 with width.
    return validate_config(tiny_config(corpus, **{"model.heads": 4, "model.tie_embeddings": False}))


@pytest.fixture(scope="module")
def results(base_cfg):
    return {p: coord_check(base_cfg, WIDTHS, steps=3, lr=LR, parametrization=p) for p in ("mup", "sp")}


def test_mup_activations_are_flat_in_width(results):
    """Measured max |log-log slope| over all activations and steps 1-3: 0.14-0.20 (seeds 0-4; the
    worst is usually the logits after one step, a finite-width effect that shrinks with width)."""
    res = results["mup"]
    assert res.sizes["logits"].shape == (4, len(WIDTHS))
    np.testing.assert_array_equal(res.sizes["logits"][0], 0.0)  # zero readout: logits born at 0
    assert res.is_flat(FLAT_TOL), {k: np.round(v, 3).tolist() for k, v in res.slopes().items()}
    assert np.isfinite(res.losses).all()


def test_sp_activations_grow_with_width(results):
    """Measured under SP: max slope 1.5-1.8, logits slope >= 0.56 at every step after the first update."""
    res = results["sp"]
    slopes = res.slopes()
    assert not res.is_flat(FLAT_TOL)
    assert res.max_abs_slope(1) > 1.0
    assert (slopes["logits"][1:] > 0.4).all(), slopes["logits"]
    for name in ("attn.0", "mlp.1", "residual.1"):
        assert (slopes[name][1:] > 0.5).all(), (name, slopes[name])


def test_result_table(results):
    res = results["mup"]
    rows = res.rows()
    assert len(rows) == len(res.activations) * (res.steps + 1) * len(WIDTHS)
    assert res.activations == ["embedding", "attn.0", "mlp.0", "residual.0", "attn.1", "mlp.1", "residual.1", "logits"]
    assert {r["parametrization"] for r in rows} == {"mup"} and rows[0].keys() == {
        "parametrization", "activation", "step", "width", "mean_abs"}


def test_bad_arguments_name_the_value(base_cfg):
    with pytest.raises(LmscaleError, match="width 30 is not divisible by model.heads=4"):
        coord_check(base_cfg, (32, 30), steps=1)
    with pytest.raises(LmscaleError, match="steps=0"):
        coord_check(base_cfg, (32, 64), steps=0)
    with pytest.raises(LmscaleError, match="'ntk'"):
        coord_check(base_cfg, (32, 64), parametrization="ntk")


def test_cli_writes_table_csv_and_figure(corpus, results, tmp_path, monkeypatch):
    """The command's own work (arguments, table, files); the check itself is reused from `results`."""
    calls = []

    def fake(cfg, widths, steps, lr, parametrization, log=None):
        calls.append((tuple(widths), steps, lr, parametrization))
        return results[parametrization]

    monkeypatch.setattr(coord_check_module, "coord_check", fake)
    cfg = write_yaml(tmp_path / "c.yaml", tiny_config(corpus, **{"model.heads": 4, "model.tie_embeddings": False}))
    out = tmp_path / "cc"
    r = CliRunner().invoke(mup_app, ["coord-check", str(cfg), "--widths", "32,64,128,256", "--steps", "3",
                                     "--lr", "3e-3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert calls == [(WIDTHS, 3, 3e-3, "mup"), (WIDTHS, 3, 3e-3, "sp")]
    assert "mup: flat in width" in r.output and "sp: NOT flat in width" in r.output
    for name in ("coord_check.png", "coord_check.csv", "coord_check_slopes.csv"):
        assert (out / name).is_file() and str(out / name) in r.output.replace("\n", "")
    assert "slope of log mean |x| vs log width" in r.output and "residual.1" in r.output
    header = (out / "coord_check.csv").read_text().splitlines()[0]
    assert header == "parametrization,activation,step,width,mean_abs"
    bad = CliRunner().invoke(mup_app, ["coord-check", str(cfg), "--widths", "32,abc"])
    assert isinstance(bad.exception, LmscaleError) and "'abc' is not an integer" in str(bad.exception)
    bad = CliRunner().invoke(mup_app, ["coord-check", str(cfg), "--widths", "32,30"])
    assert isinstance(bad.exception, LmscaleError) and "width 30" in str(bad.exception)
