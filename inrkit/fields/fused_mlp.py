"""tiny-cuda-nn's ``FullyFusedMLP`` and ``CutlassMLP`` semantics in PyTorch.

``y = W_out · a(W_{h−1} · … a(W_0 · pad(x)))``, then ``output_activation``, sliced to ``n_output_dims``:

* **no biases**; the input is zero-padded to a multiple of 16, the output layer has
  ``roundup16(n_output_dims)`` rows of which the first ``n_output_dims`` are returned;
* matrices ``[W × in_pad]``, ``(n_hidden_layers − 1) × [W × W]``, ``[roundup16(out) × W]``, row-major
  ``[out, in]`` and concatenated in that order: the network part of tcnn's flat parameter vector;
* Xavier-uniform init ``U(±√(6/(fan_in + fan_out)))`` per matrix (padded sizes), as tcnn;
* activations ReLU, LeakyReLU (0.01), Exponential, Sigmoid, Squareplus and Softplus (with tcnn's
  internal ×10 sharpness), Tanh, Sine (CutlassMLP only), None.

``FullyFusedMLP`` accepts widths 16, 32, 64, 128 (tcnn throws otherwise); ``CutlassMLP`` any width.

Example:
    >>> mlp = TcnnMLP(80, 1, {"otype": "FullyFusedMLP", "n_neurons": 32, "n_hidden_layers": 1})
    >>> sum(p.numel() for p in mlp.parameters())     # 32·80 + 16·32
    3072
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inrkit.errors import ConfigError

TCNN_NETWORK_OTYPES = ("FullyFusedMLP", "CutlassMLP")
FUSED_WIDTHS = (16, 32, 64, 128)
SHARPNESS = 10.0  # tcnn's K_ACT for Squareplus and Softplus

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "None": lambda z: z,
    "ReLU": torch.relu,
    "LeakyReLU": lambda z: F.leaky_relu(z, 0.01),
    "Exponential": torch.exp,
    "Sigmoid": torch.sigmoid,
    "Squareplus": lambda z: 0.5 * (SHARPNESS * z + torch.sqrt((SHARPNESS * z) ** 2 + 4)) / SHARPNESS,
    "Softplus": lambda z: F.softplus(SHARPNESS * z) / SHARPNESS,
    "Tanh": torch.tanh,
    "Sine": torch.sin,
}


def roundup16(value: int) -> int:
    return (value + 15) // 16 * 16


def _activation(config: dict[str, Any], key: str, default: str, otype: str) -> Callable[[torch.Tensor], torch.Tensor]:
    name = config.get(key, default)
    if name not in ACTIVATIONS or (name == "Sine" and otype == "FullyFusedMLP"):
        allowed = [a for a in ACTIVATIONS if otype == "CutlassMLP" or a != "Sine"]
        raise ConfigError(f"network key {key!r} of {otype} must be one of {', '.join(allowed)}, got {name!r}")
    return ACTIVATIONS[name]


class TcnnMLP(nn.Module):
    """``(N, n_input_dims) -> (N, n_output_dims)`` with tcnn's MLP semantics (module docstring)."""

    def __init__(self, n_input_dims: int, n_output_dims: int, config: dict[str, Any]) -> None:
        super().__init__()
        otype = config.get("otype", "FullyFusedMLP")
        width = config.get("n_neurons", 128)
        depth = config.get("n_hidden_layers", 5)
        if otype == "FullyFusedMLP" and width not in FUSED_WIDTHS:
            raise ConfigError(f"network key 'n_neurons' of FullyFusedMLP must be one of {FUSED_WIDTHS}, got {width!r} "
                              "(CutlassMLP takes any width)")
        if not isinstance(width, int) or width < 1:
            raise ConfigError(f"network key 'n_neurons' must be a positive integer, got {width!r}")
        if not isinstance(depth, int) or depth < 1:
            raise ConfigError(f"network key 'n_hidden_layers' must be an integer >= 1, got {depth!r}")
        self.activation = _activation(config, "activation", "ReLU", otype)
        self.output_activation = _activation(config, "output_activation", "None", otype)
        self.n_input_dims, self.n_output_dims = n_input_dims, n_output_dims
        self.input_width = roundup16(n_input_dims)
        shapes = [(width, self.input_width)] + [(width, width)] * (depth - 1) + [(roundup16(n_output_dims), width)]
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(shape)) for shape in shapes)
        for weight in self.weights:
            bound = math.sqrt(6.0 / (weight.shape[0] + weight.shape[1]))
            nn.init.uniform_(weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pad(x, (0, self.input_width - x.shape[1])) if x.shape[1] < self.input_width else x
        # indexed, not sliced: a sliced ParameterList re-wraps its tensors as new Parameters, cutting the graph of
        # weights that torch.func.functional_call swapped in (stacked fields)
        weights = [self.weights[i] for i in range(len(self.weights))]
        for weight in weights[:-1]:
            h = self.activation(h @ weight.T)
        # only the returned rows of the padded output matrix are computed; the others get zero gradient
        return self.output_activation(h @ weights[-1][: self.n_output_dims].T)
