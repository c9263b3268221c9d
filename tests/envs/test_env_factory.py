"""The env factory contract: ``rlkernel.make_env(name, *, num_envs=None, device=None, **backend_kwargs)``."""

from __future__ import annotations

import pytest
import torch

import rlkernel
from rlkernel.envs import ParallelEnv, SerialEnv
from rlkernel.envs.factory import batches_natively, make_env
from rlkernel.errors import EnvError
from rlkernel.testing import CountingEnv


def one_counter(max_count: float = 5.0, device: str | None = None) -> CountingEnv:
    """A factory that does not batch natively (a plain function)."""
    return CountingEnv(max_count, device=device)


@pytest.fixture(scope="module", autouse=True)
def registered() -> None:
    rlkernel.registry.envs.register("factorytest:one", one_counter, replace=True)
    yield
    rlkernel.registry.envs.unregister("factorytest:one")


def test_a_native_batcher_gets_num_envs() -> None:
    assert batches_natively(CountingEnv) and not batches_natively(one_counter)
    assert make_env("testing:counting").batch_size == torch.Size([])
    env = rlkernel.make_env("testing:counting", num_envs=3, max_count=2)
    assert type(env) is CountingEnv and env.batch_size == torch.Size([3]) and env.max_count == 2


@pytest.mark.parametrize(("batching", "container"), [("serial", SerialEnv), ("parallel", ParallelEnv)])
def test_other_factories_are_batched_by_the_core(batching: str, container: type) -> None:
    single = make_env("factorytest:one", max_count=2)
    assert type(single) is CountingEnv and single.batch_size == torch.Size([])
    env = make_env("factorytest:one", num_envs=2, batching=batching, max_count=2)
    try:
        assert type(env) is container and env.batch_size == torch.Size([2])
        td = env.rollout(4, policy=lambda td: td.set("action", torch.ones(2, 1)), break_when_any_done=False)
        assert td["next", "observation"][:, :2, 0].tolist() == [[1.0, 2.0], [1.0, 2.0]]  # max_count reached both
        assert td["next", "terminated"][:, 1].all()
    finally:
        env.close()


def test_device_goes_to_the_factory() -> None:
    env = make_env("factorytest:one", num_envs=2, device="cpu")
    assert env.device == torch.device("cpu") and all(sub.device == torch.device("cpu") for sub in env.envs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_envs": 0}, "num_envs must be a positive int or None, got 0"),
        ({"num_envs": True}, "num_envs must be a positive int or None, got True"),
        ({"num_envs": 2, "batching": "threads"}, "batching must be one of serial, parallel, got 'threads'"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(EnvError, match=message):
        make_env("testing:counting", **kwargs)


def test_counting_env_takes_one_batch_argument() -> None:
    with pytest.raises(EnvError, match="give num_envs or batch_size, not both"):
        CountingEnv(num_envs=2, batch_size=(2,))
