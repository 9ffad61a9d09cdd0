"""Reading a bench directory (written by :mod:`inrkit.api.bench`): its protocol, the latest record of each cell,
and the table of mean metrics beside the published numbers (for ``inrkit bench`` and ``inrkit report``).

A bench directory holds::

    protocol.json          the protocol as resolved at its scale (a rerun must match it)
    signals/               the protocol's preprocessed signals (resized or cropped images), written once
    cells/LABEL/SIGNAL/    one normal run directory per (model, signal) cell: resumable, renderable, compressible
    results.jsonl          one record per cell attempt: status done | failed | interrupted, metrics, .inrz sizes
    table.md               the table: mean metrics per model beside the published number and the difference
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inrkit.api.protocols import Protocol
from inrkit.errors import InrkitError
from inrkit.files import atomic_write_bytes, read_json, read_json_lines

PROTOCOL_FILE = "protocol.json"
RESULTS_FILE = "results.jsonl"
TABLE_FILE = "table.md"
CELLS_DIR = "cells"
SIGNALS_DIR = "signals"
DECIBEL_METRICS = frozenset({"psnr", "psnr_heldout", "psnr_train", "snr"})


@dataclass
class Cell:
    """One (model label, signal) pair of a bench and its run directory."""

    label: str
    signal: Path
    dir: Path

    @property
    def key(self) -> str:
        return f"{self.label}/{self.signal.stem}"


def latest_results(bench_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The last record of each cell in ``results.jsonl``, by cell key (``label/signal``), in file order."""
    latest: dict[str, dict[str, Any]] = {}
    for record in read_json_lines(Path(bench_dir) / RESULTS_FILE, "bench result"):
        if isinstance(record.get("cell"), str):
            latest.pop(record["cell"], None)
            latest[record["cell"]] = record
    return latest


@dataclass
class BenchResult:
    """A bench directory's protocol and latest cell records; :meth:`table` is what ``inrkit bench`` prints."""

    dir: Path
    protocol: Protocol
    records: dict[str, dict[str, Any]]
    cells: list[Cell]

    def rows(self) -> list[dict[str, Any]]:
        """Per model label: cells done, mean of each metric over its done cells, the published number and the gap."""
        rows = []
        for label in self.protocol.models:
            done = [r for r in self.records.values() if r.get("model") == label and r.get("status") == "done"]
            row: dict[str, Any] = {"model": label, "cells": len(done),
                                   "total": sum(1 for c in self.cells if c.label == label),
                                   "params": done[0].get("params") if done else None}
            for metric in self.protocol.metrics:
                values = [r["metrics"][metric] for r in done if isinstance(r["metrics"].get(metric), int | float)]
                row[metric] = float(np.mean(values)) if values else None
            published, same_signals = self.protocol.published_value(label, [r["signal"] for r in done])
            row["published"], row["same_signals"] = published, same_signals
            ours = row.get(self.protocol.metric)
            row["gap"] = ours - published if ours is not None and published is not None else None
            if self.protocol.compress:
                for index in range(len(self.protocol.compress)):
                    points = [r["compressed"][index] for r in done if len(r.get("compressed", ())) > index]
                    row[f"bpp{index}"] = _mean([p.get("bpp") for p in points])
                    row[f"psnr{index}"] = _mean([p.get("psnr") for p in points])
            rows.append(row)
        return rows

    def problems(self) -> list[str]:
        """One line per cell that failed, was interrupted or has not run."""
        lines = []
        for cell in self.cells:
            record = self.records.get(cell.key)
            if record is None:
                lines.append(f"{cell.key}: not run")
            elif record["status"] != "done":
                lines.append(f"{cell.key}: {record['status']}" + (f" ({record['error']})" if record.get("error") else ""))
        return lines

    def columns(self) -> list[str]:
        """The bench table's column names: model, parameters, cells, metrics, compressed points, published, gap."""
        protocol, metric = self.protocol, self.protocol.metric
        head = ["model", "params", "cells", *protocol.metrics]
        for options in protocol.compress:
            head += [f"bpp @{options.get('bits', 8)} bits", f"PSNR @{options.get('bits', 8)} bits"]
        return [*head, f"published {metric}", "difference" + (" (dB)" if metric in DECIBEL_METRICS else "")]

    def row_text(self, row: dict[str, Any], number: Callable[[float], str]) -> list[str]:
        """One row of :meth:`rows` as the table's cells (:meth:`columns`), numbers written by ``number``."""
        def text(value: float | None) -> str:
            return "" if value is None else number(value)

        cells = [row["model"], f"{row['params']:,}" if row["params"] else "", f"{row['cells']}/{row['total']}"]
        cells += [text(row[m]) for m in self.protocol.metrics]
        for index in range(len(self.protocol.compress)):
            cells += [text(row[f"bpp{index}"]), text(row[f"psnr{index}"])]
        published = "" if row["published"] is None else number(row["published"]) + ("" if row["same_signals"] else "*")
        decibels = self.protocol.metric in DECIBEL_METRICS
        gap = "" if row["gap"] is None else f"{row['gap']:+.2f}" if decibels else f"{row['gap']:+.4f}"
        return [*cells, published, gap]

    def table(self) -> str:
        """The Markdown table: the protocol's metrics per model, the published number and the difference."""
        protocol, head = self.protocol, self.columns()
        lines = [f"{protocol.name} v{protocol.version} ({protocol.scale} scale): {protocol.title}",
                 *([f"scale {protocol.scale}: {protocol.factors}"] if protocol.factors else []), "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(self.row_text(row, _number)) + " |" for row in self.rows()]
        sources = protocol.published.get("sources", {})
        lines += ["", *(f"[{key}] {text}" for key, text in sources.items())]
        if any(r["published"] is not None and not r["same_signals"] for r in self.rows()):
            lines.append("* the published mean over the protocol's whole set (no per-signal numbers for these signals)")
        problems = self.problems()
        if problems:
            lines += ["", f"{len(problems)} of {len(self.cells)} cells not done:", *(f"  {p}" for p in problems)]
        return "\n".join(lines)


def _mean(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return float(np.mean(numbers)) if numbers else None


def _number(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 1.5 else f"{value:.2f}"


def write_table(bench_dir: Path, protocol: Protocol, cells: list[Cell]) -> BenchResult:
    """Write ``table.md`` from the latest records and return the :class:`BenchResult`."""
    result = BenchResult(bench_dir, protocol, latest_results(bench_dir), cells)
    atomic_write_bytes(bench_dir / TABLE_FILE, (result.table() + "\n").encode())
    return result


def open_bench(bench_dir: str | Path) -> BenchResult:
    """A bench directory's protocol, cells and latest records (for ``inrkit report``), without running anything."""
    bench_dir = Path(bench_dir)
    try:
        protocol = Protocol(**read_json(bench_dir / PROTOCOL_FILE))
    except (OSError, ValueError, TypeError) as err:
        raise InrkitError(f"cannot open bench {bench_dir}: invalid {PROTOCOL_FILE} ({' '.join(str(err).split())})") from None
    records = latest_results(bench_dir)
    cells = [Cell(r["model"], Path(r["signal"]), bench_dir / r["run"]) for r in records.values()
             if isinstance(r.get("run"), str) and isinstance(r.get("model"), str) and isinstance(r.get("signal"), str)]
    return BenchResult(bench_dir, protocol, records, cells)


def is_bench_dir(path: str | Path) -> bool:
    """True when ``path`` is a directory written by :func:`run_bench`."""
    return (Path(path) / PROTOCOL_FILE).is_file()
