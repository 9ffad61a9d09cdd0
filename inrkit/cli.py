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
from pathlib import Path
from typing import Any

from inrkit.errors import InrkitError


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
    names = {"psnr": "PSNR", "psnr_heldout": "held-out PSNR", "snr": "SNR", "ssim": "SSIM"}
    quality = "  ".join(f"{label} {metrics[k]:.4g}" for k, label in names.items() if k in metrics)
    print(f"fitted {run.config['model']['model']} ({run.field.n_params:,} params) in {metrics['elapsed']:.1f} s, "
          f"{metrics['step']} steps: {quality}  ->  {run.dir}")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from inrkit import api

    run = api.load_run(args.run)
    kind = run.config["signal"].get("kind")
    width, height = _parse_size(args.size) if args.size else (None, None)
    if kind != "audio" and args.rate is not None:
        raise InrkitError(f"--rate applies to audio runs; {args.run} is a {kind} run")
    if kind != "video" and args.fps is not None:
        raise InrkitError(f"--fps applies to video runs; {args.run} is a {kind} run")
    if kind == "audio":
        if args.size:
            raise InrkitError("--size does not apply to audio runs (use --rate)")
        out = args.out or Path(args.run) / f"render-{args.rate or 'original'}.wav"
        path = api.render_audio(run, out, rate=args.rate, device=args.device)
    elif kind == "video":
        out = args.out or Path(args.run) / f"render-{args.size or 'original'}-{args.fps or 'original'}fps.mp4"
        path = api.render_video(run, out, fps=args.fps, height=height, width=width, device=args.device)
    else:
        out = args.out or Path(args.run) / f"render-{args.size or 'original'}.png"
        path = api.render_image(run, out, height=height, width=width, device=args.device)
    print(f"wrote {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from inrkit import api

    run = api.load_run(args.run)
    config = run.config
    signal = config["signal"]
    shape = "x".join(str(signal[k]) for k in ("width", "height") if k in signal)
    if signal.get("kind") == "video":
        shape += f" x {signal['n_frames']} frames @ {signal['fps']:g} fps"
    elif signal.get("kind") == "audio":
        shape = f"{signal['n_samples']} samples @ {signal['sample_rate']} Hz"
    print(f"run        {run.dir}")
    print(f"signal     {signal.get('kind')} {shape} x{signal.get('channels', '?')}  from {signal.get('source')}")
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
        if preset.time_varying:  # counted for (t, y, x) -> RGB, 250 frames
            n_params = build_field(name, 3, 3, n_frames=250).n_params
            print(f"{name:<14} {n_params:>13,}* {preset.lr:>7.0e}  {preset.description}")
        else:
            print(f"{name:<14} {build_field(name, 2, 3).n_params:>13,}  {preset.lr:>7.0e}  {preset.description}")
    print("* for a (t, y, x) -> RGB video of 250 frames")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from inrkit import __version__
    from inrkit.fields import ModelOptions
    from inrkit.signals import SIGNAL_OPTIONS
    from inrkit.train import TrainOptions

    parser = argparse.ArgumentParser(prog="inrkit", description="Fit implicit neural representations to signals.")
    parser.add_argument("--version", action="version", version=f"inrkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    fit = commands.add_parser("fit", help="fit a field to a file (image, audio, video)")
    fit.add_argument("path", nargs="?", help="the signal to fit: image (PNG, JPEG, TIFF, EXR), audio (WAV), "
                                             "video (MP4, GIF, or a folder of frames)")
    fit.add_argument("--out", help="run directory (default: runs/<name>-<model>)")
    fit.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    add_dataclass_flags(fit, ModelOptions)
    add_dataclass_flags(fit, TrainOptions)
    for options_class in SIGNAL_OPTIONS:
        add_dataclass_flags(fit, options_class)
    fit.set_defaults(handler=cmd_fit)

    render = commands.add_parser("render", help="render a fitted image (any size), audio (any rate) or video (any fps/size)")
    render.add_argument("run", help="run directory")
    render.add_argument("--size", help="image/video: WIDTHxHEIGHT (default: the original size)")
    render.add_argument("--rate", type=int, help="audio: sample rate in Hz (default: the original)")
    render.add_argument("--fps", type=float, help="video: frame rate, same duration (default: the original)")
    render.add_argument("--out", help="output: image .png/.jpg/.tif/.exr, audio .wav, video .mp4 or a folder for PNG "
                                      "frames (default: RUN/render-...)")
    render.add_argument("--device", default="auto")
    render.set_defaults(handler=cmd_render)

    info = commands.add_parser("info", help="show a run's config, parameter count and metrics")
    info.add_argument("run", help="run directory")
    info.set_defaults(handler=cmd_info)

    models = commands.add_parser("models", help="list the model presets")
    models.set_defaults(handler=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``inrkit`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
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
