import pytest

from lmscale.config import apply_overrides, config_diff
from lmscale.train.config import RunConfig, load_config, validate_config
from lmscale.errors import LmscaleError


def test_defaults_are_gpt2_small():
    cfg = RunConfig()
    m = cfg.model
    assert (m.depth, m.width, m.heads, m.context, m.mlp_ratio) == (12, 768, 12, 1024, 4.0)
    assert (m.norm, m.positions, m.activation, m.tie_embeddings) == ("layernorm", "learned", "gelu", True)


@pytest.mark.parametrize(
    "raw, needle",
    [
        ({"model": {"widht": 64}}, "unknown key 'model.widht'"),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"model": {"width": "wide"}}, "model.width='wide'"),
        ({"model": {"width": -8}}, "model.width=-8"),
        ({"model": {"width": 100, "heads": 3}}, "model.width=100 is not divisible by model.heads=3"),
        ({"train": {"batch_size": 10, "grad_accum": 4}}, "train.batch_size=10 is not divisible by train.grad_accum=4"),
        ({"model": {"dropout": 1.5}}, "model.dropout=1.5"),
        ({"mesh": {"data": 0}}, "mesh.data=0"),
        ({"train": {"steps": 10}}, "train.schedule.warmup=100 exceeds train.steps=10"),
        ({"seed": -1}, "seed=-1"),
        ({"name": "../escape"}, "name='../escape'"),
        ({"train": {"optimizer": {"lr": float("inf")}}}, "train.optimizer.lr=inf"),
        ({"model": {"mlp_ratio": float("inf")}}, "model.mlp_ratio=inf"),
        ({"model": {"kind": "transfomer"}}, "unknown model.kind 'transfomer'; expected one of decoder, "),
        ({"model": {"kind": "decoder", "widht": 64}}, "unknown key 'model.widht'"),
        ({"model": "gpt2"}, "the model section is a str; expected a mapping"),
        ({"mesh": {"rules": {"embd": ["fsdp"]}}}, "mesh.rules names logical axis 'embd'; expected one of "),
        ({"mesh": {"rules": {"mlp": ["tensr"]}}}, "mesh.rules.mlp=['tensr']; expected distinct mesh axes from data, fsdp, tensor"),
        ({"mesh": {"rules": {"mlp": "tensor"}}}, "mesh.rules.mlp='tensor'; expected a list of mesh axes"),
    ],
)
def test_bad_values_are_one_line_errors(raw, needle):
    with pytest.raises(LmscaleError) as exc:
        validate_config(raw, source="x.yaml")
    msg = str(exc.value)
    assert needle in msg
    assert "\n" not in msg


def test_model_kind_selects_the_config_class_and_defaults_to_the_decoder():
    from lmscale.model.decoder import DecoderConfig
    from lmscale.model.registry import kinds

    assert type(RunConfig().model) is DecoderConfig and RunConfig().model.kind == "decoder"
    cfg = validate_config({"model": {"depth": 3}})
    assert type(cfg.model) is DecoderConfig and cfg.model.depth == 3
    assert cfg.to_dict()["model"]["kind"] == "decoder" and cfg.to_dict()["model"]["depth"] == 3  # all fields dumped
    assert validate_config(cfg.to_dict()) == cfg  # round trip through the resolved record
    assert {"decoder", "icl_gpt", "icl_lsa"} <= set(kinds())


def test_sharding_rules_merge_onto_the_defaults():
    from lmscale.parallel.rules import DEFAULT_RULES

    cfg = validate_config({"mesh": {"rules": {"mlp": ["fsdp", "tensor"], "activation_embed": ["tensor"]}}})
    assert cfg.mesh.rules["mlp"] == ("fsdp", "tensor") and cfg.mesh.rules["activation_embed"] == ("tensor",)
    assert {k: v for k, v in cfg.mesh.rules.items() if k not in ("mlp", "activation_embed")} == {
        k: v for k, v in DEFAULT_RULES.items() if k not in ("mlp", "activation_embed")}
    assert RunConfig().mesh.rules == DEFAULT_RULES
    # --set reaches one rule
    raw = apply_overrides({}, ["mesh.rules.heads=[]"])
    assert validate_config(raw).mesh.rules["heads"] == ()


def test_overrides_parse_yaml_scalars_and_nest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: a\ntrain:\n  steps: 10\n  schedule:\n    warmup: 2\n")
    cfg = load_config(path, ["train.steps=7", "train.optimizer.lr=1e-3", "model.tie_embeddings=false"])
    assert cfg.train.steps == 7
    assert cfg.train.optimizer.lr == pytest.approx(1e-3)  # YAML reads '1e-3' as a string; pydantic converts
    assert cfg.model.tie_embeddings is False


def test_override_errors():
    with pytest.raises(LmscaleError, match="expected key=value"):
        apply_overrides({}, ["train.steps"])
    with pytest.raises(LmscaleError, match="is a value, not a section"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_missing_config_file(tmp_path):
    with pytest.raises(LmscaleError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("model: [1, 2\n", "not valid YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("train:\n  steps: 10\ntrain:\n  steps: 20\n", "duplicate key 'train'"),
    ],
)
def test_malformed_config_files(tmp_path, text, needle):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(LmscaleError, match=needle):
        load_config(path)


def test_config_diff_names_changed_keys():
    a = RunConfig().to_dict()
    b = RunConfig.model_validate({"train": {"steps": 300}}).to_dict()
    assert config_diff(a, b) == ["train.steps (5000 -> 300)"]


def test_shipped_configs_match_nanogpt(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    baby = load_config(root / "baby-gpt.yaml")
    m, t = baby.model, baby.train
    assert (m.depth, m.heads, m.width, m.context, m.dropout) == (4, 4, 128, 64, 0.0)
    assert (t.batch_size, t.steps, t.optimizer.lr, t.optimizer.beta2) == (12, 2000, 1e-3, 0.99)
    assert (t.schedule.warmup, t.schedule.min_lr, baby.data.tokenizer.kind) == (100, 1e-4, "char")
    sc = load_config(root / "shakespeare-char.yaml")
    assert (sc.model.depth, sc.model.heads, sc.model.width, sc.model.context, sc.model.dropout) == (6, 6, 384, 256, 0.2)
    assert (sc.train.batch_size, sc.train.steps) == (64, 5000)


def test_numeric_override_of_a_string_field_stays_a_string(tmp_path):
    ok = tmp_path / "ok.yaml"
    ok.write_text("name: a\n")
    assert load_config(ok, ["data.corpus=2024"]).data.corpus == "2024"
