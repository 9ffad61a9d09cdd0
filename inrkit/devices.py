"""Device selection and seeding."""

from __future__ import annotations

import random

import numpy as np
import torch

from inrkit.errors import InrkitError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``"auto" | "cpu" | "cuda[:i]" | "mps"`` to a ``torch.device``.

    ``auto`` picks CUDA, then Apple MPS, then the CPU. Asking for a device that is not present
    raises :class:`InrkitError`.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InrkitError(f"device {name!r} requested but CUDA is not available (use --device cpu)")
        return torch.device(name)
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise InrkitError("device 'mps' requested but MPS is not available (use --device cpu)")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise InrkitError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)} or cuda:N")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
