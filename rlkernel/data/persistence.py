"""Saving a state (nested dicts and lists of tensors, numbers and strings) without pickle.

A folder written by :func:`save_state`::

    state.json          the structure, with each tensor replaced by
                        {"__tensor__": file or null, "dtype": ..., "shape": [...]}
    tensors/<n>.memmap  the raw bytes of tensor n (tensordict's MemoryMappedTensor)

:func:`load_state` reads it back with ``json`` and memory maps: no ``pickle`` and no
``torch.load`` are involved, so a folder from an untrusted source cannot run code.

>>> import tempfile, torch
>>> folder = tempfile.mkdtemp()
>>> save_state(folder, {"x": torch.arange(3), "meta": {"n": 1, "names": ["a"]}})
>>> state = load_state(folder)
>>> state["x"].tolist(), state["meta"]
([0, 1, 2], {'n': 1, 'names': ['a']})
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import torch
from tensordict import MemoryMappedTensor

from rlkernel.data.errors import BufferError
from rlkernel.data.storages.layout import dtype_from_name

__all__ = ["load_state", "save_state"]

_FORMAT = "rlkernel.data.state"
_VERSION = 1
_TENSOR = "__tensor__"


def save_state(path: str | os.PathLike[str], state: Any) -> None:
    """Write ``state`` under the folder ``path`` (created if needed; its previous
    ``state.json`` is replaced last, so an interrupted save leaves the old one readable)."""
    folder = Path(path)
    tensors = folder / "tensors"
    tensors.mkdir(parents=True, exist_ok=True)
    counter = itertools.count()

    def encode(obj: Any, where: str) -> Any:
        if isinstance(obj, torch.Tensor):
            tensor = obj.detach()
            entry = {_TENSOR: None, "dtype": str(tensor.dtype), "shape": list(tensor.shape)}
            if tensor.numel():
                name = f"{next(counter)}.memmap"
                MemoryMappedTensor.from_tensor(
                    tensor.cpu().contiguous(), filename=tensors / name, existsok=True, copy_existing=True
                )
                entry[_TENSOR] = name
            return entry
        if isinstance(obj, dict):
            if not all(isinstance(k, str) for k in obj) or _TENSOR in obj:
                raise BufferError(f"cannot save {where}: dict keys must be strings other than {_TENSOR!r}")
            return {k: encode(v, f"{where}.{k}") for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if obj is None or isinstance(obj, bool | int | float | str):
            return obj
        raise BufferError(f"cannot save {where}: a {type(obj).__name__} is not a tensor, number, string, list or dict")

    content = {"format": _FORMAT, "version": _VERSION, "state": encode(state, "state")}
    tmp = folder / "state.json.tmp"
    tmp.write_text(json.dumps(content))
    os.replace(tmp, folder / "state.json")


def load_state(path: str | os.PathLike[str]) -> Any:
    """Read back what :func:`save_state` wrote. Tensors are copy-on-write memory maps of
    the files (changing them never changes the files)."""
    folder = Path(path)
    meta_file = folder / "state.json"
    if not meta_file.exists():
        raise BufferError(f"{folder} holds no saved state (no state.json): was it written by dumps()?")
    content = json.loads(meta_file.read_text())
    if content.get("format") != _FORMAT or content.get("version") != _VERSION:
        raise BufferError(f"{meta_file} is not a state written by this version of rlkernel.data")

    def decode(obj: Any) -> Any:
        if isinstance(obj, dict):
            if _TENSOR in obj:
                dtype, shape = dtype_from_name(obj["dtype"]), tuple(obj["shape"])
                if obj[_TENSOR] is None:
                    return torch.empty(shape, dtype=dtype)
                name = Path(obj[_TENSOR]).name  # never leave the folder
                return MemoryMappedTensor.from_filename(folder / "tensors" / name, dtype, shape, mode="r")
            return {k: decode(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [decode(v) for v in obj]
        return obj

    return decode(content["state"])
