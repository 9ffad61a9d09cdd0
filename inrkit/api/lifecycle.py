"""The run lifecycle: ``fit`` (a new run or ``resume``), ``estimate`` (a dry run), ``load_run``/``load``.

A run directory (:mod:`inrkit.runs`) is created, trained by the one :class:`~inrkit.train.Trainer`,
resumed from its checkpoint and loaded back here, for every signal kind.

Example:
    >>> import inrkit
    >>> run = inrkit.fit("photo.png", model="spder", steps=2000)   # doctest: +SKIP
    >>> run.metrics["psnr"]                                          # doctest: +SKIP
    >>> field = inrkit.load(run.dir)                                 # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from inrkit.api.checks import check_field_memory
from inrkit.api.compress import load as load_inrz
from inrkit.api.neural_dataset import NeuralDataset, is_dataset, split_item
from inrkit.api.report import LiveReport, in_notebook
from inrkit.api.run_field import build_run_field, open_run_field
from inrkit.devices import resolve_device, seed_everything
from inrkit.errors import ConfigError, InrkitError
from inrkit.export import inrz
from inrkit.fields import Field, ModelOptions, NerfModel, Preset, get_preset, preset_config
from inrkit.fields.execution import prepare_field, resolve_backend
from inrkit.files import check_output, read_json, write_json
from inrkit.runs import (
    CONFIG_FILE,
    check_run_dir,
    prepare_run_dir,
    read_config,
    read_metrics,
)
from inrkit.signals import Signal, open_signal, signal_from_config, signal_option_names
from inrkit.train import Trainer, TrainingDiverged, TrainingInterrupted, TrainOptions
from inrkit.train.checkpoint import CHECKPOINT_POINTER
from inrkit.train.chunking import activation_bytes_per_sample, current_memory_bytes, resolve_chunk_size
from inrkit.train.options import DEVICE_SECONDS
from inrkit.train.progressive import SapeSchedule, progressive_schedule
from inrkit.train.threads import cpu_thread_hooks, restored_threads
from inrkit.version import __version__


@dataclass
class Run:
    """A finished (or resumable) fit: its directory, field (a :class:`Field` or, for radiance fields, a
    :class:`NerfModel`), signal and final metrics."""

    dir: Path
    field: Field | NerfModel
    config: dict[str, Any]
    metrics: dict[str, Any]
    signal: Signal | None = None
    output_seconds: float = 0.0  # time spent writing the outputs after training

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every evaluation record of ``metrics.jsonl``."""
        return read_metrics(self.dir)

    def save(self, path: str | Path) -> Path:
        """Copy the run directory to ``path`` (which must not exist yet); returns the new path."""
        target = Path(path)
        if target.resolve() == self.dir.resolve():
            return target
        if target.exists():
            raise InrkitError(f"cannot save run to {target}: it already exists")
        shutil.copytree(self.dir, target)
        self.dir = target
        return target


def _split_options(options: dict[str, Any]) -> tuple[ModelOptions, TrainOptions, dict[str, Any]]:
    """Split keyword options into model options, training options and signal options (a dict)."""
    model_names = {f.name for f in fields(ModelOptions)}
    train_names = {f.name for f in fields(TrainOptions)}
    signal_names = signal_option_names()
    unknown = sorted(set(options) - model_names - train_names - signal_names)
    if unknown:
        raise InrkitError(f"unknown option {unknown[0]!r}")
    return (ModelOptions(**{k: v for k, v in options.items() if k in model_names}),
            TrainOptions(**{k: v for k, v in options.items() if k in train_names}),
            {k: v for k, v in options.items() if k in signal_names})


# sine networks computing sin(ω0·(Wx+b)) (SPDER: times a damping of the same z): the official SIREN and SPDER
# audio scripts scale their raw input by s (t ∈ [-100, 100]) and keep ω0 = 30, and so does inrkit
SCALED_INPUT_NETWORKS = frozenset({"Siren", "Spder"})


def _coordinate_defaults(scale: float, preset: Preset) -> dict[str, Any]:
    """How ``preset`` takes a signal's :attr:`~inrkit.signals.Signal.sine_coordinate_scale` ``s``.

    ``siren`` and ``spder`` (on raw coordinates): ``coordinate_scale`` s, i.e. the first layer computes
    ``sin(ω0·(W·s·x + b))`` exactly as the official code on ``[-s, s]``. ``finer``: its
    ``sin(ω0·(|z|+1)·z)`` is not equivariant to a scale of z, so it keeps x ∈ [-1, 1] and takes a first-layer
    ``ω0·s`` instead (inrkit's choice; no official FINER audio protocol). Others (hash grids, encodings, Gauss,
    WIRE, ...): nothing.
    """
    if scale == 1.0 or preset.encoding.get("otype") != "Identity":
        return {}
    otype = preset.network["otype"]
    if otype in SCALED_INPUT_NETWORKS:
        return {"coordinate_scale": scale}
    if otype == "Finer":
        return {"omega0": preset.network["first_omega_0"] * scale}
    return {}


def _apply_defaults(signal: Signal, model_options: ModelOptions, train_options: TrainOptions, protocol: str) -> None:
    """Fill options the user left unset (None): first the signal's suggestions (audio: SPDER's damping,
    ...) and its coordinate scale mapped to the preset (:func:`_coordinate_defaults`), then the preset's
    batch size and schedule for ``protocol``, then the budget."""
    preset = get_preset(model_options.model)  # an unknown model is reported as such, before any suggestion
    suggested = {**preset.defaults(protocol), **_coordinate_defaults(signal.sine_coordinate_scale, preset),
                 **signal.default_options(model_options.model, protocol)}
    for key, value in suggested.items():
        target = model_options if hasattr(model_options, key) else train_options
        if getattr(target, key) is None:
            setattr(target, key, value)
    if train_options.batch_size is not None and train_options.batch_size >= signal.n_samples:
        train_options.batch_size = None  # a batch as large as the signal is the full batch
    if protocol == "device" and train_options.steps is None and train_options.seconds is None:
        train_options.seconds = DEVICE_SECONDS
    train_options.protocol = protocol
    train_options.resolve_defaults()
    train_options.validate()


@dataclass
class Prepared:
    """Everything a fit needs before its run directory exists: resolved options, field and signal on the device."""

    config: dict[str, Any]
    field: Field
    signal: Signal
    options: TrainOptions
    device: torch.device

    def summary(self) -> str:
        """One line: device, protocol, batch, lr and schedule, budget, chunking."""
        options = self.options
        batch = f"random batches of {options.batch_size:,}" if options.batch_size else "full batch"
        budget = " and ".join(part for part in (
            f"{options.steps:,} steps" if options.steps else "",
            f"{options.seconds:g} s" if options.seconds else "",
        ) if part) or f"{options.step_budget:,} steps"
        chunk = f", chunks of {options.chunk_size:,}" if options.chunk_size and self.signal.chunkable else ""
        other = "--protocol device for settings measured on this kind of machine" if options.protocol == "paper" else \
            "--protocol paper for the papers' full-batch settings"
        return (f"{self.config['model']['model']} on {self.device.type} ({options.protocol} protocol): {batch}, "
                f"lr {self.config['train']['lr']:g} {options.schedule}, {budget}{chunk}; {other}")


SINE_NETWORKS = frozenset({"Siren", "Spder", "Finer", "Wire", "ResFieldSiren"})


def _check_amp(model_options: ModelOptions, train_options: TrainOptions) -> None:
    """Refuse bfloat16 autocast for sine-family networks: with 8 bits of mantissa a pre-activation
    ``z ≈ 30`` (ω0·x) is rounded by up to 0.06, so ``sin(z)`` loses its phase."""
    otype = get_preset(model_options.model).network["otype"]
    if train_options.amp and otype in SINE_NETWORKS:
        raise ConfigError(f"--amp (bfloat16) cannot run {model_options.model!r}: its sines of ω0·x ≈ 30 lose their "
                          "phase with 8 bits of mantissa; train without --amp")


def check_fit_backend(field: Field | NerfModel, options: TrainOptions, device: torch.device) -> None:
    """Refuse, before a run starts, a backend request that cannot be met or a combination that would do nothing
    (a progressive schedule on a field without bands, or on tcnn's encodings, which hide their bands)."""
    if resolve_backend(field, options.backend, device) == "tcnn" and (options.coarse_to_fine or options.progressive):
        flag = "--coarse-to-fine" if options.coarse_to_fine else f"--progressive {options.progressive}"
        raise ConfigError(f"{flag} does not work with the tcnn backend (its encodings' bands are not exposed); "
                          "give --backend torch or --backend fast")
    progressive_schedule(field, options.progressive, options.progressive_start, options.progressive_end,
                         options.coarse_to_fine)


SAPE_RESOLUTIONS = {1: 128, 2: 128, 3: 32}  # cells per axis of SAPE's mask: 128^d for images (SAPE's), 32³ for volumes


def sape_mask_config(field_config: dict[str, Any], signal: Signal, model: str) -> None:
    """``--progressive sape``: give the field's encoding SAPE's spatial band mask (saved with the weights), or refuse
    a signal without per-sample losses or a model without bands, in one line."""
    if signal.pool_size is None:
        raise ConfigError(f"--progressive sape needs a loss that is a mean of per-sample terms (images, audio, video, "
                          f"SDF with --sdf-loss l1/mape); this {signal.kind} signal's loss is not")
    dims = int(field_config["n_input_dims"])
    if dims not in SAPE_RESOLUTIONS:
        raise ConfigError(f"--progressive sape covers 1- to 3-D coordinates, not {dims}-D")
    if field_config["encoding"].get("otype", "Identity") in ("Identity", "Composite", "SphericalHarmonics"):
        raise ConfigError(f"--progressive sape needs an encoding with frequency bands (ffn, relu-pe, hash grids); "
                          f"model {model!r} has none")
    field_config["encoding"]["band_mask"] = {"resolution": SAPE_RESOLUTIONS[dims]}


def _prepare(signal: str | Path | Signal, model_options: ModelOptions, train_options: TrainOptions,
             signal_options: dict[str, Any]) -> Prepared:
    """Open the signal, resolve every default for the device, build the field, size the chunks."""
    opened = signal if isinstance(signal, Signal) else open_signal(signal, signal_options)
    device = resolve_device(train_options.device)
    _apply_defaults(opened, model_options, train_options, train_options.resolved_protocol(device.type))
    _check_amp(model_options, train_options)
    field_config = preset_config(model_options, opened.n_input_dims, opened.n_output_dims, opened.samples_per_axis,
                                 n_frames=opened.n_frames)
    if train_options.progressive == "sape":
        sape_mask_config(field_config, opened, model_options.model)
    preset = get_preset(model_options.model)
    lr = train_options.lr if train_options.lr is not None else preset.lr
    seed_everything(train_options.seed)
    check_field_memory(field_config, device)
    field = Field(field_config).to(device)  # built before anything is written: a bad config leaves no trace
    check_fit_backend(field, train_options, device)
    resolve_chunk_size(train_options, field, opened.to(device), device)
    config = {
        "inrkit_version": __version__,
        "field": field_config,
        "signal": opened.config(),
        "model": asdict(model_options),
        "train": {**asdict(train_options), "lr": lr},
    }
    return Prepared(config, field, opened, train_options, device)


def fit(
    signal: str | Path | Signal | None = None,
    model: str = "siren",
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    report: bool | None = None,
    **options: Any,
) -> Run:
    """Fit a field to a signal and return the :class:`Run`.

    ``signal`` is a file path or a :class:`Signal`; ``options`` are fields of :class:`ModelOptions`
    (``width``, ``depth``, ``omega0``, ...), :class:`TrainOptions` (``steps``, ``seconds``, ``lr``,
    ``schedule``, ``batch_size``, ``protocol``, ``device``, ``quiet``, ...) and the options of the signal's kind
    (:data:`inrkit.signals.SIGNAL_OPTIONS`, e.g. :class:`~inrkit.signals.ImageOptions`).
    Options left unset take the defaults of the protocol (``paper`` on a GPU, ``device`` elsewhere;
    see :class:`TrainOptions`); the resolved values are recorded in ``config.json``.
    ``out`` is the run directory (a temporary one when None). ``resume=True`` continues the run
    in ``out`` from its checkpoint (``steps``/``seconds`` then give the new total budget; ``signal``, when
    given, is the source's new path if it moved). ``report=True`` keeps ``out/report.html`` (:mod:`inrkit.api.report`)
    up to date at every evaluation, for a browser to show while the run trains; None: on in a Jupyter kernel.
    On the CPU this turns on flush-to-zero for denormal floats in the process (torch has no
    way to read the previous setting back).
    """
    model_options, train_options, signal_options = _split_options({"model": model, **options})
    train_options.validate()
    if resume:
        return resume_run(out, {k: v for k, v in options.items() if k in RESUMABLE}, signal, report=report)
    if signal is None:
        raise InrkitError("nothing to fit: give a signal path")
    inputs = () if isinstance(signal, Signal) else (Path(signal),)
    if out is not None:  # refused before the signal is read or the field built
        check_run_dir(Path(out), overwrite, inputs, resumable=True)
    if signal_options.get("export") is not None:
        check_output(signal_options["export"], overwrite=overwrite, inputs=inputs, flag="--export")
    prepared = _prepare(signal, model_options, train_options, signal_options)
    if not train_options.quiet:
        print(prepared.summary(), file=sys.stderr)
    run_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="inrkit-run-"))
    prepare_run_dir(run_dir, overwrite, inputs)
    with removed_unless_trained(run_dir):
        write_json(run_dir / CONFIG_FILE, prepared.config)
        return train_run(prepared.config, prepared.field, prepared.signal, train_options, run_dir, prepared.device,
                         resume=False, report=report)


@contextlib.contextmanager
def removed_unless_trained(run_dir: Path) -> Iterator[None]:
    """Remove the new run directory ``run_dir`` when the block fails before a training step was checkpointed: a fit
    that fails at its start (a field that cannot run, an unwritable output) leaves no partial run. A stop
    (Ctrl-C, SIGTERM) or a divergence keeps the run and its checkpoint, as their messages say."""
    try:
        yield
    except (TrainingInterrupted, TrainingDiverged, KeyboardInterrupt):
        raise
    except BaseException:
        step = None
        with contextlib.suppress(Exception):
            step = int(read_json(run_dir / CHECKPOINT_POINTER)["step"])
        if not step:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


@dataclass
class Estimate:
    """What ``inrkit fit --dry-run`` reports: size, memory and speed of the fit that would run."""

    summary: str
    n_params: int
    chunk_size: int | None
    peak_memory_mb: float
    seconds_per_step: float
    total_seconds: float

    def line(self) -> str:
        """One line for the terminal."""
        chunk = f", chunks of {self.chunk_size:,}" if self.chunk_size else ""
        total = f"{self.total_seconds / 3600:,.1f} h" if self.total_seconds > 5400 else f"{self.total_seconds:,.0f} s"
        return (f"dry run: {self.n_params:,} parameters, about {self.peak_memory_mb:,.0f} MB peak{chunk}, "
                f"{self.seconds_per_step:.3f} s/step, about {total} of training ({self.summary})")


def estimate(signal: str | Path | Signal, model: str = "siren", *, timed_steps: int = 2, **options: Any) -> Estimate:
    """Resolve a fit's settings and time a few of its steps, writing nothing: the numbers of ``fit --dry-run``.

    Peak memory is the process's resident memory now plus the parameters' training state (weights,
    gradients, two Adam moments; with ``--ema-decay`` the average and, while evaluating, the raw weights
    beside it) plus one chunk's activations.
    """
    model_options, train_options, signal_options = _split_options({"model": model, **options})
    train_options.validate()
    prepared = _prepare(signal, model_options, train_options, signal_options)
    n_params = prepared.field.n_params
    module = prepare_field(prepared.field, train_options.backend, prepared.device)
    trainer = Trainer(module, prepared.signal, train_options, Path(tempfile.gettempdir()),
                      float(prepared.config["train"]["lr"]), prepared.device)
    seconds_per_step = trainer.time_steps(timed_steps)
    samples = min(train_options.batch_size or prepared.signal.n_samples, train_options.chunk_size or 1 << 62)
    bytes_per_sample = activation_bytes_per_sample(prepared.field, prepared.signal) if prepared.signal.chunkable else 0.0
    activations = samples * bytes_per_sample
    copies = 4 + (2 if trainer.average is not None else 0)  # float32 copies of the parameters
    peak = current_memory_bytes() + 4 * copies * n_params + activations
    budget = train_options.step_budget
    total = min(filter(None, (budget * seconds_per_step if budget else None, train_options.seconds)))
    return Estimate(prepared.summary(), n_params, train_options.chunk_size if prepared.signal.chunkable else None,
                    peak / 2**20, seconds_per_step, total)


def train_run(config: dict[str, Any], field: torch.nn.Module, signal: Signal, options: TrainOptions, run_dir: Path,
              device: torch.device, resume: bool, report: bool | None = None) -> Run:
    """Train ``field`` on ``signal`` into ``run_dir`` (from its checkpoint when ``resume``), write the outputs,
    return the :class:`Run`: the one run lifecycle of every signal kind, radiance fields included.

    The Trainer runs the field's own step hooks (:meth:`Field.training_hooks`: a NeRF's occupancy grid),
    the progressive-encoding schedule (:mod:`inrkit.train.progressive`; SAPE also sees the per-sample
    losses) and the CPU thread tuner. ``Run.output_seconds`` is the time from the end of training to the
    outputs written (final evaluation, checkpoint, renders). With ``report``
    (None: in a Jupyter kernel) ``run_dir/report.html`` is rewritten at every evaluation and once the outputs exist.
    """
    live = LiveReport(run_dir) if (in_notebook() if report is None else report) else None
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # Gauss/WIRE produce denormals that slow CPU matmuls 6-9x
    module = prepare_field(field, options.backend, device)
    schedule = progressive_schedule(module, options.progressive, options.progressive_start, options.progressive_end,
                                    options.coarse_to_fine)
    schedules = [schedule] if schedule is not None else []
    hooks = [*field.training_hooks(options.seed), *schedules, *cpu_thread_hooks(device, options.threads)]
    loss_hooks = [s.observe for s in schedules if isinstance(s, SapeSchedule)]
    with restored_threads():
        trainer = Trainer(module, signal.to(device), options, run_dir, float(config["train"]["lr"]), device, hooks,
                          [live] if live else None, sample_loss_hooks=loss_hooks)
        for each in schedules:
            each.follow(trainer.progress_fraction)
        if resume:
            trainer.resume()
            write_json(run_dir / CONFIG_FILE, config)  # the resumed options, once nothing can refuse the run
        began, trained_before = time.perf_counter(), trainer.elapsed
        metrics = trainer.fit()
    for each in schedules:
        each.unlock_all()  # every band on for the outputs, as in the saved field (SAPE: its final mask)
    signal.write_outputs(module, run_dir)
    module.eval()
    output_seconds = time.perf_counter() - began - (trainer.elapsed - trained_before)
    if live:
        live.finish()
    if module is not field:  # tcnn ran it: hand back the plain PyTorch field
        field = module.to_field().to(device)
    return Run(run_dir, field, config, metrics, signal, output_seconds)


RESUMABLE = ("steps", "seconds", "device", "quiet", "eval_every", "backend", "chunk_size", "threads")  # a resume may change
SignalOpener = Callable[[dict[str, Any], TrainOptions], Signal]


def resume_run(out: str | Path | None, given: dict[str, Any], signal: str | Path | Signal | SignalOpener | None,
               report: bool | None = None) -> Run:
    """Continue the run in ``out``; ``given`` holds the resumable options the caller passed explicitly,
    which win over the saved ones (even when equal to :class:`TrainOptions`'s defaults).

    ``signal`` is the signal to train on: a :class:`Signal`, the source file's new path when it moved,
    a function of ``(config, options)`` (radiance fields: the evaluation budget depends on the options),
    or None to reopen the source recorded in the run. ``report``: as for :func:`fit`.
    """
    if out is None:
        raise InrkitError("--resume needs the run directory (--out RUN)")
    run_dir = Path(out)
    config = read_config(run_dir)
    saved = _saved_options(config, run_dir)
    for key, value in given.items():
        setattr(saved, key, value)
    saved.validate()
    if not isinstance(config.get("signal"), dict):
        raise InrkitError(f"cannot resume {run_dir}: its {CONFIG_FILE} has no 'signal' section")
    field = build_run_field(config, run_dir, "resume")
    if isinstance(signal, Signal):
        opened = signal
    elif callable(signal):
        opened = signal(config, saved)
    elif signal is not None:
        opened = signal_from_config({**config["signal"], "source": str(signal)})
    else:
        opened = _reopen_signal(config["signal"])
    device = resolve_device(saved.device)
    field = field.to(device)
    check_fit_backend(field, saved, device)
    resolve_chunk_size(saved, field, opened.to(device), device)  # a run written before chunking existed
    config["train"] = asdict(saved)  # written by train_run once the checkpoint is read and matches the field
    return train_run(config, field, opened, saved, run_dir, device, resume=True, report=report)


def _saved_options(config: dict[str, Any], run_dir: Path) -> TrainOptions:
    """The run's recorded :class:`TrainOptions`; a missing, unknown or mistyped entry is one line naming config.json."""
    train = config.get("train")
    if not isinstance(train, dict):
        raise InrkitError(f"cannot resume {run_dir}: its {CONFIG_FILE} has no 'train' section (a decoded .inrz is not "
                          "resumable; fit again)")
    known = {f.name for f in fields(TrainOptions)}
    unknown = sorted(set(train) - known)
    if unknown:
        raise InrkitError(f"cannot resume {run_dir}: {CONFIG_FILE} has an unknown training option {unknown[0]!r} "
                          "(written by another version of inrkit?)")
    try:
        saved = TrainOptions(**train)
        saved.validate()
    except (TypeError, ValueError) as err:
        raise InrkitError(f"cannot resume {run_dir}: invalid 'train' section in {CONFIG_FILE} ({err})") from None
    return saved


def _reopen_signal(signal_config: dict[str, Any]) -> Signal:
    """The run's signal from its recorded source; a moved or deleted source is one line naming ``--source``."""
    source = signal_config.get("source")
    if source is not None and not Path(source).exists():
        raise InrkitError(f"the run's source {source} no longer exists; give its new path with --source PATH")
    return signal_from_config(signal_config)


def load_run(path: str | Path) -> Run:
    """Open a run directory (config, weights, metrics), an ``.inrz`` file or one item ``DIR#i`` of a fit-many
    dataset without reopening its signal.

    The field is whatever the run fitted: a coordinate :class:`Field` or, for ``inrkit nerf`` runs, a
    :class:`~inrkit.fields.NerfModel`.
    """
    item = split_item(path)
    if item is not None:
        return dataset_item_run(*item)
    run_dir = Path(path)
    if is_dataset(run_dir):
        raise InrkitError(f"{run_dir} is a dataset of fields (inrkit fit-many): name one item, {run_dir}#i or --item i")
    if inrz.is_inrz(run_dir) or (run_dir.suffix == inrz.SUFFIX and not run_dir.is_dir()):
        decoded = load_inrz(run_dir)
        return Run(run_dir, decoded.field, decoded.config, decoded.metrics)
    field, config = open_run_field(run_dir, "load")
    history = read_metrics(run_dir)
    return Run(run_dir, field, config, history[-1] if history else {})


def dataset_item_run(directory: Path, index: int) -> Run:
    """Item ``index`` of a fit-many dataset as a :class:`Run` (its field, a run-style config and its metrics)."""
    data = NeuralDataset(directory)
    if not 0 <= index < len(data):
        raise InrkitError(f"{directory} has {len(data)} fitted items; item {index} is not one of them")
    return Run(Path(directory), data.field(index), data.run_config(index), dict(data.items[index].get("metrics") or {}))


def load(path: str | Path) -> Field:
    """The field of a run directory or ``.inrz`` file, ready to query: ``field(coords)`` with coords in [-1, 1]."""
    return load_run(path).field
