#!/usr/bin/env python3
"""Mutation study: plant each bug of the catalogue alone in a copy of the project and check that
the default test run (no ``../shared/reference-data``) catches it.

The catalogue holds, per mutation, the file, the exact text it replaces (which must occur exactly
once, so the catalogue stays honest as the code moves: a stale entry is reported, never silently
skipped), the text that replaces it, and the pytest selection that must fail. The script

  1. copies src/, tests/, configs/, pyproject.toml and README.md into a temporary directory laid out
     as ``TMP/project`` (so ``ROOT.parent / "shared"`` does not exist there: tests that need the
     reference data skip, as in a default run on a fresh checkout);
  2. checks every selected entry's old text occurs exactly once;
  3. runs the union of the selections once unmutated (the baseline must pass, or nothing caught
     later means anything);
  4. for each mutation: writes the mutated file, runs its selection with ``PYTHONPATH`` pointing at
     the copy (``python -m pytest -x``), records caught / not caught, the seconds and the first
     failing test, and restores the file;
  5. prints a table, the totals and the machine.

A mutation is *caught* when pytest exits with status 1 and names at least one failing test;
any other status (nothing collected, an internal error, a timeout) counts as not caught.

    python benchmarks/mutations.py                 # every mutation
    python benchmarks/mutations.py --list          # the catalogue
    python benchmarks/mutations.py --only loader-epoch-ignored --only clipping-removed
    python benchmarks/mutations.py --repeat 3      # each mutation 3 times (flakiness)
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_model  # noqa: E402

COPIED = ("src", "tests", "configs", "pyproject.toml", "README.md")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "runs", "*.egg-info")


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # relative to the project root
    old: str
    new: str
    tests: tuple[str, ...]  # pytest node ids or paths
    claim: str = ""


T = "tests/"
M = Mutation
CATALOGUE: list[Mutation] = [
    # -- model -------------------------------------------------------------------------------
    M("causal-mask-removed", "src/lmscale/model/transformer.py",
      "    return jnp.tril(jnp.ones((T, T), dtype=bool))",
      "    return jnp.ones((T, T), dtype=bool)",
      (T + "model/test_decoder.py::test_causality",), "a token never sees later tokens"),
    M("attention-ignores-mask", "src/lmscale/model/transformer.py",
      "    scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)",
      "    scores = scores",
      (T + "model/test_decoder.py::test_causality",), "attention applies its mask"),
    # -- scaling laws ------------------------------------------------------------------------
    M("bootstrap-over-points", "src/lmscale/laws/estimators.py",
      "data.clusters(), n_resamples=n_resamples, seed=seed, n_starts=n_starts,",
      "np.arange(len(data)), n_resamples=n_resamples, seed=seed, n_starts=n_starts,",
      (T + "laws/test_bootstrap.py::test_bootstrap_resamples_whole_runs_so_correlated_runs_widen_the_interval",),
      "the bootstrap resamples whole runs"),
    M("cluster-weights-per-row", "src/lmscale/laws/bootstrap.py",
      "    n_c = int(clusters.max()) + 1\n",
      "    clusters = np.arange(len(clusters))\n    n_c = len(clusters)\n",
      (T + "laws/test_bootstrap.py::test_rows_of_one_run_always_appear_together",
       T + "laws/test_bootstrap.py::test_bootstrap_resamples_whole_runs_so_correlated_runs_widen_the_interval"),
      "a resample keeps all rows of a run together"),
    M("huber-averaged-estimator-default", "src/lmscale/laws/estimators.py",
      'def __init__(self, *, delta: float = 1e-3, reduction: str = "sum",',
      'def __init__(self, *, delta: float = 1e-3, reduction: str = "mean",',
      (T + "laws/test_estimators.py::test_fitted_objective_is_the_summed_huber_of_its_residuals",),
      "the objective is summed over points"),
    M("huber-averaged-objective-default", "src/lmscale/laws/objective.py",
      '                 reduction: str = "sum", weights',
      '                 reduction: str = "mean", weights',
      (T + "laws/test_forms.py::test_objective_is_the_sum_of_huber_terms_not_their_mean",),
      "the objective is summed over points"),
    M("huber-averaged-always", "src/lmscale/laws/objective.py",
      '            scale = 1.0 / self.n if self.reduction == "mean" else None',
      "            scale = 1.0 / self.n",
      (T + "laws/test_forms.py::test_objective_is_the_sum_of_huber_terms_not_their_mean",
       T + "laws/test_estimators.py::test_fitted_objective_is_the_summed_huber_of_its_residuals"),
      "the objective is summed over points"),
    # -- data --------------------------------------------------------------------------------
    M("loader-epoch-ignored", "src/lmscale/data/loader.py",
      "np.random.PCG64([self.seed, _LOADER_STREAM, epoch])",
      "np.random.PCG64([self.seed, _LOADER_STREAM])",
      (T + "data/test_loader.py",), "each epoch has its own permutation"),
    M("loader-wall-clock-seed", "src/lmscale/data/loader.py",
      "np.random.PCG64([self.seed, _LOADER_STREAM, epoch])",
      'np.random.PCG64([self.seed, _LOADER_STREAM, epoch, __import__("time").time_ns()])',
      (T + "data/test_loader.py",), "the batch of step s is a pure function of (seed, s)"),
    M("val-play-trained", "src/lmscale/data/corpus.py",
      "    train = [p for p in plays if p.slug not in val_slugs]",
      "    train = list(plays)",
      (T + "data/test_corpus.py::test_held_out_plays_are_never_trained_on_without_the_wheel",),
      "validation plays are held out"),
    M("val-document-trained", "src/lmscale/data/corpus.py",
      "        train, val = docs[:-n_val], docs[-n_val:]",
      "        train, val = docs, docs[-n_val:]",
      (T + "data/test_corpus.py::test_train_and_validation_are_disjoint_and_cover_the_corpus",),
      "validation documents are held out"),
    M("val-text-tail-trained", "src/lmscale/data/corpus.py",
      "    return doc[:cut], doc[cut:]",
      "    return doc, doc[cut:]",
      (T + "data/test_corpus.py::test_train_and_validation_are_disjoint_and_cover_the_corpus",),
      "a text file's validation tail is held out"),
    M("val-tokens-in-train-split", "src/lmscale/data/prepare.py",
      '(("train", corpus.train_text()), ("val", corpus.val_text()))',
      '(("train", corpus.train_text() + corpus.val_text()), ("val", corpus.val_text()))',
      (T + "data/test_prepare.py::test_prepared_splits_hold_exactly_their_own_text",),
      "the prepared train split holds no validation text"),
    # -- training ----------------------------------------------------------------------------
    M("decay-on-every-parameter", "src/lmscale/train/optimizer.py",
      '        return top != "embed" and len(features.intersection(spec)) >= 2',
      "        return True",
      (T + "train/test_optimizer.py::test_weight_decay_moves_exactly_the_weight_matrices",),
      "weight decay only on weight matrices"),
    M("decay-mask-dropped-sp", "src/lmscale/train/optimizer.py",
      "weight_decay=o.weight_decay, mask=decay_mask(axes))",
      "weight_decay=o.weight_decay)",
      (T + "train/test_optimizer.py::test_weight_decay_moves_exactly_the_weight_matrices",),
      "weight decay only on weight matrices (SP chain)"),
    M("decay-mask-dropped-mup", "src/lmscale/train/optimizer.py",
      "optax.add_decayed_weights(o.weight_decay, decay_mask(axes)),",
      "optax.add_decayed_weights(o.weight_decay),",
      (T + "train/test_optimizer.py::test_weight_decay_moves_exactly_the_weight_matrices",),
      "weight decay only on weight matrices (muP chain)"),
    M("grads-summed-over-micro-batches", "src/lmscale/train/step.py",
      "            loss_v, aux, grads = jax.tree.map(lambda x: x / grad_accum, (loss_v, aux, grads))",
      "            loss_v, aux = jax.tree.map(lambda x: x / grad_accum, (loss_v, aux))",
      (T + "train/test_core.py::test_micro_batches_are_averaged_not_summed",),
      "grad_accum=2 equals the single large batch"),
    M("clipping-removed", "src/lmscale/train/optimizer.py",
      "        parts.append(optax.clip_by_global_norm(o.grad_clip))",
      "        pass",
      (T + "train/test_core.py::test_gradient_clipping_clips_and_the_reported_norm_is_the_unclipped_one",),
      "gradient clipping clips"),
    M("resume-replays-a-batch-host", "src/lmscale/train/core.py",
      "        batches = [shard_batch(trainer, b) for b in host_batches(start_step)]",
      "        batches = [shard_batch(trainer, b) for b in host_batches(max(start_step - 1, 0))]",
      (T + "train/test_core.py::test_host_batches_resume_bitwise_and_draw_each_step_s_batch_once",),
      "resume equals the uninterrupted run"),
    M("resume-replays-a-batch-sigkill", "src/lmscale/train/core.py",
      "        batches = [shard_batch(trainer, b) for b in host_batches(start_step)]",
      "        batches = [shard_batch(trainer, b) for b in host_batches(max(start_step - 1, 0))]",
      (T + "train/test_loop.py::test_sigkill_and_resume_is_bitwise_identical",),
      "kill -9 and resume ends bitwise identical (the existing end-to-end test, ~80 s)"),
    M("resume-replays-a-step-device", "src/lmscale/train/core.py",
      "        step = start_step\n        while step < end:",
      "        step = max(start_step - 1, 0)\n        while step < end:",
      (T + "train/test_core.py::test_device_batches_run_between_state_hooks_in_one_call_and_resume_bitwise",),
      "resume equals the uninterrupted run (batches drawn on device)"),
    # -- ICL ---------------------------------------------------------------------------------
    M("ridge-2-lambda-prefix", "src/lmscale/icl/learners.py",
      "        gram, xty = _prefix_stats(xs, ys)\n        return np.linalg.solve(gram + self.lam * np.eye",
      "        gram, xty = _prefix_stats(xs, ys)\n        return np.linalg.solve(gram + 2 * self.lam * np.eye",
      (T + "icl/test_learners.py::test_ridge_is_the_closed_form_with_lambda_once",), "ridge is (X'X + lam I)^-1 X'y"),
    M("ridge-2-lambda-final", "src/lmscale/icl/learners.py",
      "        gram, xty = _final_stats(xs, ys)\n        return np.linalg.solve(gram + self.lam * np.eye",
      "        gram, xty = _final_stats(xs, ys)\n        return np.linalg.solve(gram + 2 * self.lam * np.eye",
      (T + "icl/test_learners.py::test_ridge_is_the_closed_form_with_lambda_once",), "ridge is (X'X + lam I)^-1 X'y"),
    # -- theory ------------------------------------------------------------------------------
    M("de-tangency-moved-1pct", "src/lmscale/theory/density_evolution.py",
      "    x_bp = np.where(interior, x_opt, 1.0)",
      "    x_bp = np.where(interior, x_opt * 1.01, 1.0)",
      (T + "theory/test_density_evolution.py::test_regular_3_6_threshold_literature",),
      "x_BP is the tangency point of DE"),
    M("de-closed-form-tangency-moved-1pct", "src/lmscale/theory/ensemble.py",
      "        x = -w / b\n",
      "        x = -1.01 * w / b\n",
      (T + "theory/test_density_evolution.py::test_poisson_threshold_closed_form_matches_numeric",),
      "the Lambert-W tangency point"),
    # -- emergence ---------------------------------------------------------------------------
    M("verdict-ci-rule-removed", "src/lmscale/emergence/detect.py",
      "    excl = res.ratio_ci[0] > 1 if math.isfinite(res.ratio_ci[0]) else big",
      "    excl = True",
      (T + "emergence/test_detect.py::test_bootstrap_lower_bound_of_ratio_must_exceed_1",),
      "the bootstrap lower bound of B/L must exceed 1"),
    *[M(f"ratio-min-curve-1.5-to-{v}", "src/lmscale/emergence/detect.py",
        "seed: int = 0, ratio_min: float = 1.5, onset_max: float = 0.1,\n                  confidence",
        f"seed: int = 0, ratio_min: float = {v}, onset_max: float = 0.1,\n                  confidence",
        (T + "emergence/test_detect.py::test_ratio_threshold_is_1_5_by_default",), "B/L >= 1.5")
      for v in ("1.0", "1.2", "2.0")],
    *[M(f"ratio-min-table-1.5-to-{v}", "src/lmscale/emergence/detect.py",
        "seed: int = 0, ratio_min: float = 1.5,\n                  onset_max",
        f"seed: int = 0, ratio_min: float = {v},\n                  onset_max",
        (T + "emergence/test_detect.py::test_ratio_threshold_is_1_5_by_default",), "B/L >= 1.5")
      for v in ("1.0", "1.2", "2.0")],
    M("ratio-min-cli-1.5-to-1.2", "src/lmscale/emergence/cli.py",
      'typer.Option(1.5, "--ratio-min"',
      'typer.Option(1.2, "--ratio-min"',
      (T + "emergence/test_cli.py::test_synthetic_then_analyze",), "B/L >= 1.5 (the CLI's default)"),
    M("onset-max-0.1-to-0.2", "src/lmscale/emergence/detect.py",
      "ratio_min: float = 1.5, onset_max: float = 0.1,\n                  confidence",
      "ratio_min: float = 1.5, onset_max: float = 0.2,\n                  confidence",
      (T + "emergence/test_detect.py::test_onset_threshold_0_1_when_the_curve_starts_above_chance",),
      "a flat start: onset <= 0.1"),
    M("verdict-r2-min-0.98-to-0.9", "src/lmscale/emergence/detect.py",
      "def verdict(results: dict[str, CurveResult], k_shot: int = 0, r2_min: float = 0.98)",
      "def verdict(results: dict[str, CurveResult], k_shot: int = 0, r2_min: float = 0.9)",
      (T + "emergence/test_detect.py::test_verdict_combines_the_primary_and_continuous_metrics",),
      "a continuous metric with -log p R^2 >= 0.98 is a clean power law"),
    M("above-chance-margin-dropped", "src/lmscale/emergence/detect.py",
      "    margin = tol * abs(best - chance) if curve.metric in BOUNDED else 0.0",
      "    margin = 0.0",
      (T + "emergence/test_detect.py::test_above_chance_without_intervals_needs_1pct_of_the_chance_to_perfect_range",),
      "above chance without an interval: by 1% of the chance-to-perfect range"),
    M("verdict-ignores-chance-at-the-end", "src/lmscale/emergence/detect.py",
      "    res.sharp = bool(big and excl and flat_start and res.above_chance_end)",
      "    res.sharp = bool(big and excl and flat_start)",
      (T + "emergence/test_detect.py::test_a_curve_that_never_leaves_chance_is_not_sharp",),
      "a sharp curve ends above chance"),
    # -- sweeps: claims, leases, paths (tests/sweep) ------------------------------------------
    M('claim-read-outside-txn', 'src/lmscale/sweep/registry.py',
      '        now = time.time()\n        with self.transaction() as db:\n            rows = db.execute(\n                "SELECT job, status, worker, heartbeat FROM jobs WHERE status IN (\'pending\', \'running\') ORDER BY ord"\n            ).fetchall()\n            claim_delay()\n',
      '        now = time.time()\n        rows = self.db.execute(\n            "SELECT job, status, worker, heartbeat FROM jobs WHERE status IN (\'pending\', \'running\') ORDER BY ord"\n        ).fetchall()\n        claim_delay()\n        with self.transaction() as db:\n',
      (T + "sweep/test_registry.py::test_a_claim_stays_exclusive_with_a_delay_between_its_read_and_its_write",), 'a claim reads and updates in one transaction'),
    M('lease-link-to-replace', 'src/lmscale/sweep/lease.py',
      '            os.link(tmp, path)\n',
      '            os.replace(tmp, path)\n',
      (T + "sweep/test_registry.py::test_a_lease_is_created_by_exactly_one_of_two_racing_workers",), "exactly one worker wins a job's lease"),
    M('claim-live-job-once-stale', 'src/lmscale/sweep/registry.py',
      '                    if alive is True or alive is None and not stale:\n',
      '                    if alive is True and not stale or alive is None and not stale:\n',
      (T + "sweep/test_registry.py::test_a_live_workers_job_is_not_claimable_however_old_its_heartbeat",), "a live worker's job is never taken over on its host"),
    M('alive-ignores-host', 'src/lmscale/sweep/registry.py',
      '    if host != socket.gethostname():\n        return None\n',
      '    if True:\n        return None\n',
      (T + "sweep/test_registry.py::test_a_live_workers_job_is_not_claimable_however_old_its_heartbeat",), 'a live worker on this host is seen alive'),
    M('alive-ignores-host-e2e', 'src/lmscale/sweep/registry.py',
      '    if host != socket.gethostname():\n        return None\n',
      '    if True:\n        return None\n',
      (T + "sweep/test_runner.py::test_a_stopped_worker_keeps_its_job_and_no_run_is_trained_twice",), "a stopped (SIGSTOP) worker's job is not trained twice"),
    M('lease-live-free-once-stale', 'src/lmscale/sweep/lease.py',
      '    if alive is not None:\n        return not alive\n',
      '    if alive is False:\n        return True\n',
      (T + "sweep/test_registry.py::test_a_live_workers_job_is_not_claimable_however_old_its_heartbeat",), "a live worker's lease is not superseded"),
    M('pid-reuse-ignored', 'src/lmscale/sweep/registry.py',
      '        if start:\n            return start[0] == str(now)\n',
      '        if start:\n            return True\n',
      (T + "sweep/test_registry.py::test_a_live_workers_job_is_not_claimable_however_old_its_heartbeat",), 'a reused pid is not the old worker'),
    M('zombie-alive', 'src/lmscale/sweep/registry.py',
      '    if fields[0] in ("Z", "X"):\n        return None\n',
      '',
      (T + "sweep/test_registry.py::test_a_live_workers_job_is_not_claimable_however_old_its_heartbeat",), 'a zombie worker is gone'),
    M('no-check-per-step', 'src/lmscale/sweep/runner.py',
      '        self.hold.check(f"step {step + 1}")\n',
      '',
      (T + "sweep/test_runner.py::test_a_worker_that_lost_its_job_stops_at_the_next_step_and_records_nothing",), 'a worker that lost its job stops'),
    M('done-run-rewritable', 'src/lmscale/sweep/registry.py',
      'WHERE run_id = ? AND status != \'done\'"',
      'WHERE run_id = ?"',
      (T + "sweep/test_registry.py::test_a_done_run_is_never_rewritten_and_only_its_jobs_worker_records_it",), 'a done run is recorded once'),
    M('set-run-any-worker', 'src/lmscale/sweep/registry.py',
      '        if worker is not None:\n            q += " AND job IN',
      '        if False:\n            q += " AND job IN',
      (T + "sweep/test_registry.py::test_a_done_run_is_never_rewritten_and_only_its_jobs_worker_records_it",), "only the job's owner records"),
    M('run-id-unchecked', 'src/lmscale/sweep/registry.py',
      '    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):\n',
      '    if not isinstance(value, str):\n',
      (T + "sweep/test_runner.py::test_a_run_id_that_leaves_the_sweep_directory_is_refused",), 'run ids stay inside the sweep'),
    M('run-id-unchecked-unit', 'src/lmscale/sweep/registry.py',
      '    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):\n',
      '    if not isinstance(value, str):\n',
      (T + "sweep/test_registry.py::test_run_ids_from_the_registry_must_be_run_names_inside_the_sweep",), 'run ids match the run-name pattern'),
    M('symlink-escape', 'src/lmscale/sweep/registry.py',
      '    if where.parent != runs.resolve():\n',
      '    if False:\n',
      (T + "sweep/test_registry.py::test_run_ids_from_the_registry_must_be_run_names_inside_the_sweep",), 'a symlinked run dir cannot escape'),
    M('curves-duplicated', 'src/lmscale/sweep/results.py',
      ' or m["step"] in seen:',
      ':',
      (T + "sweep/test_registry.py::test_curves_hold_one_point_per_evaluation_step_even_if_a_late_worker_appended_again",), 'one curve point per step'),
    M('override-keys-accepted', 'src/lmscale/sweep/spec.py',
      '                if hit:\n',
      '                if False:\n',
      (T + "sweep/test_runner.py::test_grid_and_set_keys_the_expansion_overrides_are_errors",), 'grid keys the ladder or budget set are errors'),
    M('sqlite-errors-unwrapped', 'src/lmscale/sweep/registry.py',
      '        except sqlite3.Error as err:\n            raise LmscaleError(f"registry',
      '        except ZeroDivisionError as err:\n            raise LmscaleError(f"registry',
      (T + "sweep/test_runner.py::test_unreadable_sweep_files_are_one_line_errors",), 'a garbage registry is one line'),
    M('sweep-dir-file-unchecked', 'src/lmscale/sweep/runner.py',
      '        if out.exists() and not out.is_dir():  # refused before the data is prepared\n',
      '        if False:\n',
      (T + "sweep/test_runner.py::test_sweep_run_into_a_file_is_a_one_line_error",), '--dir on a file is one line'),
    M('binary-record-unwrapped', 'src/lmscale/sweep/runner.py',
      '    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:',
      '    except (OSError, yaml.YAMLError) as err:',
      (T + "sweep/test_runner.py::test_unreadable_sweep_files_are_one_line_errors",), 'a binary sweep file is one line'),
    # -- checkpoints -------------------------------------------------------------------------
    M("checkpoint-size-and-checksum-unchecked", "src/lmscale/train/checkpoint.py",
      "        size = f.stat().st_size\n        if size != info[\"bytes\"]:",
      "        size = f.stat().st_size\n        continue\n        if size != info[\"bytes\"]:",
      (T + "train/test_checkpoint.py::test_the_checksum_decides_orbax_alone_would_restore_a_flipped_byte",),
      "a corrupted checkpoint is detected and the previous one used"),
    M("npz-checksum-unchecked", "src/lmscale/train/checkpoint.py",
      'or sha256_file(npz) != meta["npz_sha256"]:', ":",
      (T + "train/test_checkpoint.py::test_checkpoints_of_the_npz_format_before_orbax_still_load",),
      "a valid archive with the wrong content is rejected by its checksum"),
    # -- nothing changed on an error path (tests/train/test_run_dirs.py) ----------------------
    M("run-dir-created-before-the-model", "src/lmscale/train/core.py",
      '    return "new"', '    create_run_dir(m)\n    return "created"',
      (T + "train/test_run_dirs.py::test_a_run_that_cannot_be_built_writes_no_run_directory",),
      "a run that cannot be built writes no run directory"),
    M("data-prepared-before-the-resume-check", "src/lmscale/train/lm.py",
      "            check_run_source(d, checksum)", "            pass",
      (T + "train/test_run_dirs.py::test_a_changed_corpus_is_refused_before_its_prepared_cache_is_touched",),
      "a changed corpus is refused before its cache is rebuilt"),
    M("core-writes-without-asking", "src/lmscale/train/core.py",
      '    check("opening the run directories")\n', "",
      (T + "train/test_run_dirs.py::test_the_core_asks_before_every_write_and_stops_there",),
      "a worker that lost its job writes nothing"),
    M("mesh-change-silent", "src/lmscale/train/core.py",
      "    if saved is None or saved == now:", "    if True:",
      (T + "train/test_run_dirs.py::test_a_resume_on_another_mesh_says_it_will_not_be_bitwise",),
      "a resume on another mesh warns"),
]


# ----------------------------------------------------------------------------------------------


def copy_project(src: Path, dest: Path) -> Path:
    proj = dest / "project"
    proj.mkdir(parents=True)
    for name in COPIED:
        p = src / name
        if p.is_dir():
            shutil.copytree(p, proj / name, ignore=IGNORED)
        elif p.is_file():
            shutil.copy2(p, proj / name)
    return proj


def stale(mutations: list[Mutation], proj: Path) -> list[str]:
    """Entries whose old text does not occur exactly once (or whose tests are missing)."""
    bad = []
    for m in mutations:
        path = proj / m.file
        if not path.is_file():
            bad.append(f"{m.name}: {m.file} does not exist")
            continue
        n = path.read_text(encoding="utf-8").count(m.old)
        if n != 1:
            bad.append(f"{m.name}: the old text occurs {n} times in {m.file}; expected exactly once")
        for t in m.tests:
            if not (proj / t.split("::")[0]).exists():
                bad.append(f"{m.name}: test file {t.split('::')[0]} does not exist")
    return bad


def pytest_run(proj: Path, tests, timeout: float, first_failure: bool = True) -> tuple[int, float, str]:
    env = dict(os.environ, PYTHONPATH=str(proj / "src"), PYTHONDONTWRITEBYTECODE="1")
    env.pop("LMSCALE_CACHE", None)  # the tests' conftest gives every session its own cache
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--no-header",
           "-rfE", *(["-x"] if first_failure else []), *tests]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=proj, env=env, capture_output=True, text=True, timeout=timeout)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc = 124
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    return rc, time.perf_counter() - t0, out


def failing_tests(out: str) -> list[str]:
    return re.findall(r"^(?:FAILED|ERROR) (\S+)", out, flags=re.M)


def check_import_path(proj: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(proj / "src"))
    out = subprocess.run([sys.executable, "-c", "import lmscale; print(lmscale.__file__)"], cwd=proj, env=env,
                         capture_output=True, text=True).stdout.strip()
    if not out.startswith(str(proj)):
        raise SystemExit(f"the copy is not what gets imported (lmscale from {out}); expected {proj}")
    return out


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    try:
        import jax  # noqa: F401

        jv = f", jax {jax.__version__}"
    except Exception:  # noqa: BLE001 - informational only
        jv = ""
    return (f"{cpu_model()}, {os.cpu_count()} cores, load {load}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}{jv}")


def short(nodeid: str) -> str:
    return nodeid.removeprefix("tests/")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only this mutation (repeatable; a trailing * matches a prefix)")
    ap.add_argument("--list", action="store_true", help="print the catalogue and exit")
    ap.add_argument("--source", type=Path, default=ROOT, help="the project to copy (default: this checkout)")
    ap.add_argument("--repeat", type=int, default=1, help="run each mutation this many times (flakiness)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per pytest run")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the selections")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = ap.parse_args(argv)

    def wanted(m: Mutation) -> bool:
        if not args.only:
            return True
        return any(m.name == o or (o.endswith("*") and m.name.startswith(o[:-1])) for o in args.only)

    muts = [m for m in CATALOGUE if wanted(m)]
    if args.only and not muts:
        print(f"error: no mutation matches {args.only}; see --list", file=sys.stderr)
        return 2
    if args.list:
        w = max(len(m.name) for m in muts)
        for m in muts:
            print(f"{m.name:<{w}}  {m.file}  [{m.claim}]\n{'':<{w}}  tests: {' '.join(map(short, m.tests))}")
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="lmscale-mutations-"))
    try:
        proj = copy_project(args.source.resolve(), tmp)
        bad = stale(muts, proj)
        if bad:
            print("stale catalogue entries (fix them before trusting the study):", file=sys.stderr)
            for b in bad:
                print(f"  {b}", file=sys.stderr)
            return 1
        print(f"copy: {proj} (imports {check_import_path(proj)}); no reference data: "
              f"{not (proj.parent / 'shared').exists()}", flush=True)
        t_all = time.perf_counter()
        if not args.no_baseline:
            sel = list(dict.fromkeys(t for m in muts for t in m.tests))
            rc, secs, out = pytest_run(proj, sel, args.timeout, first_failure=False)
            print(f"baseline (unmutated, {len(sel)} selections): exit {rc} in {secs:.0f} s", flush=True)
            if rc != 0:
                print(out[-4000:], file=sys.stderr)
                print("error: the selected tests fail without any mutation; fix the baseline first", file=sys.stderr)
                return 1
        rows = []
        for m in muts:
            path = proj / m.file
            original = path.read_text(encoding="utf-8")
            path.write_text(original.replace(m.old, m.new, 1), encoding="utf-8")
            try:
                for i in range(args.repeat):
                    rc, secs, out = pytest_run(proj, m.tests, args.timeout)
                    failed = failing_tests(out)
                    caught = rc == 1 and bool(failed)
                    why = short(failed[0]) if failed else (f"pytest exit {rc}" + (" (timeout)" if rc == 124 else ""))
                    rows.append((m.name, caught, secs, why))
                    print(f"  {m.name}{f' #{i + 1}' if args.repeat > 1 else ''}: "
                          f"{'caught' if caught else 'NOT CAUGHT'} ({secs:.0f} s) {why}", flush=True)
            finally:
                path.write_text(original, encoding="utf-8")
        total = time.perf_counter() - t_all
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    w = max(len(r[0]) for r in rows)
    print()
    print(f"{'mutation':<{w}}  caught  seconds  failing test")
    print(f"{'-' * w}  ------  -------  {'-' * 40}")
    for name, caught, secs, why in rows:
        print(f"{name:<{w}}  {'yes' if caught else 'NO':<6}  {secs:7.1f}  {why}")
    n_caught = sum(r[1] for r in rows)
    print(f"\ncaught {n_caught}/{len(rows)} runs of {len(muts)} mutations; {total:.0f} s in all (baseline included)")
    print(f"machine: {machine()}")
    return 0 if n_caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
