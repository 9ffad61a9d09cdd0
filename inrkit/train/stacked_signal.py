"""N signals of one kind as one signal for :class:`~inrkit.train.stacked.StackedFields`: each field samples its own.

A step's batch stacks every signal's own batch, ``coords (N, B, in)`` and ``values (N, B, out)``: signal ``n``
samples with its own generator, seeded with item ``n``'s seed, exactly as a single fit's Trainer does with its
one generator, so field ``n`` sees the batches it would see alone. Signals of different sizes are fine as long
as a step takes the same number of samples ``B`` from each (random batches of one size, or full batches of
signals of one size).

The loss is ``L = Σ_n ℓ_n(ŷ_n, batch_n)`` where ``ℓ`` is the kind's own loss (:meth:`Signal.loss`, the MSE for
images and audio, L1 or MAPE for meshes), vectorised over the fields with ``torch.func.vmap`` and handed the
predictions ``ŷ = fields(coords)`` of the stacked forward; losses that differentiate the field with respect to
its input (SIREN's point-cloud SDF loss) are not supported here.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch.func import vmap

from inrkit.errors import ConfigError
from inrkit.signals.base import Batch, Signal
from inrkit.train.stacked import StackedFields


def steps_samples(signal: Signal, batch_size: int | None) -> int:
    """Samples one step takes from ``signal``: ``batch_size``, or all of them for a full batch (or a smaller signal)."""
    return signal.n_samples if batch_size is None or batch_size >= signal.n_samples else batch_size


def stack_batches(batches: list[Batch]) -> Batch:
    """One batch whose every tensor is the per-signal tensors stacked on a new leading axis (``None`` stays None)."""
    stacked = {}
    for item in dataclass_fields(batches[0]):
        values = [getattr(b, item.name) for b in batches]
        stacked[item.name] = None if values[0] is None else torch.stack(values)
    return replace(batches[0], **stacked)


class StackedSignal(Signal):
    """``signals[n]`` sampled with a generator seeded by ``seeds[n]``; see the module docstring."""

    chunkable = False  # a chunk would slice fields, not samples

    def __init__(self, signals: list[Signal], seeds: list[int], batch_size: int | None, device: torch.device) -> None:
        if not signals or len(signals) != len(seeds):
            raise ConfigError("StackedSignal needs one seed per signal")
        first = signals[0]
        if len({(s.kind, s.n_input_dims, s.n_output_dims) for s in signals}) != 1:
            raise ConfigError("fields trained together need signals of one kind with the same input and output sizes")
        counts = {steps_samples(s, batch_size) for s in signals}
        if len(counts) != 1:
            raise ConfigError(f"fields trained together take the same number of samples per step, got {sorted(counts)}")
        self.signals = [s.to(device) for s in signals]
        self.kind, self.n_input_dims, self.n_output_dims = first.kind, first.n_input_dims, first.n_output_dims
        self.loss_is_mse = first.loss_is_mse and len(signals) == 1  # the loss is a sum over the fields
        self.samples_per_step = counts.pop()
        self.batch_size = batch_size
        self.generators = [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]
        self.item_metrics: list[dict[str, float]] = []
        self._full: Batch | None = None

    @property
    def samples_per_axis(self) -> int:
        return self.signals[0].samples_per_axis

    @property
    def n_samples(self) -> int:
        """Samples per field and step (what the Trainer's estimates scale by)."""
        return self.samples_per_step

    def to(self, device: torch.device) -> StackedSignal:
        self.signals = [s.to(device) for s in self.signals]
        self._full = None
        return self

    def sample(self, batch_size: int | None, generator: torch.Generator | None = None) -> Batch:
        """Every signal's own batch, stacked (the Trainer's ``generator`` is not used: each signal has its own)."""
        if batch_size is None or batch_size >= max(s.n_samples for s in self.signals):
            if self._full is None:  # full batches never change: stacked once
                self._full = stack_batches([s.sample(None, g) for s, g in zip(self.signals, self.generators, strict=True)])
            return self._full
        return stack_batches([s.sample(batch_size, g) for s, g in zip(self.signals, self.generators, strict=True)])

    def field_losses(self, field: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """``(N,)``: each field's own loss on its own batch."""
        predictions = field(batch.coords)
        template = self.signals[0]
        names = [f.name for f in dataclass_fields(batch) if isinstance(getattr(batch, f.name), torch.Tensor)]

        def one(prediction: torch.Tensor, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
            return template.loss(lambda coords: prediction, replace(batch, **tensors))

        return vmap(one)(predictions, {name: getattr(batch, name) for name in names})

    def loss(self, field: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """``Σ_n ℓ_n``: each field's gradient is that of its own loss."""
        return self.field_losses(field, batch).sum()

    def evaluate(self, field: torch.nn.Module) -> dict[str, float]:
        """Each signal's metrics of its own field (kept in :attr:`item_metrics`); returns their means."""
        if not isinstance(field, StackedFields):
            raise ConfigError("a StackedSignal evaluates StackedFields")
        self.item_metrics = [signal.evaluate(field.field(n).eval()) for n, signal in enumerate(self.signals)]
        keys = [k for k in self.item_metrics[0] if all(isinstance(m.get(k), float) for m in self.item_metrics)]
        return {k: sum(m[k] for m in self.item_metrics) / len(self.item_metrics) for k in keys}

    def write_outputs(self, field: torch.nn.Module, out_dir: Path) -> list[Path]:
        return []  # a dataset of fields keeps weights and metrics, not reconstructions

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "n_signals": len(self.signals), "samples_per_step": self.samples_per_step}
