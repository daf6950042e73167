"""Scaling-law fitting: functional forms, robust multi-start fits, Chinchilla Approaches 1-3,
cluster bootstrap, compute-optimal frontier, extrapolation checks and family comparisons.

Units: N parameters (total unless stated), D tokens, C FLOPs (6ND unless the data give it),
loss nats/token.

    from lmscale.laws import ChinchillaLaw, load_scaling_data
    law = ChinchillaLaw().fit(load_scaling_data("results.csv"))
    print(law.summary()); boot = law.bootstrap(1000)
"""

from lmscale.laws.bootstrap import BootstrapResult, cluster_weights
from lmscale.laws.compare import CompareResult, compare, compare_families
from lmscale.laws.data import ScalingData, epoch_chinchilla_data, load_curves, load_scaling_data
from lmscale.laws.envelope import EnvelopeAllocation
from lmscale.laws.estimators import (LAWS, ChinchillaLaw, DataConstrainedLaw, KaplanJointLaw, KaplanLaw, ScalingLaw,
                                     make_law)
from lmscale.laws.extrapolation import ExtrapolationResult
from lmscale.laws.fit import MultiStartResult, fit_multistart
from lmscale.laws.forms import (HOFFMANN_2022, ChinchillaForm, DataConstrainedForm, KaplanForm, KaplanJointForm)
from lmscale.laws.frontier import FrontierResult
from lmscale.laws.isoflop import IsoFLOPAllocation

__all__ = [
    "BootstrapResult", "ChinchillaForm", "ChinchillaLaw", "CompareResult", "DataConstrainedForm", "DataConstrainedLaw",
    "EnvelopeAllocation", "ExtrapolationResult", "FrontierResult", "HOFFMANN_2022", "IsoFLOPAllocation", "KaplanForm",
    "KaplanJointForm", "KaplanJointLaw", "KaplanLaw", "LAWS", "MultiStartResult", "ScalingData", "ScalingLaw",
    "cluster_weights", "compare", "compare_families", "epoch_chinchilla_data", "fit_multistart", "load_curves",
    "load_scaling_data", "make_law",
]
