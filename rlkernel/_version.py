"""Version of the core distribution and of the plugin API it offers.

``API_VERSION`` is the major version of the contract plugins are written against (the
hook specs in :mod:`rlkernel.hookspecs` and the registries they fill). A plugin declares
the one it was written for as ``RLKERNEL_API_VERSION`` in its plugin module; the core
loads plugins whose API version it supports and reports the others clearly.
"""

__version__ = "0.1.0"
API_VERSION = 1
SUPPORTED_API_VERSIONS = frozenset({1})
