"""``inrkit bench``: run a protocol (:mod:`inrkit.api.protocols`) cell by cell, resumably, and tabulate it.

The bench directory's layout and its table: :mod:`inrkit.api.bench_results`.
A rerun of the same command skips the cells whose last record is ``done``, resumes an interrupted cell from its
checkpoint, and retries failed ones. Ctrl-C (or SIGTERM) stops after the running cell's checkpoint is saved.

Example:
    >>> result = run_bench(load_protocol("finer-div2k", "cpu"), data="../shared/data", out="bench/finer")  # doctest: +SKIP
    >>> print(result.table())                                                                           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from inrkit.api.bench_results import (
    CELLS_DIR,
    PROTOCOL_FILE,
    RESULTS_FILE,
    SIGNALS_DIR,
    BenchResult,
    Cell,
    latest_results,
    write_table,
)
from inrkit.api.protocols import Protocol, ProtocolError
from inrkit.errors import InrkitError
from inrkit.files import append_json_line, read_json, write_json
from inrkit.io.images import read_image, write_image
from inrkit.train import TrainingInterrupted

CELL_METRICS = ("step", "elapsed", "ms_per_step", "peak_memory_mb")  # recorded beside the protocol's metrics


def find_signals(protocol: Protocol, data: str | Path) -> list[Path]:
    """The protocol's signal files (or scene folders) under ``data``, sorted; ``select``/``limit`` applied.
    Fewer than ``expect`` is one line naming the folder, the pattern and what the protocol needs."""
    root = Path(data)
    if not root.is_dir():
        raise ProtocolError(f"--data {root}: no such folder (it should hold {protocol.data.get('description', 'the data')})")
    patterns = protocol.data["glob"]
    patterns = [patterns] if isinstance(patterns, str) else patterns
    found = sorted({p.resolve() for pattern in patterns for p in root.glob(pattern) if not p.name.startswith(".")})
    expect = protocol.data.get("expect", 1)
    if len(found) < expect:
        raise ProtocolError(f"dataset missing for protocol {protocol.name}: {len(found)} of {expect} signals match "
                            f"{' '.join(str(root / p) for p in patterns)}; --data must hold "
                            f"{protocol.data.get('description', 'them')}")
    if "select" in protocol.data:
        missing = sorted(set(protocol.data["select"]) - {p.stem for p in found})
        if missing:
            raise ProtocolError(f"dataset missing for protocol {protocol.name}: no signal {missing[0]!r} among "
                                f"{' '.join(str(root / p) for p in patterns)}")
        found = [p for p in found if p.stem in set(protocol.data["select"])]
    return found[: protocol.data["limit"]] if "limit" in protocol.data else found


def prepare_signal(source: Path, protocol: Protocol, bench_dir: Path) -> Path:
    """The file a cell fits: ``source`` itself, or with ``preprocess`` its resized/cropped copy under
    ``signals/`` (written once, 8-bit PNG; ``resize``: long side in pixels, Lanczos; ``crop``: centre square)."""
    if not protocol.preprocess:
        return source
    target = bench_dir / SIGNALS_DIR / f"{source.stem}.png"
    if target.is_file():
        return target
    from PIL import Image

    pixels = read_image(source)
    if pixels.dtype != np.uint8:
        raise ProtocolError(f"protocol {protocol.name}: 'preprocess' takes 8-bit images; {source} is {pixels.dtype}")
    if "crop" in protocol.preprocess:
        size = protocol.preprocess["crop"]
        top, left = max(0, (pixels.shape[0] - size) // 2), max(0, (pixels.shape[1] - size) // 2)
        pixels = pixels[top: top + size, left: left + size]
    if "resize" in protocol.preprocess:
        image = Image.fromarray(pixels.squeeze(2) if pixels.shape[2] == 1 else pixels)
        scale = protocol.preprocess["resize"] / max(image.size)
        image = image.resize((max(2, round(image.width * scale)), max(2, round(image.height * scale))), Image.LANCZOS)
        pixels = np.asarray(image)
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_image(target, pixels)


def _check_bench_dir(bench_dir: Path, protocol: Protocol) -> None:
    """A new bench directory gets ``protocol.json``; an existing one must hold the same protocol at the same scale."""
    path = bench_dir / PROTOCOL_FILE
    if path.is_file():
        try:
            saved = read_json(path)
        except (OSError, ValueError) as err:
            raise InrkitError(f"cannot read {path}: {' '.join(str(err).split())}") from None
        if saved != protocol.to_json():
            what = f"{saved.get('name')} v{saved.get('version')} at scale {saved.get('scale')}" \
                if isinstance(saved, dict) else "another protocol"
            raise InrkitError(f"{bench_dir} holds a bench of {what}, not this one ({protocol.name} v{protocol.version} "
                              f"at scale {protocol.scale}, same settings); give another --out")
    elif bench_dir.exists() and any(bench_dir.iterdir()):
        raise InrkitError(f"--out {bench_dir} exists and is not a bench directory (no {PROTOCOL_FILE}); give another --out")
    else:
        bench_dir.mkdir(parents=True, exist_ok=True)
        write_json(path, protocol.to_json())


def plan_cells(protocol: Protocol, data: str | Path, bench_dir: str | Path, models: list[str] | None = None) -> list[Cell]:
    """The bench's cells, model-major, after the signals are found and preprocessed."""
    labels = list(models or protocol.models)
    unknown = [m for m in labels if m not in protocol.models]
    if unknown:
        raise InrkitError(f"--models: {unknown[0]!r} is not a model of protocol {protocol.name} "
                          f"({', '.join(protocol.models)})")
    bench_dir = Path(bench_dir)
    signals = [prepare_signal(source, protocol, bench_dir) for source in find_signals(protocol, data)]
    return [Cell(label, signal, bench_dir / CELLS_DIR / label / signal.stem) for label in labels for signal in signals]


def _fit_cell(protocol: Protocol, cell: Cell, quiet: bool, fit_options: dict[str, Any]) -> Any:
    """Fit (or resume) one cell's run; returns its :class:`~inrkit.api.lifecycle.Run`."""
    from inrkit.api import lifecycle, nerf
    from inrkit.train.checkpoint import CHECKPOINT_POINTER

    options = {**protocol.cell_options(cell.label), "quiet": quiet}
    resumable = (cell.dir / CHECKPOINT_POINTER).is_file()
    if protocol.task == "nerf":
        preset = options.pop("preset")
        if resumable:
            return nerf.fit(None, resume=True, out=cell.dir, quiet=quiet, **fit_options)
        return nerf.fit(cell.signal, preset, out=cell.dir, overwrite=True, **options, **fit_options)
    model = options.pop("model")
    if resumable:
        return lifecycle.fit(None, resume=True, out=cell.dir, quiet=quiet, **fit_options)
    return lifecycle.fit(cell.signal, model, out=cell.dir, overwrite=True, **options, **fit_options)


def _compress_cell(protocol: Protocol, cell: Cell) -> list[dict[str, Any]]:
    """The protocol's ``.inrz`` files of a fitted cell: bytes, bits per sample and PSNR after decoding."""
    from inrkit.api.compress import compress
    from inrkit.export import CompressOptions

    points = []
    for index, entry in enumerate(protocol.compress):
        out = cell.dir / f"compressed-{index}.inrz"
        with contextlib.suppress(FileNotFoundError):
            out.unlink()  # a file left by an interrupted attempt
        report = compress(cell.dir, out, CompressOptions(**entry), signal=cell.signal)
        points.append({"file": out.name, "bits": report.bits, "bytes": report.n_bytes, "bpp": report.bpp,
                       "psnr": report.psnr_after, "psnr_before": report.psnr_before})
    return points


def run_bench(protocol: Protocol, data: str | Path, out: str | Path, models: list[str] | None = None, *,
              quiet: bool = True, echo: Callable[[str], None] | None = None,
              fit_options: dict[str, Any] | None = None) -> BenchResult:
    """Run every (model, signal) cell of ``protocol`` not yet done in the bench directory ``out``.

    ``data``: the folder the protocol's ``data.glob`` is relative to. ``models``: a subset of the protocol's
    model labels. ``echo``: called with one line per cell. ``fit_options``: passed to every cell's fit as given
    (e.g. ``report=True``). A failing cell is recorded (``failed`` and its one-line error) and the bench goes on;
    Ctrl-C or SIGTERM records the running cell as ``interrupted`` and raises
    :class:`~inrkit.train.TrainingInterrupted` after its checkpoint is saved.
    """
    bench_dir = Path(out).resolve()  # the cells' configs record absolute sources: a report finds them from anywhere
    _check_bench_dir(bench_dir, protocol)
    cells = plan_cells(protocol, data, bench_dir, models)
    say = echo or (lambda line: None)
    records = latest_results(bench_dir)
    for number, cell in enumerate(cells, 1):
        previous = records.get(cell.key)
        if previous and previous.get("status") == "done" and (cell.dir / "config.json").is_file():
            continue
        record: dict[str, Any] = {"cell": cell.key, "model": cell.label, "preset": protocol.preset(cell.label),
                                  "signal": cell.signal.stem, "run": str(cell.dir.relative_to(bench_dir))}
        began = time.perf_counter()
        try:
            run = _fit_cell(protocol, cell, quiet, dict(fit_options or {}))
            compressed = _compress_cell(protocol, cell) if protocol.compress else []
        except (TrainingInterrupted, KeyboardInterrupt) as err:
            append_json_line(bench_dir / RESULTS_FILE, {**record, "status": "interrupted",
                                                         "wall_s": round(time.perf_counter() - began, 3)})
            write_table(bench_dir, protocol, cells)
            signum = err.signum if isinstance(err, TrainingInterrupted) else 2
            raise TrainingInterrupted(f"bench interrupted in cell {cell.key} ({number} of {len(cells)}); its checkpoint "
                                      f"is kept: rerun the same command to continue", signum) from None
        except Exception as err:  # any failure of one cell is recorded, and the bench goes on
            message = "; ".join(line.strip() for line in str(err).splitlines() if line.strip())
            error = message if isinstance(err, InrkitError) else f"{type(err).__name__}: {message}"
            append_json_line(bench_dir / RESULTS_FILE, {**record, "status": "failed", "error": error,
                                                         "wall_s": round(time.perf_counter() - began, 3)})
            say(f"[{number}/{len(cells)}] {cell.key}: failed: {error}")
            continue
        metrics = {k: run.metrics.get(k) for k in (*protocol.metrics, *CELL_METRICS) if k in run.metrics}
        record.update({"status": "done", "params": run.field.n_params, "metrics": metrics, "compressed": compressed,
                       "wall_s": round(time.perf_counter() - began, 3)})
        append_json_line(bench_dir / RESULTS_FILE, record)
        records[cell.key] = record
        shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k in protocol.metrics and v is not None)
        say(f"[{number}/{len(cells)}] {cell.key}: {shown}  ({record['wall_s']:.1f} s)")
    return write_table(bench_dir, protocol, cells)


