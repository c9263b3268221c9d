"""The core's transforms on the plugin's GymEnv (vectorised gymnasium envs with masked resets,
pixels, MuJoCo's float64 observations)."""

from __future__ import annotations

import torch

from rlkernel.envs import check_env_specs
from rlkernel.transforms import (
    CatFrames,
    Compose,
    DoubleToFloat,
    GrayScale,
    InitTracker,
    Resize,
    RewardSum,
    StepCounter,
    ToTensorImage,
    TransformedEnv,
    VecNorm,
)
from rlkernel_gym import GymEnv


def test_vector_env_partial_resets_through_the_chain() -> None:
    chain = Compose(
        StepCounter(max_steps=15),
        RewardSum(),
        InitTracker(),
        VecNorm(out_keys=["normalized"]),
        CatFrames(3, -1, in_keys=["observation"], out_keys=["stacked"]),
    )
    env = TransformedEnv(GymEnv("CartPole-v1", num_envs=3), chain, check_specs=True)
    env.set_seed(0)
    roll = env.rollout(40, break_when_any_done=False)
    counts, done = roll["next", "step_count"][..., 0], roll["next", "done"][..., 0]
    assert done.any() and int(counts.max()) <= 15
    # after each done the next step of that sub-env starts a new episode
    assert (counts[:, 1:][done[:, :-1]] == 1).all()
    assert (roll["is_init"][:, 1:][done[:, :-1]]).all()
    torch.testing.assert_close(roll["next", "episode_reward"], counts.unsqueeze(-1).float())
    # the stacked frames of the sample are those forward() rebuilds from single frames
    rebuilt = CatFrames(3, -1, in_keys=["observation"], out_keys=["again"])(roll.exclude("stacked"))
    torch.testing.assert_close(rebuilt["next", "again"], roll["next", "stacked"])
    check_env_specs(env)


def test_pixels_and_double_to_float() -> None:
    env = TransformedEnv(
        GymEnv("CartPole-v1", from_pixels=True, pixels_only=True),
        Compose(ToTensorImage(), GrayScale(), Resize(24), CatFrames(2, -3)),
    )
    assert env.observation_spec["pixels"].shape == (2, 24, 24)
    check_env_specs(env, num_steps=2)
    cheetah = TransformedEnv(GymEnv("HalfCheetah-v5"), DoubleToFloat())
    assert cheetah.observation_spec["observation"].dtype == torch.float32
    check_env_specs(cheetah, num_steps=2)
