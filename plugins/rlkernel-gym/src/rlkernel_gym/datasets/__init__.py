"""Offline datasets in the Minari format, read from a local folder (never downloaded).

``import rlkernel_gym.datasets`` is cheap (no h5py): the names load on first use. The
registry serves every local dataset as ``minari:<dataset_id>``::

    >>> import rlkernel
    >>> rb = rlkernel.registry.datasets["minari:cartpole/random-v0"](batch_size=64)  # doctest: +SKIP
    >>> rb.sample()["next", "observation"].shape                                       # doctest: +SKIP
    torch.Size([64, 4])

See :class:`MinariDataset` for the layout and :mod:`rlkernel_gym.datasets.locate` for where
datasets are looked for.
"""

from __future__ import annotations

from rlkernel.lazy import lazy_exports

_LAZY = {
    "MinariDataset": "rlkernel_gym.datasets.minari_dataset",
    "MinariMetadata": "rlkernel_gym.datasets.metadata",
    "read_metadata": "rlkernel_gym.datasets.metadata",
    "space_from_json": "rlkernel_gym.datasets.metadata",
    "DatasetError": "rlkernel_gym.datasets.errors",
    "DatasetFormatError": "rlkernel_gym.datasets.errors",
    "DatasetNotFoundError": "rlkernel_gym.datasets.errors",
    "default_root": "rlkernel_gym.datasets.locate",
    "list_local_datasets": "rlkernel_gym.datasets.locate",
    "local_dataset_names": "rlkernel_gym.datasets.locate",
}


__getattr__, __dir__, _ = lazy_exports(__name__, _LAZY, globals())


__all__ = sorted(_LAZY)
