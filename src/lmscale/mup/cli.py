"""`lmscale mup ...`: muP tools as a Typer sub-app (registered by lmscale.cli as ``mup``).

Kept beside the model code so the main CLI module only has to ``app.add_typer(mup_app, name="mup")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from lmscale.console import console, err_console
from lmscale.errors import LmscaleError

mup_app = typer.Typer(help="muP (maximal update parametrisation): coordinate check.", no_args_is_help=True)


@mup_app.callback()
def _group() -> None:
    """muP (maximal update parametrisation): coordinate check. Enable it with model.parametrization=mup."""
    # A callback keeps `mup` a command group: Typer runs a lone command without its name otherwise.



def parse_widths(text: str) -> list[int]:
    """'32,64,128' -> [32, 64, 128]; LmscaleError naming the bad item otherwise."""
    items = [x.strip() for x in text.split(",") if x.strip()]
    out = []
    for x in items:
        try:
            w = int(x)
        except ValueError:
            raise LmscaleError(f"--widths {text!r}: {x!r} is not an integer; expected e.g. 32,64,128,256") from None
        if w < 1:
            raise LmscaleError(f"--widths {text!r}: {w} is not positive; expected e.g. 32,64,128,256")
        out.append(w)
    if len(out) < 2:
        raise LmscaleError(f"--widths {text!r}: expected at least two comma-separated widths, e.g. 32,64,128,256")
    return out


@mup_app.command("coord-check")
def coord_check_cmd(
    config: Path = typer.Argument(..., help="A YAML config; its model is trained at each width on its corpus."),
    widths: str = typer.Option("32,64,128,256", "--widths", help="Comma-separated widths (each a multiple of model.heads)."),
    steps: int = typer.Option(3, "--steps", help="Adam steps per width (activations are recorded at steps 0..N)."),
    lr: Optional[float] = typer.Option(None, "--lr", help="Adam LR (default: the config's train.optimizer.lr)."),
    parametrization: str = typer.Option("both", "--parametrization", help="mup, sp or both."),
    out: Path = typer.Option(Path("coord-check"), "--out", help="Directory for the CSV files and the figure."),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="Override a config value, e.g. --set model.depth=2 (repeatable)."),
):
    """Check that activation sizes are flat in width under muP (and grow under SP).

    Trains the config's model at each width for a few Adam steps on the same batches and prints
    the log-log slope of mean |activation| against width per activation and step (0 = flat).

    Example: lmscale mup coord-check configs/baby-gpt.yaml --widths 32,64,128,256 --lr 1e-2 --out coord-check
    """
    from lmscale.train.config import load_config
    from lmscale.mup.coord_check import FLAT_TOL, check_arguments, coord_check, plot, write_slopes_csv

    ws = parse_widths(widths)
    if parametrization not in ("mup", "sp", "both"):
        raise LmscaleError(f"--parametrization {parametrization!r}; expected mup, sp or both")
    cfg = load_config(config, set_ or [])
    kinds = ["mup", "sp"] if parametrization == "both" else [parametrization]
    for kind in kinds:  # fail on a bad width or step count before preparing data or training
        check_arguments(cfg, ws, steps, lr, kind)
    if out.exists() and not out.is_dir():
        raise LmscaleError(f"--out {str(out)!r} is a file; expected a directory")

    def log(msg: str) -> None:
        err_console.print(f"[dim]{msg}[/dim]", highlight=False, soft_wrap=True)

    results = [coord_check(cfg, ws, steps=steps, lr=lr, parametrization=k, log=log) for k in kinds]
    for res in results:
        _print_slopes(res, FLAT_TOL)
    png, csv_path = plot(results, out / "coord_check.png")
    slopes_path = write_slopes_csv(results, out / "coord_check_slopes.csv")
    console.print(f"activation sizes written to {csv_path}")
    console.print(f"slopes written to {slopes_path}")
    console.print(f"figure written to {png}")


def _print_slopes(res, tol: float) -> None:
    slopes = res.slopes()
    t = Table(title=f"{res.parametrization}: slope of log mean |x| vs log width (lr {res.lr:g})")
    t.add_column("activation")
    for step in range(res.steps + 1):
        t.add_column(f"step {step}", justify="right")
    t.add_column(f"size at step {res.steps}", justify="right")
    for name, row in slopes.items():
        sizes = res.sizes[name][-1]
        t.add_row(name, *(f"{v:+.3f}" for v in row), f"{sizes.min():.3g}..{sizes.max():.3g}")
    console.print(t)
    worst = res.max_abs_slope(1)
    verdict = "flat" if res.is_flat(tol) else "NOT flat"
    console.print(f"{res.parametrization}: {verdict} in width after the first update (max |slope| {worst:.3f}, tolerance {tol})")
