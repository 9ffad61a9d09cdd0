"""An image to code with a latent field: the loss is rate–distortion, ``D + λ·R`` (Cool-Chic, C3).

For the image ``x`` (``H × W × C`` in [0, 1]) and a :class:`~inrkit.fields.latent_field.LatentField`::

    D = mean over pixels and channels of (x̂ − x)²        # x̂: the field's image of its quantised latents
    R = (bits of the latents under the field's ARM) / (H·W)   # bits per pixel
    loss = D + λ·R

How the latents are quantised while training (soft rounding with Gaussian noise) and the
value of λ are the :class:`RateDistortionImage`'s ``lmbda`` and the field's ``encoding.mode``, which the
compression workflow's step hooks set (:mod:`inrkit.api.latent_compress`). A step always sees the whole
image, so a batch is only a token (``chunkable = False``). :meth:`RateDistortionImage.evaluate` measures
the field as a decoder reads it: latents rounded, PSNR of the 8-bit image, the ARM's estimate of the
latents' bits per pixel (``latent_bpp``; the coded stream is within a fraction of a percent of it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from inrkit import metrics
from inrkit.fields.arm import CODER_PROBABILITY_FLOOR
from inrkit.io.images import write_image
from inrkit.signals.base import Batch, Signal
from inrkit.signals.image import ImageSignal


def quantised_psnr(image: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR (dB) of ``image`` rounded to 8 bits, as the decoder writes it, against ``target`` in [0, 1]."""
    rounded = torch.round(image.clamp(0.0, 1.0) * 255.0) / 255.0
    return metrics.psnr(rounded, target)


class RateDistortionImage(Signal):
    """``D + λ·R`` over a whole image (module docstring); wraps an :class:`ImageSignal`."""

    kind = "image"
    n_input_dims = 2
    loss_is_mse = False
    chunkable = False

    def __init__(self, image: ImageSignal, lmbda: float) -> None:
        self.image = image
        self.n_output_dims = image.n_output_dims
        self.lmbda = float(lmbda)
        self.last_bpp = float("nan")  # the rate term of the latest loss (the proxy's, while noise is on)

    @property
    def samples_per_axis(self) -> int:
        return self.image.samples_per_axis

    @property
    def n_samples(self) -> int:
        return self.image.n_samples

    def to(self, device: torch.device) -> RateDistortionImage:
        self.image.to(device)
        return self

    def sample(self, batch_size: int | None, generator: torch.Generator | None = None) -> Batch:
        token = torch.zeros(1, 2)
        return Batch(token, token)

    def loss(self, field: torch.nn.Module, batch: Batch) -> torch.Tensor:
        image, bits = field.rate_distortion()
        bpp = bits / self.n_samples
        self.last_bpp = float(bpp.detach())
        return torch.mean((image - self.image.pixels) ** 2) + self.lmbda * bpp

    @torch.no_grad()
    def evaluate(self, field: torch.nn.Module) -> dict[str, float]:
        mode = field.encoding.mode
        field.encoding.mode = "exact"
        try:
            grids = field.encoding.quantised()
            image = field.image(grids)
            bpp = float(field.rate_bits(grids, CODER_PROBABILITY_FLOOR)) / self.n_samples
        finally:
            field.encoding.mode = mode
        return {"psnr": quantised_psnr(image, self.image.pixels), "latent_bpp": bpp, "lambda": self.lmbda}

    def write_outputs(self, field: torch.nn.Module, out_dir: Path) -> list[Path]:
        with torch.no_grad():
            mode, field.encoding.mode = field.encoding.mode, "exact"
            image = field.image().cpu().numpy()
            field.encoding.mode = mode
        return [write_image(Path(out_dir) / "reconstruction.png", self.image.denormalise(np.asarray(image)))]

    def config(self) -> dict[str, Any]:
        return self.image.config()
