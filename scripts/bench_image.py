"""Image-fitting benchmark: every backbone on a set of images under one stated protocol.

Protocol (FINER-style, scaled for CPU): RGB images resized to ``--size`` pixels on the long side,
full-batch training, ``--steps`` Adam steps, learning rate ×0.1^(t/T) (exponential decay), every
backbone at width 256 and depth 4 (the "3×256" networks of the FINER/SL²A tables; SPDER is run at
the same depth here, WIRE at width ⌊256/√2⌋ = 181), each preset's FINER-protocol learning rate,
seed 0, pixel-centre coordinates in [-1, 1], PSNR on [0, 1] after clamping, mean of per-image PSNRs.
Each (image, backbone) pair runs in its own process so its peak memory is its own. A plain PyTorch
loop (forward, MSE, backward, Adam step: what the official scripts do) is timed on the same network
and data for the overhead column.

Writes the table between markers in ``BENCHMARKS.md`` and a PSNR-vs-step plot.

    python scripts/bench_image.py --images ../shared/data/image/kodak/kodim0{1,5}.png --size 128 --steps 300
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import ROOT, load_resized, write_section

MODELS = ["siren", "spder", "finer", "gauss", "wire", "relu-pe", "ffn", "relu", "sl2a"]


def bare_loop_ms(model: str, pixels: np.ndarray, lr: float, steps: int = 5) -> float:
    """ms/step of a minimal PyTorch loop on the same field and data (no inrkit trainer)."""
    from inrkit.fields import build_field
    from inrkit.signals.image import pixel_grid

    field = build_field(model, 2, 3, depth=4)
    coords = pixel_grid(pixels.shape[0], pixels.shape[1])
    target = torch.from_numpy(pixels.reshape(-1, 3))
    optimizer = torch.optim.Adam(field.parameters(), lr=lr)
    for step in range(steps + 1):
        if step == 1:
            start = time.perf_counter()
        loss = torch.mean((field(coords) - target) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return 1000 * (time.perf_counter() - start) / steps


def run_one(job: dict, queue: mp.Queue) -> None:
    """Child process: fit one backbone to one image and report its metrics."""
    torch.set_flush_denormal(True)
    import inrkit
    from inrkit.fields import get_preset
    from inrkit.signals import ImageSignal

    pixels = load_resized(job["image"], job["size"])
    signal = ImageSignal.from_array(pixels)
    run = inrkit.fit(signal, job["model"], depth=4, steps=job["steps"], eval_every=job["eval_every"], seed=0,
                     device="cpu", quiet=True, out=job["out"], overwrite=True)
    curve = [(r["step"], r["psnr"]) for r in run.history]
    bare = bare_loop_ms(job["model"], pixels, get_preset(job["model"]).lr)
    queue.put({**job, "psnr": run.metrics["psnr"], "ssim": run.metrics["ssim"], "params": run.field.n_params,
               "ms_per_step": run.metrics["ms_per_step"], "bare_ms_per_step": bare,
               "peak_memory_mb": run.metrics["peak_memory_mb"], "curve": curve, "shape": list(pixels.shape)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", nargs="+", required=True)
    parser.add_argument("--size", type=int, default=128, help="long side in pixels")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--work", default="/tmp/inrkit-bench-image")
    parser.add_argument("--plot", default=str(ROOT / "benchmarks" / "image_psnr.png"))
    parser.add_argument("--update", action="store_true",
                        help="re-run only --models and keep the other models' results from the last run in --work")
    args = parser.parse_args()
    previous = []
    if args.update:
        previous = json.loads((Path(args.work) / "results.json").read_text())
        previous = [r for r in previous if r["model"] not in args.models and r["image"] in args.images]

    context = mp.get_context("spawn")
    results = []
    for image in args.images:
        for model in args.models:
            job = {"image": image, "model": model, "size": args.size, "steps": args.steps,
                   "eval_every": args.eval_every, "out": f"{args.work}/{Path(image).stem}-{model}"}
            queue = context.Queue()
            process = context.Process(target=run_one, args=(job, queue))
            process.start()
            result = queue.get()
            process.join()
            results.append(result)
            print(f"{Path(image).name:12s} {model:8s} {result['psnr']:6.2f} dB  ssim {result['ssim']:.3f}  "
                  f"{result['ms_per_step']:7.1f} ms/step (bare {result['bare_ms_per_step']:7.1f})  "
                  f"{result['peak_memory_mb']:6.0f} MB", flush=True)
    results = previous + results
    (Path(args.work) / "results.json").write_text(json.dumps(results, indent=1))
    models = [m for m in MODELS if any(r["model"] == m for r in results)]

    rows = []
    for model in models:
        mine = [r for r in results if r["model"] == model]
        rows.append((model, mine[0]["params"], np.mean([r["psnr"] for r in mine]), np.mean([r["ssim"] for r in mine]),
                     np.mean([r["ms_per_step"] for r in mine]), np.mean([r["bare_ms_per_step"] for r in mine]),
                     max(r["peak_memory_mb"] for r in mine)))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for model in models:
        curves = [r["curve"] for r in results if r["model"] == model]
        steps = [s for s, _ in curves[0]]
        axis.plot(steps, np.mean([[p for _, p in c] for c in curves], axis=0), label=model, marker=".")
    axis.set_xlabel("step")
    axis.set_ylabel("PSNR (dB), mean over images")
    axis.grid(alpha=0.3)
    axis.legend(ncol=3, fontsize=8)
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.plot, dpi=110, bbox_inches="tight")

    shape = results[0]["shape"]
    names = ", ".join(Path(i).name for i in args.images)
    lines = [
        "## Image fitting (`scripts/bench_image.py`)",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads, "
        f"Python {platform.python_version()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}.",
        f"Command: `python scripts/bench_image.py --images {' '.join(args.images)} --size {args.size} --steps {args.steps}`",
        "",
        f"Protocol: {names} resized to {args.size} px on the long side ({shape[1]}×{shape[0]}); full batch; {args.steps} Adam "
        "steps; lr ×0.1^(t/T); width 256, depth 4 (3×256 in the papers' terms; WIRE 181); "
        "each preset's default lr (the FINER protocol's; WIRE 1e-3); "
        "seed 0; PSNR on [0,1] (clamped), mean of per-image PSNRs; SSIM: kornia, window 11. `ms/step` is inrkit's trainer, "
        "`bare` a plain PyTorch loop on the same network and data; peak memory is the child process's max RSS.",
        "",
        "| model | params | PSNR (dB) | SSIM | ms/step | bare ms/step | peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {m} | {p:,} | {ps:.2f} | {ss:.3f} | {ms:.1f} | {bare:.1f} | {mem:.0f} |"
              for m, p, ps, ss, ms, bare, mem in rows]
    lines += ["", f"![PSNR vs step]({os.path.relpath(args.plot, ROOT)})"]
    write_section("\n".join(lines), "bench_image")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
