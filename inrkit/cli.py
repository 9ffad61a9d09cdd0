"""The ``inrkit`` command: a thin shell over :mod:`inrkit.api`.

Flags of ``inrkit fit`` are generated from the option dataclasses the API takes
(:class:`~inrkit.fields.ModelOptions`, :class:`~inrkit.train.TrainOptions`,
:data:`~inrkit.signals.SIGNAL_OPTIONS`), so nothing is declared twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing
import warnings
from pathlib import Path
from typing import Any

from inrkit.errors import InrkitError, InrkitWarning


def _flag_type(annotation: Any) -> type:
    """``int | None`` -> ``int``; plain types pass through."""
    if isinstance(annotation, types.UnionType):
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add one ``--flag`` per field of dataclass ``cls`` (help text from the field's metadata)."""
    group = parser.add_argument_group(cls.__name__)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        kind = _flag_type(hints[field.name])
        help_text = field.metadata.get("help", "")
        if kind is bool:
            group.add_argument(flag, dest=field.name, action="store_true", help=help_text)
        else:
            default = f" (default: {field.default})" if field.default is not None else ""
            group.add_argument(flag, dest=field.name, type=kind, default=field.default, help=help_text + default,
                               metavar=field.name.upper())


def _collect(namespace: argparse.Namespace, *classes: type) -> dict[str, Any]:
    names = {f.name for cls in classes for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(namespace).items() if k in names}


def _default_out(signal_path: str, model: str) -> Path:
    base = Path("runs") / f"{Path(signal_path).stem}-{model}"
    candidate, index = base, 2
    while candidate.exists():
        candidate = base.with_name(f"{base.name}-{index}")
        index += 1
    return candidate


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InrkitError(f"--size must look like 1024x768, got {text!r}") from None
    if width <= 0 or height <= 0:
        raise InrkitError(f"--size must be positive, got {text!r}")
    return width, height


QUALITY_METRICS = ("psnr", "ssim", "iou", "chamfer_l1", "chamfer_l2", "normal_consistency", "fscore")


def cmd_fit(args: argparse.Namespace) -> int:
    from inrkit import api
    from inrkit.fields import ModelOptions
    from inrkit.signals import SIGNAL_OPTIONS
    from inrkit.train import TrainOptions

    options = _collect(args, ModelOptions, TrainOptions, *SIGNAL_OPTIONS)
    if args.resume:
        if args.out is None and args.path is None:
            raise InrkitError("--resume needs the run directory: inrkit fit --resume --out RUN")
        out = args.out or args.path
        run = api.fit(None, resume=True, out=out, **{k: v for k, v in options.items() if k != "model"})
    else:
        if args.path is None:
            raise InrkitError("give the file to fit: inrkit fit PATH --model NAME")
        out = args.out or _default_out(args.path, args.model)
        run = api.fit(args.path, out=out, overwrite=args.overwrite, **options)
    metrics = run.metrics
    quality = "  ".join(f"{k.upper()} {metrics[k]:.4g}" for k in QUALITY_METRICS if k in metrics)
    print(f"fitted {run.config['model']['model']} ({run.field.n_params:,} params) in {metrics['elapsed']:.1f} s, "
          f"{metrics['step']} steps: {quality}  ->  {run.dir}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from inrkit import api

    width, height = _parse_size(args.size) if args.size else (None, None)
    out = args.out or Path(args.run) / f"render-{args.size or 'original'}.png"
    path = api.render_image(args.run, out, height=height, width=width, device=args.device)
    print(f"wrote {path}")
    return 0


def cmd_mesh(args: argparse.Namespace) -> int:
    from inrkit import api

    out = args.out or Path(args.run) / f"mesh-{args.resolution}.ply"
    path = api.export_mesh(args.run, out, resolution=args.resolution, device=args.device)
    print(f"wrote {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from inrkit import api

    run = api.load_run(args.run)
    config = run.config
    signal = config["signal"]
    if signal.get("kind") == "sdf":
        shape = f"{signal['shape']}, {signal['n_vertices']:,} vertices, {signal['n_faces']:,} faces, loss {signal['loss']}"
    else:
        shape = "x".join(str(signal[k]) for k in ("width", "height") if k in signal) + f" x{signal.get('channels', '?')}"
    print(f"run        {run.dir}")
    print(f"signal     {signal.get('kind')} {shape}  from {signal.get('source')}")
    print(f"model      {config['model']['model']}  ({run.field.n_params:,} parameters)")
    print(f"network    {config['field']['network']}")
    print(f"encoding   {config['field']['encoding']}")
    train = config["train"]
    print(f"training   lr {train['lr']:g}  schedule {train['schedule']}  steps {train['steps']}  seconds {train['seconds']}  "
          f"batch {train['batch_size'] or 'full'}  seed {train['seed']}")
    if run.metrics:
        shown = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in run.metrics.items())
        print(f"metrics    {shown}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from inrkit.fields import PRESETS, build_field

    print(f"{'model':<14} {'params (2->3)':>13}  {'lr':>7}  description")
    for name, preset in PRESETS.items():
        print(f"{name:<14} {build_field(name, 2, 3).n_params:>13,}  {preset.lr:>7.0e}  {preset.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from inrkit import __version__
    from inrkit.fields import ModelOptions
    from inrkit.signals import SIGNAL_OPTIONS
    from inrkit.train import TrainOptions

    parser = argparse.ArgumentParser(prog="inrkit", description="Fit implicit neural representations to signals.")
    parser.add_argument("--version", action="version", version=f"inrkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="fit a field to a file (image, mesh, point cloud)")
    fit.add_argument("path", nargs="?", help="the signal to fit (PNG, JPEG, TIFF, EXR; OBJ, PLY, STL, OFF, GLB, XYZ)")
    fit.add_argument("--out", help="run directory (default: runs/<name>-<model>)")
    fit.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    add_dataclass_flags(fit, ModelOptions)
    add_dataclass_flags(fit, TrainOptions)
    for options_class in SIGNAL_OPTIONS:
        add_dataclass_flags(fit, options_class)
    fit.set_defaults(handler=cmd_fit)

    render = commands.add_parser("render", help="render a fitted image at any size")
    render.add_argument("run", help="run directory")
    render.add_argument("--size", help="WIDTHxHEIGHT (default: the original size)")
    render.add_argument("--out", help="output image: .png, .jpg, .tif, .exr (default: RUN/render-SIZE.png)")
    render.add_argument("--device", default="auto")
    render.set_defaults(handler=cmd_render)

    mesh = commands.add_parser("mesh", help="extract the surface of a fitted SDF by marching cubes")
    mesh.add_argument("run", help="run directory of an SDF fit")
    mesh.add_argument("--resolution", type=int, default=256, help="grid points per axis (default: 256)")
    mesh.add_argument("--out", help="output mesh: .ply, .obj, .stl, .glb (default: RUN/mesh-RESOLUTION.ply)")
    mesh.add_argument("--device", default="auto")
    mesh.set_defaults(handler=cmd_mesh)

    info = commands.add_parser("info", help="show a run's config, parameter count and metrics")
    info.add_argument("run", help="run directory")
    info.set_defaults(handler=cmd_info)

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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``inrkit`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.handler(args)
    except InrkitError as err:
        from inrkit.train import TrainingInterrupted

        print(f"inrkit: {'stopped' if isinstance(err, TrainingInterrupted) else 'error'}: {err}", file=sys.stderr)
        return 130 if isinstance(err, TrainingInterrupted) else 2
    except KeyboardInterrupt:
        print("inrkit: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # a bug: one line unless INRKIT_DEBUG asks for the traceback
        if os.environ.get("INRKIT_DEBUG"):
            raise
        print(f"inrkit: internal error: {type(err).__name__}: {err} (set INRKIT_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
