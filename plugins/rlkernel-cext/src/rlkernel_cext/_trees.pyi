"""Type stubs of the compiled module ``rlkernel_cext._trees`` (see ``_trees.cpp``).

Every argument is a one-dimensional C-contiguous buffer (a numpy array): ``tree`` holds
``2 * P`` float32 or float64 elements, ``index`` and the search output are int64, and
``value``, ``mass`` and the gather output have the tree's element type.
"""

from typing_extensions import Buffer

def sum_update(tree: Buffer, capacity: int, index: Buffer, value: Buffer, /) -> None:
    """Write leaves (last duplicate wins), recompute ancestors as left + right."""

def min_update(tree: Buffer, capacity: int, index: Buffer, value: Buffer, /) -> None:
    """Write leaves (last duplicate wins), recompute ancestors as min(left, right)."""

def pair_update(sum_tree: Buffer, min_tree: Buffer, capacity: int, index: Buffer, value: Buffer, /) -> None:
    """sum_update of sum_tree and min_update of min_tree with the same leaves, in one call."""

def gather(tree: Buffer, capacity: int, index: Buffer, out: Buffer, /) -> None:
    """out[j] = leaf[index[j]]."""

def find_prefixsum(tree: Buffer, capacity: int, mass: Buffer, out: Buffer, values: Buffer | None = None, /) -> None:
    """out[j] = canonical prefix-sum descent of mass[j], clamped to the last non-zero leaf;
    values[j] (if given) = the value of that leaf."""
