"""Per-band weights on an encoding's features: the one mechanism of every progressive encoding.

An encoding with frequency bands (octaves, Fourier features, grid levels) maps each output feature
``c`` to a band ``b(c)``: ``-1`` for the part that is always on (the identity, or the lowest band
when there is no identity), ``0 … n_bands − 1`` for the scheduled bands, coarse to fine. The
encoding's output becomes

    y_c = w_{b(c)} · f_c,    w_{−1} = 1,    w_k ∈ [0, 1],

with ``w`` either one vector ``(n_bands,)`` for every sample (BARF, Nerfies, step, level
schedules: :meth:`BandWeights.set`) or a ``(N, n_bands)`` matrix from a spatial mask evaluated at
each sample's coordinates (SAPE: :attr:`BandWeights.spatial`, :mod:`inrkit.encodings.spatial_mask`).
The weights are not trained (no gradient reaches them) and not saved with the weights: a
schedule sets them before each training step (:mod:`inrkit.train.progressive`). With every weight 1
(the default) the features pass through untouched, bit for bit.

Example:
    >>> bands = BandWeights(3)
    >>> bands.set(torch.tensor([1.0, 0.5, 0.0]))
    >>> channel_band = torch.tensor([-1, 0, 1, 2])
    >>> bands(torch.ones(1, 4), channel_band, torch.zeros(1, 2))
    tensor([[1.0000, 1.0000, 0.5000, 0.0000]])
"""

from __future__ import annotations

import torch
from torch import nn

from inrkit.errors import ConfigError


class BandWeights(nn.Module):
    """The weights ``w (n_bands,)`` of one encoding's scheduled bands (module docstring); all 1 at first."""

    def __init__(self, n_bands: int) -> None:
        super().__init__()
        self.n_bands = int(n_bands)
        self.register_buffer("weights", torch.ones(self.n_bands), persistent=False)
        self.all_on = True  # every weight is 1: forward returns the features as they are
        self.n_open = self.n_bands  # bands up to the last one with a weight above 0
        self.hard = True  # the weights are 1 for every band below n_open (and 0 above): a prefix of bands is on
        self.spatial: nn.Module | None = None  # a SpatialBandMask: weights per sample from its coordinates

    def set(self, weights: torch.Tensor) -> None:
        """Use ``weights (n_bands,)``, each in [0, 1], from the next forward pass on."""
        weights = torch.as_tensor(weights, dtype=torch.float32)
        if weights.shape != (self.n_bands,) or not bool(((weights >= 0) & (weights <= 1)).all()):
            raise ConfigError(f"band weights must be {self.n_bands} numbers in [0, 1], got shape {tuple(weights.shape)}")
        self.weights.copy_(weights)
        self.all_on = bool((weights == 1).all())
        on = torch.nonzero(weights > 0)
        self.n_open = int(on[-1]) + 1 if len(on) else 0
        self.hard = bool((weights[: self.n_open] == 1).all())

    @property
    def active(self) -> bool:
        """Whether any feature may be scaled (a weight below 1, or a spatial mask)."""
        return self.spatial is not None or not self.all_on

    def sample_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The weights for the samples at encoding inputs ``x (N, d)``: ``(N, n_bands)`` from the spatial mask,
        else ``(1, n_bands)`` from :meth:`set`."""
        return self.spatial(x) if self.spatial is not None else self.weights[None, :]

    def forward(self, features: torch.Tensor, channel_band: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``features (N, C)`` with channel ``c`` scaled by ``w_{b(c)}``; ``channel_band (C,)`` holds ``b(c)``
        (``-1``: always on); ``x (N, d)`` are the encoding's inputs (for a spatial mask)."""
        if not self.active:
            return features
        weights = self.sample_weights(x)
        padded = torch.cat((torch.ones_like(weights[:, :1]), weights), dim=1)  # w_{-1} = 1 in column 0
        return features * padded[:, channel_band + 1].to(features.dtype)
