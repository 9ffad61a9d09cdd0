"""The NeRF field: a density network on encoded positions and a colour network on (features, encoded direction).

instant-ngp's configuration (REFERENCE.md §3.1)::

    p (unit cube) ──HashGrid──▶ density MLP (64, 1 hidden) ──▶ 16 outputs h;  σ = exp(h_0)
    d (unit)      ──SH deg 4──▶ 16 ─┐
                                    └─ [h ‖ SH(d)] ──▶ colour MLP (64, 2 hidden) ──▶ sigmoid ──▶ rgb

Config (JSON-able, tiny-cuda-nn schema)::

    {"position_encoding": {"otype": "HashGrid", ...},
     "density_network": {"otype": "FullyFusedMLP", "n_neurons": 64, "n_hidden_layers": 1, ...},
     "n_density_outputs": 16,
     "direction_encoding": {"otype": "SphericalHarmonics", "degree": 4},
     "rgb_network": {"otype": "FullyFusedMLP", "n_neurons": 64, "n_hidden_layers": 2, ...},
     "box": [low, high]}

Positions arrive in unit-cube coordinates; the scene box ``[low, high]³`` is mapped onto the
position encoding's domain (``input_domain``: ``[0, 1]`` for tcnn encodings, ``[−1, 1]`` for
inrkit's coordinate encodings), and unit directions ``d`` onto the direction encoding's
(tcnn's SH encoding takes ``(d + 1)/2``, as instant-ngp feeds it).
Any network or encoding that :func:`~inrkit.fields.build_network` / :func:`~inrkit.encodings.build_encoding`
knows can be used, e.g. a SIREN density network (SL²A's NeRF table).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from inrkit.encodings import build_encoding
from inrkit.fields import build_network

MAX_LOG_DENSITY = 15.0


DOMAINS = {"unit": (0.0, 1.0), "signed": (-1.0, 1.0)}


def _to_domain(values: torch.Tensor, low: float, high: float, encoding: nn.Module) -> torch.Tensor:
    """Affine map of ``[low, high]`` onto the encoding's input domain."""
    target_low, target_high = DOMAINS[encoding.input_domain]
    return (values - low) / (high - low) * (target_high - target_low) + target_low


class NerfField(nn.Module):
    """``(positions (N, 3), directions (N, 3)) → (σ (N,), rgb (N, 3))``; see the module docstring."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        self.box_low, self.box_high = (float(v) for v in config["box"])
        n_features = int(config.get("n_density_outputs", 16))
        self.position_encoding = build_encoding(3, config["position_encoding"])
        self.density_network = build_network(self.position_encoding.n_output_dims, n_features, config["density_network"])
        self.direction_encoding = build_encoding(3, config["direction_encoding"])
        self.rgb_network = build_network(n_features + self.direction_encoding.n_output_dims, 3, config["rgb_network"])

    def _features(self, positions: torch.Tensor) -> torch.Tensor:
        encoded = self.position_encoding(_to_domain(positions, self.box_low, self.box_high, self.position_encoding))
        return self.density_network(encoded).float()

    @staticmethod
    def _sigma(features: torch.Tensor) -> torch.Tensor:
        """``σ = exp(h_0)`` (clamped at ``exp(15)`` for stability)."""
        return torch.exp(features[:, 0].clamp(max=MAX_LOG_DENSITY))

    def density(self, positions: torch.Tensor) -> torch.Tensor:
        """Density ``σ (N,)`` at unit-cube ``positions (N, 3)``."""
        return self._sigma(self._features(positions))

    def density_and_features(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``σ (N,)`` and the density network's outputs ``h (N, 16)`` (the colour network's input)."""
        features = self._features(positions)
        return self._sigma(features), features

    def encode_directions(self, directions: torch.Tensor) -> torch.Tensor:
        """``enc(d)`` of unit ``directions (N, 3)`` → ``(N, n_dir_features)``.

        Directions are per ray: encode each ray once and index the result by sample, rather than
        encoding every sample (the SH encoding costs more than the colour MLP on a CPU).
        """
        return self.direction_encoding(_to_domain(directions, -1.0, 1.0, self.direction_encoding))

    def colour(self, features: torch.Tensor, encoded_directions: torch.Tensor) -> torch.Tensor:
        """``rgb (N, 3) = sigmoid(colour_net([h ‖ enc(d)]))`` from ``h (N, 16)`` and ``enc(d) (N, n_dir_features)``."""
        inputs = torch.cat((features, encoded_directions.to(features.dtype)), dim=1)
        return torch.sigmoid(self.rgb_network(inputs).float())

    def forward(self, positions: torch.Tensor, directions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sigma, features = self.density_and_features(positions)
        return sigma, self.colour(features, self.encode_directions(directions))

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
