"""The latent field: latent grids (the encoding), a synthesis network and the ARM that codes the grids.

Config (a Field config whose encoding is ``LatentGrids``)::

    {"n_input_dims": 2, "n_output_dims": 3,
     "encoding": {"otype": "LatentGrids", "height": 512, "width": 768, "n_levels": 7},
     "network":  {"otype": "Synthesis", "n_neurons": 16, "n_hidden_layers": 1, "n_refine": 2},
     "arm":      {"otype": "ARM", "n_context": 12, "n_neurons": 16, "n_hidden_layers": 2},
     "optimizer": {"otype": "SOAP"}}    # optional: how the Trainer trains it (inrkit.train.optim), not coded

Like every field it maps ``(N, 2)`` coordinates to ``(N, C)`` values in [0, 1] (so inrkit renders it at any
size): the latent features are read at the coordinates (:class:`~inrkit.encodings.latent_grids.LatentGrids`),
the per-pixel MLP runs on them and, for each 3×3 refinement, on those of the 8 neighbours one native pixel
away (clamped to the image's pixel centres), whose 3×3 convolution is added. At the native pixel centres
this equals the dense decoder :meth:`LatentField.image` (replicate padding) to float rounding.

Training reads the grids through ``encoding.mode`` (soft rounding with noise, or exact rounding) and
:meth:`LatentField.rate_distortion` returns the image and the ARM's rate in bits in one pass.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from inrkit.encodings.latent_grids import LatentGrids
from inrkit.errors import ConfigError, Rule, check_section
from inrkit.fields.arm import ARM, PROBABILITY_FLOOR
from inrkit.fields.synthesis import Synthesis

LATENT_FIELD_SCHEMA = {"n_input_dims": Rule("int", 2, 2), "n_output_dims": Rule("int", 1, 4)}


def is_latent_config(config: Any) -> bool:
    """True for the config of a :class:`LatentField` (its encoding is ``LatentGrids``)."""
    return isinstance(config, dict) and isinstance(config.get("encoding"), dict) \
        and config["encoding"].get("otype") == "LatentGrids"


class LatentField(nn.Module):
    """Latent grids + synthesis + ARM, rebuilt from ``config`` alone (module docstring)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        check_section("field", config, LATENT_FIELD_SCHEMA)
        for key in ("encoding", "network", "arm"):
            if not isinstance(config.get(key), dict):
                raise ConfigError(f"latent field config needs the section {key!r}")
        self.config = copy.deepcopy(config)
        self.n_input_dims = 2
        self.n_output_dims = int(config.get("n_output_dims", 3))
        self.encoding = LatentGrids(2, config["encoding"])
        self.network = Synthesis(self.encoding.n_output_dims, self.n_output_dims, config["network"])
        self.arm = ARM(config["arm"])

    @property
    def height(self) -> int:
        return self.encoding.height

    @property
    def width(self) -> int:
        return self.encoding.width

    def image(self, grids: list[torch.Tensor] | None = None, height: int | None = None,
              width: int | None = None) -> torch.Tensor:
        """``(H, W, C)`` decoded image of ``grids`` (default: the grids as ``encoding.mode`` reads them),
        unclamped; ``height``/``width`` render at another size (the refinement then acts at that spacing)."""
        grids = self.encoding.quantised() if grids is None else grids
        return self.network.dense(self.encoding.upsample(grids, height, width))

    def rate_bits(self, grids: list[torch.Tensor], floor: float = PROBABILITY_FLOOR) -> torch.Tensor:
        """Bits of all ``grids`` under the ARM (a scalar), probabilities clamped below at ``floor``: the training
        loss's by default, :data:`~inrkit.fields.arm.CODER_PROBABILITY_FLOOR` for the rate a file will have."""
        return self.arm.bits(grids, floor)

    def rate_distortion(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(image (H, W, C), rate in bits)`` of one draw of the grids as ``encoding.mode`` reads them."""
        grids = self.encoding.quantised()
        return self.image(grids), self.rate_bits(grids)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """``(N, 2)`` → ``(N, C)`` (module docstring)."""
        return self._refined_at(coords, len(self.network.refine))

    def _refined_at(self, coords: torch.Tensor, depth: int) -> torch.Tensor:
        """``u_depth`` (:mod:`inrkit.fields.synthesis`) at ``(N, 2)`` coordinates → ``(N, C)``: refinement
        ``depth`` reads ``u_{depth−1}`` at the 8 neighbours one native pixel away, clamped to the pixel centres
        (the dense decoder's replicate padding), so ``depth`` refinements evaluate the MLP at 9^depth points."""
        if depth == 0:
            return self.network.pointwise(self.encoding(coords))
        step = coords.new_tensor([2.0 / self.width, 2.0 / self.height])
        low, high = step / 2 - 1, 1 - step / 2
        shifts = coords.new_tensor([[dx, dy] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]) * step  # (9, 2)
        points = torch.maximum(torch.minimum(coords[:, None, :] + shifts, high), low)  # (N, 9, 2)
        values = self._refined_at(points.reshape(-1, 2), depth - 1).reshape(len(coords), 9, -1)
        patches = values.transpose(1, 2).reshape(len(coords), self.n_output_dims, 3, 3)
        return self.network.refine_step(depth - 1, patches)

    @property
    def n_params(self) -> int:
        """Network parameters (synthesis + ARM); the latents are counted by ``encoding.n_latents``."""
        return sum(p.numel() for p in (*self.network.parameters(), *self.arm.parameters()))

    def macs_per_pixel(self) -> float:
        """Decoder multiplications per pixel: ARM per latent × latents per pixel, bilinear upsampling
        (4 per coarse grid), synthesis."""
        pixels = self.height * self.width
        upsampling = 4 * (self.encoding.n_levels - 1)
        return self.arm.macs_per_latent() * self.encoding.n_latents / pixels + upsampling + self.network.macs_per_pixel()

    def training_hooks(self, seed: int) -> list:
        """No step hooks of its own (the rate-distortion schedule belongs to the compression workflow)."""
        return []
