"""Per-step cost of inrkit's trainer against the official implementations, same network, same machine.

No protocol: a per-step micro-benchmark against the official code's loops, not a fit to a paper's table.

Protocol (REFERENCE.md, "CPU measurements of the official code"): kodim01 resized to 192×128,
full batch, 50 Adam steps, each preset's default network (SIREN/FINER/Gauss/ReLU-PE/SL²A 3×256 in
the papers' terms, SPDER with its 6 sine-damped layers, WIRE at width 181), flush-to-zero on.
The official numbers were measured on the same kind of machine (2 cores, torch 2.13) by running the
official repositories' training loops; inrkit's number is the trainer's mean ms/step (sampling,
schedule, loss, backward, Adam, progress and NaN checks included; evaluation excluded).

    python scripts/bench_step_cost.py --image ../shared/data/image/kodak/kodim01.png
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import load_resized, write_section

# ms/step of the official code, REFERENCE.md (2 cores, torch 2.13, kodim01 192x128, 50 full-batch steps)
OFFICIAL_MS = {"siren": 292, "finer": 335, "relu-pe": 285, "sl2a": 507, "spder": 999, "gauss": 628, "wire": 2480}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", required=True)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    torch.set_flush_denormal(True)
    import inrkit
    from inrkit.signals import ImageSignal

    pixels = load_resized(args.image, 192)
    rows = []
    for model, official in OFFICIAL_MS.items():
        run = inrkit.fit(ImageSignal.from_array(pixels), model, steps=args.steps, eval_every=0, device="cpu", quiet=True)
        ours = run.metrics["ms_per_step"]
        rows.append(f"| {model} | {run.field.n_params:,} | {official} | {ours:.0f} | {ours / official:.2f} |")
        print(rows[-1], flush=True)
    lines = [
        "## Per-step cost against the official code (`scripts/bench_step_cost.py`)",
        "",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} CPU threads, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}. Command: `python scripts/bench_step_cost.py --image {args.image}`.",
        "",
        f"Protocol: {Path(args.image).name} resized to {pixels.shape[1]}×{pixels.shape[0]}, full batch, {args.steps} steps, "
        "default presets, flush-to-zero. Official ms/step from REFERENCE.md (same machine kind, official training loops).",
        "",
        "| model | params | official ms/step | inrkit ms/step | ratio |",
        "|---|---:|---:|---:|---:|",
        *rows,
    ]
    write_section("\n".join(lines), "bench_step_cost")
    print(f"mean ratio {np.mean([float(r.split('|')[5]) for r in rows]):.2f}")


if __name__ == "__main__":
    main()
