"""Exception types shared by every part of rlkernel."""

# NOTE(specs helper): this file was accidentally overwritten by the specs helper and then
# rebuilt from the names the rest of the package imports. The base classes below are a best
# guess; the lead should check them against the original and restore it where it differs.


class RLKernelError(Exception):
    """Base class of every error that rlkernel raises on purpose."""


class SpecError(RLKernelError, ValueError):
    """A value, shape, dtype or parameter does not agree with a tensor spec."""


class ActionError(SpecError):
    """An action given to an environment does not fit the environment's action spec."""


class EnvError(RLKernelError, RuntimeError):
    """An environment was misused or returned something that breaks the step contract."""


class RegistryError(RLKernelError, ValueError):
    """A registry was asked to do something it cannot (bad name, name already taken, ...)."""


class UnknownNameError(RegistryError, KeyError):
    """A name is not registered; the message lists the closest registered names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class PluginError(RLKernelError, ImportError):
    """A plugin or one of its lazy factories could not be imported or loaded."""


class WorkerError(RLKernelError, RuntimeError):
    """A worker process died or failed while serving a batched environment or collector."""
