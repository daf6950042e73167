"""In-context learning lab: function classes, prompt formats, reference learners and metrics.

    from lmscale.icl import TaskConfig, sample_batch, encode, make_learner, normalized_error, spd

Modules: tasks (function classes, OOD prompts), prompts (token formats, curriculum), learners
(reference estimators), metrics (error curves, SPD/ILWD); config, model, train, evaluate, probe,
experiments, figures and cli (models, training and the `lmscale icl` commands). Names are loaded on
first use, so importing `lmscale.icl.cli` (done by the `lmscale` command) does not import JAX.
"""

from __future__ import annotations

from lmscale.lazy import lazy_getattr

_EXPORTS = {
    "TaskConfig": "lmscale.icl.tasks",
    "OODConfig": "lmscale.icl.tasks",
    "Batch": "lmscale.icl.tasks",
    "task_config": "lmscale.icl.tasks",
    "sample_batch": "lmscale.icl.tasks",
    "task_pool": "lmscale.icl.tasks",
    "pool_weights": "lmscale.icl.tasks",
    "encode": "lmscale.icl.prompts",
    "decode": "lmscale.icl.prompts",
    "token_dim": "lmscale.icl.prompts",
    "x_positions": "lmscale.icl.prompts",
    "y_channel": "lmscale.icl.prompts",
    "Curriculum": "lmscale.icl.prompts",
    "Schedule": "lmscale.icl.prompts",
    "Learner": "lmscale.icl.learners",
    "LEARNERS": "lmscale.icl.learners",
    "make_learner": "lmscale.icl.learners",
    "best_gd_lr": "lmscale.icl.learners",
    "CurveResult": "lmscale.icl.metrics",
    "squared_error": "lmscale.icl.metrics",
    "bootstrap_mean": "lmscale.icl.metrics",
    "normalized_error": "lmscale.icl.metrics",
    "spd": "lmscale.icl.metrics",
    "mspd": "lmscale.icl.metrics",
    "delta": "lmscale.icl.metrics",
    "implied_weights": "lmscale.icl.metrics",
    "ilwd": "lmscale.icl.metrics",
    "ilwd_curve": "lmscale.icl.metrics",
    "best_match": "lmscale.icl.metrics",
    # Models, training and experiments (names equal to a submodule, e.g. `train`, are left out:
    # binding them would shadow the module).
    "ICLConfig": "lmscale.icl.config",
    "load_icl_config": "lmscale.icl.config",
    "validate_icl_config": "lmscale.icl.config",
    "count_params": "lmscale.icl.model",
    "gd_construction": "lmscale.model.icl",
    "model_of": "lmscale.icl.model",
    "icl_trainer": "lmscale.icl.train",
    "load_run": "lmscale.icl.train",
    "error_curves": "lmscale.icl.evaluate",
    "lsa_report": "lmscale.icl.evaluate",
    "ModelAsLearner": "lmscale.icl.evaluate",
    "probe_model": "lmscale.icl.probe",
    "gradient_alignment": "lmscale.icl.probe",
    "eval_run": "lmscale.icl.experiments",
    "compare_run": "lmscale.icl.experiments",
    "probe_run": "lmscale.icl.experiments",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
