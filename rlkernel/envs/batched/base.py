"""What :class:`SerialEnv` and :class:`ParallelEnv` share: specs, buffer, step and reset.

A batched environment of ``N`` sub-environments of batch size ``S`` has batch size
``(N, *S)``. Its specs are the sub-environment's, expanded along the new leading dim,
after checking that every sub-environment declares the same ones.

Data moves through one preallocated buffer (see :mod:`~rlkernel.envs.batched.layout`):
``step`` copies the actions (and states) into it, has the sub-environments step, and
returns one ``clone`` of the ``"next"`` entries, so the caller owns what it gets (the buffer
is overwritten by the next call). ``reset`` works alike; with a ``"_reset"`` mask only the
selected sub-environments reset, and :meth:`~rlkernel.envs.EnvBase.reset` takes the other
entries from the given TensorDict (entries it lacks hold the sub-environment's last reset
values).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs.batched.layout import BufferLayout
from rlkernel.envs.batched.subspecs import SubEnvSpecs, check_same_specs
from rlkernel.envs.common import EnvBase
from rlkernel.envs.step import DONE, NEXT, RESET, step_mdp
from rlkernel.errors import ActionError, EnvError

EnvFactory = Callable[..., EnvBase]


def normalize_factories(
    owner: str,
    num_workers: int,
    create_env_fn: EnvFactory | Sequence[EnvFactory],
    create_env_kwargs: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
) -> list[tuple[EnvFactory, dict[str, Any]]]:
    """One ``(factory, kwargs)`` per worker, from a single one or a sequence of ``num_workers``."""
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise EnvError(f"{owner}: num_workers must be a positive int, got {num_workers!r}")
    if callable(create_env_fn):
        fns = [create_env_fn] * num_workers
    elif isinstance(create_env_fn, Sequence) and all(callable(f) for f in create_env_fn):
        fns = list(create_env_fn)
        if len(fns) != num_workers:
            raise EnvError(f"{owner}: {len(fns)} create_env_fn given for {num_workers} workers")
    else:
        raise EnvError(
            f"{owner}: create_env_fn must be a callable returning an EnvBase (or a list of "
            f"{num_workers}), got {create_env_fn!r}"
        )
    if create_env_kwargs is None:
        kwargs: list[dict[str, Any]] = [{} for _ in range(num_workers)]
    elif isinstance(create_env_kwargs, Mapping):
        kwargs = [dict(create_env_kwargs) for _ in range(num_workers)]
    elif isinstance(create_env_kwargs, Sequence) and all(isinstance(k, Mapping) for k in create_env_kwargs):
        kwargs = [dict(k) for k in create_env_kwargs]
        if len(kwargs) != num_workers:
            raise EnvError(f"{owner}: {len(kwargs)} create_env_kwargs given for {num_workers} workers")
    else:
        raise EnvError(
            f"{owner}: create_env_kwargs must be a dict or a list of {num_workers} dicts, "
            f"got {create_env_kwargs!r}"
        )
    return list(zip(fns, kwargs))


class BatchedEnvBase(EnvBase):
    """Base of the batched environments; subclasses run the sub-environments.

    Subclasses call :meth:`_prepare` first thing, then :meth:`_setup` with the specs
    every sub-environment reported, allocate ``self.layout.allocate(...)``, hand it to
    the sub-environments and call :meth:`_bind`; they implement ``_run_step``,
    ``_run_reset``, ``_run_seed`` and ``_shutdown``.
    """

    def _prepare(self, num_workers: int, device: Any, check_actions: bool) -> None:
        self.is_closed = False
        self.num_workers = num_workers
        self._requested_device = device
        self._requested_check_actions = check_actions

    def _setup(self, specs: list[SubEnvSpecs]) -> None:
        """Check the sub-environments agree, then take their specs, expanded."""
        owner = type(self).__name__
        check_same_specs(owner, specs)
        sub = specs[0]
        device = torch.device(self._requested_device) if self._requested_device is not None else sub.device
        EnvBase.__init__(
            self,
            device=device,
            batch_size=(self.num_workers, *sub.batch_size),
            check_actions=self._requested_check_actions,
        )
        expanded = sub.expanded(self.num_workers, device)
        self.full_observation_spec = expanded["observation"]
        self.full_action_spec = expanded["action"]
        self.full_reward_spec = expanded["reward"]
        self.full_done_spec = expanded["done"]
        self.full_state_spec = expanded["state"]
        self.sub_batch_size = sub.batch_size
        self.layout = BufferLayout(self.num_workers, sub)
        self._sub_env_type = sub.env_type

    def _bind(self, flat: torch.Tensor) -> None:
        """Make the parent's views of the buffer ``flat``."""
        layout = self.layout
        self._buffer = flat
        action_keys = set(self.action_keys)
        self._inputs = [(key, view, key in action_keys) for key, view in layout.batched_views(flat, "input")]
        reset = layout.batched_views(flat, "reset")
        self._reset_view = reset[0][1] if reset else None
        self._root_views = layout.batched_views(flat, "root")
        # the reset outputs as one TensorDict of views, for the partial-reset merge
        self._root_td = layout.batched_tensordict(flat, "root")
        self._next_views = layout.batched_views(flat, "next")
        self._buffer_device = flat.device
        self._done_views = [
            (key, view) for key, view in self._next_views if (key[-1] if isinstance(key, tuple) else key) == DONE
        ]
        self._next_states = layout.batched_views(flat, "next_state")
        flags = layout.batched_views(flat, "flags")
        self._state_flags = flags[0][1] if flags else None
        self._all_workers = list(range(self.num_workers))
        flat_keys = all(isinstance(entry[0], str) for entry in (*self._inputs, *self._next_views))
        self._reward_names = set(self.reward_keys)
        self._root_drop = {NEXT, RESET, *self.action_keys, *self.reward_keys} if flat_keys else None
        self._to_device = self.device != torch.device("cpu")

    # ------------------------------------------------------------------ subclass hooks
    def _run_step(self, auto_reset: bool = False) -> None:
        """Step every sub-environment (then reset those done when ``auto_reset``)."""
        raise NotImplementedError

    def _run_reset(self, indices: list[int], partial: bool) -> None:
        raise NotImplementedError

    def _run_seed(self, seeds: list[int | None]) -> None:
        raise NotImplementedError

    def _shutdown(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ the contract
    def _step(self, tensordict: TensorDictBase, auto_reset: bool = False) -> TensorDictBase:
        for key, view, is_action in self._inputs:
            try:
                value = tensordict[key]
            except KeyError:
                value = None
            if not isinstance(value, torch.Tensor) or value.shape != view.shape or value.dtype != view.dtype:
                raise self._bad_input(key, value, view, is_action)
            view.copy_(value)
        self._run_step(auto_reset)
        out = self.layout.snapshot(self._next_views, self._buffer_device)
        if self._next_states:
            self._add_next_states(out)
        return out.to(self.device) if self._to_device else out

    def _complete(self, out: TensorDictBase, where: str) -> TensorDictBase:
        # The outputs are built from the specs (every done flag is there, the batch size is
        # right) and each sub-environment's output was checked key by key: nothing to do.
        return out

    def _bad_input(self, key: Any, value: Any, view: torch.Tensor, is_action: bool) -> EnvError:
        what = "action" if is_action else "state"
        spec = (self.full_action_spec if is_action else self.full_state_spec)[key]
        if value is None:
            got = "nothing (the key is missing)"
        elif isinstance(value, torch.Tensor):
            got = f"a tensor of shape {tuple(value.shape)} and dtype {value.dtype}"
        else:
            got = f"a {type(value).__name__}"
        cls = ActionError if is_action else EnvError
        return cls(f"{type(self).__name__}.step: {what} {key!r} must match {spec!r}, got {got}")

    def _add_next_states(self, out: TensorDictBase) -> None:
        flags = self._state_flags
        assert flags is not None
        for j, (key, view) in enumerate(self._next_states):
            came = flags[:, j].bool()
            if bool(came.all()):
                out.set(key, view.clone())
            elif bool(came.any()):
                raise EnvError(
                    f"{type(self).__name__}: the state {key!r} came back from the step of sub-environments "
                    f"{came.nonzero().flatten().tolist()} but not from the others; a state must be "
                    "returned by every sub-environment or by none"
                )

    def step_and_maybe_reset(self, tensordict: TensorDictBase) -> tuple[TensorDictBase, TensorDictBase]:
        """Step, then reset the sub-environments that are done, in one round trip.

        Same result as :meth:`EnvBase.step_and_maybe_reset`, but each sub-environment
        resets itself right after a step that ended its episode, so the batch needs no
        second call: the reset observations are merged into the returned root where
        ``done`` is set.
        """
        self._assert_open()
        self.check_step_input(tensordict)
        out = self._step(tensordict, auto_reset=True)
        tensordict.set(NEXT, out)
        root = self._next_root(tensordict, out)
        done = self._any_done(root)
        if bool(done.any()):  # EnvBase's partial-reset merge, with the reset outputs in the buffer
            fresh = self._root_td.to(self.device) if self._to_device else self._root_td
            root = self._merge_partial_reset(root, fresh, done.to(self.device))
        return tensordict, root

    def _next_root(self, tensordict: TensorDictBase, out: TensorDictBase) -> TensorDictBase:
        """``step_mdp(tensordict)``, built in one go when no key is nested (the common case)."""
        drop = self._root_drop
        if drop is not None:
            source: dict[str, Any] = {}
            for key, value in tensordict.items():
                if key in drop:
                    continue
                if isinstance(value, TensorDictBase):  # nested entries: the general path
                    source = None  # type: ignore[assignment]
                    break
                source[key] = value
            if source is not None:
                for key, value in out.items():
                    if key not in self._reward_names:
                        source[key] = value
                return TensorDict(source, batch_size=self.batch_size, device=self.device)
        return step_mdp(
            tensordict, reward_keys=self.reward_keys, done_keys=self.done_keys, action_keys=self.action_keys
        )

    def _any_done(self, td: TensorDictBase) -> torch.Tensor:
        """Which sub-environments are done (``EnvBase._any_done``, without its zero start)."""
        done = None
        lead = self.batch_size
        for key, _ in self._done_views:
            value = td.get(key).reshape(*lead, -1).any(-1)
            done = value if done is None else done | value
        return done if done is not None else torch.zeros(lead, dtype=torch.bool, device=self.device)

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        mask = tensordict.get(RESET, None) if tensordict is not None else None
        if mask is None:
            self._run_reset(self._all_workers, partial=False)
        else:
            self._reset_selected(mask)
        out = self.layout.snapshot(self._root_views, self._buffer_device)
        return out.to(self.device) if self._to_device else out

    def _reset_selected(self, mask: Any) -> None:
        expected = (*self.batch_size, 1)
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or tuple(mask.shape) not in (
            expected, tuple(self.batch_size)
        ):
            shown = f"shape {tuple(mask.shape)} and dtype {mask.dtype}" if isinstance(mask, torch.Tensor) else (
                type(mask).__name__
            )
            raise EnvError(
                f"{type(self).__name__}.reset: '_reset' must be a bool tensor of shape {expected}, got {shown}"
            )
        selected = mask.reshape(self.num_workers, -1).any(-1).nonzero().flatten().tolist()
        if not selected:
            return
        if self._reset_view is not None:
            self._reset_view.copy_(mask.reshape(self._reset_view.shape))
            self._run_reset(selected, partial=True)
        else:
            self._run_reset(selected, partial=False)

    def set_seed(self, seed: int | None) -> int | None:
        """Seed sub-environment ``i`` with ``seed + i * k`` (``k`` = sub-batch size, 1 when
        the sub-environments are not batched); return the next free seed, ``seed + N * k``.

        ``None`` is passed on to every sub-environment (and returned). As for any
        :class:`~rlkernel.envs.EnvBase`, the seed also seeds ``self.generator``, from which
        random actions (``rand_action``, ``rollout`` without a policy) are drawn.
        """
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
            raise EnvError(f"set_seed expects an int or None, got {type(seed).__name__}")
        self._assert_open()
        stride = max(1, self.sub_batch_size.numel())
        if seed is None:
            self._run_seed([None] * self.num_workers)
            self.generator = None
            return None
        seed = int(seed)
        self._run_seed([seed + i * stride for i in range(self.num_workers)])
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        return seed + self.num_workers * stride

    def _set_seed(self, seed: int | None) -> None:
        self.set_seed(seed)

    # ------------------------------------------------------------------ life cycle
    def close(self) -> None:
        """Close every sub-environment; harmless when called again."""
        if getattr(self, "_shut", False):
            return
        self._shut = True
        self.is_closed = True
        try:
            self._shutdown()
        finally:  # drop the buffer (shared memory for ParallelEnv) and the views into it
            self._buffer = None
            self._inputs, self._root_views, self._next_views, self._next_states = [], [], [], []
            self._done_views, self._reset_view, self._state_flags = [], None, None
            self._root_td = None

    def __enter__(self) -> BatchedEnvBase:
        return self

    def __repr__(self) -> str:
        if not hasattr(self, "layout"):
            return f"{type(self).__name__}(not started)"
        return (
            f"{type(self).__name__}(num_workers={self.num_workers}, env={self._sub_env_type}, "
            f"batch_size={tuple(self.batch_size)}, device={self.device}, closed={self.is_closed})"
        )
