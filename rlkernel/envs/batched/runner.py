"""One sub-environment bound to its slice of the batched buffer.

:class:`SubEnvRunner` is the code both :class:`~rlkernel.envs.batched.SerialEnv` (in
process) and every :class:`~rlkernel.envs.batched.ParallelEnv` worker (in its own process)
run: read the inputs from the slice, call the environment, check its output against the
cached spec signature and write it into the slice. The input TensorDict (views of the
slice) is built once and reused; if an environment sets or adds entries in it, a clean
one is built for the next step.

An environment class that declares a direct step (``EnvBase.direct_step``, e.g.
``rlkernel_gym.GymWrapper``) is stepped through it: ``env._step_into_fn(inputs, outputs)``
receives the slice's input views and its step-output views (dicts keyed like ``_step``'s
input and output) and returns a function of no argument that steps once, reading the
former and writing the step's outcome into the latter -- or ``None`` when it cannot (then
``_step`` is used).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict

from rlkernel.envs.batched.layout import BufferLayout
from rlkernel.envs.batched.subspecs import SubEnvSpecs
from rlkernel.envs.batched.writer import OutputWriter
from rlkernel.envs.common import EnvBase
from rlkernel.envs.step import DONE


class SubEnvRunner:
    """Steps, resets and seeds ``env`` through its slice ``index`` of ``flat``.

    Args:
        env: the sub-environment.
        layout: the buffer layout shared with the parent.
        flat: the flat buffer (shared memory for a worker process).
        index: the worker index, which selects the slice.
    """

    def __init__(self, env: EnvBase, layout: BufferLayout, flat: torch.Tensor, index: int) -> None:
        self.env = env
        self.index = index
        specs = SubEnvSpecs.of(env)
        leaf = {path: spec for path, spec in specs.leaves("observation", "reward", "done", "state")}
        self._batch_size = specs.batch_size

        def with_specs(slot: str) -> list:
            entries = layout.slot(slot)
            views = layout.worker_views(flat, index, slot)
            return [(key, view, leaf[e.path]) for e, (key, view) in zip(entries, views)]

        name = type(env).__name__
        flags = layout.worker_views(flat, index, "flags")
        self._step_writer = OutputWriter(
            f"{name}._step output",
            with_specs("next"),
            with_specs("next_state"),
            flags[0][1] if flags else None,
        )
        self._reset_writer = OutputWriter(f"{name}._reset output", with_specs("root"))
        inputs = layout.worker_views(flat, index, "input")
        self._input_entries = _nest(inputs)
        self._input_views = dict(inputs) if all(isinstance(key, str) for key, _ in inputs) else None
        self._input = TensorDict(self._input_entries, batch_size=self._batch_size)
        reset = layout.worker_views(flat, index, "reset")
        self._reset_mask = reset[0][1] if reset else None
        self._reset_input = (
            TensorDict({reset[0][0]: reset[0][1]}, batch_size=self._batch_size) if reset else None
        )
        self._direct = None
        if type(env).direct_step and not layout.slot("next_state"):
            self._direct = env._step_into_fn(dict(inputs), dict(layout.worker_views(flat, index, "next")))
        # numpy views of the step's done flags: the cheapest way to read a few bools
        self._done_flags = [view.numpy() for key, view in layout.worker_views(flat, index, "next") if _is_done(key)]

    def step(self) -> None:
        """Step with the inputs in the slice; write the outcome into the slice."""
        if self._direct is not None:
            self._direct()
            return
        env = self.env
        td = self._input
        out = env._step(td)
        if not self._input_intact(td):  # the env changed its input: a clean one next time
            self._input = TensorDict(self._input_entries, batch_size=self._batch_size)
        if not self._step_writer.try_write(out):  # something is off (or a done flag left to fill)
            self._step_writer.write(env._complete(out, "_step"))

    def _input_intact(self, td: TensorDict) -> bool:
        """Whether ``td`` still holds exactly the slice's input views (nothing set or added)."""
        views = self._input_views
        if views is None:  # nested inputs: do not bother, always rebuild
            return False
        entries = dict(td.items())
        if len(entries) != len(views):
            return False
        for key, view in views.items():
            if entries.get(key) is not view:
                return False
        return True

    def step_and_maybe_reset(self) -> None:
        """Step, then reset where a ``done`` flag of the step is up.

        The reset output goes to the slice's root entries, where the parent picks it up
        for the sub-environments that were done (as ``EnvBase.maybe_reset`` would).
        """
        self.step()
        if self._reset_mask is None:
            for flag in self._done_flags:
                if flag.any():
                    self.reset(False)
                    return
            return
        mask = self._reset_mask
        mask.zero_()
        for flag in self._done_flags:
            mask |= torch.from_numpy(flag).reshape(*self._batch_size, -1).any(-1, keepdim=True)
        if bool(mask.any()):
            self.reset(True)

    def reset(self, partial: bool) -> None:
        """Reset (only where the slice's ``"_reset"`` mask says when ``partial``)."""
        td = self._reset_input.copy() if partial and self._reset_input is not None else None
        out = self.env.reset(td) if td is not None else self.env.reset()
        if not self._reset_writer.try_write(out):
            self._reset_writer.write(out)

    def set_seed(self, seed: int | None) -> None:
        """Seed the sub-environment."""
        self.env.set_seed(seed)

    def close(self) -> None:
        """Close the sub-environment."""
        self.env.close()


def _is_done(key: object) -> bool:
    return (key[-1] if isinstance(key, tuple) else key) == DONE


def _nest(items: list[tuple[object, torch.Tensor]]) -> dict[str, object]:
    """``[(("a", "b"), t), ("c", u)]`` -> ``{"a": {"b": t}, "c": u}`` (TensorDict source)."""
    out: dict[str, object] = {}
    for key, value in items:
        path = key if isinstance(key, tuple) else (key,)
        node = out
        for name in path[:-1]:
            node = node.setdefault(name, {})  # type: ignore[assignment]
        node[path[-1]] = value
    return out
