"""`lmscale demo`: a scaling law for Shakespeare, from nothing, in about ten minutes on 2 CPU cores.

It runs the packaged sweep (`lmscale/sweep/demo.yaml`: a six-model ladder, each model one WSD
trunk with three cooldown branches), fits the Chinchilla law L(N, D) = E + A/N^alpha + B/D^beta
(Approach 3) with a cluster bootstrap, checks extrapolation by refitting without the largest model
and predicting it, and writes figures. Everything lands in one folder; the sweep inside it is an
ordinary sweep directory, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from lmscale.config import safe_load_unique
from lmscale.fileio import atomic_write_json, atomic_write_text
from lmscale.train.core import Reporter

DEMO_SPEC = "demo.yaml"
WEAK_NOTE = (
    "Caution: the compute-optimal allocation is weakly identified by these runs (its 95% interval spans more "
    "than 100x): the models are far from the irreducible loss, so E and the N/D trade-off are poorly pinned down. "
    "The fitted law still interpolates and extrapolates the measured range (see the extrapolation check); "
    "more model sizes, longer runs or seeds narrow the intervals."
)


def demo_spec(quick: bool = False) -> dict[str, Any]:
    """The packaged demo sweep spec (quick: the four smallest models and three budgets, ~3 minutes)."""
    text = resources.files("lmscale.sweep").joinpath(DEMO_SPEC).read_text(encoding="utf-8")
    spec = safe_load_unique(text)
    if quick:
        spec["name"] = "demo-quick"
        spec["ladder"]["shapes"] = spec["ladder"]["shapes"][:4]
        spec["tokens"]["absolute"] = spec["tokens"]["absolute"][:3]
    return spec


@dataclass
class DemoResult:
    out_dir: Path
    law: Any
    bootstrap: Any
    figures: list[Path]
    fit_json: Path
    report_md: Path
    headline: dict[str, Any]


def run_demo(out_dir: str | Path, quick: bool = False, n_bootstrap: int = 1000, reporter: Reporter | None = None,
             seed: int = 0, spec: dict[str, Any] | None = None) -> DemoResult:
    """Run (or resume) the demo into `out_dir`; `spec` replaces the packaged sweep (tests use a tiny one)."""
    from lmscale.laws.data import load_curves, load_scaling_data
    from lmscale.laws.estimators import ChinchillaLaw
    from lmscale.sweep.runner import run_spec

    rep = reporter or Reporter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec_path = out / ("demo-quick-spec.yaml" if quick else "demo-spec.yaml")
    sweep, counts = run_spec(spec if spec is not None else demo_spec(quick), spec_path, out / "sweep", rep, "demo sweep", "fitting")

    data = load_scaling_data(sweep.dir)
    curves = load_curves(sweep.dir)
    largest = max(r.n_params for r in sweep.runs)
    c_max = max(r.flops for r in sweep.runs)
    target_c = 100 * c_max
    # Runaway bootstrap resamples overflow to inf; they are counted in the intervals, not warned about.
    with np.errstate(over="ignore", invalid="ignore"):
        law = ChinchillaLaw(holdout="largest", target_compute=target_c).fit(data)
        # The interval on a larger model's loss is the question a reader of a scaling law asks first.
        d_big = max(r.tokens for r in sweep.runs)
        boot = law.bootstrap(n_bootstrap, seed=seed, predict_at={"N": 10 * largest, "D": 10 * d_big})
        figures = _figures(data, curves, law, boot, out / "figures")
        theory_md = _theory_section(law, out / "theory", rep)

    ext = law.extrapolation_
    at_target = law.optimal_allocation(target_c)
    headline = {
        "points": len(data), "runs_done": counts.get("done", 0),
        "params": law.params_,
        "intervals_95": {k: list(boot.interval(k)) for k in ("A", "B", "E", "alpha", "beta", "a", "b",
                                                             "tokens_per_param") if k in boot.samples},
        "target_compute_flops": target_c,
        "compute_optimal_at_target": {k: float(v) for k, v in at_target.items()},
        "extrapolation_are": None if ext is None else ext.mean_are,
        "extrapolation_heldout": None if ext is None else ext.description,
        "predicted_loss_10x_model_10x_data": float(law.predict([10 * largest], [10 * d_big])[0]),
        "predicted_loss_interval": list(boot.interval("loss_at")),
    }
    lo, hi = boot.interval("tokens_per_param")
    headline["weakly_identified"] = bool(not (np.isfinite(lo) and np.isfinite(hi)) or hi / max(lo, 1e-300) > 100)
    fit_json = out / "fit.json"
    atomic_write_json(fit_json, {"demo": headline, "fit": law.to_dict()})
    report_md = out / "REPORT.md"
    atomic_write_text(report_md, _report(sweep, law, headline, figures, out) + theory_md)
    return DemoResult(out, law, boot, figures, fit_json, report_md, headline)


def _figures(data, curves, law, boot, fig_dir: Path) -> list[Path]:
    from lmscale.report.figures import write_fit_figures

    return list(write_fit_figures(data, law, fig_dir, curves=curves, bootstrap=boot, extrapolation=law.extrapolation_))


def _theory_section(law, out: Path, rep: Reporter) -> str:
    """Nayak & Varshney's compute-optimal prediction with its two constants fitted to this law's frontier."""
    from lmscale.errors import LmscaleError
    from lmscale.theory.overlay import theory_overlay

    try:
        return "\n" + theory_overlay(law, out).markdown()
    except LmscaleError as err:  # a degenerate frontier must not cost the user the fitted law
        rep.warn(f"theory overlay skipped: {err}")
        return f"\nThe information-theoretic overlay was skipped: {err}\n"


def _report(sweep, law, h: dict[str, Any], figures: list[Path], out: Path) -> str:
    lines = [
        "# lmscale demo: a scaling law for Shakespeare (characters)",
        "",
        f"Sweep: `{sweep.dir}` ({h['runs_done']} runs, {h['points']} points; rerun or resume with "
        f"`lmscale sweep run {sweep.dir}`; fit again with `lmscale fit {sweep.dir}`).",
        "",
        "```",
        law.summary(),
        "```",
        "",
    ]
    if h["weakly_identified"]:
        lines += [WEAK_NOTE, ""]
    if h["extrapolation_are"] is not None:
        lines.append(f"Extrapolation: fitted without the largest model, the law predicts it with mean absolute "
                     f"relative error **{100 * h['extrapolation_are']:.2f}%** ({h['extrapolation_heldout']}).")
    lines += ["", "Figures (each with its data as CSV beside it):", ""]
    lines += [f"- `{p.relative_to(out)}`" for p in figures if p.suffix == ".png"]
    return "\n".join(lines) + "\n"
