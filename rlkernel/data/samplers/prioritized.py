"""Prioritized experience replay (Schaul et al., 2016) over sum and min tree kernels."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from rlkernel.data.errors import BufferError, PriorityError
from rlkernel.data.kernels import get_tree_kernel
from rlkernel.data.samplers.base import Sampler
from rlkernel.data.storages.base import Storage, as_index
from rlkernel.data.storages.layout import dtype_from_name

__all__ = ["PrioritizedSampler", "check_priorities"]

#: Dtypes for which ``empty().uniform_(0, t)`` draws exactly ``rand().mul_(t)``.
_UNIFORM_DTYPES = (torch.float32, torch.float64)

_REDUCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "max": lambda p: p.amax(1),
    "min": lambda p: p.amin(1),
    "sum": lambda p: p.sum(1),
    "mean": lambda p: p.mean(1),
    "median": lambda p: p.median(1).values,
}


def check_priorities(priority: torch.Tensor, index: torch.Tensor | None = None) -> float:
    """The largest of ``priority`` (1-D, non-empty), or a :class:`PriorityError` naming the
    first negative, infinite or NaN one and its index (its position if ``index`` is None)."""
    low, high = torch.aminmax(priority)
    if float(low) >= 0 and float(high) < math.inf:
        return float(high)
    where = int((~((priority >= 0) & (priority < math.inf))).nonzero()[0, 0])
    at = f"for index {int(index[where])} (position {where})" if index is not None else f"for row {where} of the data"
    raise PriorityError(f"priority {float(priority[where])} {at} must be finite and >= 0")


def _check_number(name: str, value: Any, *, positive: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        need = "> 0" if positive else ">= 0"
        raise BufferError(f"PrioritizedSampler: {name} must be a finite number {need}, got {value!r}")
    return float(value)


class PrioritizedSampler(Sampler):
    """Samples row ``i`` with probability ``p_i / sum(p)``, ``p_i = (priority_i + eps) ** alpha``.

    ``PrioritizedSampler(max_capacity, alpha, beta, eps=1e-8, dtype=torch.float32,
    reduction="max")``. New rows get the largest priority seen so far (1 at first).
    Each sample comes with importance weights in ``info["_weight"]``::

        w_i = (N * P(i)) ** -beta / max_j (N * P(j)) ** -beta = (p_i / min_j p_j) ** -beta

    ``update_priority(index, priority)`` sets the priorities of rows (a priority with more
    dimensions than the index, e.g. one per time step, is first reduced to one per row
    with ``reduction``: ``"max"``, ``"min"``, ``"sum"``, ``"mean"`` or ``"median"``).
    The trees come from :func:`~rlkernel.data.kernels.get_tree_kernel` (``kernel=``
    forces an implementation, e.g. ``"torch"``).

    >>> import torch
    >>> from rlkernel.data import ReplayBuffer, LazyTensorStorage
    >>> rb = ReplayBuffer(storage=LazyTensorStorage(8), sampler=PrioritizedSampler(8, alpha=1.0, beta=0.5))
    >>> _ = rb.extend(torch.arange(4))
    >>> rb.update_priority(torch.arange(4), torch.tensor([0.0, 0.0, 0.0, 5.0]))
    >>> data, info = rb.sample(3, return_info=True)
    >>> data.tolist(), info["index"].tolist()
    ([3, 3, 3], [3, 3, 3])
    """

    def __init__(
        self,
        max_capacity: int,
        alpha: float,
        beta: float,
        eps: float = 1e-8,
        dtype: torch.dtype = torch.float32,
        reduction: str = "max",
        *,
        kernel: str | None = None,
    ) -> None:
        if isinstance(max_capacity, bool) or not isinstance(max_capacity, int) or max_capacity < 1:
            raise BufferError(f"PrioritizedSampler: max_capacity must be a positive int, got {max_capacity!r}")
        if reduction not in _REDUCTIONS:
            raise BufferError(f"PrioritizedSampler: reduction must be one of {sorted(_REDUCTIONS)}, got {reduction!r}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise BufferError(f"PrioritizedSampler: dtype must be a floating torch.dtype, got {dtype!r}")
        self.max_capacity = max_capacity
        self.alpha = _check_number("alpha", alpha)
        self.beta = _check_number("beta", beta)
        self.eps = _check_number("eps", eps)
        self.dtype = dtype
        self.reduction = reduction
        self.kernel = kernel
        self._sum_tree = get_tree_kernel("sum_tree", kernel)(max_capacity, dtype)
        self._min_tree = get_tree_kernel("min_tree", kernel)(max_capacity, dtype)
        self._max_priority = 1.0
        # (default priority, a tensor of it): reused by extend while both stay the same.
        self._default_values: tuple[float, torch.Tensor] | None = None

    @property
    def default_priority(self) -> float:
        """The tree value given to new rows: ``(max priority seen + eps) ** alpha``."""
        return (self._max_priority + self.eps) ** self.alpha

    # -- sampling ----------------------------------------------------------------------
    def _sample(self, storage: Storage, batch_size: int) -> tuple[torch.Tensor, dict[str, Any]]:
        total = self._sum_tree.total()
        if not 0 < total < math.inf:
            raise PriorityError(
                f"cannot sample: the priorities of the {len(storage)} stored rows sum to {total} "
                "(all zero with eps=0, or overflowing the tree dtype)"
            )
        if self.dtype in _UNIFORM_DTYPES:  # one op, the same numbers as rand().mul_(total)
            mass = torch.empty(batch_size, dtype=self.dtype).uniform_(0.0, total)
        else:
            mass = torch.rand(batch_size, dtype=self.dtype).mul_(total)
        tree = self._sum_tree
        find_with_values = getattr(tree, "find_with_values", None)
        if find_with_values is not None:
            index, value = find_with_values(mass)
        else:
            index = tree.find_prefixsum(mass)
            value = tree.get(index)
        weight = torch.div(value, self._min_tree.min()).pow_(-self.beta)
        return index, {"_weight": weight}

    def extend(self, index: torch.Tensor) -> None:
        """New rows get :attr:`default_priority`."""
        k = index.numel()
        if k:
            priority = self.default_priority
            cached = self._default_values
            if cached is None or cached[0] != priority or cached[1].numel() != k or cached[1].dtype != self.dtype:
                cached = self._default_values = (priority, torch.full((k,), priority, dtype=self.dtype))
            self._update_trees(index, cached[1])

    def add(self, index: int) -> None:
        """A new row gets :attr:`default_priority`."""
        self.extend(torch.tensor([index]))

    # -- priorities --------------------------------------------------------------------
    def update_priority(self, index: Any, priority: Any, *, bound: int | None = None) -> None:
        """Set the priorities of the rows ``index`` (a repeated index: the last one wins).

        ``priority`` is one number, or one per index (more dimensions are reduced with
        ``reduction``). Raises :class:`PriorityError` naming the index and value of a
        negative, infinite or NaN priority, an index outside ``[0, bound)`` (``bound``
        defaults to ``max_capacity``; buffers pass their length), or mismatched lengths.
        """
        index = as_index(index, what="update_priority index")
        k = index.numel()
        if type(priority) is not torch.Tensor or priority.requires_grad or not priority.is_cpu:
            priority = torch.as_tensor(priority).detach()
            if priority.device.type != "cpu":
                priority = priority.cpu()
        if not priority.dtype.is_floating_point:
            priority = priority.double()
        if priority.ndim == 0:
            priority = priority.expand(k)
        elif priority.shape[0] != k:
            raise PriorityError(
                f"update_priority: {k} indices but {priority.shape[0]} priorities (shape {tuple(priority.shape)})"
            )
        elif priority.ndim > 1:
            priority = _REDUCTIONS[self.reduction](priority.reshape(k, -1))
        if k == 0:
            return
        limit = self.max_capacity if bound is None else bound
        low, high = torch.aminmax(index)
        if int(low) < 0 or int(high) >= limit:
            where = int(((index < 0) | (index >= limit)).nonzero()[0, 0])
            raise PriorityError(
                f"update_priority: index {int(index[where])} (position {where}) is out of range [0, {limit})"
            )
        high_p = check_priorities(priority, index)
        self._max_priority = max(self._max_priority, high_p)
        value = priority.to(self.dtype).add(self.eps).pow_(self.alpha)
        self._update_trees(index, value)

    def _update_trees(self, index: torch.Tensor, value: torch.Tensor) -> None:
        """Write ``value`` to the leaves ``index`` of both trees (in one kernel call when
        the sum tree offers ``update_with``)."""
        update_with = getattr(self._sum_tree, "update_with", None)
        if update_with is None or not update_with(self._min_tree, index, value):
            self._sum_tree.update(index, value)
            self._min_tree.update(index, value)

    def priorities(self, index: Any = None) -> torch.Tensor:
        """The tree values ``(priority + eps) ** alpha`` of ``index`` (all rows if None)."""
        if index is None:
            return self._sum_tree.values()
        return self._sum_tree.get(as_index(index))

    # -- bookkeeping -------------------------------------------------------------------
    def empty(self) -> None:
        """Fresh trees (every priority zero) and a largest priority of 1."""
        self._sum_tree = get_tree_kernel("sum_tree", self.kernel)(self.max_capacity, self.dtype)
        self._min_tree = get_tree_kernel("min_tree", self.kernel)(self.max_capacity, self.dtype)
        self._max_priority = 1.0
        self._default_values = None

    def state_dict(self) -> dict[str, Any]:
        """Parameters, the largest priority seen and every tree leaf."""
        return {
            "max_capacity": self.max_capacity,
            "alpha": self.alpha,
            "beta": self.beta,
            "eps": self.eps,
            "dtype": str(self.dtype),
            "reduction": self.reduction,
            "max_priority": self._max_priority,
            "sum_values": self._sum_tree.values(),
            "min_values": self._min_tree.values(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (same ``max_capacity``)."""
        if int(state["max_capacity"]) != self.max_capacity:
            raise BufferError(
                f"PrioritizedSampler: cannot load a state of max_capacity {state['max_capacity']} "
                f"into a sampler of max_capacity {self.max_capacity}"
            )
        self.alpha, self.beta, self.eps = float(state["alpha"]), float(state["beta"]), float(state["eps"])
        self.reduction = str(state["reduction"])
        self.dtype = dtype_from_name(state["dtype"])
        self.empty()
        everything = torch.arange(self.max_capacity)
        self._sum_tree.update(everything, torch.as_tensor(state["sum_values"]).to(self.dtype))
        self._min_tree.update(everything, torch.as_tensor(state["min_values"]).to(self.dtype))
        self._max_priority = float(state["max_priority"])

    def __repr__(self) -> str:
        return (
            f"PrioritizedSampler(max_capacity={self.max_capacity}, alpha={self.alpha}, beta={self.beta}, "
            f"eps={self.eps}, dtype={self.dtype}, kernel={type(self._sum_tree).__module__})"
        )
