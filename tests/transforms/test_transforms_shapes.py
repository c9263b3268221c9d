"""Tensor, dtype and key transforms: CatTensors, Unsqueeze/Squeeze/Permute, ClipTransform,
DTypeCastTransform/DoubleToFloat, Exclude/Select/RenameTransform."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rlkernel.envs import check_env_specs
from rlkernel.specs import Bounded, Composite, Unbounded
from rlkernel.testing import CartPoleEnv, CountingEnv
from rlkernel.transforms import (
    CatTensors,
    ClipTransform,
    Compose,
    DoubleToFloat,
    DTypeCastTransform,
    ExcludeTransform,
    PermuteTransform,
    RenameTransform,
    SelectTransform,
    SqueezeTransform,
    StepCounter,
    TransformedEnv,
    TransformError,
    TransformKeyError,
    UnsqueezeTransform,
)


class TwoObs(CountingEnv):
    """CountingEnv with a second observation ``velocity`` (shape 2, Bounded)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        obs = self.observation_spec.clone()
        obs["velocity"] = Bounded(-1.0, 1.0, shape=(*self.batch_size, 2))
        self.observation_spec = obs

    def _reset(self, td):
        return super()._reset(td).set("velocity", torch.zeros(*self.batch_size, 2))

    def _step(self, td):
        out = super()._step(td)
        return out.set("velocity", td["action"].expand(*self.batch_size, 2).clone())


def trajectory(*batch: int) -> TensorDict:
    return TensorDict(
        {"observation": torch.randn(*batch, 3), "next": {"observation": torch.randn(*batch, 3)}}, list(batch)
    )


class TestCatTensors:
    def test_concatenates_and_deletes(self) -> None:
        env = TransformedEnv(TwoObs(batch_size=(2,)), CatTensors(["velocity", "observation"], "vector"))
        spec = env.observation_spec
        assert set(spec.keys()) == {"vector"} and spec["vector"] == Unbounded(shape=(2, 3))
        td = env.step(env.reset().set("action", torch.full((2, 1), 0.5)))
        # sorted: observation first, then velocity
        assert td["next", "vector"].tolist() == [[0.5, 0.5, 0.5]] * 2
        check_env_specs(env)

    def test_keep_keys_bounded_and_forward(self) -> None:
        t = CatTensors(["velocity"], "copy", del_keys=False)
        env = TransformedEnv(TwoObs(), t)
        assert env.observation_spec["copy"] == Bounded(-1.0, 1.0, shape=(2,))
        check_env_specs(env)
        out = CatTensors(["a", "b"], "ab")(TensorDict({"a": torch.zeros(4, 1), "next": {"a": torch.ones(4, 1),
                                                        "b": torch.ones(4, 2)}, "b": torch.zeros(4, 2)}, [4]))
        assert out["ab"].shape == (4, 3) and out["next", "ab"].sum() == 12 and "a" not in out.keys()

    def test_errors(self) -> None:
        with pytest.raises(TransformKeyError, match=r"'speed'.*observation keys"):
            TransformedEnv(TwoObs(), CatTensors(["speed", "observation"], "x"))
        with pytest.raises(TransformError, match="negative"):
            CatTensors(["a"], "b", dim=0)


class TestShapeTransforms:
    def test_unsqueeze_env_forward_and_inverse(self) -> None:
        env = TransformedEnv(
            CountingEnv(batch_size=(2,)),
            UnsqueezeTransform(-1, in_keys=["observation"], in_keys_inv=["action"]),
        )
        assert env.observation_spec["observation"].shape == (2, 1, 1)
        assert env.action_spec == Bounded(0.0, 1.0, shape=(2, 1, 1))
        td = env.step(env.reset().set("action", torch.ones(2, 1, 1)))
        assert td["next", "observation"].shape == (2, 1, 1) and td["action"].shape == (2, 1, 1)
        check_env_specs(env)
        out = UnsqueezeTransform(-2, in_keys=["observation"])(trajectory(4, 5))
        assert out["observation"].shape == (4, 5, 1, 3) and out["next", "observation"].shape == (4, 5, 1, 3)

    def test_squeeze_and_errors(self) -> None:
        env = TransformedEnv(CountingEnv(batch_size=(2,)), SqueezeTransform(-1, in_keys=["observation"]))
        assert env.observation_spec["observation"].shape == (2,)
        check_env_specs(env)
        with pytest.raises(TransformError, match="not of size 1"):
            TransformedEnv(TwoObs(), SqueezeTransform(-1, in_keys=["velocity"]))
        with pytest.raises(TransformError, match="negative"):
            UnsqueezeTransform(0)

    def test_permute_round_trip_and_bounds(self) -> None:
        t = PermuteTransform((-1, -3, -2), in_keys=["pixels"])
        td = TensorDict({"pixels": torch.arange(24.0).reshape(2, 3, 4)}, [])
        out = t(td.clone())["pixels"]
        assert out.shape == (4, 2, 3) and torch.equal(t._inv_apply_transform(out), td["pixels"])
        spec = t._transform_spec(Bounded(torch.arange(24.0).reshape(2, 3, 4), 100.0, shape=(2, 3, 4)), "pixels")
        assert torch.equal(spec.low, out)
        with pytest.raises(TransformError, match="reordering"):
            PermuteTransform((-1, -1))

    def test_permute_cartpole_pixels(self) -> None:
        env = TransformedEnv(CartPoleEnv(from_pixels=True, pixels_only=True),
                             PermuteTransform((-1, -3, -2), in_keys=["pixels"]))
        assert env.observation_spec["pixels"].shape == (3, 64, 96)
        check_env_specs(env, num_steps=2)


class TestClip:
    def test_clips_observations_and_actions(self) -> None:
        env = TransformedEnv(
            CountingEnv(max_count=100), ClipTransform(["observation"], 0.0, 1.5, in_keys_inv=["action"])
        )
        assert env.observation_spec["observation"] == Bounded(0.0, 1.5, shape=(1,))
        assert env.action_spec == Unbounded(shape=(1,))
        roll = env.rollout(3, lambda td: td.set("action", torch.tensor([0.75])))
        assert roll["next", "observation"].flatten().tolist() == [0.75, 1.5, 1.5]
        td = env.step(env.reset().set("action", torch.tensor([7.0])))  # clamped to 1.5 for the base env
        assert td["next", "observation"].item() == 1.5 and td["action"].item() == 7.0
        check_env_specs(env)

    def test_bounded_input_is_intersected_and_errors(self) -> None:
        env = TransformedEnv(CartPoleEnv(), ClipTransform(["observation"], -0.5, 4.0))
        spec = env.observation_spec["observation"]  # the env's bounds: +-(4.8, 10.0, 0.4189, 10.0)
        theta = CartPoleEnv.OBSERVATION_HIGH[2]  # narrower than the clip on both sides
        torch.testing.assert_close(spec.low, torch.tensor([-0.5, -0.5, -theta, -0.5]))
        torch.testing.assert_close(spec.high, torch.tensor([4.0, 4.0, theta, 4.0]))
        check_env_specs(env)
        with pytest.raises(TransformError, match="low"):
            ClipTransform(["x"])
        with pytest.raises(TransformError, match="in_keys"):
            ClipTransform(None, 0.0, 1.0)


class TestDTypeCast:
    def test_double_to_float_on_a_float64_env(self) -> None:
        base = CartPoleEnv(dtype=torch.float64)
        assert base.observation_spec["observation"].dtype == torch.float64
        env = TransformedEnv(base, DoubleToFloat())
        high = torch.tensor(CartPoleEnv.OBSERVATION_HIGH)
        assert env.observation_spec["observation"] == Bounded(-high, high, shape=(4,), dtype=torch.float32)
        roll = env.rollout(3)
        assert roll["next", "observation"].dtype == torch.float32
        check_env_specs(env)

    def test_inverse_casts_float32_actions_for_a_float64_env(self) -> None:
        seen = []

        class Recording(CartPoleEnv):
            def _step(self, tensordict):
                seen.append(tensordict["action"].dtype)
                return super()._step(tensordict)

        base = Recording(continuous=True, num_envs=2, dtype=torch.float64)
        env = TransformedEnv(base, DoubleToFloat())
        assert env.action_spec.dtype == torch.float32 and base.action_spec.dtype == torch.float64
        out = env.step(env.reset().set("action", torch.zeros(2, 1)))
        assert seen == [torch.float64] and out["action"].dtype == torch.float32
        check_env_specs(env)

    def test_explicit_keys_forward_and_errors(self) -> None:
        t = DTypeCastTransform(torch.float32, torch.float16, in_keys=["observation"])
        out = t(trajectory(2, 3))
        assert out["observation"].dtype == torch.float16 and out["next", "observation"].dtype == torch.float16
        auto = DoubleToFloat()(TensorDict({"a": torch.zeros(2, dtype=torch.float64), "b": torch.zeros(2)}, []))
        assert auto["a"].dtype == torch.float32
        with pytest.raises(TransformError, match="in_keys_inv"):
            DoubleToFloat().inv(TensorDict({}, []))
        with pytest.raises(TransformError, match=r"has dtype torch\.float32, expected torch\.float64"):
            TransformedEnv(CountingEnv(), DoubleToFloat(in_keys=["observation"]))
        with pytest.raises(TransformError, match=r"torch\.dtype"):
            DTypeCastTransform("float64", torch.float32)


class TestKeys:
    def test_exclude(self) -> None:
        env = TransformedEnv(TwoObs(batch_size=(2,)), ExcludeTransform("velocity"))
        assert list(env.observation_spec.keys()) == ["observation"]
        td = env.rollout(2)
        assert "velocity" not in td.keys() and "velocity" not in td["next"].keys()
        check_env_specs(env)
        out = ExcludeTransform("observation")(trajectory(3))
        assert "observation" not in out.keys(True)
        with pytest.raises(TransformKeyError, match="done flags and rewards cannot be excluded"):
            TransformedEnv(TwoObs(), ExcludeTransform("done"))
        with pytest.raises(TransformKeyError, match="'vel'"):
            TransformedEnv(TwoObs(), ExcludeTransform("vel"))

    def test_select(self) -> None:
        env = TransformedEnv(TwoObs(), Compose(StepCounter(), SelectTransform("velocity", "step_count")))
        assert list(env.observation_spec.keys()) == ["velocity", "step_count"]
        roll = env.rollout(2)
        assert set(roll["next"].keys()) == {"velocity", "step_count", "reward", "done", "terminated", "truncated"}
        check_env_specs(env)
        # dropping a key that a transform reads at the next step is reported by name
        env = TransformedEnv(TwoObs(), Compose(StepCounter(), SelectTransform("velocity")))
        with pytest.raises(TransformKeyError, match="'step_count' not found in the input of step"):
            env.rollout(2)
        out = SelectTransform("observation", keep_dones=False)(trajectory(3).set(("next", "done"), torch.zeros(3, 1)))
        assert set(out.keys(True, True)) == {"observation", ("next", "observation")}
        with pytest.raises(TransformKeyError, match="cannot select 'speed'"):
            TransformedEnv(TwoObs(), SelectTransform("speed"))

    def test_rename_observation_reward_and_action(self) -> None:
        t = RenameTransform(["observation", "reward"], ["count", "r"], in_keys_inv=["action"], out_keys_inv=["a"])
        env = TransformedEnv(CountingEnv(), t)
        assert set(env.observation_spec.keys()) == {"count"} and env.reward_keys == ["r"]
        assert env.action_keys == ["a"]
        out = env.step(env.reset().set("a", torch.tensor([0.5])))
        assert out["next", "count"].item() == 0.5 and out["next", "r"].item() == 0.5
        check_env_specs(env)
        copy = TransformedEnv(CountingEnv(), RenameTransform(["observation"], ["c"], create_copy=True))
        assert set(copy.observation_spec.keys()) == {"observation", "c"}
        check_env_specs(copy)
        with pytest.raises(TransformError, match="done flags cannot be renamed"):
            TransformedEnv(CountingEnv(), RenameTransform(["done"], ["finished"]))

    def test_rename_forward(self) -> None:
        out = RenameTransform(["observation"], ["obs"])(trajectory(2))
        assert set(out.keys(True, True)) == {"obs", ("next", "obs")}
        with pytest.raises(TransformKeyError, match="'pixels'"):
            RenameTransform(["pixels"], ["p"])(trajectory(2))


def test_nested_keys_work() -> None:
    class Agents(CountingEnv):
        def __init__(self) -> None:
            super().__init__(batch_size=(2,))
            self.observation_spec = Composite(agents={"obs": Unbounded(shape=(2, 3))}, shape=(2,))

        def _reset(self, td):
            super()._reset(td)
            return TensorDict({"agents": {"obs": torch.zeros(2, 3)}}, [2])

        def _step(self, td):
            return super()._step(td).exclude("observation").set(("agents", "obs"), torch.ones(2, 3))

    env = TransformedEnv(Agents(), Compose(UnsqueezeTransform(-2, in_keys=[("agents", "obs")]),
                                           RenameTransform([("agents", "obs")], [("agents", "seen")])))
    assert env.observation_spec["agents", "seen"].shape == (2, 1, 3)
    check_env_specs(env)
