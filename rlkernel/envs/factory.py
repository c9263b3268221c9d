"""The env factory contract: ``make_env(name, *, num_envs=None, device=None, **backend_kwargs)``.

Every registered environment is built the same way, whatever its backend::

    >>> import rlkernel
    >>> rlkernel.make_env("testing:counting").batch_size
    torch.Size([])
    >>> rlkernel.make_env("testing:counting", num_envs=3, max_count=2).batch_size
    torch.Size([3])

The rule for ``num_envs``:

- ``None`` (the default): one environment, as the factory builds it (batch size ``()`` for a
  single env).
- ``N``: ``N`` environments stepped together, batch size ``(N, ...)``. A factory that
  *batches natively* (declares ``batches_natively = True``, as the class attribute of
  :class:`~rlkernel.envs.EnvBase` subclasses does; gymnasium's vector envs, VMAS) receives
  ``num_envs=N``. Any other factory is called ``N`` times inside a
  :class:`~rlkernel.envs.SerialEnv` (``batching="serial"``, the default: no processes) or a
  :class:`~rlkernel.envs.ParallelEnv` (``batching="parallel"``: one process per env, for
  envs whose step is slow enough to pay for the inter-process hop, such as physics
  simulators).

``device`` is given to the factory when set (and to the batched container). Every other
keyword goes to the backend's factory unchanged.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from rlkernel.errors import EnvError
from rlkernel.registries import registry

if TYPE_CHECKING:
    import torch

    from rlkernel.envs.common import EnvBase

__all__ = ["BATCHING", "batches_natively", "make_env"]

BATCHING = ("serial", "parallel")


def batches_natively(factory: Any) -> bool:
    """Whether ``factory`` (a class or function) takes ``num_envs=N`` and builds ``N`` envs itself."""
    return bool(getattr(factory, "batches_natively", False))


def make_env(
    name: str,
    *,
    num_envs: int | None = None,
    device: torch.device | str | None = None,
    batching: str = "serial",
    **backend_kwargs: Any,
) -> EnvBase:
    """Build the environment registered as ``name``; ``num_envs`` of them stepped together when given.

    Args:
        name: a registered env name (``"gym:CartPole-v1"``, ``"dmc:cartpole/balance"``,
            ``"testing:counting"``); an unknown name raises
            :class:`~rlkernel.errors.UnknownNameError` with the closest names, or says which
            plugin to install.
        num_envs: ``None`` for one environment; ``N`` for ``N`` stepped together (see the
            module's rule: natively when the factory batches, else ``SerialEnv``/``ParallelEnv``).
        device: where the env's tensors live (given to the factory when not ``None``).
        batching: ``"serial"`` or ``"parallel"``: how an env that does not batch natively is
            batched; ignored when it does.
        **backend_kwargs: passed to the backend's factory unchanged.
    """
    if num_envs is not None and (isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1):
        raise EnvError(f"make_env({name!r}): num_envs must be a positive int or None, got {num_envs!r}")
    if batching not in BATCHING:
        raise EnvError(f"make_env({name!r}): batching must be one of {', '.join(BATCHING)}, got {batching!r}")
    entry, _ = registry.envs.entry(name)
    factory = registry.envs[name]  # the pattern's parts bound: what each worker calls
    if device is not None:
        backend_kwargs["device"] = device
    if num_envs is None:
        return factory(**backend_kwargs)
    if batches_natively(entry.resolve()):
        return factory(num_envs=num_envs, **backend_kwargs)
    build = functools.partial(factory, **backend_kwargs)
    if batching == "parallel":
        from rlkernel.envs.batched import ParallelEnv

        return ParallelEnv(num_envs, build, device=device)
    from rlkernel.envs.batched import SerialEnv

    return SerialEnv(num_envs, build, device=device)
