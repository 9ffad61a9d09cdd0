"""Frequency encodings for coordinate MLPs.

* :class:`PositionalEncoding` — NeRF positional encoding as in the SIREN repository
  (``PosEncodingNeRF``): ``[x, sin(2^0 π x_1), cos(2^0 π x_1), sin(2^0 π x_2), …]``.
* :class:`GaussianFourier` — Tancik et al.'s random Fourier features
  ``γ(v) = [sin(2π B v'), cos(2π B v')]`` with ``B ~ N(0, σ²)`` and ``v' = (v+1)/2 ∈ [0,1)``
  (the official notebook works on [0,1) coordinates).
* :class:`Frequency` — tiny-cuda-nn's ``Frequency`` encoding on [0,1] inputs:
  per dimension ``[sin(2^0 π x), cos(2^0 π x), sin(2^1 π x), …]`` (dimension outer, octave, then sin/cos).
* :class:`Identity` — ``y = scale·x + offset`` (tcnn's keys; the defaults give ``y = x``).

inrkit's own encodings see the field's coordinates in [-1,1] (``input_domain = "signed"``);
tcnn's encodings see ``(x + 1)/2 ∈ [0,1]`` as tcnn does (``input_domain = "unit"``).

The frequency encodings have bands for progressive training (:mod:`inrkit.encodings.bands`):
octaves for :class:`PositionalEncoding` and :class:`Frequency`, single frequencies ordered by
``‖B_i‖`` for :class:`GaussianFourier`. The identity, where there is one, is always on; otherwise the
lowest band is, and the others are the scheduled bands ``0 … n_bands − 1``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from inrkit.encodings.bands import BandWeights


def nyquist_frequencies(samples: int) -> int:
    """Number of octaves below the Nyquist rate for ``samples`` per axis: ``⌊log2(samples/4)⌋``.

    The SIREN repository's rule; SL²A's ReLU+PE baseline calls it with ``samples = max(H, W)/3``
    (5 octaves at 512 px, giving the published 204,035 parameters).
    """
    return max(1, math.floor(math.log2(max(samples, 8) / 4.0)))


class Identity(nn.Module):
    """``y = scale·x + offset`` on inrkit's [-1,1] coordinates (tcnn's ``Identity`` keys)."""

    input_domain = "signed"

    def __init__(self, n_input_dims: int, scale: float = 1.0, offset: float = 0.0) -> None:
        super().__init__()
        self.n_output_dims = n_input_dims
        self.scale, self.offset = float(scale), float(offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0 and self.offset == 0.0:
            return x
        return self.scale * x + self.offset


class Frequency(nn.Module):
    """tcnn's ``Frequency``: ``(N, d) -> (N, 2·n·d)`` on inputs in [0,1].

    Output ``j`` encodes dimension ``j // 2n`` at octave ``k = (j // 2) mod n``:
    ``sin(2^k·π·x)`` for even ``j``, ``cos(2^k·π·x)`` for odd ``j``. Bands: octave 0 is always on,
    octave ``k ≥ 1`` is band ``k − 1`` (``n − 1`` bands).
    """

    input_domain = "unit"

    def __init__(self, n_input_dims: int, n_frequencies: int = 12) -> None:
        super().__init__()
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(n_frequencies, dtype=torch.float32),
                             persistent=False)
        self.n_output_dims = 2 * n_frequencies * n_input_dims
        band = [(channel // 2) % max(n_frequencies, 1) - 1 for channel in range(self.n_output_dims)]
        self.register_buffer("channel_band", torch.tensor(band), persistent=False)  # Python ints: see GridEncoding
        self.bands = BandWeights(max(n_frequencies - 1, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = x[:, :, None] * self.frequencies  # (N, d, n)
        encoded = torch.stack((torch.sin(phase), torch.cos(phase)), dim=-1).flatten(1)
        return self.bands(encoded, self.channel_band, x)


class PositionalEncoding(nn.Module):
    """NeRF positional encoding ``(N, d) -> (N, d·(include_input + 2L))``.

    For octave ``k < L`` and input dimension ``j`` (k outer, j inner), the pair
    ``sin(2^k·π·x_j), cos(2^k·π·x_j)``; the raw ``x`` first when ``include_input``.
    ``include_pi=False`` gives FINER's PEMLP variant ``sin(2^k·x)``. Bands (BARF's): with the
    identity, the identity is always on and octave ``k`` is band ``k`` (``L`` bands); without it,
    octave 0 is always on and octave ``k ≥ 1`` is band ``k − 1``.
    """

    input_domain = "signed"

    def __init__(self, n_input_dims: int, n_frequencies: int, include_input: bool = True, include_pi: bool = True):
        super().__init__()
        self.include_input = include_input
        factor = math.pi if include_pi else 1.0
        self.register_buffer("frequencies", factor * 2.0 ** torch.arange(n_frequencies, dtype=torch.float32), persistent=False)
        self.n_output_dims = n_input_dims * (int(include_input) + 2 * n_frequencies)
        first = 0 if include_input else 1  # the first scheduled octave
        band = [-1] * (n_input_dims * int(include_input))  # the identity: always on
        band += [channel // (2 * n_input_dims) - first for channel in range(2 * n_frequencies * n_input_dims)]
        self.register_buffer("channel_band", torch.tensor(band), persistent=False)  # Python ints: see GridEncoding
        self.bands = BandWeights(max(n_frequencies - first, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = self.frequencies[:, None] * x[:, None, :]  # (N, L, d)
        pairs = torch.stack((torch.sin(phase), torch.cos(phase)), dim=-1)  # (N, L, d, 2)
        encoded = pairs.flatten(1)
        encoded = torch.cat((x, encoded), dim=1) if self.include_input else encoded
        return self.bands(encoded, self.channel_band, x)


class GaussianFourier(nn.Module):
    """Random Fourier features ``(N, d) -> (N, 2m)``: ``[sin(2πBv'), cos(2πBv')]``, ``v' = (v+1)/2``.

    ``B`` (shape ``(m, d)``, entries ``N(0, σ²)``) is drawn from ``seed`` and saved with the weights.
    Bands (SAPE's order): one per frequency, ranked by ``‖B_i‖``; the lowest is always on and the
    ``r``-th lowest (``r ≥ 1``) is band ``r − 1``. ``B`` keeps its drawn order (runs saved before bands
    existed load unchanged); the ranking is computed from it.
    """

    input_domain = "signed"

    def __init__(self, n_input_dims: int, n_features: int = 256, sigma: float = 10.0, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(int(seed))
        self.register_buffer("B", sigma * torch.randn(n_features, n_input_dims, generator=generator))
        self.n_output_dims = 2 * n_features
        self.bands = BandWeights(n_features - 1)

    @property
    def channel_band(self) -> torch.Tensor:
        """``(2m,)``: the band of each output, ``rank(‖B_i‖) − 1`` for both the sine and the cosine of frequency ``i``."""
        rank = torch.empty(self.B.shape[0], dtype=torch.long, device=self.B.device)
        rank[torch.argsort(self.B.norm(dim=1), stable=True)] = torch.arange(self.B.shape[0], device=self.B.device)
        return (rank - 1).repeat(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phase = (2.0 * math.pi) * ((x + 1.0) * 0.5) @ self.B.T
        encoded = torch.cat((torch.sin(phase), torch.cos(phase)), dim=1)
        return self.bands(encoded, self.channel_band, x) if self.bands.active else encoded
