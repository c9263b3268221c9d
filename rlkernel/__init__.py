"""rlkernel: a reinforcement-learning library for PyTorch built as a plugin microkernel.

``import rlkernel`` is cheap: it loads neither torch nor any plugin. The heavy parts
(specs, environments, transforms, buffers, collectors) are imported on first use::

    >>> import rlkernel
    >>> rlkernel.__version__
    '0.1.0'
    >>> env = rlkernel.make_env("testing:counting", max_count=5)   # plugins load here
    >>> td = env.rollout(3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rlkernel._version import API_VERSION, __version__
from rlkernel.errors import (
    ActionError,
    EnvError,
    PluginError,
    RegistryError,
    RLKernelError,
    SpecError,
    UnknownNameError,
    WorkerError,
)
from rlkernel.hookspecs import hookimpl
from rlkernel.lazy import lazy_exports
from rlkernel.registries import registry

if TYPE_CHECKING:
    from rlkernel.envs import EnvBase

# Public names served lazily: attribute -> module that defines it.
_LAZY = {
    "specs": "rlkernel.specs",
    "envs": "rlkernel.envs",
    "testing": "rlkernel.testing",
    "EnvBase": "rlkernel.envs",
    "SerialEnv": "rlkernel.envs",
    "ParallelEnv": "rlkernel.envs",
    "check_env_specs": "rlkernel.envs",
    "step_mdp": "rlkernel.envs",
    "exploration": "rlkernel.exploration",
    "transforms": "rlkernel.transforms",
    "data": "rlkernel.data",
    "collectors": "rlkernel.collectors",
    "TransformedEnv": "rlkernel.transforms",
    "ExplorationType": "rlkernel.exploration",
    "set_exploration_type": "rlkernel.exploration",
    "exploration_type": "rlkernel.exploration",
}


def make_env(
    name: str, *, num_envs: int | None = None, device: Any = None, batching: str = "serial", **backend_kwargs: Any
) -> EnvBase:
    """Build the environment registered as ``name`` (e.g. ``"gym:CartPole-v1"``).

    ``num_envs=N`` steps ``N`` environments together, natively when the backend batches
    (gymnasium's vector envs) and in a ``SerialEnv``/``ParallelEnv`` (``batching=``) when it
    does not; ``device`` goes to the factory; other keywords go to the backend's factory.
    The whole contract is :func:`rlkernel.envs.factory.make_env`. An unknown name raises
    :class:`~rlkernel.errors.UnknownNameError` listing the closest registered names, or
    naming the plugin to install.
    """
    from rlkernel.envs.factory import make_env as build

    return build(name, num_envs=num_envs, device=device, batching=batching, **backend_kwargs)


__getattr__, __dir__, _ = lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "API_VERSION",
    "ActionError",
    "EnvError",
    "PluginError",
    "RLKernelError",
    "RegistryError",
    "SpecError",
    "UnknownNameError",
    "WorkerError",
    "__version__",
    "hookimpl",
    "make_env",
    "registry",
    *_LAZY,
]
