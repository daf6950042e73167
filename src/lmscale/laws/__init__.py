"""Scaling-law fitting: functional forms, robust multi-start fits, Chinchilla Approaches 1-3,
cluster bootstrap, compute-optimal frontier, extrapolation checks and family comparisons.

Units: N parameters (total unless stated), D tokens, C FLOPs (6ND unless the data give it),
loss nats/token.

scikit-learn conventions: `__init__` stores parameters, `fit(data)` returns self and sets only
`_`-suffixed attributes, `predict(N, D)` is a loss on every law, and `optimal_allocation(C)` is the
same call on Approaches 1, 2 and 3. The bootstrap and the extrapolation check are free functions
(as scikit-learn keeps `cross_validate` outside estimators); summaries live in `summary`.

    from lmscale.laws import ChinchillaLaw, extrapolation_check, load_scaling_data
    from lmscale.laws.bootstrap import bootstrap  # functions named like their modules: import from there
    from lmscale.laws.summary import summary
    data = load_scaling_data("results.csv")
    law = ChinchillaLaw().fit(data)
    boot = bootstrap(law, 1000, compute=[1e18, 1e19])
    print(summary(law, boot, extrapolation_check(ChinchillaLaw(), data, "largest")))
"""

from lmscale.lazy import lazy_getattr

_EXPORTS = {
    **dict.fromkeys(['BootstrapResult', 'cluster_weights'], 'lmscale.laws.bootstrap'),
    **dict.fromkeys(['CompareResult', 'compare', 'compare_families'], 'lmscale.laws.compare'),
    **dict.fromkeys(['ScalingData', 'epoch_chinchilla_data', 'load_curves', 'load_scaling_data'], 'lmscale.laws.data'),
    **dict.fromkeys(['EnvelopeAllocation'], 'lmscale.laws.envelope'),
    **dict.fromkeys(['LAWS', 'ChinchillaLaw', 'ChinchillaSharedLaw', 'DataConstrainedLaw', 'KaplanJointLaw', 'KaplanLaw', 'ScalingLaw', 'make_law'], 'lmscale.laws.estimators'),
    **dict.fromkeys(['ExtrapolationResult', 'extrapolation_check'], 'lmscale.laws.extrapolation'),
    **dict.fromkeys(['MultiStartResult', 'fit_multistart'], 'lmscale.laws.fit'),
    **dict.fromkeys(['HOFFMANN_2022', 'ChinchillaFixedEForm', 'ChinchillaForm', 'ChinchillaSharedForm', 'DataConstrainedForm', 'KaplanForm', 'KaplanJointForm'], 'lmscale.laws.forms'),
    **dict.fromkeys(['FrontierResult'], 'lmscale.laws.frontier'),
    **dict.fromkeys(['IsoFLOPAllocation'], 'lmscale.laws.isoflop'),
    **dict.fromkeys(['PlannedPrediction', 'load_planned', 'predict_planned'], 'lmscale.laws.planned'),
    **dict.fromkeys(['Identification', 'ProfileResult', 'identification', 'profile_E'], 'lmscale.laws.profile'),
    **dict.fromkeys(['LawRanking', 'rank_laws'], 'lmscale.laws.select'),
    **dict.fromkeys(['Vertex', 'bootstrap_vertex', 'fit_exponent', 'profile_vertex'], 'lmscale.laws.vertex'),
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
