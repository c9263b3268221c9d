"""Writers: where new rows go in the storage.

* :class:`RoundRobinWriter`: a circular buffer (the default);
* :class:`TensorDictMaxValueWriter`: keeps the rows ranked highest by a key.
"""

from rlkernel.data.writers.base import RoundRobinWriter, Writer
from rlkernel.data.writers.max_value import TensorDictMaxValueWriter

__all__ = ["RoundRobinWriter", "TensorDictMaxValueWriter", "Writer"]
