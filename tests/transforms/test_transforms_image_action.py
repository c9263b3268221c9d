"""Image transforms on the core cart-pole's pixels, ActionDiscretizer on its continuous actions
and on a multi-dim action, and the transforms that step the env themselves (NoopResetEnv,
FrameSkipTransform)."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from rlkernel.envs import EnvBase, check_env_specs
from rlkernel.errors import EnvError
from rlkernel.specs import Bounded, Categorical, Composite, MultiCategorical, MultiOneHot, OneHot, Unbounded
from rlkernel.testing import CartPoleEnv, CountingEnv
from rlkernel.transforms import (
    ActionDiscretizer,
    CenterCrop,
    Compose,
    FrameSkipTransform,
    GrayScale,
    NoopResetEnv,
    Resize,
    StepCounter,
    ToTensorImage,
    TransformedEnv,
    TransformError,
)


@pytest.fixture(scope="module")
def pixels_env() -> CartPoleEnv:
    return CartPoleEnv(from_pixels=True, pixels_only=True)


class RecordingCartPole(CartPoleEnv):
    """The continuous cart-pole, recording every action its ``_step`` receives."""

    def __init__(self, **kwargs) -> None:
        super().__init__(continuous=True, **kwargs)
        self.received: list[torch.Tensor] = []

    def _step(self, tensordict: TensorDict) -> TensorDict:
        self.received.append(tensordict["action"].clone())
        return super()._step(tensordict)


class Thrusters(EnvBase):
    """Six thrusters, each taking a force in ``[-1, 1]``; the observation is the last forces."""

    def __init__(self) -> None:
        super().__init__()
        self.observation_spec = Composite(observation=Unbounded(shape=(6,)))
        self.action_spec = Bounded(-1.0, 1.0, shape=(6,))

    def _reset(self, tensordict):
        return TensorDict({"observation": torch.zeros(6)}, [])

    def _step(self, tensordict):
        done = torch.zeros(1, dtype=torch.bool)
        return TensorDict({"observation": tensordict["action"].clone(), "reward": torch.zeros(1), "done": done}, [])

    def _set_seed(self, seed):
        pass


class TestImages:
    def test_to_tensor_image_values(self, pixels_env: CartPoleEnv) -> None:
        env = TransformedEnv(pixels_env, ToTensorImage(out_keys=["image"]))
        assert env.observation_spec["image"] == Bounded(0.0, 1.0, shape=(3, 64, 96))
        td = env.reset()
        raw, image = td["pixels"], td["image"]
        assert image.dtype == torch.float32
        assert raw.min() == 0 and raw.max() == 255  # the black cart on white: both ends of the range
        torch.testing.assert_close(image, raw.permute(2, 0, 1).float() / 255)
        check_env_specs(env, num_steps=2)

    def test_grayscale_resize_crop_chain(self, pixels_env: CartPoleEnv) -> None:
        chain = Compose(ToTensorImage(out_keys=["image"]), GrayScale(in_keys=["image"]),
                        Resize(60, 90, in_keys=["image"]), CenterCrop(40, 50, in_keys=["image"]))
        env = TransformedEnv(pixels_env, chain)
        assert env.observation_spec["image"].shape == (1, 40, 50)  # (w, h) as the last dims, as TorchRL
        td = env.reset()
        assert td["image"].shape == (1, 40, 50)
        check_env_specs(env, num_steps=2)

    def test_grayscale_and_crop_values(self) -> None:
        rgb = torch.rand(3, 6, 8)
        gray = GrayScale(in_keys=["x"])(TensorDict({"x": rgb}, []))["x"]
        torch.testing.assert_close(gray[0], 0.2989 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
        crop = CenterCrop(2, 4, in_keys=["x"])(TensorDict({"x": rgb}, []))["x"]
        assert torch.equal(crop, rgb[:, 2:4, 2:6])
        as_int = GrayScale(in_keys=["x"])(TensorDict({"x": torch.full((3, 2, 2), 200, dtype=torch.uint8)}, []))["x"]
        assert as_int.dtype == torch.uint8 and (as_int == 200).all()

    def test_resize_uint8_and_constant_images(self) -> None:
        flat = torch.full((2, 5, 3, 16, 16), 7, dtype=torch.uint8)  # [B, T, C, H, W]
        out = Resize(8, in_keys=["x"])(TensorDict({"x": flat}, [2, 5]))["x"]
        assert out.shape == (2, 5, 3, 8, 8) and out.dtype == torch.uint8 and (out == 7).all()
        with pytest.raises(TransformError, match="interpolation"):
            Resize(8, interpolation="lanczos")
        with pytest.raises(TransformError, match="positive int"):
            CenterCrop(0)

    def test_batched_pixels_with_time_dims(self) -> None:
        def chain() -> Compose:
            return Compose(ToTensorImage(), Resize(20), GrayScale())

        env = TransformedEnv(CartPoleEnv(num_envs=2, from_pixels=True, pixels_only=True), chain())
        raw_env = CartPoleEnv(num_envs=2, from_pixels=True, pixels_only=True)
        env.set_seed(0)
        torch.manual_seed(0)
        roll = env.rollout(3, break_when_any_done=False)
        assert roll["next", "pixels"].shape == (2, 3, 1, 20, 20)
        # the same chain as forward on the raw frames of a [B, T] sample gives the same images
        raw_env.set_seed(0)
        torch.manual_seed(0)
        out = chain()(raw_env.rollout(3, break_when_any_done=False))
        torch.testing.assert_close(out["next", "pixels"], roll["next", "pixels"])
        torch.testing.assert_close(out["pixels"], roll["pixels"])
        check_env_specs(env, num_steps=2)

    def test_errors_name_the_key(self) -> None:
        with pytest.raises(TransformError, match=r"'observation'.*expected 3, H, W"):
            TransformedEnv(CartPoleEnv(), GrayScale(in_keys=["observation"]))
        with pytest.raises(TransformError, match="cannot crop"):
            CenterCrop(50, in_keys=["x"])(TensorDict({"x": torch.zeros(3, 10, 10)}, []))


class TestActionDiscretizer:
    def test_categories_map_to_interval_centres(self) -> None:
        base = RecordingCartPole()
        env = TransformedEnv(base, ActionDiscretizer(5))
        assert env.action_spec == Categorical(5, shape=(1,))
        td = env.reset()
        for k in range(5):
            td = env.step(td.set("action", torch.tensor([k])))["next"].exclude("reward")
        assert [a.item() for a in base.received] == pytest.approx([-0.8, -0.4, 0.0, 0.4, 0.8])
        check_env_specs(env)

    def test_sampling_modes_and_one_hot(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=100), ActionDiscretizer(4, sampling="high", categorical=False))
        assert env.action_spec == OneHot(4, shape=(4,))
        out = env.step(env.reset().set("action", torch.tensor([False, False, True, False])))
        assert out["next", "observation"].item() == pytest.approx(0.75)
        check_env_specs(env)
        low = TransformedEnv(CountingEnv(), ActionDiscretizer(4, sampling="low"))
        assert low.step(low.reset().set("action", torch.tensor([0])))["next", "observation"].item() == 0.0
        rand = TransformedEnv(CountingEnv(), ActionDiscretizer(2, sampling="random"))
        value = rand.step(rand.reset().set("action", torch.tensor([1])))["next", "observation"].item()
        assert 0.5 <= value <= 1.0

    def test_multi_dim_actions(self) -> None:
        env = TransformedEnv(Thrusters(), ActionDiscretizer([3, 3, 3, 5, 5, 5]))
        assert env.action_spec == MultiCategorical([3, 3, 3, 5, 5, 5], shape=(6,))
        out = env.step(env.reset().set("action", torch.tensor([0, 1, 2, 0, 2, 4])))
        torch.testing.assert_close(out["next", "observation"], torch.tensor([-2 / 3, 0.0, 2 / 3, -0.8, 0.0, 0.8]))
        check_env_specs(env)
        onehot = TransformedEnv(Thrusters(), ActionDiscretizer(3, categorical=False))
        assert onehot.action_spec == MultiOneHot([3] * 6, shape=(18,))
        choice = torch.nn.functional.one_hot(torch.tensor([2, 0, 1, 1, 0, 2]), 3).flatten().bool()
        out = onehot.step(onehot.reset().set("action", choice))
        torch.testing.assert_close(out["next", "observation"], torch.tensor([2 / 3, -2 / 3, 0, 0, -2 / 3, 2 / 3]))
        check_env_specs(onehot)

    def test_batched_and_out_key(self) -> None:
        env = TransformedEnv(CartPoleEnv(continuous=True, num_envs=2), ActionDiscretizer(3, out_action_key="choice"))
        assert env.action_keys == ["choice"] and env.action_spec.shape == (2, 1)
        check_env_specs(env)
        stored = TensorDict({"choice": torch.tensor([[0], [2]])}, [2])
        mapped = env.transform.inv(stored)
        torch.testing.assert_close(mapped["action"], torch.tensor([[-2 / 3], [2 / 3]]))

    def test_errors(self) -> None:
        with pytest.raises(TransformError, match="floating-point Bounded"):
            TransformedEnv(CartPoleEnv(), ActionDiscretizer(3))
        with pytest.raises(TransformError, match="6 dims"):
            TransformedEnv(Thrusters(), ActionDiscretizer([3, 3]))
        with pytest.raises(TransformError, match="sampling"):
            ActionDiscretizer(3, sampling="mean")
        with pytest.raises(TransformError, match="positive"):
            ActionDiscretizer(0)


class TestNoopReset:
    def test_fixed_noops_are_seen_by_earlier_transforms(self) -> None:
        env = TransformedEnv(CartPoleEnv(), Compose(StepCounter(), NoopResetEnv(3, random=False)))
        env.set_seed(0)
        td = env.reset()
        assert td["step_count"].item() == 3 and not td["done"].any()
        check_env_specs(env)

    def test_random_noops_change_the_start(self) -> None:
        env = TransformedEnv(CartPoleEnv(), Compose(StepCounter(), NoopResetEnv(6)))
        env.set_seed(0)
        counts = {env.reset()["step_count"].item() for _ in range(20)}
        assert len(counts) > 1 and counts <= set(range(7))

    def test_partial_reset_of_batched_env_is_refused(self) -> None:
        env = TransformedEnv(CountingEnv(batch_size=(2,)), NoopResetEnv(2))
        env.reset()
        with pytest.raises(TransformError, match="each sub-environment"):
            env.reset(TensorDict({"_reset": torch.tensor([[True], [False]])}, [2]))

    def test_episodes_ending_during_noops_give_up_with_an_error(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=0.5), NoopResetEnv(50, random=False))
        with pytest.raises(EnvError, match="ended during the 50 no-op steps"):
            env.reset()
        with pytest.raises(TransformError, match="outside a TransformedEnv"):
            NoopResetEnv()(TensorDict({}, []))


class TestFrameSkip:
    def test_repeats_and_sums(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=100), FrameSkipTransform(3))
        td = env.step(env.reset().set("action", torch.tensor([0.5])))
        assert td["next", "observation"].item() == 1.5 and td["next", "reward"].item() == 1.5
        check_env_specs(env)

    def test_stops_at_done(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=1.0, batch_size=(2,)), FrameSkipTransform(4))
        td = env.step(env.reset().set("action", torch.tensor([[0.5], [0.25]])))
        assert td["next", "done"].flatten().tolist() == [True, False]
        assert td["next", "reward"].flatten().tolist() == [1.0, 0.5]

    def test_cartpole_rewards_per_outer_step(self) -> None:
        env = TransformedEnv(CartPoleEnv(), Compose(FrameSkipTransform(4), StepCounter()))
        env.set_seed(0)
        roll = env.rollout(10)
        rewards = roll["next", "reward"].flatten()
        assert (rewards[:-1] == 4.0).all() and 1.0 <= rewards[-1] <= 4.0
        check_env_specs(env)
        with pytest.raises(TransformError, match="frame_skip"):
            FrameSkipTransform(0)
