"""Camera pose refinement benchmark: pose errors and test PSNR with and without ``--refine-poses`` and coarse-to-fine.

No protocol: pose refinement on the procedural scene with synthetic pose noise, which no protocol describes.

The procedural ``blocks`` scene (exact ground-truth poses) with its training poses perturbed by seeded se(3)
noise of a known RMS size (``--noise ROT_DEG,TRANS``; BARF's Blender setting is 15,0.26, the default here a
third of it for a CPU budget), each variant trained from scratch for the same number of steps::

    flock /tmp/inrkit-bench.lock python scripts/bench_poses.py --resolution 32 --steps 600

Variants (``--variants``): ``exact`` (true poses: the PSNR a perfect refinement could reach), ``noisy`` (perturbed,
no refinement), ``refine`` (perturbed, refined, every band at once), ``refine-c2f`` (refined, hash-grid levels
opened coarse to fine, ``--coarse-to-fine``), and when ``--progressive`` exists: ``pe-refine`` / ``pe-refine-barf``
(BARF's setting: a positional-encoding density network, refined without / with BARF's cosine window).
Pose errors are BARF's (Procrustes-aligned camera centres; rotation angle, world-to-camera translation), test
views are aligned to the trained cameras before rendering. Results go to BENCHMARKS.md (section ``nerf-poses``).
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
from bench_common import ROOT, write_section

sys.path.insert(0, str(ROOT))  # this checkout's inrkit, installed or not
import inrkit
from inrkit.nerf.procedural import make_scene
from inrkit.train import TrainOptions

VARIANTS = {
    "exact": {},
    "noisy": {"perturb": True},
    "refine": {"perturb": True, "refine_poses": True},
    "refine-c2f": {"perturb": True, "refine_poses": True, "c2f": True},
    "pe-refine": {"perturb": True, "refine_poses": True, "backbone": "relu-pe"},
    "pe-refine-barf": {"perturb": True, "refine_poses": True, "backbone": "relu-pe", "progressive": "barf"},
}


def run(name: str, scene_dir: Path, args: argparse.Namespace, out: Path) -> dict:
    variant = VARIANTS[name]
    options = {"steps": args.steps, "device": "cpu", "seed": args.seed, "quiet": True, "overwrite": True,
               "target_samples": args.target_samples, "grid_resolution": args.grid_resolution}
    if variant.get("perturb"):
        options["perturb_poses"] = args.noise
    if variant.get("refine_poses"):
        options |= {"refine_poses": True, "pose_lr": args.pose_lr}
    if variant.get("c2f"):
        options["coarse_to_fine"] = args.coarse_to_fine
    if "backbone" in variant:
        options["backbone"] = variant["backbone"]
    if "progressive" in variant:
        options["progressive"] = variant["progressive"]
    began = time.perf_counter()
    nerf = inrkit.nerf.fit(scene_dir, preset="instant-ngp-cpu", out=out, **options)
    metrics = nerf.metrics
    record = {"variant": name, "seconds": round(time.perf_counter() - began, 1), "psnr": metrics["psnr"],
              "ssim": metrics["ssim"], "step": metrics["step"], "ms_per_step": metrics["ms_per_step"],
              "options": {k: v for k, v in options.items() if k not in ("quiet", "overwrite")}}
    for key in ("rotation_error_deg_before", "rotation_error_deg", "translation_error_before", "translation_error"):
        record[key] = metrics.get(key)
    print(json.dumps(record), flush=True)
    return record


def table(records: list[dict], args: argparse.Namespace, machine: str) -> str:
    def pose(record: dict, key: str, digits: int) -> str:
        before, after = record[f"{key}_before"], record[key]
        return "—" if after is None else f"{before:.{digits}f} → {after:.{digits}f}"

    lines = ["## NeRF camera pose refinement (BARF) on a perturbed procedural scene", "",
             f"Procedural `blocks` at {args.resolution}x{args.resolution} (60 training views on the upper hemisphere at "
             f"radius 4, 8 test views), training poses perturbed by seeded se(3) noise of RMS {args.noise.split(',')[0]}° "
             f"rotation and {args.noise.split(',')[1]} units translation (`--perturb-poses {args.noise}`, seed {args.seed}; "
             "BARF's Blender protocol: 15°, 0.26 units, 200k iterations on a GPU). `instant-ngp-cpu` preset, "
             f"{args.steps} steps each, {args.target_samples} samples per step, `--pose-lr {args.pose_lr:g}` (decaying "
             "×0.01 over the run as BARF's 1e-3 → 1e-5), c2f = `--coarse-to-fine "
             f"{args.coarse_to_fine}` (hash-grid levels opened one by one). Pose errors: mean over the training cameras "
             "after Procrustes alignment of the camera centres (BARF's `evaluate_camera_alignment`: rotation angle, "
             "world-to-camera translation); test PSNR on white with the test views aligned to the trained cameras. "
             "One seed per variant.", "", machine, "",
             "| variant | rotation error (°) before → after | translation error before → after | test PSNR (dB) | SSIM | "
             "ms/step | wall s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in records:
        lines.append(f"| {r['variant']} | {pose(r, 'rotation_error_deg', 2)} | {pose(r, 'translation_error', 4)} | "
                     f"{r['psnr']:.2f} | {r['ssim']:.4f} | {r['ms_per_step']:.0f} | {r['seconds']:.0f} |")
    command = (f"flock /tmp/inrkit-bench.lock python scripts/bench_poses.py --variants {' '.join(args.variants)} "
               f"--resolution {args.resolution} --steps {args.steps} --noise {args.noise} --pose-lr {args.pose_lr:g} "
               f"--coarse-to-fine {args.coarse_to_fine} --target-samples {args.target_samples} --seed {args.seed}")
    lines += ["", f"Command: `{command}`", "", args.findings]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["exact", "noisy", "refine", "refine-c2f"], choices=VARIANTS)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--noise", default="5,0.1", help="ROT_DEG,TRANS of the perturbation")
    parser.add_argument("--pose-lr", type=float, default=1e-2)
    parser.add_argument("--coarse-to-fine", type=int, default=60)
    parser.add_argument("--target-samples", type=int, default=8192)
    parser.add_argument("--grid-resolution", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--note", default="", help="what else ran on the machine")
    parser.add_argument("--findings", default="", help="a paragraph on what the numbers show")
    parser.add_argument("--json", help="also write the records here")
    parser.add_argument("--from-json", help="reuse saved records instead of training")
    parser.add_argument("--no-update", action="store_true", help="do not write BENCHMARKS.md")
    args = parser.parse_args()
    if "progressive" not in TrainOptions.__dataclass_fields__:
        args.variants = [v for v in args.variants if "progressive" not in VARIANTS[v]]
    torch.set_num_threads(args.threads)
    if args.from_json:
        records = [json.loads(line) for line in Path(args.from_json).read_text().splitlines() if line.strip()]
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-poses-"))
        scene_dir = make_scene("blocks", work / "blocks", resolution=args.resolution, n_train=60, n_test=8)
        records = [run(name, scene_dir, args, work / name) for name in args.variants]
    if args.json:
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in records))
    machine = (f"Machine: {platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
               f"inrkit {inrkit.__version__}. {args.note}").strip()
    if not args.no_update:
        write_section(table(records, args, machine), "nerf-poses")


if __name__ == "__main__":
    main()
