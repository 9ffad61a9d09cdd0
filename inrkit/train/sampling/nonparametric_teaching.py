"""INT, implicit neural teaching (Zhang et al., ICML 2024; REFERENCE §5.1, ``chen2hang/INT_NonparametricTeaching``).

At each reselection a no-grad forward pass over the whole pool scores every sample by its residual
``r_i = Σ_c |y_ic − f(x_i)_c|`` and keeps the top ``k = ⌊ρ(t)·N⌋``; the steps in between train on that set:

    ρ(t) = min(ρ0 + ⌊t / (T/10)⌋·(1 − ρ0)/10, 1)                               (the official ``mt_step``)
    reselect(t) = t < ⌊T/4⌋  or  t mod I(t) = 0,
    I(t) = 10·(⌊max(1, t − ⌊T/4⌋) / ⌊(T − ⌊T/4⌋)/5⌋⌋ + 1)                       (``incremental``: 10, 20, ..., 50)

with ``t`` the 0-based iteration and ``T`` the budget in iterations. Under a full batch (the paper's protocol)
an iteration is one optimizer step and every step trains on the whole selection, as the official code does.
Under minibatches of ``B`` an iteration is one pass over the first selection, ``⌈ρ0·N/B⌉`` steps
(:meth:`PoolPolicy.steps_per_iteration`), each step ``B`` samples drawn from the selection, so that the
selection passes cost what they cost in the paper relative to the samples trained on.
"""

from __future__ import annotations

from typing import Any

import torch

from inrkit.signals.base import Batch
from inrkit.train.sampling.policy import PoolPolicy

INT_RATIO = 0.2  # ρ0
RATIO_STAGES = 10
STARTUP_FRACTION = 0.25  # reselect every iteration over the first quarter
INTERVAL_STAGES = 5
MAX_INTERVAL = 50


def int_ratio(iteration: int, total: int, ratio0: float = INT_RATIO) -> float:
    """``ρ(t) = min(ρ0 + ⌊t/(T/10)⌋·(1 − ρ0)/10, 1)``."""
    stage = iteration // (total / RATIO_STAGES)
    return min(ratio0 + stage * (1.0 - ratio0) / RATIO_STAGES, 1.0)


def int_reselects(iteration: int, total: int) -> bool:
    """Whether iteration ``t`` (0-based) of ``T`` reselects: every iteration over the first ⌊T/4⌋, then every
    ``I`` = 10, 20, 30, 40, 50 iterations over successive fifths of the rest (``t mod I = 0``)."""
    startup = int(total * STARTUP_FRACTION)
    stage_length = (total - startup) // INTERVAL_STAGES
    if iteration < startup or stage_length == 0 or iteration // stage_length == 0:
        return True
    interval = MAX_INTERVAL // INTERVAL_STAGES * (max(1, iteration - startup) // stage_length + 1)
    return iteration % interval == 0


def top_k_residuals(residuals: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``(k,)`` of the ``k`` largest ``r_i = Σ_c |residuals_ic|`` (``residuals`` ``(N, C)``)."""
    return torch.topk(residuals.abs().sum(dim=1), k).indices


class NonparametricTeaching(PoolPolicy):
    """``--sampling int``: train on the top-k samples by residual, reselected on INT's schedule (module docstring)."""

    name = "int"

    def __init__(self, *args: Any, ratio: float | None = None) -> None:
        super().__init__(*args)
        self.ratio0 = INT_RATIO if ratio is None else ratio
        self.per_iteration = self.steps_per_iteration(max(1, int(self.ratio0 * self.n)))
        self.selected: torch.Tensor | None = None  # (k,) int64 pool indices

    def next_batch(self, step: int, progress: float, total_steps: int | None) -> Batch:
        if step % self.per_iteration == 0 or self.selected is None:
            iteration = step // self.per_iteration
            total = self.total_iterations(step, progress, total_steps, self.per_iteration)
            if self.selected is None or int_reselects(iteration, total):
                k = max(1, int(int_ratio(iteration, total, self.ratio0) * self.n))
                self.selected = top_k_residuals(self.pool_residuals(), min(k, self.n))
        return self.draw_from(self.selected)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return ({} if self.selected is None else {"selected": self.selected}), {}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.selected = tensors["selected"].to(self.device) if "selected" in tensors else None
