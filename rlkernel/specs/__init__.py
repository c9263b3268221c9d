"""Tensor specs: what a tensor (or a TensorDict) of an environment may hold.

The names and conventions follow TorchRL, so a TorchRL script ports by changing imports::

    >>> import torch
    >>> from rlkernel.specs import Bounded, Categorical, Composite, Unbounded
    >>> spec = Composite(
    ...     observation=Unbounded((3,)),
    ...     action=Bounded(-2.0, 2.0, shape=(1,)),
    ...     mode=Categorical(4),
    ... )
    >>> td = spec.rand()
    >>> spec.is_in(td)
    True

Modules: :mod:`~rlkernel.specs.base` (the abstract :class:`TensorSpec` and the shared
conventions: event dims, membership, hot paths), :mod:`~rlkernel.specs.continuous`,
:mod:`~rlkernel.specs.discrete`, :mod:`~rlkernel.specs.binary`,
:mod:`~rlkernel.specs.multi_discrete` and :mod:`~rlkernel.specs.composite`.
"""

from rlkernel.errors import SpecError
from rlkernel.specs._utils import SpecIndexError, SpecKeyError
from rlkernel.specs.base import TensorSpec
from rlkernel.specs.binary import Binary
from rlkernel.specs.composite import Composite
from rlkernel.specs.continuous import Bounded, Unbounded
from rlkernel.specs.discrete import Categorical, OneHot
from rlkernel.specs.multi_discrete import MultiCategorical, MultiOneHot

__all__ = [
    "Binary",
    "Bounded",
    "Categorical",
    "Composite",
    "MultiCategorical",
    "MultiOneHot",
    "OneHot",
    "SpecError",
    "SpecIndexError",
    "SpecKeyError",
    "TensorSpec",
    "Unbounded",
]
