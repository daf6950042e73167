"""Emergent abilities: a multi-metric evaluation harness, few-shot prompts, emergence detection,
forecasts and the ability ledger. The synthetic skill suites and the skills-mixture corpus they
train on belong to the data layer (`lmscale.data.tasks`, `lmscale.data.mixture`).

    from lmscale.data.tasks import get_task
    from lmscale.emergence import evaluate, write_eval_table, analyze_table

Names are loaded on first use, so importing the package (as the `lmscale` command does) loads
no JAX, SciPy or matplotlib.
"""

from __future__ import annotations

from lmscale.lazy import lazy_getattr

_EXPORTS = {
    # few-shot prompts (fewshot.py)
    "with_shots": "lmscale.emergence.fewshot",
    # evaluation (harness.py, passuntil.py)
    "EvalModel": "lmscale.emergence.harness",
    "TaskResult": "lmscale.emergence.harness",
    "model_from_run": "lmscale.emergence.harness",
    "evaluate": "lmscale.emergence.harness",
    "evaluate_task": "lmscale.emergence.harness",
    "result_rows": "lmscale.emergence.harness",
    "bootstrap_mean": "lmscale.emergence.harness",
    "HARNESS_METRICS": "lmscale.emergence.harness",
    "pass_until": "lmscale.emergence.passuntil",
    "PassUntilResult": "lmscale.emergence.passuntil",
    "token_pass_draw": "lmscale.emergence.passuntil",
    "bernoulli_draw": "lmscale.emergence.passuntil",
    "run_eval": "lmscale.emergence.eval_cli",
    # the results table (results.py)
    "EvalRow": "lmscale.emergence.results",
    "EvalTable": "lmscale.emergence.results",
    "Curve": "lmscale.emergence.results",
    "read_eval_table": "lmscale.emergence.results",
    "write_eval_table": "lmscale.emergence.results",
    "derive_token_prob": "lmscale.emergence.results",
    "METRICS": "lmscale.emergence.results",
    # detection, forecasts, ledger, figures, synthetic curves
    "analyze_curve": "lmscale.emergence.detect",
    "analyze_table": "lmscale.emergence.detect",
    "breakthroughness_linearity": "lmscale.emergence.detect",
    "verdict": "lmscale.emergence.detect",
    "CurveResult": "lmscale.emergence.detect",
    "TaskVerdict": "lmscale.emergence.detect",
    "Forecast": "lmscale.emergence.forecast",
    "forecast_task": "lmscale.emergence.forecast",
    "per_token_forecast": "lmscale.emergence.forecast",
    "pass_until_forecast": "lmscale.emergence.forecast",
    "two_step_forecast": "lmscale.emergence.forecast",
    "Ledger": "lmscale.emergence.ledger",
    "AbilityStatus": "lmscale.emergence.ledger",
    "mirage_figure": "lmscale.emergence.figures",
    "loss_and_transitions_figure": "lmscale.emergence.figures",
    "metric_vs_loss_figure": "lmscale.emergence.figures",
    "ledger_grid_figure": "lmscale.emergence.figures",
    "SyntheticTask": "lmscale.emergence.synthetic",
    "mirage_rows": "lmscale.emergence.synthetic",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
