"""Actor and critic sharing (or not) a trunk: :class:`ActorValueOperator`,
:class:`ActorCriticOperator`, :class:`ActorCriticWrapper`.

Each is a ``TensorDictSequential`` running everything (for collection and inspection) and
hands out the sub-networks a loss needs with ``get_policy_operator()`` and
``get_value_operator()`` / ``get_critic_operator()``. The sub-networks share parameters
with the whole: training one trains the other.
"""

from __future__ import annotations

from tensordict.nn import (
    ProbabilisticTensorDictModule,
    ProbabilisticTensorDictSequential,
    TensorDictModuleBase,
    TensorDictSequential,
)

from rlkernel.errors import SpecError
from rlkernel_algos.modules.actors import ProbabilisticActor

__all__ = ["ActorCriticOperator", "ActorCriticWrapper", "ActorValueOperator"]

def _check(owner: str, **modules: object) -> None:
    for name, module in modules.items():
        if not isinstance(module, TensorDictModuleBase):
            raise SpecError(
                f"{owner}: {name} must be a tensordict.nn module (TensorDictModule, Actor, "
                f"ValueOperator, ...), got {type(module).__name__}"
            )


def _chain(common: TensorDictModuleBase, head: TensorDictModuleBase) -> TensorDictSequential:
    """``common`` then ``head``, probabilistic (``get_dist`` works) when the head is.

    A probabilistic head's own modules are spliced in (not nested): tensordict's
    ``get_dist`` runs all modules but the last, so the sampler must come last.
    """
    if isinstance(head, ProbabilisticActor):
        return ProbabilisticActor._from_modules([common, *head.module], head.spec, head.safe)
    if isinstance(head, ProbabilisticTensorDictSequential):
        return ProbabilisticTensorDictSequential(common, *head.module)
    if isinstance(head, ProbabilisticTensorDictModule):
        return ProbabilisticTensorDictSequential(common, head)
    return TensorDictSequential(common, head)


class ActorValueOperator(TensorDictSequential):
    """A shared trunk (``common``) feeding a policy head and a state-value head.

    Running the whole writes the hidden features, the action and the state value.

    Example::

        >>> common = TensorDictModule(torch.nn.Linear(3, 8), ["observation"], ["hidden"])
        >>> policy = Actor(torch.nn.Linear(8, 1), in_keys=["hidden"])
        >>> value = ValueOperator(torch.nn.Linear(8, 1), in_keys=["hidden"])
        >>> avo = ActorValueOperator(common, policy, value)
        >>> sorted(avo(TensorDict(observation=torch.zeros(3), batch_size=[])).keys())
        ['action', 'hidden', 'observation', 'state_value']
    """

    def __init__(self, common_operator: TensorDictModuleBase, policy_operator: TensorDictModuleBase,
                 value_operator: TensorDictModuleBase) -> None:
        _check(type(self).__name__, common_operator=common_operator, policy_operator=policy_operator,
               value_operator=value_operator)
        super().__init__(common_operator, policy_operator, value_operator)

    def get_common_operator(self) -> TensorDictModuleBase:
        """The shared trunk."""
        return self.module[0]

    def get_policy_head(self) -> TensorDictModuleBase:
        """The policy head alone (reads the trunk's output)."""
        return self.module[1]

    def get_value_head(self) -> TensorDictModuleBase:
        """The value head alone (reads the trunk's output)."""
        return self.module[2]

    def get_policy_operator(self) -> TensorDictSequential:
        """Trunk + policy head: a standalone policy (with ``get_dist`` when probabilistic)."""
        return _chain(self.module[0], self.module[1])

    def get_value_operator(self) -> TensorDictSequential:
        """Trunk + value head: a standalone state-value network."""
        return TensorDictSequential(self.module[0], self.module[2])


class ActorCriticOperator(ActorValueOperator):
    """A shared trunk, a policy head and a critic head that reads the action (a Q-function).

    Running the whole writes the hidden features, the action and the state-action value
    of that action. ``get_critic_operator()`` is trunk + critic (it reads the action from
    the input); ``get_value_operator()`` raises, since this critic needs an action.
    """

    def get_critic_operator(self) -> TensorDictSequential:
        """Trunk + critic head: values the action found in the input."""
        return TensorDictSequential(self.module[0], self.module[2])

    def get_value_operator(self) -> TensorDictSequential:
        """Not available: the critic values state-action pairs (use ``get_critic_operator``)."""
        raise SpecError(
            "ActorCriticOperator: the critic values (state, action) pairs; use get_critic_operator() for "
            "it, or ActorValueOperator for a state-value head"
        )


class ActorCriticWrapper(TensorDictSequential):
    """A policy and a critic without shared parameters, run one after the other.

    Example::

        >>> policy = Actor(torch.nn.Linear(3, 1))
        >>> value = ValueOperator(torch.nn.Linear(3, 1))
        >>> acw = ActorCriticWrapper(policy, value)
        >>> acw.get_policy_operator() is policy
        True
    """

    def __init__(self, policy_operator: TensorDictModuleBase, value_operator: TensorDictModuleBase) -> None:
        _check(type(self).__name__, policy_operator=policy_operator, value_operator=value_operator)
        super().__init__(policy_operator, value_operator)

    def get_policy_operator(self) -> TensorDictModuleBase:
        """The policy."""
        return self.module[0]

    def get_value_operator(self) -> TensorDictModuleBase:
        """The critic."""
        return self.module[1]

    get_policy_head = get_policy_operator
    get_value_head = get_value_operator
    get_critic_operator = get_value_operator
