"""The ``inrkit`` command: a thin shell over :mod:`inrkit.api`.

Flags of ``inrkit fit`` are generated from the option dataclasses the API takes
(:class:`~inrkit.fields.ModelOptions`, :class:`~inrkit.train.TrainOptions`,
:data:`~inrkit.signals.SIGNAL_OPTIONS`), so nothing is declared twice.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
import types
import typing
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inrkit.errors import InrkitError, InrkitWarning


def _flag_type(annotation: Any) -> type:
    """``int | None`` -> ``int``; plain types pass through."""
    if isinstance(annotation, types.UnionType):
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


class _Given(argparse.Action):
    """Store the value and remember that the flag was given (``namespace.given``): a resume applies
    exactly the options given, even one set to its default."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one ``--flag`` per field of dataclass ``cls`` (help text from the field's metadata)."""
    group = parser.add_argument_group(cls.__name__)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.metadata.get("shared"):
            continue  # declared by another options class of the same command
        flag = field.metadata.get("flag") or "--" + field.name.replace("_", "-")
        kind = _flag_type(hints[field.name])
        help_text = field.metadata.get("help", "")
        if kind is bool:
            group.add_argument(flag, dest=field.name, action=_Given, nargs=0, const=True, default=False, help=help_text)
        else:
            default = f" (default: {field.default})" if field.default is not None else ""
            group.add_argument(flag, dest=field.name, action=_Given, type=kind, default=field.default,
                               help=help_text + default, metavar=field.name.upper())


def _collect(namespace: argparse.Namespace, *classes: type, given_only: bool = False) -> dict[str, Any]:
    """The values of the flags of dataclasses ``classes``; with ``given_only``, of those given on the command line."""
    names = {f.name for cls in classes for f in dataclasses.fields(cls)}
    if given_only:
        names &= getattr(namespace, "given", set())
    return {k: v for k, v in vars(namespace).items() if k in names}


def _default_out(signal_path: str, model: str) -> Path:
    base = Path("runs") / f"{Path(signal_path).stem}-{model}"
    candidate, index = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{index}")
        index += 1
    return candidate


MAX_RENDER_MEGAPIXELS = 256.0  # --max-megapixels of render: about 3 GiB of float RGB
MAX_FPS = 1000.0
MAX_RATE = 768_000  # Hz, the highest rate of common audio hardware
MAX_FRAMES = 100_000


def _parse_size(text: str, max_megapixels: float = MAX_RENDER_MEGAPIXELS) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InrkitError(f"--size must look like 1024x768, got {text!r}") from None
    if width <= 0 or height <= 0:
        raise InrkitError(f"--size must be positive, got {text!r}")
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise InrkitError(f"--size {text} is {megapixels:,.0f} megapixels (about {12 * megapixels / 1024:,.0f} GiB to "
                          f"render), above --max-megapixels {max_megapixels:g}; raise that limit to render it anyway")
    return width, height


def _check_render_values(args: argparse.Namespace) -> None:
    """Refuse nonsensical or unbounded render flags before anything is loaded."""
    import math

    if not args.max_megapixels > 0:
        raise InrkitError(f"--max-megapixels must be positive, got {args.max_megapixels}")
    if args.fps is not None and not (math.isfinite(args.fps) and 0 < args.fps <= MAX_FPS):
        raise InrkitError(f"--fps must be a frame rate in (0, {MAX_FPS:g}], got {args.fps}")
    if args.rate is not None and not 1 <= args.rate <= MAX_RATE:
        raise InrkitError(f"--rate must be a sample rate between 1 and {MAX_RATE:,} Hz, got {args.rate}")
    if not 1 <= args.frames <= MAX_FRAMES:
        raise InrkitError(f"--frames must be between 1 and {MAX_FRAMES:,}, got {args.frames}")
    if not 8 <= args.mesh_resolution <= 2048:
        raise InrkitError(f"--mesh-resolution must be between 8 and 2048, got {args.mesh_resolution}")


def _run_inputs(path: str | Path) -> list[Path]:
    """What a command reads from a run directory or ``.inrz`` file (:func:`inrkit.api.render.run_inputs`)."""
    from inrkit.api.render import run_inputs

    return run_inputs(path)


def _output(path: str | Path, args: argparse.Namespace, flag: str = "--out") -> Path:
    """``path`` checked against the one output policy (:func:`inrkit.files.check_output`)."""
    from inrkit.files import check_output

    return check_output(path, overwrite=args.overwrite, inputs=_run_inputs(args.run), flag=flag)


def cmd_fit(args: argparse.Namespace) -> int:
    from inrkit import api
    from inrkit.fields import ModelOptions
    from inrkit.signals import SIGNAL_OPTIONS
    from inrkit.train import TrainOptions

    options = _collect(args, ModelOptions, TrainOptions, *SIGNAL_OPTIONS, given_only=args.resume)
    if args.resume:
        if args.out is None and args.path is None:
            raise InrkitError("--resume needs the run directory: inrkit fit --resume --out RUN")
        out = args.out or args.path
        run = api.fit(args.source, resume=True, out=out, report=args.report or None,
                      **{k: v for k, v in options.items() if k != "model"})
    elif args.path is None:
        raise InrkitError("give the file to fit: inrkit fit PATH --model NAME")
    elif args.dry_run:
        print(api.estimate(args.path, **options).line())
        return 0
    else:
        out = args.out or _default_out(args.path, args.model)
        run = api.fit(args.path, out=out, overwrite=args.overwrite, report=args.report or None, **options)
    metrics = run.metrics
    names = {"psnr": "PSNR", "psnr_heldout": "held-out PSNR", "snr": "SNR", "ssim": "SSIM", "iou": "IoU",
             "chamfer_l1": "Chamfer-L1", "chamfer_l2": "Chamfer-L2", "normal_consistency": "NC", "fscore": "F-score"}
    quality = "  ".join(f"{label} {metrics[k]:.4g}" for k, label in names.items() if k in metrics)
    print(f"fitted {run.config['model']['model']} ({run.field.n_params:,} params) in {metrics['elapsed']:.1f} s, "
          f"{metrics['step']} steps: {quality}; outputs written in {run.output_seconds:.1f} s  ->  {run.dir}")
    return 0


def cmd_fit_many(args: argparse.Namespace) -> int:
    import time

    from inrkit import api
    from inrkit.api.fit_many import FitManyOptions
    from inrkit.fields import ModelOptions
    from inrkit.signals import SIGNAL_OPTIONS
    from inrkit.train import TrainOptions

    options = _collect(args, ModelOptions, TrainOptions, FitManyOptions, *SIGNAL_OPTIONS)
    inputs = args.inputs[0] if len(args.inputs) == 1 else args.inputs
    began = time.perf_counter()
    data = api.fit_many(inputs, out=args.out, overwrite=args.overwrite, **options)
    psnr = [m["psnr"] for _, m, _ in (data[i] for i in range(len(data))) if isinstance(m.get("psnr"), float)]
    mean = f", mean PSNR {sum(psnr) / len(psnr):.2f} dB" if psnr else ""
    skipped = data.manifest.get("skipped") or []
    note = f"; {len(skipped)} input(s) skipped (listed in dataset.json)" if skipped else ""
    print(f"{len(data):,} fields ({data.manifest['model']['model']}, {data.field(0).n_params:,} parameters each) in "
          f"{time.perf_counter() - began:.1f} s{mean}{note}  ->  {args.out}")
    return 0


def _with_item(args: argparse.Namespace) -> None:
    """``RUN --item i`` is ``RUN#i``: one item of a fit-many dataset."""
    if getattr(args, "item", None) is not None:
        if args.item < 0:
            raise InrkitError(f"--item must be >= 0, got {args.item}")
        args.run = f"{args.run}#{args.item}"


def cmd_render(args: argparse.Namespace) -> int:
    from inrkit import api
    from inrkit.api.neural_dataset import split_item
    from inrkit.fields import NerfModel

    _with_item(args)
    _check_render_values(args)
    size = _parse_size(args.size, args.max_megapixels) if args.size else None
    for flag in ("out", "turntable", "mesh"):
        value = getattr(args, flag)
        if value and not (flag == "out" and _may_be_frames_folder(value)):  # a video run's frames: checked below
            _output(value, args, f"--{flag}")
    run = api.load_run(args.run)
    if isinstance(run.field, NerfModel):
        return cmd_render_nerf(args, run)
    if args.turntable or args.mesh:
        raise InrkitError(f"--turntable and --mesh need a radiance-field run (inrkit nerf); {args.run} is not one")
    kind = _signal_section(run.config, args.run).get("kind")
    width, height = size if size else (None, None)
    if kind != "audio" and args.rate is not None:
        raise InrkitError(f"--rate applies to audio runs; {args.run} is a {kind} run")
    if kind != "video" and args.fps is not None:
        raise InrkitError(f"--fps applies to video runs and NeRF turntables; {args.run} is a {kind} run")
    source = Path(args.run)

    item = split_item(args.run)

    def default_out(name: str) -> Path:
        if item is not None:  # a dataset's item: DIR/item-00003-render-....png
            return _output(item[0] / f"item-{item[1]:05d}-{name}", args)
        return _output(source / name if source.is_dir() else source.with_name(f"{source.stem}-{name}"), args)

    if kind == "audio":
        if args.size:
            raise InrkitError("--size does not apply to audio runs (use --rate)")
        if args.out and Path(args.out).suffix.lower() != ".wav":
            raise InrkitError(f"--out of an audio run must end in .wav, got {args.out!r}")
        out = args.out or default_out(f"render-{args.rate or 'original'}.wav")
        path = api.render_audio(run, out, rate=args.rate, device=args.device, overwrite=args.overwrite)
    elif kind == "video":
        if args.out and _may_be_frames_folder(args.out):
            _frames_folder(args.out, args)
        out = args.out or default_out(f"render-{args.size or 'original'}-{args.fps or 'original'}fps.mp4")
        path = api.render_video(run, out, fps=args.fps, height=height, width=width, device=args.device,
                                 overwrite=args.overwrite)
    else:
        if args.out:
            _output(args.out, args)
        out = args.out or default_out(f"render-{args.size or 'original'}.png")
        path = api.render_image(run, out, height=height, width=width, device=args.device,
                                 overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".m4v")


def _may_be_frames_folder(path: str | Path) -> bool:
    """True when a video run's ``--out`` would be a folder of PNG frames: it has no video, image or audio suffix."""
    return Path(path).suffix.lower() not in (*VIDEO_SUFFIXES, *IMAGE_SUFFIXES, ".wav", ".gif")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr")


def _frames_folder(path: str | Path, args: argparse.Namespace) -> None:
    """A video's frames folder: replaced (it is written whole, then swapped in) only with ``--overwrite``, only when
    it holds nothing but PNG frames, and never when it holds an input."""
    from inrkit.files import check_output

    folder = check_output(path, overwrite=args.overwrite, inputs=_run_inputs(args.run), folder=True)
    if folder.is_dir() and any(folder.iterdir()):
        if not args.overwrite:
            raise InrkitError(f"--out {folder} exists; pass --overwrite to replace its frames")
        others = [p.name for p in folder.iterdir() if not (p.is_file() and p.suffix.lower() == ".png")]
        if others:
            raise InrkitError(f"refusing to replace --out {folder}: it holds {others[0]!r}, not only PNG frames")


def cmd_mesh(args: argparse.Namespace) -> int:
    from inrkit import api

    out = _output(args.out or Path(args.run) / f"mesh-{args.resolution}.ply", args)
    path = api.export_mesh(args.run, out, resolution=args.resolution, device=args.device, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0


def cmd_nerf(args: argparse.Namespace) -> int:
    from inrkit.api import nerf
    from inrkit.devices import resolve_device
    from inrkit.train import TrainOptions

    options = _collect(args, nerf.NerfOptions, TrainOptions, given_only=args.resume)
    if args.resume:
        out = args.out or args.scene
        if out is None:
            raise InrkitError("--resume needs the run directory: inrkit nerf --resume --out RUN")
        run = nerf.fit(args.source, resume=True, out=out, **{k: v for k, v in options.items() if k != "preset"})
    else:
        if args.scene is None:
            raise InrkitError("give the scene: inrkit nerf SCENE_DIR (or a procedural scene .json)")
        if args.mesh:
            from inrkit.files import check_output

            check_output(args.mesh, overwrite=args.overwrite, flag="--mesh")
        if not 8 <= args.mesh_resolution <= 2048:
            raise InrkitError(f"--mesh-resolution must be between 8 and 2048, got {args.mesh_resolution}")
        out = args.out or _default_out(args.scene.rstrip("/"), "nerf")
        if resolve_device(args.device).type == "cpu" and not args.quiet:
            print("inrkit: training on the CPU: a 128x128 procedural scene needs about 5 minutes (34 dB on 2 cores); "
                  "800x800 scenes need a GPU (hours on a CPU). --seconds bounds the run.", file=sys.stderr)
        run = nerf.fit(args.scene, out=out, overwrite=args.overwrite, **options)
    metrics = run.metrics
    print(f"fitted {run.config['model']['model']} ({run.model.field.n_params:,} params) in {metrics['elapsed']:.1f} s, "
          f"{metrics['step']} steps: test PSNR {metrics['psnr']:.2f} dB  SSIM {metrics['ssim']:.4f}  ->  {run.dir}")
    if "rotation_error_deg" in metrics:
        print(f"camera poses (aligned to the scene's): rotation error {metrics['rotation_error_deg_before']:.2f} -> "
              f"{metrics['rotation_error_deg']:.2f} deg, translation error {metrics['translation_error_before']:.4f} -> "
              f"{metrics['translation_error']:.4f} (mean over {len(run.signal.cameras)} training cameras; poses.json)")
    if args.mesh:
        print(f"wrote {run.export_mesh(args.mesh, resolution=args.mesh_resolution)}")
    return 0


def _open_nerf(path: str, device: str = "cpu", run: Any = None) -> Any:
    """A :class:`~inrkit.api.nerf.NeRF` of a radiance-field run directory or ``.inrz`` file (``run``: already loaded)."""
    from inrkit import api
    from inrkit.api.nerf import NeRF
    from inrkit.devices import resolve_device

    run = run if run is not None else api.load_run(path)
    return NeRF(run.dir, run.field.to(resolve_device(device)).eval(), run.config, run.metrics)


def cmd_render_nerf(args: argparse.Namespace, loaded: Any = None) -> int:
    run = _open_nerf(args.run, args.device, loaded)
    size = _parse_size(args.size, args.max_megapixels) if args.size else None
    source = Path(args.run)
    if args.rate is not None:
        raise InrkitError(f"--rate applies to audio runs; {args.run} is a radiance-field run")
    if not (args.turntable or args.mesh or args.out):
        args.turntable = str(_output(source / "turntable.mp4" if source.is_dir()
                                     else source.with_name(f"{source.stem}-turntable.mp4"), args, "--turntable"))
    if (args.turntable or args.out) and run.config.get("turntable") is None:  # a present one was checked on loading
        raise InrkitError(f"{args.run} records no turntable orbit (compressed from a bare model?); only --mesh works")
    if args.out and Path(args.out).suffix.lower() not in IMAGE_SUFFIXES:
        raise InrkitError(f"--out of a radiance-field run is one view as an image (.png, .jpg, .tif, .exr), got {args.out!r}; "
                          "use --turntable for a video")
    if args.turntable:
        if Path(args.turntable).suffix.lower() not in (".mp4", ".gif"):
            raise InrkitError(f"--turntable must end in .mp4 or .gif, got {args.turntable!r}")
        if size is not None and args.frames * size[0] * size[1] / 1e6 > 16 * args.max_megapixels:
            raise InrkitError(f"--frames {args.frames} at --size {args.size} is more than 16 x --max-megapixels "
                              f"{args.max_megapixels:g} of video; give fewer frames or a smaller size")
        fps = max(1, round(args.fps)) if args.fps else 30
        print(f"wrote {run.render_turntable(args.turntable, n_frames=args.frames, fps=fps, size=size)}")
    if args.mesh:
        print(f"wrote {run.export_mesh(args.mesh, resolution=args.mesh_resolution)}")
    if args.out:
        from inrkit.io.images import write_image

        camera = run.turntable_cameras(1, size)[0]
        rgb = run.render(camera)["rgb"]
        print(f"wrote {write_image(args.out, (rgb.clip(0, 1) * 255).round().astype('uint8'))}")
    return 0


def _signal_section(config: dict, run: str | Path) -> dict:
    """The run's ``signal`` section; one line naming config.json when it is missing or not an object."""
    signal = config.get("signal")
    if not isinstance(signal, dict) or not isinstance(signal.get("kind"), str):
        raise InrkitError(f"cannot use {run}: its config.json has no valid 'signal' section (with its 'kind')")
    return signal


def _print_nerf_parts(config: dict, model: Any) -> None:
    """The field parts and occupancy lines of ``inrkit info`` for a radiance field (``config``: the NerfModel's)."""
    for part in ("position_encoding", "density_network", "direction_encoding", "rgb_network"):
        print(f"{part:<19}{config['field'][part]}")
    print(f"grid       {model.grid.n_cascades} cascade(s) x {model.grid.resolution}^3, "
          f"{100 * model.grid.occupancy_fraction():.1f}% occupied")


def _print_latent_parts(decoded: Any) -> None:
    """The codec lines of ``inrkit info`` for a latent-codec file: grids, networks, decoder cost, latent stream."""
    field, config = decoded.field, decoded.config["field"]
    print(f"latents    {field.encoding.n_levels} grids, {field.encoding.n_latents:,} latents "
          f"({decoded.header['latent']['length']:,} B, {8 * decoded.header['latent']['length'] / field.encoding.n_latents:.3f} "
          "bits/latent)")
    print(f"synthesis  {config['network']}")
    print(f"arm        {config['arm']}")
    print(f"decoder    {field.macs_per_pixel():,.0f} multiplications/pixel")


def _print_inrz_info(path: Path) -> None:
    from inrkit.api.compress import sample_count
    from inrkit.export import load
    from inrkit.fields import NerfModel

    decoded = load(path)
    radiance = isinstance(decoded.field, NerfModel)
    samples = None if radiance else sample_count(decoded.config.get("signal"))
    rate = f", {8 * decoded.n_bytes / samples:.4f} bpp" if samples else ""
    if radiance:
        rate = f", {8 * decoded.n_bytes / max(decoded.field.n_params, 1):.2f} bits/parameter"
    print(f"file       {path}  ({decoded.n_bytes:,} bytes{rate})")
    signal = decoded.config.get("signal") or {}
    if radiance:
        views = signal.get("n_views")
        views = " ".join(f"{k} {v}" for k, v in views.items()) if isinstance(views, dict) else "?"
        print(f"scene      views {views}  downscale {signal.get('downscale', '?')}  "
              f"aabb_scale {decoded.config['field']['scene']['aabb_scale']}")
    else:
        shape = "x".join(str(signal[k]) for k in ("width", "height") if k in signal)
        print(f"signal     {signal.get('kind', 'unknown')} {shape} x{signal.get('channels', '?')}")
    print(f"model      {decoded.config['model'].get('model') or '?'}  ({decoded.field.n_params:,} parameters)")
    if decoded.image is not None:
        _print_latent_parts(decoded)
    elif radiance:
        _print_nerf_parts(decoded.config["field"], decoded.field)
        print(f"turntable  {'yes' if decoded.config.get('turntable') else 'none (inrkit render FILE --mesh only)'}")
    else:
        print(f"network    {decoded.config['field']['network']}")
        print(f"encoding   {decoded.config['field'].get('encoding')}")
    for entry in decoded.header["tensors"]:
        how = entry["storage"]
        if how == "quantized":
            model = entry["params"].get("model", "")
            how = f"{entry['bits']}-bit {entry['scheme']} {entry['coder']}{' ' + model if model else ''}"
        elif how == "bitmask":
            how = f"bitmask {entry['coder']}"
        elif how == "omitted":
            how = "omitted (training only)"
        shape = "x".join(map(str, entry["shape"])) or "scalar"
        print(f"tensor     {entry['name']:<34} {shape:>11}  {how:<32} {entry['length']:>9,} B")
    if decoded.metrics:
        print("metrics    " + "  ".join(f"{k} {v}" for k, v in decoded.metrics.items()))


def _print_dataset_info(path: Path) -> None:
    """``inrkit info DATASET``: architecture, training, initialisation, items done and their mean metrics."""
    from inrkit.api.neural_dataset import load_dataset

    data = load_dataset(path)
    manifest = data.manifest
    train, init = manifest.get("train", {}), manifest.get("init") or {"mode": "random"}
    print(f"dataset    {path}  ({manifest.get('kind')} fields, format version {manifest.get('version')})")
    print(f"items      {len(data):,} fitted of {len(manifest['items']):,}; {len(manifest.get('skipped') or [])} skipped; "
          f"{manifest.get('fields_per_batch')} fields per batch (shard)")
    count = f"{data.field(0).n_params:,}" if len(data) else "?"
    print(f"model      {manifest['model']['model']}  ({count} parameters each)")
    print(f"network    {manifest['field']['network']}")
    print(f"encoding   {manifest['field'].get('encoding')}")
    print(f"training   lr {train.get('lr'):g}  schedule {train.get('schedule')}  steps {train.get('steps')}  "
          f"seed {train.get('seed')}")
    print(f"init       {init.get('mode')}" + (f"  {init['meta']}" if init.get("meta") else ""))
    metrics = [m for _, m, _ in (data[i] for i in range(len(data)))]
    keys = [k for k in (metrics[0] if metrics else {}) if all(isinstance(m.get(k), float) for m in metrics)]
    _print_metrics({f"mean_{k}": sum(m[k] for m in metrics) / len(metrics) for k in keys})


def cmd_info(args: argparse.Namespace) -> int:
    from inrkit import api
    from inrkit.api.neural_dataset import is_dataset
    from inrkit.export import is_inrz
    from inrkit.fields import NerfModel

    if is_inrz(args.run):
        _print_inrz_info(Path(args.run))
        return 0
    if is_dataset(args.run):
        _print_dataset_info(Path(args.run))
        return 0
    run = api.load_run(args.run)
    if isinstance(run.field, NerfModel):
        return cmd_info_nerf(args, run)
    config = run.config
    signal = config["signal"]
    shape = "x".join(str(signal[k]) for k in ("width", "height") if k in signal)
    if signal.get("kind") == "sdf":
        shape = f"{signal['shape']}, {signal['n_vertices']:,} vertices, {signal['n_faces']:,} faces, loss {signal['loss']}"
    elif signal.get("kind") == "video":
        shape += f" x {signal['n_frames']} frames @ {signal['fps']:g} fps"
    elif signal.get("kind") == "audio":
        shape = f"{signal['n_samples']} samples @ {signal['sample_rate']} Hz"
    print(f"run        {run.dir}")
    channels = "" if signal.get("kind") == "sdf" else f" x{signal.get('channels', '?')}"
    print(f"signal     {signal.get('kind')} {shape}{channels}  from {signal.get('source')}")
    print(f"model      {config['model']['model']}  ({run.field.n_params:,} parameters)")
    print(f"network    {config['field']['network']}")
    print(f"encoding   {config['field']['encoding']}")
    train = config.get("train")
    if train:
        print(f"training   lr {train['lr']:g}  schedule {train['schedule']}  steps {train['steps']}  "
              f"seconds {train['seconds']}  batch {train['batch_size'] or 'full'}  seed {train['seed']}")
    _print_metrics(run.metrics)
    return 0


def _print_metrics(metrics: dict) -> None:
    """The ``metrics`` line of ``inrkit info`` (nothing when the run has no evaluation yet)."""
    if metrics:
        shown = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in metrics.items())
        print(f"metrics    {shown}")


def cmd_info_nerf(args: argparse.Namespace, loaded: Any = None) -> int:
    run = _open_nerf(args.run, "cpu", loaded)
    config, signal = run.config, run.config.get("signal") or {}
    print(f"run        {run.dir}")
    source = signal.get("source") or (f"decoded from {config['compressed_from']}" if config.get("compressed_from") else "?")
    print(f"scene      {source}  views {signal.get('n_views', '?')}  downscale {signal.get('downscale', '?')}  "
          f"aabb_scale {config['field']['scene']['aabb_scale']}")
    print(f"model      {(config.get('model') or {}).get('model') or '?'}  ({run.model.field.n_params:,} parameters)")
    _print_nerf_parts(config["field"], run.model)
    train = config.get("train")
    if train:
        print(f"training   lr {train['lr']:g}  schedule {train['schedule']}  steps {train['steps']}  "
              f"seconds {train['seconds']}  loss {signal.get('loss')}  samples/step {signal.get('target_samples')}")
    _print_metrics(run.metrics)
    return 0


def cmd_compress(args: argparse.Namespace) -> int:
    from inrkit import api
    from inrkit.api import compress, latent_compress
    from inrkit.api.neural_dataset import split_item

    _with_item(args)
    options = compress.CompressOptions(**_collect(args, compress.CompressOptions))
    latent = latent_compress.LatentOptions(**_collect(args, latent_compress.LatentOptions))
    latent_only = set(_collect(args, latent_compress.LatentOptions, given_only=True)) - set(dataclasses.asdict(options))
    if options.codec != "latent" and (args.resume or latent_only):
        raise InrkitError("--resume, --lambda, --complexity, --steps, --seconds, --lr, --seed, --threads, --device and "
                          "--quiet are options of --codec latent")
    if not args.resume:
        _output(args.out, args, "the output")
    source = api.load_run(args.run) if split_item(args.run) else args.run  # one item of a dataset: its Run
    report = compress.compress(source, args.out, options, signal=args.signal, latent=latent, resume=args.resume)
    print(report.summary())
    return 0


def cmd_decompress(args: argparse.Namespace) -> int:
    from inrkit.api import compress

    decoded = compress.decompress(args.file, args.out, overwrite=args.overwrite)
    what = "image" if decoded.image is not None else f"{decoded.field.n_params:,} parameters"
    print(f"decoded {args.file} ({what}) -> {args.out}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from inrkit.fields import PRESETS, build_field

    print(f"{'model':<14} {'params (2->3)':>13}  {'lr':>7}  description")
    for name, preset in PRESETS.items():
        if preset.time_varying:  # counted for (t, y, x) -> RGB, 250 frames
            n_params = build_field(name, 3, 3, n_frames=250).n_params
            print(f"{name:<14} {n_params:>13,}* {preset.lr:>7.0e}  {preset.description}")
        else:
            print(f"{name:<14} {build_field(name, 2, 3).n_params:>13,}  {preset.lr:>7.0e}  {preset.description}")
    print("* for a (t, y, x) -> RGB video of 250 frames")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from inrkit.api import bench, bench_results, protocols

    if args.list:
        for name in protocols.protocol_names():
            protocol = protocols.load_protocol(name)
            print(f"{name:<22} v{protocol.version}  {protocol.title}")
            print(f"{'':<22}     models: {' '.join(protocol.models)}")
            for scale in ("cpu",):
                print(f"{'':<22}     --scale {scale}: {protocols.load_protocol(name, scale).factors}")
        return 0
    if args.protocol is None:
        raise InrkitError("give a protocol: inrkit bench NAME (inrkit bench --list shows them) or a protocol .json file")
    protocol = protocols.load_protocol(args.protocol, args.scale)
    data = args.data or os.environ.get("INRKIT_DATA")
    if data is None:
        raise InrkitError(f"give the data folder: --data DIR (or $INRKIT_DATA); it must hold "
                          f"{protocol.data.get('description', 'the data')}")
    out = Path(args.out or Path("bench") / f"{protocol.name}-{protocol.scale}")
    began = time.perf_counter()
    result = bench.run_bench(protocol, data, out, args.models, quiet=not args.verbose, echo=print,
                             fit_options={"report": True} if args.report else None)
    print(result.table())
    print(f"bench {protocol.name} ({protocol.scale} scale) in {time.perf_counter() - began:.1f} s  ->  {out} "
          f"({bench_results.RESULTS_FILE}, {bench_results.TABLE_FILE}; inrkit report {out} for the HTML report)")
    if protocol.scale != "full":
        print(f"full protocol (GPU advised): inrkit bench {args.protocol} --scale full --data {data} "
              f"--out {Path('bench') / f'{protocol.name}-full'}")
    failed = [line for line in result.problems() if "failed" in line]
    if failed:
        raise BenchCellsFailed(f"{len(failed)} cell(s) failed (see the table above; a rerun retries them)")
    return 0


class BenchCellsFailed(InrkitError):
    """Some cells of a bench failed (the others ran): exit status 1."""


def cmd_report(args: argparse.Namespace) -> int:
    from inrkit.api.report import build_report
    from inrkit.files import check_output

    out = check_output(args.out, overwrite=args.overwrite, inputs=[Path(p) for p in args.runs])
    began = time.perf_counter()
    path = build_report(args.runs, out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB in {time.perf_counter() - began:.1f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from inrkit.api.fit_many import FitManyOptions
    from inrkit.api.latent_compress import LatentOptions
    from inrkit.export import CompressOptions
    from inrkit.fields import ModelOptions
    from inrkit.nerf import NerfOptions
    from inrkit.signals import SIGNAL_OPTIONS
    from inrkit.train import TrainOptions
    from inrkit.version import __version__

    parser = argparse.ArgumentParser(prog="inrkit", description="Fit implicit neural representations to signals.")
    parser.add_argument("--version", action="version", version=f"inrkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="fit a field to a file (image, audio, video, mesh, point cloud)")
    fit.add_argument("path", nargs="?", help="the signal to fit: image (PNG, JPEG, TIFF, EXR), audio (WAV), "
                                             "video (MP4, GIF, or a folder of frames), mesh (OBJ, PLY, STL, OFF, GLB) "
                                             "or point cloud (PLY, XYZ)")
    fit.add_argument("--out", help="run directory (default: runs/<name>-<model>)")
    fit.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    fit.add_argument("--source", help="with --resume: the signal's new path, when its file moved since the fit")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    fit.add_argument("--report", action="store_true", help="keep RUN/report.html up to date at every evaluation "
                                                           "(open it in a browser: it reloads itself while training)")
    fit.add_argument("--dry-run", action="store_true",
                     help="print parameters, memory estimate and time per step in one line; train and write nothing")
    add_dataclass_flags(fit, ModelOptions)
    add_dataclass_flags(fit, TrainOptions)
    for options_class in SIGNAL_OPTIONS:
        add_dataclass_flags(fit, options_class)
    fit.set_defaults(handler=cmd_fit)

    many = commands.add_parser("fit-many", help="fit one field per file (images, audio clips, meshes) into a dataset "
                                                 "of fields, many at a time")
    many.add_argument("inputs", nargs="+", help="a folder, a glob pattern ('tiles/*.png'), a list file (.txt, one path "
                                                "a line) or several files")
    many.add_argument("--out", required=True, help="dataset directory (an existing one is resumed)")
    many.add_argument("--overwrite", action="store_true", help="replace an existing dataset instead of resuming it")
    add_dataclass_flags(many, ModelOptions)
    add_dataclass_flags(many, TrainOptions)
    add_dataclass_flags(many, FitManyOptions)
    for options_class in SIGNAL_OPTIONS:
        add_dataclass_flags(many, options_class)
    many.set_defaults(handler=cmd_fit_many)

    render = commands.add_parser("render", help="render a fitted image (any size), audio (any rate), video (any fps/size), "
                                                "or a NeRF run's turntable/mesh")
    render.add_argument("run", help="run directory, .inrz file or dataset item DIR#i")
    render.add_argument("--item", type=int, help="a dataset's item i (the same as DIR#i)")
    render.add_argument("--size", help="image/video: WIDTHxHEIGHT (default: the original size)")
    render.add_argument("--rate", type=int, help="audio: sample rate in Hz (default: the original)")
    render.add_argument("--fps", type=float, help="video: frame rate, same duration (default: the original); "
                                                  "NeRF turntable: frames per second (default: 30)")
    render.add_argument("--out", help="output: image .png/.jpg/.tif/.exr, audio .wav, video .mp4 or a folder for PNG "
                                      "frames (default: RUN/render-...)")
    render.add_argument("--device", default="auto")
    render.add_argument("--overwrite", action="store_true", help="replace existing output files")
    render.add_argument("--max-megapixels", type=float, default=MAX_RENDER_MEGAPIXELS,
                        help=f"refuse larger --size (default: {MAX_RENDER_MEGAPIXELS:g}; raise to render them anyway)")
    render.add_argument("--turntable", help="NeRF runs: orbit video (.mp4 or .gif; default RUN/turntable.mp4)")
    render.add_argument("--frames", type=int, default=120, help="NeRF turntable frames (default: 120)")
    render.add_argument("--mesh", help="NeRF runs: extract a mesh with vertex colours (.ply, .obj, .glb)")
    render.add_argument("--mesh-resolution", type=int, default=256, help="marching-cubes cells per axis (default: 256)")
    render.set_defaults(handler=cmd_render)

    mesh = commands.add_parser("mesh", help="extract the surface of a fitted SDF by marching cubes")
    mesh.add_argument("run", help="run directory of an SDF fit")
    mesh.add_argument("--resolution", type=int, default=256, help="grid points per axis (default: 256)")
    mesh.add_argument("--out", help="output mesh: .ply, .obj, .stl, .glb (default: RUN/mesh-RESOLUTION.ply)")
    mesh.add_argument("--device", default="auto")
    mesh.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    mesh.set_defaults(handler=cmd_mesh)

    nerf = commands.add_parser("nerf", help="fit a radiance field to posed views (Blender / instant-ngp transforms)",
                               description="Fit, evaluate on the test views and write their renders and depth maps "
                                           "(with --seconds S the evaluation takes at most about 0.2*S). Opt-in extras: "
                                           "--mesh here, an orbit video with 'inrkit render RUN --turntable x.mp4'.")
    nerf.add_argument("scene", nargs="?", help="scene folder (transforms_*.json or transforms.json) or a procedural "
                                                "scene .json (scenes/blocks.json)")
    nerf.add_argument("--out", help="run directory (default: runs/<scene>-nerf)")
    nerf.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    nerf.add_argument("--source", help="with --resume: the scene folder's new path, when it moved since the fit")
    nerf.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    nerf.add_argument("--mesh", help="after fitting, extract a mesh with vertex colours (.ply, .obj, .glb)")
    nerf.add_argument("--mesh-resolution", type=int, default=256, help="marching-cubes cells per axis (default: 256)")
    add_dataclass_flags(nerf, NerfOptions)
    add_dataclass_flags(nerf, TrainOptions)
    nerf.set_defaults(handler=cmd_nerf, schedule="ngp", eval_every=0)

    info = commands.add_parser("info", help="show a run's or .inrz file's config, parameter count and metrics")
    info.add_argument("run", help="run directory, .inrz file, dataset directory or dataset item DIR#i")
    info.set_defaults(handler=cmd_info)

    compress = commands.add_parser("compress", help="quantise and entropy-code a run's weights into an .inrz file, or "
                                                    "code an image with a latent field (--codec latent)")
    compress.add_argument("run", help="run directory (or .inrz file to re-encode, or dataset item DIR#i); with "
                                      "--codec latent an image file")
    compress.add_argument("--item", type=int, help="a dataset's item i (the same as DIR#i)")
    compress.add_argument("out", help="output .inrz file")
    compress.add_argument("--source", "--signal", dest="signal", help="the original signal file or NeRF scene folder, to "
                          "measure and fine-tune against (default: the run's source, if it still exists)")
    compress.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_dataclass_flags(compress, CompressOptions)
    add_dataclass_flags(compress, LatentOptions)
    compress.add_argument("--resume", action="store_true", help="--codec latent: continue an interrupted encode "
                                                                "(its checkpoints are in OUT.run/)")
    compress.set_defaults(handler=cmd_compress)

    decompress = commands.add_parser("decompress", help="decode an .inrz file into a run directory or an image")
    decompress.add_argument("file", help="input .inrz file")
    decompress.add_argument("--out", required=True, help="run directory to write, or an image file (.png ...)")
    decompress.add_argument("--overwrite", action="store_true", help="replace files in an existing directory")
    decompress.set_defaults(handler=cmd_decompress)

    bench = commands.add_parser("bench", help="run a paper's protocol: every (model, signal) cell as a run directory, "
                                               "resumable, with the published numbers side by side")
    bench.add_argument("protocol", nargs="?", help="protocol name (inrkit bench --list) or a protocol .json file")
    bench.add_argument("--list", action="store_true", help="list the protocols with their models and --scale cpu factors")
    bench.add_argument("--models", nargs="+", help="run only these models of the protocol")
    bench.add_argument("--data", help="folder the protocol's data paths are relative to (default: $INRKIT_DATA)")
    bench.add_argument("--scale", default="full", help="full (the paper's protocol) | cpu (shrunk by the protocol's "
                                                      "stated factors for machines without a GPU)")
    bench.add_argument("--out", help="bench directory (default: bench/PROTOCOL-SCALE); rerun to continue it")
    bench.add_argument("--report", action="store_true", help="keep each cell's report.html up to date while it trains")
    bench.add_argument("--verbose", action="store_true", help="show each cell's progress line")
    bench.set_defaults(handler=cmd_bench)

    report = commands.add_parser("report", help="one self-contained HTML page of runs, .inrz files and benches")
    report.add_argument("runs", nargs="+", help="run directories, .inrz files or bench directories")
    report.add_argument("--out", default="report.html", help="the HTML file to write (default: report.html)")
    report.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    report.set_defaults(handler=cmd_report)

    models = commands.add_parser("models", help="list the model presets")
    models.set_defaults(handler=cmd_models)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    """inrkit's own warnings as one line ``inrkit: warning: ...``; others as Python prints them."""
    if issubclass(category, InrkitWarning):
        print(f"inrkit: warning: {message}", file=sys.stderr)
    else:
        print(warnings.formatwarning(message, category, filename, lineno, line), end="", file=sys.stderr)


class Terminated(BaseException):
    """SIGTERM outside a training loop (which saves a checkpoint first): unwinds like Ctrl-C, so that atomic writes
    remove their temporaries and a run that never trained is removed."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated` (main thread only; the Trainer installs its own)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``inrkit`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings(), _sigterm_unwinds():
            warnings.showwarning = _show_warning
            return args.handler(args)
    except Terminated:
        print("inrkit: terminated (SIGTERM); no file was left half-written", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:  # the reader of stdout went away (`inrkit info RUN | head`): stop quietly, as Unix tools do
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python's own flush at exit must not fail again
        return 128 + signal.SIGPIPE
    except InrkitError as err:
        from inrkit.train import TrainingInterrupted

        message = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())  # always one line
        print(f"inrkit: {'stopped' if isinstance(err, TrainingInterrupted) else 'error'}: {message}", file=sys.stderr)
        if isinstance(err, TrainingInterrupted):
            return 128 + err.signum
        return 1 if isinstance(err, BenchCellsFailed) else 2
    except OSError as err:  # the system refused a read or write (permissions, a full disk): the user can act on it
        if err.filename is None or os.environ.get("INRKIT_DEBUG"):
            return _internal_error(err)
        print(f"inrkit: error: cannot access {err.filename}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inrkit: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: one line unless INRKIT_DEBUG asks for the traceback
        return _internal_error(err)


def _internal_error(err: Exception) -> int:
    """A bug: one line (status 1) unless INRKIT_DEBUG asks for the traceback."""
    if os.environ.get("INRKIT_DEBUG"):
        raise err
    text = " ".join(str(err).split())
    print(f"inrkit: internal error: {type(err).__name__}: {text} (set INRKIT_DEBUG=1 for the traceback)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
