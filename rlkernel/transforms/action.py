""":class:`ActionDiscretizer`: a continuous ``Bounded`` action seen as categories."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tensordict import TensorDictBase

from rlkernel.envs.step import ACTION, NestedKey
from rlkernel.specs import Bounded, Categorical, Composite, MultiCategorical, MultiOneHot, OneHot, TensorSpec
from rlkernel.transforms._utils import TransformError, TransformKeyError, as_key, show_key, spec_keys
from rlkernel.transforms.base import Transform

_SAMPLING = {"median": 0.5, "low": 0.0, "high": 1.0, "random": None}


class ActionDiscretizer(Transform):
    """Split each dim of a ``Bounded`` action of shape ``(*batch, d)`` into intervals.

    The outside action is a category per dim: ``Categorical(n)`` of shape ``(*batch, 1)``
    when ``d == 1``, ``MultiCategorical(nvec)`` of shape ``(*batch, d)`` otherwise (with
    ``categorical=False``: ``OneHot`` / ``MultiOneHot``). The inverse maps category ``k``
    of dim ``j`` to ``low + (k + u) * (high - low) / n_j`` where ``u`` is 0.5 for
    ``sampling="median"`` (the interval's centre), 0 for ``"low"``, 1 for ``"high"`` and
    uniform in ``[0, 1)`` for ``"random"``.

    Args:
        num_intervals: one int for every dim, or one per dim.
        action_key: the env's action key.
        out_action_key: the outside key (default: ``action_key``).
        sampling: see above.
        categorical: categories (True) or one-hot vectors (False).

    Example::

        >>> from rlkernel.testing import CountingEnv
        >>> from rlkernel.transforms import TransformedEnv
        >>> env = TransformedEnv(CountingEnv(), ActionDiscretizer(4))
        >>> env.action_spec
        Categorical(shape=[1], dtype=int64, n=4)
        >>> env.step(env.reset().set("action", torch.tensor([3])))["next", "observation"]
        tensor([0.8750])
    """

    def __init__(
        self,
        num_intervals: int | Sequence[int],
        action_key: NestedKey = ACTION,
        out_action_key: NestedKey | None = None,
        sampling: str = "median",
        categorical: bool = True,
    ) -> None:
        action_key = as_key(action_key, "ActionDiscretizer", "action_key")
        out_key = (
            action_key if out_action_key is None else as_key(out_action_key, "ActionDiscretizer", "out_action_key")
        )
        super().__init__(in_keys_inv=[action_key], out_keys_inv=[out_key])
        values = [num_intervals] if isinstance(num_intervals, int) else list(num_intervals)
        if not values or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in values):
            raise TransformError(f"ActionDiscretizer: num_intervals must be positive ints, got {num_intervals!r}")
        if sampling not in _SAMPLING:
            raise TransformError(f"ActionDiscretizer: sampling must be one of {sorted(_SAMPLING)}, got {sampling!r}")
        self.num_intervals = num_intervals
        self.sampling = sampling
        self.categorical = bool(categorical)
        self.action_key = action_key
        self.out_action_key = out_key
        self._nvec: torch.Tensor | None = None
        self._low: torch.Tensor | None = None
        self._width: torch.Tensor | None = None
        self._high: torch.Tensor | None = None
        self._dtype = torch.float32

    def _validate_keys(self, output_spec: Composite, input_spec: Composite, where: str) -> None:
        actions = input_spec["full_action_spec"]
        if self.action_key not in actions:
            raise TransformKeyError(
                f"{where}: {show_key(self.action_key)} is not an action key; action keys: "
                f"{sorted(map(str, spec_keys(actions)))}"
            )
        spec = actions[self.action_key]
        if not isinstance(spec, Bounded) or not spec.dtype.is_floating_point:
            raise TransformError(
                f"{where}: ActionDiscretizer needs a floating-point Bounded action at "
                f"{show_key(self.action_key)}, got {spec!r}"
            )
        if len(spec.shape) == len(actions.shape):
            raise TransformError(
                f"{where}: the action {show_key(self.action_key)} needs a last dim (its shape is "
                f"{list(spec.shape)}, the batch shape {list(actions.shape)})"
            )

    def _categories(self, d: int) -> list[int]:
        if isinstance(self.num_intervals, int):
            return [self.num_intervals] * d
        nvec = list(self.num_intervals)
        if len(nvec) != d:
            raise TransformError(f"{self!r}: {len(nvec)} num_intervals for an action with {d} dims")
        return nvec

    def transform_action_spec(self, action_spec: Composite) -> Composite:
        spec = action_spec[self.action_key]
        d = spec.shape[-1]
        nvec = self._categories(d)
        self._nvec = torch.tensor(nvec, dtype=spec.dtype, device=spec.device)
        self._low, self._high = spec.low, spec.high
        self._width = (spec.high - spec.low) / self._nvec
        self._dtype = spec.dtype
        batch = spec.shape[:-1]
        out: TensorSpec
        if self.categorical:
            if d == 1:
                out = Categorical(nvec[0], shape=spec.shape, device=spec.device)
            else:
                out = MultiCategorical(nvec, shape=spec.shape, device=spec.device)
        elif d == 1:
            out = OneHot(nvec[0], shape=(*batch, nvec[0]), device=spec.device)
        else:
            out = MultiOneHot(nvec, shape=(*batch, sum(nvec)), device=spec.device)
        if self.out_action_key != self.action_key:
            del action_spec[self.action_key]
        action_spec[self.out_action_key] = out
        return action_spec

    def _indices(self, value: torch.Tensor) -> torch.Tensor:
        if self.categorical:
            return value
        assert self._nvec is not None
        segments = value.split([int(n) for n in self._nvec.tolist()], dim=-1)
        return torch.stack([s.to(torch.uint8).argmax(-1) for s in segments], -1)

    def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        if self._low is None or self._width is None or self._high is None:
            raise TransformError(f"{self!r}: not attached to an env yet, so the action bounds are unknown")
        idx = self._indices(value).to(self._dtype)
        fraction = _SAMPLING[self.sampling]
        offset = torch.rand_like(idx) if fraction is None else fraction
        low = self._low.to(value.device)
        width = self._width.to(value.device)
        return torch.minimum(low + (idx + offset) * width, self._high.to(value.device))

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Nothing to do on outputs; use :meth:`inv` to map stored actions to values."""
        return tensordict

    def _repr_args(self) -> list[str]:
        return [f"num_intervals={self.num_intervals}", f"sampling={self.sampling!r}"]
