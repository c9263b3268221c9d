"""Action distributions (``torch.distributions`` subclasses) for probabilistic actors.

Continuous: :class:`TanhNormal`, :class:`TruncatedNormal`, :class:`IndependentNormal`,
:class:`TanhDelta`, :class:`Delta` (tensordict's). Discrete: :class:`OneHotCategorical`,
:class:`MaskedCategorical`, :class:`MaskedOneHotCategorical`; for plain categorical
actions use ``torch.distributions.Categorical``.
"""

from rlkernel_algos.modules.distributions.continuous import Delta, IndependentNormal, TanhDelta, TanhNormal
from rlkernel_algos.modules.distributions.discrete import (
    MaskedCategorical,
    MaskedOneHotCategorical,
    OneHotCategorical,
)
from rlkernel_algos.modules.distributions.truncated_normal import TruncatedNormal

__all__ = [
    "Delta",
    "IndependentNormal",
    "MaskedCategorical",
    "MaskedOneHotCategorical",
    "OneHotCategorical",
    "TanhDelta",
    "TanhNormal",
    "TruncatedNormal",
]
