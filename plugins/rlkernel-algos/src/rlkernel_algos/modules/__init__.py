"""Networks, actors, critics, distributions and exploration modules.

Names and arguments follow TorchRL's ``torchrl.modules``, so that scripts port by changing
imports. Everything here builds on ``tensordict.nn`` (``TensorDictModule``,
``TensorDictSequential``, ``ProbabilisticTensorDictSequential``, ``NormalParamExtractor``,
re-exported for convenience) and obeys :mod:`rlkernel.exploration`.

Sub-modules are imported on first use of one of their names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rlkernel.lazy import lazy_exports

if TYPE_CHECKING:
    from tensordict.nn import (
        NormalParamExtractor,
        ProbabilisticTensorDictModule,
        ProbabilisticTensorDictSequential,
        TensorDictModule,
        TensorDictSequential,
    )

    from rlkernel_algos.modules.actor_critic import ActorCriticOperator, ActorCriticWrapper, ActorValueOperator
    from rlkernel_algos.modules.actors import Actor, ProbabilisticActor, ValueOperator
    from rlkernel_algos.modules.distributions import (
        Delta,
        IndependentNormal,
        MaskedCategorical,
        MaskedOneHotCategorical,
        OneHotCategorical,
        TanhDelta,
        TanhNormal,
        TruncatedNormal,
    )
    from rlkernel_algos.modules.exploration import (
        AdditiveGaussianModule,
        EGreedyModule,
        OrnsteinUhlenbeckProcessModule,
    )
    from rlkernel_algos.modules.models import MLP, ConvNet, DuelingCnnDQNet, DuelingMlpDQNet, SquashDims
    from rlkernel_algos.modules.qvalue import QValueActor, QValueModule

_WHERE = {
    "rlkernel_algos.modules.models": ("MLP", "ConvNet", "DuelingCnnDQNet", "DuelingMlpDQNet", "SquashDims"),
    "rlkernel_algos.modules.actors": ("Actor", "ProbabilisticActor", "ValueOperator"),
    "rlkernel_algos.modules.qvalue": ("QValueActor", "QValueModule"),
    "rlkernel_algos.modules.actor_critic": ("ActorCriticOperator", "ActorCriticWrapper", "ActorValueOperator"),
    "rlkernel_algos.modules.exploration": (
        "AdditiveGaussianModule", "EGreedyModule", "OrnsteinUhlenbeckProcessModule",
    ),
    "rlkernel_algos.modules.distributions": (
        "Delta", "IndependentNormal", "MaskedCategorical", "MaskedOneHotCategorical", "OneHotCategorical",
        "TanhDelta", "TanhNormal", "TruncatedNormal",
    ),
    "tensordict.nn": (
        "NormalParamExtractor", "ProbabilisticTensorDictModule", "ProbabilisticTensorDictSequential",
        "TensorDictModule", "TensorDictSequential",
    ),
}
_LAZY = {name: module for module, names in _WHERE.items() for name in names}


__getattr__, __dir__, _ = lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "MLP",
    "Actor",
    "ActorCriticOperator",
    "ActorCriticWrapper",
    "ActorValueOperator",
    "AdditiveGaussianModule",
    "ConvNet",
    "Delta",
    "DuelingCnnDQNet",
    "DuelingMlpDQNet",
    "EGreedyModule",
    "IndependentNormal",
    "MaskedCategorical",
    "MaskedOneHotCategorical",
    "NormalParamExtractor",
    "OneHotCategorical",
    "OrnsteinUhlenbeckProcessModule",
    "ProbabilisticActor",
    "ProbabilisticTensorDictModule",
    "ProbabilisticTensorDictSequential",
    "QValueActor",
    "QValueModule",
    "SquashDims",
    "TanhDelta",
    "TanhNormal",
    "TensorDictModule",
    "TensorDictSequential",
    "TruncatedNormal",
    "ValueOperator",
]
