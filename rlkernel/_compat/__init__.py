"""Compatibility layers over the private API of rlkernel's dependencies.

Anything private of a dependency is reached through one module here, which names the
versions it was checked against (see :mod:`rlkernel._compat.tensordict`). No other module
of rlkernel or of its plugins touches those private names; a test reads the sources and
fails if one does.
"""
