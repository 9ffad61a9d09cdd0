"""The first λ of a latent-codec encode aimed at a rate: the slope of WebP's rate–distortion curve there.

At the optimum of ``D + λ·R`` the weight λ is the negative slope of the codec's operational
rate–distortion curve, ``λ = −dD/dR``. The latent codec's curve lies near WebP's (BENCHMARKS.md), and
WebP encodes a 768×512 image in tens of milliseconds, so :func:`webp_slope` measures WebP's curve on the
image itself: MSE (8-bit pixels scaled to [0, 1]) and bits per pixel at qualities :data:`WEBP_QUALITIES`,
a power law ``D = c·R^a`` fitted through the points within a factor 2 of the target rate ``R*`` (the
three nearest when fewer than two are), and ``λ = −a·D(R*)/R*``.

This puts the start where the image needs it: at 0.3 bpp the controller ended kodim03 at λ 0.0011 and
kodim05 above 0.02, a factor 20 apart that a formula of the rate alone (:func:`formula_lambda`) cannot
know. WebP's slope is mostly 1.2–1.8× above the λ where the controller ended (kodim01, 03, 07, 12 at 0.2,
0.3 and 0.5 bpp), so λ falls while training; a falling λ gave kodim01 0.8 dB more at 0.3 bpp than a λ
held at its end value from the start (:func:`inrkit.api.latent_compress.initial_lambda`).
"""

from __future__ import annotations

import io

import numpy as np

WEBP_QUALITIES = range(0, 101, 10)
WEBP_METHOD = 4  # libwebp's speed/effort (0–6): 0.5 s for the 11 qualities of a 768×512 image
LAMBDA_LIMITS = (1e-5, 1.0)  # a slope outside is clipped (a flat or noisy image)
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def webp_available() -> bool:
    """True when Pillow can write WebP."""
    from PIL import features

    return bool(features.check("webp"))


def webp_curve(pixels: np.ndarray, qualities: range = WEBP_QUALITIES) -> list[tuple[float, float]]:
    """``(bpp, MSE)`` of WebP (``method`` :data:`WEBP_METHOD`) on the ``(H, W, C)`` uint8 image (C = 1, 3 or 4)
    at each quality, MSE over pixels and channels on the [0, 1] scale."""
    from PIL import Image

    height, width, channels = pixels.shape
    mode = _MODES[channels]
    source = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    target = pixels.astype(np.float64) / 255.0
    curve = []
    for quality in qualities:
        buffer = io.BytesIO()
        source.save(buffer, "WEBP", quality=quality, method=WEBP_METHOD)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(mode), dtype=np.float64) / 255.0
        curve.append((8.0 * buffer.tell() / (height * width), float(np.mean((decoded.reshape(target.shape) - target) ** 2))))
    return sorted(curve)


def rd_slope(curve: list[tuple[float, float]], bpp: float) -> float:
    """``−dD/dR`` at ``bpp`` of a ``(bpp, MSE)`` curve, by the power-law fit of the module docstring."""
    rates = np.array([r for r, _ in curve])
    errors = np.maximum(np.array([d for _, d in curve]), 1e-12)
    near = np.flatnonzero((rates > bpp / 2) & (rates < bpp * 2))
    if len(near) < 2:
        near = np.argsort(np.abs(np.log(rates / bpp)))[:3]
    exponent, offset = np.polyfit(np.log(rates[near]), np.log(errors[near]), 1)
    return float(-exponent * np.exp(offset) * bpp**exponent / bpp)


def formula_lambda(target_bpp: float) -> float:
    """``0.004·(0.3/R)^1.1``: the start that does not look at the image (used where Pillow has no WebP)."""
    return 0.004 * (0.3 / target_bpp) ** 1.1


def webp_slope(pixels: np.ndarray, target_bpp: float) -> float:
    """λ to start an encode of the ``(H, W, C)`` uint8 image aimed at ``target_bpp`` (module docstring)."""
    if pixels.shape[2] not in _MODES or not webp_available():
        return formula_lambda(target_bpp)
    slope = rd_slope(webp_curve(pixels), target_bpp)
    if not np.isfinite(slope):
        return formula_lambda(target_bpp)
    return float(np.clip(slope, *LAMBDA_LIMITS))
