"""The synthesis network of a latent field: a per-pixel MLP (1×1 convolutions) and a 3×3 residual refinement.

For the K latent features ``z(p)`` of pixel ``p`` (:mod:`inrkit.encodings.latent_grids`)::

    h_0 = z(p)                                      # (K,)
    h_i = ReLU(A_i h_{i−1} + a_i),  i = 1 … L       # n_neurons each (n_hidden_layers = L)
    m(p) = B h_L + b                                # (C,)  the per-pixel prediction
    x̂(p) = m(p) + Σ_{|d|∞ ≤ 1} R_d m(p + d) + r      # 3×3 convolution over the C-channel image m, replicate
                                                    #   padding (with "refine": true; else x̂ = m)

``b`` starts at ½ (the middle of the [0, 1] image range) and ``R, r`` at zero, so an untrained field is grey.
Cost in multiplications per pixel: ``K·n + (L−1)·n² + n·C`` (+ ``9·C²`` with the refinement).
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inrkit.errors import ConfigError, Rule, check_section

SYNTHESIS_SCHEMA = {"n_neurons": Rule("int", 1, 256), "n_hidden_layers": Rule("int", 1, 8), "refine": Rule("bool")}


class Synthesis(nn.Module):
    """Per-pixel MLP ``K → n → … → C`` with ReLU and an optional 3×3 residual refinement (module docstring)."""

    def __init__(self, n_input_dims: int, n_output_dims: int, config: dict[str, Any]) -> None:
        super().__init__()
        check_section("network", config, SYNTHESIS_SCHEMA)
        if config.get("otype") != "Synthesis":
            raise ConfigError(f"a latent field's network must be 'Synthesis', got {config.get('otype')!r:.40}")
        width, depth = int(config.get("n_neurons", 16)), int(config.get("n_hidden_layers", 2))
        sizes = [n_input_dims] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.output = nn.Linear(width, n_output_dims)
        with torch.no_grad():
            self.output.bias.fill_(0.5)
        self.refine = nn.Conv2d(n_output_dims, n_output_dims, 3) if config.get("refine", True) else None
        if self.refine is not None:
            nn.init.zeros_(self.refine.weight)
            nn.init.zeros_(self.refine.bias)
        self.n_output_dims = n_output_dims

    def pointwise(self, features: torch.Tensor) -> torch.Tensor:
        """``(..., K)`` features → ``(..., C)`` per-pixel prediction ``m``."""
        h = features
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return self.output(h)

    def refined(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` per-pixel predictions → the refined image (replicate padding), same shape."""
        if self.refine is None:
            return image
        return image + self.refine(F.pad(image, (1, 1, 1, 1), mode="replicate"))

    def dense(self, features: torch.Tensor) -> torch.Tensor:
        """``(1, K, H, W)`` upsampled latents → ``(H, W, C)`` image."""
        _, k, height, width = features.shape
        pixels = self.pointwise(features[0].reshape(k, -1).T)  # (H·W, C)
        image = pixels.T.reshape(1, self.n_output_dims, height, width)
        return self.refined(image)[0].permute(1, 2, 0)

    def macs_per_pixel(self) -> int:
        """Multiplications per pixel of the MLP and the refinement."""
        macs = sum(layer.in_features * layer.out_features for layer in (*self.hidden, self.output))
        return macs + (9 * self.n_output_dims**2 if self.refine is not None else 0)
