"""Rate–distortion points for the report: ``.inrz`` files, and JPEG / WebP (Pillow) on the same images.

Rate is ``8·bytes / pixels`` (bits per pixel, the whole file); distortion the PSNR on 8-bit RGB,
``−10·log10(mean((x − x̂)²)/255²)``. A codec's curve over several images is the mean bpp and mean PSNR at each
quality setting.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np

QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90)
CODECS = {"JPEG": {"format": "JPEG", "optimize": True}, "WebP": {"format": "WEBP", "method": 6}}


def psnr_uint8(reference: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB of two 8-bit arrays of one shape."""
    mse = float(np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def codec_curve(images: list[np.ndarray], codec: str) -> list[tuple[float, float]]:
    """``[(bpp, PSNR)]`` of ``codec`` (``JPEG`` or ``WebP``) at each of :data:`QUALITIES`, means over ``images``
    (8-bit ``(H, W, 3)`` RGB)."""
    from PIL import Image

    points = []
    for quality in QUALITIES:
        rates, psnrs = [], []
        for pixels in images:
            buffer = io.BytesIO()
            Image.fromarray(pixels).save(buffer, quality=quality, **CODECS[codec])
            decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
            rates.append(8.0 * buffer.tell() / (pixels.shape[0] * pixels.shape[1]))
            psnrs.append(psnr_uint8(pixels, decoded))
        points.append((float(np.mean(rates)), float(np.mean(psnrs))))
    return points


def inrz_point(path: Path) -> dict[str, Any] | None:
    """``{"bpp", "psnr", "bytes", "bits", "source"}`` of an image ``.inrz`` file (PSNR as stored by ``compress``),
    or None for other signals or a file that does not decode."""
    from inrkit.api.compress import load, sample_count
    from inrkit.errors import InrkitError

    try:
        decoded = load(path)
    except (InrkitError, OSError):
        return None
    signal = decoded.config.get("signal") or {}
    samples = sample_count(signal) if signal.get("kind") == "image" else None
    if not samples or not isinstance(decoded.metrics.get("psnr"), int | float):
        return None
    bits = next((t.get("bits") for t in decoded.header.get("tensors", []) if t.get("storage") == "quantized"), None)
    return {"bpp": 8.0 * decoded.n_bytes / samples, "psnr": float(decoded.metrics["psnr"]), "bytes": decoded.n_bytes,
            "bits": bits}
