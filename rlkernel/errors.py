"""The exceptions rlkernel raises.

Every error the library raises on bad input derives from :class:`RLKernelError`, so a
user can catch them all at once, and each also derives from the built-in exception a
Python programmer would expect (``ValueError``, ``KeyError``, ...), so generic handlers
keep working.
"""

from __future__ import annotations


class RLKernelError(Exception):
    """Base class of every error raised by rlkernel and its plugins."""


class SpecError(RLKernelError, ValueError):
    """A value, a shape or a dtype does not fit a spec, or a spec is malformed."""


class ActionError(SpecError):
    """An action given to ``env.step`` does not fit the environment's action spec."""


class EnvError(RLKernelError, RuntimeError):
    """An environment broke its contract (missing keys, wrong specs, wrong batch size)."""


class RegistryError(RLKernelError, LookupError):
    """A registry was asked for something it cannot give, or given a bad entry."""


class UnknownNameError(RegistryError, KeyError):
    """A name is not registered; the message lists the closest registered names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0]) if self.args else ""


class PluginError(RLKernelError, ImportError):
    """A plugin could not be imported, registered, or is incompatible with the core."""


class WorkerError(RLKernelError, RuntimeError):
    """A worker process raised or died; the message names the worker and the cause."""
