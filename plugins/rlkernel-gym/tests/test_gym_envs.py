"""GymEnv on real gymnasium environments: specs, actions, flags, seeding, info, pixels."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import rlkernel_gym_testenvs as testenvs
import torch
from tensordict import TensorDict

from rlkernel.envs import check_env_specs
from rlkernel.errors import ActionError, EnvError, SpecError
from rlkernel.specs import Bounded, Categorical, Unbounded
from rlkernel_gym import GymEnv, GymWrapper


@pytest.fixture(autouse=True)
def _run_in_tmp_path(tmp_path, monkeypatch) -> None:
    """MuJoCo writes its warnings to MUJOCO_LOG.TXT in the working directory: keep it out of the repo."""
    monkeypatch.chdir(tmp_path)


ENV_IDS = ["CartPole-v1", "Pendulum-v1", "HalfCheetah-v5", testenvs.DICT_ID, testenvs.TUPLE_ID]


@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_specs(env_id: str, num_envs: int | None) -> None:
    env = GymEnv(env_id, num_envs=num_envs)
    assert env.batch_size == (() if num_envs is None else (num_envs,))
    check_env_specs(env, num_steps=15)
    env.close()


def test_specs_of_cartpole_pendulum_and_halfcheetah() -> None:
    cartpole = GymEnv("CartPole-v1", num_envs=2)
    assert isinstance(cartpole.action_spec, Categorical) and cartpole.action_spec.shape == (2,)
    assert cartpole.observation_spec["observation"].shape == (2, 4)
    assert cartpole.reward_spec.shape == (2, 1) and cartpole.reward_spec.dtype is torch.float32
    pendulum = GymEnv("Pendulum-v1")
    assert isinstance(pendulum.action_spec, Bounded) and float(pendulum.action_spec.high) == 2.0
    assert isinstance(pendulum.observation_spec["observation"], Bounded)
    cheetah = GymEnv("HalfCheetah-v5")
    obs = cheetah.observation_spec["observation"]
    assert isinstance(obs, Unbounded) and obs.dtype is torch.float64 and obs.shape == (17,)
    assert cheetah.rollout(3)["next", "observation"].dtype is torch.float64


def test_dict_observation_keys_and_discrete_start() -> None:
    env = GymEnv(testenvs.DICT_ID)
    env.set_seed(1)
    td = env.reset()
    assert set(td.keys(include_nested=True, leaves_only=True)) >= {"position", ("sensors", "velocity")}
    assert td["sensors", "mode"].item() == 0  # gymnasium's mode 1 (start=1) is rlkernel's 0
    td["action"] = torch.tensor(2)  # gymnasium action +1 (start=-1): velocity +0.2
    out = env.step(td)
    assert out["next", "sensors", "velocity"][0].item() == pytest.approx(0.2)
    assert out["next", "sensors", "mode"].item() == 1


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (torch.tensor([1]), "shape"),
        (torch.tensor(1.0), "dtype"),
        (torch.tensor(2), r"value 2 is outside \[0, 2\)"),
        (torch.tensor(-1), r"value -1 is outside"),
    ],
)
def test_malformed_discrete_action_is_an_action_error(action: torch.Tensor, match: str) -> None:
    env = GymEnv("CartPole-v1")
    td = env.reset()
    td["action"] = action
    with pytest.raises(ActionError, match=rf"'action'.*Categorical.*{match}"):
        env.step(td)


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (torch.tensor([float("nan")]), "NaN"),
        (torch.tensor([3.5]), "above high 2.0"),
        (torch.tensor([1.0, 1.0]), "shape"),
        (torch.tensor([1], dtype=torch.int64), "dtype"),
    ],
)
def test_malformed_continuous_action_is_an_action_error(action: torch.Tensor, match: str) -> None:
    env = GymEnv("Pendulum-v1")
    td = env.reset()
    td["action"] = action
    with pytest.raises(ActionError, match=rf"'action'.*Bounded.*{match}"):
        env.step(td)


def test_missing_action_names_the_key() -> None:
    env = GymEnv(testenvs.TUPLE_ID, num_envs=2)
    td = env.reset()
    td["action", "0"] = torch.zeros(2, 2, dtype=torch.int64)
    with pytest.raises(ActionError, match=r"\('action', '1'\) is missing.*Binary"):
        env.step(td)


@pytest.mark.parametrize("num_envs", [None, 2])
def test_truncated_is_not_terminated(num_envs: int | None) -> None:
    env = GymEnv("CartPole-v1", num_envs=num_envs, max_episode_steps=5)
    env.set_seed(0)
    batch = env.batch_size
    alternating = iter([0, 1, 0, 1, 0])

    def policy(td: TensorDict) -> TensorDict:
        return td.set("action", torch.full(batch, next(alternating), dtype=torch.int64))

    out = env.rollout(5, policy=policy)
    assert out.batch_size[-1] == 5
    truncated, terminated, done = (out["next", k][..., -1, 0] for k in ("truncated", "terminated", "done"))
    assert truncated.all() and not terminated.any() and done.all()
    assert not out["next", "done"][..., :-1, :].any()


def test_terminated_is_not_truncated() -> None:
    env = GymEnv("CartPole-v1")
    env.set_seed(0)
    out = env.rollout(100, policy=lambda td: td.set("action", torch.tensor(1)))  # always push right: falls
    assert out["next", "terminated"][-1].item() and not out["next", "truncated"][-1].item()
    assert out.batch_size[0] < 100


@pytest.mark.parametrize("num_envs", [None, 3])
def test_equal_seeds_give_identical_rollouts(num_envs: int | None) -> None:
    global_seeds = iter(range(100))

    def run(seed: int) -> TensorDict:
        env = GymEnv("Pendulum-v1", num_envs=num_envs)
        env.set_seed(seed)
        torch.manual_seed(next(global_seeds))  # the global RNG differs on every run
        return env.rollout(40, break_when_any_done=False)

    first, again, other = run(7), run(7), run(8)
    assert (first == again).all()
    assert not torch.equal(first["observation"], other["observation"])


def test_set_seed_seeds_the_action_space_and_each_sub_env() -> None:
    env = GymEnv("CartPole-v1", num_envs=3)
    env.set_seed(5)
    td = env.reset()
    for i in range(3):
        expected, _ = gymnasium.make("CartPole-v1").reset(seed=5 + i)
        assert np.array_equal(td["observation"][i].numpy(), expected)
    reference = gymnasium.make_vec("CartPole-v1", 3, vectorization_mode="sync").action_space
    reference.seed(5)
    assert np.array_equal(env.gym_env.action_space.sample(), reference.sample())


def test_info_keys_listed_are_inferred_and_read() -> None:
    env = GymEnv("HalfCheetah-v5", info_keys=["x_position", "x_velocity"])
    assert env.observation_spec["x_velocity"].dtype is torch.float64
    check_env_specs(env)
    env.set_seed(0)
    out = env.rollout(5)
    assert out["x_velocity"][0].item() == 0.0  # not in reset's info: zero
    plain = gymnasium.make("HalfCheetah-v5")
    plain.reset(seed=0)
    _, _, _, _, info = plain.step(out["action"][0].numpy())
    assert out["next", "x_position"][0].item() == info["x_position"]
    assert out["next", "x_velocity"][0].item() == info["x_velocity"]


@pytest.mark.parametrize("num_envs", [None, 2])
def test_info_keys_with_specs_in_vector_and_single_envs(num_envs: int | None) -> None:
    env = GymEnv(testenvs.DICT_ID, num_envs=num_envs, info_keys={"steps": Unbounded((), dtype=torch.int64)})
    check_env_specs(env, num_steps=20)
    out = env.rollout(30, break_when_any_done=False)
    steps = out["next", "steps"]
    reset_at = out["next", "done"][..., 0]
    # After a reset the root shows 0 (reset info has no "steps"); otherwise it counts up.
    assert (out["steps"][..., 1:][reset_at[..., :-1]] == 0).all()
    assert (steps[~reset_at] >= 1).all()


def test_missing_info_entry_is_an_error_naming_the_key() -> None:
    with pytest.raises(SpecError, match="'nope'"):
        GymEnv("CartPole-v1", info_keys=["nope"])
    env = GymEnv("CartPole-v1", info_keys={"nope": Unbounded(())})
    with pytest.raises(EnvError, match=r"no entry 'nope'"):
        env.rollout(3)


def test_pixels_from_cartpole() -> None:
    env = GymEnv("CartPole-v1", from_pixels=True)
    env.set_seed(3)
    td = env.reset()
    assert td["pixels"].dtype is torch.uint8 and td["pixels"].shape == (400, 600, 3)
    plain = gymnasium.make("CartPole-v1", render_mode="rgb_array")
    plain.reset(seed=3)
    assert np.array_equal(td["pixels"].numpy(), plain.render())
    assert "observation" in td.keys()
    check_env_specs(env, num_steps=2)
    only = GymEnv("CartPole-v1", from_pixels=True, pixels_only=True)
    assert set(only.observation_keys) == {"pixels"}
    check_env_specs(only, num_steps=2)


def test_vectorised_pixels_keep_the_last_frame_of_an_episode() -> None:
    env = GymEnv("CartPole-v1", num_envs=2, from_pixels=True, max_episode_steps=3)
    check_env_specs(env, num_steps=2)
    env.set_seed(0)
    out = env.rollout(3, policy=lambda td: td.set("action", torch.ones(2, dtype=torch.int64)))
    assert out["next", "pixels"].shape == (2, 3, 400, 600, 3)
    plain = gymnasium.make("CartPole-v1", render_mode="rgb_array")
    plain.reset(seed=0)
    for _ in range(3):
        plain.step(1)
    assert np.array_equal(out["next", "pixels"][0, -1].numpy(), plain.render())


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(EnvError, match="cannot make 'NoSuchEnv-v0'"):
        GymEnv("NoSuchEnv-v0")
    with pytest.raises(EnvError, match="num_envs"):
        GymEnv("CartPole-v1", num_envs=0)
    with pytest.raises(EnvError, match="vectorization_mode"):
        GymEnv("CartPole-v1", num_envs=2, vectorization_mode="threads")
    with pytest.raises(EnvError, match="pixels_only"):
        GymEnv("CartPole-v1", pixels_only=True)
    with pytest.raises(EnvError, match="render_mode='rgb_array'"):
        GymWrapper(gymnasium.make("CartPole-v1"), from_pixels=True)


def test_stepping_before_reset_is_an_error() -> None:
    env = GymEnv("CartPole-v1")
    with pytest.raises(EnvError, match="reset"):
        env.step(TensorDict({"action": torch.tensor(0)}, []))


def test_wrapper_around_a_made_env_and_close() -> None:
    env = GymWrapper(gymnasium.make("Pendulum-v1"), device="cpu")
    check_env_specs(env)
    env.close()
    assert env.is_closed
    with pytest.raises(EnvError, match="closed"):
        env.reset()
