"""Error-driven sampling: draw samples in proportion to a running estimate of their loss, with a uniform floor.

Estimator: ``e_i``, the per-sample loss ``ℓ_i`` (:meth:`Signal.sample_losses`, the terms whose mean is the
training loss) of sample ``i`` the last time it was in a batch, read off the training forward pass (no extra
pass); a sample drawn twice in one batch keeps the larger value. Before a sample is first drawn ``e_i = 1``
(the largest squared error of values in [0, 1]: unseen samples come first). Each step draws ``B`` samples
with replacement from

    p_i = (1 − α)·e_i / Σ_j e_j + α/N                                 (α = ``--sampling-floor``, default 0.1)

so every sample keeps at least ``α/N`` of the probability; if every ``e_i`` is 0 the draw is uniform. The loss
is *not* reweighted by ``1/(N·p_i)``: like INT and EVOS the policy trains harder on the samples it fits worst
(the reweighted estimator would be an unbiased, lower-variance estimate of the uniform MSE instead). The floor
default follows soft mining (Kheradmand et al., CVPR 2024), which keeps 10 % of its samples uniform.
"""

from __future__ import annotations

from typing import Any

import torch

from inrkit.signals.base import Batch
from inrkit.train.sampling.policy import PoolPolicy

ERROR_FLOOR = 0.1
UNSEEN_ERROR = 1.0


def error_probabilities(error: torch.Tensor, floor: float) -> torch.Tensor:
    """``(N,)`` float64 ``p_i = (1 − α)·e_i/Σe + α/N`` (uniform when ``Σe = 0``)."""
    error = error.double()
    total = float(error.sum())
    uniform = torch.full_like(error, 1.0 / len(error))
    return uniform if total <= 0 else (1.0 - floor) * error / total + floor * uniform


class ErrorDriven(PoolPolicy):
    """``--sampling error``: sample ∝ running per-sample loss with a floor (module docstring)."""

    name = "error"
    observes_losses = True

    def __init__(self, *args: Any, floor: float | None = None) -> None:
        super().__init__(*args)
        self.floor = ERROR_FLOOR if floor is None else floor
        self.error = torch.full((self.n,), UNSEEN_ERROR, device=self.device)
        self.index: torch.Tensor | None = None  # the last batch's pool indices

    def next_batch(self, step: int, progress: float, total_steps: int | None) -> Batch:
        size = self.n if self.batch_size is None else int(self.batch_size)
        cumulative = torch.cumsum(error_probabilities(self.error, self.floor), dim=0)
        draws = torch.rand(size, device=self.device, generator=self.generator, dtype=torch.float64) * cumulative[-1]
        self.index = torch.searchsorted(cumulative, draws).clamp_(max=self.n - 1)
        return self.signal.pool_batch(self.index)

    def observe(self, start: int, losses: torch.Tensor) -> None:
        assert self.index is not None
        index = self.index[start : start + len(losses)]
        self.error.scatter_reduce_(0, index, losses.float(), reduce="amax", include_self=False)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {"error": self.error}, {}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.error = tensors["error"].to(self.device)
