"""Returns and advantages: vectorised functionals and TensorDict estimators.

Functionals (tensors shaped ``[*batch, time, *features]``, time at ``-2``):
:func:`vec_generalized_advantage_estimate`, :func:`vec_td_lambda_return_estimate`,
:func:`td0_return_estimate`, :func:`td1_return_estimate`, :func:`vtrace_advantage_estimate`,
:func:`reward2go` and the ``*_advantage_estimate`` variants, all built on
:func:`reverse_discounted_cumsum`.

Estimators (TensorDict in / TensorDict out): :class:`TD0Estimator`, :class:`TD1Estimator`,
:class:`TDLambdaEstimator`, :class:`GAE`, :class:`VTrace`.
"""

from __future__ import annotations

from rlkernel_algos.value.base import ValueEstimatorBase, ValueKeys
from rlkernel_algos.value.estimators import GAE, TD0Estimator, TD1Estimator, TDLambdaEstimator, VTrace
from rlkernel_algos.value.functional import (
    generalized_advantage_estimate,
    reward2go,
    td0_advantage_estimate,
    td0_return_estimate,
    td1_advantage_estimate,
    td1_return_estimate,
    td_lambda_advantage_estimate,
    td_lambda_return_estimate,
    vec_generalized_advantage_estimate,
    vec_td1_advantage_estimate,
    vec_td1_return_estimate,
    vec_td_lambda_advantage_estimate,
    vec_td_lambda_return_estimate,
    vtrace_advantage_estimate,
)
from rlkernel_algos.value.scan import reverse_discounted_cumsum

__all__ = [
    "GAE",
    "TD0Estimator",
    "TD1Estimator",
    "TDLambdaEstimator",
    "VTrace",
    "ValueEstimatorBase",
    "ValueKeys",
    "generalized_advantage_estimate",
    "reverse_discounted_cumsum",
    "reward2go",
    "td0_advantage_estimate",
    "td0_return_estimate",
    "td1_advantage_estimate",
    "td1_return_estimate",
    "td_lambda_advantage_estimate",
    "td_lambda_return_estimate",
    "vec_generalized_advantage_estimate",
    "vec_td1_advantage_estimate",
    "vec_td1_return_estimate",
    "vec_td_lambda_advantage_estimate",
    "vec_td_lambda_return_estimate",
    "vtrace_advantage_estimate",
]
