"""Compress an image with a latent field (Cool-Chic / C3 class): fit on ``D + λ·R``, quantise, code, write.

Pipeline (:func:`compress_image`):

1. build a :class:`~inrkit.fields.latent_field.LatentField` for the image from a complexity preset
   (:data:`COMPLEXITY`: grid levels, synthesis and ARM sizes);
2. train it with the one :class:`~inrkit.train.Trainer` on
   :class:`~inrkit.signals.rate_distortion.RateDistortionImage` (lr 2·10⁻², cosine decay to zero; SOAP on the
   networks and Adam on the latents, :data:`OPTIMIZER`; the latents carry an encoder gain,
   :data:`~inrkit.encodings.latent_grids.LATENT_GAIN`): soft rounding and
   Gaussian noise on the latents for the whole budget, annealed (:data:`SOFT_ROUND`, :data:`NOISE_SIGMA`).
   No straight-through phase: on a 256² Kodak crop (λ = 10⁻³, after 1,500 noise steps) 300 more steps of
   straight-through rounding *lost* 0.4–0.8 dB and gained 4–6 % rate at lr 10⁻⁴ (identity or soft-round
   backward), and 300 steps of the networks alone on the rounded latents gained 0.01 dB, so neither is done.
   With ``target_bpp`` λ is steered while training: every :data:`LAMBDA_EVERY` steps between the fractions
   :data:`LAMBDA_WINDOW` of the budget, the rate of the rounded latents (ARM estimate, plus the networks'
   and header's bytes) is measured and ``log λ ← log λ + clip(0.15·log(R/R_target), ±0.1)``, λ kept within
   a factor :data:`LAMBDA_RANGE` of its start; λ is frozen after, while the learning rate anneals. The rate
   answers λ with a lag of a hundred steps or more and falls by a quarter or more at a fixed λ over the
   first 40 % of a fit, so a controller that starts early undershoots or winds up (kodim01, 240 s: from
   5 % with gain 0.5, ±0.25 a 0.1 bpp target ended at λ = 10⁴, 0.05 bpp, 18 dB; from 20 % with this gain,
   0.056 bpp for 0.1 and 0.143 for 0.2).
   Progress bar, checkpoints, Ctrl-C and resume are the Trainer's (the run directory is ``OUT.run/``;
   ``resume=True`` continues it, and it is removed once the file is written);
3. quantise the synthesis and ARM parameters per tensor (:func:`inrkit.export.latent_codec.choose_network_bits`:
   the bit width, 5–10, minimising ``D + λ·R`` of the coded file) and code everything
   (:mod:`inrkit.export.latent_codec`);
4. decode the bytes again and report what a reader gets (PSNR of the 8-bit image, exact bpp), which goes
   into the header (only the header is packed again: :func:`inrkit.export.latent_codec.pack_file`).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from inrkit.api.latent_lambda import webp_slope
from inrkit.devices import resolve_device, seed_everything
from inrkit.errors import InrkitError
from inrkit.export import inrz, latent_codec
from inrkit.fields.arm import CODER_PROBABILITY_FLOOR
from inrkit.fields.latent_field import LatentField
from inrkit.files import atomic_write_bytes, check_output, write_json
from inrkit.signals.image import ImageSignal, denormalise
from inrkit.signals.rate_distortion import RateDistortionImage, quantised_psnr
from inrkit.train import Trainer, TrainOptions
from inrkit.train.threads import cpu_thread_hooks, restored_threads

__all__ = ["COMPLEXITY", "LOW_PRESET_BELOW", "LatentOptions", "LatentReport", "compress_image", "latent_config"]

# Decoder complexity presets: latent levels, synthesis (neurons, hidden layers, 3×3 refinements), ARM (context,
# neurons, layers). The synthesis is Cool-Chic's (one hidden 1×1 layer of 8 / 16 / 48, two 3×3 residual
# convolutions): on a 256² Kodak crop at λ = 10⁻³ after 600 steps, (16, 1, 2) with lr 2·10⁻² on the networks
# reached 31.79 dB at 1.49 bpp where the former (16, 2) MLP + one 3×3 at lr 10⁻² gave 31.69 dB at 1.76 bpp.
COMPLEXITY: dict[str, dict[str, Any]] = {
    "low": {"n_levels": 7, "synthesis": (8, 1, 2), "arm": (8, 8, 1)},
    "medium": {"n_levels": 7, "synthesis": (16, 1, 2), "arm": (12, 12, 2)},
    "high": {"n_levels": 7, "synthesis": (48, 1, 2), "arm": (21, 24, 2)},
}
# ``--complexity auto`` (the default) builds the low preset for target rates under this (bpp), medium otherwise. At
# 0.1 bpp on the 12 Kodak images (600 s each on one thread) low codes a little better than medium for half the
# decoder's multiplications (373 against 762 per pixel; decode + render 121 against 133 ms median): mean PSNR 26.07
# against 26.08 dB on 3 % fewer bits (0.099 against 0.102 bpp); at matched rate +0.14 dB by the images' HEVC curves,
# +0.15 by medium's own, from −0.9 to +1.2 dB per image. At 0.2 bpp and above only medium has been measured.
LOW_PRESET_BELOW = 0.15
# The networks train with SOAP (Cool-Chic 5's optimiser and settings), the latents with Adam
# (LatentGrids.optimizer_group): 600 steps on three 256×384 Kodak crops gave a 4–17 % lower D + λ·R than Adam.
OPTIMIZER = {"otype": "SOAP", "beta1": 0.95, "beta2": 0.95, "weight_decay": 0.01, "precondition_every": 10}
# Soft-rounding temperature and Gaussian noise σ, start and end of training, and the lr decay: Cool-Chic 5's (it
# anneals to zero; before, (0.3, 0.1), (0.25, 0.1) and a cosine to a tenth). Together: a 1–4 % lower D + λ·R than
# before on 3 of 4 fits of 256×384 Kodak crops in 50 s (1 % higher on the fourth; seeds alone vary by 5–8 %).
SOFT_ROUND = (0.35, 0.08)
NOISE_SIGMA = (0.22, 0.15)
LR_SCHEDULE = "cosine-zero"
LAMBDA_EVERY = 10
LAMBDA_GAIN = 0.15
LAMBDA_WINDOW = (0.4, 0.9)  # λ is steered between these fractions of the budget, frozen after
LAMBDA_MAX_STEP = 0.1  # |Δ log λ| per update at most
LAMBDA_RANGE = 16.0  # λ stays within [λ_0/16, 16·λ_0] of its start (:func:`initial_lambda`)
DEFAULT_LR = 2e-2
EVAL_EVERY = 250  # steps between evaluations and checkpoints (about a minute of a 768×512 encode)


@dataclass
class LatentOptions:
    """How to code an image with a latent field (``inrkit compress IMAGE OUT --codec latent`` flags)."""

    lmbda: float | None = field(default=None, metadata={"flag": "--lambda", "help": "rate weight λ of D + λ·R (MSE "
                                                        "on [0,1] pixels, R in bits per pixel); default: searched for "
                                                        "--target-bpp, else 0.001"})
    target_bpp: float | None = field(default=None, metadata={"shared": True, "help": "search λ while training so that "
                                                                     "the file has about this many bits per pixel"})
    complexity: str = field(default="auto", metadata={"help": "decoder size: low | medium | high (373, 762, "
                                                              "2,170 multiplications per pixel) | auto (low for a "
                                                              f"--target-bpp under {LOW_PRESET_BELOW:g}, else medium)"})
    steps: int | None = field(default=None, metadata={"help": "training steps (default: the --seconds budget)"})
    seconds: float | None = field(default=None, metadata={"help": "training budget in seconds (default 300 without "
                                                                  "--steps)"})
    lr: float = field(default=DEFAULT_LR, metadata={"help": "learning rate of the networks (SOAP) and the latents "
                                                           "(Adam), cosine decay to zero"})
    seed: int = field(default=0, metadata={"help": "random seed of the networks' start and the quantisation noise"})
    threads: int | None = field(default=None, metadata={"help": "CPU threads (default: the trainer's tuner)"})
    # cpu by default until a GPU encode has been measured (BENCHMARKS.md); the file is coded on the CPU either way
    device: str = field(default="cpu", metadata={"help": "where to train: cpu | cuda | cuda:N | mps | auto (the file is "
                                                         "coded on the CPU; default cpu)"})
    quiet: bool = field(default=False, metadata={"help": "no progress bar"})

    def validate(self) -> None:
        """Raise :class:`InrkitError` for impossible settings."""
        if self.complexity not in (*COMPLEXITY, "auto"):
            raise InrkitError(f"--complexity must be one of {', '.join(COMPLEXITY)}, auto; got {self.complexity!r}")
        for name in ("lmbda", "target_bpp", "seconds", "lr"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                flag = "--lambda" if name == "lmbda" else "--" + name.replace("_", "-")
                raise InrkitError(f"{flag} must be positive, got {value}")
        if self.steps is not None and self.steps <= 0:
            raise InrkitError(f"--steps must be positive, got {self.steps}")
        if self.lmbda is not None and self.target_bpp is not None:
            raise InrkitError("give --lambda or --target-bpp, not both")
        resolve_device(self.device)  # an unknown or absent device is refused before anything is written

    def preset(self) -> str:
        """The :data:`COMPLEXITY` preset to build: ``complexity``, or for ``auto`` the one that codes
        ``target_bpp`` best (:data:`LOW_PRESET_BELOW`)."""
        if self.complexity != "auto":
            return self.complexity
        return "low" if self.target_bpp is not None and self.target_bpp < LOW_PRESET_BELOW else "medium"

    def budget(self) -> tuple[int | None, float | None]:
        """``(steps, seconds)`` of training."""
        if self.steps is None and self.seconds is None:
            return None, 300.0
        return self.steps, self.seconds


def latent_config(height: int, width: int, channels: int, complexity: str = "medium") -> dict[str, Any]:
    """The field config of a latent field for an ``height × width × channels`` image at a complexity preset."""
    preset = COMPLEXITY[complexity]
    levels = min(preset["n_levels"], max(1, math.floor(math.log2(min(height, width))) + 1))
    neurons, layers, refine = preset["synthesis"]
    context, arm_neurons, arm_layers = preset["arm"]
    return {"n_input_dims": 2, "n_output_dims": channels,
            "encoding": {"otype": "LatentGrids", "height": height, "width": width, "n_levels": levels},
            "network": {"otype": "Synthesis", "n_neurons": neurons, "n_hidden_layers": layers,
                        "n_refine": refine},
            "arm": {"otype": "ARM", "n_context": context, "n_neurons": arm_neurons, "n_hidden_layers": arm_layers},
            "optimizer": dict(OPTIMIZER)}


def initial_lambda(image: ImageSignal, target_bpp: float | None) -> float:
    """λ to start from: for a target rate ``R``, the slope of WebP's rate–distortion curve on the image at ``R``
    (:func:`inrkit.api.latent_lambda.webp_slope`), else 0.001. Before, the start was ``0.004·(0.3/R)^1.1`` for
    every image. λ's path matters as much as its end: for 0.3 bpp (600 s), a start at 0.01 falling to 0.004 gave
    kodim01 26.30 dB at 0.304 bpp against 25.49 dB at 0.298 from 0.004 (λ barely moved), but on kodim03 it fell
    to its bound (0.01/16) and gave 32.77 dB at 0.260 bpp against 33.93 at 0.303; the image's own slope is a
    little above the λ it ends at for both."""
    if target_bpp is None:
        return 0.001
    return webp_slope(denormalise(image.pixels.numpy(), image.normalisation), target_bpp)


class RateSchedule:
    """The step hook of a latent-field fit: quantisation mode by progress, λ search toward ``target_bpp``.

    ``trainer`` is attached after the Trainer is built (its :meth:`~inrkit.train.Trainer.progress_fraction` is
    the schedule's clock). ``overhead_bits``: the file's bits besides the latents (networks, header), counted in
    the rate. λ is the schedule's state: it is in every checkpoint (``state_key``), so an interrupted
    encode resumes on the same λ path.
    """

    state_key = "rate_schedule"

    def __init__(self, field_: LatentField, signal: RateDistortionImage, target_bpp: float | None,
                 overhead_bits: float) -> None:
        self.field, self.signal = field_, signal
        self.target_bpp = target_bpp
        self.overhead_bits = overhead_bits
        self.trainer: Trainer | None = None
        self.lambda_bounds = (signal.lmbda / LAMBDA_RANGE, signal.lmbda * LAMBDA_RANGE)

    def state(self) -> dict[str, float]:
        return {"lambda": self.signal.lmbda}

    def load_state(self, state: dict[str, Any]) -> None:
        lmbda = state.get("lambda")
        if not (isinstance(lmbda, (int, float)) and math.isfinite(lmbda) and lmbda > 0):
            raise InrkitError(f"the checkpoint's rate schedule has no valid λ ({lmbda!r:.40})")
        self.signal.lmbda = float(lmbda)

    def __call__(self, step: int) -> None:
        assert self.trainer is not None
        progress = min(self.trainer.progress_fraction(), 1.0)
        encoding = self.field.encoding
        encoding.mode = "noise"
        encoding.temperature = SOFT_ROUND[0] + (SOFT_ROUND[1] - SOFT_ROUND[0]) * progress
        encoding.noise = NOISE_SIGMA[0] + (NOISE_SIGMA[1] - NOISE_SIGMA[0]) * progress
        steering = LAMBDA_WINDOW[0] <= progress < LAMBDA_WINDOW[1]
        if self.target_bpp is not None and steering and step % LAMBDA_EVERY == 0:
            with torch.no_grad():
                bits = float(self.field.rate_bits(encoding.integers(), CODER_PROBABILITY_FLOOR))
                bpp = (bits + self.overhead_bits) / self.signal.n_samples
            change = LAMBDA_GAIN * math.log(max(bpp, 1e-6) / self.target_bpp)
            lmbda = self.signal.lmbda * math.exp(min(max(change, -LAMBDA_MAX_STEP), LAMBDA_MAX_STEP))
            self.signal.lmbda = min(max(lmbda, self.lambda_bounds[0]), self.lambda_bounds[1])


@dataclass
class LatentReport:
    """What :func:`compress_image` wrote."""

    path: Path
    n_bytes: int
    height: int
    width: int
    psnr: float
    lmbda: float
    macs_per_pixel: float
    complexity: str
    encode_seconds: float
    steps: int

    @property
    def bpp(self) -> float:
        return 8.0 * self.n_bytes / (self.height * self.width)

    def summary(self) -> str:
        return (f"wrote {self.path}: {self.n_bytes:,} bytes, {self.bpp:.4f} bpp, PSNR {self.psnr:.2f} dB, "
                f"λ {self.lmbda:.3g}, decoder {self.macs_per_pixel:,.0f} MAC/pixel ({self.complexity}), {self.steps} steps "
                f"({self.encode_seconds:.1f} s)")


def _run_dir(out: Path) -> Path:
    return out.with_name(out.name + ".run")


def train_latent_field(image: ImageSignal, options: LatentOptions, run_dir: Path, resume: bool = False
                       ) -> tuple[LatentField, float, int]:
    """Fit a latent field to ``image`` on ``D + λ·R`` (module docstring): ``(field, final λ, steps)``."""
    seed_everything(options.seed)  # the networks' random start: an encode is reproducible
    field_ = LatentField(latent_config(image.height, image.width, image.n_output_dims, options.preset()))
    lmbda = options.lmbda if options.lmbda is not None else initial_lambda(image, options.target_bpp)
    signal = RateDistortionImage(image, lmbda)
    steps, seconds = options.budget()
    device = resolve_device(options.device)
    train = TrainOptions(steps=steps, seconds=seconds, schedule=LR_SCHEDULE, eval_every=EVAL_EVERY, seed=options.seed,
                         quiet=options.quiet, threads=options.threads, device=str(device))
    overhead = 8.0 * (latent_codec.HEADER_ESTIMATE_BYTES + latent_codec.NETWORK_BYTES_PER_PARAMETER * field_.n_params)
    schedule = RateSchedule(field_, signal, options.target_bpp, overhead)
    with restored_threads():
        trainer = Trainer(field_, signal, train, run_dir, options.lr, device,
                          step_hooks=[schedule, *cpu_thread_hooks(device, options.threads)])
        schedule.trainer = trainer
        field_.encoding.generator = trainer.generator  # seeded by options.seed, in every checkpoint: exact resumes
        if resume:
            trainer.resume()  # λ too (RateSchedule.state)
        trainer.fit()
    field_.encoding.mode = "exact"
    signal.to(torch.device("cpu"))  # the image too: the file is coded on the CPU
    return field_.cpu().eval(), signal.lmbda, trainer.step


def compress_image(source: str | Path | ImageSignal, out: str | Path, options: LatentOptions | None = None, *,
                   resume: bool = False, **overrides: Any) -> LatentReport:
    """Code the image ``source`` (a file or an :class:`ImageSignal`) into the ``.inrz`` file ``out``."""
    start = time.perf_counter()
    unknown = sorted(set(overrides) - {f.name for f in fields(LatentOptions)})
    if unknown:
        raise InrkitError(f"unknown latent-codec option {unknown[0]!r}")
    options = replace(options or LatentOptions(), **overrides)
    options.validate()
    out = Path(out)
    inputs = [Path(source)] if isinstance(source, (str, Path)) else []
    check_output(out, overwrite=True, inputs=inputs, flag="the output")
    image = source if isinstance(source, ImageSignal) else ImageSignal.from_file(source)
    if image.normalisation["dtype"] != "uint8":
        raise InrkitError(f"the latent codec codes 8-bit images; this one is {image.normalisation['dtype']}")
    run_dir = _run_dir(out)
    if resume and not (run_dir / "checkpoint.json").exists() and not any(run_dir.glob("checkpoint*")):
        raise InrkitError(f"nothing to resume: {run_dir} holds no checkpoint")
    if not resume:
        shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "options.json", {"source": str(source) if inputs else None, **vars(options)})
    field_, lmbda, steps = train_latent_field(image, options, run_dir, resume)
    target = image.pixels
    bits = latent_codec.choose_network_bits(field_, target, lmbda)
    seconds = time.perf_counter() - start
    metrics = {"encode_seconds": round(seconds, 1), "lambda": float(f"{lmbda:.4g}"), "steps": steps}
    coded = latent_codec.code_field(field_, bits)
    decoded = latent_codec.decode(*inrz.unpack(latent_codec.pack_file(coded, image.config(), metrics)))
    psnr = quantised_psnr(decoded.image, target)  # what a reader of the file gets
    data = latent_codec.pack_file(coded, image.config(), {**metrics, "psnr": round(psnr, 2)})
    atomic_write_bytes(check_output(out, overwrite=True, inputs=inputs, flag="the output"), data)
    shutil.rmtree(run_dir, ignore_errors=True)
    return LatentReport(out, len(data), image.height, image.width, psnr, lmbda, field_.macs_per_pixel(), options.preset(),
                        seconds, steps)
