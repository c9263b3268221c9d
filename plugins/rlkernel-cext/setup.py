"""Build script for the compiled part of rlkernel-cext; the metadata is in pyproject.toml.

The one extension, ``rlkernel_cext._trees``, is plain C++17 against the CPython C API and
the buffer protocol: it needs a C++ compiler and nothing else (no libtorch, no numpy or
pybind11 headers), so the same build works with every torch version.
"""

from __future__ import annotations

import sys

from setuptools import Extension, setup

if sys.platform == "win32":
    COMPILE_ARGS = ["/O2", "/std:c++17"]
else:
    # -O3 as asked; no -ffast-math and no contraction: the kernels must round exactly like
    # the pure-torch implementation (see rlkernel_cext/trees.py).
    COMPILE_ARGS = ["-O3", "-std=c++17", "-fvisibility=hidden", "-ffp-contract=off"]

setup(
    ext_modules=[
        Extension(
            "rlkernel_cext._trees",
            sources=["src/rlkernel_cext/_trees.cpp"],
            depends=["src/rlkernel_cext/_tree_kernels.h"],  # also puts it in the sdist
            language="c++",
            extra_compile_args=COMPILE_ARGS,
        )
    ],
)
