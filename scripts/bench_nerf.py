"""Radiance-field benchmark on the ``ingp-nerf-synthetic`` protocol: test PSNR/SSIM and rendering speed.

Protocol mode (default): the scenes, preset, training time and image scale come from the protocol
(``inrkit/api/protocols/ingp-nerf-synthetic.json`` at ``--scale``: ``full`` is 800x800 and 5 minutes per scene
on a GPU, ``cpu`` the first scene at 1/8 size for 90 s with ``instant-ngp-cpu``)::

    python scripts/bench_nerf.py --scale full --device cuda
    flock /tmp/inrkit-bench.lock python scripts/bench_nerf.py --scale cpu

``--minutes M...`` adds this script's own measurement, quality against training time: one run per budget
instead of the protocol's ``seconds``. ``--procedural`` instead fits the procedural ``blocks`` scene
(scenes/blocks.json, 60 training / 8 test views at ``--resolution``), which no protocol describes: exact
ground truth for a CPU check of the renderer and trainer, preset ``--preset``.

Each run trains from scratch for its budget (the lr schedule follows each budget), then renders the
test views (mean of per-view PSNR on white, SSIM) and times a second render of them for rays/s.
Results go to BENCHMARKS.md (section ``nerf-cpu`` or ``nerf-gpu``) and to ``--json``.
``--rerender RUN_DIR... --from-json FILE`` re-times rendering of saved runs (same weights) and
rewrites the section from the saved records.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_common import ROOT, protocol_cells, write_section

sys.path.insert(0, str(ROOT))  # this checkout's inrkit, installed or not
import inrkit
from inrkit.devices import resolve_device
from inrkit.nerf.procedural import make_scene

RENDER_TIMING_VIEWS = 2  # rendering an 800x800 view takes seconds: time a few, not the whole test split


def rendering_speed(nerf: inrkit.nerf.NeRF) -> float:
    """Rays per second for rendering the first :data:`RENDER_TIMING_VIEWS` test views once (after a warm-up view)."""
    cameras = nerf.scene.test_cameras[:RENDER_TIMING_VIEWS]
    nerf.render(cameras[0])
    if nerf.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for camera in cameras:
        nerf.render(camera)
    if nerf.device.type == "cuda":
        torch.cuda.synchronize()
    return sum(c.width * c.height for c in cameras) / (time.perf_counter() - start)


def run(scene_dir: Path, options: dict, device: str, out: Path) -> dict:
    """One fit of ``scene_dir`` with the fit ``options`` (``preset`` included), then rendering timed."""
    nerf = inrkit.nerf.fit(scene_dir, out=out, device=device, quiet=True, overwrite=True, **options)
    record = {k: nerf.metrics[k] for k in ("psnr", "ssim", "step", "elapsed", "ms_per_step", "samples_per_step",
                                           "rays_per_step", "peak_memory_mb")}
    record["budget_s"] = options.get("seconds") or nerf.metrics["elapsed"]
    record["scene"] = scene_dir.name
    record["run_dir"] = str(out)
    record["command"] = "python scripts/bench_nerf.py " + " ".join(sys.argv[1:])
    record["preset"] = nerf.config["options"]["preset"]
    record["loss"] = nerf.config["signal"]["loss"]
    record["render_rays_per_s"] = rendering_speed(nerf)
    record["occupied"] = nerf.model.grid.occupancy_fraction()
    record["n_params"] = nerf.model.field.n_params
    record["n_train"] = len(nerf.scene.train_cameras)
    record["n_test"] = len(nerf.scene.test_cameras)
    record["size"] = f"{nerf.scene.test_cameras[0].width}x{nerf.scene.test_cameras[0].height}"
    print(json.dumps(record), flush=True)
    return record


def rerender(records: list[dict], device: str) -> None:
    """Re-time rendering of each record's saved run (its scene is reopened from the run's config)."""
    for record in records:
        nerf = inrkit.nerf.load(record["run_dir"], device=device)
        nerf.scene = inrkit.nerf.Scene.from_config(nerf.config["signal"])
        record["render_rays_per_s"] = rendering_speed(nerf)
        print(json.dumps(record), flush=True)


def table(records: list[dict], title: str, protocol: str, machine: str) -> str:
    lines = [f"## {title}", "", protocol, "", machine, "",
             "| scene | budget | steps | ms/step | samples/step | test PSNR (dB) | SSIM | render rays/s | grid occupied "
             "| peak MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {r.get('scene', '')} "
                     f"| {r['budget_s'] / 60:g} min | {r['step']} | {r['ms_per_step']:.0f} | {r['samples_per_step']:,} | "
                     f"{r['psnr']:.2f} | {r['ssim']:.4f} | {r['render_rays_per_s']:,.0f} | {100 * r['occupied']:.1f}% | "
                     f"{r['peak_memory_mb']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default="ingp-nerf-synthetic", help="protocol: name or .json file")
    parser.add_argument("--scale", default="cpu", help="protocol scale (full | cpu)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder the protocol's globs are under")
    parser.add_argument("--minutes", type=float, nargs="+",
                        help="training budgets, one run each (default: the protocol's; --procedural: 5)")
    parser.add_argument("--procedural", action="store_true", help="fit the procedural blocks scene instead (no protocol)")
    parser.add_argument("--preset", default="auto", help="preset of --procedural runs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--resolution", type=int, default=128, help="procedural scene image size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the records here")
    parser.add_argument("--from-json", help="reuse saved records instead of training (with --rerender: re-time rendering)")
    parser.add_argument("--rerender", action="store_true", help="re-time rendering of the saved runs of --from-json")
    parser.add_argument("--no-update", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    work = Path(tempfile.mkdtemp(prefix="bench-nerf-"))
    if args.procedural:
        scene_dir = make_scene("blocks", work / "blocks", resolution=args.resolution, n_train=60, n_test=8)
        cells = [(args.preset, scene_dir, {"preset": args.preset, "seed": args.seed})]
        protocol = (f"Procedural scene `scenes/blocks.json` at {args.resolution}x{args.resolution} (60 training views on the "
                    "upper hemisphere, 8 test views on a 30° ring, exact ground truth with 2x2 supersampling), test views on "
                    "white, mean of per-view PSNR. Training on a random background, tcnn Adam 1e-2 (β 0.9/0.99, ε 1e-15, "
                    "L2 1e-6 on MLP weights), instant-ngp's step lr decay mapped onto the budget.")
    else:
        loaded, cells = protocol_cells(args.protocol, args.scale, args.data)
        published = loaded.published.get("values", {})
        protocol = (f"Protocol `{loaded.name}` v{loaded.version} at scale `{loaded.scale}`: {loaded.title} "
                    f"(options {loaded.options}; scale: {loaded.factors or 'none'}; {loaded.notes}). Published: "
                    + "; ".join(f"{k} {v['value']} dB ({loaded.published['sources'][v['source']]})"
                                for k, v in published.items()) + ".")
    minutes = args.minutes or ([5.0] if args.procedural else [])  # the protocol's own seconds without --minutes
    budgets = [{"seconds": 60.0 * m} for m in minutes] or [{}]
    if args.from_json:
        records = json.loads(Path(args.from_json).read_text())
        if args.rerender:
            rerender(records, args.device)
    else:
        records = [run(scene, {**options, **budget}, args.device, work / f"{scene.name}-{label}-{index}")
                   for label, scene, options in cells for index, budget in enumerate(budgets)]
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else None
    machine = (f"Machine: {gpu or f'{args.threads}-thread CPU ({platform.processor() or platform.machine()})'}, "
               f"torch {torch.__version__}, preset `{records[0]['preset']}` ({records[0]['n_params']:,} parameters, "
               f"{records[0]['loss']} loss), "
               f"{records[0]['n_train']} training / {records[0]['n_test']} test views at {records[0]['size']}. "
               f"Command: `{records[0]['command']}`.")
    if args.rerender:
        machine += (" Rendering speed re-timed on the saved weights after a renderer change with `python "
                    "scripts/bench_nerf.py " + " ".join(sys.argv[1:]) + "`.")
    if device.type == "cpu":
        machine += (" Shared 2-core machine: other agents' work may have run on the cores at the same time (the benchmark"
                    " itself ran under the benchmark lock).")
    name = ("nerf-gpu" if device.type == "cuda" else "nerf-cpu") if args.procedural else f"nerf-{loaded.name}-{args.scale}"
    title = "Radiance fields: " + ("GPU" if device.type == "cuda" else "CPU")
    markdown = table(records, title, protocol, machine)
    print(markdown)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=2))
    if not args.no_update:
        write_section(markdown, name)


if __name__ == "__main__":
    main()
