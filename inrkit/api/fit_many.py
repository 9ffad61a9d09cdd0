"""``fit-many``: a dataset of fields, one per input file, trained many at a time (``inrkit.fit_many``).

The inputs (:mod:`~inrkit.api.many_inputs`) are opened, hashed and resolved to one architecture and one set of
training options exactly as ``inrkit.fit`` resolves them (the device's protocol, the preset's defaults, the
signal's suggestions), so item ``i`` is the field ``inrkit.fit(source_i, seed=seed + i, ...)`` would give
(``--init random``). Pending items are grouped into shards of ``fields_per_batch`` items taking the same number
of samples per step; each shard trains as stacked fields (:mod:`inrkit.train.stacked`) and is written as one
shard file (:mod:`~inrkit.api.neural_dataset`) by an engine (:mod:`~inrkit.api.engines`).

Resume: running the same command on the same ``--out`` keeps every item already in a shard file whose source
still has the recorded sha256, and fits only the others (new or changed sources) into new shards.

Example:
    >>> ds = inrkit.fit_many("tiles/", out="tiles.fields", model="siren", width=32, depth=3, steps=500)  # doctest: +SKIP
    >>> ds[0][1]["psnr"]                                                                                   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from inrkit.api.checks import check_field_memory
from inrkit.api.engines import ENGINES, run_jobs
from inrkit.api.lifecycle import _apply_defaults, _check_amp, _split_options
from inrkit.api.many_inputs import discover_inputs, input_kind, sha256_of
from inrkit.api.meta_init import learn_meta_init
from inrkit.api.neural_dataset import (
    FORMAT,
    FORMAT_VERSION,
    INIT_FILE,
    NeuralDataset,
    finished_shards,
    is_dataset,
    load_init,
    read_manifest,
    save_init,
    write_manifest,
)
from inrkit.api.shard_fit import WORK_DIR
from inrkit.devices import resolve_device, seed_everything
from inrkit.errors import ConfigError, InrkitError, warn
from inrkit.fields import Field, get_preset, preset_config
from inrkit.files import check_output
from inrkit.signals import Signal, open_signal
from inrkit.train import TrainingInterrupted, TrainOptions
from inrkit.train.chunking import activation_bytes_per_sample, available_memory
from inrkit.train.stacked_signal import steps_samples
from inrkit.version import __version__

INITS = ("random", "shared", "meta")
COMPILE_MODES = ("auto", "on", "off")
DEFAULT_STEPS = 500  # the throughput protocol's budget (BENCHMARKS.md); a time budget would tie a field to its batch
MAX_FIELDS_PER_BATCH = 512
# On a CPU the fields of a batch should keep their activations near the caches: 512 SIRENs of 2,307 parameters on
# 1,024 pixels (600 MB of activations) took 0.59 ms per field and step, 64 of them (75 MB) 0.30 ms (BENCHMARKS.md)
CPU_BATCH_ACTIVATIONS = 128 << 20
# a job that trains at least this many parameter-samples (fields x steps x samples x parameters; the benchmark's 512
# tiles are 6e11) compiles with "--compile auto" (~5 s once per process, saved ~40 % of a step in the benchmark) and
# on a multi-core CPU fans out to one worker process per core (~3 s to start each)
LARGE_JOB_WORK = 1e11
UNSUPPORTED = {"seconds": "--seconds (a wall-clock schedule would tie each field to its batch); give --steps",
               "coarse_to_fine": "--coarse-to-fine", "progressive": "--progressive",
               "clip_grad_norm": "--clip-grad-norm (its norm spans all fields)"}


@dataclass
class FitManyOptions:
    """How ``fit-many`` batches, initialises and distributes the fields (training flags are ``inrkit fit``'s)."""

    fields_per_batch: int | None = field(default=None, metadata={
        "help": "fields trained together (one shard each; default: on a CPU the largest power of two whose activations "
                f"fit {CPU_BATCH_ACTIVATIONS >> 20} MB, elsewhere as many as fit a quarter of the free memory; at most "
                f"{MAX_FIELDS_PER_BATCH}, and at most the fields per worker)"})
    init: str = field(default="random", metadata={
        "help": "random (each field from its own seed) | shared (one random init for all) | meta (Reptile-learned "
                "on the inputs) | DIR (the init saved in another dataset)"})
    meta_steps: int = field(default=200, metadata={"help": "--init meta: Reptile outer steps"})
    meta_inner_steps: int = field(default=5, metadata={"help": "--init meta: optimizer steps per inner fit"})
    meta_batch: int = field(default=16, metadata={"help": "--init meta: signals per outer step"})
    meta_lr: float = field(default=1.0, metadata={"help": "--init meta: outer step size, annealed linearly to 0"})
    strict: bool = field(default=False, metadata={"help": "stop at the first unreadable input (default: skip it, "
                                                          "with a warning, and list it in dataset.json)"})
    engine: str = field(default="local", metadata={"help": "local | ray (shards as Ray tasks; pip install 'inrkit[ray]')"})
    address: str | None = field(default=None, metadata={"help": "--engine ray: address of a running cluster (default: "
                                                                 "start a local one)"})
    cpus_per_task: float = field(default=1.0, metadata={"help": "--engine ray: CPUs per shard task"})
    gpus_per_task: float = field(default=0.0, metadata={"help": "--engine ray: GPUs per shard task"})
    workers: int | None = field(default=None, metadata={
        "help": "--engine local: worker processes fitting shards side by side (default: on a CPU, for a job large "
                "enough to pay their start, one per core with one thread each; else 1, in this process)"})
    compile: str = field(default="auto", metadata={
        "help": "torch.compile the batched forward: auto (when the job is large enough to pay the ~10 s) | on | off"})

    def validate(self) -> None:
        """One line for impossible settings."""
        if self.fields_per_batch is not None and self.fields_per_batch <= 0:
            raise InrkitError(f"--fields-per-batch must be positive, got {self.fields_per_batch}")
        if self.init not in INITS and not is_dataset(self.init):
            raise InrkitError(f"--init must be one of {', '.join(INITS)} or a dataset directory, got {self.init!r}")
        for name in ("meta_steps", "meta_inner_steps", "meta_batch"):
            if getattr(self, name) <= 0:
                raise InrkitError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not (self.meta_lr > 0 and math.isfinite(self.meta_lr)):
            raise InrkitError(f"--meta-lr must be positive, got {self.meta_lr}")
        if self.engine not in ENGINES:
            raise InrkitError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if not (self.cpus_per_task > 0 and self.gpus_per_task >= 0):
            raise InrkitError("--cpus-per-task must be positive and --gpus-per-task at least 0")
        if self.workers is not None and self.workers <= 0:
            raise InrkitError(f"--workers must be positive, got {self.workers}")
        if self.workers is not None and self.engine != "local":
            raise InrkitError("--workers is for --engine local (Ray runs as many tasks as its cluster has CPUs)")
        if self.compile not in COMPILE_MODES:
            raise InrkitError(f"--compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")


@dataclass
class Item:
    """One input: its id (position in the sorted inputs), source, sha256, seed and, when opened, its signal."""

    id: int
    source: str
    sha256: str
    seed: int
    signal: Signal | None = None
    signal_config: dict[str, Any] | None = None
    shard: int | None = None
    row: int | None = None
    metrics: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "sha256": self.sha256, "seed": self.seed,
                "signal": self.signal_config, "shard": self.shard, "row": self.row, "metrics": self.metrics}


def _open_items(paths: list[Path], signal_options: dict[str, Any], seed: int, strict: bool
                ) -> tuple[list[Item], list[dict[str, str]]]:
    """Hash and open every input; an unreadable one stops (``strict``) or is skipped with a warning."""
    items, skipped = [], []
    for path in paths:
        try:
            digest = sha256_of(path)
            signal = open_signal(path, signal_options)
        except (InrkitError, OSError, ValueError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            if strict:
                raise InrkitError(f"cannot fit {path}: {reason} (--strict)") from None
            warn(f"skipping {path}: {reason}")
            skipped.append({"source": str(path.resolve()), "reason": reason})
            continue
        items.append(Item(len(items), str(path.resolve()), digest, seed + len(items), signal, signal.config()))
    if not items:
        raise InrkitError(f"nothing to fit: none of the {len(paths)} inputs could be read")
    return items, skipped


def _resolve(items: list[Item], options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any],
                                                                   dict[int, int | None], torch.device]:
    """One architecture and training protocol for all items, as ``inrkit.fit`` resolves them; per item its batch size.

    Returns ``(field config, model options, train options with lr, {item id: batch size}, device)``.
    """
    model_options, train_options, _ = _split_options(options)
    for name, flag in UNSUPPORTED.items():
        if getattr(train_options, name):
            raise InrkitError(f"fit-many does not take {flag}")
    if train_options.backend not in ("auto", "torch"):
        raise InrkitError("fit-many runs hash grids with the PyTorch reference lookup (vectorised over the fields); "
                          f"--backend {train_options.backend} is for single fits")
    if train_options.steps is None:
        train_options.steps = DEFAULT_STEPS
    train_options.validate()
    device = resolve_device(train_options.device)
    protocol = train_options.resolved_protocol(device.type)
    configs: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    batch_sizes: dict[int, int | None] = {}
    resolved_train: dict[str, Any] = {}
    for item in items:
        assert item.signal is not None
        if getattr(item.signal, "loss_name", None) == "siren":
            raise InrkitError(f"fit-many cannot fit {Path(item.source).name} with SIREN's point-cloud loss (it "
                              "differentiates each field by its input); give meshes, or --sdf-loss l1")
        mo, to = copy.deepcopy(model_options), copy.deepcopy(train_options)
        _apply_defaults(item.signal, mo, to, protocol)
        _check_amp(mo, to)
        config = preset_config(mo, item.signal.n_input_dims, item.signal.n_output_dims, item.signal.samples_per_axis,
                               n_frames=item.signal.n_frames)
        configs.setdefault(repr(config), (config, asdict(mo)))
        if len(configs) > 1:
            raise InrkitError(f"{Path(item.source).name} resolves to another architecture than {Path(items[0].source).name} "
                              "(a default that depends on the signal's size, such as relu-pe's octaves); give it explicitly")
        batch_sizes[item.id] = to.batch_size
        lr = to.lr if to.lr is not None else get_preset(mo.model).lr
        resolved_train = {**asdict(to), "batch_size": None, "lr": lr}
    config, model = next(iter(configs.values()))
    check_field_memory(config, device)
    return config, model, resolved_train, batch_sizes, device


def _fields_per_batch(requested: int | None, config: dict[str, Any], signal: Signal, samples: int,
                      device: torch.device) -> int:
    """``requested``, or as many fields as fit the device: a field costs its training state (weights, gradient, two
    Adam moments: 16 bytes a parameter) plus its activations for one step."""
    if requested is not None:
        return requested
    seed_everything(0)
    probe = Field(config).to(device)
    activations = activation_bytes_per_sample(probe, signal.to(device)) * samples
    if device.type == "cpu":  # the largest power of two whose activations stay within CPU_BATCH_ACTIVATIONS
        fitting = max(1, int(CPU_BATCH_ACTIVATIONS // max(activations, 1.0)))
        return min(MAX_FIELDS_PER_BATCH, 1 << (fitting.bit_length() - 1))
    per_field = 16 * probe.n_params + activations
    return int(max(1, min(MAX_FIELDS_PER_BATCH, available_memory(device) // 4 // max(per_field, 1.0))))


def _workers(many: FitManyOptions, device: torch.device, threads: int | None, large: bool) -> int:
    """``--workers``, or by default on a CPU with a large job one worker process per ``threads`` cores (1 thread each
    without ``--threads``); else 1 (this process). On a shared CPU two 1-thread processes are faster than one of 2
    threads (engines.py)."""
    if many.workers is not None:
        return many.workers
    if many.engine != "local" or device.type != "cpu" or not large:
        return 1
    return max(1, torch.get_num_threads() // (threads or 1))


def _settings(config: dict[str, Any], model: dict[str, Any], train: dict[str, Any], signal_options: dict[str, Any],
              init: str, kind: str) -> dict[str, Any]:
    """What must not change between a dataset's runs: a resume with other settings is refused."""
    keep = {k: v for k, v in train.items() if k not in ("device", "quiet", "threads", "backend", "eval_every")}
    return {"field": config, "model": model, "train": keep, "signal_options": signal_options, "init": init, "kind": kind}


def _check_out(out: Path, inputs: list[Path]) -> None:
    """``out`` may be a new folder, an empty one or a dataset (resumed, or replaced with ``overwrite``)."""
    check_output(out, overwrite=True, inputs=inputs, flag="--out", folder=True)
    if out.is_dir() and any(out.iterdir()) and not is_dataset(out):
        raise InrkitError(f"--out {out} exists and is not an inrkit dataset; choose another folder")


def _adopt_finished(out: Path, items: list[Item]) -> None:
    """Mark the items already in a shard file of ``out`` with an unchanged source sha256 as finished."""
    by_source = {item.source: item for item in items}
    for shard, records in sorted(finished_shards(out).items()):
        for record in records:
            item = by_source.get(str(record.get("source")))
            if item is not None and record.get("sha256") == item.sha256:
                item.shard, item.row, item.metrics = shard, int(record["row"]), record.get("metrics")
                item.seed = int(record.get("seed", item.seed))


def _plan(pending: list[Item], per_batch: int, samples: dict[int, int]) -> list[list[Item]]:
    """Shards of at most ``per_batch`` pending items, each taking the same samples per step (input order kept)."""
    groups: dict[int, list[Item]] = {}
    for item in pending:
        groups.setdefault(samples[item.id], []).append(item)
    shards = []
    for members in groups.values():
        shards += [members[i:i + per_batch] for i in range(0, len(members), per_batch)]
    return shards


def _initialisation(out: Path, options: FitManyOptions, config: dict[str, Any], items: list[Item], train: dict[str, Any],
                    batch_sizes: dict[int, int | None], device: torch.device, seed: int) -> dict[str, Any] | None:
    """Write ``init.safetensors`` for shared and meta inits (kept from an earlier run); returns its manifest entry."""
    if options.init == "random":
        return None
    entry: dict[str, Any] = {"mode": options.init, "file": INIT_FILE, "seed": seed}
    if (out / INIT_FILE).is_file():
        return entry
    if options.init == "shared":
        seed_everything(seed)
        state = Field(config).state_dict()
    elif options.init == "meta":
        groups: dict[int, list[Item]] = {}
        for item in items:
            assert item.signal is not None
            groups.setdefault(steps_samples(item.signal, batch_sizes[item.id]), []).append(item)
        family = max(groups.values(), key=len)
        began = time.perf_counter()
        state = learn_meta_init(config, [i.signal for i in family if i.signal is not None],
                                TrainOptions(batch_size=batch_sizes[family[0].id], amp=bool(train.get("amp"))),
                                float(train["lr"]), device, options.meta_steps, options.meta_inner_steps,
                                options.meta_batch, options.meta_lr, seed)
        entry["meta"] = {"method": "reptile", "steps": options.meta_steps, "inner_steps": options.meta_inner_steps,
                         "batch": options.meta_batch, "lr": options.meta_lr, "signals": len(family),
                         "seconds": round(time.perf_counter() - began, 2)}
    else:
        state = load_init(Path(options.init))
        entry = {"mode": "from", "from": str(Path(options.init).resolve()), "file": INIT_FILE, "seed": seed}
    try:
        Field(config).load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ConfigError(f"the initialisation does not match this architecture: {str(err).splitlines()[0]}") from None
    save_init(out, state)
    return entry


class _Progress:
    """Fields done / total, running mean PSNR and throughput, one line per finished shard."""

    def __init__(self, total: int, done: int, quiet: bool) -> None:
        self.total, self.done, self.quiet = total, done, quiet
        self.began = time.perf_counter()
        self.fitted = 0
        self.psnr: list[float] = []

    def update(self, metrics: list[dict[str, Any]]) -> None:
        self.done += len(metrics)
        self.fitted += len(metrics)
        self.psnr += [m["psnr"] for m in metrics if isinstance(m.get("psnr"), float)]
        if not self.quiet:
            rate = self.fitted / max(time.perf_counter() - self.began, 1e-9)
            mean = f", mean PSNR {sum(self.psnr) / len(self.psnr):.2f} dB" if self.psnr else ""
            print(f"fit-many: {self.done:,}/{self.total:,} fields{mean}, {rate:.2f} fields/s", file=sys.stderr, flush=True)


def fit_many(inputs: str | Path | list[str | Path], model: str = "siren", *, out: str | Path, overwrite: bool = False,
             **options: Any) -> NeuralDataset:
    """Fit one field per input into the dataset directory ``out`` and return it as a :class:`NeuralDataset`.

    ``inputs``: a folder, a glob pattern, a list file or a list of paths (:mod:`~inrkit.api.many_inputs`).
    ``options``: :class:`FitManyOptions` fields and the options ``inrkit.fit`` takes (model, training, signal);
    ``steps`` defaults to 500 (a time budget is refused), ``seed`` s gives item i the seed s + i.
    Rerunning on the same ``out`` resumes (module docstring); ``overwrite=True`` starts afresh.
    """
    many_names = set(FitManyOptions.__dataclass_fields__)
    many = FitManyOptions(**{k: v for k, v in options.items() if k in many_names})
    many.validate()
    fit_options = {"model": model, **{k: v for k, v in options.items() if k not in many_names}}
    _, train_check, signal_options = _split_options(fit_options)
    train_check.validate()
    if signal_options.get("export"):
        raise InrkitError("fit-many writes weights, not per-item outputs: drop --export and render or mesh items "
                          "afterwards (inrkit render DIR#i, inrkit mesh DIR#i)")
    out = Path(out)
    paths = discover_inputs(inputs)
    kind = input_kind(paths)
    _check_out(out, paths)
    items, skipped = _open_items(paths, signal_options, train_check.seed, many.strict)
    config, model_dict, train, batch_sizes, device = _resolve(items, fit_options)
    init_name = many.init if many.init in INITS else str(Path(many.init).resolve())
    settings = _settings(config, model_dict, train, signal_options, init_name, kind)
    if overwrite and is_dataset(out):
        shutil.rmtree(out)  # once every input and option has been checked
    if is_dataset(out):
        previous = read_manifest(out)
        if previous.get("settings") != settings:
            raise InrkitError(f"{out} holds a dataset fitted with other settings; give another --out, the same flags to "
                              "resume, or --overwrite to start afresh")
    out.mkdir(parents=True, exist_ok=True)
    _adopt_finished(out, items)
    first = items[0].signal
    assert first is not None
    samples = {i.id: steps_samples(i.signal, batch_sizes[i.id]) for i in items if i.signal is not None}
    pending = [item for item in items if item.shard is None]
    large = sum(samples[i.id] for i in pending) * train["steps"] * Field(config).n_params >= LARGE_JOB_WORK
    workers = _workers(many, device, train.get("threads"), large)
    per_batch = _fields_per_batch(many.fields_per_batch, config, first, steps_samples(first, batch_sizes[0]), device)
    if many.fields_per_batch is None and workers > 1:  # a shard for every worker
        per_batch = min(per_batch, max(1, math.ceil(len(pending) / workers)))
    init = _initialisation(out, many, config, items, train, batch_sizes, device, train_check.seed)
    manifest = {"format": FORMAT, "version": FORMAT_VERSION, "inrkit_version": __version__, "kind": kind,
                "field": config, "model": model_dict, "train": train, "init": init, "fields_per_batch": per_batch,
                "engine": many.engine, "workers": workers, "settings": settings, "items": [i.record() for i in items],
                "skipped": skipped}
    write_manifest(out, manifest)
    for item in items:
        item.signal = None  # the shard jobs reopen their own signals: the driver keeps no signal data
    shards = _plan(pending, per_batch, samples)
    compile_mode = many.compile if many.compile != "auto" else ("on" if large else "off")
    threads = train.get("threads") or (max(1, torch.get_num_threads() // workers) if workers > 1 else None)
    first_shard = max(finished_shards(out), default=-1) + 1
    jobs = [{"dir": str(out), "shard": first_shard + k, "field": config,
             "train": {**train, "batch_size": batch_sizes[members[0].id], "threads": threads},
             "signal_options": signal_options, "init_file": INIT_FILE if init else None, "device": train["device"],
             "compile": compile_mode, "quiet": bool(train.get("quiet")) or many.engine != "local" or workers > 1,
             "items": [{"id": i.id, "source": i.source, "sha256": i.sha256, "seed": i.seed} for i in members]}
            for k, members in enumerate(shards)]
    by_id = {item.id: item for item in items}
    progress = _Progress(len(items), len(items) - len(pending), bool(train.get("quiet")))

    def done(result: dict[str, Any]) -> None:
        for record in result["items"]:
            item = by_id[int(record["id"])]
            item.shard, item.row, item.metrics = int(result["shard"]), int(record["row"]), record.get("metrics")
        manifest["items"] = [i.record() for i in items]
        write_manifest(out, manifest)
        progress.update([r.get("metrics") or {} for r in result["items"]])

    try:
        run_jobs(many.engine, jobs, done, **({"address": many.address, "cpus_per_task": many.cpus_per_task,
                                               "gpus_per_task": many.gpus_per_task} if many.engine == "ray" else
                                              {"workers": workers}))
    except TrainingInterrupted as err:
        finished = sum(1 for i in items if i.shard is not None)
        raise TrainingInterrupted(f"interrupted: {finished:,} of {len(items):,} fields are kept in {out}; run the same "
                                  "command again to fit the rest", err.signum) from None
    shutil.rmtree(out / WORK_DIR, ignore_errors=True)
    return NeuralDataset(out)


__all__ = ["FitManyOptions", "fit_many"]
