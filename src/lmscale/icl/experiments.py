"""The ICL experiments as functions of a run directory or a config: each writes JSON, a figure
(PNG + CSV) and returns a plain-text table.

- `eval_run`: Garg's error curve (gpt) or von Oswald's LSA-versus-GD comparison (lsa);
- `compare_run`: SPD / MSPD / ILWD of the model to each reference learner, best match;
- `probe_run`: per-layer probes (and a control run) plus gradient alignment;
- `sweep`: train every variant of a config's ``sweep`` section and tabulate the distance of each
  to each learner (the depth phases, Akyürek's noise table, the task-diversity transition).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lmscale.errors import LmscaleError
from lmscale.fileio import atomic_write_json
from lmscale.laws.tables import format_table


def _out_dir(run_dir: Path, out: str | Path | None) -> Path:
    d = Path(out) if out is not None else Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    return d


def eval_run(run_dir: str | Path, out: str | Path | None = None, member: int = 0, warn=None) -> tuple[dict[str, Any], str]:
    """(results written to eval.json, table): the error curve of a gpt run or the LSA report."""
    from lmscale.icl.evaluate import error_curves, lsa_report
    from lmscale.icl.figures import error_curve_figure, lsa_figure
    from lmscale.icl.train import load_run
    from lmscale.train.core import METRICS
    from lmscale.train.metrics import read_metrics

    run = load_run(run_dir, member, warn=warn)
    out_dir = _out_dir(Path(run_dir), out)
    cfg = run.cfg
    if cfg.model.kind == "lsa":
        rep = lsa_report(run.params, cfg)
        history = [r for r in read_metrics(run.run_dir / METRICS) if r.get("kind") == "train"]
        files = lsa_figure(history, rep, out_dir, f"{cfg.name}: 1-layer LSA vs one GD step (d = {cfg.task.d})")
        res = {"kind": "lsa", "step": run.step, **rep, "figure": str(files.png)}
        rows = [[k, rep[k]] for k in ("loss_model", "loss_gd_best", "eta_best", "loss_zero", "loss_ols",
                                      "model_vs_gd_msd", "relative_gap")]
        table = format_table(["quantity", "value"], rows, title=f"{cfg.name} (test prompts: {rep['prompts']}, y units²)")
    else:
        curves = error_curves(run.params, cfg)
        files = error_curve_figure(curves, out_dir, f"{cfg.name}: d = {cfg.task.d}, {cfg.task.kind}")
        res = {"kind": "gpt", "step": run.step, "normalizer": curves.normalizer, "k": curves.k.tolist(),
               "curves": {lab: {"mean": np.asarray(c.mean).tolist(), "low": np.asarray(c.low).tolist(),
                                "high": np.asarray(c.high).tolist()} for lab, c in curves.curves.items()},
               "figure": str(files.png)}
        labels = list(curves.curves)
        rows = [[int(k)] + [float(np.asarray(curves.curves[lab].mean)[i]) for lab in labels] for i, k in enumerate(curves.k)]
        table = format_table(["k"] + labels, rows, title=f"{cfg.name}: normalised squared error (÷ {curves.normalizer:g})")
    atomic_write_json(out_dir / "eval.json", res)
    return res, table


def compare_run(run_dir: str | Path, out: str | Path | None = None, member: int = 0, warn=None) -> tuple[dict[str, Any], str]:
    """SPD/ILWD table of the model against each learner (compare.json, compare.png/.csv)."""
    from lmscale.icl.evaluate import compare
    from lmscale.icl.figures import distance_figure
    from lmscale.icl.train import load_run

    run = load_run(run_dir, member, warn=warn)
    if run.cfg.model.kind != "gpt":
        raise LmscaleError("compare needs a gpt run (every prefix predicted); for an LSA run use `lmscale icl eval`")
    out_dir = _out_dir(Path(run_dir), out)
    res = compare(run.params, run.cfg)
    ks = list(range(1, run.cfg.n_points))
    table_k = {f"k={k}": {r["learner"]: r["spd"][k] for r in res["rows"]} for k in ks}
    files = distance_figure(table_k, out_dir, f"{run.cfg.name}: SPD(model, learner) / d per k", "SPD / d", name="compare")
    res["figure"] = str(files.png)
    atomic_write_json(out_dir / "compare.json", res)
    rows = [[r["learner"], r["mspd"], r["delta"], r["ilwd_mean"]] for r in res["rows"]]
    table = format_table(["learner", "MSPD (1<=k<d)", "Δ (SPD over all k)", "ILWD mean (n=1..k-1)"], rows,
                         title=f"{run.cfg.name}: distance of the model to each learner (÷ d); best match: {res['best_match']}")
    return res, table


def probe_run(run_dir: str | Path, control: str | Path | None = None, out: str | Path | None = None,
              mlp_steps: int = 500, warn=None) -> tuple[dict[str, Any], str]:
    """Per-layer probe R² (probe.json, probe.png/.csv) and gradient alignment, optionally with a control run."""
    from lmscale.icl.figures import probe_figure
    from lmscale.icl.probe import gradient_alignment, probe_model
    from lmscale.icl.train import load_run

    run = load_run(run_dir, warn=warn)
    out_dir = _out_dir(Path(run_dir), out)
    rows = probe_model(run.params, run.cfg, mlp_steps=mlp_steps)
    ctrl_rows = None
    if control is not None:
        crun = load_run(control, warn=warn)
        if crun.cfg.task.d != run.cfg.task.d or crun.cfg.n_points != run.cfg.n_points:
            raise LmscaleError("control run has another task.d or n_points; expected the same prompt shape as the run")
        # The control is probed on the main run's prompts (fresh tasks), where it has nothing to encode.
        ctrl_cfg = crun.cfg.model_copy(update={"task": run.cfg.task, "eval": run.cfg.eval})
        ctrl_rows = probe_model(crun.params, ctrl_cfg, mlp_steps=mlp_steps)
    align = gradient_alignment(run.params, run.cfg)
    files = probe_figure(rows, out_dir, f"{run.cfg.name}: probes per layer", ctrl_rows)
    res = {"probes": rows, "control": ctrl_rows, "gradient_alignment": align, "figure": str(files.png)}
    atomic_write_json(out_dir / "probe.json", res)
    n_max = max(r["n"] for r in rows)
    layers = sorted({r["layer"] for r in rows})
    cols = [(t, p) for t in ("xty", "w_ols") for p in ("linear", "mlp")]
    look = {(r["layer"], r["target"], r["probe"]): r["r2"] for r in rows if r["n"] == n_max}
    trows = [[layer] + [look[(layer, t, p)] for t, p in cols] for layer in layers]
    table = format_table(["layer"] + [f"R² {t} {p}" for t, p in cols], trows, title=f"probes at n = {n_max} (held out)")
    table += "\n\n" + format_table(["n", "cos(∂ŷ/∂x_q, w_OLS)"], [[a["n"], a["cos_w_ols"]] for a in align])
    return res, table


def sweep(config: str | Path, overrides: list[str] | None = None, out: str | Path | None = None,
          reporter=None) -> tuple[dict[str, Any], str]:
    """Train each variant of the config's ``sweep`` section (resumable: finished runs are kept) and
    tabulate the model's distance to each learner per variant (sweep.json, sweep.png/.csv)."""
    from lmscale.icl.config import load_icl_config, with_overrides
    from lmscale.icl.evaluate import MODEL, error_curves
    from lmscale.icl.figures import distance_figure
    from lmscale.icl.metrics import best_match
    from lmscale.icl.train import load_run, train

    base = load_icl_config(config, overrides)
    if base.sweep is None:
        raise LmscaleError(f"config {str(config)!r} has no 'sweep' section; expected sweep.variants (see configs/icl/depth.yaml)")
    spec = base.sweep
    out_dir = Path(out) if out is not None else Path("runs") / "icl" / base.name
    plain = base.model_copy(update={"sweep": None})
    variants = [(v.name, with_overrides(plain, v.set, source=f"sweep variant {v.name}")) for v in spec.variants]
    table: dict[str, dict[str, float]] = {}
    best: dict[str, str] = {}
    for name, cfg in variants:
        if reporter is not None:
            reporter.log(f"variant {name}")
        train(cfg.model_copy(update={"name": f"{base.name}-{name}"}), out_dir / name, reporter=reporter)
        run = load_run(out_dir / name)
        curves = error_curves(run.params, run.cfg)
        refs = {k: v for k, v in curves.predictions.items() if k != MODEL}
        ranking = best_match(curves.predictions[MODEL], refs, run.cfg.task.d, spec.distance)
        table[name] = {label: dict(ranking)[label] for label in refs}
        best[name] = ranking[0][0]
    what = "MSPD (1 <= k < d)" if spec.distance == "mspd" else "Δ (SPD over all k)"
    files = distance_figure(table, out_dir, f"{base.name}: {what} / d of the model to each learner", f"{what} / d")
    res = {"kind": spec.kind, "distance": spec.distance, "table": table, "best_match": best, "figure": str(files.png)}
    atomic_write_json(out_dir / "sweep.json", res)
    learners = list(next(iter(table.values())))
    rows = [[lab] + [table[v][lab] for v in table] for lab in learners]
    rows.append(["best match"] + [best[v] for v in table])
    text = format_table(["learner \\ variant"] + list(table), rows, title=f"{base.name} ({spec.kind}): {what} / d")
    return res, text
