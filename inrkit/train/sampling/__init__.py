"""The trainer's sampling policies: which samples of the signal's pool form each batch.

``uniform`` (default): random batches as the signal draws them. ``int``: the top-k samples by residual
(INT). ``evos``: fitness-ranked survivors plus random mutants (EVOS). ``error``: samples drawn in proportion
to their running loss, with a floor. See each module for the formulas.
"""

from __future__ import annotations

import torch

from inrkit.errors import InrkitError
from inrkit.signals.base import Signal
from inrkit.train.sampling.error_driven import ERROR_FLOOR, ErrorDriven
from inrkit.train.sampling.evolutionary import EVOS_RATIO, EvolutionarySelector
from inrkit.train.sampling.nonparametric_teaching import INT_RATIO, NonparametricTeaching
from inrkit.train.sampling.policy import SamplingPolicy

SAMPLING_POLICIES = ("uniform", "int", "evos", "error")
# The papers' defaults of each policy's setting: (``--sampling-ratio``, ``--sampling-floor``).
SAMPLING_DEFAULTS: dict[str, tuple[float | None, float | None]] = {
    "uniform": (None, None), "int": (INT_RATIO, None), "evos": (EVOS_RATIO, None), "error": (None, ERROR_FLOOR)}

__all__ = ["SAMPLING_DEFAULTS", "SAMPLING_POLICIES", "SamplingPolicy", "build_sampling"]


def build_sampling(name: str, signal: Signal, field: torch.nn.Module, generator: torch.Generator,
                   batch_size: int | None, ratio: float | None = None, floor: float | None = None) -> SamplingPolicy:
    """The policy ``name`` over ``signal``'s pool; ``ratio`` is INT's ρ0 or EVOS's used ratio, ``floor`` the
    error policy's uniform share (None: the papers' defaults)."""
    if name == "uniform":
        return SamplingPolicy(signal, field, generator, batch_size)
    if signal.pool_size is None:
        raise InrkitError(f"--sampling {name} needs a signal whose loss is a mean over a fixed pool of samples; "
                          f"{signal.kind} signals draw theirs afresh each step (rays, off-surface points): use uniform")
    if name == "int":
        return NonparametricTeaching(signal, field, generator, batch_size, ratio=ratio)
    if name == "evos":
        return EvolutionarySelector(signal, field, generator, batch_size, ratio=ratio)
    if name == "error":
        return ErrorDriven(signal, field, generator, batch_size, floor=floor)
    raise InrkitError(f"--sampling must be one of {', '.join(SAMPLING_POLICIES)}, got {name!r}")
