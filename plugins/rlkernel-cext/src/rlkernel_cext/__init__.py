"""rlkernel-cext: C++ sum-tree and min-tree kernels for rlkernel's prioritized replay.

The plugin registers ``"sum_tree:cpp"`` and ``"min_tree:cpp"`` in
``rlkernel.registry.kernels`` (see :mod:`rlkernel_cext.plugin`); the classes live in
:mod:`rlkernel_cext.trees`. Importing this package imports neither torch nor the compiled
module.
"""

__version__ = "0.1.0"
