"""Learning-rate schedules as functions of training progress ``p ∈ [0, 1]``.

``p`` is the fraction of the budget used (steps, or seconds for a time budget), so a schedule is
the same shape whatever the budget. Each returns the multiplier of the base learning rate:

* ``constant``: 1 (SIREN);
* ``exp``: ``0.1^p`` (FINER, WIRE, SL²A: ×0.1 over the run);
* ``cosine``: ``0.1 + 0.9·(1 + cos πp)/2`` (ResFields: cosine down to 0.1·lr);
* ``cosine-zero``: ``(1 + cos πp)/2`` (Cool-Chic's cosine annealing, down to zero);
* ``ngp``: instant-ngp's ExponentialDecay(start 20k, interval 10k, base 0.33) of its 35k-step run,
  in progress units: ``0.33^n`` with ``n = max(0, ⌊(35p − 20)/10⌋ + 1)`` (×0.33 at p = 4/7 and 6/7).

An optimiser group may carry its own schedule (:func:`group_lr`): ``lr_initial·(lr_final/lr_initial)^p``,
the exponential decay BARF uses for camera poses (``ExponentialLR`` with ``γ = (lr_final/lr_initial)^(1/T)``).
"""

from __future__ import annotations

import math
from typing import Any

SCHEDULES = ("exp", "constant", "cosine", "cosine-zero", "ngp")


def lr_factor(schedule: str, progress: float) -> float:
    """Multiplier of the base learning rate at ``progress`` (clamped to [0, 1])."""
    p = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "exp":
        return 0.1**p
    if schedule == "cosine":
        return 0.1 + 0.45 * (1.0 + math.cos(math.pi * p))
    if schedule == "cosine-zero":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule == "ngp":
        return 0.33 ** max(0, math.floor((35.0 * p - 20.0) / 10.0) + 1)
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def group_lr(group: dict[str, Any], base_lr: float, schedule: str, progress: float) -> float:
    """Learning rate of one optimiser group at ``progress``: its own exponential decay from ``lr_initial`` to
    ``lr_final`` when it has one, else ``base_lr·lr_factor(schedule, progress)``."""
    if "lr_final" in group:
        p = min(max(progress, 0.0), 1.0)
        return float(group["lr_initial"]) * (float(group["lr_final"]) / float(group["lr_initial"])) ** p
    return base_lr * lr_factor(schedule, progress)
