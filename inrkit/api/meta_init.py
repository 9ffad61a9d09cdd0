"""A meta-learned initialisation (Reptile, Nichol et al. 2018), the ``--init meta`` of ``fit-many``.

Starting from ``θ₀`` (the field ``Field(config)`` built after ``seed_everything(seed)``), each of ``meta_steps``
outer steps ``k`` draws a meta-batch of ``m`` signals, fits a copy of ``θ`` to each with ``inner_steps`` steps of
the run's own optimiser (Adam at the run's lr, fresh moments), all copies together as stacked fields by the
one Trainer, and moves ``θ`` toward their mean:

    θ ← θ + ε_k·(mean_i φ_i − θ),     ε_k = ε·(1 − k/meta_steps)   (Reptile's linearly annealed outer step)

Fields fitted from the resulting ``θ`` then start near every signal of the family, so they need far fewer steps
(functa and Learnit meta-learn SIREN initialisations the same way, with MAML; Reptile needs no second-order
terms and no gradient through the inner loop).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from inrkit.devices import seed_everything
from inrkit.fields import Field
from inrkit.signals import Signal
from inrkit.train import Trainer, TrainOptions
from inrkit.train.stacked import StackedFields
from inrkit.train.stacked_signal import StackedSignal


def learn_meta_init(config: dict[str, Any], signals: list[Signal], options: TrainOptions, lr: float,
                    device: torch.device, meta_steps: int, inner_steps: int, meta_batch: int, meta_lr: float = 1.0,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """Reptile's initialisation for fields of ``config`` on ``signals`` (module docstring); returns its ``state_dict``.

    Inner loops sample batches as the fits will (``options.batch_size``), with per-signal seeds that differ
    at every outer step.
    """
    seed_everything(seed)
    theta = Field(config).to(device)
    chooser = torch.Generator().manual_seed(seed)
    m = max(1, min(meta_batch, len(signals)))
    inner = TrainOptions(steps=inner_steps, batch_size=options.batch_size, eval_every=0, quiet=True, amp=options.amp)
    with tempfile.TemporaryDirectory(prefix="inrkit-meta-") as work:
        for step in range(meta_steps):
            picked = torch.randperm(len(signals), generator=chooser)[:m].tolist()
            stacked = StackedFields([theta] * m).to(device)
            batch = StackedSignal([signals[i] for i in picked], [seed + step * len(signals) + i for i in picked],
                                  options.batch_size, device)
            trainer = Trainer(stacked, batch, inner, Path(work), lr, device)
            trainer.train_steps(inner_steps, options.batch_size)
            adapted = stacked.stacked_state_dict()
            epsilon = meta_lr * (1.0 - step / meta_steps)
            with torch.no_grad():
                for name, value in theta.named_parameters():
                    value.add_(epsilon * (adapted[name].mean(dim=0) - value))
    return {name: value.detach().cpu().clone() for name, value in theta.state_dict().items()}
