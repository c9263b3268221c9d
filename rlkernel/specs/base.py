"""The abstract :class:`TensorSpec`: what every spec shares.

A spec describes a family of tensors: a ``shape`` (leading batch dims, then the event
dims), a ``dtype``, a ``device`` and a domain (bounds, categories, ...). Concrete specs
live in :mod:`~rlkernel.specs.continuous`, :mod:`~rlkernel.specs.discrete`,
:mod:`~rlkernel.specs.binary`, :mod:`~rlkernel.specs.multi_discrete` and
:mod:`~rlkernel.specs.composite`.

Conventions shared by every leaf spec:

* **Event dims.** Each class has a fixed number of trailing *event* dims (``0`` for
  ``Unbounded``, ``Bounded`` and ``Categorical``; ``1`` for ``OneHot``, ``MultiOneHot``,
  ``MultiCategorical`` and ``Binary``). ``expand``, indexing, ``unsqueeze`` and
  ``squeeze`` act on the dims before them only; reaching an event dim raises
  :class:`~rlkernel.errors.SpecError`.
* **Membership** (``is_in``): a tensor of exactly ``spec.dtype`` whose shape *ends with*
  ``spec.shape`` (extra leading dims are allowed, any device) and whose every entry lies in
  the domain. NaN is never in a spec and neither is an infinite value.
* **Hot paths.** ``rand``, ``zero``, ``is_in`` and ``encode`` do a handful of torch ops, no
  Python loops over entries and no string formatting; ``why_not_in`` is the slow, explicit
  counterpart used to build error messages. On the CPU, ``is_in`` of ``Unbounded``,
  ``Bounded``, ``Categorical`` (without a mask) and ``Binary`` reads a single entry with
  ``item()`` and compares larger values as numpy views (``Bounded`` keeps views of its
  bounds): no torch kernel, no allocation beyond numpy's comparison results. This is the
  test ``EnvBase.check_action`` runs at every step.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar

import torch

from rlkernel.errors import SpecError
from rlkernel.specs._utils import (
    DeviceLike,
    ShapeLike,
    as_device,
    as_size,
    dtype_name,
    fmt_shape,
    indexed_shape,
    normalize_index,
    resolve_expand,
    shape_args,
    to_int64,
    to_tensor,
)


class TensorSpec(abc.ABC):
    """Abstract base of every spec: shape, dtype, device and the shared behaviour.

    Subclasses implement ``rand``, ``_values_in``, ``_why_values``, ``_project`` and
    ``_ctor_kwargs`` (the constructor arguments that rebuild the spec), and set
    ``_zero_value`` (a tensor of ``shape`` that ``zero`` expands).

    Example::

        >>> from rlkernel.specs import Bounded
        >>> spec = Bounded(-1.0, 1.0, shape=(3,))
        >>> spec.is_in(spec.rand((5,)))     # 5 extra leading dims are fine
        True
        >>> spec.expand(4, 3)[0] == spec
        True
    """

    _event_ndim: ClassVar[int] = 0
    # Constructor arguments that are tensors whose leading dims are the batch dims; they
    # follow the spec through expand / indexing / unsqueeze / squeeze.
    _batch_params: ClassVar[tuple[str, ...]] = ()

    __hash__ = None  # type: ignore[assignment]  # specs compare by value and can mutate

    shape: torch.Size
    dtype: torch.dtype
    device: torch.device
    _zero_value: torch.Tensor

    def __init__(self, shape: torch.Size, dtype: torch.dtype, device: torch.device) -> None:
        if len(shape) < self._event_ndim:
            raise SpecError(
                f"{type(self).__name__}: shape {fmt_shape(shape)} needs at least "
                f"{self._event_ndim} dim(s)"
            )
        self.shape = shape
        self.dtype = dtype
        self.device = device
        self._ndim = len(shape)
        self._on_cpu = device.type == "cpu"

    # ----------------------------------------------------------------- properties
    @property
    def ndim(self) -> int:
        """Number of dims of ``shape``."""
        return self._ndim

    @property
    def _batch_ndim(self) -> int:
        return self._ndim - self._event_ndim

    # ----------------------------------------------------------------- subclass hooks
    @abc.abstractmethod
    def rand(
        self, shape: ShapeLike = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """A random value in the spec, of shape ``(*shape, *self.shape)``.

        Uses torch's global RNG unless ``generator`` is given, so ``torch.manual_seed``
        makes it reproducible.
        """

    @abc.abstractmethod
    def _values_in(self, val: torch.Tensor) -> bool:
        """Domain check of a tensor already known to have the right dtype, shape and device."""

    @abc.abstractmethod
    def _why_values(self, val: torch.Tensor) -> str | None:
        """Slow twin of ``_values_in`` that says what is wrong."""

    @abc.abstractmethod
    def _project(self, val: torch.Tensor) -> torch.Tensor:
        """Map a tensor whose shape ends with ``self.shape`` into the spec."""

    @abc.abstractmethod
    def _ctor_kwargs(self) -> dict[str, Any]:
        """Constructor keyword arguments that rebuild an equal spec."""

    def _repr_params(self) -> list[str]:
        """Extra ``name=value`` items shown by ``repr`` after shape and dtype."""
        return []

    # ----------------------------------------------------------------- values
    def _full_shape(self, shape: ShapeLike) -> torch.Size:
        if shape is None or shape == ():
            return self.shape
        return torch.Size((*as_size(shape), *self.shape))

    def zero(self, shape: ShapeLike = None) -> torch.Tensor:
        """A fixed value that is in the spec, of shape ``(*shape, *self.shape)``.

        It is zero when zero is in the domain; see each class for the other cases.
        """
        return self._zero_value.expand(self._full_shape(shape)).clone()

    def is_in(self, val: Any) -> bool:
        """True iff ``val`` is a tensor of ``self.dtype`` whose shape ends with
        ``self.shape`` and whose every entry is in the domain (any device)."""
        if not isinstance(val, torch.Tensor) or val.dtype is not self.dtype:
            return False
        nd = self._ndim
        if nd and val.shape[-nd:] != self.shape:
            return False
        if self._on_cpu:  # (cheaper than comparing devices)
            if not val.is_cpu:
                val = val.cpu()
        elif val.device != self.device:
            val = val.to(self.device)
        return self._values_in(val)

    def why_not_in(self, val: Any) -> str | None:
        """``None`` if ``is_in(val)``, else a sentence saying what is wrong with ``val``."""
        if not isinstance(val, torch.Tensor):
            return f"expected a torch.Tensor, got {type(val).__name__}"
        nd = self._ndim
        if val.dtype != self.dtype:
            return f"dtype is {dtype_name(val.dtype)}, expected {dtype_name(self.dtype)}"
        if nd and val.shape[-nd:] != self.shape:
            return (
                f"shape is {fmt_shape(val.shape)}, expected {fmt_shape(self.shape)} "
                "(optionally with extra leading dims)"
            )
        if val.device != self.device:
            val = val.to(self.device)
        if val.numel() == 0:
            return None
        return self._why_values(val)

    def assert_is_in(self, val: Any, key: Any = None, *, role: str = "value") -> None:
        """Raise :class:`SpecError` unless ``is_in(val)``.

        The message names ``role`` and ``key`` (when given), the spec and what is wrong::

            action 'action' does not fit Bounded(shape=[1], dtype=float32, low=-2.0,
            high=2.0): value 3.7 is above high 2.0 at index (0,)
        """
        if self.is_in(val):
            return
        reason = self.why_not_in(val) or "it is not in the spec"
        who = role if key is None else f"{role} {key!r}"
        raise SpecError(f"{who} does not fit {self!r}: {reason}")

    def _check_trailing_shape(self, val: torch.Tensor, what: str) -> None:
        nd = self._ndim
        if nd and val.shape[-nd:] != self.shape:
            raise SpecError(
                f"{type(self).__name__}.{what}: value of shape {fmt_shape(val.shape)} does not "
                f"end with the spec shape {fmt_shape(self.shape)} ({self!r})"
            )

    def project(self, val: Any) -> torch.Tensor:
        """Map ``val`` (shape ending with ``self.shape``) to the closest-ish value in the spec.

        The result has the spec's dtype and device; ``is_in(project(x))`` holds for every
        ``x`` of a valid shape, NaN and infinities included.
        """
        val = to_tensor(val)
        self._check_trailing_shape(val, "project")
        if val.device != self.device:
            val = val.to(self.device)
        return self._project(val)

    def encode(self, val: Any, *, ignore_device: bool = False) -> torch.Tensor:
        """Turn a number, list, numpy array or tensor into a tensor of the spec's dtype,
        shape and device.

        A value of another shape but with the same number of entries is reshaped. Floats
        cast to an integer dtype are rounded. ``encode`` converts, it does not check the
        domain (use ``assert_is_in`` for that). With ``ignore_device`` the tensor stays on
        the device it came on.

        Example::

            >>> from rlkernel.specs import Bounded
            >>> Bounded(0, 1, shape=(2, 2)).encode([0.5, 0.25, 0.0, 1.0]).shape
            torch.Size([2, 2])
        """
        t = self._encode(to_tensor(val, self.dtype if self.dtype.is_floating_point else None))
        if not ignore_device and t.device != self.device:
            t = t.to(self.device)
        return t

    def _encode(self, t: torch.Tensor) -> torch.Tensor:
        return self._cast(self._fit_shape(t, self.shape, "encode"))

    def _fit_shape(self, t: torch.Tensor, shape: torch.Size, what: str) -> torch.Tensor:
        if t.shape == shape:
            return t
        if t.numel() == shape.numel():
            return t.reshape(shape)
        raise SpecError(
            f"{self!r}.{what}: cannot turn a value of shape {fmt_shape(t.shape)} "
            f"({t.numel()} entries) into shape {fmt_shape(shape)} ({shape.numel()} entries)"
        )

    def _cast(self, t: torch.Tensor) -> torch.Tensor:
        """Cast to the spec dtype; floats going to an integer dtype are rounded first."""
        if t.dtype is self.dtype:
            return t
        if (
            t.is_floating_point()
            and not self.dtype.is_floating_point
            and self.dtype is not torch.bool
        ):
            t = to_int64(t)
        return t.to(self.dtype)

    def to_numpy(self, val: torch.Tensor, safe: bool = False) -> Any:
        """``val`` as a numpy array (``safe=True`` first checks ``assert_is_in``)."""
        if safe:
            self.assert_is_in(val)
        return val.detach().cpu().numpy()

    # ----------------------------------------------------------------- shape operations
    def _rebuild(self, **changes: Any) -> TensorSpec:
        kwargs = self._ctor_kwargs()
        kwargs.update(changes)
        return type(self)(**kwargs)

    def _map_batch(
        self, new_shape: torch.Size, fn: Callable[[torch.Tensor], torch.Tensor]
    ) -> TensorSpec:
        """Rebuild with ``new_shape``, applying ``fn`` to every batch-leading tensor param."""
        kwargs = self._ctor_kwargs()
        for name in self._batch_params:
            if kwargs.get(name) is not None:
                kwargs[name] = fn(kwargs[name])
        kwargs["shape"] = new_shape
        return type(self)(**kwargs)

    def expand(self, *shape: Any) -> TensorSpec:
        """A spec of shape ``shape``, which must end with ``self.shape``.

        Accepts ints or one sequence: ``spec.expand(4, *spec.shape)`` or
        ``spec.expand((4, 3))``. ``-1`` keeps a dim and batch dims of size 1 may grow.
        """
        new = resolve_expand(self.shape, shape_args(shape, "expand"), self._batch_ndim, repr(self))
        old_bnd = self._batch_ndim
        new_batch = new[: len(new) - self._event_ndim]
        return self._map_batch(new, lambda t: t.expand(*new_batch, *t.shape[old_bnd:]))

    def __getitem__(self, idx: Any) -> TensorSpec:
        """Index the batch dims (int, slice, None, Ellipsis, int/bool tensors, tuples).

        ``spec.expand(4, *spec.shape)[i] == spec``. An index that would reach an event dim
        raises :class:`SpecError`.
        """
        bnd = self._batch_ndim
        norm = normalize_index(idx, bnd, repr(self))
        batch = indexed_shape(self.shape[:bnd], norm, repr(self))
        return self._map_batch(torch.Size((*batch, *self.shape[bnd:])), lambda t: t[norm])

    def unsqueeze(self, dim: int) -> TensorSpec:
        """Insert a batch dim of size 1 at ``dim`` (negative dims count from the end)."""
        d = dim + self._ndim + 1 if dim < 0 else dim
        if not 0 <= d <= self._batch_ndim:
            raise SpecError(
                f"{self!r}.unsqueeze({dim}): a new dim can only go among the first "
                f"{self._batch_ndim} batch dim(s) (positions 0..{self._batch_ndim})"
            )
        new = torch.Size((*self.shape[:d], 1, *self.shape[d:]))
        return self._map_batch(new, lambda t: t.unsqueeze(d))

    def squeeze(self, dim: int | None = None) -> TensorSpec:
        """Drop batch dims of size 1 (all of them, or ``dim`` when it has size 1)."""
        if dim is None:
            dims = [i for i in range(self._batch_ndim) if self.shape[i] == 1]
        else:
            d = dim + self._ndim if dim < 0 else dim
            if not 0 <= d < self._batch_ndim:
                raise SpecError(
                    f"{self!r}.squeeze({dim}): only the first {self._batch_ndim} batch "
                    "dim(s) can be squeezed"
                )
            dims = [d] if self.shape[d] == 1 else []
        if not dims:
            return self.clone()
        new = torch.Size(s for i, s in enumerate(self.shape) if i not in dims)

        def drop(t: torch.Tensor) -> torch.Tensor:
            for d in reversed(dims):
                t = t.squeeze(d)
            return t

        return self._map_batch(new, drop)

    # ----------------------------------------------------------------- copies, devices
    def clone(self) -> TensorSpec:
        """An equal, independent spec."""
        return self._rebuild()

    def to(self, dest: torch.dtype | DeviceLike) -> TensorSpec:
        """A copy on another device (``spec.to("cuda")``) or with another dtype
        (``spec.to(torch.float64)``); ``self`` when nothing changes."""
        if isinstance(dest, torch.dtype):
            return self if dest is self.dtype else self._rebuild(dtype=dest)
        device = as_device(dest)
        return self if device == self.device else self._rebuild(device=device)

    def cpu(self) -> TensorSpec:
        """``self.to("cpu")``."""
        return self.to("cpu")

    # ----------------------------------------------------------------- comparison, repr
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TensorSpec):
            return NotImplemented
        if type(self) is not type(other):
            return False
        if (self.shape, self.dtype, self.device) != (other.shape, other.dtype, other.device):
            return False
        mine, theirs = self._ctor_kwargs(), other._ctor_kwargs()
        return all(_param_equal(mine[k], theirs[k]) for k in mine)

    def __repr__(self) -> str:
        parts = [f"shape={fmt_shape(self.shape)}", f"dtype={dtype_name(self.dtype)}"]
        parts += self._repr_params()
        if self.device.type != "cpu":
            parts.append(f"device={self.device}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _param_equal(a: Any, b: Any) -> bool:
    """Equality of constructor arguments; a ``None`` mask equals an all-True mask."""
    if a is None and b is None:
        return True
    if a is None or b is None:
        other = b if a is None else a
        return isinstance(other, torch.Tensor) and other.dtype == torch.bool and bool(other.all())
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and bool(torch.equal(a, b.to(a.device)))
        )
    return a == b
