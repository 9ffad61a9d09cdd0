"""Shared fixtures: smooth generated images (sums of low-frequency sinusoids, values in [0, 1])."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import inrkit
from inrkit.io.images import write_image


def smooth_image(height: int = 32, width: int = 32, channels: int = 3, seed: int = 0) -> np.ndarray:
    """``(H, W, C)`` float32 in [0, 1]: per channel a sum of three sinusoids of 0.5-2 periods per image."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    y, x = y / height, x / width
    image = np.zeros((height, width, channels))
    for c in range(channels):
        for _ in range(3):
            fx, fy = rng.uniform(0.5, 2.0, 2)
            image[..., c] += np.sin(2 * np.pi * (fx * x + fy * y) + rng.uniform(0, 2 * np.pi))
        image[..., c] -= image[..., c].min()
        image[..., c] /= image[..., c].max()
    return image.astype(np.float32)


def to_uint(image: np.ndarray, bits: int = 8) -> np.ndarray:
    """Quantise a [0, 1] image to uint8 or uint16."""
    dtype, top = (np.uint8, 255) if bits == 8 else (np.uint16, 65535)
    return np.round(np.clip(image, 0, 1) * top).astype(dtype)


@pytest.fixture
def make_image():
    """``make_image(height, width, channels, seed)`` -> smooth float32 array in [0, 1]."""
    return smooth_image


@pytest.fixture
def smooth_png(tmp_path: Path):
    """``smooth_png(name, height, width, channels, bits)`` writes a smooth PNG into ``tmp_path`` and returns its path."""

    def make(name: str = "image.png", height: int = 24, width: int = 32, channels: int = 3, bits: int = 8, seed: int = 0) -> Path:
        return write_image(tmp_path / name, to_uint(smooth_image(height, width, channels, seed), bits))

    return make


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> inrkit.Run:
    """A small fitted SIREN run (24x32 RGB PNG, width 32, 40 steps) shared by read-only tests."""
    folder = tmp_path_factory.mktemp("small_run")
    png = write_image(folder / "source.png", to_uint(smooth_image(24, 32, 3, seed=1)))
    return inrkit.fit(png, model="siren", out=folder / "run", steps=40, width=32, depth=3, eval_every=20,
                      device="cpu", quiet=True)


@pytest.fixture
def flush_denormal():
    """Turn flush-to-zero on for one test and off again afterwards (torch has no getter for the flag)."""
    supported = torch.set_flush_denormal(True)
    yield supported
    torch.set_flush_denormal(False)
