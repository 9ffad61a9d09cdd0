"""What every sampling policy is: the trainer asks it for each step's batch and checkpoints its state.

A policy picks the samples of each training batch from the signal's *pool* (``Signal.pool_size`` samples,
``Signal.pool_batch(index)``): the pixels of an image, the samples of an audio clip, the training pixels of
a video, the points of an SDF's point set. ``uniform`` (the default) asks the signal for a random batch as
it always did; the others keep state (selected indices, running errors) that is part of the checkpoint:
tensors in ``training.safetensors`` (``sampling.<name>``), the rest in ``state.json``, nothing pickled.

Example:
    >>> policy = build_sampling("int", signal, field, generator, batch_size=2048)  # doctest: +SKIP
    >>> batch = policy.next_batch(step=0, progress=0.0, total_steps=1000)          # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import torch

from inrkit.signals.base import Batch, Signal

SCORING_CHUNK = 1 << 16  # samples per no-grad forward pass when a policy scores the whole pool


class SamplingPolicy:
    """Uniform random batches, as :meth:`Signal.sample` draws them (the trainer's behaviour without a policy)."""

    name = "uniform"
    observes_losses = False  # True: the trainer hands over each batch's per-sample losses (:meth:`observe`)

    def __init__(self, signal: Signal, field: torch.nn.Module, generator: torch.Generator,
                 batch_size: int | None) -> None:
        self.signal = signal
        self.field = field
        self.generator = generator
        self.batch_size = batch_size

    def next_batch(self, step: int, progress: float, total_steps: int | None) -> Batch:
        """The batch of optimizer step ``step`` (0-based) at training ``progress`` ∈ [0, 1); ``total_steps``
        is the step budget (None under a time budget)."""
        return self.signal.sample(self.batch_size, self.generator)

    def observe(self, start: int, losses: torch.Tensor) -> None:
        """Per-sample losses ``(n,)`` of samples ``start:start+n`` of the last batch (detached)."""

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """``(tensors, json)`` to checkpoint."""
        return {}, {}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""


class PoolPolicy(SamplingPolicy):
    """A policy that picks samples of the signal's pool by index; ``N`` = ``signal.pool_size``."""

    def __init__(self, signal: Signal, field: torch.nn.Module, generator: torch.Generator,
                 batch_size: int | None) -> None:
        super().__init__(signal, field, generator, batch_size)
        assert signal.pool_size is not None
        self.n = int(signal.pool_size)
        self.device = generator.device

    @property
    def full_batch(self) -> bool:
        """No batch size, or one at least the pool: every step sees the whole selection (the papers' protocol)."""
        return self.batch_size is None or self.batch_size >= self.n

    def steps_per_iteration(self, selected: int) -> int:
        """Optimizer steps that make one of the papers' full-batch iterations over ``selected`` samples:
        1 under a full batch, else ``⌈selected/B⌉`` (one pass of minibatches of ``B`` over the selection), so
        that a schedule in the papers' iterations costs the same number of pool passes per sample trained."""
        return 1 if self.full_batch else max(1, math.ceil(selected / int(self.batch_size or 1)))

    @staticmethod
    def total_iterations(step: int, progress: float, total_steps: int | None, per_iteration: int) -> int:
        """``T``, the budget in the papers' iterations: ``total_steps // per_iteration``; under a time budget the
        step budget is estimated as ``step / progress`` (the schedules below are functions of ``t/T``)."""
        if total_steps is None:
            total_steps = round(step / progress) if progress > 0 else step + 1
        return max(1, max(total_steps, step + 1) // per_iteration)

    def draw_from(self, selected: torch.Tensor) -> Batch:
        """The batch: all of ``selected`` under a full batch, else ``B`` of them uniformly (with replacement)."""
        if self.full_batch or len(selected) <= int(self.batch_size or 0):
            return self.signal.pool_batch(selected)
        pick = torch.randint(len(selected), (int(self.batch_size or 0),), device=self.device, generator=self.generator)
        return self.signal.pool_batch(selected[pick])

    def draw_uniform(self) -> Batch:
        """The whole pool under a full batch, else ``B`` samples uniformly (with replacement)."""
        if self.full_batch:
            return self.signal.pool_batch(torch.arange(self.n, device=self.device))
        return self.signal.pool_batch(torch.randint(self.n, (int(self.batch_size or 0),), device=self.device,
                                                    generator=self.generator))

    @torch.no_grad()
    def pool_residuals(self) -> torch.Tensor:
        """``(N, C)`` residuals ``f(x_i) − y_i`` over the whole pool: one no-grad forward pass, in chunks."""
        parts = []
        for start in range(0, self.n, SCORING_CHUNK):
            index = torch.arange(start, min(start + SCORING_CHUNK, self.n), device=self.device)
            parts.append(self.signal.residuals(self.field, self.signal.pool_batch(index)).float())
        return torch.cat(parts)
