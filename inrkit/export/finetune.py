"""Quantisation-aware fine-tuning: train the float weights through the fixed quantisation grid.

The forward pass uses ``ŵ = Δ·clamp(round(w/Δ), ±q_max)`` (and ``fp16(w)`` for half-float tensors);
the backward pass treats quantisation as the identity (straight-through estimator, Bengio et al.
2013; the QAT stage of Strümpler et al. 2022). Steps ``Δ`` stay those of post-training
quantisation of the original weights. The best quantised state seen (PSNR of the quantised field,
evaluated every ``eval_every`` steps and at the end, starting from the untuned one) is returned, so
fine-tuning never makes the result worse than post-training quantisation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn
from torch.func import functional_call

from inrkit.export.quantize import fake_quantise, real_view
from inrkit.signals.base import Signal

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


def finetune(field: nn.Module, quantisers: dict[str, Quantiser], signal: Signal, steps: int, lr: float,
             batch_size: int | None = None, eval_every: int = 50, seed: int = 0) -> tuple[dict[str, torch.Tensor], float]:
    """Fine-tune a copy of ``field`` for ``steps`` Adam steps; returns ``(best state_dict, its PSNR)``.

    The loss is ``signal.loss`` of the fake-quantised field on batches of ``batch_size`` samples
    (all of them when ``None``); the learning rate decays ×0.1 exponentially over the steps.
    """
    tuned = copy.deepcopy(field).train()
    device = next(tuned.parameters()).device
    wrapped = FakeQuantisedField(tuned, quantisers)
    optimizer = torch.optim.Adam(tuned.parameters(), lr=lr)
    generator = torch.Generator(device=device).manual_seed(seed)

    def score() -> float:
        with torch.no_grad():
            return float(signal.evaluate(wrapped)["psnr"])

    best_psnr, best_state = score(), copy.deepcopy(tuned.state_dict())
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.1 ** (step / steps)
        batch = signal.sample(batch_size, generator)
        loss = signal.loss(wrapped, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            psnr = score()
            if psnr > best_psnr:
                best_psnr, best_state = psnr, copy.deepcopy(tuned.state_dict())
    return best_state, best_psnr
