"""First use on real data: whole `inrkit fit` commands as a user runs them, timed end to end.

No protocol: it times whole commands at their defaults as a user types them; a protocol would fix those options.

Each cell is one process, ``python -m inrkit fit IMAGE --model M --seconds S [flags]``: the table gives
PSNR, SSIM, steps, the batch and schedule the run resolved, peak resident memory of the process and the
whole command's wall time (start-up, training, evaluation, outputs) against the budget. ``--background``
runs a CPU-bound ``nice -n 19`` process beside every cell, as a user's other work would.

    python scripts/bench_first_use.py --images ../shared/data/image/kodak/*.png --models hashgrid --seconds 20
    python scripts/bench_first_use.py --images ../shared/data/image/kodak/kodim05.png --models siren spder \\
        --seconds 30 --flags "--batch-size 4096" "--batch-size 16384 --schedule constant" --section sweep
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_common import ROOT, write_section

BUSY_LOOP = "while True: pass"


def run_cell(image: Path, model: str, seconds: float, flags: str, out: Path) -> dict:
    """One whole command; returns its metrics, resolved settings, peak RSS (MB) and wall time (s)."""
    command = [sys.executable, "-m", "inrkit", "fit", str(image), "--model", model, "--seconds", str(seconds),
               "--out", str(out), "--quiet", *shlex.split(flags)]
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, stdout=stdout, stderr=stderr, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # the child's own peak RSS, not the largest child's so far
        wall = time.perf_counter() - began
        stdout.seek(0)
        stderr.seek(0)
        printed, errors = stdout.read(), stderr.read()
    if status != 0:
        return {"error": (errors or printed).strip().splitlines()[-1], "wall": wall}
    final = json.loads((out / "metrics.jsonl").read_text().strip().splitlines()[-1])
    train = json.loads((out / "config.json").read_text())["train"]
    return {"psnr": final["psnr"], "ssim": final["ssim"], "steps": final["step"], "wall": wall,
            "peak_mb": usage.ru_maxrss / 1024, "batch": train["batch_size"], "schedule": train["schedule"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", nargs="+", type=Path, required=True)
    parser.add_argument("--models", nargs="+", default=["hashgrid"])
    parser.add_argument("--seconds", nargs="+", type=float, default=[20.0])
    parser.add_argument("--flags", nargs="+", default=[""], help="extra fit flags, one string per variant")
    parser.add_argument("--background", action="store_true", help="a nice -n 19 busy loop beside every cell")
    parser.add_argument("--section", default="first_use", help="BENCHMARKS.md section name")
    parser.add_argument("--title", default="First use: whole commands on full-size images")
    args = parser.parse_args()

    background = subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", BUSY_LOOP]) if args.background else None
    rows = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for seconds in args.seconds:
                for model in args.models:
                    for flags in args.flags:
                        cells = []
                        for image in args.images:
                            cell = run_cell(image, model, seconds, flags, Path(scratch) / f"run{len(rows)}-{len(cells)}")
                            cells.append(cell)
                            print(model, seconds, flags, image.name, cell, flush=True)
                        rows.append((model, seconds, flags, cells))
    finally:
        if background is not None:
            background.kill()

    def mean(cells: list[dict], key: str) -> float:
        values = [c[key] for c in cells if key in c]
        return sum(values) / len(values) if values else float("nan")

    lines = [
        f"## {args.title} (`scripts/bench_first_use.py`)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU threads, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}; "
        f"{'with' if args.background else 'without'} a `nice -n 19` CPU-bound process alongside.",
        f"Command: `python scripts/bench_first_use.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}`",
        "",
        f"Images: {', '.join(p.name for p in args.images)} at full size. Each cell is a whole `inrkit fit` process "
        "with default flags except those shown; PSNR/SSIM are means over the images, `wall` the mean whole-command "
        "time, `peak MB` the largest peak RSS.",
        "",
        "| model | budget s | flags | batch | schedule | PSNR | min PSNR | SSIM | steps | wall s | wall/budget | peak MB |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, seconds, flags, cells in rows:
        ok = [c for c in cells if "error" not in c]
        if not ok:
            lines.append(f"| {model} | {seconds:g} | `{flags}` | failed: {cells[0]['error']} |||||||||")
            continue
        lines.append(
            f"| {model} | {seconds:g} | `{flags or 'defaults'}` | {ok[0]['batch'] or 'full'} | {ok[0]['schedule']} | "
            f"{mean(ok, 'psnr'):.2f} | {min(c['psnr'] for c in ok):.2f} | {mean(ok, 'ssim'):.3f} | {mean(ok, 'steps'):.0f} | "
            f"{mean(ok, 'wall'):.1f} | {mean(ok, 'wall') / seconds:.2f} | {max(c['peak_mb'] for c in ok):.0f} |")
    write_section("\n".join(lines), args.section)


if __name__ == "__main__":
    main()
