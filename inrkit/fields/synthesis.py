"""The synthesis network of a latent field: a per-pixel MLP (1×1 convolutions) and 3×3 residual refinements.

For the K latent features ``z(p)`` of pixel ``p`` (:mod:`inrkit.encodings.latent_grids`)::

    h_0 = z(p)                                      # (K,)
    h_i = ReLU(A_i h_{i−1} + a_i),  i = 1 … L       # n_neurons each (n_hidden_layers = L)
    m(p) = B h_L + b                                # (C,)  the per-pixel prediction
    u_0 = m;  u_j = φ_j(u_{j−1} + R_j ⋆ u_{j−1} + r_j),  j = 1 … J     # 3×3 convolutions over the C-channel
    x̂ = u_J                                         #   image, replicate padding; φ_j = ReLU but φ_J = identity

(``n_refine`` = J, 0 … :data:`MAX_REFINE`.) Cool-Chic's synthesis has the same shape: one hidden 1×1 layer
(8 / 16 / 48 wide in its low / medium / high presets), a linear 1×1 layer to the C channels, then two 3×3
residual convolutions, the first followed by a ReLU after the residual sum. ``b`` starts at ½ (the middle of
the [0, 1] image range) and every ``R_j``, ``r_j`` at zero (Cool-Chic's start for residual layers), so an
untrained field is about grey and each refinement starts as ``u_j = ReLU(u_{j−1})``: the identity on an image
in [0, 1] that passes gradient wherever a pixel is positive. (A ReLU inside the residual branch,
``u_{j−1} + ReLU(R_j ⋆ u_{j−1} + r_j)``, has no such anchor: started at a bias of 0.01, the first optimiser
step moved the biases by ±lr = 0.02 and two of the three channels never passed gradient again; on kodim03
and kodim05 the whole branch ended at zero.) Cost in multiplications per pixel: ``K·n + (L−1)·n² + n·C + J·9·C²``.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from inrkit.backends import cpu_conv, cpu_mlp
from inrkit.errors import ConfigError, Rule, check_section

MAX_REFINE = 3
SYNTHESIS_SCHEMA = {"n_neurons": Rule("int", 1, 256), "n_hidden_layers": Rule("int", 1, 8),
                    "n_refine": Rule("int", 0, MAX_REFINE)}


class Synthesis(nn.Module):
    """Per-pixel MLP ``K → n → … → C`` with ReLU, then ``n_refine`` 3×3 residual convolutions (module docstring)."""

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
        n_refine = int(config.get("n_refine", 2))
        self.refine = nn.ModuleList(nn.Conv2d(n_output_dims, n_output_dims, 3) for _ in range(n_refine))
        for conv in self.refine:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.n_output_dims = n_output_dims

    def pointwise(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, K)`` features → ``(N, C)`` per-pixel prediction ``m``."""
        return self.channels_first(features.T).T

    def channels_first(self, features: torch.Tensor) -> torch.Tensor:
        """``(K, N)`` features → ``(C, N)`` predictions: the fused CPU kernel (:mod:`inrkit.backends.cpu_mlp`)
        when it applies, else :meth:`reference_channels_first`."""
        layers = [*self.hidden, self.output]
        if cpu_mlp.supports(layers, [features, *self.parameters()]):
            return cpu_mlp.mlp_channels_first(features, layers)
        return self.reference_channels_first(features)

    def reference_channels_first(self, features: torch.Tensor) -> torch.Tensor:
        """:meth:`channels_first` in PyTorch: ``h ← ReLU(A·h + a)`` on ``(width, N)`` activations (a short, wide
        matrix product: 1.6× faster on a CPU than ``(N, K)`` rows through ``nn.Linear``)."""
        h = features
        for layer in self.hidden:
            h = torch.relu(torch.addmm(layer.bias[:, None], layer.weight, h))
        return torch.addmm(self.output.bias[:, None], self.output.weight, h)

    def refine_step(self, index: int, patches: torch.Tensor) -> torch.Tensor:
        """Refinement ``index`` (``j − 1``) at the centres of ``(N, C, 3, 3)`` patches of ``u_{j−1}`` → ``(N, C)``."""
        return self._activated(index, patches[:, :, 1, 1] + self.refine[index](patches)[:, :, 0, 0])

    def _activated(self, index: int, residual_sum: torch.Tensor) -> torch.Tensor:
        """``φ_j`` of refinement ``index`` (``j − 1``) on ``u_{j−1} + R_j ⋆ u_{j−1} + r_j``: ReLU, except the
        identity for the last one."""
        return torch.relu(residual_sum) if index < len(self.refine) - 1 else residual_sum

    def refined(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` per-pixel predictions ``m`` → the refined image ``x̂`` (replicate padding), same shape:
        for one image the CPU kernel (:mod:`inrkit.backends.cpu_conv`) when it applies, else
        :meth:`reference_refined`."""
        if image.shape[0] != 1 or not all(cpu_conv.supports(conv, image[0]) for conv in self.refine):
            return self.reference_refined(image)
        planes = image[0].contiguous()
        for index, conv in enumerate(self.refine):
            planes = self._activated(index, planes + cpu_conv.conv3x3_replicate(planes, conv))
        return planes[None]

    def reference_refined(self, image: torch.Tensor) -> torch.Tensor:
        """:meth:`refined` in PyTorch. Channels-last memory: oneDNN's 3-channel 3×3 convolution runs forward and
        backward 2× faster so."""
        image = image.contiguous(memory_format=torch.channels_last)
        for index, conv in enumerate(self.refine):
            image = self._activated(index, image + conv(F.pad(image, (1, 1, 1, 1), mode="replicate")))
        return image

    def dense(self, features: torch.Tensor) -> torch.Tensor:
        """``(1, K, H, W)`` upsampled latents → ``(H, W, C)`` image."""
        _, k, height, width = features.shape
        image = self.channels_first(features[0].reshape(k, -1)).reshape(1, self.n_output_dims, height, width)
        return self.refined(image)[0].permute(1, 2, 0)

    def macs_per_pixel(self) -> int:
        """Multiplications per pixel of the MLP and the refinement."""
        macs = sum(layer.in_features * layer.out_features for layer in (*self.hidden, self.output))
        return macs + 9 * self.n_output_dims**2 * len(self.refine)
