"""Sum trees and min trees for prioritized replay, backed by compiled C++ kernels.

:class:`SumTree` and :class:`MinTree` follow the kernel interface of the core's
pure-torch trees, so the prioritized sampler can use either (registered as
``"sum_tree:cpp"`` and ``"min_tree:cpp"``)::

    >>> import torch
    >>> from rlkernel_cext.trees import SumTree
    >>> tree = SumTree(5, dtype=torch.float64)
    >>> tree.update(torch.tensor([0, 2, 4]), torch.tensor([1.0, 2.0, 3.0]))
    >>> tree.total()
    6.0
    >>> tree.find_prefixsum(torch.tensor([0.5, 1.0, 5.9, 6.0]))
    tensor([0, 2, 4, 4])

Canonical layout and search rule
--------------------------------
The C++ kernels and the core's pure-torch trees implement the same rule, so that for the
same leaf values and masses they return *identical* results, bit for bit:

* **Layout.** A tree of capacity ``C`` has ``P`` leaves, ``P`` the smallest power of two
  ``>= C``, stored in a flat array of ``2 * P`` elements of the tree's dtype. Node 1 is
  the root, node ``n`` has children ``2n`` and ``2n + 1``, leaf ``i`` is node ``P + i``
  (element 0 is unused). Leaves ``C .. P - 1`` keep the neutral value forever: ``0`` in a
  sum tree, ``+inf`` in a min tree; unwritten leaves hold the same neutral value.
* **Parents.** After leaves are written, every ancestor of a written leaf is recomputed
  from its two children, in the tree's dtype: ``left + right`` (a sum tree never adds
  deltas, so it cannot drift) or ``min(left, right)``. In a batched update the leaves are
  written in batch order, so for a duplicated index the last value wins.
* **Search.** ``find_prefixsum`` first casts the masses to the tree's dtype, then for each
  mass ``m`` descends from the root, doing all arithmetic in that dtype::

      n = 1
      while n < P:
          left = tree[2 * n]
          if m < left:            # strictly less: go left
              n = 2 * n
          else:                   # otherwise consume the left mass and go right
              m = m - left
              n = 2 * n + 1
      i = n - P
      i = min(i, last)            # last: the largest index whose leaf is non-zero,
                                  # 0 when every leaf is zero

  For a mass in ``[0, total)`` this is the smallest ``i`` with
  ``sum(leaves[0..i]) > m``; the final clamp absorbs rounding and maps a mass
  ``>= total`` (or NaN) to the last non-zero leaf. Leaf values must be non-negative
  (the caller validates priorities), which is what makes ``last`` well defined.

Tensors cross into C++ as numpy arrays (zero-copy for CPU tensors) through the buffer
protocol; the tree itself lives in CPU memory whatever the device of the arguments, and
results are returned on the device of the argument they answer. The kernels release the
GIL; a lock makes each tree safe to share between threads.
"""

from __future__ import annotations

import importlib
import numbers
import threading
from types import ModuleType
from typing import Any

import numpy as np
import torch

from rlkernel.errors import PluginError

__all__ = ["EXTENSION", "MinTree", "SumTree", "available"]

#: The compiled module holding the kernels.
EXTENSION = "rlkernel_cext._trees"

_NUMPY_DTYPES: dict[torch.dtype, type[np.floating[Any]]] = {
    torch.float32: np.float32,
    torch.float64: np.float64,
}

_EXT: ModuleType | None = None


def _load_extension() -> ModuleType:
    """Import the compiled module once, or raise a :class:`PluginError` saying what to do."""
    global _EXT
    if _EXT is None:
        try:
            _EXT = importlib.import_module(EXTENSION)
        except ImportError as err:
            raise PluginError(
                f"rlkernel-cext: the compiled module {EXTENSION!r} cannot be imported ({err}). "
                "The plugin was installed without building its C++ extension; reinstall it "
                "with a C++ compiler available (e.g. 'pip install --force-reinstall "
                "--no-binary rlkernel-cext rlkernel-cext', or 'pip install -e "
                "plugins/rlkernel-cext' in a checkout), or set RLKERNEL_KERNELS=torch to use "
                "the core's pure-torch kernels"
            ) from err
    return _EXT


def available() -> bool:
    """Whether the compiled kernels can be imported (they are not imported by registration)."""
    try:
        _load_extension()
    except PluginError:
        return False
    return True


_CPU = torch.device("cpu")


def _integer_batch(index: Any, where: str) -> tuple[np.ndarray, torch.device]:
    """``index`` as a contiguous int64 numpy array, and the device it came from."""
    if type(index) is torch.Tensor and index.dtype is torch.int64 and index.is_cpu and index.ndim == 1:
        return index.contiguous().numpy(), _CPU  # the common case: no copy, no checks left
    tensor = torch.as_tensor(index)
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise TypeError(f"{where}: index must be an integer tensor (torch.int64), got {tensor.dtype}")
    if tensor.ndim != 1:
        raise ValueError(f"{where}: index must be one-dimensional [k], got shape {tuple(tensor.shape)}")
    array = tensor.detach().to(device="cpu", dtype=torch.int64).contiguous().numpy(force=True)
    return array, tensor.device


def _float_batch(values: Any, dtype: torch.dtype, what: str, where: str) -> tuple[np.ndarray, torch.device]:
    """``values`` cast to ``dtype`` as a contiguous numpy array, and its device."""
    if (
        type(values) is torch.Tensor
        and values.dtype is dtype
        and values.is_cpu
        and values.ndim == 1
        and not values.requires_grad
    ):
        return values.contiguous().numpy(), _CPU  # the common case: no copy, no checks left
    tensor = torch.as_tensor(values)
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise TypeError(f"{where}: {what} must be a real-valued tensor, got {tensor.dtype}")
    if tensor.ndim != 1:
        raise ValueError(f"{where}: {what} must be one-dimensional [k], got shape {tuple(tensor.shape)}")
    array = tensor.detach().to(device="cpu", dtype=dtype).contiguous().numpy(force=True)
    return array, tensor.device


def _on(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` (on the CPU) moved to ``device`` unless that is the CPU."""
    return tensor if device is _CPU else tensor.to(device)


class _FlatTree:
    """The storage and leaf operations shared by :class:`SumTree` and :class:`MinTree`."""

    #: Value of an unwritten leaf (and of the padding leaves past the capacity).
    _NEUTRAL: float
    #: Name of the compiled function that writes leaves and recomputes their parents.
    _UPDATE: str

    def __init__(self, capacity: int, dtype: torch.dtype = torch.float64) -> None:
        name = type(self).__name__
        if isinstance(capacity, bool) or not isinstance(capacity, numbers.Integral):
            raise TypeError(f"{name}: capacity must be an int, got {type(capacity).__name__}")
        if capacity < 1:
            raise ValueError(f"{name}: capacity must be at least 1, got {capacity}")
        if dtype not in _NUMPY_DTYPES:
            raise TypeError(f"{name}: dtype must be torch.float32 or torch.float64, got {dtype!r}")
        self._ext = _load_extension()
        self._capacity = int(capacity)
        self._dtype = dtype
        self._leaves = 1 << (self._capacity - 1).bit_length()
        self._tree = np.full(2 * self._leaves, self._NEUTRAL, dtype=_NUMPY_DTYPES[dtype])
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        """The number of leaves that can be written (indices ``0 .. capacity - 1``)."""
        return self._capacity

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the leaves, of every node and of the search arithmetic."""
        return self._dtype

    def __len__(self) -> int:
        return self._capacity

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacity={self._capacity}, dtype={self._dtype})"

    def update(self, index: torch.Tensor, value: torch.Tensor) -> None:
        """Set ``leaf[index[j]] = value[j]`` for every ``j`` and update their ancestors.

        For a duplicated index the last value wins. ``value`` is cast to the tree's dtype
        (the caller has checked it: finite and, for a sum tree, non-negative). Raises
        :class:`IndexError` naming the first index outside ``[0, capacity)`` and
        :class:`ValueError` if the lengths differ; on error the tree is unchanged.
        """
        where = f"{type(self).__name__}.update"
        idx, val = self._leaf_batch(index, value, where)
        kernel = getattr(self._ext, self._UPDATE)
        try:
            with self._lock:
                kernel(self._tree, self._capacity, idx, val)
        except IndexError as err:
            raise IndexError(f"{where}: {err}") from None

    def _leaf_batch(self, index: Any, value: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
        """``index`` and ``value`` as the arrays the kernels take, of the same length."""
        idx, _ = _integer_batch(index, where)
        val, _ = _float_batch(value, self._dtype, "value", where)
        if idx.shape[0] != val.shape[0]:
            raise ValueError(
                f"{where}: index and value must have the same length, got {idx.shape[0]} and {val.shape[0]}"
            )
        return idx, val

    def get(self, index: torch.Tensor) -> torch.Tensor:
        """The values of the leaves ``index`` (a tensor of the tree's dtype, on ``index``'s device).

        Raises :class:`IndexError` naming the first index outside ``[0, capacity)``.
        """
        where = f"{type(self).__name__}.get"
        idx, device = _integer_batch(index, where)
        out = np.empty(idx.shape[0], dtype=self._tree.dtype)
        try:
            with self._lock:
                self._ext.gather(self._tree, self._capacity, idx, out)
        except IndexError as err:
            raise IndexError(f"{where}: {err}") from None
        return _on(torch.from_numpy(out), device)

    def values(self) -> torch.Tensor:
        """A copy of all ``capacity`` leaves, as a CPU tensor of the tree's dtype."""
        with self._lock:
            leaves = self._tree[self._leaves : self._leaves + self._capacity].copy()
        return torch.from_numpy(leaves)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"], state["_ext"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._ext = _load_extension()
        self._lock = threading.Lock()


class SumTree(_FlatTree):
    """A sum tree: batched leaf updates, the total, and batched prefix-sum search.

    ``SumTree(capacity, dtype=torch.float64)``; ``dtype`` is ``torch.float32`` or
    ``torch.float64``. Leaves start at 0. The layout and search rule are the canonical
    ones described in :mod:`rlkernel_cext.trees`.
    """

    _NEUTRAL = 0.0
    _UPDATE = "sum_update"

    def total(self) -> float:
        """The sum of all leaves (the root, as accumulated in the tree's dtype)."""
        return float(self._tree[1])

    def find_prefixsum(self, mass: torch.Tensor) -> torch.Tensor:
        """For each mass ``m`` in ``[0, total)``, the smallest index ``i`` with
        ``sum(leaves[0..i]) > m``, as an int64 tensor on ``mass``'s device.

        Masses are cast to the tree's dtype. A mass ``>= total`` returns the last index
        holding a non-zero value (and so does a result that rounding pushed past it).
        """
        m, device = _float_batch(mass, self._dtype, "mass", "SumTree.find_prefixsum")
        out = np.empty(m.shape[0], dtype=np.int64)
        with self._lock:
            self._ext.find_prefixsum(self._tree, self._capacity, m, out)
        return _on(torch.from_numpy(out), device)

    def update_with(self, other: Any, index: torch.Tensor, value: torch.Tensor) -> bool:
        """``self.update(index, value)`` and ``other.update(index, value)`` in one call,
        when ``other`` is a :class:`MinTree` of the same capacity and dtype (the two trees
        of a prioritized sampler); returns False, doing nothing, for any other ``other``.
        Raises like :meth:`update`; on error neither tree is changed."""
        if type(other) is not MinTree or other._capacity != self._capacity or other._dtype != self._dtype:
            return False
        where = "SumTree.update_with"
        idx, val = self._leaf_batch(index, value, where)
        try:
            with self._lock, other._lock:  # always the sum tree's lock first
                self._ext.pair_update(self._tree, other._tree, self._capacity, idx, val)
        except IndexError as err:
            raise IndexError(f"{where}: {err}") from None
        return True

    def find_with_values(self, mass: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``find_prefixsum(mass)`` and the values of the leaves found (``get`` of that
        index), in one pass over the tree: both on ``mass``'s device."""
        m, device = _float_batch(mass, self._dtype, "mass", "SumTree.find_with_values")
        out = np.empty(m.shape[0], dtype=np.int64)
        values = np.empty(m.shape[0], dtype=self._tree.dtype)
        with self._lock:
            self._ext.find_prefixsum(self._tree, self._capacity, m, out, values)
        return _on(torch.from_numpy(out), device), _on(torch.from_numpy(values), device)


class MinTree(_FlatTree):
    """A min tree: batched leaf updates and the minimum over all leaves.

    ``MinTree(capacity, dtype=torch.float64)``; ``dtype`` is ``torch.float32`` or
    ``torch.float64``. Leaves start at ``+inf``.
    """

    _NEUTRAL = float("inf")
    _UPDATE = "min_update"

    def min(self) -> float:
        """The minimum over all leaves (``+inf`` while no leaf has been written)."""
        return float(self._tree[1])
