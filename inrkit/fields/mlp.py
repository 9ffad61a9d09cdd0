"""Coordinate MLPs: a stack of activation layers of one kind followed by a linear output layer.

Config keys (tcnn-style, ``n_hidden_layers`` counts hidden *activations*, as tcnn does; the
official SIREN ``hidden_layers=3`` is ``n_hidden_layers=4``):

===========  =========================================================================
otype        extra keys
===========  =========================================================================
``Siren``    ``first_omega_0`` (30), ``hidden_omega_0`` (30), ``omega_on_bias`` (true)
``ResFieldSiren``  as Siren, plus ``n_frames`` (C), ``rank`` (10), ``resfield_layers`` ([1, 2, 3]),
             ``time_mode`` (``"interpolation"`` | ``"lookup"``), ``fusion`` (``"add"`` | ``"mul"``),
             ``time_dim`` (0: the input column holding t); see :mod:`inrkit.fields.resfields`
``Spder``    as Siren, plus ``damping`` (``"sqrt"`` | ``"arctan"``)
``Finer``    ``first_omega_0``, ``hidden_omega_0``, ``first_bias_scale`` (null)
``Gauss``    ``scale`` (30)
``Wire``     ``first_omega_0`` (20), ``hidden_omega_0`` (20), ``scale`` (10); width ⌊n/√2⌋
``ReLU``     none (PyTorch default initialisation)
===========  =========================================================================

The sine networks (Siren, ResFieldSiren, Spder, Finer) also take ``weight_scale`` α (default 1): Yeom et
al.'s weight scaling (ICLR 2025, "Fast Training of Sinusoidal Neural Fields via Scaling Initialization"),
every weight matrix but the output layer's multiplied by α after the initialisation, ``W ← α·W``
(biases unchanged). The paper studies SIREN; Spder and Finer take it as an extension.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from inrkit.errors import ConfigError, Rule, check_section
from inrkit.fields.activations import SPDER_DAMPINGS
from inrkit.fields.layers import GaborLayer, GaussLayer, PeriodicLayer, siren_uniform_
from inrkit.fields.resfields import FUSIONS, TIME_MODES

PERIODIC_OTYPES = {"Siren": "sine", "Spder": "spder", "Finer": "finer", "ResFieldSiren": "sine"}
MLP_OTYPES = (*PERIODIC_OTYPES, "Gauss", "Wire", "ReLU")
MAX_WIDTH, MAX_DEPTH = 1 << 16, 1024
_FREQUENCY = Rule("number", 0.0, 1e6, above=True)
# The network section's schema, checked when a CoordinateMLP is built (from flags or from a file). Zero hidden
# layers are not supported: the output layer takes ``n_neurons`` inputs.
NETWORK_SCHEMA = {
    "otype": Rule("choice", choices=MLP_OTYPES),
    "n_neurons": Rule("int", 1, MAX_WIDTH),
    "n_hidden_layers": Rule("int", 1, MAX_DEPTH),
    "first_omega_0": _FREQUENCY,
    "hidden_omega_0": _FREQUENCY,
    "omega_on_bias": Rule("bool"),
    "damping": Rule("choice", choices=SPDER_DAMPINGS),
    "first_bias_scale": Rule("number", 0.0, 1e6, optional=True),
    "scale": _FREQUENCY,
    "n_frames": Rule("int", 1, 1 << 20),
    "rank": Rule("int", 1, MAX_WIDTH),
    "resfield_layers": Rule("ints", 0, MAX_DEPTH - 1),
    "time_mode": Rule("choice", choices=TIME_MODES),
    "fusion": Rule("choice", choices=FUSIONS),
    "time_dim": Rule("int", 0, 1023),
    "weight_scale": Rule("number", 0.0, 1e3, above=True),
}


def wire_width(n_neurons: int) -> int:
    """WIRE keeps the parameter budget of a real network of width ``n``: ``⌊n/√2⌋`` complex units."""
    return int(n_neurons / math.sqrt(2))


class CoordinateMLP(nn.Module):
    """``(N, n_input_dims) -> (N, n_output_dims)``: ``n_hidden_layers`` activation layers + linear output."""

    def __init__(self, n_input_dims: int, n_output_dims: int, config: dict[str, Any]) -> None:
        super().__init__()
        check_section("network", config, NETWORK_SCHEMA)
        for key in ("otype", "n_neurons", "n_hidden_layers", *(("n_frames",) if config.get("otype") == "ResFieldSiren" else ())):
            if key not in config:
                raise ConfigError(f"network config of {config.get('otype')!r} needs the key {key!r}")
        if "weight_scale" in config and config["otype"] not in PERIODIC_OTYPES:
            raise ConfigError(f"network key 'weight_scale' applies to the sine networks ({', '.join(PERIODIC_OTYPES)}), "
                              f"not {config['otype']!r}")
        if config["otype"] == "Wire" and config["n_neurons"] < 2:
            raise ConfigError("network key 'n_neurons' of Wire must be at least 2 (it keeps floor(n/sqrt 2) complex units)")
        otype = config["otype"]
        depth = int(config["n_hidden_layers"])
        width = int(config["n_neurons"])
        self.is_complex = otype == "Wire"
        self.time_dim: int | None = None
        resfield_layers: set[int] = set()
        if otype == "ResFieldSiren":
            self.time_dim = int(config.get("time_dim", 0))
            resfield_layers = {int(i) for i in config.get("resfield_layers", [1, 2, 3])}
            if not resfield_layers <= set(range(depth)):
                raise ValueError(f"resfield_layers {sorted(resfield_layers)} must lie in 0..{depth - 1}")
            resfield = {"n_frames": int(config["n_frames"]), "rank": int(config.get("rank", 10)),
                        "mode": str(config.get("time_mode", "interpolation")), "fusion": str(config.get("fusion", "add"))}
        layers: list[nn.Module] = []
        if otype in PERIODIC_OTYPES:
            first_omega = float(config.get("first_omega_0", 30.0))
            hidden_omega = float(config.get("hidden_omega_0", 30.0))
            for i in range(depth):
                layers.append(
                    PeriodicLayer(
                        n_input_dims if i == 0 else width,
                        width,
                        omega_0=first_omega if i == 0 else hidden_omega,
                        is_first=i == 0,
                        activation=PERIODIC_OTYPES[otype],
                        omega_on_bias=bool(config.get("omega_on_bias", True)),
                        damping=str(config.get("damping", "sqrt")),
                        first_bias_scale=config.get("first_bias_scale"),
                        resfield=resfield if i in resfield_layers else None,
                    )
                )
            self.output = nn.Linear(width, n_output_dims)
            siren_uniform_(self.output.weight, width, hidden_omega, is_first=False)
            scale = float(config.get("weight_scale", 1.0))
            if scale != 1.0:
                with torch.no_grad():
                    for layer in layers:
                        layer.linear.weight.mul_(scale)  # W ← α·W in every sine layer, not the output layer
        elif otype == "Gauss":
            scale = float(config.get("scale", 30.0))
            layers = [GaussLayer(n_input_dims if i == 0 else width, width, scale) for i in range(depth)]
            self.output = nn.Linear(width, n_output_dims)
        elif otype == "Wire":
            width = wire_width(width)
            omegas = (float(config.get("first_omega_0", 20.0)), float(config.get("hidden_omega_0", 20.0)))
            scale = float(config.get("scale", 10.0))
            layers = [
                GaborLayer(n_input_dims if i == 0 else width, width, omegas[i > 0], scale, is_first=i == 0)
                for i in range(depth)
            ]
            self.output = nn.Linear(width, n_output_dims, dtype=torch.complex64)
        elif otype == "ReLU":
            for i in range(depth):
                layers += [nn.Linear(n_input_dims if i == 0 else width, width), nn.ReLU()]
            self.output = nn.Linear(width, n_output_dims)
        else:
            raise ValueError(f"unknown network otype {otype!r}")
        self.hidden = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, time: torch.Tensor | None = None) -> torch.Tensor:
        """``x (N, in)`` -> ``(N, out)``; ``time (N,)`` feeds the ResFields layers (ignored otherwise)."""
        if self.time_dim is None:
            y = self.output(self.hidden(x))
        else:
            for layer in self.hidden:
                x = layer(x, time) if getattr(layer, "is_resfield", False) else layer(x)
            y = self.output(x)
        return y.real if self.is_complex else y
