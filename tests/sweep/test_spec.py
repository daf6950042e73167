"""Sweep spec expansion: token budgets, IsoFLOP grids, WSD branches, grid axes, errors."""

from __future__ import annotations


import pytest

from lmscale.errors import LmscaleError
from lmscale.model.sizing import count_flops, count_params
from lmscale.sweep.spec import expand, parse_spec
from lmscale.model.decoder import DecoderConfig

VOCAB = 40


def _spec(**kw):
    raw = {
        "name": "s",
        "base": {
            "data": {"corpus": "x.txt"},
            "model": {"context": 16, "bias": False},
            "train": {"batch_size": 4, "schedule": {"kind": "wsd", "warmup": 2, "decay_fraction": 0.25}},
        },
        "ladder": {"shapes": [{"depth": 1, "width": 16, "heads": 2}, {"depth": 2, "width": 32, "heads": 2}]},
        "tokens": {"absolute": [640, 1280]},
    }
    raw.update(kw)
    return parse_spec(raw, source="(test)")


def test_absolute_tokens_realised_in_whole_steps_with_exact_counts():
    spec, base = _spec(tokens={"absolute": [1000, 2000]})
    runs = expand(spec, base, VOCAB)
    assert len(runs) == 4
    for r in runs:
        assert r.tokens == r.steps * 4 * 16  # batch x context
        assert abs(r.tokens - (1000 if r.steps < 20 else 2000)) <= 32
        m = DecoderConfig(**r.config["model"], vocab_size=VOCAB) if "vocab_size" not in r.config["model"] else None
        n = count_params(m)
        assert (r.n_params, r.n_nonembed) == (n.total, n.non_embedding)
        assert r.flops == pytest.approx(count_flops(m).per_token * r.tokens)
        assert r.flops_6n == pytest.approx(6 * n.total * r.tokens)
    assert [r.order for r in runs] == list(range(4))
    assert runs[0].n_params < runs[-1].n_params  # cheapest jobs first


def test_per_param_multiplies_total_params():
    spec, base = _spec(tokens={"per_param": [20]}, branches="none")
    for r in expand(spec, base, VOCAB):
        assert r.tokens / r.n_params == pytest.approx(20, rel=0.05)


def test_isoflop_gives_d_equals_c_over_flops_per_token_and_filters_ratio():
    shapes = [{"depth": d, "width": w, "heads": 2} for d, w in [(1, 16), (2, 32), (3, 48), (4, 64)]]
    spec, base = _spec(ladder={"shapes": shapes}, tokens={"isoflop": {"budgets": [2e10, 4e10], "flops": "6N"}}, branches="none")
    runs = expand(spec, base, VOCAB)
    assert len(runs) == 8
    for r in runs:
        assert r.flops_6n == pytest.approx(r.budget, rel=0.05)  # realised C within step rounding
    spec, base = _spec(ladder={"shapes": shapes}, branches="none",
                       tokens={"isoflop": {"budgets": [2e10], "tokens_per_param": [5, 200]}})
    kept = expand(spec, base, VOCAB)
    assert 0 < len(kept) < 4
    assert all(5 <= r.tokens / r.n_params * (r.budget / r.flops) <= 200 * 1.1 for r in kept)


def test_wsd_branches_share_a_trunk_and_fork_at_their_decay_start():
    spec, base = _spec(tokens={"absolute": [640, 1280, 2560]}, branches="wsd")
    runs = expand(spec, base, VOCAB)
    by_shape = {}
    for r in runs:
        by_shape.setdefault(r.config["model"]["width"], []).append(r)
    for group in by_shape.values():
        trunk = max(group, key=lambda r: r.steps)
        assert trunk.fork_step is None and trunk.trunk == trunk.run_id
        assert len({r.job for r in group}) == 1
        for r in group:
            if r is trunk:
                continue
            assert r.trunk == trunk.run_id
            assert r.fork_step == r.steps - round(0.25 * r.steps)


def test_grid_axes_and_seeds_multiply_runs_and_name_them():
    spec, base = _spec(grid={"train.optimizer.lr": [1e-3, 3e-3]}, seeds=[0, 1], branches="none")
    runs = expand(spec, base, VOCAB)
    assert len(runs) == 2 * 2 * 2 * 2
    assert len({r.run_id for r in runs}) == len(runs)
    assert {r.config["train"]["optimizer"]["lr"] for r in runs} == {1e-3, 3e-3}
    assert any("lr0.003" in r.run_id for r in runs)


@pytest.mark.parametrize("patch, fragment", [
    ({"tokens": {"absolute": [100], "per_param": [20]}}, "exactly one of"),
    ({"tokens": {"absolute": [-5]}}, "positive"),
    ({"ladder": {"depths": [2], "shapes": [{"depth": 1}]}}, "exactly one of"),
    ({"ladder": {"depths": []}}, "at least one"),
    ({"seeds": [1, 1]}, "distinct"),
    ({"grid": {"data.corpus": ["a", "b"]}}, "one corpus"),
    ({"bogus": 1}, "unknown key 'bogus'"),
])
def test_bad_specs_are_one_line_errors(patch, fragment):
    with pytest.raises(LmscaleError) as e:
        _spec(**patch)
    assert fragment in str(e.value) and "\n" not in str(e.value)


def test_branches_need_a_wsd_schedule():
    spec, base = _spec(branches="wsd")
    base["train"]["schedule"]["kind"] = "cosine"
    with pytest.raises(LmscaleError, match="wsd"):
        expand(spec, base, VOCAB)


def test_budgets_rounding_to_the_same_steps_are_rejected():
    spec, base = _spec(tokens={"absolute": [640, 641]}, branches="none")
    with pytest.raises(LmscaleError, match="duplicate"):
        expand(spec, base, VOCAB)


def test_invalid_member_config_names_the_shape():
    spec, base = _spec(ladder={"shapes": [{"depth": 1, "width": 30, "heads": 4}]})
    with pytest.raises(LmscaleError, match="width"):
        expand(spec, base, VOCAB)


def test_the_shipped_specs_set_no_key_the_expansion_overrides():
    from pathlib import Path

    from lmscale.sweep.spec import MAX_RUNS, load_spec

    root = Path(__file__).resolve().parents[2]
    files = [root / "src/lmscale/sweep/demo.yaml", root / "src/lmscale/sweep/emergence-demo.yaml",
             *sorted((root / "configs/sweeps").glob("*.yaml")), root / "configs/emergence/ladder.yaml"]
    for f in files:
        spec, _ = load_spec(f)
        assert 0 < spec.max_runs() <= MAX_RUNS, f


def test_keys_beside_the_expansions_own_are_accepted():
    spec, _ = _spec(grid={"model.context": [16, 32]}, set={"train": {"schedule": {"kind": "wsd"}}, "model.bias": True})
    assert spec.max_runs() == 2 * 2 * 2


def test_run_ids_too_long_for_a_file_name_are_refused():
    spec, base = _spec(family="f" * 190, branches="none")
    with pytest.raises(LmscaleError, match="expected at most 200"):
        expand(spec, base, VOCAB)
