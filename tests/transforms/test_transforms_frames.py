"""CatFrames and TimeMaxPool: exact windows across resets, partial resets, trajectories
outside an env (compared with what the env produced) and CartPole pixels."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rlkernel.envs import check_env_specs
from rlkernel.specs import Bounded, Unbounded
from rlkernel.testing import CartPoleEnv, CountingEnv
from rlkernel.transforms import (
    CatFrames,
    Compose,
    GrayScale,
    Resize,
    TimeMaxPool,
    ToTensorImage,
    TransformedEnv,
    TransformError,
)


def const(value: float):
    def policy(td: TensorDict) -> TensorDict:
        return td.set("action", torch.full((*td.batch_size, 1), value))

    return policy


class TestCatFrames:
    def test_windows_across_resets(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=3), CatFrames(3, -1, in_keys=["observation"]))
        roll = env.rollout(5, const(1.0), break_when_any_done=False)
        assert roll["observation"].tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [0, 0, 0], [0, 0, 1]]
        assert roll["next", "observation"].tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [0, 0, 1], [0, 1, 2]]
        assert env.observation_spec["observation"] == Unbounded(shape=(3,))
        check_env_specs(env)

    def test_out_key_keeps_the_single_frame(self) -> None:
        env = TransformedEnv(CountingEnv(), CatFrames(2, -1, in_keys=["observation"], out_keys=["stacked"]))
        td = env.step(const(1.0)(env.reset()))
        assert td["next", "observation"].tolist() == [1.0]
        assert td["next", "stacked"].tolist() == [0.0, 1.0]
        check_env_specs(env)

    def test_batched_partial_reset(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=2, batch_size=(2,)), CatFrames(2, -1, in_keys=["observation"]))
        td = env.reset().set("action", torch.tensor([[1.0], [0.5]]))
        frames = []
        for _ in range(3):
            td, root = env.step_and_maybe_reset(td)
            frames.append(root["observation"].tolist())
            td = root.set("action", torch.tensor([[1.0], [0.5]]))
        # env 0 finishes after 2 steps and restarts from [0, 0]; env 1 keeps sliding
        assert frames == [
            [[0.0, 1.0], [0.0, 0.5]],
            [[0.0, 0.0], [0.5, 1.0]],
            [[0.0, 1.0], [1.0, 1.5]],
        ]
        check_env_specs(env)

    def test_forward_rebuilds_the_windows_the_env_made(self) -> None:
        single = TransformedEnv(
            CountingEnv(max_count=2.5, batch_size=(2,)),
            CatFrames(3, -1, in_keys=["observation"], out_keys=["stacked"]),
        )
        torch.manual_seed(0)
        roll = single.rollout(12, break_when_any_done=False)
        assert roll["next", "done"].any()  # the trajectory crosses episode boundaries
        out = CatFrames(3, -1, in_keys=["observation"], out_keys=["rebuilt"])(roll.exclude("stacked"))
        torch.testing.assert_close(out["rebuilt"], roll["stacked"])
        torch.testing.assert_close(out["next", "rebuilt"], roll["next", "stacked"])

    def test_forward_needs_a_time_dim_and_the_key(self) -> None:
        t = CatFrames(2, -1, in_keys=["observation"])
        with pytest.raises(TransformError, match="trajectory"):
            t(TensorDict({"observation": torch.zeros(3)}, []))
        with pytest.raises(TransformError, match=r"'observation'.*keys present: \['pixels'\]"):
            t(TensorDict({"pixels": torch.zeros(4, 3)}, [4]))

    def test_bad_arguments(self) -> None:
        with pytest.raises(TransformError, match="negative"):
            CatFrames(2, 0)
        with pytest.raises(TransformError, match="positive"):
            CatFrames(0, -1)
        with pytest.raises(TransformError, match="dim -2 reaches past"):
            TransformedEnv(CountingEnv(), CatFrames(2, -2, in_keys=["observation"]))

    def test_step_before_reset_is_an_error(self) -> None:
        env = TransformedEnv(CountingEnv(), CatFrames(2, -1, in_keys=["observation"]))
        with pytest.raises(TransformError, match="before reset"):
            env.step(TensorDict({"action": torch.ones(1), "observation": torch.zeros(2)}, []))

    def test_cartpole_pixels_stack_channels(self) -> None:
        chain = Compose(ToTensorImage(), GrayScale(), Resize(32, 32), CatFrames(4, -3))
        env = TransformedEnv(CartPoleEnv(from_pixels=True, pixels_only=True), chain)
        assert env.observation_spec["pixels"] == Bounded(0.0, 1.0, shape=(4, 32, 32))
        env.set_seed(0)
        roll = env.rollout(6)
        pixels = roll["next", "pixels"]
        assert pixels.shape == (6, 4, 32, 32)
        # each step's oldest three frames are the previous step's newest three
        torch.testing.assert_close(pixels[1:, :3], pixels[:-1, 1:])
        # after reset the window repeats the first frame
        first = roll["pixels"][0]
        torch.testing.assert_close(first, first[:1].expand(4, 32, 32))
        check_env_specs(env)

    def test_cartpole_batched_vectors(self) -> None:
        env = TransformedEnv(CartPoleEnv(num_envs=3), CatFrames(2, -1, in_keys=["observation"]))
        env.set_seed(0)
        roll = env.rollout(40, break_when_any_done=False)
        nxt, root = roll["next", "observation"], roll["observation"]
        torch.testing.assert_close(nxt[..., :4], root[..., 4:])  # the window slides by one frame
        out = CatFrames(2, -1, in_keys=["observation"])(
            roll.set("observation", root[..., 4:]).set(("next", "observation"), nxt[..., 4:])
        )
        torch.testing.assert_close(out["next", "observation"], nxt)
        check_env_specs(env)


class TestTimeMaxPool:
    def test_max_over_window_on_cartpole(self) -> None:
        pool = TimeMaxPool(in_keys=["observation"], out_keys=["pooled"], T=3)
        env = TransformedEnv(CartPoleEnv(), pool)
        env.set_seed(3)
        roll = env.rollout(8)
        raw = torch.cat([roll["observation"][:1], roll["next", "observation"]])  # reset frame, then steps
        for t in range(roll.batch_size[0]):
            window = raw[max(0, t - 1) : t + 2]  # frames t+1-2 .. t+1, the reset frame repeated before 0
            torch.testing.assert_close(roll["next", "pooled"][t], window.amax(0))
        torch.testing.assert_close(roll["pooled"][0], raw[0])
        check_env_specs(env)

    def test_forward_matches_env_and_partial_reset(self) -> None:
        env = TransformedEnv(
            CountingEnv(max_count=2, batch_size=(2,)), TimeMaxPool(in_keys=["observation"], out_keys=["pooled"], T=3)
        )
        roll = env.rollout(10, break_when_any_done=False)
        out = TimeMaxPool(in_keys=["observation"], out_keys=["again"], T=3)(roll.exclude("pooled"))
        torch.testing.assert_close(out["next", "again"], roll["next", "pooled"])
        torch.testing.assert_close(out["again"], roll["pooled"])
        check_env_specs(env)
