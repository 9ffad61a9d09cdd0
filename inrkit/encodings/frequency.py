"""Frequency encodings for coordinate MLPs.

* :class:`PositionalEncoding` — NeRF positional encoding as in the SIREN repository
  (``PosEncodingNeRF``): ``[x, sin(2^0 π x_1), cos(2^0 π x_1), sin(2^0 π x_2), …]``.
* :class:`GaussianFourier` — Tancik et al.'s random Fourier features
  ``γ(v) = [sin(2π B v'), cos(2π B v')]`` with ``B ~ N(0, σ²)`` and ``v' = (v+1)/2 ∈ [0,1)``
  (the official notebook works on [0,1) coordinates).
* :class:`Identity` — no encoding.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

ENCODING_OTYPES = ("Identity", "PositionalEncoding", "GaussianFourier")


def nyquist_frequencies(samples: int) -> int:
    """Number of octaves below the Nyquist rate for ``samples`` per axis: ``⌊log2(samples/4)⌋``.

    The SIREN repository's rule; SL²A's ReLU+PE baseline calls it with ``samples = max(H, W)/3``
    (5 octaves at 512 px, giving the published 204,035 parameters).
    """
    return max(1, math.floor(math.log2(max(samples, 8) / 4.0)))


class Identity(nn.Module):
    """``y = x``."""

    def __init__(self, n_input_dims: int) -> None:
        super().__init__()
        self.n_output_dims = n_input_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class PositionalEncoding(nn.Module):
    """NeRF positional encoding ``(N, d) -> (N, d·(include_input + 2L))``.

    For octave ``k < L`` and input dimension ``j`` (k outer, j inner), the pair
    ``sin(2^k·π·x_j), cos(2^k·π·x_j)``; the raw ``x`` first when ``include_input``.
    ``include_pi=False`` gives FINER's PEMLP variant ``sin(2^k·x)``.
    """

    def __init__(self, n_input_dims: int, n_frequencies: int, include_input: bool = True, include_pi: bool = True):
        super().__init__()
        self.include_input = include_input
        factor = math.pi if include_pi else 1.0
        self.register_buffer("frequencies", factor * 2.0 ** torch.arange(n_frequencies, dtype=torch.float32), persistent=False)
        self.n_output_dims = n_input_dims * (int(include_input) + 2 * n_frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = self.frequencies[:, None] * x[:, None, :]  # (N, L, d)
        pairs = torch.stack((torch.sin(phase), torch.cos(phase)), dim=-1)  # (N, L, d, 2)
        encoded = pairs.flatten(1)
        return torch.cat((x, encoded), dim=1) if self.include_input else encoded


class GaussianFourier(nn.Module):
    """Random Fourier features ``(N, d) -> (N, 2m)``: ``[sin(2πBv'), cos(2πBv')]``, ``v' = (v+1)/2``.

    ``B`` (shape ``(m, d)``, entries ``N(0, σ²)``) is drawn from ``seed`` and saved with the weights.
    """

    def __init__(self, n_input_dims: int, n_features: int = 256, sigma: float = 10.0, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(int(seed))
        self.register_buffer("B", sigma * torch.randn(n_features, n_input_dims, generator=generator))
        self.n_output_dims = 2 * n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = (2.0 * math.pi) * ((x + 1.0) * 0.5) @ self.B.T
        return torch.cat((torch.sin(phase), torch.cos(phase)), dim=1)


def build_encoding(n_input_dims: int, config: dict[str, Any]) -> nn.Module:
    """Build an encoding from its config dict (``{"otype": ..., ...}``)."""
    otype = config.get("otype", "Identity")
    if otype == "Identity":
        return Identity(n_input_dims)
    if otype == "PositionalEncoding":
        return PositionalEncoding(
            n_input_dims,
            int(config["n_frequencies"]),
            bool(config.get("include_input", True)),
            bool(config.get("include_pi", True)),
        )
    if otype == "GaussianFourier":
        return GaussianFourier(
            n_input_dims, int(config.get("n_features", 256)), float(config.get("sigma", 10.0)), int(config.get("seed", 0))
        )
    raise ValueError(f"unknown encoding otype {otype!r}; choose one of {', '.join(ENCODING_OTYPES)}")
