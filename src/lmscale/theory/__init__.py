"""Information theory of scaling (Nayak & Varshney 2024) in float64 (no float128).

Lower layer: concept–text graphs as LDPC codes (`ensemble`), density evolution and the BP
threshold (`density_evolution`), finite-length scaling (`finite_length`), the compute-optimal
allocation (`optimum`), the loss bound (`loss`) and a Monte-Carlo peeling decoder (`peeling`).
Upper layer: skill graphs and emergence (`skills`, `random_graphs`), the quantization model
(`quantization`), figures (`figures`) and overlays on measured curves (`overlay`).

Units: R concepts, T texts, C = R T (model units); N = params_per_concept R parameters,
D = tokens_per_text T tokens, C_FLOPs = 6 N D.

    from lmscale.theory import NVParams, compute_optimal
    sweep = compute_optimal(np.logspace(4, 20, 200), NVParams())
    sweep.N_star, sweep.D_star, sweep.tokens_per_param

Names are loaded on first use, so importing the package loads no SciPy or matplotlib.
"""

from __future__ import annotations

from lmscale.lazy import lazy_getattr

_EXPORTS = {
    **dict.fromkeys(['Threshold', 'asymptotic_bit_erasure', 'bp_threshold', 'de_fixed_point', 'de_step', 'de_trajectory', 'poisson_threshold'], 'lmscale.theory.density_evolution'),
    **dict.fromkeys(['BinomialDegrees', 'ConceptTextEnsemble', 'DegreeDistribution', 'NVParams', 'PoissonDegrees', 'RegularDegrees', 'RegularEnsemble', 'concept_text_degrees', 'lambert_w_threshold', 'validate_concept_text'], 'lmscale.theory.ensemble'),
    **dict.fromkeys(['alpha_variant_figure', 'compute_optimal_figure', 'concepts_learned_figure', 'default_sweep', 'emergence_figure', 'quantization_figure', 'write_all'], 'lmscale.theory.figures'),
    **dict.fromkeys(['BETA_REGULAR_3_6', 'Waterfall', 'concepts_learned', 'scaling_alpha', 'waterfall'], 'lmscale.theory.finite_length'),
    **dict.fromkeys(['LossBound', 'chinchilla_excess_loss', 'excess_entropy_bound', 'loglog_slope', 'loss_bound', 'train_error_probability'], 'lmscale.theory.loss'),
    **dict.fromkeys(['OptimumSweep', 'compute_optimal', 'fit_tokens_per_text', 'predicted_allocation'], 'lmscale.theory.optimum'),
    **dict.fromkeys(['LawFrontier', 'OverlayResult', 'TaskFit', 'emergence_shape', 'fit_task', 'frontier_from_json', 'frontier_from_law', 'load_frontier', 'load_task_curves', 'theory_overlay'], 'lmscale.theory.overlay'),
    **dict.fromkeys(['Comparison', 'ErasedGraph', 'MonteCarlo', 'compare_with_theory', 'peel', 'sample_concept_text', 'sample_regular', 'simulate', 'texts_for_z'], 'lmscale.theory.peeling'),
    **dict.fromkeys(['ExponentFit', 'fit_exponent', 'loss_after_quanta', 'loss_vs_data', 'loss_vs_params', 'per_quantum_losses', 'predicted_exponents', 'quanta_from_data', 'quanta_from_params', 'quantum_thresholds', 'tail_mass', 'zipf_alpha_from_exponent', 'zipf_frequencies'], 'lmscale.theory.quantization'),
    **dict.fromkeys(['GiantComponentMC', 'giant_fraction', 'giant_fraction_mc', 'largest_component_fraction', 'sample_er_edges'], 'lmscale.theory.random_graphs'),
    **dict.fromkeys(['EmergenceCurves', 'SkillParams', 'aggregate_accuracy', 'crossing', 'edge_probability', 'emergence_curves', 'emergence_scale_closed_form', 'level_distribution', 'level_giant_fractions', 'plateau_heights', 'skill_pair_probability', 'task_accuracy'], 'lmscale.theory.skills'),
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
