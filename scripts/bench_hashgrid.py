"""Hash-grid speed: encoding throughput (reference vs fast CPU kernel), time to 30 dB on the ``ingp-image``
protocol's Kodak images, and, on a CUDA machine, training steps/s at 2^18 points per step for every backend.

    python scripts/bench_hashgrid.py --scale cpu        # throughput + Kodak (CPU)
    python scripts/bench_hashgrid.py --only gpu         # GPU section (needs CUDA)

Parts 1 and 3 are micro-benchmarks of the encoding and backends, which no protocol describes; part 2's images,
model, steps, batch (the protocol's ``paper``/``device`` sampling) and lr schedule come from the protocol
(``inrkit/api/protocols/ingp-image.json`` at ``--scale``); the curve's resolution (``--eval-every``) and the
optional ``--log2-hashmap-size`` variant are this script's own.

1. Throughput: one forward + backward (table gradient) of the grid encoding, points/s, median of
   3 repetitions after a warm-up, the PyTorch reference and the fast CPU kernel side by side in one
   process. Grids: 2-D tcnn image config (L16 F2 T2^15 b 1.5) and 3-D instant-ngp NeRF config (L16
   F2 T2^19, N_max 2048).
2. Kodak: each protocol cell's ``inrkit.fit`` with an evaluation every K steps (full-image PSNR) to get the
   curve; time on the curve is training time (steps × measured ms/step, evaluations excluded). A
   confirmation run then executes the same fit with ``steps=N`` in a fresh process for the first N that
   reached 30 dB, and its wall time for the whole call (start-up and outputs included) is reported.
3. GPU: steps/s of the image task with 2^18 random pixels per step (reference, fast = torch.compile,
   tcnn when importable).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_common import ROOT, protocol_cells, write_section

import inrkit
from inrkit.backends import cpu_grid, grid_forward
from inrkit.encodings import GridEncoding

KODAK = Path(os.environ.get("INRKIT_SHARED", ROOT.parent / "shared")) / "data" / "image" / "kodak"
GRIDS = {
    2: {"otype": "HashGrid", "n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 15,
        "base_resolution": 16, "per_level_scale": 1.5},
    3: {"otype": "HashGrid", "n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 19,
        "base_resolution": 16, "per_level_scale": math.exp(math.log(2048 / 16) / 15)},
}


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")


def time_encoding(dims: int, points: int, backend: str, repeats: int = 3) -> float:
    """Points per second of forward + table backward."""
    grid = GridEncoding(dims, GRIDS[dims])
    x = torch.rand(points, dims)
    times = []
    for _ in range(repeats + 1):
        grid.params.grad = None
        start = time.perf_counter()
        y = grid_forward(x, grid.params, grid.spec, backend)
        y.backward(torch.ones_like(y))
        times.append(time.perf_counter() - start)
    return points / statistics.median(times[1:])


def throughput_section() -> str:
    rows = ["| input | points | reference (pts/s) | fast CPU kernel (pts/s) | speed-up |", "|---|---|---|---|---|"]
    for dims in (2, 3):
        for log2_points in (16, 18):
            reference = time_encoding(dims, 1 << log2_points, "torch")
            fast = time_encoding(dims, 1 << log2_points, "fast")
            rows.append(f"| {dims}-D | 2^{log2_points} | {reference / 1e6:.3f} M | {fast / 1e6:.3f} M | "
                        f"{fast / reference:.1f}× |")
            print(rows[-1], flush=True)
    return "\n".join([
        "### Encoding throughput, forward + backward (CPU)", "",
        f"Machine: {machine()}. Fast kernel available: {cpu_grid.available()}.",
        "2-D: tcnn image config (L16 F2 T2^15 N_min 16 b 1.5); 3-D: instant-ngp NeRF grid (L16 F2 T2^19, N_max 2048). "
        "Median of 3 after a warm-up; the table gradient only (coordinates need none).", "", *rows,
    ])


CONFIRM_CODE = """
import inrkit
inrkit.fit({source!r}, out={out!r}, overwrite=True, quiet=True, device="cpu", **{options!r})
"""


def kodak_section(source: Path, options: dict, eval_every: int, log2_size: int | None) -> str:
    """Time to 30 dB of one protocol cell (``options``: its fit options) on ``source``, as a markdown section."""
    image = source.name
    options = {**options, "eval_every": eval_every, **({"log2_hashmap_size": log2_size} if log2_size else {})}
    max_steps = options.get("steps")
    with tempfile.TemporaryDirectory() as tmp:
        run = inrkit.fit(source, out=Path(tmp) / "curve", quiet=True, device="cpu", **options)
        history = run.history
        ms_per_step = run.metrics["ms_per_step"]
        curve = [(r["step"], r["step"] * ms_per_step / 1000, r["psnr"]) for r in history]
        reached = next(((step, seconds) for step, seconds, psnr in curve if psnr >= 30.0), None)
        lines = ["| step | training time (s) | PSNR (dB) |", "|---|---|---|"]
        lines += [f"| {step} | {seconds:.1f} | {psnr:.2f} |" for step, seconds, psnr in curve]
        confirm = ""
        if reached:
            confirmed = {**options, "steps": reached[0], "eval_every": 0}
            code = CONFIRM_CODE.format(source=str(source), out=str(Path(tmp) / "confirm"), options=confirmed)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
            wall = time.perf_counter() - start
            final = json.loads((Path(tmp) / "confirm" / "metrics.jsonl").read_text().splitlines()[-1])
            confirm = (f"Confirmation: `inrkit.fit({image!r}, **{confirmed})` in a fresh process reached "
                       f"**{final['psnr']:.2f} dB in {wall:.1f} s wall** for "
                       f"the whole call (start-up, {final['elapsed']:.1f} s of training, final evaluation and outputs).")
    summary = (f"30 dB after {reached[0]} steps, {reached[1]:.1f} s of training" if reached
               else f"30 dB not reached in {max_steps} steps")
    return "\n".join([
        f"### Time to 30 dB: `{options['model']}`{' with T = 2^' + str(log2_size) if log2_size else ''} on {image} (CPU)",
        "",
        f"Machine: {machine()}. Fit options {options} (the protocol's, full-image PSNR every {eval_every} steps), "
        f"{run.config['train'].get('batch_size')} pixels per step, {ms_per_step:.0f} ms/step. {summary}.", "", confirm,
        "", *lines,
    ])


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_steps_per_second(signal, backend: str, steps: int = 200, warmup: int = 20, batch_size: int = 1 << 18) -> float:
    """Training steps/s of the ``hashgrid`` preset on ``signal`` (already on its device, normally CUDA) with ``backend``:
    ``batch_size`` random samples per step, timed over ``steps`` steps after ``warmup`` (compilation included there)."""
    from inrkit.fields import build_field
    from inrkit.fields.execution import prepare_field
    from inrkit.train.optim import build_optimizer

    device = signal.values.device
    field = prepare_field(build_field("hashgrid", signal.n_input_dims, signal.n_output_dims).to(device), backend, device)
    optimizer = build_optimizer(field, 1e-2, field.config["optimizer"])
    generator = torch.Generator(device=device).manual_seed(0)
    start = time.perf_counter()
    for step in range(steps + warmup):
        if step == warmup:
            _synchronize(device)
            start = time.perf_counter()
        batch = signal.sample(batch_size, generator)
        loss = signal.loss(field, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _synchronize(device)
    return steps / (time.perf_counter() - start)


def gpu_section(steps: int = 200) -> str:
    from inrkit.backends import tcnn_available
    from inrkit.signals import ImageSignal

    signal = ImageSignal.from_file(KODAK / "kodim01.png").to(torch.device("cuda"))
    rows = ["| backend | steps/s (2^18 pixels/step) |", "|---|---|"]
    for backend in ("torch", "fast", *(("tcnn",) if tcnn_available() else ())):
        rows.append(f"| {backend} | {train_steps_per_second(signal, backend, steps):.0f} |")
        print(rows[-1], flush=True)
    return "\n".join(["### Training steps/s on the GPU", "", f"Device: {torch.cuda.get_device_name()}; {machine()}.",
                      "instant-ngp with tcnn: about 1000 steps/s on an RTX 4090.", "", *rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("throughput", "kodak", "gpu"))
    parser.add_argument("--protocol", default="ingp-image", help="protocol of the Kodak part: name or .json file")
    parser.add_argument("--scale", default="cpu", help="protocol scale (full | cpu)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder the protocol's globs are under")
    parser.add_argument("--models", nargs="+", default=["hashgrid"], help="the protocol's models to time")
    parser.add_argument("--eval-every", type=int, default=25, help="steps between the curve's evaluations")
    parser.add_argument("--log2-hashmap-size", type=int, help="this script's variant: another table size T = 2^N")
    args = parser.parse_args()
    if args.only in (None, "throughput"):
        write_section(throughput_section(), "bench_hashgrid_throughput")
    if args.only in (None, "kodak"):
        protocol, cells = protocol_cells(args.protocol, args.scale, args.data, args.models)
        sections = [f"Protocol `{protocol.name}` v{protocol.version} at scale `{protocol.scale}`: {protocol.title} "
                    f"(scale: {protocol.factors or 'none'})."]
        sections += [kodak_section(source, options, args.eval_every, args.log2_hashmap_size)
                     for _, source, options in cells]
        write_section("\n\n".join(sections), "bench_hashgrid_kodak")
        print("\n\n".join(sections))
    if args.only == "gpu":
        write_section(gpu_section(), "bench_hashgrid_gpu")


if __name__ == "__main__":
    main()
