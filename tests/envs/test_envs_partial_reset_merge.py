"""EnvBase's one-pass merge of a partial reset equals the generic merge, tensor subclasses included."""

from __future__ import annotations

import torch
from tensordict import TensorDict

from rlkernel.envs.resets import PartialResets
from rlkernel.testing import CountingEnv


class TaggedTensor(torch.Tensor):
    """A tensor subclass (as MemoryMappedTensor or nn.Parameter are)."""


def _root(env: CountingEnv) -> TensorDict:
    td = env.rand_step(env.reset())["next"]
    td.set("extra", torch.arange(3.0).unsqueeze(-1).as_subclass(TaggedTensor))
    td.set("nested", TensorDict({"value": torch.ones(3, 2)}, [3]))
    td.set("_reset", torch.tensor([[True], [False], [True]]))
    return td


def test_one_pass_merge_equals_the_generic_merge(monkeypatch):
    env = CountingEnv(batch_size=(3,), max_count=5)
    torch.manual_seed(0)
    fast = env.reset(_root(env))
    torch.manual_seed(0)
    monkeypatch.setattr(PartialResets, "_merge_flat", staticmethod(lambda *args: None))
    generic = env.reset(_root(env))
    assert set(fast.keys(True, True)) == set(generic.keys(True, True))
    assert (fast == generic).all()
    assert torch.equal(fast["extra"], torch.arange(3.0).unsqueeze(-1))
