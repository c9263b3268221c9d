"""How workers are started: the multiprocessing context and the factory they receive.

The start method is always an explicit context object (``multiprocessing.get_context``),
never the process-wide default. ``"forkserver"`` is the default where the platform has it:
a single-threaded server process imports torch, tensordict and rlkernel once, and each
worker is forked from it, which is both fast (no per-worker ``import torch``) and safe
(the server runs no threads of the user's program). ``"spawn"`` is portable but every
worker pays the imports itself. ``"fork"`` is the fastest to start but copies the parent
with whatever threads and locks it holds.

The factory travels pickled with cloudpickle (a dependency of tensordict), so lambdas
and closures work.
"""

from __future__ import annotations

import functools
import inspect
import multiprocessing
import pickle
import sys
from collections.abc import Callable, Sequence
from multiprocessing.context import BaseContext
from typing import Any

from rlkernel.errors import EnvError

FORKSERVER_PRELOAD = ("torch", "tensordict", "rlkernel.envs.batched.worker")


def resolve_context(mp_context: str | BaseContext | None, preload: Sequence[str] = ()) -> BaseContext:
    """The multiprocessing context to start workers with (never the global start method).

    ``None`` picks ``"forkserver"`` where the platform has it (Linux, macOS) and ``"spawn"``
    elsewhere. For a forkserver context, torch, tensordict, rlkernel and ``preload`` are
    added to the server's preload list, so that each worker forks from a process that
    imported them once instead of importing them itself (the list only takes effect when
    the server starts, i.e. on the first forkserver use of the process).
    """
    if mp_context is None:
        mp_context = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    if isinstance(mp_context, str):
        methods = multiprocessing.get_all_start_methods()
        if mp_context not in methods:
            raise EnvError(f"mp_context {mp_context!r} is not available here; choose one of {methods}")
        ctx = multiprocessing.get_context(mp_context)
    elif isinstance(mp_context, BaseContext):
        ctx = mp_context
    else:
        raise EnvError(
            f"mp_context must be a start method name or a multiprocessing context, got {mp_context!r}"
        )
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        current = list(getattr(getattr(forkserver, "_forkserver", None), "_preload_modules", None) or [])
        wanted = [*current, *FORKSERVER_PRELOAD, *preload]
        ctx.set_forkserver_preload(list(dict.fromkeys(wanted)))
    return ctx


def factory_modules(factory: Any) -> list[str]:
    """The already-imported modules ``factory`` refers to (itself, the globals and closure
    cells it uses), for the forkserver to preload; ``__main__`` and builtins are left out."""
    found: list[str] = []

    def add(obj: Any) -> None:
        name = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None)
        if isinstance(name, str) and name not in ("__main__", "builtins") and name in sys.modules:
            found.append(name)

    if isinstance(factory, functools.partial):
        factory = factory.func
    add(factory)
    if inspect.isfunction(factory):
        namespace = factory.__globals__
        for name in factory.__code__.co_names:
            if name in namespace:
                add(namespace[name])
        for cell in factory.__closure__ or ():
            try:
                add(cell.cell_contents)
            except ValueError:  # an empty cell
                pass
    return list(dict.fromkeys(found))


def pickle_factory(factory: Callable[..., Any], kwargs: dict[str, Any], index: int) -> bytes:
    """``(factory, kwargs)`` as bytes, with cloudpickle when installed (lambdas, closures)."""
    try:
        import cloudpickle

        dumps = cloudpickle.dumps
    except ImportError:  # pragma: no cover - cloudpickle comes with tensordict
        dumps = pickle.dumps
    try:
        return dumps((factory, kwargs))
    except Exception as exc:
        raise EnvError(
            f"ParallelEnv: create_env_fn / create_env_kwargs of worker {index} cannot be sent to a "
            f"worker process ({type(exc).__name__}: {exc}); use a picklable factory"
        ) from exc
