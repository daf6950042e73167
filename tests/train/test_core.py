"""The training core itself: hook schedule, ensembles of one, micro-batch averaging, a member that
diverges while the others train on, and in-memory runs."""

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmscale.errors import DivergedError
from lmscale.model.decoder import DecoderConfig
from lmscale.model.registry import get_model
from lmscale.parallel.mesh import MeshConfig, make_mesh
from lmscale.train import core
from lmscale.train.config import validate_config
from lmscale.train.core import Checkpoints, FnHook, Hook, Member, StopOnDivergence, TrainLog, add_hook, fit
from lmscale.train.optimizer import build_optimizer
from lmscale.train.step import build_trainer, member_keys, shard_batch

V, T, B = 13, 8, 4
MESH = MeshConfig(data=1)


@functools.cache  # one compiled step per variant for the whole module
def tiny_trainer(grad_accum=1, members=1, loss=None, **model_kw):
    cfg = validate_config({"model": {"depth": 1, "width": 16, "heads": 2, "context": T, "vocab_size": V, **model_kw},
                           "train": {"steps": 10, "batch_size": B, "grad_accum": grad_accum,
                                     "schedule": {"kind": "constant", "warmup": 0}}})
    model = get_model(cfg.model)
    return build_trainer(model, build_optimizer(cfg.train, model.axes, cfg.model), make_mesh(MESH, jax.devices()[:1]),
                         rules=MESH.rules, batch_size=B, grad_accum=grad_accum, members=members, loss=loss)


def batches(seed):
    def at(step):
        return np.random.default_rng([seed, step]).integers(0, V - 1, (B, T + 1)).astype(np.int32)

    return at


class Recorder(Hook):
    def __init__(self, every):
        self.every, self.calls = every, []

    def start(self, run):
        self.calls.append(("start", run.step))

    def step(self, run):
        self.calls.append(("step", run.step))

    def end(self, run):
        self.calls.append(("end", run.step))

    def pause(self, run):
        self.calls.append(("pause", run.step))

    def close(self, run):
        self.calls.append(("close", run.step))


def test_hooks_run_every_n_steps_then_end_or_pause():
    rec = Recorder(every=3)
    fit(tiny_trainer(), [Member(seed=0, batches=batches(0))], 10, [rec])
    assert rec.calls == [("start", 0), ("step", 3), ("step", 6), ("step", 9), ("end", 10), ("close", 10)]
    rec = Recorder(every=3)
    fit(tiny_trainer(), [Member(seed=0, batches=batches(0))], 10, [rec], stop_at=7)
    assert rec.calls == [("start", 0), ("step", 3), ("step", 6), ("pause", 7), ("close", 7)]


def test_add_hook_levanter_style_and_in_memory_runs_are_deterministic():
    def run_once():
        losses, hooks = [], []
        add_hook(hooks, lambda run: losses.append(float(run.metrics["loss"][0])), every=1, at_end=True)
        fit(tiny_trainer(dropout=0.1), [Member(seed=5, batches=batches(5))], 6, hooks)
        return losses

    a, b = run_once(), run_once()
    assert len(a) == 6 and a == b and a[-1] < a[0]


def program(hlo: str) -> str:
    """A compiled module's text without its debug information (source files, Python stack frames)."""
    import re

    keep = [ln for ln in hlo.splitlines()
            if not re.match(r"^(\d+ |FileNames|FunctionNames|FileLocations|StackFrames)", ln)]
    return re.sub(r",? metadata=\{[^{}]*\}", "", "\n".join(keep))


def test_a_single_run_compiles_to_the_program_of_an_ensemble_member(monkeypatch, text_corpus, tmp_path):
    """`train(cfg)` is `train_ensemble([cfg])`; and each member of a CPU ensemble (c = 1) runs that
    same executable: the compiled step's HLO is the same text."""
    from lmscale.train import lm
    from tests.helpers import tiny_config

    built = []
    real = lm.build_trainer

    def spy(*a, **kw):
        built.append(real(*a, **kw))
        return built[-1]

    monkeypatch.setattr(lm, "build_trainer", spy)
    cfg = validate_config(tiny_config(text_corpus, **{"train.steps": 2, "train.eval_every": 2, "train.schedule.warmup": 1}))
    lm.train(cfg, tmp_path / "single")
    lm.train_ensemble([cfg, cfg.model_copy(update={"seed": 4, "name": "other"})], [tmp_path / "a", tmp_path / "b"])
    lm.train_ensemble([cfg, cfg.model_copy(update={"seed": 4, "name": "other"})], [tmp_path / "c", tmp_path / "d"],
                      vmap_members=2)
    texts = []
    for tr in built:
        keys = member_keys([0] * tr.members)
        state = jax.eval_shape(tr.init_state, keys[0])
        batch = shard_batch(tr, np.zeros((tr.members, cfg.train.batch_size, cfg.model.context + 1), np.int32))
        texts.append(program(tr.train_step.lower(state, batch, jnp.int32(0), keys[1]).compile().as_text()))
    assert [tr.members for tr in built] == [1, 1, 2]
    assert texts[0] == texts[1]
    assert texts[2] != texts[0]  # a vmapped chunk of two is another program


def test_micro_batches_are_averaged_not_summed():
    """grad_accum=2 on the same rows is the same optimizer step as one batch: the mean of the
    micro-batch gradients is the gradient of the mean loss (a sum would double the gradient norm)."""
    out = []
    for accum in (1, 2):
        tr = tiny_trainer(grad_accum=accum)
        init_keys, roots = member_keys([3])
        state = tr.init_state(init_keys)
        state, m = tr.train_step(state, shard_batch(tr, batches(3)(0)[None]), jnp.int32(0), roots)
        out.append((float(m["loss"][0]), float(m["grad_norm"][0]), jax.device_get(state["params"])))
    (l1, g1, p1), (l2, g2, p2) = out
    assert l2 == pytest.approx(l1, rel=1e-6) and g2 == pytest.approx(g1, rel=1e-6)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_gradient_clipping_clips_and_the_reported_norm_is_the_unclipped_one():
    """One step with grad_clip = 1e-3 (far below the gradient's norm) and Adam's eps = 1e-2 (so the
    update is nearly proportional to the gradient, and clipping shows in it 100-fold): the step
    reports the gradient's norm before clipping and moves the parameters exactly as AdamW on the
    clipped gradient does."""
    import optax

    cfg = validate_config({"model": {"depth": 1, "width": 16, "heads": 2, "context": T, "vocab_size": V},
                           "train": {"steps": 10, "batch_size": B, "schedule": {"kind": "constant", "warmup": 0},
                                     "optimizer": {"lr": 1e-2, "grad_clip": 1e-3, "eps": 1e-2, "weight_decay": 0.0}}})
    model = get_model(cfg.model)
    tr = build_trainer(model, build_optimizer(cfg.train, model.axes, cfg.model), make_mesh(MESH, jax.devices()[:1]),
                       rules=MESH.rules, batch_size=B)
    init_keys, roots = member_keys([3])
    state = tr.init_state(init_keys)
    p0 = jax.device_get(state["params"])
    batch = batches(3)(0)
    grads = jax.jit(jax.grad(lambda p: model.loss(p, jnp.asarray(batch))[0]))(p0)
    norm = float(optax.tree.norm(grads))
    assert norm > 20 * 1e-3
    state, m = tr.train_step(state, shard_batch(tr, batch[None]), jnp.int32(0), roots)
    assert float(m["grad_norm"][0]) == pytest.approx(norm, rel=1e-5)  # before clipping
    o = cfg.train.optimizer
    adam = optax.adamw(learning_rate=o.lr, b1=o.beta1, b2=o.beta2, eps=o.eps, weight_decay=0.0)

    @jax.jit
    def after(g):
        u, _ = adam.update(g, adam.init(p0), p0)
        return jax.tree.leaves(optax.apply_updates(p0, u))

    clipped = after(jax.tree.map(lambda g: g * (1e-3 / norm), grads))
    unclipped = after(grads)
    got = jax.tree.leaves(jax.device_get(state["params"]))
    for a, want in zip(got, clipped):
        np.testing.assert_allclose(a, want, rtol=0, atol=2e-8)
    assert max(float(np.max(np.abs(w - r))) for w, r in zip(clipped, unclipped)) > 1e-4  # clipping is visible


def test_a_diverging_member_stops_and_the_others_train_on(tmp_path):
    """Member 1's batches carry a marker from step 4 on that makes its loss NaN: it is marked
    diverged with its last good checkpoint; member 0 finishes; the error names member 1."""
    model = get_model(DecoderConfig(depth=1, width=16, heads=2, context=T, vocab_size=V))

    def loss(params, batch, rng):
        base, aux = model.loss(params, batch, rng)
        return jnp.where(jnp.any(batch == V - 1), jnp.nan, base), aux

    def poisoned(step):
        b = batches(1)(step)
        if step >= 4:
            b[0, 0] = V - 1
        return b

    tr = tiny_trainer(loss=loss)
    members = [Member(seed=0, batches=batches(0), run_dir=tmp_path / "m0", config={"seed": 0}, name="m0"),
               Member(seed=1, batches=poisoned, run_dir=tmp_path / "m1", config={"seed": 1}, name="m1")]
    hooks = [StopOnDivergence(), TrainLog(1), Checkpoints(every=2, keep=5)]
    with pytest.raises(DivergedError, match=r"member 1 \('m1'\) diverged at step 5: loss is nan; the last good "
                                            r"checkpoint \(step 4\) is kept.*the other 1 member\(s\) trained on"):
        fit(tr, members, 10, hooks)
    s0, s1 = (json.loads((tmp_path / m / "summary.json").read_text()) for m in ("m0", "m1"))
    assert (s0["status"], s0["step"]) == ("done", 10) and (s1["status"], s1["step"]) == ("diverged", 5)
    from lmscale.train import checkpoint

    assert checkpoint.list_steps(tmp_path / "m1" / "checkpoints") == [2, 4]
    assert checkpoint.list_steps(tmp_path / "m0" / "checkpoints")[-1] == 10
    recs = [json.loads(x) for x in (tmp_path / "m1" / "metrics.jsonl").read_text().splitlines()]
    assert recs[-1]["kind"] == "diverged" and max(r["step"] for r in recs if r["kind"] == "train") == 4


def test_fn_hooks_and_in_memory_members_write_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []
    fit(tiny_trainer(), [Member(seed=0, batches=batches(0))], 4, [TrainLog(2), FnHook(lambda r: seen.append(r.step), 2)])
    assert seen == [2] and list(tmp_path.iterdir()) == []


def test_open_run_dir_refuses_another_config_and_a_foreign_directory(tmp_path):
    m = Member(seed=0, batches=batches(0), run_dir=tmp_path / "r", config={"a": 1})
    assert core.open_run_dir(m) == (False, False)
    assert core.open_run_dir(m) == (True, False)
    (tmp_path / "r" / core.METRICS).write_text('{"step": 1}\n')  # it trained: another config is refused
    with pytest.raises(Exception, match=r"another config \(a \(1 -> 2\)\)"):
        core.open_run_dir(Member(seed=0, batches=batches(0), run_dir=tmp_path / "r", config={"a": 2}))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x").write_text("mine")
    with pytest.raises(Exception, match="is not an lmscale run"):
        core.open_run_dir(Member(seed=0, batches=batches(0), run_dir=tmp_path / "junk", config={}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk", "r"]  # no temporaries left


def device_batch_fn(seed, step):
    """Token windows drawn from (seed, step) with jax.random: a batch source the core can trace."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(7), seed), step)
    return jax.random.randint(key, (B, T + 1), 0, V - 1)


def device_trainer():
    cfg = DecoderConfig(depth=1, width=16, heads=2, context=T, vocab_size=V)
    model = get_model(cfg)
    tcfg = validate_config({"train": {"steps": 10, "batch_size": B, "schedule": {"kind": "constant", "warmup": 0}}}).train
    return build_trainer(model, build_optimizer(tcfg, model.axes, cfg), make_mesh(MESH, jax.devices()[:1]),
                         rules=MESH.rules, batch_size=B, batch_fn=device_batch_fn)


def test_device_batches_run_between_state_hooks_in_one_call_and_resume_bitwise(tmp_path):
    tr = device_trainer()
    calls = []
    real = tr._run_steps
    tr._run_steps = lambda n: calls.append(n) or real(n)

    def run(d, stop_at=None):
        log = TrainLog(1)
        m = Member(seed=2, batches=None, run_dir=d, config={"seed": 2})
        fit(tr, [m], 10, [StopOnDivergence(), log, Checkpoints(every=4, keep=5)], stop_at=stop_at, steps_per_call=3)
        return [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]

    full = run(tmp_path / "full")
    # One program: every call (ending at multiples of 3 and of 4, the checkpoints) is a scan of 3.
    assert calls == [3]
    assert [r["step"] for r in full if r["kind"] == "train"] == list(range(1, 11))  # replayed per step
    run(tmp_path / "paused", stop_at=5)  # calls 0-3, 3-4, 4-5; then 5-6, 6-8, ... instead of 4-6
    resumed = run(tmp_path / "paused")
    assert [r["loss"] for r in resumed] == [r["loss"] for r in full]
    from lmscale.train import checkpoint

    a, b = (checkpoint.load(d / "checkpoints", 10, tr.abstract_member_state()).state for d in
            (tmp_path / "full", tmp_path / "paused"))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_device_batches_compute_the_host_loop_s_steps():
    """The same batches drawn in the program or on the host: the same training, step for step."""
    tr = device_trainer()
    host = tiny_trainer()
    losses = {}
    for name, trainer, kw in (("device", tr, {"steps_per_call": 5}), ("host", host, {})):
        got = []
        hook = FnHook(lambda run, got=got: got.append(float(run.metrics["loss"][0])), every=1, at_end=True,
                      needs_state=False)
        src = jax.jit(device_batch_fn)
        fit(trainer, [Member(seed=3, batches=lambda step: np.asarray(src(3, step)))], 10, [hook], **kw)
        losses[name] = got
    np.testing.assert_allclose(losses["device"], losses["host"], rtol=2e-6)
    assert len(losses["device"]) == 10


def test_host_batches_resume_bitwise_and_draw_each_step_s_batch_once(tmp_path):
    """Paused at step 5 and its step-5 checkpoint lost (as if killed after the step-3 one): the
    resumed run asks for the batches of steps 3..9, each once and in order (none replayed, none
    skipped), and ends bitwise where the uninterrupted run ends, with the same losses."""
    from lmscale.train import checkpoint

    tr = tiny_trainer()

    def run(d, stop_at=None):
        seen, src = [], batches(4)

        def at(step):
            seen.append(step)
            return src(step)

        fit(tr, [Member(seed=4, batches=at, run_dir=d, config={"seed": 4})], 10,
            [StopOnDivergence(), TrainLog(1), Checkpoints(every=3, keep=5)], stop_at=stop_at)
        return seen

    assert run(tmp_path / "full") == list(range(10))
    assert run(tmp_path / "cut", stop_at=5) == [0, 1, 2, 3, 4]
    checkpoint.drop(tmp_path / "cut" / "checkpoints", [5])
    assert run(tmp_path / "cut") == list(range(3, 10))
    a, b = (checkpoint.load(tmp_path / d / "checkpoints", 10, tr.abstract_member_state()).state for d in ("full", "cut"))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    la, lb = ([json.loads(x)["loss"] for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()
               if json.loads(x)["kind"] == "train"] for d in ("full", "cut"))
    assert la == lb and len(la) == 10
