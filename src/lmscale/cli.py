"""The `lmscale` command: a thin Typer layer over the library; output through Rich."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from lmscale.console import SET_HELP, RichReporter, console, err_console, run_app
from lmscale.errors import LmscaleError

app = typer.Typer(
    help="lmscale: train language-model ladders, fit scaling laws, study emergence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(help="Prepare and inspect tokenised corpora.", no_args_is_help=True)
model_app = typer.Typer(help="Model sizes, FLOPs and ladders.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")


def _register_subapps() -> None:
    from lmscale.emergence.cli import emergence_app, ledger_app
    from lmscale.emergence.eval_cli import eval_command
    from lmscale.icl.cli import icl_app
    from lmscale.laws.cli import fit_app
    from lmscale.mup.cli import mup_app
    from lmscale.report.cli import plot_command
    from lmscale.sweep.cli import sweep_app
    from lmscale.theory.cli import theory_app

    app.add_typer(sweep_app, name="sweep")
    app.add_typer(fit_app, name="fit")
    app.add_typer(mup_app, name="mup")
    app.command("plot")(plot_command)
    app.command("eval")(eval_command)
    app.add_typer(emergence_app, name="emergence")  # with `lmscale emergence ledger add|show`
    app.add_typer(ledger_app, name="ledger", hidden=True,
                  help="Same as `lmscale emergence ledger` (the ability ledger); kept so older scripts still work.")
    app.add_typer(icl_app, name="icl")
    app.add_typer(theory_app, name="theory")


_register_subapps()

def _validated_model(raw: dict[str, Any]):
    """A model section (any registered kind; default the decoder) as its validated config."""
    from pydantic import ValidationError

    from lmscale.config import format_validation_error
    from lmscale.model.registry import validate_model_spec

    try:
        return validate_model_spec(raw)
    except ValidationError as err:
        raise LmscaleError(format_validation_error(err, "(model)")) from None
    except ValueError as err:
        raise LmscaleError(str(err)) from None


def _describe_model(m) -> str:
    """One line: the decoder's shape in words; other kinds as kind and fields."""
    if m.kind == "decoder":
        return (f"depth {m.depth}, width {m.width}, heads {m.heads}, context {m.context}, vocab {m.vocab_size}, "
                f"{m.norm}, {m.positions} positions, {m.activation}, {'tied' if m.tie_embeddings else 'untied'}")
    return f"{m.kind}: " + ", ".join(f"{k} {v}" for k, v in m.model_dump().items() if k != "kind")


def _load_cfg(config: Path, overrides: list[str]):
    from lmscale.train.config import load_config

    return load_config(config, overrides)


@app.command()
def train(
    config: Path = typer.Argument(..., help="A YAML config (configs/baby-gpt.yaml) or an existing run directory to resume."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Where the run lives (default: runs/<name>)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a live progress bar."),
):
    """Train a model, or resume the run in an existing run directory.

    Trains a language model on a text corpus from a run config (configs/*.yaml); `lmscale icl train`
    is different: it trains an in-context-regression model on fresh prompts from an ICL config.

    Example: lmscale train configs/baby-gpt.yaml --set train.steps=500
    """
    from lmscale.train.limits import check_run_config
    from lmscale.train.lm import train as run_train
    from lmscale.train.run import is_run_dir, load_run_config

    if config.is_dir():
        if not is_run_dir(config):
            raise LmscaleError(f"{str(config)!r} is a directory but not an lmscale run; expected a YAML config or a run directory")
        if set_:
            raise LmscaleError("--set cannot change the config of an existing run; expected no --set when resuming a run directory")
        cfg = load_run_config(config)
        run_dir = config
    else:
        cfg = _load_cfg(config, set_ or [])
        run_dir = run_dir or Path("runs") / cfg.name
    # What this machine can hold, from the config alone: before any data, directory or array.
    check_run_config(cfg)
    if run_dir.exists() and not run_dir.is_dir():
        raise LmscaleError(f"--run-dir {str(run_dir)!r} is a file; expected a directory (new or an existing run)")
    try:
        summary = run_train(cfg, run_dir, RichReporter(progress))
    except KeyboardInterrupt:
        err_console.print(f"interrupted; resume with: lmscale train {run_dir}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except Exception as err:
        _raise_if_out_of_memory(err, f"training {str(run_dir)!r} (the checkpoints written so far are kept)")
        raise
    _print_summary(summary)
    console.print(f"run written to {run_dir}/ (config.yaml, metrics.jsonl, checkpoints/, summary.json)")


def _raise_if_out_of_memory(err: BaseException, doing: str) -> None:
    """An allocation failure (XLA's RESOURCE_EXHAUSTED, numpy's MemoryError) past the up-front
    estimate (lmscale.train.limits, a lower bound) as a one-line error; anything else is left alone."""
    text = str(err)
    if isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in text or "Out of memory" in text:
        first = (text.splitlines() or [type(err).__name__])[0][:200]
        raise LmscaleError(f"out of memory {doing}: {first}; expected a smaller model or batch "
                           "(or train.grad_accum > 1)") from None


def _print_summary(s: dict[str, Any]) -> None:
    t = Table(title=f"{s.get('name', 'run')} — {s.get('status')}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    unit = "char" if "final_val_bits_per_char" in s else "byte"
    rows = [
        ("parameters", f"{s['params_total']:,} total, {s['params_non_embedding']:,} non-embedding"),
        ("FLOPs/token", f"{s['flops_per_token']:.4g} ({s['flop_convention']})"),
        ("steps / tokens seen", f"{s.get('step')} / {s.get('tokens_seen', 0):,} ({s.get('epochs', 0):.2f} epochs)"),
    ]
    if s.get("final_val_loss") is not None:
        rows += [
            ("final val loss", f"{s['final_val_loss']:.4f} ± {s['final_val_loss_se']:.4f} nats/token "
                               f"({s[f'final_val_bits_per_{unit}']:.4f} bits/{unit}, {s['final_val_sequences']} sequences)"),
            ("best val loss", f"{s['best_val_loss']:.4f} nats/token"),
            ("throughput", f"{s.get('tokens_per_s', 0):,.0f} tokens/s on {s.get('devices')} {s.get('platform')} device(s)"),
        ]
    for r in rows:
        t.add_row(*r)
    console.print(t)


@app.command()
def sample(
    run_dir: Path = typer.Argument(..., help="A run directory."),
    prompt: str = typer.Option("\n", "--prompt", help="Text to continue."),
    max_tokens: int = typer.Option(500, "--max-tokens", help="Tokens to generate (at most 100,000)."),
    temperature: float = typer.Option(0.8, "--temperature", help="Softmax temperature; 0 = greedy."),
    top_k: int = typer.Option(0, "--top-k", help="Sample from the k most likely tokens (0 = all)."),
    seed: int = typer.Option(0, "--seed"),
):
    """Generate text from a trained run.

    Example: lmscale sample runs/baby-gpt --prompt "ROMEO:" --max-tokens 300
    """
    from lmscale.train.run import load_run
    from lmscale.train.sample import check_sampling, encode_prompt, generate

    check_sampling(max_tokens, temperature, top_k, seed)  # before the run is read
    run = load_run(run_dir, warn=RichReporter().warn)
    ids = encode_prompt(run.tokenizer, prompt, RichReporter().warn)
    try:
        out = generate(run.params, run.cfg.model, ids, max_tokens=max_tokens, temperature=temperature, top_k=top_k,
                       seed=seed, vocab_limit=run.tokenizer.vocab_size)
    except Exception as err:
        _raise_if_out_of_memory(err, f"sampling from {str(run_dir)!r}")
        raise
    sys.stdout.write(prompt + run.tokenizer.decode(out) + "\n")


@app.command()
def info(run_dir: Path = typer.Argument(..., help="A run directory.")):
    """Size, FLOPs, tokens seen and losses of a run.

    Describes one run directory; `lmscale data info` is different: it lists the prepared corpora in the cache.

    Example: lmscale info runs/baby-gpt
    """
    from lmscale.fileio import load_json_file
    from lmscale.model.sizing import count_flops, count_params
    from lmscale.train.metrics import read_metrics
    from lmscale.train.run import METRICS, SUMMARY, load_run_config

    cfg = load_run_config(run_dir)
    n, f = count_params(cfg.model), count_flops(cfg.model)
    summary = load_json_file(run_dir / SUMMARY, "run summary") if (run_dir / SUMMARY).is_file() else {}
    if not isinstance(summary, dict):
        raise LmscaleError(f"run summary {str(run_dir / SUMMARY)!r} holds a {type(summary).__name__}; expected the "
                           "mapping lmscale wrote")
    try:
        recs = read_metrics(run_dir / METRICS) if (run_dir / METRICS).is_file() else []
    except OSError as err:
        raise LmscaleError(f"cannot read {str(run_dir / METRICS)!r} ({err.strerror or err}); expected a readable file") from None
    # Records that are not what lmscale writes (a string step, a missing loss) are skipped, as torn lines are.
    trains = [r for r in recs if r.get("kind") == "train" and _numbers(r, "step", "loss", "tokens_per_s")]
    evals = [r for r in recs if r.get("kind") == "eval" and _numbers(r, "step", "val_loss", "val_loss_se")]
    m = cfg.model
    t = Table(title=f"{run_dir}", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("status", str(summary.get("status", "unknown")))
    t.add_row("model", _describe_model(m))
    t.add_row("parameters", f"{n.total:,} total, {n.non_embedding:,} non-embedding")
    t.add_row("FLOPs/token", f"{f.per_token:.4g} training ({f.convention}); causal: {f.per_token_causal:.4g}")
    step = trains[-1]["step"] if trains else 0
    tokens = step * cfg.train.batch_size * m.context
    t.add_row("progress", f"step {step}/{cfg.train.steps}, {tokens:,} tokens seen, {tokens * f.per_token:.3g} FLOPs")
    if evals:
        best = min(evals, key=lambda r: r["val_loss"])
        t.add_row("best val loss", f"{best['val_loss']:.4f} ± {best['val_loss_se']:.4f} nats/token at step {best['step']}")
        t.add_row("last val loss", f"{evals[-1]['val_loss']:.4f} nats/token at step {evals[-1]['step']}")
    if trains:
        t.add_row("last train loss", f"{trains[-1]['loss']:.4f} at step {step}; {trains[-1]['tokens_per_s']:,.0f} tokens/s")
    console.print(t)


def _numbers(rec: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(rec.get(k), (int, float)) and not isinstance(rec.get(k), bool) for k in keys)


@data_app.command("prepare")
def data_prepare(
    config: Path = typer.Argument(..., help="A YAML config whose data section to prepare."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
    force: bool = typer.Option(False, "--force", help="Rebuild even if a prepared copy exists (repairs a corrupted cache)."),
):
    """Tokenise a corpus into the cache (done automatically by train).

    Example: lmscale data prepare configs/baby-gpt.yaml
    """
    from lmscale.data.prepare import prepare_data

    cfg = _load_cfg(config, set_ or [])
    data = prepare_data(cfg.data, force=force, log=RichReporter().log)
    _print_manifest(data.manifest | {"path": str(data.path)})


def _print_manifest(man: dict[str, Any]) -> None:
    t = Table(title=str(man.get("path", "")), show_header=False)
    t.add_column(style="bold")
    t.add_column()
    src = man["source"]
    t.add_row("source", f"{src['kind']}: {src['location']}")
    t.add_row("tokenizer", f"{man['tokenizer']['kind']}, vocabulary {man['tokenizer']['vocab_size']}")
    for split, s in man["splits"].items():
        t.add_row(split, f"{s['tokens']:,} tokens, {s['units']:,} {s['unit']}s, {s['documents']} documents")
    corpus = man.get("corpus", {})
    if corpus.get("val_plays"):
        t.add_row("held-out plays", ", ".join(corpus["val_plays"]))
    elif corpus.get("validation"):
        t.add_row("validation", str(corpus["validation"]))
    console.print(t)


@data_app.command("info")
def data_info_cmd(
    config: Optional[Path] = typer.Argument(None, help="A config (default: list everything in the cache)."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
):
    """Show prepared corpora in the cache, or the one a config uses.

    Describes tokenised corpora; `lmscale info` is different: it describes a run directory.

    Example: lmscale data info configs/baby-gpt.yaml
    """
    from lmscale.data.prepare import data_info
    from lmscale.fileio import cache_dir, read_json

    if config is not None:
        cfg = _load_cfg(config, set_ or [])
        man = data_info(cfg.data)
        if man is None:
            console.print(f"not prepared yet; run `lmscale data prepare {config}`")
            return
        _print_manifest(man)
        return
    root = cache_dir() / "data"
    entries = sorted(p for p in root.glob("*/manifest.json")) if root.is_dir() else []
    t = Table(title=f"prepared corpora in {root}")
    for col in ("name", "source", "tokenizer", "train tokens", "val tokens"):
        t.add_column(col)
    for p in entries:
        try:
            man = read_json(p)
            t.add_row(p.parent.name, man["source"]["kind"], f"{man['tokenizer']['kind']} ({man['tokenizer']['vocab_size']})",
                      f"{man['splits']['train']['tokens']:,}", f"{man['splits']['val']['tokens']:,}")
        except (OSError, ValueError, KeyError):
            t.add_row(p.parent.name, "[red]corrupted[/red]", "", "", "")
    console.print(t)


@model_app.command("size")
def model_size(
    config: Path = typer.Argument(..., help="A YAML config."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help=SET_HELP),
    vocab: int = typer.Option(None, "--vocab", help="Vocabulary size if the config leaves it to the tokenizer."),
):
    """Parameter and FLOP counts of a config's model.

    Example: lmscale model size configs/shakespeare-char.yaml --vocab 80
    """
    from lmscale.model.sizing import count_flops, count_params

    cfg = _load_cfg(config, set_ or [])
    m = cfg.model
    if getattr(m, "vocab_size", 0) is None:
        if vocab is None:
            raise LmscaleError("model.vocab_size is null (set by the tokenizer); expected --vocab N to count parameters")
        m = _validated_model({**m.model_dump(), "vocab_size": vocab})
    n, f = count_params(m), count_flops(m)
    console.print(f"parameters: {n.total:,} total, {n.non_embedding:,} non-embedding, {n.embedding:,} embedding")
    console.print(f"training FLOPs/token: {f.per_token:,.0f} ({f.convention}); causal attention: {f.per_token_causal:,.0f}")


@model_app.command("ladder")
def model_ladder(
    depths: str = typer.Option("2,4,6,8,10,12", "--depths", help="Comma-separated depths (the size dial)."),
    aspect_ratio: int = typer.Option(64, "--aspect-ratio", help="width = depth * aspect ratio, rounded to head_dim."),
    head_dim: int = typer.Option(64, "--head-dim"),
    vocab: int = typer.Option(50304, "--vocab"),
    context: int = typer.Option(1024, "--context"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """A model family from one size dial (depth -> width, as nanochat).

    Example: lmscale model ladder --depths 2,4,8 --vocab 80 --context 256
    """
    from lmscale.model.sizing import count_flops, count_params, ladder

    try:
        ds = [int(x) for x in depths.split(",") if x.strip()]
    except ValueError:
        raise LmscaleError(f"--depths {depths!r}; expected comma-separated positive integers such as 2,4,8") from None
    if not ds or min(ds) < 1:
        raise LmscaleError(f"--depths {depths!r}; expected comma-separated positive integers such as 2,4,8")
    for name, v in (("--aspect-ratio", aspect_ratio), ("--head-dim", head_dim), ("--vocab", vocab), ("--context", context)):
        if v < 1:
            raise LmscaleError(f"{name}={v}; expected a positive integer")
    from pydantic import ValidationError

    from lmscale.config import format_validation_error

    try:  # the ladder builds each member's config: a depth past the caps is a validation error
        members = ladder(depths=ds, aspect_ratio=aspect_ratio, head_dim=head_dim, vocab_size=vocab, context=context)
    except ValidationError as err:
        raise LmscaleError(format_validation_error(
            err, f"(ladder --depths {depths} --aspect-ratio {aspect_ratio} --head-dim {head_dim} --context {context})")) from None
    models = [_validated_model(m.model_dump()) for m in members]
    rows = []
    for m in models:
        n, f = count_params(m), count_flops(m)
        rows.append({"depth": m.depth, "width": m.width, "heads": m.heads, "params": n.total,
                     "non_embedding": n.non_embedding, "flops_per_token": f.per_token})
    if as_json:
        console.print_json(json.dumps(rows))
        return
    t = Table(title="model ladder (FLOPs/token = 6*N_matmul + 12*L*T*d)")
    for col in rows[0]:
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(*(f"{v:,.0f}" if isinstance(v, float) else f"{v:,}" for v in r.values()))
    console.print(t)


@app.command()
def demo(
    which: str = typer.Argument("scaling", metavar="[scaling|emergence]",
                                help="scaling (default): the Shakespeare scaling law; emergence: the skills-mixture emergence lab."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default lmscale-demo, or lmscale-emergence)."),
    quick: bool = typer.Option(False, "--quick", help="Fewer models (and budgets): about a third of the time."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=2, help="Bootstrap resamples for the intervals."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a live progress bar per run."),
):
    """The main job: train a model ladder on Shakespeare, fit its scaling law with intervals, check extrapolation.

    About 10 minutes on 2 CPU cores (--quick: about 3). Interrupt it and run it again to resume.
    `lmscale demo emergence` trains a ladder on the skills mixture instead and gives per-task
    emergence verdicts with evidence, the mirage figures, a forecast of the largest model and a ledger.

    Example: lmscale demo --out lmscale-demo
    """
    if which not in ("scaling", "emergence"):
        raise LmscaleError(f"demo {which!r}; expected 'scaling' (the default) or 'emergence'")
    if bootstrap > MAX_DEMO_BOOTSTRAP:  # 1e9 resamples ran the whole demo, then asked numpy for 37 GiB
        raise LmscaleError(f"--bootstrap {bootstrap}; expected 2 to {MAX_DEMO_BOOTSTRAP:,} resamples")
    if out is not None and out.exists() and not out.is_dir():
        raise LmscaleError(f"--out {str(out)!r} is a file; expected a directory (new, or a demo to resume)")
    if which == "emergence":
        _emergence_demo(out or Path("lmscale-emergence"), quick, bootstrap, progress)
        return
    out = out or Path("lmscale-demo")
    from lmscale.demo import run_demo

    try:
        res = run_demo(out, quick=quick, n_bootstrap=bootstrap, reporter=RichReporter(progress))
    except KeyboardInterrupt:
        err_console.print(f"interrupted; resume with: lmscale demo --out {out}{' --quick' if quick else ''}",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    _print_demo(res)


def _print_demo(res) -> None:
    """The demo's answer on the terminal: the three approaches side by side, whether they agree, E,
    the best-supported form, the extrapolation check and the targets (REPORT.md has the rest)."""
    from lmscale.demo import agreement_lines, e_line
    from lmscale.laws.summary import fmt

    h = res.headline
    compute = h["report_compute_flops"]
    t = Table(title="compute-optimal allocation: tokens per parameter (95% interval) at each budget, "
                    "then one decade beyond")
    t.add_column("approach", style="bold")
    t.add_column("a (N_opt ~ C^a)", justify="right")
    for i, c in enumerate(compute):
        t.add_column(("beyond " if i == len(compute) - 1 else "") + f"C={c:.2g}", justify="right")
    for k in (1, 2, 3):
        row = h["approaches"][k]
        if "error" in row:
            t.add_row(row["name"], "n/a", *[""] * len(compute))
            continue
        lo, hi = row["tokens_per_param_interval"]
        t.add_row(row["name"], f"{row['a']:.3f} ({row['a_interval'][0]:.3f}, {row['a_interval'][1]:.3f})",
                  *[f"{row['tokens_per_param'][i]:.3g} ({lo[i]:.3g}, {hi[i]:.3g})" for i in range(len(compute))])
    console.print(t)
    for k in (1, 2):
        if "error" in h["approaches"][k]:
            console.print(f"{h['approaches'][k]['name']} not available: {h['approaches'][k]['error']}",
                          highlight=False, soft_wrap=True)
    for line in agreement_lines(h) + [e_line(h)]:
        console.print(line, highlight=False, soft_wrap=True)
    rk = h["ranking"]
    if isinstance(rk, dict) and rk.get("chosen"):
        console.print(f"best-supported form (ranked by error on the held-out largest budget): {rk['chosen']}",
                      highlight=False, soft_wrap=True)
    if h["extrapolation_are"] is not None:
        console.print(f"extrapolation to the held-out largest budget: mean absolute relative error "
                      f"{100 * h['extrapolation_are']:.2f}% (max {100 * h['extrapolation_max_are']:.2f}%)", highlight=False)
    for k, v in h["checks"].items():
        val = v["value"] if isinstance(v["value"], str) else fmt(v["value"])
        console.print(f"check {k}: {val}{' (target ' + v['target'] + ')' if v.get('target') else ''}: "
                      f"{'met' if v['met'] else 'NOT met'}", highlight=False, soft_wrap=True)
    console.print(f"demo written to {res.out_dir}/ (REPORT.md, fit.json, figures/, sweep/)")


MAX_DEMO_BOOTSTRAP = 100_000


def _emergence_demo(out: Path, quick: bool, bootstrap: int, progress: bool) -> None:
    from lmscale.emergence.demo import run_emergence_demo, summary_lines

    try:
        res = run_emergence_demo(out, quick=quick, reporter=RichReporter(progress), n_bootstrap=bootstrap)
    except KeyboardInterrupt:
        err_console.print(f"interrupted; resume with: lmscale demo emergence --out {out}{' --quick' if quick else ''}",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    for line in summary_lines(res):
        console.print(line, highlight=False, soft_wrap=True)


def _enable_compilation_cache() -> None:
    """Reuse compiled steps across processes: resumed runs and sweep trunks skip recompiling."""
    import os

    if os.environ.get("LMSCALE_NO_COMPILE_CACHE"):
        return
    import jax

    from lmscale.fileio import cache_dir

    jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax-compile"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def main() -> None:
    from lmscale.parallel.mesh import use_cpu_cores_as_devices

    use_cpu_cores_as_devices()  # before anything starts JAX: data parallelism over CPU cores
    _enable_compilation_cache()
    # The one error handler: Typer's standalone mode handles usage errors (exit 2) and --help;
    # an LmscaleError from any command passes through it and is printed as one line `error: ...`.
    run_app(app)
