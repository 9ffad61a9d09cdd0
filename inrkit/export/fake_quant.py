"""A field seen through its quantisation grid, for quantisation-aware fine-tuning (QAT).

The forward pass uses ``ŵ = Δ·clamp(round(w/Δ), ±q_max)`` (and ``fp16(w)`` for half-float tensors);
the backward pass treats quantisation as the identity (straight-through estimator, Bengio et al.
2013; the QAT stage of Strümpler et al. 2022). The fine-tuning itself is an ordinary fit of
:class:`FakeQuantisedField` by the Trainer (:func:`inrkit.api.compress.finetune`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

from inrkit.export.quantize import fake_quantise, real_view

Quantiser = Callable[[torch.Tensor], torch.Tensor]


def half_straight_through(tensor: torch.Tensor) -> torch.Tensor:
    """``fp16(w)`` forward, identity backward (complex tensors: real and imaginary parts rounded)."""
    values = real_view(tensor)
    out = values + (values.half().to(values.dtype) - values).detach()
    return torch.view_as_complex(out) if tensor.is_complex() else out


class FakeQuantisedField(nn.Module):
    """Wraps a field: ``forward`` runs it with every listed parameter passed through its quantiser."""

    def __init__(self, field: nn.Module, quantisers: dict[str, Quantiser]) -> None:
        super().__init__()
        self.field = field
        self.quantisers = quantisers

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        named = dict(self.field.named_parameters())
        params = {name: quantiser(named[name]) for name, quantiser in self.quantisers.items()}
        return functional_call(self.field, params, (coords,))


def quantisers_for(steps: dict[str, torch.Tensor], bits: int, fp16: list[str]) -> dict[str, Quantiser]:
    """One straight-through quantiser per quantised (``steps``) and half-float (``fp16``) parameter."""
    out: dict[str, Quantiser] = {name: (lambda w, s=step: fake_quantise(w, s.to(w.device), bits)) for name, step in steps.items()}
    out.update({name: half_straight_through for name in fp16})
    return out
