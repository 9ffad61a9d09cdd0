"""The README's example run and a large render, as a new user would run them.

No protocol: the README's own example commands, timed as typed.

1. ``inrkit fit assets/astronaut.png --model siren --seconds 90 --batch-size 8192`` (the README's
   first command, minus the install): final PSNR/SSIM, steps and wall time.
2. ``inrkit render RUN --size 4096x4096``: wall time and the peak resident memory of that process
   (the target is ~2 GB at most; rendering runs in chunks of 65,536 pixels).

    python scripts/bench_example.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_common import ROOT, write_section

EXAMPLE = ["fit", "assets/astronaut.png", "--model", "siren", "--seconds", "90", "--batch-size", "8192", "--quiet"]


def inrkit(*args: str) -> tuple[float, float]:
    """Run the CLI in a child process; returns its wall time (s) and peak resident memory (MB)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "inrkit.cli", *args], cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise SystemExit(f"inrkit {' '.join(args)} failed with status {status}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "astronaut"
        fit_seconds, fit_mb = inrkit(*EXAMPLE, "--out", str(run))
        final = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
        render_seconds, render_mb = inrkit("render", str(run), "--size", "4096x4096", "--out", str(Path(tmp) / "big.png"))
    lines = [
        "## README example and a 4096² render (`scripts/bench_example.py`)",
        "",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        f"* `inrkit {' '.join(EXAMPLE[:-1])}`: {final['step']} steps, PSNR {final['psnr']:.2f} dB, SSIM {final['ssim']:.4f}, "
        f"{fit_seconds:.0f} s wall for the whole command (start-up, training, evaluation, outputs), "
        f"{final['ms_per_step']:.0f} ms/step, peak resident memory {fit_mb:.0f} MB.",
        f"* `inrkit render RUN --size 4096x4096 --out big.png`: {render_seconds:.0f} s, peak resident memory "
        f"{render_mb:.0f} MB (whole process: Python, torch, the 4096²×3 float32 output and one 65,536-pixel chunk).",
    ]
    write_section("\n".join(lines), "bench_example")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
