"""Learning-rate schedules as functions of training progress ``p ∈ [0, 1]``.

``p`` is the fraction of the budget used (steps, or seconds for a time budget), so a schedule is
the same shape whatever the budget. Each returns the multiplier of the base learning rate:

* ``constant``: 1 (SIREN);
* ``exp``: ``0.1^p`` (FINER, WIRE, SL²A: ×0.1 over the run);
* ``cosine``: ``0.1 + 0.9·(1 + cos πp)/2`` (ResFields: cosine down to 0.1·lr).
"""

from __future__ import annotations

import math

SCHEDULES = ("exp", "constant", "cosine")


def lr_factor(schedule: str, progress: float) -> float:
    """Multiplier of the base learning rate at ``progress`` (clamped to [0, 1])."""
    p = min(max(progress, 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "exp":
        return 0.1**p
    if schedule == "cosine":
        return 0.1 + 0.45 * (1.0 + math.cos(math.pi * p))
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
