"""``inrkit report``: one self-contained HTML page of runs, ``.inrz`` files and benches.

The page holds training curves (quality, loss and lr against step and seconds, runs overlaid), for each run its
metrics and the media of its kind (image: target, reconstruction and error map with synchronised zoom; audio:
players; video: a video element; SDF: interactive 3-D views of the fitted and input meshes; NeRF: test renders,
depth maps and the turntable), bench tables with colour-coded gaps to the published numbers, and
rate–distortion curves of ``.inrz`` files against JPEG and WebP. Plots are static SVG written by
:mod:`~inrkit.api.report.charts`; images, audio and video are ``data:`` URIs; the only script is ``viewer.js``
(inlined). Nothing is trained or rendered: the report reads what the runs wrote.

Example:
    >>> build_report(["runs/photo", "bench/finer-div2k-cpu"], "report.html")   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from inrkit.api.bench_results import BenchResult, is_bench_dir, open_bench
from inrkit.api.report.page import page
from inrkit.api.report.sections import (
    RunView,
    bench_section,
    curves_section,
    rd_section,
    read_run,
    run_section,
)
from inrkit.errors import InrkitError
from inrkit.export.inrz import is_inrz
from inrkit.files import atomic_write_bytes
from inrkit.runs import CONFIG_FILE

REPORT_FILE = "report.html"

__all__ = ["REPORT_FILE", "LiveReport", "build_report", "in_notebook", "report_html"]


def _classify(paths: list[str | Path]) -> tuple[list[RunView], list[Path], list[BenchResult]]:
    runs, inrz_files, benches = [], [], []
    names = [Path(p).name for p in paths]
    for path in map(Path, paths):
        if is_bench_dir(path):
            benches.append(open_bench(path))
        elif path.is_file() and is_inrz(path):
            inrz_files.append(path)
        elif (path / CONFIG_FILE).is_file():
            name = path.name if names.count(path.name) == 1 else str(path)
            runs.append(read_run(path, name))
        else:
            raise InrkitError(f"cannot report on {path}: not a run directory, .inrz file or bench directory")
    return runs, inrz_files, benches


def report_html(paths: list[str | Path], live: bool = False) -> str:
    """The HTML text of the report on ``paths`` (run directories, ``.inrz`` files, bench directories)."""
    runs, inrz_files, benches = _classify(paths)
    sections: list[tuple[str, str, str]] = []
    bench_runs: list[RunView] = []
    for index, result in enumerate(benches):
        html, cells = bench_section(result, f"bench-{index}")
        sections.append((f"bench-{index}", f"bench {result.protocol.name}", html))
        bench_runs += cells
    if runs:
        sections.insert(0, ("curves", "curves", curves_section(runs)))
    for index, run in enumerate(runs):
        sections.append((f"run-{index}", run.name, run_section(run, f"run-{index}")))
    for path in inrz_files:
        sections.append((f"inrz-{len(sections)}", path.name, _inrz_section(path, f"inrz-{len(sections)}")))
    rd = rd_section(inrz_files, bench_runs, benches)
    if rd:
        sections.append(("rate-distortion", "rate–distortion", rd))
    title = "inrkit report: " + ", ".join(Path(p).name for p in paths[:4]) + (" ..." if len(paths) > 4 else "")
    return page(title, sections, live=live)


def _inrz_section(path: Path, anchor: str) -> str:
    from html import escape

    from inrkit.api.report.rate_distortion import inrz_point

    point = inrz_point(path)
    what = (f"{point['bytes']:,} bytes, {point['bpp']:.4f} bpp, PSNR {point['psnr']:.2f} dB after decoding"
            if point else f"{path.stat().st_size:,} bytes (not an image: no rate–distortion point)")
    return f'<section id="{anchor}" class="inrz"><h2>{escape(path.name)}</h2><p>{escape(what)}</p></section>'


def build_report(paths: list[str | Path], out: str | Path, live: bool = False) -> Path:
    """Write the report on ``paths`` to ``out`` (atomically) and return its path."""
    if not paths:
        raise InrkitError("give at least one run directory, .inrz file or bench directory to report on")
    out = Path(out)
    atomic_write_bytes(out, report_html(list(paths), live=live).encode("utf-8"))
    return out


def in_notebook() -> bool:
    """True inside a Jupyter (IPython kernel) session, where ``fit`` keeps a live report by default."""
    shell = sys.modules.get("IPython")
    with contextlib.suppress(Exception):
        return shell is not None and type(shell.get_ipython()).__name__ == "ZMQInteractiveShell"
    return False


class LiveReport:
    """The Trainer's evaluation hook that rewrites ``run_dir/report.html`` after every evaluation (a live page
    that reloads itself), and :meth:`finish` once the run's outputs are written (a final, still page).

    A report that cannot be written (a full disk) never stops the training: the hook gives up quietly.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / REPORT_FILE

    def __call__(self, record: dict[str, Any]) -> None:
        with contextlib.suppress(InrkitError, OSError, ValueError):
            build_report([self.run_dir], self.path, live=True)

    def finish(self) -> None:
        """The final page (no reload), with the outputs the run wrote."""
        with contextlib.suppress(InrkitError, OSError, ValueError):
            build_report([self.run_dir], self.path)
