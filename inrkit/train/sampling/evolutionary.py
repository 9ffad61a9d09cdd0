"""EVOS, the evolutionary selector (Zhang et al., CVPR 2025; official code ``zwx-open/EVOS-INR``).

Every sample is an individual; each iteration trains on the survivors of a selection:

* **sparse fitness evaluation**: the fitness ``e_i = (1/C)·Σ_c r_ic²`` of every pool sample is computed only
  on *fitness iterations*, ``t mod I(t) = 1`` with ``t`` the 1-based iteration and the interval decreasing
  linearly, ``I(t) = ⌊I0 + (I1 − I0)·t/T⌋`` (``I0 = 100``, ``I1 = 50``); such an iteration trains on the
  whole pool (the official code's fitness pass is that iteration's training forward pass; here it is a
  separate no-grad pass) and the ranking is kept until the next one;
* **frequency-guided crossover** (images only, the official ``select`` method): a second ranking by the
  Laplacian error ``l_i = λ_h·(Δ(f)_i − Δ(y)_i)²`` (``Δ``: the 3×3 kernel [[0,1,0],[1,−4,1],[0,1,0]] on the
  BT.601 grey image, reflect-padded; ``λ_h = 10⁻⁵``). Of the ``s = ⌊(ρ − μ)·N⌋`` survivors, those in the
  top ``s`` of both rankings are kept; the rest of the places go to the top of each ranking alone, shared in
  proportion to ``mean(λ_l·e)`` : ``mean(l)`` (``λ_l = 1``). Other signals rank by ``e`` alone, as in the
  official code;
* **augmented unbiased mutation**: ``⌊μ·N⌋`` more samples, ``μ = ρ/2`` (mutation ratio 0.5 of the used
  ratio ``ρ = 0.5``), drawn uniformly from the non-survivors, afresh every iteration.

Under minibatches an iteration is ``⌈ρ·N/B⌉`` optimizer steps (:meth:`PoolPolicy.steps_per_iteration`), each
drawing ``B`` samples from the iteration's selection (the whole pool on fitness iterations). Not included:
EVOS's cross-frequency supervision, a Laplacian *loss* term (not a sampling policy). The weighting uses the
official trainer's means of the two error maps (the refactored ``EVOS`` class divides by the mean of the
selected *indices* instead, a slip).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from inrkit.signals.base import Batch
from inrkit.train.sampling.policy import PoolPolicy

EVOS_RATIO = 0.5  # ρ, the share of the pool each iteration trains on
MUTATION_SHARE = 0.5  # μ = MUTATION_SHARE·ρ of the pool is drawn at random
FIRST_INTERVAL, LAST_INTERVAL = 100, 50
LOW_FREQUENCY_WEIGHT, HIGH_FREQUENCY_WEIGHT = 1.0, 1e-5
LAPLACIAN = ((0.0, 1.0, 0.0), (1.0, -4.0, 1.0), (0.0, 1.0, 0.0))
GREY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale (ITU-R BT.601)


def fitness_interval(iteration: int, total: int) -> int:
    """``I(t) = ⌊I0 + (I1 − I0)·t/T⌋`` for 1-based iteration ``t``."""
    return int(FIRST_INTERVAL + (LAST_INTERVAL - FIRST_INTERVAL) / total * iteration)


def is_fitness_iteration(iteration: int, total: int) -> bool:
    """``t mod I(t) = 1`` (1-based ``t``; the first iteration always is one)."""
    return iteration % fitness_interval(iteration, total) == 1


def laplacian_map(values: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``(H·W,)`` Laplacian of the grey image of pixel values ``(H·W, C)`` (row-major), reflect-padded."""
    height, width = grid
    channels = values.shape[1]
    grey = values @ torch.tensor(GREY, device=values.device) if channels == 3 else values.mean(dim=1)
    image = F.pad(grey.reshape(1, 1, height, width), (1, 1, 1, 1), mode="reflect")
    kernel = torch.tensor(LAPLACIAN, device=values.device).reshape(1, 1, 3, 3)
    return F.conv2d(image, kernel).reshape(-1)


def crossover_order(error: torch.Tensor, high: torch.Tensor | None, survivors: int) -> torch.Tensor:
    """``(N,)`` pool indices, the ``survivors`` chosen by the crossover last (module docstring), the rest before
    them in ascending ``error``. Without ``high`` the order is ascending ``error``."""
    by_error = torch.argsort(error, stable=True)
    if high is None or survivors == 0:
        return by_error
    top_error, top_high = by_error[-survivors:], torch.argsort(high, stable=True)[-survivors:]
    both = top_error[torch.isin(top_error, top_high)]
    error_only, high_only = top_error[~torch.isin(top_error, top_high)], top_high[~torch.isin(top_high, top_error)]
    places = survivors - len(both)
    low_mean, high_mean = LOW_FREQUENCY_WEIGHT * error.mean(), high.mean()
    from_error = min(int(places * float(low_mean / (low_mean + high_mean))) if float(low_mean + high_mean) > 0 else places,
                     len(error_only))
    from_high = places - from_error
    chosen = torch.cat([high_only[len(high_only) - from_high:], error_only[len(error_only) - from_error:], both])
    rest = by_error[~torch.isin(by_error, chosen)]
    return torch.cat([rest, chosen])


class EvolutionarySelector(PoolPolicy):
    """``--sampling evos``: fitness-ranked survivors plus random mutants (module docstring)."""

    name = "evos"

    def __init__(self, *args: Any, ratio: float | None = None) -> None:
        super().__init__(*args)
        self.ratio = EVOS_RATIO if ratio is None else ratio
        self.mutation = MUTATION_SHARE * self.ratio
        self.per_iteration = self.steps_per_iteration(max(1, int(self.ratio * self.n)))
        self.order: torch.Tensor | None = None  # (N,) pool indices, survivors last
        self.selected: torch.Tensor | None = None  # this iteration's samples; None on a fitness iteration
        self._target_laplacian: torch.Tensor | None = None

    @property
    def survivors(self) -> int:
        return int((self.ratio - self.mutation) * self.n)

    def _rank(self) -> None:
        """The fitness evaluation and crossover: a no-grad pass over the pool."""
        residuals = self.pool_residuals()
        error = residuals.square().mean(dim=1)
        high = None
        grid = self.signal.pool_grid
        if grid is not None:
            target = self.signal.pool_batch(torch.arange(self.n, device=self.device)).values.float()
            if self._target_laplacian is None:
                self._target_laplacian = laplacian_map(target, grid)
            high = HIGH_FREQUENCY_WEIGHT * (laplacian_map(target + residuals, grid) - self._target_laplacian).square()
        self.order = crossover_order(error, high, self.survivors)

    def _select(self) -> torch.Tensor:
        """The survivors and ``⌊μ·N⌋`` mutants drawn uniformly from the others."""
        assert self.order is not None
        survivors = self.survivors
        others = self.order[: self.n - survivors]
        mutants = others[torch.randperm(len(others), device=self.device, generator=self.generator)[: int(self.mutation * self.n)]]
        return torch.cat([self.order[self.n - survivors:], mutants])

    def next_batch(self, step: int, progress: float, total_steps: int | None) -> Batch:
        if step % self.per_iteration == 0 or self.order is None:
            iteration = step // self.per_iteration + 1
            total = self.total_iterations(step, progress, total_steps, self.per_iteration)
            if self.order is None or is_fitness_iteration(iteration, total):
                self._rank()
                self.selected = None
            else:
                self.selected = self._select()
        return self.draw_uniform() if self.selected is None else self.draw_from(self.selected)

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {} if self.order is None else {"order": self.order}
        if self.selected is not None:
            tensors["selected"] = self.selected
        return tensors, {}

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.order = tensors["order"].to(self.device) if "order" in tensors else None
        self.selected = tensors["selected"].to(self.device) if "selected" in tensors else None
