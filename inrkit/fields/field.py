"""The Field: an encoding followed by a network, rebuilt from a JSON-able config alone.

Config (tiny-cuda-nn's schema, extended)::

    {
      "n_input_dims": 2, "n_output_dims": 3,
      "encoding": {"otype": "Identity"},
      "network":  {"otype": "Siren", "n_neurons": 256, "n_hidden_layers": 4, ...},
      "output":   {"range": [-1, 1], "activation": "None"}
    }

``field(coords)`` maps ``(N, n_input_dims)`` coordinates to ``(N, n_output_dims)`` values in the
signal's normalised space ``[0, 1]``: the network's raw output ``r`` (after the optional sigmoid) is
mapped from ``output.range = [lo, hi]`` by ``(r − lo)/(hi − lo)``. A network trained on targets in
``[−1, 1]`` (SIREN, FINER) thus sees exactly its paper's target range, while every field speaks
``[0, 1]`` to the rest of inrkit. Coordinates enter in [-1, 1]; tcnn's encodings (hash grids,
Frequency, SphericalHarmonics, Composite) receive ``(x + 1)/2 ∈ [0, 1]`` as in tcnn.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from inrkit.encodings import build_encoding
from inrkit.errors import ConfigError, Rule, check_section
from inrkit.fields.fused_mlp import TCNN_NETWORK_OTYPES, TcnnMLP
from inrkit.fields.mlp import MLP_OTYPES, CoordinateMLP
from inrkit.fields.sl2a import SL2ANet

NETWORK_OTYPES = (*MLP_OTYPES, "SL2A", *TCNN_NETWORK_OTYPES)
OUTPUT_ACTIVATIONS = ("None", "Sigmoid")
MAX_DIMS = 64  # coordinates and outputs: an encoding matrix (n_features x n_input_dims) stays small
FIELD_SCHEMA = {"n_input_dims": Rule("int", 1, MAX_DIMS), "n_output_dims": Rule("int", 1, MAX_DIMS)}
OUTPUT_SCHEMA = {"activation": Rule("choice", choices=OUTPUT_ACTIVATIONS)}


def check_output(output: Any) -> tuple[float, float]:
    """The output section: ``range`` two finite numbers ``[lo, hi]`` with ``hi > lo`` (default ``[0, 1]``)."""
    check_section("output", output, OUTPUT_SCHEMA)
    bounds = output.get("range", [0.0, 1.0])
    number = Rule("number")
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(number.accepts(v) for v in bounds)
            and bounds[1] > bounds[0] and math.isfinite(float(bounds[1]) - float(bounds[0]))):
        raise ConfigError(f"output key 'range' must be two finite numbers [low, high] with high > low, got {bounds!r:.60}")
    return float(bounds[0]), float(bounds[1])


def build_network(n_input_dims: int, n_output_dims: int, config: dict[str, Any]) -> nn.Module:
    """Build a network from its config dict."""
    if config["otype"] == "SL2A":
        return SL2ANet(n_input_dims, n_output_dims, config)
    if config["otype"] in MLP_OTYPES:
        return CoordinateMLP(n_input_dims, n_output_dims, config)
    if config["otype"] in TCNN_NETWORK_OTYPES:
        return TcnnMLP(n_input_dims, n_output_dims, config)
    raise ConfigError(f"unknown network otype {config['otype']!r}; choose one of {', '.join(NETWORK_OTYPES)}")


class Field(nn.Module):
    """A coordinate network ``(N, n_input_dims) -> (N, n_output_dims)``; see the module docstring.

    Example:
        >>> from inrkit.fields import build_field
        >>> field = build_field("siren", n_input_dims=2, n_output_dims=3)
        >>> field(torch.zeros(5, 2)).shape
        torch.Size([5, 3])
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        check_section("field", config, FIELD_SCHEMA)
        for key in ("n_input_dims", "n_output_dims", "network"):
            if key not in config:
                raise ConfigError(f"field config needs the key {key!r}")
        check_section("network", config["network"], {})
        if not isinstance(config["network"].get("otype"), str):
            raise ConfigError(f"network key 'otype' must be one of {', '.join(NETWORK_OTYPES)}")
        low, high = check_output(config.get("output", {}))
        self.config = copy.deepcopy(config)
        self.n_input_dims = int(config["n_input_dims"])
        self.n_output_dims = int(config["n_output_dims"])
        self.encoding = build_encoding(self.n_input_dims, config.get("encoding", {"otype": "Identity"}))
        self.network = build_network(self.encoding.n_output_dims, self.n_output_dims, config["network"])
        time_dim = getattr(self.network, "time_dim", None)
        if time_dim is not None and not 0 <= time_dim < self.n_input_dims:
            raise ValueError(f"time_dim {time_dim} is not an input column of a {self.n_input_dims}-D field")
        self.output_activation = config.get("output", {}).get("activation", "None")
        self._out_low = low
        self._out_span = high - low

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        time_dim = getattr(self.network, "time_dim", None)
        time = None if time_dim is None else coords[:, time_dim]  # ResFields layers read t in [-1, 1]
        if self.encoding.input_domain == "unit":
            coords = (coords + 1.0) * 0.5  # tcnn's encodings take [0,1]
        encoded = self.encoding(coords)
        raw = self.network(encoded) if time is None else self.network(encoded, time)
        if self.output_activation == "Sigmoid":
            raw = torch.sigmoid(raw)
        if self._out_low == 0.0 and self._out_span == 1.0:
            return raw
        return (raw - self._out_low) / self._out_span

    def training_hooks(self, seed: int) -> list[Callable[[int], None]]:
        """Step hooks the Trainer runs while fitting this field (none: a coordinate field is only its weights)."""
        return []

    @property
    def n_params(self) -> int:
        """Trainable parameter count (a complex entry counts once, as ``numel`` does)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
