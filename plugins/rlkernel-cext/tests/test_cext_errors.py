"""Bad inputs fail with errors that name the problem, and leave the tree unchanged."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from rlkernel.errors import PluginError
from rlkernel_cext import trees
from rlkernel_cext.trees import MinTree, SumTree


@pytest.mark.parametrize("cls", [SumTree, MinTree])
@pytest.mark.parametrize("bad", [8, -1, 1 << 40])
def test_out_of_range_index_is_named(cls: type, bad: int) -> None:
    tree = cls(8)
    tree.update(torch.tensor([1]), torch.tensor([2.0]))
    before = tree.values()
    with pytest.raises(
        IndexError, match=rf"{cls.__name__}\.update: index {bad} \(at position 2 .*capacity 8"
    ):
        tree.update(torch.tensor([0, 3, bad]), torch.tensor([1.0, 1.0, 1.0]))
    assert torch.equal(tree.values(), before)  # validated before anything was written
    with pytest.raises(IndexError, match=rf"{cls.__name__}\.get: index {bad} "):
        tree.get(torch.tensor([bad]))


def test_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="index and value must have the same length, got 3 and 2"):
        SumTree(8).update(torch.tensor([0, 1, 2]), torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize("dtype", [torch.int32, torch.float16, torch.bfloat16, torch.int64])
def test_unsupported_dtype(dtype: torch.dtype) -> None:
    with pytest.raises(TypeError, match=rf"dtype must be torch.float32 or torch.float64, got {dtype}"):
        SumTree(8, dtype=dtype)
    with pytest.raises(TypeError, match="MinTree: dtype"):
        MinTree(8, dtype=dtype)


def test_bad_capacity() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1, got 0"):
        SumTree(0)
    with pytest.raises(TypeError, match="capacity must be an int, got float"):
        SumTree(2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="capacity must be an int, got bool"):
        MinTree(True)


def test_bad_index_and_batch_shapes() -> None:
    tree = SumTree(8)
    with pytest.raises(TypeError, match=r"index must be an integer tensor .*torch.float32"):
        tree.update(torch.tensor([1.0]), torch.tensor([1.0]))
    with pytest.raises(TypeError, match="index must be an integer tensor"):
        tree.get(torch.tensor([True]))
    with pytest.raises(ValueError, match=r"index must be one-dimensional \[k\], got shape \(2, 1\)"):
        tree.get(torch.zeros(2, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"value must be one-dimensional"):
        tree.update(torch.tensor([1]), torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"SumTree.find_prefixsum: mass must be one-dimensional"):
        tree.find_prefixsum(torch.zeros(2, 2))
    with pytest.raises(TypeError, match="mass must be a real-valued tensor"):
        tree.find_prefixsum(torch.zeros(2, dtype=torch.complex64))


def test_compiled_functions_check_their_buffers() -> None:
    """The compiled module can be called directly and still refuses bad buffers."""
    from rlkernel_cext import _trees

    tree = np.zeros(16, dtype=np.float64)
    index = np.array([0], dtype=np.int64)
    with pytest.raises(TypeError, match="value must hold float64 elements, got float32"):
        _trees.sum_update(tree, 8, index, np.ones(1, dtype=np.float32))
    with pytest.raises(TypeError, match="index must hold int64 elements"):
        _trees.sum_update(tree, 8, np.array([0], dtype=np.int32), np.ones(1))
    with pytest.raises(TypeError, match="tree storage must hold float32 or float64"):
        _trees.sum_update(np.zeros(16, dtype=np.int64), 8, index, np.ones(1))
    with pytest.raises(ValueError, match="2 \\* P elements"):
        _trees.sum_update(np.zeros(12), 6, index, np.ones(1))
    with pytest.raises(ValueError, match="capacity 9 does not fit a tree of 8 leaves"):
        _trees.sum_update(tree, 9, index, np.ones(1))
    with pytest.raises(TypeError, match="writable"):
        readonly = tree.copy()
        readonly.flags.writeable = False
        _trees.sum_update(readonly, 8, index, np.ones(1))
    with pytest.raises(TypeError, match="C-contiguous"):
        _trees.find_prefixsum(tree, 8, np.zeros(4)[::2], np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="mass and out must have the same length"):
        _trees.find_prefixsum(tree, 8, np.zeros(3), np.zeros(2, dtype=np.int64))


def test_missing_extension_is_a_clear_plugin_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trees, "_EXT", None)
    monkeypatch.setitem(sys.modules, trees.EXTENSION, None)  # makes the import fail
    assert trees.available() is False
    with pytest.raises(
        PluginError, match=r"compiled module 'rlkernel_cext._trees' cannot be imported.*reinstall"
    ):
        SumTree(4)
    monkeypatch.undo()
    assert trees.available() is True
