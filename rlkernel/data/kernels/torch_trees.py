"""Pure-torch sum and min segment trees, vectorised over batches of indices.

These are the reference implementations of the tree-kernel interface used by
:class:`~rlkernel.data.samplers.PrioritizedSampler` (a compiled plugin may register faster
ones under the same names, see :func:`rlkernel.data.kernels.get_tree_kernel`).

Layout and rule (shared with the C++ kernels of ``rlkernel-cext``, which give the same
results bit for bit): one flat tensor of ``2 * P`` nodes, ``P`` the next power of two at
or above the capacity. Node 1 is the root, node ``n`` has the children ``2n`` and
``2n + 1``, leaf ``i`` is node ``P + i`` (node 0 is unused; leaves never written and
padding leaves past the capacity hold the neutral value, ``0`` for a sum, ``+inf`` for a
min). A parent is recomputed from its two children in the tree's dtype (``left + right``
or ``min(left, right)``): a sum tree never adds deltas, so it cannot drift.

Every operation handles a whole batch of ``k`` indices or masses with a fixed number of
torch calls per level, never a Python loop over the batch:

* ``update`` writes the ``k`` leaves, then walks up one level at a time recomputing the
  ``k`` parents at once (the shallow levels, a few thousand nodes, are recomputed whole
  with one call each: cheaper than gathering);
* ``find_prefixsum`` descends all ``k`` masses together one level at a time: a mass
  below the left child's value goes left, any other goes right minus that value; a mass
  that ends on a zero leaf (rounding, or a mass at or above the total) is clamped to the
  last non-zero leaf.

Example::

    >>> import torch
    >>> tree = SumTree(5)
    >>> tree.update(torch.tensor([0, 2, 4]), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
    >>> tree.total()
    6.0
    >>> tree.find_prefixsum(torch.tensor([0.5, 1.0, 2.9, 5.99], dtype=torch.float64)).tolist()
    [0, 2, 2, 4]
"""

from __future__ import annotations

import torch

from rlkernel.data.errors import BufferError

__all__ = ["MinTree", "SumTree"]

#: Levels with at most this many nodes are recomputed whole after an update.
_DENSE_LEVEL_MAX = 8192


def _check_args(capacity: int, dtype: torch.dtype, name: str) -> None:
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
        raise BufferError(f"{name}: capacity must be a positive int, got {capacity!r}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise BufferError(f"{name}: dtype must be a floating torch.dtype, got {dtype!r}")


class _SegmentTree:
    """Shared machinery of :class:`SumTree` and :class:`MinTree` (not public)."""

    _neutral: float

    def __init__(self, capacity: int, dtype: torch.dtype = torch.float64) -> None:
        _check_args(capacity, dtype, type(self).__name__)
        self.capacity = capacity
        self.dtype = dtype
        self._depth = (capacity - 1).bit_length()
        size = 1 << self._depth
        self._size = size
        self._tree = torch.full((2 * size,), self._neutral, dtype=dtype)
        self._leaves = self._tree[size : size + capacity]
        # Row n of _pairs: the two children of node n, _lefts[n] and _rights[n].
        self._pairs = self._tree.view(-1, 2)
        self._lefts = self._tree[0::2]
        self._rights = self._tree[1::2]
        # Shallow levels: (the level, its nodes' left children, their right children).
        self._dense: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        self._n_sparse = 0
        for level in reversed(range(self._depth)):
            lo, hi = 1 << level, 2 << level
            if hi - lo <= _DENSE_LEVEL_MAX:
                self._dense.append((self._tree[lo:hi], self._pairs[lo:hi, 0], self._pairs[lo:hi, 1]))
            else:
                self._n_sparse += 1
        self._winner = torch.zeros(capacity, dtype=torch.long)
        self._iota: torch.Tensor | None = None  # arange(capacity), made on the first run update
        self._positions = torch.arange(1024)

    # -- the kernel interface ----------------------------------------------------------
    def update(self, index: torch.Tensor, value: torch.Tensor) -> None:
        """Set the leaves ``index`` to ``value`` (for a repeated index the last one wins)."""
        index = index.reshape(-1)
        k = index.numel()
        if k == 0:
            return
        value = value.reshape(-1).to(self.dtype)
        if k > 1 and self._update_run(index, value, k):
            return
        if k > 1:
            # Give every copy of a repeated index the value of its last occurrence, so
            # that the (unordered) indexed writes below all agree.
            if k > self._positions.numel():
                self._positions = torch.arange(k)
            winner = self._winner
            winner.scatter_reduce_(0, index, self._positions[:k], "amax", include_self=False)
            value = value[winner[index]]
        self._leaves.index_copy_(0, index, value)
        combine = self._combine
        if self._n_sparse:  # in place: no allocation in the loop
            node = index + self._size
            left, right = torch.empty_like(value), torch.empty_like(value)
            for _ in range(self._n_sparse):
                node.bitwise_right_shift_(1)
                torch.index_select(self._lefts, 0, node, out=left)
                torch.index_select(self._rights, 0, node, out=right)
                self._tree.index_copy_(0, node, combine(left, right, out=left))
        for level, lefts, rights in self._dense:
            combine(lefts, rights, out=level)

    def _update_run(self, index: torch.Tensor, value: torch.Tensor, k: int) -> bool:
        """:meth:`update` of consecutive leaves (what ``extend`` writes) with slices: no
        gathers, no duplicate handling. ``False`` (nothing done) when ``index`` is not a run."""
        first = int(index[0])
        if first < 0 or first + k > self.capacity or int(index[-1]) != first + k - 1:
            return False
        iota = self._iota
        if iota is None:
            iota = self._iota = torch.arange(self.capacity)
        if not torch.equal(index, iota[first : first + k]):
            return False
        self._leaves[first : first + k] = value
        lo, hi = first + self._size, first + k + self._size  # the nodes changed at this level
        combine, lefts, rights, tree = self._combine, self._lefts, self._rights, self._tree
        for _ in range(self._n_sparse):
            lo, hi = lo >> 1, ((hi - 1) >> 1) + 1
            combine(lefts[lo:hi], rights[lo:hi], out=tree[lo:hi])
        for level, level_lefts, level_rights in self._dense:
            combine(level_lefts, level_rights, out=level)
        return True

    def get(self, index: torch.Tensor) -> torch.Tensor:
        """The values of the leaves ``index``."""
        return self._leaves[index]

    def values(self) -> torch.Tensor:
        """A copy of all ``capacity`` leaves."""
        return self._leaves.clone()

    #: How two children make their parent (``torch.add`` or ``torch.minimum``).
    _combine = staticmethod(torch.add)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(capacity={self.capacity}, dtype={self.dtype})"


class SumTree(_SegmentTree):
    """A sum segment tree: leaf updates and prefix-sum search in ``O(log n)`` per item.

    ``SumTree(capacity, dtype=torch.float64)``; leaves start at ``0``.

    >>> import torch
    >>> tree = SumTree(4)
    >>> tree.update(torch.tensor([1, 1, 3]), torch.tensor([5.0, 1.0, 2.0]))  # last 1 wins
    >>> tree.values().tolist(), tree.total()
    ([0.0, 1.0, 0.0, 2.0], 3.0)
    >>> tree.find_prefixsum(torch.tensor([0.0, 0.99, 1.0, 2.5], dtype=torch.float64)).tolist()
    [1, 1, 3, 3]
    """

    _neutral = 0.0
    _combine = staticmethod(torch.add)

    def total(self) -> float:
        """The sum of all leaves."""
        return float(self._tree[1])

    def find_prefixsum(self, mass: torch.Tensor) -> torch.Tensor:
        """For each ``m`` in ``mass`` (in ``[0, total())``), the smallest leaf index ``i``
        with ``sum(leaves[: i + 1]) > m``.

        A mass at or above the total (or NaN) lands on the last non-zero leaf, and so does
        one that rounding sends onto a zero leaf past it (index 0 when all leaves are 0).
        """
        return self._descend(mass)[0]

    def find_with_values(self, mass: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``find_prefixsum(mass)`` and the values of the leaves found (``get`` of that
        index), in one pass."""
        return self._descend(mass)

    def _descend(self, mass: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = mass.reshape(-1).to(self.dtype, copy=True)
        node = torch.ones(m.shape, dtype=torch.long)
        left = torch.empty_like(m)
        right = torch.empty(m.shape, dtype=torch.bool)
        lefts = self._lefts
        for _ in range(self._depth):  # in place: no allocation in the loop
            torch.index_select(lefts, 0, node, out=left)
            torch.ge(m, left, out=right)
            m.sub_(left.mul_(right))  # m - left going right, m - 0 going left (exact)
            torch.add(right, node, alpha=2, out=node)
        found = node - self._size
        value = self._tree.index_select(0, node)
        # The rule's final clamp, min(i, last non-zero leaf), can only change a result on a
        # zero leaf, or a NaN mass (which the loop above sent left instead of right).
        stray = (value <= 0) | m.isnan()
        if bool(stray.any()):
            nonzero = (self._leaves > 0).nonzero()
            last = int(nonzero[-1, 0]) if nonzero.numel() else 0
            found[stray] = found[stray].clamp(max=last)
            found[m.isnan()] = last
            value = self._leaves.index_select(0, found)
        return found, value


class MinTree(_SegmentTree):
    """A min segment tree: leaf updates and the minimum of all leaves in ``O(1)``.

    ``MinTree(capacity, dtype=torch.float64)``; leaves never written hold ``+inf``.

    >>> import torch
    >>> tree = MinTree(4)
    >>> tree.min()
    inf
    >>> tree.update(torch.tensor([0, 2]), torch.tensor([3.0, 0.5], dtype=torch.float64))
    >>> tree.min()
    0.5
    """

    _neutral = float("inf")
    _combine = staticmethod(torch.minimum)

    def min(self) -> float:
        """The minimum over all leaves (``+inf`` while none was written)."""
        return float(self._tree[1])
