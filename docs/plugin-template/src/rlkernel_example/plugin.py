"""The module named by the ``rlkernel`` entry point: cheap to import, registers by name."""

import rlkernel

# The rlkernel plugin API this plugin was written for.
RLKERNEL_API_VERSION = 1


@rlkernel.hookimpl
def rlkernel_register(registry):
    """Register the random walk lazily: a "module:attr" string, imported on first use."""
    registry.envs.register("example:RandomWalk-v0", "rlkernel_example.envs:RandomWalkEnv")
