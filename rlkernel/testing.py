"""Small environments for tests and for plugin authors trying the contract.

Environments a user trains on come from plugins (``rlkernel-gym``, ``rlkernel-dmc``, ...);
these exist so the core can test itself without any backend installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase

from rlkernel.envs.common import EnvBase
from rlkernel.envs.step import NestedKey
from rlkernel.errors import ActionError, EnvError
from rlkernel.specs import Bounded, Categorical, Composite, Unbounded


class CountingEnv(EnvBase):
    """Adds the action (a float in ``[0, 1]``) to a counter; terminates at ``max_count``.

    Observation ``"observation"`` is the counter, shape ``(*batch_size, 1)``; the reward
    is the action; ``truncated`` is raised after ``max_steps`` steps when given.

    >>> env = CountingEnv(max_count=2, batch_size=(3,))
    >>> env.rollout(5, policy=lambda td: td.set("action", torch.ones(3, 1))).batch_size
    torch.Size([3, 2])

    ``num_envs=N`` is ``batch_size=(N,)``: it batches natively under :func:`rlkernel.make_env`.
    """

    batches_natively = True

    def __init__(
        self,
        max_count: float = 5.0,
        *,
        max_steps: int | None = None,
        batch_size: tuple[int, ...] = (),
        num_envs: int | None = None,
        device: str | torch.device | None = None,
        check_actions: bool = True,
    ) -> None:
        if num_envs is not None:
            if batch_size:
                raise EnvError(f"CountingEnv: give num_envs or batch_size, not both (got {num_envs}, {batch_size})")
            batch_size = (num_envs,)
        super().__init__(batch_size=batch_size, device=device, check_actions=check_actions)
        shape = (*self.batch_size, 1)
        self.max_count = float(max_count)
        self.max_steps = max_steps
        self.observation_spec = Composite(
            observation=Unbounded(shape=shape, device=self.device), shape=self.batch_size, device=self.device
        )
        self.action_spec = Bounded(0.0, 1.0, shape=shape, device=self.device)
        self.count = torch.zeros(shape, device=self.device)
        self.steps = torch.zeros(shape, dtype=torch.int64, device=self.device)
        self.seed: int | None = None

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        mask = tensordict.get("_reset", None) if tensordict is not None else None
        if mask is None:
            self.count.zero_()
            self.steps.zero_()
        else:
            self.count[mask] = 0.0
            self.steps[mask] = 0
        return TensorDict({"observation": self.count.clone()}, self.batch_size, device=self.device)

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        action = tensordict.get("action")
        self.count += action
        self.steps += 1
        terminated = self.count >= self.max_count
        truncated = (
            self.steps >= self.max_steps if self.max_steps is not None else torch.zeros_like(terminated)
        )
        return TensorDict(
            {
                "observation": self.count.clone(),
                "reward": action.clone(),
                "terminated": terminated,
                "truncated": truncated & ~terminated,
                "done": terminated | truncated,
            },
            self.batch_size,
            device=self.device,
        )

    def _set_seed(self, seed: int | None) -> None:
        self.seed = seed


class CartPoleEnv(EnvBase):
    """The classic cart-pole balancing task in pure torch, batched: a stand-in for gymnasium's
    ``CartPole-v1`` so that the core (and plugins that must not need gymnasium) can test with a
    real control task.

    A pole is hinged on a cart that moves along a track; the pole starts nearly upright and
    falls unless the cart is pushed under it. The equations of motion are those of Barto,
    Sutton and Anderson (1983), integrated with explicit Euler steps of ``0.02`` s.

    - ``"observation"``: ``(x, x_dot, theta, theta_dot)`` (cart position and velocity, pole
      angle and angular velocity), a :class:`~rlkernel.specs.Bounded` float vector of shape
      ``(*batch_size, 4)`` within :attr:`OBSERVATION_HIGH` (the state is clipped to it; an
      episode ends well before the bounds of the positions and angles are reached).
    - ``"pixels"`` (``from_pixels=True``): a ``uint8`` picture ``(*batch_size, H, W, 3)`` of the
      cart (black) and the pole (brown) on white, drawn from the state; ``pixels_only=True``
      drops ``"observation"``.
    - actions: by default :class:`~rlkernel.specs.Categorical` ``2`` (push left, push right with
      a force of 10 N); ``continuous=True`` gives a :class:`~rlkernel.specs.Bounded` action of
      shape ``(*batch_size, 1)`` in ``[-1, 1]``, the force in units of 10 N.
    - reward ``1.0`` every step; ``terminated`` when ``|x| > 2.4`` or ``|theta| > 12`` degrees;
      ``truncated`` after ``max_steps`` steps of an episode (``None``: never).

    Its step is a *direct step* (:data:`~rlkernel.envs.EnvBase.direct_step`): it writes into
    the caller's tensors, so the batched envs and the collectors take the path they take
    for gymnasium's envs in ``rlkernel-gym``; a subclass that defines ``_step`` is stepped
    through it instead.

    Start states are drawn uniformly in ``[-0.05, 0.05]`` for each of the four values, from the
    env's own generator once :meth:`set_seed` has been called, else from torch's global one.
    A partial reset (``"_reset"`` mask) redraws the masked sub-environments only. ``num_envs=N``
    is ``batch_size=(N,)``: it batches natively under :func:`rlkernel.make_env`.

    >>> env = CartPoleEnv(num_envs=2)
    >>> env.set_seed(0)
    0
    >>> env.rollout(3, break_when_any_done=False)["next", "reward"].shape
    torch.Size([2, 3, 1])
    """

    batches_natively = True
    direct_step = True

    #: The observation's upper bounds (the lower ones are their negatives): twice the
    #: termination thresholds for ``x`` and ``theta``, and a speed no episode reaches.
    OBSERVATION_HIGH = (4.8, 10.0, 0.4189, 10.0)
    GRAVITY, CART_MASS, POLE_MASS, POLE_HALF_LENGTH, FORCE, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    X_THRESHOLD, THETA_THRESHOLD = 2.4, math.radians(12)

    def __init__(
        self,
        *,
        continuous: bool = False,
        max_steps: int | None = 500,
        from_pixels: bool = False,
        pixels_only: bool = False,
        pixel_size: tuple[int, int] = (64, 96),
        dtype: torch.dtype = torch.float32,
        batch_size: tuple[int, ...] = (),
        num_envs: int | None = None,
        device: str | torch.device | None = None,
        check_actions: bool = True,
    ) -> None:
        if num_envs is not None:
            if batch_size:
                raise EnvError(f"CartPoleEnv: give num_envs or batch_size, not both (got {num_envs}, {batch_size})")
            batch_size = (num_envs,)
        if pixels_only and not from_pixels:
            raise EnvError("CartPoleEnv: pixels_only=True needs from_pixels=True")
        if not dtype.is_floating_point:
            raise EnvError(f"CartPoleEnv: dtype must be a floating-point torch.dtype, got {dtype}")
        if max_steps is not None and max_steps < 1:
            raise EnvError(f"CartPoleEnv: max_steps must be a positive int or None, got {max_steps}")
        super().__init__(batch_size=batch_size, device=device, check_actions=check_actions)
        self.continuous, self.max_steps, self.dtype = continuous, max_steps, dtype
        self.from_pixels, self.pixels_only, self.pixel_size = from_pixels, pixels_only, tuple(pixel_size)
        batch, dev = self.batch_size, self.device
        observation = Composite(shape=batch, device=dev)
        high = torch.tensor(self.OBSERVATION_HIGH, dtype=dtype, device=dev)
        if not pixels_only:
            observation["observation"] = Bounded(-high, high, shape=(*batch, 4), dtype=dtype, device=dev)
        if from_pixels:
            observation["pixels"] = Bounded(0, 255, shape=(*batch, *self.pixel_size, 3), dtype=torch.uint8, device=dev)
        self.observation_spec = observation
        if continuous:
            self.action_spec = Bounded(-1.0, 1.0, shape=(*batch, 1), dtype=dtype, device=dev)
        else:
            self.action_spec = Categorical(2, shape=batch, device=dev)
        self._high = high
        self.state = torch.zeros((*batch, 4), dtype=dtype, device=dev)
        self.steps = torch.zeros(batch, dtype=torch.int64, device=dev)
        self._rng: torch.Generator | None = None

    def _set_seed(self, seed: int | None) -> None:
        if seed is None:
            self._rng = None
        else:
            self._rng = torch.Generator(device=self.device)
            self._rng.manual_seed(seed)

    def _observe(self) -> dict[str, torch.Tensor]:
        out = {}
        if not self.pixels_only:
            out["observation"] = self.state.clone()
        if self.from_pixels:
            out["pixels"] = self.render()
        return out

    def _reset(self, tensordict: TensorDictBase | None) -> TensorDictBase:
        mask = tensordict.get("_reset", None) if tensordict is not None else None
        start = torch.rand(self.state.shape, generator=self._rng, dtype=self.dtype, device=self.device) * 0.1 - 0.05
        if mask is None:
            self.state.copy_(start)
            self.steps.zero_()
        else:
            mask = mask.reshape(self.batch_size)
            self.state[mask] = start[mask]
            self.steps[mask] = 0
        return TensorDict(self._observe(), self.batch_size, device=self.device)

    def _advance(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step of the equations of motion; returns ``(terminated, truncated)`` of shape ``batch_size``."""
        if self.continuous:
            force = self.FORCE * action.to(self.dtype).squeeze(-1)
        else:
            force = self.FORCE * (2.0 * action.to(self.dtype) - 1.0)
        x, x_dot, theta, theta_dot = self.state.unbind(-1)
        cos, sin = theta.cos(), theta.sin()
        total_mass = self.CART_MASS + self.POLE_MASS
        pole_moment = self.POLE_MASS * self.POLE_HALF_LENGTH
        temp = (force + pole_moment * theta_dot.square() * sin) / total_mass
        theta_acc = (self.GRAVITY * sin - cos * temp) / (
            self.POLE_HALF_LENGTH * (4.0 / 3.0 - self.POLE_MASS * cos.square() / total_mass)
        )
        x_acc = temp - pole_moment * theta_acc * cos / total_mass
        tau = self.TAU
        new = torch.stack((x + tau * x_dot, x_dot + tau * x_acc, theta + tau * theta_dot, theta_dot + tau * theta_acc))
        self.state = torch.minimum(torch.maximum(new.movedim(0, -1), -self._high), self._high)
        self.steps += 1
        terminated = (self.state[..., 0].abs() > self.X_THRESHOLD) | (self.state[..., 2].abs() > self.THETA_THRESHOLD)
        if self.max_steps is None:
            return terminated, torch.zeros_like(terminated)
        return terminated, (self.steps >= self.max_steps) & ~terminated

    def _step_into_fn(
        self, inputs: MutableMapping[NestedKey, Any], outputs: Mapping[NestedKey, torch.Tensor]
    ) -> Callable[[], None] | None:
        """The direct step (the class declares :data:`~rlkernel.envs.EnvBase.direct_step`): the
        equations of motion, then the observation, reward and flags written into ``outputs``."""
        keys = {"reward", "done", "terminated", "truncated"}
        keys |= set() if self.pixels_only else {"observation"}
        keys |= {"pixels"} if self.from_pixels else set()
        if set(outputs) != keys:
            return None
        observation, pixels = outputs.get("observation"), outputs.get("pixels")
        reward, done = outputs["reward"], outputs["done"]
        terminated_out, truncated_out = outputs["terminated"], outputs["truncated"]

        def step() -> None:
            action = inputs.get("action")
            if action is None:
                raise ActionError("CartPoleEnv.step: the action key 'action' is missing")
            terminated, truncated = self._advance(action)
            if observation is not None:
                observation.copy_(self.state)
            if pixels is not None:
                pixels.copy_(self.render())
            reward.fill_(1.0)
            terminated_out.copy_(terminated.unsqueeze(-1))
            truncated_out.copy_(truncated.unsqueeze(-1))
            torch.logical_or(terminated_out, truncated_out, out=done)

        return step

    def render(self) -> torch.Tensor:
        """The picture of the current state: ``uint8`` of shape ``(*batch_size, H, W, 3)``.

        The track spans ``x`` in ``[-2.4, 2.4]`` plus a margin across the width; the cart sits at
        three quarters of the height and the pole (half the height long) leans by ``theta``.
        """
        height, width = self.pixel_size
        state = self.state.reshape(-1, 4).float()
        scale = width / (2 * self.OBSERVATION_HIGH[0])
        cols = torch.arange(width, device=self.device, dtype=torch.float32) + 0.5
        rows = (torch.arange(height, device=self.device, dtype=torch.float32) + 0.5).unsqueeze(-1)
        cx = (width / 2 + state[:, 0] * scale).reshape(-1, 1, 1)
        cy = 0.75 * height
        cart = ((cols - cx).abs() <= 0.06 * width) & ((rows - cy).abs() <= 0.05 * height)
        length = 0.5 * height
        dx = (length * state[:, 2].sin()).reshape(-1, 1, 1)
        dy = (-length * state[:, 2].cos()).reshape(-1, 1, 1)
        along = (((cols - cx) * dx + (rows - cy) * dy) / length**2).clamp(0.0, 1.0)
        pole = (cols - cx - along * dx).square() + (rows - cy - along * dy).square() <= max(1.0, width / 80) ** 2
        image = torch.full((state.shape[0], height, width, 3), 255, dtype=torch.uint8, device=self.device)
        image[cart] = 0
        image[pole] = torch.tensor((204, 153, 102), dtype=torch.uint8, device=self.device)
        return image.reshape(*self.batch_size, height, width, 3)


class ContinuousCartPoleEnv(CartPoleEnv):
    """:class:`CartPoleEnv` with ``continuous=True``: the action is a force in ``[-1, 1]`` (units
    of 10 N), registered as ``testing:cartpole-continuous`` for code that picks envs by name."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(continuous=True, **kwargs)
