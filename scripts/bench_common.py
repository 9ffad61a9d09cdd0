"""Helpers shared by the benchmark scripts (and tests that measure the same things): loading evaluation images, a
protocol's cells, writing BENCHMARKS.md, finding the Ray workers that run fit-many shards."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load_resized(path: str, size: int) -> np.ndarray:
    """RGB image in [0, 1], resized (Lanczos) so that its long side is ``size``."""
    from PIL import Image

    image = Image.open(path).convert("RGB")
    scale = size / max(image.size)
    image = image.resize((max(2, round(image.width * scale)), max(2, round(image.height * scale))), Image.LANCZOS)
    return np.asarray(image, dtype=np.float32) / 255.0


def ray_shard_workers() -> list[int]:
    """PIDs of this machine's Ray workers running a fit-many shard now (Ray titles a busy worker ``ray::fit_shard``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(b"ray::fit_shard"):
                found.append(int(entry.name))
    return found


def write_section(markdown: str, name: str) -> None:
    """Replace (or append) the section between ``<!-- name:start -->`` and ``<!-- name:end -->`` of BENCHMARKS.md."""
    path = ROOT / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# inrkit benchmarks\n"
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{markdown}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)


def protocol_cells(name: str, scale: str, data: str | Path,
                   models: list[str] | None = None) -> tuple[Any, list[tuple[str, Path, dict[str, Any]]]]:
    """A protocol (``inrkit/api/protocols/NAME.json`` at ``scale``) and its cells as ``(label, signal, options)``:
    the signals found under ``data`` (``select``/``limit`` applied) and each model's fit options (``model`` or
    ``preset`` included), so a script measures the protocol's fits without declaring their settings again."""
    from inrkit.api.bench import find_signals
    from inrkit.api.protocols import load_protocol

    protocol = load_protocol(name, scale)
    labels = list(models or protocol.models)
    signals = find_signals(protocol, data)
    return protocol, [(label, signal, protocol.cell_options(label)) for label in labels for signal in signals]
