"""Plain torch networks: :class:`MLP`, :class:`ConvNet` and dueling Q-networks.

These are ``torch.nn`` modules (tensors in, tensors out); wrap them in
:class:`~rlkernel_algos.modules.Actor`, :class:`~rlkernel_algos.modules.ValueOperator` or a
``tensordict.nn.TensorDictModule`` to read and write TensorDict keys. Names and arguments
follow TorchRL's ``torchrl.modules`` so that scripts port by changing imports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from rlkernel.errors import SpecError

__all__ = ["MLP", "ConvNet", "DuelingCnnDQNet", "DuelingMlpDQNet", "SquashDims"]

ModuleFactory = type[nn.Module] | Callable[..., nn.Module]


def _per_layer(value: Any, n: int, name: str, owner: str) -> list[Any]:
    """``value`` repeated ``n`` times, or checked to hold ``n`` entries when it is a list/tuple."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise SpecError(f"{owner}: {name} has {len(value)} entries but the network has {n} layers")
        return list(value)
    return [value] * n


def _kwargs(value: dict | Sequence[dict] | None, n: int, name: str, owner: str) -> list[dict]:
    if value is None:
        return [{} for _ in range(n)]
    if isinstance(value, dict):
        return [dict(value) for _ in range(n)]
    return [dict(v) for v in _per_layer(list(value), n, name, owner)]


def _hidden_sizes(num_cells: Sequence[int] | int | None, depth: int | None, owner: str, default: int) -> list[int]:
    if num_cells is None:
        return [] if depth is None else [default] * depth
    if isinstance(num_cells, int):
        if depth is None:
            raise SpecError(f"{owner}: num_cells={num_cells} is an int: give depth too, or a list of sizes")
        return [num_cells] * depth
    cells = [int(c) for c in num_cells]
    if depth is not None and depth != len(cells):
        raise SpecError(f"{owner}: depth={depth} but num_cells has {len(cells)} entries {cells}")
    return cells


class MLP(nn.Sequential):
    """A multi-layer perceptron; several inputs are concatenated along the last dim.

    Args:
        in_features: input size; ``None`` builds the first layer lazily (``nn.LazyLinear``).
        out_features: output size, or a shape (the output is reshaped to it).
        depth: number of hidden layers (with ``num_cells`` an int).
        num_cells: hidden sizes (a list), or one size repeated ``depth`` times. Without
            ``num_cells`` and ``depth`` the MLP is one linear layer.
        activation_class, activation_kwargs: the activation after each hidden layer.
        norm_class, norm_kwargs: an optional normalization layer before each activation.
        dropout: an optional dropout probability, before each normalization/activation.
        bias_last_layer: whether the output layer has a bias.
        layer_class, layer_kwargs: the linear layer class (``nn.Linear``) and its kwargs.
        activate_last_layer: also apply the activation (and norm/dropout) to the output.
        device: where to create the parameters.

    Example::

        >>> net = MLP(in_features=4, out_features=2, num_cells=[32, 32])
        >>> net(torch.zeros(10, 4)).shape
        torch.Size([10, 2])
        >>> MLP(out_features=(2, 3), num_cells=[8])(torch.zeros(5, 4), torch.zeros(5, 1)).shape
        torch.Size([5, 2, 3])
    """

    def __init__(
        self,
        in_features: int | None = None,
        out_features: int | Sequence[int] | None = None,
        depth: int | None = None,
        num_cells: Sequence[int] | int | None = None,
        activation_class: ModuleFactory = nn.Tanh,
        activation_kwargs: dict | Sequence[dict] | None = None,
        norm_class: ModuleFactory | None = None,
        norm_kwargs: dict | Sequence[dict] | None = None,
        dropout: float | None = None,
        bias_last_layer: bool = True,
        layer_class: ModuleFactory = nn.Linear,
        layer_kwargs: dict | None = None,
        activate_last_layer: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        if out_features is None:
            raise SpecError("MLP: out_features is required (an int or a shape)")
        if isinstance(out_features, int):
            out_shape: tuple[int, ...] | None = None
            n_out = out_features
        else:
            out_shape = tuple(int(s) for s in out_features)
            n_out = math.prod(out_shape)
        if n_out <= 0:
            raise SpecError(f"MLP: out_features must be positive, got {out_features!r}")
        if dropout is not None and not 0.0 <= dropout < 1.0:
            raise SpecError(f"MLP: dropout must be in [0, 1), got {dropout}")
        cells = _hidden_sizes(num_cells, depth, "MLP", default=32)
        n_act = len(cells) + int(activate_last_layer)
        act_kwargs = _kwargs(activation_kwargs, n_act, "activation_kwargs", "MLP")
        nrm_kwargs = _kwargs(norm_kwargs, n_act, "norm_kwargs", "MLP")
        layers: list[nn.Module] = []
        sizes_in: list[int | None] = [in_features, *cells]
        sizes_out = [*cells, n_out]
        for i, (size_in, size_out) in enumerate(zip(sizes_in, sizes_out)):
            last = i == len(cells)
            kwargs = dict(layer_kwargs or {})
            kwargs.setdefault("bias", bias_last_layer if last else True)
            if size_in is None:
                if layer_class is not nn.Linear:
                    raise SpecError(
                        f"MLP: in_features=None needs a lazy layer, available for nn.Linear only "
                        f"(got layer_class={getattr(layer_class, '__name__', layer_class)}); give in_features"
                    )
                layers.append(nn.LazyLinear(size_out, device=device, **kwargs))
            else:
                layers.append(layer_class(size_in, size_out, device=device, **kwargs))
            if not last or activate_last_layer:
                if dropout:
                    layers.append(nn.Dropout(dropout))
                if norm_class is not None:
                    layers.append(norm_class(**nrm_kwargs[i]))
                layers.append(activation_class(**act_kwargs[i]))
        super().__init__(*layers)
        self.in_features = in_features
        self.out_features = out_features
        self.num_cells = cells
        self._out_shape = out_shape

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Concatenate the inputs along the last dim and run the layers."""
        if not inputs:
            raise SpecError("MLP: called without input")
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs, -1)
        out = super().forward(x)
        if self._out_shape is not None:
            out = out.reshape(*out.shape[:-1], *self._out_shape)
        return out


class SquashDims(nn.Module):
    """Flatten the last ``ndims_in`` dims into one (``[*B, C, H, W] -> [*B, C*H*W]``)."""

    def __init__(self, ndims_in: int = 3) -> None:
        super().__init__()
        self.ndims_in = ndims_in

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        """Flatten the trailing dims."""
        return value.flatten(-self.ndims_in, -1)


class ConvNet(nn.Module):
    """A stack of ``Conv2d`` layers followed by an aggregator (flattening by default).

    Inputs are ``[*batch, C, H, W]`` with any number of batch dims; the output is
    ``[*batch, features]``.

    Defaults are the Atari network of Mnih et al. (2015): ``num_cells=[32, 64, 64]``,
    ``kernel_sizes=[8, 4, 3]``, ``strides=[4, 2, 1]``, ReLU (TorchRL's ConvNet defaults to
    three 3x3 ELU layers instead). When ``num_cells`` is given, ``kernel_sizes`` and
    ``strides`` default to 3 and 1.

    Args:
        in_features: input channels; ``None`` builds the first layer lazily.
        depth, num_cells: as in :class:`MLP` (output channels of each layer).
        kernel_sizes, strides, paddings: one value, or one per layer.
        activation_class, activation_kwargs, norm_class, norm_kwargs: as in :class:`MLP`.
        bias_last_layer: whether the last conv layer has a bias.
        aggregator_class, aggregator_kwargs: the module applied to the last feature map.
        squeeze_output: squeeze singleton dims of the output.
        device: where to create the parameters.

    Example::

        >>> net = ConvNet()
        >>> net(torch.zeros(2, 5, 4, 84, 84)).shape
        torch.Size([2, 5, 3136])
    """

    def __init__(
        self,
        in_features: int | None = None,
        depth: int | None = None,
        num_cells: Sequence[int] | int | None = None,
        kernel_sizes: Sequence[int | tuple[int, int]] | int | None = None,
        strides: Sequence[int] | int | None = None,
        paddings: Sequence[int] | int = 0,
        activation_class: ModuleFactory = nn.ReLU,
        activation_kwargs: dict | Sequence[dict] | None = None,
        norm_class: ModuleFactory | None = None,
        norm_kwargs: dict | Sequence[dict] | None = None,
        bias_last_layer: bool = True,
        aggregator_class: ModuleFactory | None = SquashDims,
        aggregator_kwargs: dict | None = None,
        squeeze_output: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        if num_cells is None and depth is None:
            cells = [32, 64, 64]
            kernel_sizes = [8, 4, 3] if kernel_sizes is None else kernel_sizes
            strides = [4, 2, 1] if strides is None else strides
        else:
            cells = _hidden_sizes(num_cells, depth, "ConvNet", default=32)
        if not cells:
            raise SpecError("ConvNet: needs at least one layer (num_cells or depth)")
        n = len(cells)
        kernels = _per_layer(3 if kernel_sizes is None else kernel_sizes, n, "kernel_sizes", "ConvNet")
        steps = _per_layer(1 if strides is None else strides, n, "strides", "ConvNet")
        pads = _per_layer(paddings, n, "paddings", "ConvNet")
        act_kwargs = _kwargs(activation_kwargs, n, "activation_kwargs", "ConvNet")
        nrm_kwargs = _kwargs(norm_kwargs, n, "norm_kwargs", "ConvNet")
        layers: list[nn.Module] = []
        channels_in: list[int | None] = [in_features, *cells[:-1]]
        for i, (c_in, c_out) in enumerate(zip(channels_in, cells)):
            bias = bias_last_layer if i == n - 1 else True
            if c_in is None:
                conv = nn.LazyConv2d(c_out, kernels[i], stride=steps[i], padding=pads[i], bias=bias, device=device)
            else:
                conv = nn.Conv2d(c_in, c_out, kernels[i], stride=steps[i], padding=pads[i], bias=bias, device=device)
            layers.append(conv)
            if norm_class is not None:
                layers.append(norm_class(**nrm_kwargs[i]))
            layers.append(activation_class(**act_kwargs[i]))
        self.layers = nn.Sequential(*layers)
        self.aggregator = aggregator_class(**(aggregator_kwargs or {})) if aggregator_class is not None else None
        self.squeeze_output = squeeze_output
        self.num_cells = cells

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Run the convolutions on ``[*batch, C, H, W]`` inputs."""
        if inputs.ndim < 3:
            raise SpecError(f"ConvNet: expected inputs shaped [*batch, C, H, W], got shape {list(inputs.shape)}")
        batch = inputs.shape[:-3]
        x = inputs.reshape(-1, *inputs.shape[-3:]) if inputs.ndim != 4 else inputs
        x = self.layers(x)
        if self.aggregator is not None:
            x = self.aggregator(x)
        x = x.reshape(*batch, *x.shape[1:])
        return x.squeeze() if self.squeeze_output else x


class DuelingMlpDQNet(nn.Module):
    """Dueling Q-network (Wang et al., 2016) on vector observations.

    ``Q(s, a) = V(s) + A(s, a) - mean_a A(s, a)``, with a shared feature MLP and two heads.

    Args:
        out_features: number of actions.
        out_features_value: size of the value head (1).
        mlp_kwargs_feature: kwargs of the feature :class:`MLP` (default: two ELU layers of 256,
            256 features out, activated).
        mlp_kwargs_output: kwargs of both head MLPs (default: one ELU hidden layer of 512).
        device: where to create the parameters.

    Example::

        >>> net = DuelingMlpDQNet(3, mlp_kwargs_feature={"num_cells": [16], "out_features": 16})
        >>> net(torch.zeros(7, 4)).shape
        torch.Size([7, 3])
    """

    def __init__(
        self,
        out_features: int,
        out_features_value: int = 1,
        mlp_kwargs_feature: dict | None = None,
        mlp_kwargs_output: dict | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        feature = {"num_cells": [256, 256], "out_features": 256, "activation_class": nn.ELU,
                   "activate_last_layer": True, **(mlp_kwargs_feature or {})}
        head = {"num_cells": [512], "activation_class": nn.ELU, **(mlp_kwargs_output or {})}
        head.pop("out_features", None)
        self.features = MLP(device=device, **feature)
        self.advantage = MLP(out_features=out_features, device=device, **head)
        self.value = MLP(out_features=out_features_value, device=device, **head)

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        """Return the action values ``[*batch, out_features]``."""
        return _dueling(self.features(observation), self.advantage, self.value)


class DuelingCnnDQNet(nn.Module):
    """Dueling Q-network on pixels: a :class:`ConvNet` (Atari default) then dueling MLP heads.

    Args:
        out_features: number of actions.
        out_features_value: size of the value head (1).
        cnn_kwargs: kwargs of the :class:`ConvNet`.
        mlp_kwargs: kwargs of both head MLPs (default: one ReLU hidden layer of 512).
        device: where to create the parameters.
    """

    def __init__(
        self,
        out_features: int,
        out_features_value: int = 1,
        cnn_kwargs: dict | None = None,
        mlp_kwargs: dict | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        head = {"num_cells": [512], "activation_class": nn.ReLU, **(mlp_kwargs or {})}
        head.pop("out_features", None)
        self.features = ConvNet(device=device, **(cnn_kwargs or {}))
        self.advantage = MLP(out_features=out_features, device=device, **head)
        self.value = MLP(out_features=out_features_value, device=device, **head)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return the action values ``[*batch, out_features]``."""
        return _dueling(self.features(pixels), self.advantage, self.value)


def _dueling(features: torch.Tensor, advantage_head: nn.Module, value_head: nn.Module) -> torch.Tensor:
    advantage = advantage_head(features)
    return value_head(features) + advantage - advantage.mean(-1, keepdim=True)
