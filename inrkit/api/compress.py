"""``compress`` a fitted field into an ``.inrz`` file and ``decompress`` it back.

Pipeline: post-training quantisation of every trainable tensor (:mod:`~inrkit.export.quantize`,
bits 2–16, MSE-optimal step per tensor or per channel), optional half floats for sensitive tensors,
``fp16="auto"`` keeps as half floats the small tensors (under
10 % of the parameters) whose quantisation alone costs more than 0.1 dB of PSNR on the signal (for
a SIREN: the first layer, whose errors ω0 = 30 amplifies; 2.2 of the 3 dB lost at 6 bits in one
measurement), optional quantisation-aware fine-tuning against the original signal
(:func:`finetune`: the Trainer fits :class:`~inrkit.export.fake_quant.FakeQuantisedField`), entropy coding of the
codes (:mod:`~inrkit.export.entropy`) and
the container (:mod:`~inrkit.export.inrz`). With ``target_bpp`` the largest bit width whose file
fits the budget is chosen (the file size grows with the bit width).

Rate: ``bpp = 8·(file bytes)/(H·W)`` for images (every byte the decoder reads: magic, header,
steps, codes), ``bits per sample`` for other signals.

Radiance fields (``inrkit nerf`` runs, a :class:`~inrkit.fields.NerfModel`) compress the same way:
their parameters are quantised, the occupancy grid's ``occupied`` cells are kept losslessly as a
bitmask and its training-only density estimate is left out (:mod:`inrkit.export.codec`); the header
carries the run's turntable orbit so that ``inrkit render FILE.inrz`` works. PSNR and SSIM are
measured on the first :data:`NERF_VIEWS` test views of the scene when it can be reopened (the
path in the run's config, else ``RUN/scene`` of a procedural scene, else ``signal=``, a scene
folder); without it they are skipped. There is no pixel count, so ``target_bpp`` is refused, and
so is quantisation-aware fine-tuning (it would need the ray-marched training loop); ``fp16="auto"``
works when the scene can be reopened.

Example:
    >>> report = inrkit.export.compress("runs/photo-siren", "photo.inrz", bits=8)   # doctest: +SKIP
    >>> print(report.summary())                                                      # doctest: +SKIP
    >>> field = inrkit.load("photo.inrz")                                            # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
import shutil
import tempfile
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch

from inrkit.api.latent_compress import LatentOptions, LatentReport, compress_image
from inrkit.api.run_field import open_run_field
from inrkit.errors import InrkitError
from inrkit.export import inrz, latent_codec
from inrkit.export.codec import MAX_ELEMENTS, QuantisationPlan, decode_field, encode_tensors, plan_steps
from inrkit.export.fake_quant import FakeQuantisedField, Quantiser, quantisers_for
from inrkit.export.quantize import MAX_BITS, MIN_BITS, dequantise, quantise
from inrkit.fields import Field, NerfModel
from inrkit.files import atomic_write_bytes, check_output, write_json
from inrkit.io.images import IMAGE_SUFFIXES, write_image
from inrkit.nerf.scene import Scene
from inrkit.runs import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    append_metrics,
    check_run_dir,
    prepare_run_dir,
    run_files,
    save_weights,
)
from inrkit.signals import Signal, open_signal, signal_from_config
from inrkit.signals.image import denormalise
from inrkit.train import Trainer, TrainOptions
from inrkit.train.chunking import resolve_chunk_size
from inrkit.version import __version__

__all__ = ["CompressOptions", "CompressionReport", "Decoded", "LatentOptions", "LatentReport", "NerfTestViews", "compress",
           "decompress", "load"]

_PRIVATE_SIGNAL_KEYS = ("source", "options")  # local paths and fitting options never leave the machine


CODECS = ("weights", "latent")


@dataclass
class CompressOptions:
    """How to compress; the CLI's ``inrkit compress`` flags are generated from these fields."""

    codec: str = field(default="weights", metadata={"help": "weights (quantise a fitted run's weights) | latent (code "
                                                            "an image file with a latent field: Cool-Chic/C3 class)"})
    bits: int = field(default=8, metadata={"help": f"bits per weight, {MIN_BITS}-{MAX_BITS}"})
    target_bpp: float | None = field(default=None, metadata={"help": "choose the largest bit width whose file fits "
                                                                      "this many bits per pixel (or per sample; "
                                                                      "not for NeRF runs); --codec latent: search "
                                                                      "λ for about this rate"})
    scheme: str = field(default="tensor", metadata={"help": "one quantisation step per tensor | channel (per output row)"})
    coder: str = field(default="auto", metadata={"help": "entropy coder: auto (per tensor the smaller of range and "
                                                           "lzma) | range | zlib | lzma | raw"})
    fp16: str = field(default="", metadata={"help": "comma-separated name patterns of tensors kept as float16, "
                                                    "e.g. 'network.output.*,*.bias', or 'auto' (measured sensitivity)"})
    finetune_steps: int = field(default=0, metadata={"help": "quantisation-aware fine-tuning steps against the signal "
                                                                  "(not for NeRF runs)"})
    finetune_lr: float | None = field(default=None, metadata={"help": "fine-tuning learning rate "
                                                                       "(default: 0.1 x the run's, else 1e-5)"})

    def validate(self) -> None:
        """Raise :class:`InrkitError` for impossible settings."""
        if self.codec not in CODECS:
            raise InrkitError(f"--codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        self.plan(self.bits).validate()
        if self.target_bpp is not None and not (self.target_bpp > 0 and math.isfinite(self.target_bpp)):
            raise InrkitError(f"--target-bpp must be positive, got {self.target_bpp}")
        if self.finetune_steps < 0:
            raise InrkitError(f"--finetune-steps must be >= 0, got {self.finetune_steps}")
        if self.finetune_lr is not None and not (self.finetune_lr > 0 and math.isfinite(self.finetune_lr)):
            raise InrkitError(f"--finetune-lr must be positive, got {self.finetune_lr}")

    def plan(self, bits: int, steps: dict[str, torch.Tensor] | None = None) -> QuantisationPlan:
        """The :class:`QuantisationPlan` at ``bits``."""
        patterns = tuple(p.strip() for p in self.fp16.split(",") if p.strip())
        return QuantisationPlan(bits, self.scheme, self.coder, patterns, steps)


@dataclass
class CompressionReport:
    """What :func:`compress` wrote: size, rate and quality before and after."""

    path: Path
    n_bytes: int
    bits: int
    n_params: int
    samples: int | None
    psnr_before: float | None
    psnr_after: float | None
    finetune_steps: int
    seconds: float
    radiance: bool = False  # a NeRF: no pixel count; PSNR on test views of its scene
    views: int | None = None  # test views the PSNR was measured on (radiance fields)

    @property
    def bpp(self) -> float | None:
        """Bits per pixel (images) or per sample; None when the signal size is unknown."""
        return 8.0 * self.n_bytes / self.samples if self.samples else None

    def summary(self) -> str:
        """One line for the CLI."""
        if self.radiance:
            rate = f"{8.0 * self.n_bytes / max(self.n_params, 1):.2f} bits/parameter"
        else:
            rate = f"{self.bpp:.4f} bpp" if self.bpp is not None else "rate n/a (unknown signal size)"
        if self.psnr_before is not None and self.psnr_after is not None:
            quality = f"PSNR {self.psnr_before:.2f} -> {self.psnr_after:.2f} dB"
            if self.views is not None:
                quality += f" on {self.views} test view{'s' if self.views != 1 else ''}"
        elif self.radiance:
            quality = "PSNR n/a (the scene could not be reopened; give its folder with --source)"
        else:
            quality = "PSNR n/a (signal not available)"
        tuned = f", {self.finetune_steps} fine-tuning steps" if self.finetune_steps else ""
        return (f"wrote {self.path}: {self.n_bytes:,} bytes, {rate}, {self.bits}-bit, {self.n_params:,} params, "
                f"{quality}{tuned} ({self.seconds:.1f} s)")


@dataclass
class Decoded:
    """A decoded ``.inrz``: the field (a :class:`Field` or a :class:`NerfModel`), a run-style config (field,
    signal, model; ``kind`` and ``turntable`` for a radiance field) and stored metrics."""

    path: Path
    field: torch.nn.Module
    config: dict[str, Any]
    metrics: dict[str, Any]
    n_bytes: int
    header: dict[str, Any]
    image: torch.Tensor | None = None  # a latent file's decoded image (H, W, C) in [0, 1], unclamped


# -- sources -----------------------------------------------------------------------------------------
NERF_VIEWS = 8  # test views a radiance field is measured on (all of a procedural scene's 8)


@dataclass
class _Source:
    field: torch.nn.Module
    config: dict[str, Any]
    run_dir: Path | None = None
    scene: Scene | None = None  # a radiance field's scene, when the source holds it open


def _is_radiance(field: torch.nn.Module) -> bool:
    return isinstance(field, NerfModel)


def _open_source(source: Any) -> _Source:
    """The field and run config of a Field or NerfModel, a Run-like object (``.field``/``.model``, ``.config``),
    a run directory or an ``.inrz`` file."""
    if isinstance(source, (Field, NerfModel)):
        return _Source(source, {"field": source.config})
    if hasattr(source, "config") and (hasattr(source, "field") or isinstance(getattr(source, "model", None), NerfModel)):
        field = source.model if isinstance(getattr(source, "model", None), NerfModel) else source.field
        config = dict(source.config)
        if "field" not in config and "nerf" in config:  # a NeRF from inrkit.nerf.fit/load, written before "field"
            config["field"] = config.pop("nerf")
        scene = getattr(source, "scene", None) or getattr(getattr(source, "signal", None), "scene", None)
        run_dir = getattr(source, "dir", None)
        return _Source(field, config, Path(run_dir) if run_dir is not None else None,
                       scene if isinstance(scene, Scene) else None)
    path = Path(source)
    if inrz.is_inrz(path):
        decoded = load(path)
        return _Source(decoded.field, decoded.config)
    if not (path / CONFIG_FILE).is_file():
        raise InrkitError(f"cannot compress {path}: not an inrkit run directory (no {CONFIG_FILE}) or .inrz file")
    loaded, config = open_run_field(path, "compress")
    return _Source(loaded, config, path)


class NerfTestViews:
    """The first ``n_views`` test views of a radiance field's scene, as what compression is measured on:
    :meth:`evaluate` gives the PSNR and SSIM of a model's renders on white (as the run's own evaluation)."""

    def __init__(self, scene: Scene, n_views: int = NERF_VIEWS) -> None:
        self.scene = scene
        self.cameras = scene.test_cameras[:n_views]
        if not self.cameras:
            raise InrkitError("the scene has no test views")
        self.images = [scene.image("test", index) for index in range(len(self.cameras))]  # read once, here

    @property
    def n_views(self) -> int:
        return len(self.cameras)

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        from inrkit.signals.radiance import evaluate_views

        assert isinstance(model, NerfModel)
        result = evaluate_views(model.eval(), self.cameras, self.images)
        return {"psnr": result["psnr"], "ssim": result["ssim"], "views": result["views"]}

    def config(self) -> dict[str, Any]:
        return self.scene.config()


def _open_scene(signal: Any, source: _Source) -> Scene:
    """A radiance field's scene: ``signal`` (a Scene, a RadianceSignal or a scene folder), the source's open
    scene, the folder recorded in the run's config, or the run's ``scene`` folder (procedural scenes)."""
    recorded = source.config.get("signal") or {}
    downscale, holdout = int(recorded.get("downscale", 1)), int(recorded.get("holdout", 8))
    if isinstance(signal, Scene):
        return signal
    if isinstance(getattr(signal, "scene", None), Scene):
        return signal.scene
    if signal is not None:
        return Scene.from_blender(signal, downscale=downscale, holdout=holdout)
    if source.scene is not None:
        return source.scene
    folder = recorded.get("source")
    if folder and Path(folder).is_dir():
        return Scene.from_config(recorded)
    if source.run_dir is not None and (source.run_dir / "scene").is_dir():
        return Scene.from_blender(source.run_dir / "scene", downscale=downscale, holdout=holdout)
    if folder:
        raise InrkitError(f"the scene folder {folder} no longer exists")
    raise InrkitError("the run does not record its scene folder")


def _open_signal(signal: Signal | str | Path | None, source: _Source, required: bool) -> Any:
    """What to measure (and fine-tune) against: the given signal, else the run's source file; for a
    radiance field, a :class:`NerfTestViews` of its scene. None when unavailable and not ``required``."""
    config = source.config
    if _is_radiance(source.field):
        try:
            return NerfTestViews(_open_scene(signal, source))
        except InrkitError as err:
            if required:
                raise InrkitError(f"--fp16 auto needs the scene's test views: {err}; pass the scene folder with "
                                  f"--signal") from None
            return None
    if isinstance(signal, Signal):
        return signal
    signal_config = config.get("signal")
    if signal is not None:  # the source's new path: opened with the run's signal options when it has them
        if not Path(signal).exists():
            raise InrkitError(f"--source {signal}: no such file or folder")
        return signal_from_config({**signal_config, "source": str(signal)}) if signal_config else open_signal(signal)
    try:
        if signal_config is None:
            raise InrkitError("the field has no signal description")
        source_path = signal_config.get("source")
        if source_path is not None and not Path(source_path).exists():
            raise InrkitError(f"the run's source {source_path} no longer exists")
        return signal_from_config(signal_config)
    except InrkitError as err:
        if required:
            raise InrkitError(f"fine-tuning and --fp16 auto need the original signal: {err}; give its path with "
                              "--source PATH") from None
        return None


def sample_count(signal_config: dict[str, Any] | None) -> int | None:
    """Pixels of an image (``H·W``) or the ``n_samples`` of another signal; None when unknown."""
    if not signal_config:
        return None
    if signal_config.get("kind") == "image":
        return int(signal_config["height"]) * int(signal_config["width"])
    count = signal_config.get("n_samples")
    return int(count) if count else None


AUTO_FP16_DB, AUTO_FP16_FRACTION = 0.1, 0.1


def sensitive_tensors(field: torch.nn.Module, plan: QuantisationPlan, signal: Any) -> tuple[str, ...]:
    """Parameters under 10 % of the total whose quantisation alone costs more than 0.1 dB on ``signal``."""
    base = _psnr(field, signal)
    steps = plan_steps(field, plan)
    total = sum(p.numel() for p in field.parameters())
    chosen = []
    for name, parameter in field.named_parameters():
        if name not in steps or parameter.numel() > AUTO_FP16_FRACTION * total:
            continue
        trial = copy.deepcopy(field)
        values = dequantise(quantise(parameter, steps[name], plan.bits), steps[name])
        with torch.no_grad():
            target = dict(trial.named_parameters())[name]
            target.copy_(torch.view_as_complex(values) if parameter.is_complex() else values.reshape(parameter.shape))
        if base - _psnr(trial, signal) > AUTO_FP16_DB:
            chosen.append(name)
    return tuple(chosen)


def _psnr(field: torch.nn.Module, signal: Any) -> float | None:
    """PSNR of ``field`` on ``signal`` (a Signal or :class:`NerfTestViews`); None without one."""
    if signal is None:
        return None
    with torch.no_grad():
        return float(signal.evaluate(field).get("psnr", math.nan))


FINETUNE_EVAL_EVERY = 50


def finetune(field: torch.nn.Module, quantisers: dict[str, Quantiser], signal: Signal, steps: int, lr: float,
             batch_size: int | None = None, seed: int = 0) -> tuple[dict[str, torch.Tensor], float]:
    """Quantisation-aware fine-tuning of a copy of ``field``: ``(best state_dict, its PSNR)``.

    The Trainer fits the fake-quantised field (:class:`~inrkit.export.fake_quant.FakeQuantisedField`)
    for ``steps`` steps of ``signal.loss`` on batches of ``batch_size`` samples (all when ``None``),
    lr decaying ×0.1 exponentially, evaluating every :data:`FINETUNE_EVAL_EVERY` steps and at the
    end. Steps ``Δ`` stay those of post-training quantisation. The best quantised state seen,
    starting from the untuned one, is returned, so fine-tuning never does worse than post-training
    quantisation.
    """
    tuned = copy.deepcopy(field).train()
    wrapped = FakeQuantisedField(tuned, quantisers)
    device = next(tuned.parameters()).device
    best = {"psnr": _psnr(wrapped, signal), "state": copy.deepcopy(tuned.state_dict())}

    def keep_best(record: dict[str, Any]) -> None:
        if record.get("psnr", -math.inf) > best["psnr"]:
            best.update(psnr=record["psnr"], state=copy.deepcopy(tuned.state_dict()))

    options = TrainOptions(steps=steps, batch_size=batch_size, schedule="exp", eval_every=FINETUNE_EVAL_EVERY,
                           seed=seed, quiet=True, backend="torch")
    resolve_chunk_size(options, wrapped, signal, device)
    with tempfile.TemporaryDirectory(prefix="inrkit-qat-") as run_dir:
        Trainer(wrapped, signal, options, Path(run_dir), lr, device, evaluation_hooks=[keep_best]).fit()
    return best["state"], float(best["psnr"])


# -- encoding ----------------------------------------------------------------------------------------
def _header(field: torch.nn.Module, config: dict[str, Any], table: list[dict[str, Any]],
            metrics: dict[str, float]) -> dict[str, Any]:
    signal = config.get("signal")
    model = {k: v for k, v in (config.get("model") or {}).items() if v is not None}
    header = {
        "inrkit_version": __version__,
        "field": field.config,
        "signal": {k: v for k, v in signal.items() if k not in _PRIVATE_SIGNAL_KEYS} if signal else None,
        "model": model or None,
        "metrics": metrics,
    }
    if config.get("turntable") is not None:  # a radiance field's orbit: what `inrkit render FILE.inrz` renders
        header["turntable"] = config["turntable"]
    header["tensors"] = table
    return header


def encode(field: torch.nn.Module, config: dict[str, Any], plan: QuantisationPlan,
           metrics: dict[str, float] | None = None) -> bytes:
    """The ``.inrz`` bytes of ``field`` under ``plan`` (``config``: the run's signal/model sections)."""
    table, payload = encode_tensors(field, plan)
    return inrz.pack(_header(field, config, table, metrics or {}), payload)


def _fit_budget(field: torch.nn.Module, config: dict[str, Any], options: CompressOptions, budget_bytes: float,
                metrics: dict[str, float]) -> int:
    """Largest bit width whose post-training-quantised file has at most ``budget_bytes`` (binary search;
    ``metrics``: placeholders as long as the final ones, so that the header is counted)."""
    low, high = MIN_BITS, MAX_BITS
    smallest = len(encode(field, config, options.plan(MIN_BITS), metrics))
    if smallest > budget_bytes:
        raise InrkitError(f"even {MIN_BITS}-bit weights need {smallest:,} bytes, above the target of "
                          f"{budget_bytes:,.0f}; fit a smaller network")
    while low < high:
        middle = (low + high + 1) // 2
        if len(encode(field, config, options.plan(middle), metrics)) <= budget_bytes:
            low = middle
        else:
            high = middle - 1
    return low


def _source_inputs(source: Any) -> list[Path]:
    """The files compressing ``source`` reads (a run directory's or an ``.inrz`` file): never the output."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        return run_files(path) if path.is_dir() else [path]
    run_dir = getattr(source, "dir", None)
    return run_files(Path(run_dir)) if run_dir is not None else []


def compress(source: Any, out: str | Path, options: CompressOptions | None = None, *,
             signal: Signal | str | Path | None = None, latent: LatentOptions | None = None, resume: bool = False,
             **overrides: Any) -> CompressionReport | LatentReport:
    """Compress a field into the ``.inrz`` file ``out`` and return a :class:`CompressionReport`.

    ``source``: a :class:`Field` or :class:`NerfModel`, a Run or NeRF, a run directory or an ``.inrz`` file.
    ``options`` (or keyword ``overrides`` of its fields: ``bits``, ``target_bpp``, ``scheme``, ``coder``,
    ``fp16``, ``finetune_steps``, ``finetune_lr``). ``signal``: the signal to measure PSNR and fine-tune
    against (default: reopen the run's source file when it still exists); for a radiance field a
    :class:`~inrkit.nerf.Scene` or its folder (default: the run's scene, see the module docstring).

    ``codec="latent"``: ``source`` is an image (a file or an :class:`~inrkit.signals.image.ImageSignal`), coded
    with a latent field (:func:`inrkit.api.latent_compress.compress_image`; ``latent``: its
    :class:`~inrkit.api.latent_compress.LatentOptions`, whose fields may also be given as keywords;
    ``target_bpp`` is shared; ``resume``: continue an interrupted encode). Returns a ``LatentReport``.
    """
    start = time.perf_counter()
    latent_fields = {f.name for f in fields(LatentOptions)} - {"target_bpp"}
    unknown = sorted(set(overrides) - {f.name for f in fields(CompressOptions)} - latent_fields)
    if unknown:
        raise InrkitError(f"unknown compression option {unknown[0]!r}")
    options = replace(options or CompressOptions(), **{k: v for k, v in overrides.items() if k not in latent_fields})
    options.validate()
    if options.codec == "latent":
        latent = replace(latent or LatentOptions(), target_bpp=options.target_bpp,
                         **{k: v for k, v in overrides.items() if k in latent_fields})
        return compress_image(source, out, latent, resume=resume)
    check_output(out, overwrite=True, inputs=_source_inputs(source), flag="the output")
    opened_source = _open_source(source)
    field, config = opened_source.field, opened_source.config
    radiance = _is_radiance(field)
    if radiance and options.target_bpp is not None:
        raise InrkitError("--target-bpp does not apply to a radiance field (NeRF): it has no pixel count; give --bits")
    if radiance and options.finetune_steps > 0:
        raise InrkitError("--finetune-steps is not supported for radiance fields (NeRF) yet; compress without it")
    field = copy.deepcopy(field).cpu().eval()  # the caller's field keeps its device and mode
    opened = _open_signal(signal, opened_source, required=options.finetune_steps > 0 or "auto" in options.plan(8).fp16)
    if config.get("signal") is None and opened is not None:
        config = {**config, "signal": opened.config()}  # a bare Field compressed with its signal: keep its size
    samples = None if radiance else sample_count(config.get("signal")) or (opened.n_samples if opened is not None else None)
    if options.target_bpp is not None and samples is None:
        raise InrkitError("--target-bpp needs the signal size; this field has no signal description")
    budget = options.target_bpp * samples / 8.0 if options.target_bpp is not None else math.inf
    placeholder = {"psnr": 99.99, "psnr_before": 99.99} if opened is not None else {}
    bits = _fit_budget(field, config, options, budget, placeholder) if options.target_bpp is not None else options.bits
    psnr_before = _psnr(field, opened)
    while True:
        encoded, plan = field, options.plan(bits)
        if "auto" in plan.fp16:
            assert opened is not None  # _open_signal insisted on it
            patterns = tuple(p for p in plan.fp16 if p != "auto")
            plan.fp16 = patterns + sensitive_tensors(field, replace(plan, fp16=patterns), opened)
        plan.steps = plan_steps(field, plan)  # searched once, on the original weights (QAT keeps this grid)
        if options.finetune_steps > 0:
            assert opened is not None
            fp16 = [n for n, _ in field.named_parameters() if plan.storage(n, is_buffer=False) == "float16"]
            lr = options.finetune_lr or 0.1 * float((config.get("train") or {}).get("lr") or 1e-4)
            batch = (config.get("train") or {}).get("batch_size")
            state, _ = finetune(field, quantisers_for(plan.steps, bits, fp16), opened, options.finetune_steps, lr, batch)
            encoded = copy.deepcopy(field)
            encoded.load_state_dict(state)
        decoded = decode_field(*inrz.unpack(encode(encoded, config, plan)))  # what a reader will get
        psnr_after = _psnr(decoded, opened)
        metrics = {k: round(v, 2) for k, v in (("psnr", psnr_after), ("psnr_before", psnr_before))
                   if v is not None and math.isfinite(v)}  # JSON has no NaN: an unmeasurable PSNR is left out
        data = encode(encoded, config, plan, metrics)
        if len(data) <= budget:
            break
        if bits == MIN_BITS:
            raise InrkitError(f"cannot meet --target-bpp {options.target_bpp:g}: the {MIN_BITS}-bit file has "
                              f"{len(data):,} bytes; fit a smaller network or drop --fp16")
        bits -= 1  # half floats or fine-tuning moved the size past the budget: one bit less
    atomic_write_bytes(check_output(out, overwrite=True, inputs=_source_inputs(source), flag="the output"), data)
    views = opened.n_views if isinstance(opened, NerfTestViews) else None
    return CompressionReport(Path(out), len(data), bits, field.n_params, samples, psnr_before, psnr_after,
                             options.finetune_steps, time.perf_counter() - start, radiance, views)


# -- decoding ----------------------------------------------------------------------------------------
def load(path: str | Path, max_elements: int = MAX_ELEMENTS) -> Decoded:
    """Read and decode an ``.inrz`` file (every length, shape and checksum checked first)."""
    path = Path(path)
    try:
        header, payload = inrz.read(path)
    except InrkitError as err:  # every refusal names the file (the header's inflate errors do not by themselves)
        raise err if str(path) in str(err) else InrkitError(f"{path}: {err}") from None
    image = None
    try:
        inrz.check_signal(header.get("signal"))
        inrz.check_turntable(header.get("turntable"))
        if header.get("codec") == latent_codec.CODEC:
            decoded_image = latent_codec.decode(header, payload)
            field, image, header = decoded_image.field, decoded_image.image, decoded_image.header  # its table in full
        else:
            field = decode_field(header, payload, max_elements)
    except InrkitError as err:
        raise InrkitError(f"{path}: {err}") from None
    metrics = header.get("metrics") if isinstance(header.get("metrics"), dict) else {}
    model = header.get("model") if isinstance(header.get("model"), dict) else {}
    config = {"inrkit_version": header.get("inrkit_version"), "field": header["field"], "signal": header.get("signal"),
              "model": {"model": None, **model}}
    if _is_radiance(field):
        config = {"inrkit_version": config["inrkit_version"], "kind": "nerf", **config}
        if header.get("turntable") is not None:
            config["turntable"] = header["turntable"]
    if image is not None:
        config["model"] = {"model": "latent"}
    n_bytes = path.stat().st_size
    return Decoded(path, field, config, dict(metrics), n_bytes, header, image)


def decompress(path: str | Path, out: str | Path | None = None, overwrite: bool = False) -> Decoded:
    """Decode ``path``; with ``out``, also write it as a run directory (config.json + weights.safetensors), or,
    for an image file ``out`` (``.png`` …), the decoded image (8-bit for a latent file)."""
    if out is not None and Path(out).suffix.lower() in IMAGE_SUFFIXES:
        check_output(out, overwrite=overwrite, inputs=(Path(path),))
        decoded = load(path)
        signal = decoded.config.get("signal") or {}
        if decoded.image is not None:
            pixels = decoded.image.numpy()
        elif signal.get("kind") == "image":
            from inrkit.signals.image import render

            pixels = render(decoded.field, signal["height"], signal["width"])
        else:
            raise InrkitError(f"{path} does not hold an image; give a run directory as --out")
        write_image(out, denormalise(pixels, signal["normalisation"]))
        return decoded
    if out is not None:  # refused before the file is decoded
        check_run_dir(Path(out), overwrite, (Path(path),))
    decoded = load(path)
    if out is not None:
        target = Path(out)
        prepare_run_dir(target, overwrite, (Path(path),))  # an old run's checkpoints and outputs go with it
        try:
            write_json(target / CONFIG_FILE, {**decoded.config, "compressed_from": str(Path(path).name)})
            save_weights(decoded.field, target / WEIGHTS_FILE)
            if decoded.metrics:
                append_metrics(target, {**decoded.metrics, "source": "inrz"})
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    return decoded
