"""Helpers shared by the collector tests (importable by worker processes and torchrun ranks)."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

import torch
from tensordict import TensorDictBase
from tensordict.nn import TensorDictModule
from torch import nn

from rlkernel.collectors import TRAJ_IDS_KEY
from rlkernel.testing import CartPoleEnv, CountingEnv


class CategoricalSample(nn.Module):
    """Logits -> sampled category (``torch.multinomial``), for one or two dims."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.multinomial(logits.softmax(-1), 1).squeeze(-1)


class Greedy(nn.Module):
    """Logits -> their argmax (deterministic)."""

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(-1)


class AlwaysZero(nn.Module):
    """Observation -> action 0, whatever the observation."""

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        return torch.zeros(observation.shape[:-1], dtype=torch.int64)


def mlp(obs_dim: int = 4, n_actions: int = 2) -> nn.Sequential:
    """The 4-64-64-2 tanh MLP (logits)."""
    return nn.Sequential(
        nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, n_actions)
    )


def sampling_policy(seed: int = 0) -> TensorDictModule:
    """A TensorDictModule observation -> (logits, action) sampling from the MLP's logits."""
    torch.manual_seed(seed)
    return TensorDictModule(nn.Sequential(mlp(), CategoricalSample()), ["observation"], ["action"])


def greedy_policy(seed: int = 0) -> TensorDictModule:
    """A deterministic TensorDictModule: the MLP's argmax."""
    torch.manual_seed(seed)
    return TensorDictModule(nn.Sequential(mlp(), Greedy()), ["observation"], ["action"])


def zero_policy() -> TensorDictModule:
    """A deterministic policy that always takes action 0."""
    return TensorDictModule(AlwaysZero(), ["observation"], ["action"])


def cartpole(num_envs: int | None = None) -> CartPoleEnv:
    """The core's cart-pole (``rlkernel.testing.CartPoleEnv``), ``num_envs`` of them batched."""
    return CartPoleEnv(num_envs=num_envs)


class CrashingCartPole:
    """A factory of cart-pole envs whose ``_step`` raises after ``after`` steps (in one worker).

    The crashing env is a subclass with its own ``_step``: a class that defines ``_step``
    is stepped through it everywhere (a method patched on an instance is not: the direct
    step is declared by the class).
    """

    def __init__(self, after: int, crash: bool = True, num_envs: int | None = None) -> None:
        self.after, self.crash, self.num_envs = after, crash, num_envs

    def __call__(self) -> CartPoleEnv:
        if not self.crash:
            return cartpole(self.num_envs)
        after = self.after

        class Crashing(CartPoleEnv):
            count = 0

            def _step(self, td):
                self.count += 1
                if self.count > after:
                    raise ValueError(f"boom after {after} steps")
                return super()._step(td)

        return Crashing(num_envs=self.num_envs)


def failing_factory():
    """An env factory that raises (a start-up failure)."""
    raise RuntimeError("cannot build this environment")


def check_trajectories(batch: TensorDictBase) -> None:
    """Check trajectory ids against the done flags along the time dim (the last one).

    Within each sub-environment's row: the id changes exactly after a step whose
    ``("next", "done")`` is set; ``observation[t + 1] == ("next", "observation")[t]``
    inside an episode; an id never comes back once it changed.
    """
    rows = batch.reshape(-1, batch.shape[-1])
    ids = rows.get(TRAJ_IDS_KEY)
    done = rows.get(("next", "done")).reshape(ids.shape)
    obs, next_obs = rows.get("observation"), rows.get(("next", "observation"))
    seen: set[int] = set()
    for r in range(ids.shape[0]):
        for t in range(1, ids.shape[1]):
            changed = bool(ids[r, t] != ids[r, t - 1])
            assert changed == bool(done[r, t - 1]), (r, t, ids[r], done[r])
            if not changed:
                assert torch.equal(obs[r, t], next_obs[r, t - 1]), (r, t)
        row_ids = list(dict.fromkeys(ids[r].tolist()))
        assert not seen.intersection(row_ids), "a trajectory id appears in two sub-environments"
        seen.update(row_ids)


@contextlib.contextmanager
def hang_guard(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging) if the block runs longer than ``seconds`` (main thread only)."""

    def on_alarm(signum, frame):
        raise TimeoutError(f"hang guard: the block did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class LateOutOfBounds(nn.Module):
    """Observation -> action ``0.5`` for the first ``good_steps`` calls, then ``value``.

    For a ``[0, 1]`` action spec (``rlkernel.testing.CountingEnv``): a policy that goes
    out of bounds only later in a batch.
    """

    def __init__(self, good_steps: int, value: float = 7.0) -> None:
        super().__init__()
        self.good_steps, self.value, self.calls = good_steps, value, 0

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        fill = 0.5 if self.calls <= self.good_steps else self.value
        return torch.full(observation.shape, fill)


def late_out_of_bounds_policy(good_steps: int, value: float = 7.0) -> TensorDictModule:
    """A TensorDictModule around :class:`LateOutOfBounds`."""
    return TensorDictModule(LateOutOfBounds(good_steps, value), ["observation"], ["action"])


def counting_env(batch_size: tuple[int, ...] = (), check_actions: bool = True):
    """A ``CountingEnv`` that never terminates in a test (``max_count=1e9``)."""
    return CountingEnv(max_count=1e9, batch_size=batch_size, check_actions=check_actions)
