"""The Signal interface: data, sampling, loss given a field, evaluation and outputs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch


@dataclass
class Batch:
    """Training samples: ``coords (N, n_input_dims)`` and target ``values (N, n_output_dims)`` in [0, 1]."""

    coords: torch.Tensor
    values: torch.Tensor

    def __len__(self) -> int:
        return self.coords.shape[0]

    def chunk(self, start: int, stop: int) -> Batch:
        """Samples ``start:stop``: every per-sample tensor (first dimension ``N``) sliced, the rest shared."""
        n = len(self)
        sliced = {f.name: value[start:stop] for f in fields(self)
                  if isinstance(value := getattr(self, f.name), torch.Tensor) and value.ndim and value.shape[0] == n}
        return replace(self, **sliced)


FINGERPRINT_POINTS = 64


@torch.no_grad()
def field_fingerprint(field: torch.nn.Module, n_input_dims: int, n_points: int = FINGERPRINT_POINTS) -> torch.Tensor:
    """``(n_points, out_dim)`` float32 outputs of ``field`` at fixed pseudo-random points of [-1, 1]^d, on the CPU.

    Any change of the field's weights or state (an optimizer step, a level schedule, a reloaded
    checkpoint) changes it, so an equal fingerprint means that a rendering cached by
    :meth:`Signal.evaluate` is still the field's and :meth:`Signal.write_outputs` may reuse it.
    """
    device = next(field.parameters()).device
    coords = torch.rand(n_points, n_input_dims, generator=torch.Generator().manual_seed(0)) * 2.0 - 1.0
    return field(coords.to(device)).float().cpu()


class Signal(ABC):
    """A signal a field is fitted to. Signals know nothing about how a field is built."""

    kind: str
    n_input_dims: int
    n_output_dims: int
    loss_is_mse: bool = True  # the progress bar shows a live PSNR of the loss only then
    chunkable: bool = True  # the loss is a mean over a batch's samples, so a batch may be split (train/chunking.py)

    @property
    @abstractmethod
    def samples_per_axis(self) -> int:
        """The largest number of samples along one axis (sets frequency-encoding defaults)."""

    @property
    @abstractmethod
    def n_samples(self) -> int:
        """Number of training samples (pixels, audio samples, ...)."""

    n_frames: int | None = None  # time samples of a time-varying signal (video frames); None otherwise
    # The coordinate scale s of the reference (SIREN) protocol for this kind of signal: a sine network that
    # reads raw coordinates sees s·x for x ∈ [-1, 1]. 1 (SIREN's [-1, 1]) for images, video and shapes;
    # audio: SIREN's t ∈ [-100, 100]. The API maps model presets to it (api.py:_apply_defaults).
    sine_coordinate_scale: float = 1.0

    def default_options(self, model: str, protocol: str) -> dict[str, Any]:
        """Option values this signal suggests for preset ``model`` where the user gave none.

        ``protocol`` is ``"paper"`` (the papers' settings, the default on a GPU) or ``"device"``
        (settings measured to fit well on the machine at hand, the default on a CPU).

        Keys are :class:`~inrkit.fields.ModelOptions` or :class:`~inrkit.train.TrainOptions` fields
        (e.g. audio: ``{"damping": "arctan", "batch_size": 8192}``); ``inrkit.fit`` applies them before
        building the field, so they are recorded in ``config.json``.
        """
        return {}

    def reconstruct(self, field: torch.nn.Module) -> Any:
        """The whole signal as ``field`` renders it, computed once per state of the field.

        Evaluation and output writing both call this, so the outputs written right after the final
        evaluation reuse its render. Kinds with a single dense render override :meth:`_render`.
        """
        rendering = self._recall(field)
        if rendering is None:
            rendering = self._render(field)
            self._remember(field, rendering)
        return rendering

    def _fingerprint(self, field: torch.nn.Module) -> torch.Tensor:
        """What identifies the state of ``field`` for :meth:`_recall`: :func:`field_fingerprint`
        (kinds whose fields take other inputs override it)."""
        return field_fingerprint(field, self.n_input_dims)

    def _remember(self, field: torch.nn.Module, rendering: Any) -> None:
        """Keep ``rendering`` of ``field`` (with its :meth:`_fingerprint`) for :meth:`_recall`."""
        self._remembered = (self._fingerprint(field), rendering)

    def _recall(self, field: torch.nn.Module) -> Any:
        """The rendering :meth:`_remember` kept, when ``field`` is unchanged since (equal fingerprint); else None."""
        remembered = getattr(self, "_remembered", None)
        if remembered is None or not torch.equal(remembered[0], self._fingerprint(field)):
            return None
        return remembered[1]

    def _render(self, field: torch.nn.Module) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no single dense render")

    @abstractmethod
    def to(self, device: torch.device) -> Signal:
        """Move the training data to ``device``; returns ``self``."""

    @abstractmethod
    def sample(self, batch_size: int | None, generator: torch.Generator | None = None) -> Batch:
        """A training batch: all samples when ``batch_size`` is None, else ``batch_size`` random ones."""

    def loss(self, field: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """Training loss of ``field`` on ``batch``: the MSE in normalised units by default."""
        return torch.mean((field(batch.coords).float() - batch.values) ** 2)

    # -- the sample pool (what a sampling policy of the trainer picks from, train/sampling/) --------------
    @property
    def pool_size(self) -> int | None:
        """``N``, the number of training samples a sampling policy may pick by index (:meth:`pool_batch`);
        None when the signal has no fixed pool whose loss is a mean of per-sample terms (the default)."""
        return None

    pool_grid: tuple[int, int] | None = None  # (H, W) when pool index i is pixel (i // W, i % W) of an image

    def pool_batch(self, index: torch.Tensor) -> Batch:
        """The training samples ``index`` ``(B,)`` (int64 in [0, N)) of the pool."""
        raise NotImplementedError(f"{type(self).__name__} has no sample pool")

    def residuals(self, field: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """``(B, C)`` residuals ``f(x_i) − y_i`` of the field on a pool batch (differentiable)."""
        return field(batch.coords).float() - batch.values

    def sample_losses(self, field: torch.nn.Module, batch: Batch) -> torch.Tensor:
        """``(B,)`` per-sample losses ``ℓ_i`` whose mean is the training loss: ``ℓ_i = (1/C)·Σ_c r_ic²`` by default."""
        return self.residuals(field, batch).square().mean(dim=1)

    @abstractmethod
    def evaluate(self, field: torch.nn.Module) -> dict[str, float]:
        """Quality metrics of ``field`` against the whole signal."""

    @abstractmethod
    def write_outputs(self, field: torch.nn.Module, out_dir: Path) -> list[Path]:
        """Write reconstructions (and error maps) into ``out_dir``; returns the paths."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able description sufficient to reopen the signal and decode the field's outputs."""
