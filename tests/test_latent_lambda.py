"""The first λ of a ``--target-bpp`` encode: the slope of WebP's rate–distortion curve on the image."""

from __future__ import annotations

import numpy as np
import pytest

from inrkit.api import latent_lambda


def textured_image(height: int = 64, width: int = 96, channels: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise of growing strength to the right: a curve with a range of rates."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    base = np.stack([0.5 + 0.4 * np.sin(6 * x + c) * np.cos(4 * y) for c in range(channels)], -1)
    noisy = base + rng.normal(0, 0.15, base.shape) * x[..., None]
    return np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)


def test_slope_of_a_power_law_is_exact():
    # D = 0.01·R^-1.5: −dD/dR = 0.015·R^-2.5
    curve = [(r, 0.01 * r**-1.5) for r in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)]
    for rate in (0.1, 0.3, 0.7):
        assert latent_lambda.rd_slope(curve, rate) == pytest.approx(0.015 * rate**-2.5, rel=1e-9)
    # outside the curve's range: the three nearest points (here the lowest), extrapolated
    assert latent_lambda.rd_slope(curve, 0.02) == pytest.approx(0.015 * 0.02**-2.5, rel=1e-9)


@pytest.mark.skipif(not latent_lambda.webp_available(), reason="Pillow without WebP")
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_webp_curve_falls_and_the_start_is_steeper_at_lower_rates(channels):
    pixels = textured_image(channels=channels)
    curve = latent_lambda.webp_curve(pixels)
    rates = [r for r, _ in curve]
    assert rates == sorted(rates) and len(curve) == len(latent_lambda.WEBP_QUALITIES)
    assert curve[0][1] > curve[-1][1] > 0  # more bits, less error
    low, high = latent_lambda.webp_slope(pixels, 0.5), latent_lambda.webp_slope(pixels, 2.0)
    assert latent_lambda.LAMBDA_LIMITS[0] <= high < low <= latent_lambda.LAMBDA_LIMITS[1]


def test_without_webp_the_start_is_the_formula(monkeypatch):
    monkeypatch.setattr(latent_lambda, "webp_available", lambda: False)
    assert latent_lambda.webp_slope(textured_image(), 0.3) == latent_lambda.formula_lambda(0.3) == pytest.approx(0.004)
    assert latent_lambda.webp_slope(textured_image(channels=2), 0.3) == pytest.approx(0.004)  # no WebP mode for 2
