"""Coarse-to-fine training of grid encodings: a step hook that unlocks hash-grid levels over time.

The Neuralangelo / instant-nsr-pl step schedule on tcnn's ``max_level`` mask: with ``L`` levels,
``active(t) = min(L, L_0 + ⌊t / every⌋)`` with ``L_0 = max(1, L/4)``, and ``max_level = (active − 1)/L``
so that exactly the first ``active`` levels are on (tcnn: level ``l`` is on iff ``l < m·L + 10⁻³``).
Inactive levels output zeros and receive no gradient. All levels are on after ``every·(L − L_0)``
steps; give the run at least that many steps, since the saved field always uses every level.

Example:
    >>> from inrkit.fields import build_field
    >>> field = build_field("hashgrid", 2, 3)
    >>> schedule = CoarseToFine(field, every=100)
    >>> schedule(0); field.encoding.max_level          # 4 of 16 levels
    0.1875
"""

from __future__ import annotations

import torch

from inrkit.encodings.grid import GridEncoding


class CoarseToFine:
    """Trainer step hook: set ``max_level`` of every grid encoding of ``field`` for step ``t``."""

    def __init__(self, field: torch.nn.Module, every: int) -> None:
        self.grids = [m for m in field.modules() if isinstance(m, GridEncoding)]
        self.every = int(every)

    def active_levels(self, step: int, n_levels: int) -> int:
        """Number of levels on at ``step``."""
        return min(n_levels, max(1, n_levels // 4) + step // self.every)

    def __call__(self, step: int) -> None:
        for grid in self.grids:
            n_levels = grid.geometry.n_levels
            grid.max_level = (self.active_levels(step, n_levels) - 1) / n_levels

    def unlock_all(self) -> None:
        """Turn every level on (the saved field always uses all of them)."""
        for grid in self.grids:
            grid.max_level = 1.0
