"""Audio as a signal: samples ``(n, C)`` at sample-centre times ``t ∈ [-1, 1]``.

Sample ``i`` of ``n`` sits at ``t = (2i + 1)/n − 1`` (the pixel-centre rule of images), so the clip
always spans [-1, 1] and a reconstruction at another rate ``r'`` queries ``n' = round(n·r'/r)``
centres of the same interval. Values are scaled by the clip's peak as SIREN does
(``x/max|x| ∈ [-1, 1]``) and stored in inrkit's normalised units ``v = (x/peak + 1)/2 ∈ [0, 1]``;
``peak`` and the WAV encoding are kept in the run config, so the reconstruction is written back at
the original level and bit depth.

SIREN fits audio with ω0 = 30 on ``t ∈ [-100, 100]`` (REFERENCE §0, §1.1): the signal states that
coordinate scale (:data:`SIREN_TIME_SCALE`, ``AudioSignal.sine_coordinate_scale``) and the API gives it
to the presets it fits (``siren`` and ``spder`` see ``100·t``, the field's Identity encoding scale, so a
loaded field still takes t ∈ [-1, 1]). :meth:`AudioSignal.default_options` adds SPDER's audio damping
``arctan`` (§1.2). Hash grids get levels up to one cell per sample (:func:`grid_geometry_for`); on a
CPU they are the backbone for long audio (:class:`AudioOptions`).

Metrics: PSNR on [0, 1] (equal to ``10·log10(4/MSE)`` on the peak-scaled [-1, 1] samples) and
SNR ``10·log10(Σx² / Σ(x − x̂)²)``.

Example:
    >>> import numpy as np
    >>> t = np.arange(8000) / 8000
    >>> signal = AudioSignal.from_array(np.sin(2 * np.pi * 440 * t), sample_rate=8000)
    >>> signal.n_samples, signal.sample_rate
    (8000, 8000)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inrkit import metrics
from inrkit.errors import InrkitError
from inrkit.io.audio import read_wav, write_wav
from inrkit.signals.base import Batch, Signal
from inrkit.signals.image import pixel_centre

# SIREN's train_audio.py: ω0 = 30 on t ∈ [-100, 100], i.e. time coordinates scaled by 100 (REFERENCE §0, §1.1)
SIREN_TIME_SCALE = 100.0
SINE_MODELS = ("siren", "spder", "finer")  # presets that take SIREN's audio training protocol (PAPER_AUDIO_TRAINING)
GRID_MODELS = ("hashgrid", "hashgrid-siren")
DEFAULT_AUDIO_BATCH = 8192
# SIREN's train_audio.py: Adam 1e-4, no schedule, full batch (the default when no batch size is given; REFERENCE §1.1)
PAPER_AUDIO_TRAINING: dict[str, Any] = {"lr": 1e-4, "schedule": "constant"}
GRID_LEVELS = 16
GRID_BASE_RESOLUTION = 16
MAX_GRID_LOG2_TABLE = 21  # 2^21 entries per level at most: longer clips hash their finest levels


@dataclass
class AudioOptions:
    """How a WAV file becomes a signal.

    Long audio on a CPU fits best with ``--model hashgrid`` (its grid sized to one cell per sample):
    on the 7 s Bach clip in 120 s on 2 cores, SNR 32 dB against 10-13 dB for ``siren`` (BENCHMARKS.md).
    inrkit never switches the model for you.
    """

    max_audio_seconds: float = field(default=1800.0, metadata={
        "help": "refuse longer audio (raise to fit it anyway). On a CPU, long audio fits best with --model hashgrid "
                "(7 s Bach clip in 120 s on 2 cores: SNR 32 dB, siren 10-13 dB)"})


@torch.no_grad()
def render(field: torch.nn.Module, n_samples: int, max_points: int = 1 << 16) -> np.ndarray:
    """Query ``field`` at ``n_samples`` sample centres of [-1, 1]: ``(n_samples, C)`` float32, unclamped."""
    if n_samples < 1:
        raise InrkitError(f"number of audio samples must be positive, got {n_samples}")
    device = next(field.parameters()).device
    chunks = []
    for start in range(0, n_samples, max_points):
        index = torch.arange(start, min(n_samples, start + max_points), device=device)
        chunks.append(field(pixel_centre(index, n_samples)[:, None]).float().cpu().numpy())
    return np.concatenate(chunks)


def grid_geometry_for(n_samples: int) -> dict[str, Any]:
    """Hash-grid options whose finest level has one cell per sample of an ``n_samples`` clip.

    ``L`` = :data:`GRID_LEVELS` levels from ``N_min`` = :data:`GRID_BASE_RESOLUTION`, growth
    ``b = ((n + 1)/N_min)^(1/(L−1))`` so that the finest scale ``s = N_min·b^(L−1) − 1`` is ``n``
    (REFERENCE §2.1): sample ``i``'s centre ``(i + ½)/n`` of [0, 1] lands on vertex ``i + 1``. The
    table has ``2^⌈log2 n⌉`` entries (capped at 2^21), so the finest level is dense, not hashed.
    """
    per_level_scale = max(1.0, ((n_samples + 1) / GRID_BASE_RESOLUTION) ** (1.0 / (GRID_LEVELS - 1)))
    log2_table = min(MAX_GRID_LOG2_TABLE, math.ceil(math.log2(max(n_samples, 2))))
    return {"n_levels": GRID_LEVELS, "base_resolution": GRID_BASE_RESOLUTION, "per_level_scale": per_level_scale,
            "log2_hashmap_size": log2_table}


def normalise(samples: np.ndarray, peak: float) -> np.ndarray:
    """File scale to [0, 1]: ``(x/peak + 1)/2`` as float32."""
    return ((samples / peak + 1.0) * 0.5).astype(np.float32)


def denormalise(values: np.ndarray, peak: float) -> np.ndarray:
    """[0, 1] to file scale: ``(2·clip(v, 0, 1) − 1)·peak``."""
    return (2.0 * np.clip(values, 0.0, 1.0) - 1.0) * peak


def snr(prediction: np.ndarray, target: np.ndarray) -> float:
    """``10·log10(Σ target² / Σ (target − prediction)²)`` in dB (scale-free); ``inf`` for a perfect match."""
    noise = float(np.square(target.astype(np.float64) - prediction).sum())
    power = float(np.square(target.astype(np.float64)).sum())
    if noise == 0.0:
        return math.inf
    return -math.inf if power == 0.0 else 10.0 * math.log10(power / noise)


class AudioSignal(Signal):
    """A clip to fit; see the module docstring for coordinates and normalisation."""

    kind = "audio"
    n_input_dims = 1
    sine_coordinate_scale = SIREN_TIME_SCALE

    def __init__(self, samples: np.ndarray, sample_rate: int, subtype: str = "FLOAT", source: str | None = None,
                 options: AudioOptions | None = None) -> None:
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim == 1:
            samples = samples[:, None]
        if samples.ndim != 2:
            raise InrkitError(f"audio samples must be (n, channels), got shape {samples.shape}")
        if samples.shape[0] < 2:
            raise InrkitError(f"audio has {samples.shape[0]} samples; inrkit needs at least 2")
        if samples.shape[1] < 1:
            raise InrkitError("audio has no channels")
        if sample_rate < 1:
            raise InrkitError(f"sample rate must be positive, got {sample_rate}")
        if not np.isfinite(samples).all():
            raise InrkitError("audio contains NaN or infinite samples")
        peak = float(np.abs(samples).max())
        self.peak = peak if peak > 0 else 1.0  # a silent clip stays silent
        self.sample_rate = int(sample_rate)
        self.subtype = subtype
        self.source = source
        self.options = options or AudioOptions()
        self.n_output_dims = samples.shape[1]
        self.values = torch.from_numpy(normalise(samples, self.peak))  # (n, C) in [0, 1]
        self._times: torch.Tensor | None = None

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, options: AudioOptions | None = None) -> AudioSignal:
        """Load a WAV file (8/16/24/32-bit integer or 32/64-bit float, any rate, any channel count)."""
        options = options or AudioOptions()
        path = Path(path)
        if not path.is_file():
            raise InrkitError(f"cannot read {path}: no such file")
        if not options.max_audio_seconds > 0:
            raise InrkitError(f"--max-audio-seconds must be positive, got {options.max_audio_seconds}")
        samples, info = read_wav(path)
        if info.frames == 0:
            raise InrkitError(f"cannot fit {path}: the audio is empty (0 samples)")
        seconds = info.frames / info.sample_rate
        if seconds > options.max_audio_seconds:
            raise InrkitError(f"{path} is {seconds:.1f} s long, above --max-audio-seconds {options.max_audio_seconds:g}; "
                              "raise that limit to fit it anyway")
        try:
            return cls(samples, info.sample_rate, info.subtype, source=str(path.resolve()), options=options)
        except InrkitError as err:
            raise InrkitError(f"cannot fit {path}: {err}") from None

    @classmethod
    def from_array(cls, samples: np.ndarray, sample_rate: int) -> AudioSignal:
        """Wrap ``(n,)`` or ``(n, C)`` float samples (any scale) at ``sample_rate`` Hz."""
        return cls(samples, sample_rate)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AudioSignal:
        """Reopen the signal described by :meth:`config`."""
        if config.get("source") is None:
            raise InrkitError("this run was fitted to in-memory audio; its signal cannot be reopened")
        return cls.from_file(config["source"], AudioOptions(**config.get("options", {})))

    # -- Signal interface -----------------------------------------------------------------------
    @property
    def samples_per_axis(self) -> int:
        return self.n_samples

    @property
    def n_samples(self) -> int:
        return int(self.values.shape[0])

    @property
    def duration(self) -> float:
        """Length of the clip in seconds."""
        return self.n_samples / self.sample_rate

    def default_options(self, model: str, protocol: str) -> dict[str, Any]:
        """Suggestions for preset ``model``, decided from its name (a signal knows nothing of fields;
        the coordinate scale is :attr:`sine_coordinate_scale`, which the API maps to the presets).

        ``spder``: SPDER's audio damping ``arctan`` under both protocols. :data:`SINE_MODELS` under
        ``paper``: SIREN's audio protocol (full batch, Adam 1e-4, no schedule). Hash-grid presets:
        :func:`grid_geometry_for` sizes the grid so that its finest level resolves every sample (the
        image preset's levels stop near 7k cells). Under ``device`` every preset takes random batches of
        :data:`DEFAULT_AUDIO_BATCH` samples (a full batch of a 7 s clip costs seconds per CPU step;
        for the hash grid 8k, 16k and 32k reached the same SNR per second on the Bach clip).
        """
        suggested: dict[str, Any] = grid_geometry_for(self.n_samples) if model in GRID_MODELS else {}
        if model == "spder":
            suggested["damping"] = "arctan"
        if model in SINE_MODELS and protocol == "paper":
            suggested.update(PAPER_AUDIO_TRAINING)
        if protocol == "device":
            suggested["batch_size"] = DEFAULT_AUDIO_BATCH
        return suggested

    def to(self, device: torch.device) -> AudioSignal:
        self.values = self.values.to(device)
        self._times = None
        return self

    def sample(self, batch_size: int | None, generator: torch.Generator | None = None) -> Batch:
        device = self.values.device
        if batch_size is None or batch_size >= self.n_samples:
            if self._times is None:
                self._times = pixel_centre(torch.arange(self.n_samples, device=device), self.n_samples)[:, None]
            return Batch(self._times, self.values)
        index = torch.randint(self.n_samples, (batch_size,), device=device, generator=generator)
        return self.pool_batch(index)

    @property
    def pool_size(self) -> int:
        """Every audio sample (all channels of one time step together)."""
        return self.n_samples

    def pool_batch(self, index: torch.Tensor) -> Batch:
        return Batch(pixel_centre(index, self.n_samples)[:, None], self.values[index])

    def _render(self, field: torch.nn.Module) -> np.ndarray:
        return render(field, self.n_samples)

    def evaluate(self, field: torch.nn.Module) -> dict[str, float]:
        """PSNR and SNR of the whole clip (its rendering is kept for :meth:`write_outputs`)."""
        prediction = np.clip(self.reconstruct(field), 0.0, 1.0)
        target = self.values.cpu()
        return {"psnr": metrics.psnr(torch.from_numpy(prediction), target),
                "snr": snr(2.0 * prediction - 1.0, 2.0 * target.numpy() - 1.0)}

    def write_outputs(self, field: torch.nn.Module, out_dir: Path) -> list[Path]:
        """``reconstruction.wav``: the last :meth:`evaluate`'s rendering when ``field`` is unchanged since."""
        prediction = self.reconstruct(field)
        return [write_wav(out_dir / "reconstruction.wav", denormalise(prediction, self.peak), self.sample_rate, self.subtype)]

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "options": asdict(self.options),
            "n_samples": self.n_samples,
            "sample_rate": self.sample_rate,
            "channels": self.n_output_dims,
            "normalisation": {"peak": self.peak, "subtype": self.subtype},
        }


def write_audio(field: torch.nn.Module, signal_config: dict[str, Any], out: str | Path, rate: int | None = None) -> Path:
    """Render an audio run at ``rate`` Hz (default: the original) and write it as a WAV.

    The clip keeps its duration: ``n' = round(n·rate/original_rate)`` samples are queried at the
    sample centres of [-1, 1]: resampling by querying the continuous field.
    """
    original_rate = int(signal_config["sample_rate"])
    rate = original_rate if rate is None else int(rate)
    if rate < 1:
        raise InrkitError(f"--rate must be a positive sample rate, got {rate}")
    n_out = max(1, round(int(signal_config["n_samples"]) * rate / original_rate))
    normalisation = signal_config["normalisation"]
    samples = denormalise(render(field, n_out), float(normalisation["peak"]))
    return write_wav(out, samples, rate, normalisation["subtype"])
