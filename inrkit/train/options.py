"""Training options shared by the Python API and the CLI (flags are generated from these fields)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from inrkit.backends import BACKENDS
from inrkit.devices import DEVICE_CHOICES
from inrkit.errors import InrkitError
from inrkit.train.progressive import DEFAULT_WINDOWS, check_progressive
from inrkit.train.sampling import SAMPLING_DEFAULTS, SAMPLING_POLICIES
from inrkit.train.schedules import SCHEDULES

DEFAULT_STEPS = 2000  # the paper protocol's budget when neither --steps nor --seconds is given
DEVICE_SECONDS = 120.0  # the device protocol's budget when neither is given: a first fit ends in minutes
PROTOCOLS = ("auto", "paper", "device")


@dataclass
class TrainOptions:
    """Optimisation budget, schedule and bookkeeping. ``None`` means "use the default"."""

    steps: int | None = field(default=None, metadata={
        "help": f"optimizer steps (default: {DEFAULT_STEPS} under the paper protocol, {DEVICE_SECONDS:g} s of training "
                "under the device protocol)"})
    seconds: float | None = field(default=None, metadata={"help": "wall-clock budget in seconds"})
    lr: float | None = field(default=None, metadata={"help": "learning rate (default: the model preset's)"})
    schedule: str | None = field(default=None, metadata={
        "help": "lr schedule: exp (x0.1 over the run) | constant | cosine | ngp (instant-ngp steps); "
                "default: exp under the paper protocol, the preset's measured choice under the device protocol"})
    batch_size: int | None = field(default=None, metadata={
        "help": "samples per step (default: full batch under the paper protocol for MLPs, the preset's random "
                "minibatch under the device protocol)"})
    chunk_size: int | None = field(default=None, metadata={
        "help": "samples per forward/backward pass; larger batches accumulate gradients over chunks (default: "
                "sized from free memory and the network's activation cost)"})
    eval_every: int = field(default=500, metadata={"help": "evaluate and checkpoint every N steps (0: only at the end)"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    device: str = field(default="auto", metadata={"help": f"{' | '.join(DEVICE_CHOICES)} | cuda:N"})
    amp: bool = field(default=False, metadata={
        "help": "mixed precision (bfloat16 autocast) on CUDA; refused for sine networks (bfloat16 loses their phase)"})
    threads: int | None = field(default=None, metadata={
        "help": "CPU threads (default: re-chosen while training, all cores or one, whichever steps faster on a "
                "busy machine)"})
    quiet: bool = field(default=False, metadata={"help": "no progress bar"})
    backend: str = field(default="auto", metadata={"help": "auto | torch (reference) | fast | tcnn: engine for hash grids"})
    protocol: str = field(default="auto", metadata={
        "help": "paper (the papers' full-batch settings) | device (minibatches and schedules measured for this "
                "machine) | auto (paper on a GPU, device elsewhere)"})
    progressive: str | None = field(default=None, metadata={
        "help": "progressive encoding: the encoding's frequency bands (octaves, Fourier features, grid levels) open "
                "coarse to fine: barf (cosine window) | nerfies (cosine, linear alpha) | step (hard) | levels "
                "(hash-level annealing) | sape (per location, by the local loss) (default: none, all bands at once)"})
    progressive_start: float | None = field(default=None, metadata={
        "help": "fraction of the run where the bands start opening (default: the schedule's: barf/step 0.1, nerfies 0, "
                "levels 0.05, sape 0)"})
    progressive_end: float | None = field(default=None, metadata={
        "help": "fraction of the run where every band is open (default: barf/step 0.5, nerfies 0.8, levels 0.17, sape 0.5)"})
    coarse_to_fine: int = field(default=0, metadata={
        "help": "--progressive levels with a level every N steps: start with a quarter of the levels and open one every "
                "N steps (0: off)"})
    clip_grad_norm: float | None = field(default=None, metadata={
        "help": "clip the total L2 norm of the gradient over all parameters to C before each step, "
                "g <- g*min(1, C/(|g|+1e-6)) (default: none; SIREN's SDF protocol, --sdf-loss siren under --protocol "
                "paper: 1)"})
    ema_decay: float | None = field(default=None, metadata={
        "help": "keep tiny-cuda-nn's bias-corrected exponential moving average of the weights with this decay d; "
                "evaluation, weights.safetensors and outputs use it (default: none; the instant-ngp NeRF presets: "
                "0.95; 0 turns it off)"})
    sampling: str = field(default="uniform", metadata={
        "help": "which samples form each batch: uniform (random) | int (top-k by residual, INT) | evos (evolutionary "
                "selection, EVOS) | error (drawn in proportion to each sample's last loss, with a floor)"})
    sampling_ratio: float | None = field(default=None, metadata={
        "help": "--sampling int: the starting share rho0 of the samples kept (default 0.2); evos: the share each "
                "iteration trains on (default 0.5)"})
    sampling_floor: float | None = field(default=None, metadata={
        "help": "--sampling error: the share of the probability spread uniformly, so every sample keeps a chance "
                "(default 0.1)"})

    def validate(self) -> None:
        """Raise :class:`InrkitError` for impossible settings."""
        if self.steps is not None and self.steps <= 0:
            raise InrkitError(f"--steps must be positive, got {self.steps}")
        if self.seconds is not None and not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise InrkitError(f"--seconds must be positive, got {self.seconds}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise InrkitError(f"--lr must be positive, got {self.lr}")
        if self.batch_size is not None and self.batch_size <= 0:
            raise InrkitError(f"--batch-size must be positive, got {self.batch_size}")
        if self.threads is not None and self.threads <= 0:
            raise InrkitError(f"--threads must be positive, got {self.threads}")
        if self.chunk_size is not None and self.chunk_size <= 0:
            raise InrkitError(f"--chunk-size must be positive, got {self.chunk_size}")
        if self.eval_every < 0:
            raise InrkitError(f"--eval-every must be >= 0, got {self.eval_every}")
        if self.backend not in BACKENDS:
            raise InrkitError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        check_progressive(self.progressive, self.progressive_start, self.progressive_end, self.coarse_to_fine)
        if self.protocol not in PROTOCOLS:
            raise InrkitError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.clip_grad_norm is not None and not (self.clip_grad_norm > 0 and math.isfinite(self.clip_grad_norm)):
            raise InrkitError(f"--clip-grad-norm must be positive, got {self.clip_grad_norm}")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise InrkitError(f"--ema-decay must be in [0, 1), got {self.ema_decay}")
        if self.sampling not in SAMPLING_POLICIES:
            raise InrkitError(f"--sampling must be one of {', '.join(SAMPLING_POLICIES)}, got {self.sampling!r}")
        if self.sampling_ratio is not None and not 0.0 < self.sampling_ratio <= 1.0:
            raise InrkitError(f"--sampling-ratio must be in (0, 1], got {self.sampling_ratio}")
        if self.sampling_floor is not None and not 0.0 < self.sampling_floor <= 1.0:
            raise InrkitError(f"--sampling-floor must be in (0, 1], got {self.sampling_floor}")
        if self.sampling_ratio is not None and self.sampling not in ("int", "evos"):
            raise InrkitError(f"--sampling-ratio applies to --sampling int or evos, not {self.sampling}")
        if self.sampling_floor is not None and self.sampling != "error":
            raise InrkitError(f"--sampling-floor applies to --sampling error, not {self.sampling}")
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise InrkitError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")

    def resolve_defaults(self) -> None:
        """Fill the defaults that depend on other options, so that config.json records the values used.

        ``--coarse-to-fine N`` alone is ``--progressive levels`` by steps; a progressive schedule without
        ``--progressive-start/--progressive-end`` takes its default window
        (:data:`~inrkit.train.progressive.DEFAULT_WINDOWS`); a sampling policy without ``--sampling-ratio`` /
        ``--sampling-floor`` takes its paper's value (:data:`~inrkit.train.sampling.SAMPLING_DEFAULTS`).
        """
        default_ratio, default_floor = SAMPLING_DEFAULTS.get(self.sampling, (None, None))
        self.sampling_ratio = default_ratio if self.sampling_ratio is None else self.sampling_ratio
        self.sampling_floor = default_floor if self.sampling_floor is None else self.sampling_floor
        if self.coarse_to_fine and self.progressive is None:
            self.progressive = "levels"
        if self.progressive is not None and not self.coarse_to_fine:
            default_start, default_end = DEFAULT_WINDOWS[self.progressive]
            self.progressive_start = default_start if self.progressive_start is None else self.progressive_start
            self.progressive_end = default_end if self.progressive_end is None else self.progressive_end

    def resolved_protocol(self, device_type: str) -> str:
        """``paper`` or ``device``: ``auto`` is the paper protocol on a CUDA GPU, the device protocol elsewhere."""
        if self.protocol != "auto":
            return self.protocol
        return "paper" if device_type == "cuda" else "device"

    @property
    def step_budget(self) -> int | None:
        """Steps to run: ``steps``, or the default when no time budget is given either."""
        if self.steps is not None:
            return self.steps
        return None if self.seconds is not None else DEFAULT_STEPS
