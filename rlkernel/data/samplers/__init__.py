"""Samplers: which rows of the storage go into each batch.

* :class:`RandomSampler`: uniform, with replacement (the default);
* :class:`SamplerWithoutReplacement`: every row once per epoch;
* :class:`PrioritizedSampler`: proportional to priorities, with importance weights;
* :class:`SliceSampler`: contiguous slices of stored trajectories.
"""

from rlkernel.data.samplers.base import RandomSampler, Sampler, SamplerWithoutReplacement
from rlkernel.data.samplers.prioritized import PrioritizedSampler
from rlkernel.data.samplers.slice import SliceSampler

__all__ = ["PrioritizedSampler", "RandomSampler", "Sampler", "SamplerWithoutReplacement", "SliceSampler"]
