"""`lmscale plot SWEEP_OR_CSV`: load scaling data, fit a law, write every figure that applies.

Register on the main app with ``app.command("plot")(plot_command)``. `plot_app` is the same command
as a stand-alone Typer app (tests run it through `lmscale.console.run_app`, the CLI's one error
handler). Matplotlib is imported only when the
command runs, so registering it costs nothing at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lmscale.console import console, err_console
from lmscale.errors import LmscaleError


def default_out_dir(path: Path) -> Path:
    """SWEEP/figures for a sweep directory, CSV_DIR/<stem>-figures for a CSV file."""
    return path / "figures" if path.is_dir() else path.parent / f"{path.stem}-figures"


def _warn(msg: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {msg}", highlight=False, soft_wrap=True)


def make_figures(path: Path, law_name: str = "chinchilla", out: Path | None = None, n_bootstrap: int = 0,
                 family: str | None = None, curves_path: Path | None = None, seed: int = 0) -> list[Path]:
    """What `lmscale plot` does, as a function: returns the written paths (PNG and CSV)."""
    import numpy as np

    from lmscale.laws.bootstrap import bootstrap
    from lmscale.laws.data import load_curves, load_scaling_data
    from lmscale.laws.envelope import EnvelopeAllocation
    from lmscale.laws.estimators import make_law
    from lmscale.laws.extrapolation import extrapolation_check
    from lmscale.laws.isoflop import IsoFLOPAllocation
    from lmscale.laws.cli import MAX_BOOTSTRAP, check_law_size
    from lmscale.report.figures import envelope_law, write_fit_figures

    if n_bootstrap < 0 or n_bootstrap == 1 or n_bootstrap > MAX_BOOTSTRAP:
        raise LmscaleError(f"--bootstrap {n_bootstrap}; expected 0 (none) or 2 to {MAX_BOOTSTRAP:,} resamples "
                           "(1000 for 95% intervals)")
    if out is not None and out.exists() and not out.is_dir():
        raise LmscaleError(f"--out {str(out)!r} is a file; expected a directory for the figures")
    data = load_scaling_data(path, family)
    check_law_size(data, n_bootstrap, law_name)  # a 500,000-row CSV is refused, not fitted for an hour
    curves = None
    if curves_path is not None:
        curves = load_curves(curves_path, family)
    elif path.is_dir():
        try:
            curves = load_curves(path, family)
        except LmscaleError as err:
            _warn(f"no training curves ({err}); the loss-vs-compute panel shows final losses only")
    law = make_law(law_name).fit(data)
    console.print(f"fitted {law.form_.name}: {law.form_.formula}; "
                  + ", ".join(f"{k} = {v:.4g}" for k, v in law.params_.items()), highlight=False, soft_wrap=True)
    try:  # the residual and surface figures mark the largest model, held out and predicted
        ext = extrapolation_check(law, data, "largest")
    except LmscaleError:  # too few points to hold any out: the figures show in-sample residuals only
        ext = None
    boot = None
    if n_bootstrap:
        with np.errstate(over="ignore", invalid="ignore"):  # a few resamples wander off; they are reported, not fatal
            boot = bootstrap(law, n_bootstrap, seed=seed)
        console.print(f"bootstrap: {boot.n_converged}/{boot.n_resamples} resamples converged", highlight=False)
    isoflop = approach1 = None
    if data.budget is not None:  # an IsoFLOP sweep: Chinchilla Approach 2
        try:
            isoflop = IsoFLOPAllocation().fit(data)
        except LmscaleError as err:
            _warn(f"no IsoFLOP figure: {err}")
    if curves is not None:  # training curves: Chinchilla Approach 1
        try:
            approach1 = EnvelopeAllocation().fit(curves)
        except LmscaleError as err:
            _warn(f"no Approach-1 envelope: {err}")
    kaplan = []
    if law.form_.variables != ("C",):
        try:
            env = envelope_law(data, curves)
        except LmscaleError as err:
            _warn(f"no L(C) fit to the compute-efficient envelope: {err}")
            env = None
        if env is not None:
            kaplan.append(env)
    return write_fit_figures(data, law, out or default_out_dir(path), curves=curves, bootstrap=boot,
                             extrapolation=ext, isoflop=isoflop, kaplan_laws=kaplan, envelope_fit=approach1)


def plot_command(
    path: Path = typer.Argument(..., metavar="SWEEP_OR_CSV",
                                help="A sweep directory (results.csv, curves.csv) or a CSV with columns N, D, loss."),
    law: str = typer.Option("chinchilla", "--law", help="Law to fit: chinchilla, kaplan-n, kaplan-d, kaplan-c, "
                            "kaplan-joint, data-constrained."),
    out: Optional[Path] = typer.Option(None, "--out", help="Directory for the figures (default: SWEEP/figures or "
                                       "<csv name>-figures beside the CSV)."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Cluster-bootstrap resamples for intervals (0 = none; "
                                  "1000 for 95% intervals)."),
    family: Optional[str] = typer.Option(None, "--family", help="Use only the rows of this model family."),
    curves: Optional[Path] = typer.Option(None, "--curves", help="A curves CSV (run_id, N, D, C, loss per evaluation); "
                                          "read from the sweep directory by default."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
):
    """Fit a scaling law and write every applicable figure (PNG, with the plotted data as CSV beside it).

    Example: lmscale plot sweeps/demo --law chinchilla --bootstrap 200 --out figures/
    """
    paths = make_figures(path, law, out, bootstrap, family, curves, seed)
    for p in paths:
        console.print(str(p), highlight=False, soft_wrap=True)
    console.print(f"wrote {len(paths) // 2} figures (PNG + CSV) to {paths[0].parent}/", highlight=False, soft_wrap=True)


plot_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
plot_app.command("plot")(plot_command)
