"""TransformedEnv and the Transform contract: chains, parents, specs, inverses and errors."""

from __future__ import annotations

import pickle

import pytest
import torch
from tensordict import TensorDict

from rlkernel.envs import check_env_specs, step_mdp
from rlkernel.errors import EnvError, RLKernelError
from rlkernel.specs import Unbounded
from rlkernel.testing import CountingEnv
from rlkernel.transforms import (
    ActionDiscretizer,
    CatFrames,
    Compose,
    DoubleToFloat,
    ObservationNorm,
    RewardSum,
    StepCounter,
    Transform,
    TransformedEnv,
    TransformError,
    TransformKeyError,
)


def ones(*batch: int) -> torch.Tensor:
    return torch.ones(*batch, 1)


def push(td: TensorDict) -> TensorDict:
    return td.set("action", torch.ones(*td.batch_size, 1))


class AddOne(Transform):
    """A user transform written TorchRL-style, with only ``_apply_transform``."""

    def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
        return value + 1


class TestChain:
    def test_single_transform_is_kept_and_append_wraps_in_compose(self) -> None:
        t = StepCounter()
        env = TransformedEnv(CountingEnv(), t)
        assert env.transform is t and t.container is env
        env.append_transform(RewardSum())
        assert isinstance(env.transform, Compose) and env.transform[0] is t
        assert t.container is env and env.transform[1].container is env
        assert set(env.observation_keys) == {"observation", "step_count", "episode_reward"}

    def test_insert_transform_sets_order_and_specs(self) -> None:
        env = TransformedEnv(CountingEnv(), Compose(AddOne(in_keys=["observation"])))
        env.insert_transform(0, CatFrames(2, -1, in_keys=["observation"]))
        assert isinstance(env.transform[0], CatFrames)
        # CatFrames first, then +1 on the stacked frames
        assert env.reset()["observation"].tolist() == [1.0, 1.0]
        assert env.observation_spec["observation"].shape == (2,)

    def test_pop_and_replace_update_specs(self) -> None:
        env = TransformedEnv(CountingEnv(), Compose(StepCounter(), RewardSum()))
        removed = env.transform.pop(0)
        assert removed.container is None and "step_count" not in env.observation_spec.keys()
        old = env.transform
        env.transform = StepCounter(max_steps=2)
        assert old.container is None and set(env.observation_keys) == {"observation", "step_count"}
        check_env_specs(env)

    def test_parent_is_base_env_with_preceding_transforms(self) -> None:
        base = CountingEnv()
        first, second = StepCounter(), CatFrames(3, -1, in_keys=["observation"])
        env = TransformedEnv(base, Compose(first, second))
        assert first.container is env and second.container is env
        assert first.parent.base_env is base and len(first.parent._flat) == 0
        parent = second.parent
        assert parent._flat == [first] and "step_count" in parent.observation_spec.keys()
        assert parent.observation_spec["observation"].shape == (1,)
        assert StepCounter().parent is None

    def test_transform_belongs_to_one_env(self) -> None:
        t = StepCounter()
        env = TransformedEnv(CountingEnv(), t)
        with pytest.raises(TransformError, match="already belongs"):
            TransformedEnv(CountingEnv(), t)
        clone = t.clone()
        assert clone.container is None and env.transform is t
        TransformedEnv(CountingEnv(), clone)

    def test_failed_append_leaves_env_unchanged(self) -> None:
        env = TransformedEnv(CountingEnv(), StepCounter())
        bad = ObservationNorm(0.0, 1.0, in_keys=["obs"])
        with pytest.raises(TransformKeyError):
            env.append_transform(bad)
        assert not isinstance(env.transform, Compose) or len(env.transform) == 1
        assert bad.container is None
        check_env_specs(env)

    def test_nested_transformed_env_and_attribute_forwarding(self) -> None:
        inner = TransformedEnv(CountingEnv(max_count=2), StepCounter())
        env = TransformedEnv(inner, RewardSum())
        assert env.max_count == 2.0
        roll = env.rollout(5, policy=push)
        assert roll["next", "step_count"].flatten().tolist() == [1, 2]
        assert roll["next", "episode_reward"].flatten().tolist() == [1.0, 2.0]
        check_env_specs(env)

    def test_set_seed_and_close_reach_the_base_env(self) -> None:
        base = CountingEnv()
        env = TransformedEnv(base, StepCounter())
        assert env.set_seed(7) == 7 and base.seed == 7
        env.close()
        assert base.is_closed and env.is_closed
        with pytest.raises(EnvError, match="closed"):
            env.reset()

    def test_state_dict_round_trip(self) -> None:
        env = TransformedEnv(CountingEnv(), ObservationNorm(loc=2.0, scale=4.0, standard_normal=True))
        state = env.state_dict()
        other = TransformedEnv(CountingEnv(), ObservationNorm(standard_normal=True))
        other.load_state_dict(state)
        assert other.reset()["observation"].item() == pytest.approx(-0.5)

    def test_transforms_pickle_without_their_env(self) -> None:
        t = StepCounter(max_steps=3)
        TransformedEnv(CountingEnv(), t)
        copy = pickle.loads(pickle.dumps(t))
        assert copy.container is None and copy.max_steps == 3


class TestInverse:
    def test_policy_action_is_kept_in_returned_tensordict(self) -> None:
        env = TransformedEnv(CountingEnv(), ActionDiscretizer(4))
        td = env.reset().set("action", torch.tensor([3]))
        out = env.step(td)
        assert out["action"].tolist() == [3]  # not the float the base env received
        assert out["next", "observation"].item() == pytest.approx(0.875)

    def test_inverse_runs_last_transform_first(self) -> None:
        class Halve(Transform):
            def _inv_apply_transform(self, value: torch.Tensor) -> torch.Tensor:
                return value / 2

        env = TransformedEnv(CountingEnv(), Compose(ActionDiscretizer(2), Halve(in_keys_inv=["action"])))
        assert env.action_spec.n == 2
        out = env.step(env.reset().set("action", torch.tensor([1])))
        # Halve (last) first: 1 -> 0.5; then the discretizer: 0 + (0.5 + 0.5) * 0.5 = 0.5.
        # The other order would give (0 + (1 + 0.5) * 0.5) / 2 = 0.375.
        assert out["next", "observation"].item() == pytest.approx(0.5)

    def test_inv_on_a_tensordict_outside_env(self) -> None:
        t = DoubleToFloat(in_keys_inv=["action"])
        td = TensorDict({"action": torch.ones(3, dtype=torch.float32)}, [])
        out = t.inv(td)
        assert out["action"].dtype == torch.float64 and td["action"].dtype == torch.float32


class TestBatched:
    def test_batched_base_env_partial_reset(self) -> None:
        env = TransformedEnv(CountingEnv(max_count=3, batch_size=(2,)), Compose(StepCounter(), RewardSum()))
        td = env.reset()
        td.set("action", torch.tensor([[1.0], [0.5]]))
        for _ in range(3):
            td, root = env.step_and_maybe_reset(td)
            td = root.set("action", torch.tensor([[1.0], [0.5]]))
        # env 0 reached 3 and was reset; env 1 is at 1.5 after 3 steps
        assert root["step_count"].flatten().tolist() == [0, 3]
        assert root["episode_reward"].flatten().tolist() == [0.0, 1.5]
        assert root["observation"].flatten().tolist() == [0.0, 1.5]
        check_env_specs(env)


class TestSpecErrors:
    def test_unknown_in_key_names_key_and_keys_present(self) -> None:
        with pytest.raises(TransformKeyError, match=r"'obs'.*observation") as info:
            TransformedEnv(CountingEnv(), ObservationNorm(0.0, 1.0, in_keys=["obs"]))
        assert isinstance(info.value, RLKernelError) and isinstance(info.value, KeyError)

    def test_unknown_in_key_at_first_forward(self) -> None:
        t = AddOne(in_keys=["pixels"])
        with pytest.raises(TransformKeyError, match=r"'pixels'.*keys present: \['observation'\]"):
            t(TensorDict({"observation": torch.zeros(2)}, []))

    def test_out_key_not_declared_is_caught_at_construction(self) -> None:
        with pytest.raises(TransformKeyError, match="'doubled' is not declared"):
            TransformedEnv(CountingEnv(), AddOne(in_keys=["observation"], out_keys=["doubled"]))

    def test_mismatched_key_lists(self) -> None:
        with pytest.raises(TransformError, match="same length"):
            AddOne(in_keys=["a", "b"], out_keys=["c"])
        with pytest.raises(TransformError, match="strings or tuples"):
            AddOne(in_keys=[3])

    def test_check_env_specs_catches_wrong_dtype(self) -> None:
        class ToDouble(Transform):  # declares nothing, so the spec still says float32
            def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
                return value.double()

        env = TransformedEnv(CountingEnv(), ToDouble(in_keys=["observation"]))
        with pytest.raises(EnvError, match=r"'observation'.*Unbounded\(shape=\[1\], dtype=float32\).*float64"):
            check_env_specs(env)

    def test_check_env_specs_catches_undeclared_key(self) -> None:
        class Sneaky(Transform):
            def _call(self, next_td: TensorDict) -> TensorDict:
                return next_td.set("secret", torch.zeros(1))

        env = TransformedEnv(CountingEnv(), Sneaky())
        with pytest.raises(EnvError, match="secret"):
            check_env_specs(env)

    def test_check_specs_mode_names_the_transform_at_fault(self) -> None:
        class ToDouble(Transform):
            def _apply_transform(self, value: torch.Tensor) -> torch.Tensor:
                return value.double()

        chain = Compose(StepCounter(), ToDouble(in_keys=["observation"]), RewardSum())
        env = TransformedEnv(CountingEnv(), chain, check_specs=True)
        with pytest.raises(EnvError, match=r"after transform #1 ToDouble.*'observation'.*float64.*dtype=float32"):
            env.reset()

    def test_check_specs_mode_catches_undeclared_key_and_bad_base(self) -> None:
        class Sneaky(Transform):
            def _call(self, next_td: TensorDict) -> TensorDict:
                return next_td.set("secret", torch.zeros(1))

        env = TransformedEnv(CountingEnv(), Compose(StepCounter(), Sneaky()), check_specs=True)
        with pytest.raises(EnvError, match=r"after transform #1 Sneaky.*\['secret'\] are not declared"):
            env.reset()

        class Liar(CountingEnv):
            def _step(self, td: TensorDict) -> TensorDict:
                return super()._step(td).set("observation", torch.zeros(2))

        env = TransformedEnv(Liar(), StepCounter(), check_specs=True)
        with pytest.raises(EnvError, match=r"step\(\) output after the base env Liar.*'observation'"):
            env.step(push(env.reset()))

    def test_check_specs_mode_passes_on_a_correct_chain(self) -> None:
        env = TransformedEnv(
            CountingEnv(max_count=4, batch_size=(3,)),
            Compose(StepCounter(3), RewardSum(), CatFrames(2, -1, in_keys=["observation"])),
            check_specs=True,
        )
        check_env_specs(env)
        env.rollout(10, break_when_any_done=False)

    def test_spec_of_transformed_env_is_a_new_object(self) -> None:
        base = CountingEnv()
        TransformedEnv(base, ObservationNorm(0.0, 2.0))
        assert base.observation_spec["observation"] == Unbounded(shape=(1,))


class TestStepMdp:
    def test_root_of_next_step_carries_transformed_keys(self) -> None:
        env = TransformedEnv(CountingEnv(), Compose(StepCounter(), RewardSum()))
        td = env.step(push(env.reset()))
        root = step_mdp(td)
        assert root["step_count"].item() == 1 and root["episode_reward"].item() == 1.0
