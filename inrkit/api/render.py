"""Renders of finished runs: an image at any size, audio at any rate, video at any frame rate and size,
and the mesh of an SDF run.

Outputs follow inrkit's one output policy (:func:`inrkit.files.check_output`), checked before any work:
an existing file is replaced only with ``overwrite=True``, and never one the render reads (the run's files).

Example:
    >>> import inrkit
    >>> inrkit.render_image("runs/photo", "photo-2x.png", height=1024, width=1024)   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inrkit.api.lifecycle import Run, load_run
from inrkit.devices import resolve_device
from inrkit.errors import InrkitError
from inrkit.files import check_output
from inrkit.io.images import write_image
from inrkit.io.meshes import MESH_WRITE_SUFFIXES, write_mesh
from inrkit.runs import run_files
from inrkit.signals.audio import write_audio
from inrkit.signals.image import denormalise, render
from inrkit.signals.sdf import field_mesh
from inrkit.signals.video import write_video


def run_inputs(run: str | Path | Run) -> list[Path]:
    """What a command reads from a run directory or ``.inrz`` file: its outputs must be none of these."""
    source = Path(run.dir if isinstance(run, Run) else run)
    return run_files(source) if source.is_dir() else [source]


def _check_out(out: str | Path, run: str | Path | Run, overwrite: bool) -> Path:
    """``out`` checked against the output policy; the run's own files are the render's inputs."""
    return check_output(out, overwrite=overwrite, inputs=run_inputs(run))


def _open_kind(run: str | Path | Run, kind: str) -> tuple[Run, dict[str, Any]]:
    opened = run if isinstance(run, Run) else load_run(run)
    signal_config = opened.config["signal"]
    if signal_config.get("kind") != kind:
        raise InrkitError(f"render: run {opened.dir} is a {signal_config.get('kind')} run, not {kind}")
    return opened, signal_config


def render_audio(run: str | Path | Run, out: str | Path, rate: int | None = None, device: str = "auto",
                 overwrite: bool = False) -> Path:
    """Write an audio run as a WAV at ``rate`` Hz (default: the original), same duration and encoding."""
    _check_out(out, run, overwrite)
    opened, signal_config = _open_kind(run, "audio")
    return write_audio(opened.field.to(resolve_device(device)), signal_config, out, rate)


def render_video(run: str | Path | Run, out: str | Path, fps: float | None = None, height: int | None = None,
                 width: int | None = None, device: str = "auto", overwrite: bool = False) -> Path:
    """Write a video run at any frame rate (frame interpolation) and size: an MP4 when ``out`` has a
    video suffix (``.mp4``), else a folder of PNG frames (the CLI decides when an existing folder may be replaced)."""
    as_mp4 = Path(out).suffix.lower() in (".mp4", ".mov", ".mkv", ".m4v")
    if as_mp4:
        _check_out(out, run, overwrite)
    opened, signal_config = _open_kind(run, "video")
    field = opened.field.to(resolve_device(device))
    written = write_video(field, signal_config, out if as_mp4 else None, fps=fps, height=height, width=width,
                          frames_folder=None if as_mp4 else out)
    return written[0]


def render_image(run: str | Path | Run, out: str | Path, height: int | None = None, width: int | None = None,
                 device: str = "auto", overwrite: bool = False) -> Path:
    """Render an image run at any size (default: the original) and write it in the source's units."""
    _check_out(out, run, overwrite)
    opened, signal_config = _open_kind(run, "image")
    height = height or int(signal_config["height"])
    width = width or int(signal_config["width"])
    field = opened.field.to(resolve_device(device))
    pixels: np.ndarray = render(field, height, width)
    normalisation = signal_config["normalisation"]
    if Path(out).suffix.lower() == ".exr":
        normalisation = {**normalisation, "dtype": "float32"}
    elif normalisation["dtype"].startswith("float"):
        normalisation = {"dtype": "float32", "low": 0.0, "high": 1.0}  # HDR to an 8/16-bit file: normalised
    return write_image(out, denormalise(pixels, normalisation))


def export_mesh(run: str | Path | Run, out: str | Path, resolution: int = 256, device: str = "auto",
                overwrite: bool = False) -> Path:
    """Marching cubes of an SDF run's zero level set at ``resolution``³, written in the input's units.

    ``out`` ends in .ply, .obj, .stl or .glb. The grid spans the normalised cube [-1, 1]³ and is
    evaluated in chunks (a narrow band around the surface at full resolution), so 512³ needs
    about 1 GB of memory.
    """
    if Path(out).suffix.lower() not in MESH_WRITE_SUFFIXES:
        raise InrkitError(f"--out must end in {', '.join(MESH_WRITE_SUFFIXES)}, got {str(out)!r}")
    if not 8 <= resolution <= 2048:
        raise InrkitError(f"--resolution must be between 8 and 2048, got {resolution}")
    _check_out(out, run, overwrite)
    opened = run if isinstance(run, Run) else load_run(run)
    signal_config = opened.config["signal"]
    if signal_config.get("kind") != "sdf":
        raise InrkitError(f"mesh: run {opened.dir} is a {signal_config.get('kind')} run, not an SDF run")
    mesh = field_mesh(opened.field.to(resolve_device(device)), resolution, signal_config["transform"])
    return write_mesh(out, mesh.vertices, mesh.faces)
