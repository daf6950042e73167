"""Scaling-law fitting: functional forms, robust multi-start fits, Chinchilla Approaches 1-3,
cluster bootstrap, compute-optimal frontier, extrapolation checks and family comparisons.

Units: N parameters (total unless stated), D tokens, C FLOPs (6ND unless the data give it),
loss nats/token.

    from lmscale.laws import ChinchillaLaw, load_scaling_data
    law = ChinchillaLaw().fit(load_scaling_data("results.csv"))
    print(law.summary()); boot = law.bootstrap(1000)
"""

from lmscale.lazy import lazy_getattr

_EXPORTS = {
    **dict.fromkeys(['BootstrapResult', 'cluster_weights'], 'lmscale.laws.bootstrap'),
    **dict.fromkeys(['CompareResult', 'compare', 'compare_families'], 'lmscale.laws.compare'),
    **dict.fromkeys(['ScalingData', 'epoch_chinchilla_data', 'load_curves', 'load_scaling_data'], 'lmscale.laws.data'),
    **dict.fromkeys(['EnvelopeAllocation'], 'lmscale.laws.envelope'),
    **dict.fromkeys(['LAWS', 'ChinchillaLaw', 'DataConstrainedLaw', 'KaplanJointLaw', 'KaplanLaw', 'ScalingLaw', 'make_law'], 'lmscale.laws.estimators'),
    **dict.fromkeys(['ExtrapolationResult'], 'lmscale.laws.extrapolation'),
    **dict.fromkeys(['MultiStartResult', 'fit_multistart'], 'lmscale.laws.fit'),
    **dict.fromkeys(['HOFFMANN_2022', 'ChinchillaForm', 'DataConstrainedForm', 'KaplanForm', 'KaplanJointForm'], 'lmscale.laws.forms'),
    **dict.fromkeys(['FrontierResult'], 'lmscale.laws.frontier'),
    **dict.fromkeys(['IsoFLOPAllocation'], 'lmscale.laws.isoflop'),
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy_getattr(__name__, _EXPORTS)
