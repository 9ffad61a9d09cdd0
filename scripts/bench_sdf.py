"""SDF benchmark on the ``sl2a-shapes`` protocol: ground-truth sampling speed, the protocol's fits, mesh export.

The meshes, backbones and fit options (steps, loss, metric resolutions, seed) come from the protocol
(``inrkit/api/protocols/sl2a-shapes.json`` at ``--scale``; the published SL²A IoUs: REFERENCE.md §7.3); this
script adds its own measurements around them:

* ground truth: ``--gt-points`` training samples (the default mix of
  :mod:`inrkit.signals.sdf_sampling`) with exact distances and winding-number signs, timed on the
  first mesh; the sign method is checked against libigl's pseudonormal sign on uniform points;
* fits: each (mesh, backbone) cell of the protocol runs ``inrkit.fit`` in its own process
  (peak memory = that process's max RSS); metrics are the fit's final record (IoU, Chamfer, NC, F-score);
* export: ``inrkit.export_mesh`` at 256³ (and 512³ for ``--export-512`` meshes) in a fresh
  process; time is the call itself, memory that process's max RSS (Python + torch included).

    flock /tmp/inrkit-bench.lock python scripts/bench_sdf.py --scale cpu
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

import numpy as np
import torch
from bench_common import ROOT, protocol_cells, write_section

sys.path.insert(0, str(ROOT))  # this checkout's inrkit, also when it is not installed
from inrkit.api.protocols import Protocol


def run_measured(command: list[str]) -> tuple[str, float, float]:
    """Run ``command``; return its stdout, wall seconds and peak RSS in MB (that child only, via ``wait4``)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if status:
            raise RuntimeError(f"{' '.join(command)} failed:\n{err.read()}")
        return out.read(), wall, usage.ru_maxrss / 1024


def run_child(code: str) -> tuple[dict, float]:
    """Run Python ``code`` (which prints one JSON line last) in a fresh process; return it and the peak RSS in MB."""
    out, _, peak = run_measured([sys.executable, "-c", code])
    return json.loads(out.strip().splitlines()[-1]), peak


def ground_truth_timing(mesh_path: Path, n_points: int) -> dict:
    import trimesh

    from inrkit.signals.sdf_sampling import training_samples

    mesh = trimesh.load(mesh_path, force="mesh", process=False)
    vertices, faces = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
    vertices = (vertices - (vertices.max(0) + vertices.min(0)) / 2) / (np.ptp(vertices, axis=0).max() / 1.8)
    start = time.perf_counter()
    training_samples(vertices, faces, n_points, np.random.default_rng(0))
    seconds = time.perf_counter() - start
    return {"mesh": mesh_path.name, "faces": len(faces), "points": n_points, "seconds": seconds}


def sign_check(mesh_path: Path, n_points: int = 200_000) -> dict:
    """Fraction of uniform points in the box where winding-number and pseudonormal signs disagree."""
    import igl
    import trimesh

    from inrkit.signals.sdf_sampling import edge_defects, inside

    mesh = trimesh.load(mesh_path, force="mesh", process=False)
    vertices, faces = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
    low, high = vertices.min(0), vertices.max(0)
    points = np.random.default_rng(0).uniform(low, high, (n_points, 3))
    winding = inside(points, vertices, faces)
    pseudo = igl.signed_distance(points, vertices, faces, igl.SignedDistanceType.SIGNED_DISTANCE_TYPE_PSEUDONORMAL)[0] < 0
    boundary, _ = edge_defects(vertices, faces)
    return {"mesh": mesh_path.name, "boundary_edges": boundary, "inside_winding": float(winding.mean()),
            "inside_pseudonormal": float(pseudo.mean()), "disagree": float((winding != pseudo).mean())}


FIT_CODE = """
import inrkit
inrkit.fit({signal!r}, out={out!r}, overwrite=True, quiet=True, device="cpu", **{options!r})
"""

EXPORT_CODE = """
import json, time, inrkit
start = time.perf_counter()
inrkit.export_mesh({run!r}, {out!r}, resolution={resolution}, device="cpu")
import trimesh
mesh = trimesh.load({out!r}, process=False)
print(json.dumps({{"seconds": time.perf_counter() - start, "faces": len(mesh.faces)}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder the protocol's globs are under")
    parser.add_argument("--protocol", default="sl2a-shapes", help="protocol: name or .json file")
    parser.add_argument("--scale", default="cpu", help="protocol scale (full | cpu)")
    parser.add_argument("--models", nargs="+", help="a subset of the protocol's models")
    parser.add_argument("--gt-points", type=int, default=250_000)
    parser.add_argument("--export-512", nargs="*", default=["armadillo_ingp"], help="mesh stems also exported at 512³")
    parser.add_argument("--work", default="/tmp/inrkit-bench-sdf")
    parser.add_argument("--no-write", action="store_true", help="print the table instead of updating BENCHMARKS.md")
    parser.add_argument("--skip", nargs="*", default=[], metavar="MESH:MODEL", help="pairs not to run (named in the notes)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the (mesh, model) rows already in WORK/rows.jsonl (same protocol) and run only the others")
    args = parser.parse_args()
    protocol, cells = protocol_cells(args.protocol, args.scale, args.data, args.models)
    meshes = list(dict.fromkeys(signal for _, signal, _ in cells))
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    bench_start = time.perf_counter()

    gt = ground_truth_timing(meshes[0], args.gt_points)
    print(f"ground truth: {gt}", flush=True)
    signs = [sign_check(mesh) for mesh in meshes]
    for row in signs:
        print(f"signs: {row}", flush=True)

    rows_file = work / "rows.jsonl"
    previous = [json.loads(line) for line in rows_file.read_text().splitlines()] if args.reuse and rows_file.exists() else []
    if not args.reuse:
        rows_file.write_text("")
    done = {(r["mesh"], r["model"]): r for r in previous}
    rows = []
    for model, mesh, options in cells:
        mesh_name = mesh.name
        if f"{mesh.stem}:{model}" in args.skip:
            continue
        if (mesh_name, model) in done:
            rows.append({**done[(mesh_name, model)], "reused": True})
            continue
        run_dir = work / f"{mesh.stem}-{model}"
        _, wall, peak = run_measured([sys.executable, "-c", FIT_CODE.format(signal=str(mesh), out=str(run_dir),
                                                                           options=options)])
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        final = records[-1]
        config = json.loads((run_dir / "config.json").read_text())
        row = {"mesh": mesh_name, "model": model, "faces": config["signal"]["n_faces"],
               "open": config["signal"]["boundary_edges"] > 0, "steps": final["step"], "train_s": final["elapsed"],
               "fit_wall_s": wall, "fit_peak_mb": peak, **{k: final[k] for k in
               ("iou", "chamfer_l1", "chamfer_l2", "normal_consistency", "fscore")}}
        for resolution in (256, 512) if mesh.stem in args.export_512 else (256,):
            out = work / f"{run_dir.name}-{resolution}.ply"
            result, export_peak = run_child(EXPORT_CODE.format(run=str(run_dir), out=str(out), resolution=resolution))
            row[f"export{resolution}_s"], row[f"export{resolution}_mb"] = result["seconds"], export_peak
            row[f"export{resolution}_faces"] = result["faces"]
        print(json.dumps(row), flush=True)
        with rows_file.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        rows.append(row)
    total = time.perf_counter() - bench_start
    markdown = render(args, protocol, gt, signs, rows, total)
    if args.no_write:
        print(markdown)
    else:
        write_section(markdown, "bench_sdf")
        print(f"wrote the bench_sdf section of {ROOT / 'BENCHMARKS.md'} ({total:.0f} s)")


def render(args: argparse.Namespace, protocol: Protocol, gt: dict, signs: list[dict], rows: list[dict], total: float) -> str:
    command = "python scripts/bench_sdf.py " + " ".join(sys.argv[1:])
    lines = [
        "## Signed distance fields (`scripts/bench_sdf.py`)",
        "",
        f"Machine: {platform.machine()}, {torch.get_num_threads()} CPU threads, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}; other agents' jobs shared the 2 cores during the run, "
        f"so times are upper bounds. This invocation: {total / 60:.1f} min"
        + (f"; {sum('reused' in r for r in rows)} rows (marked *) were measured by an earlier invocation of the same "
           "protocol and reused (`--reuse`)." if any("reused" in r for r in rows) else "."),
        f"Command: `flock /tmp/inrkit-bench.lock {command}`",
        "",
        f"**Ground truth**: {gt['points']:,} training samples (1/8 on the surface, 5/8 jittered at σ 0.005/0.02/0.08, "
        f"2/8 uniform) with exact point–triangle distances and fast-winding-number signs (libigl) on {gt['mesh']} "
        f"({gt['faces']:,} faces): **{gt['seconds']:.2f} s**.",
        "",
        "Sign check on 200k uniform points in each bounding box: winding number (used) against libigl's "
        "pseudonormal sign, which is exact for closed meshes and wrong near holes.",
        "",
        "| mesh | boundary edges | inside (winding) | inside (pseudonormal) | disagree |",
        "|---|---:|---:|---:|---:|",
        *[f"| {s['mesh']} | {s['boundary_edges']} | {s['inside_winding']:.4f} | {s['inside_pseudonormal']:.4f} | "
          f"{s['disagree']:.4%} |" for s in signs],
        "",
        f"**Fits**: protocol `{protocol.name}` v{protocol.version} at scale `{protocol.scale}` ({protocol.title}; "
        f"options {protocol.options}; scale: {protocol.factors or 'none'}). Chamfer ×10³ in the frame where the longest "
        "side is 1; F-score at 1 %; IoU over the bounding box; 'train s' is the training loop, 'fit s' the "
        "whole `inrkit fit` process (ground truth, training, evaluation, mesh); export times are the `inrkit.export_mesh` call "
        "(narrow-band evaluation + marching cubes + PLY), memory the export process's peak RSS including Python and torch.",
        "",
        "| mesh | model | train s | IoU | CD-L1 | CD-L2 | NC | F@1% | fit s | fit MB | 256³ s | MB | 512³ s | MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        e512 = (f"{r['export512_s']:.1f} | {r['export512_mb']:.0f}" if "export512_s" in r else "– | –")
        lines.append(
            f"| {r['mesh']} | {r['model']}{' *' if 'reused' in r else ''} | {r['train_s']:.0f} | {r['iou']:.4f} | "
            f"{1e3 * r['chamfer_l1']:.2f} | "
            f"{1e3 * r['chamfer_l2']:.3f} | {r['normal_consistency']:.4f} | {r['fscore']:.4f} | {r['fit_wall_s']:.0f} | "
            f"{r['fit_peak_mb']:.0f} | {r['export256_s']:.1f} | {r['export256_mb']:.0f} | {e512} |")
    if args.skip:
        lines += ["", "Not run (CPU time): " + ", ".join(f"`{pair}`" for pair in args.skip) + "."]
    published = [(r, protocol.published_value(r["model"], [Path(r["mesh"]).stem])) for r in rows
                 if r["model"] in protocol.models]
    published = [(r, value) for r, (value, same) in published if value is not None and same]
    if published:
        lines += [
            "",
            "Published IoU per shape (the protocol's `published`: SL²A page, REFERENCE.md §7.3; occupancy fitting on a "
            "voxel grid, GPU, hundreds of epochs) against this run:",
            "",
            "| mesh | model | published IoU | inrkit (this table) |",
            "|---|---|---:|---:|",
            *[f"| {r['mesh']} | {r['model']} | {value:.4f} | {r['iou']:.4f} |" for r, value in published],
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
