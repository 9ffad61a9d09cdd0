"""Progressive-encoding schedules: the band weights ``w_k(p)`` a Trainer step hook sets before each step.

Every encoding with bands (:mod:`inrkit.encodings.bands`: octaves, Fourier features, grid levels)
has ``L`` scheduled bands ``k = 0 … L − 1`` (coarse to fine) besides its always-on part. With ``p``
the training progress (the fraction of the step or time budget used, as for the lr schedules) and
the window ``[s, e]`` (``--progressive-start``/``--progressive-end``):

* ``barf`` (Lin et al. 2021, ``model/barf.py``): ``α = L·(p − s)/(e − s)`` and the cosine window
  ``w_k = ½(1 − cos(π·clamp(α − k, 0, 1)))``; default window (0.1, 0.5), BARF's NeRF setting.
* ``nerfies`` (Park et al. 2021, ``nerfies/modules.py``): the same window with ``α`` rising linearly
  from 0 to ``L`` and held there, ``α = L·clamp((p − s)/(e − s), 0, 1)``; default window (0, 0.8)
  (α from 0 to m over 80k of the vrig config's 100k steps). In progress units it gives the same
  weights as ``barf`` on the same window; the two differ by their default windows.
* ``step``: hard unlocking, ``w_k = 1`` once ``α ≥ k + 1`` (where the cosine window reaches 1), else 0;
  default window (0.1, 0.5).
* ``levels`` (hash-level annealing; Neuralangelo, instant-nsr-pl): counting the always-on band as
  unit 0, ``U = L + 1`` units of which ``U_0 = max(1, ⌊U/4⌋)`` are on from the start and the rest
  open one at a time: ``n(p) = min(U, U_0 + ⌊(U − U_0)·(p − s)/(e − s)⌋)`` for ``p ≥ s``, and
  ``w_k = 1`` iff ``k + 1 < n``. Default window (0.05, 0.17): Neuralangelo's 4 of 16 levels at
  first and every level by 85k of its 500k steps. With ``every = N`` steps instead (``--coarse-to-fine
  N``, instant-nsr-pl's rule), ``n(t) = min(U, U_0 + ⌊t/N⌋)`` at step ``t`` whatever the budget.

* ``sape`` (Hertz et al. 2021): per location, :class:`SapeSchedule` on the encoding's
  :class:`~inrkit.encodings.spatial_mask.SpatialBandMask`: the window is cut into ``L`` blocks and at
  each block boundary every cell whose recent loss is above ε = 10⁻³ opens one more band; default window
  (0, 0.5), SAPE's "all bands can be open by mid-training".

Hard 0/1 weights on a grid encoding also skip the lookups of the levels that are off (tcnn's
``max_level``). After training every band is switched on (:meth:`BandSchedule.unlock_all`): the
saved field (``weights.safetensors``, outputs, ``inrkit load``) uses every band, which is what the
schedule reaches at ``p = e ≤ 1``. SAPE's field keeps its final mask instead (saved with the weights).

Example:
    >>> from inrkit.fields import build_field
    >>> field = build_field("relu-pe", 2, 3, n_frequencies=4)
    >>> schedule = BandSchedule(field, "barf", 0.0, 1.0)
    >>> schedule.apply(step=0, progress=0.5)                # α = 2: octaves 0, 1 on, 2, 3 off
    >>> field.encoding.bands.weights
    tensor([1., 1., 0., 0.])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from inrkit.encodings.bands import BandWeights
from inrkit.encodings.spatial_mask import SpatialBandMask
from inrkit.errors import InrkitError
from inrkit.signals.base import Batch

PROGRESSIVE_SCHEDULES = ("barf", "nerfies", "step", "levels", "sape")
# (start, end) of each schedule's window in progress units when --progressive-start/--progressive-end are not given
DEFAULT_WINDOWS = {"barf": (0.1, 0.5), "nerfies": (0.0, 0.8), "step": (0.1, 0.5), "levels": (0.05, 0.17), "sape": (0.0, 0.5)}
GLOBAL_SCHEDULES = ("barf", "nerfies", "step", "levels")  # one weight per band for every location
SAPE_EPSILON = 1e-3  # SAPE's loss threshold (per-sample MSE in the signal's [0, 1] units)
ROUNDING = 1e-9  # hard thresholds count α = 1.9999999999 (a float rendering of 2) as reached


def cosine_window(alpha: float, n_bands: int) -> torch.Tensor:
    """BARF's window ``w_k = ½(1 − cos(π·clamp(α − k, 0, 1)))`` for ``k = 0 … n_bands − 1``: ``(n_bands,)``."""
    ramp = (alpha - torch.arange(n_bands, dtype=torch.float64)).clamp(0.0, 1.0)
    return (0.5 * (1.0 - torch.cos(math.pi * ramp))).float()


def open_units(n_bands: int, progress: float, start: float, end: float, step: int = 0, every: int = 0) -> int:
    """``levels``: how many units (the always-on band counting as one) are on; see the module docstring."""
    units = n_bands + 1
    first = max(1, units // 4)
    if every:
        return min(units, first + step // every)
    if progress < start:
        return first
    return min(units, first + math.floor((units - first) * (progress - start) / (end - start) + ROUNDING))


def band_weights(kind: str, n_bands: int, progress: float, start: float, end: float, step: int = 0,
                 every: int = 0) -> torch.Tensor:
    """The weights ``(n_bands,)`` of schedule ``kind`` at ``progress`` (and ``step``, for ``levels`` by steps)."""
    alpha = n_bands * (progress - start) / (end - start)
    if kind == "barf":
        return cosine_window(alpha, n_bands)
    if kind == "nerfies":
        return cosine_window(n_bands * min(max((progress - start) / (end - start), 0.0), 1.0), n_bands)
    if kind == "step":
        return (alpha + ROUNDING - torch.arange(n_bands, dtype=torch.float64) >= 1.0).float()
    if kind == "levels":
        return (torch.arange(n_bands) + 1 < open_units(n_bands, progress, start, end, step, every)).float()
    raise InrkitError(f"--progressive must be one of {', '.join(PROGRESSIVE_SCHEDULES)}, got {kind!r}")


class BandSchedule:
    """Trainer step hook: before step ``t``, set the band weights of every encoding of ``field`` for the
    training progress ``progress()`` (module docstring). ``start``/``end`` default to the schedule's
    :data:`DEFAULT_WINDOWS`; ``every`` > 0 (``levels`` only) opens a unit every ``every`` steps instead.
    ``progress`` is the Trainer's (:meth:`~inrkit.train.Trainer.progress_fraction`); give it here or with :meth:`follow`.
    """

    def __init__(self, field: torch.nn.Module, kind: str, start: float | None = None, end: float | None = None,
                 every: int = 0, progress: Callable[[], float] | None = None) -> None:
        if kind not in GLOBAL_SCHEDULES:
            raise InrkitError(f"BandSchedule runs {', '.join(GLOBAL_SCHEDULES)}, got {kind!r} (sape: SapeSchedule)")
        if every and kind != "levels":
            raise InrkitError(f"a level every N steps (--coarse-to-fine) is the 'levels' schedule, not {kind!r}")
        default_start, default_end = DEFAULT_WINDOWS[kind]
        self.kind, self.every = kind, int(every)
        self.start = default_start if start is None else float(start)
        self.end = default_end if end is None else float(end)
        check_window(self.start, self.end)
        self.bands = [m for m in field.modules() if isinstance(m, BandWeights) and m.n_bands > 0]
        self.progress = progress

    def follow(self, progress: Callable[[], float]) -> None:
        """Read the training progress from ``progress()`` from now on."""
        self.progress = progress

    def apply(self, step: int, progress: float) -> None:
        """Set every encoding's band weights for ``step`` and ``progress``."""
        for bands in self.bands:
            bands.set(band_weights(self.kind, bands.n_bands, progress, self.start, self.end, step, self.every))

    def __call__(self, step: int) -> None:
        if self.progress is None:
            raise RuntimeError("BandSchedule needs the training progress: pass progress= or call follow()")
        self.apply(step, self.progress())

    def unlock_all(self) -> None:
        """Every band on (the saved field's state)."""
        for bands in self.bands:
            bands.set(torch.ones(bands.n_bands))


def blocks_due(n_bands: int, progress: float, start: float, end: float) -> int:
    """SAPE: block boundaries passed at ``progress``, ``clamp(⌊L·(p − s)/(e − s)⌋, 0, L)``."""
    return min(n_bands, max(0, math.floor(n_bands * (progress - start) / (end - start) + ROUNDING)))


class SapeSchedule:
    """Trainer step hook and per-sample-loss hook of SAPE (module docstring): before each step, pass the
    block boundaries due at the training progress (:meth:`SpatialBandMask.advance`); after each loss,
    splat the samples' losses into the mask's cells (:meth:`observe`)."""

    def __init__(self, field: torch.nn.Module, start: float | None = None, end: float | None = None,
                 progress: Callable[[], float] | None = None, epsilon: float = SAPE_EPSILON) -> None:
        default_start, default_end = DEFAULT_WINDOWS["sape"]
        self.start = default_start if start is None else float(start)
        self.end = default_end if end is None else float(end)
        check_window(self.start, self.end)
        self.masks = [m for m in field.modules() if isinstance(m, SpatialBandMask)]
        if not self.masks:
            raise InrkitError("--progressive sape needs an encoding with a spatial band mask (the field has none)")
        self.progress, self.epsilon = progress, float(epsilon)

    def follow(self, progress: Callable[[], float]) -> None:
        """Read the training progress from ``progress()`` from now on."""
        self.progress = progress

    def apply(self, progress: float) -> None:
        """Pass every block boundary due at ``progress``."""
        for mask in self.masks:
            while int(mask.boundaries) < blocks_due(mask.n_bands, progress, self.start, self.end):
                mask.advance(self.epsilon)

    def __call__(self, step: int) -> None:
        if self.progress is None:
            raise RuntimeError("SapeSchedule needs the training progress: pass progress= or call follow()")
        self.apply(self.progress())

    def observe(self, batch: Batch, losses: torch.Tensor) -> None:
        """Per-sample-loss hook: ``losses (N,)`` of ``batch`` (field coordinates in [-1, 1]) into the cells."""
        for mask in self.masks:
            mask.splat(batch.coords, losses)

    def unlock_all(self) -> None:
        """Nothing: SAPE's field keeps its final mask."""


def progressive_schedule(field: torch.nn.Module, kind: str | None, start: float | None, end: float | None,
                         every: int = 0) -> BandSchedule | SapeSchedule | None:
    """The schedule of ``--progressive kind`` (``--coarse-to-fine every`` alone: ``levels`` by steps) for
    ``field``, None without one; one line when the field has nothing to schedule."""
    kind = kind or ("levels" if every else None)
    if kind is None:
        return None
    if kind == "sape":
        return SapeSchedule(field, start, end)
    schedule = BandSchedule(field, kind, start, end, every)
    if not schedule.bands:
        raise InrkitError(f"--progressive {kind} needs an encoding with frequency bands (relu-pe, ffn, hash grids, "
                          "Frequency); this field's encodings have none")
    return schedule


def check_progressive(kind: str | None, start: float | None, end: float | None, every: int) -> None:
    """Validate ``--progressive``, ``--progressive-start``/``--progressive-end`` and ``--coarse-to-fine``
    (``every``); raises :class:`InrkitError` with one line."""
    if every < 0:
        raise InrkitError(f"--coarse-to-fine must be >= 0, got {every}")
    if kind is not None and kind not in PROGRESSIVE_SCHEDULES:
        raise InrkitError(f"--progressive must be one of {', '.join(PROGRESSIVE_SCHEDULES)}, got {kind!r}")
    if every and kind not in (None, "levels"):
        raise InrkitError(f"--coarse-to-fine N is --progressive levels with a level every N steps; it cannot be "
                          f"combined with --progressive {kind}")
    if (start is not None or end is not None) and (kind is None or every):
        raise InrkitError("--progressive-start and --progressive-end need --progressive (and no --coarse-to-fine, "
                          "which counts steps)")
    if kind is not None and not every:
        default_start, default_end = DEFAULT_WINDOWS[kind]
        check_window(default_start if start is None else start, default_end if end is None else end)


def check_window(start: float, end: float) -> None:
    """``0 ≤ start < end ≤ 1``, else one line naming the flags."""
    if not (math.isfinite(start) and math.isfinite(end) and 0.0 <= start < end <= 1.0):
        raise InrkitError(f"--progressive-start and --progressive-end must satisfy 0 <= start < end <= 1 "
                          f"(fractions of the run), got {start:g} and {end:g}")
