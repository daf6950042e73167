"""`lmscale icl train|eval|compare|probe|sweep`: in-context learning experiments, one command each.

Register in lmscale/cli.py with

    from lmscale.icl.cli import icl_app
    app.add_typer(icl_app, name="icl")

Bad input raises `LmscaleError`, which `lmscale.console.run_app` prints as one line
`error: <message>` (exit status 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lmscale.console import SET_HELP, RichReporter, console, sub_app

icl_app = sub_app(
    "In-context learning of function classes: which learning algorithm does a transformer run? "
    "Train on fresh prompts, compare with reference learners (SPD/ILWD), probe layers, sweep depth/noise/task diversity.",
)


def _experiment(name: str, *args, **kw) -> None:
    """Run `lmscale.icl.experiments.<name>` and print its table and figure path."""
    from lmscale.icl import experiments

    res, table = getattr(experiments, name)(*args, **kw)
    console.print(table, highlight=False, markup=False, soft_wrap=True)
    if res.get("figure"):
        console.print(f"figure: {res['figure']} (+ .csv with the plotted numbers)", highlight=False, markup=False)


@icl_app.command("train")
def train_cmd(
    config: Path = typer.Argument(..., help="An ICL config YAML (configs/icl/garg-linear.yaml)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run directory (default: runs/icl/<name>); resumes if it holds this run."),
    stop_at: Optional[int] = typer.Option(None, "--stop-at", min=1, help="Pause after this step (resume later with the same command)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Train a model on fresh prompts every step (resumable; kill and rerun to continue).

    Trains an in-context-regression model from an ICL config (configs/icl/); `lmscale train` is
    different: it trains a language model on a text corpus from a run config.

    Example: lmscale icl train configs/icl/von-oswald.yaml --set train.steps=500
    """
    from lmscale.icl.config import load_icl_config
    from lmscale.icl.train import train
    from lmscale.laws.tables import fmt

    cfg = load_icl_config(config, set_)
    out = run_dir or Path("runs") / "icl" / cfg.name
    summary = train(cfg, out, reporter=RichReporter(progress), stop_at=stop_at)

    console.print(
        f"{summary['status']}: {out} at step {summary['step']}, train loss {fmt(summary.get('final_train_loss'))} "
        f"({summary['params']:,} params; {summary['params_garg_convention']:,} counting GPT-2's token embedding as Garg et al.)",
        highlight=False,
    )


@icl_app.command("eval")
def eval_cmd(
    run: Path = typer.Argument(..., help="A run directory from `lmscale icl train`."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for eval.json and the figure (default: the run)."),
    member: int = typer.Option(0, "--member", min=0, help="Ensemble member to evaluate."),
):
    """Normalised error vs in-context examples for the model and the reference learners (LSA: loss vs tuned GD).

    Scores a run from `lmscale icl train`; `lmscale eval` is different: it evaluates language
    models on the emergence lab's skill tasks (exact match, per-token probability, ...).

    Example: lmscale icl eval runs/icl/garg-linear
    """
    _experiment("eval_run", run, out, member, warn=RichReporter(False).warn)


@icl_app.command("compare")
def compare_cmd(
    run: Path = typer.Argument(..., help="A run directory from `lmscale icl train` (model.kind gpt)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for compare.json and the figure (default: the run)."),
    member: int = typer.Option(0, "--member", min=0),
):
    """SPD / MSPD / ILWD between the model and each reference learner; the best match.

    Compares one run's predictions with the learners'; `lmscale fit compare` is different: it
    compares the fitted scaling laws of two model families.

    Example: lmscale icl compare runs/icl/garg-linear
    """
    _experiment("compare_run", run, out, member, warn=RichReporter(False).warn)


@icl_app.command("probe")
def probe_cmd(
    run: Path = typer.Argument(..., help="A run directory (gpt, Garg format)."),
    control: Optional[Path] = typer.Option(None, "--control", help="A control run trained with one fixed w (task.pool_size=1)."),
    out: Optional[Path] = typer.Option(None, "--out"),
    mlp_steps: int = typer.Option(500, "--mlp-steps", min=1, help="Adam steps of each MLP probe."),
):
    """Linear and MLP probes from each layer to X^T y and w_OLS (R² held out); gradient alignment.

    Example: lmscale icl probe runs/icl/probe --control runs/icl/probe-control
    """
    _experiment("probe_run", run, control, out, mlp_steps, warn=RichReporter(False).warn)


@icl_app.command("sweep")
def sweep_cmd(
    config: Path = typer.Argument(..., help="An ICL config with a 'sweep' section (configs/icl/depth.yaml)."),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    out: Optional[Path] = typer.Option(None, "--out", help="Sweep directory (default: runs/icl/<name>)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
):
    """Train every variant (resumable) and tabulate each one's distance to each learner.

    Variants come from the ICL config's 'sweep' section and train one after another in one
    directory; `lmscale sweep` is different: it plans and runs an N x D ladder of language models
    for scaling-law fits (registry, WSD branches, many workers).

    Example: lmscale icl sweep configs/icl/task-diversity.yaml
    """
    _experiment("sweep", config, set_, out, reporter=RichReporter(progress))
