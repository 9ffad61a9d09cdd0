"""Rate–distortion benchmark of ``.inrz`` compression against JPEG and WebP, on the ``coin-kodak`` protocol.

The images, their preprocessing (``cpu`` scale: the first 4, each a 256×256 centre crop at native resolution; ``full``:
the 24 whole images), the SIREN widths and depth and the training (steps, lr, schedule, batch, seed) come from the
protocol (``inrkit/api/protocols/coin-kodak.json`` at ``--scale``; :mod:`inrkit.api.protocols`), and ``fp16`` from its
``compress`` entries. This script's own measurements: each fitted field compressed with ``inrkit.export.compress``
at each of ``--bits`` (post-training quantisation, per-tensor step, default coder; the RD curve), plus
quantisation-aware fine-tuning for ``--qat-bits``. Rate = 8 × (whole ``.inrz`` file, header included) / pixels;
distortion = PSNR of the decoded field rendered, clamped and rounded to 8 bits against the 8-bit image, averaged
over images (mean of per-image PSNRs). JPEG (Pillow, libjpeg, 4:2:0, ``optimize=True``) and WebP (Pillow,
libwebp, ``method=6``) are swept over quality 0–100 on the same images; their PSNR at each inrkit
point's per-image bpp is read off the per-image curve by linear interpolation in bpp ("matched
bpp"), then averaged. The same fitted weights also give the entropy-coder comparison (range vs
zlib vs lzma vs fixed-length codes) and per-tensor vs per-channel steps.

    flock /tmp/inrkit-bench.lock python scripts/bench_compress.py --scale cpu
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from bench_common import ROOT, protocol_cells, write_section

sys.path.insert(0, str(ROOT))  # this checkout's inrkit, also in the worker processes

CODERS = ("range", "zlib", "lzma", "raw")
# Context curves for the plot (24 images, full 768x512; REFERENCE.md §6/§7.5), bpp -> dB; wider than the protocol's `rd`.
PUBLISHED = {
    "COIN": [(0.0736, 23.21), (0.1604, 24.64), (0.3074, 26.41), (0.6109, 28.41)],
    "Strümpler et al. (meta-learned)": [(0.083, 25.56), (0.155, 27.02), (0.249, 28.28), (0.784, 32.14)],
    "COOL-CHIC v1": [(0.081, 25.77), (0.265, 29.41), (0.924, 35.83)],
    "C3": [(0.093, 27.06), (0.153, 28.96), (0.203, 30.03), (0.276, 31.34), (0.351, 32.39), (0.514, 34.37)],
}


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two uint8 images on [0, 1] (float64 MSE)."""
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2) / 255.0**2
    return float(-10 * np.log10(error))


def codec_curve(image: np.ndarray, codec: str, qualities: range = range(0, 101)) -> list[tuple[float, float]]:
    """``(bpp, PSNR)`` of Pillow's JPEG, WebP (``method=6``) or AVIF (Pillow's default speed), or HEVC intra (``hevc``:
    x265 through ``pillow-heif``, 4:4:4, tuned for PSNR, in a HEIF file) at each quality."""
    return codec_curves(image, codec, qualities, {"psnr": psnr8})["psnr"]


def codec_curves(image: np.ndarray, codec: str, qualities: range,
                 metrics: dict[str, Callable[[np.ndarray, np.ndarray], float]]) -> dict[str, list[tuple[float, float]]]:
    """``{name: [(bpp, metric(decoded, image))]}`` of one codec swept over ``qualities``, each metric on the same
    decodes (sorted by bpp)."""
    from PIL import Image

    if codec == "hevc":  # Pillow reads and writes HEIF once pillow-heif registers it
        import pillow_heif

        pillow_heif.register_heif_opener()
    source = Image.fromarray(image)
    points: dict[str, list[tuple[float, float]]] = {name: [] for name in metrics}
    for quality in qualities:
        buffer = io.BytesIO()
        if codec == "jpeg":
            source.save(buffer, "JPEG", quality=quality, optimize=True)
        elif codec == "avif":
            source.save(buffer, "AVIF", quality=quality)
        elif codec == "hevc":
            source.save(buffer, "HEIF", quality=quality, chroma=444, enc_params={"tune": "psnr"})
        else:
            source.save(buffer, "WEBP", quality=quality, method=6)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
        bpp = 8 * len(buffer.getvalue()) / (image.shape[0] * image.shape[1])
        for name, metric in metrics.items():
            points[name].append((bpp, metric(decoded, image)))
    return {name: sorted(curve) for name, curve in points.items()}


def at_bpp(curve: list[tuple[float, float]], bpp: float) -> float:
    """PSNR of a codec curve at ``bpp`` (linear interpolation; NaN outside the curve's range)."""
    rates = np.array([r for r, _ in curve])
    if bpp < rates[0] or bpp > rates[-1]:
        return float("nan")
    return float(np.interp(bpp, rates, [p for _, p in curve]))


def decoded_psnr(path: Path, target: np.ndarray) -> tuple[float, float]:
    """``(PSNR of the 8-bit rendering, seconds to decode the file)``."""
    import inrkit
    from inrkit.signals.image import render

    start = time.perf_counter()
    field = inrkit.load(path)
    seconds = time.perf_counter() - start
    pixels = render(field, target.shape[0], target.shape[1])
    return psnr8(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8), target), seconds


def run_image(job: dict) -> dict:
    """Worker: fit every width to one image, compress at every bit width, measure codecs."""
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    import inrkit
    from inrkit.export import compress, load
    from inrkit.io.images import read_image

    work = Path(job["work"]) / job["name"]
    work.mkdir(parents=True, exist_ok=True)
    png = Path(job["image"])
    target = np.ascontiguousarray(read_image(png)[..., :3])
    result = {"name": job["name"], "jpeg": codec_curve(target, "jpeg"), "webp": codec_curve(target, "webp"), "points": [],
              "coders": [], "schemes": []}
    for options in job["cells"]:
        width = options["width"]
        start = time.perf_counter()
        run = inrkit.fit(png, out=work / f"w{width}", overwrite=True, device="cpu", quiet=True, **options)
        fit_seconds = time.perf_counter() - start
        for bits in job["bits"]:
            for qat in ([0, job["qat_steps"]] if bits in job["qat_bits"] else [0]):
                path = work / f"w{width}-b{bits}-q{qat}.inrz"
                report = compress(run.dir, path, bits=bits, fp16=job["fp16"], finetune_steps=qat, finetune_lr=job["qat_lr"])
                psnr, decode_seconds = decoded_psnr(path, target)
                chosen = [t["coder"] for t in load(path).header["tensors"] if t["storage"] == "quantized"]
                result["points"].append({"width": width, "bits": bits, "qat": qat, "bytes": report.n_bytes,
                                         "bpp": report.bpp, "psnr": psnr, "psnr_float": report.psnr_after,
                                         "psnr_unquantised": report.psnr_before, "params": report.n_params,
                                         "fit_seconds": fit_seconds, "compress_seconds": report.seconds,
                                         "decode_seconds": decode_seconds, "coders_chosen": chosen})
        for coder in CODERS:
            path = work / f"w{width}-coder-{coder}.inrz"
            compress(run.field, path, bits=8, coder=coder)
            tensors = load(path).header["tensors"]
            result["coders"].append({"width": width, "coder": coder, "payload": sum(t["length"] for t in tensors),
                                     "file": path.stat().st_size,
                                     "models": [t.get("params", {}).get("model") for t in tensors]})
        for scheme in ("tensor", "channel"):
            path = work / f"w{width}-scheme-{scheme}.inrz"
            report = compress(run.dir, path, bits=6, scheme=scheme)
            result["schemes"].append({"width": width, "scheme": scheme, "bytes": report.n_bytes,
                                      "psnr": decoded_psnr(path, target)[0]})
    print(f"{job['name']}: " + "  ".join(f"w{p['width']}/{p['bits']}b{'+qat' if p['qat'] else ''} "
                                         f"{p['bpp']:.3f} bpp {p['psnr']:.2f} dB" for p in result["points"]), flush=True)
    return result


def speed(work: Path, width: int) -> dict:
    """Encode time (8-bit, no fine-tuning) and decode + 768x512 render time of one fitted field, in this process."""
    import inrkit
    from inrkit.export import compress
    from inrkit.signals.image import render

    run_dir = next(work.glob(f"*/w{width}"))
    times = {}
    start = time.perf_counter()
    compress(inrkit.load(run_dir), work / "speed.inrz", bits=8)
    times["encode"] = time.perf_counter() - start
    start = time.perf_counter()
    field = inrkit.load(work / "speed.inrz")
    times["decode"] = time.perf_counter() - start
    start = time.perf_counter()
    render(field, 512, 768)
    times["render"] = time.perf_counter() - start
    return times


def dash(value: float) -> str:
    """``12.34``, or an em dash where the codec cannot reach that rate on some image."""
    return "—" if np.isnan(value) else f"{value:.2f}"


def summarise(results: list[dict], args: argparse.Namespace) -> tuple[list[str], list[dict]]:
    keys = sorted({(p["width"], p["bits"], p["qat"]) for r in results for p in r["points"]})
    rows = []
    for width, bits, qat in keys:
        mine = [(r, next(p for p in r["points"] if (p["width"], p["bits"], p["qat"]) == (width, bits, qat))) for r in results]
        rows.append({
            "width": width, "bits": bits, "qat": qat, "params": mine[0][1]["params"],
            "bytes": np.mean([p["bytes"] for _, p in mine]), "bpp": np.mean([p["bpp"] for _, p in mine]),
            "psnr": np.mean([p["psnr"] for _, p in mine]), "psnr_unquantised": np.mean([p["psnr_unquantised"] for _, p in mine]),
            "jpeg": np.mean([at_bpp(r["jpeg"], p["bpp"]) for r, p in mine]),
            "webp": np.mean([at_bpp(r["webp"], p["bpp"]) for r, p in mine]),
            "fit_seconds": np.mean([p["fit_seconds"] for _, p in mine]),
            "compress_seconds": np.mean([p["compress_seconds"] for _, p in mine]),
        })
    lines = ["| SIREN width | params | bits | QAT steps | bytes | bpp | PSNR unquantised | PSNR .inrz | JPEG @ same bpp | "
             "WebP @ same bpp | fit s | compress s |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['width']} | {row['params']:,} | {row['bits']} | {row['qat']} | {row['bytes']:.0f} | "
                     f"{row['bpp']:.3f} | {row['psnr_unquantised']:.2f} | **{row['psnr']:.2f}** | {dash(row['jpeg'])} | "
                     f"{dash(row['webp'])} | {row['fit_seconds']:.0f} | {row['compress_seconds']:.1f} |")
    return lines, rows


def codec_at(results: list[dict], codec: str, bpp: float) -> float:
    return float(np.mean([at_bpp(r[codec], bpp) for r in results]))


def plot(results: list[dict], rows: list[dict], path: Path, images: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7.5, 5))
    grid = np.linspace(0.08, 1.0, 60)
    for codec, style in (("jpeg", "k-"), ("webp", "k--")):
        axis.plot(grid, [codec_at(results, codec, b) for b in grid], style, label=f"{codec.upper()} (Pillow), same crops")
    for qat in sorted({r["qat"] for r in rows}):
        for width in sorted({r["width"] for r in rows}):
            mine = sorted((r for r in rows if r["width"] == width and r["qat"] == qat), key=lambda r: r["bpp"])
            if mine:
                axis.plot([r["bpp"] for r in mine], [r["psnr"] for r in mine], "o-" if not qat else "s:",
                          label=f"inrkit SIREN w{width}" + (f" + {qat} QAT steps" if qat else " (bits " +
                                                             ",".join(str(r["bits"]) for r in mine) + ")"))
    for name, points in PUBLISHED.items():
        axis.plot(*zip(*points, strict=True), "x-", alpha=0.45, label=f"{name} (published, full 768×512)")
    axis.set_xlabel("bits per pixel")
    axis.set_ylabel("PSNR (dB), mean over images")
    axis.set_xlim(0.05, 1.0)
    axis.set_title(images, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default="coin-kodak", help="protocol: name or .json file")
    parser.add_argument("--scale", default="cpu", help="protocol scale (full | cpu)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="folder the protocol's globs are under")
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 5, 6, 8])
    parser.add_argument("--qat-bits", type=int, nargs="*", default=[4, 5, 6])
    parser.add_argument("--qat-steps", type=int, default=300)
    parser.add_argument("--qat-lr", type=float, default=1e-4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", default="/tmp/inrkit-bench-compress")
    parser.add_argument("--plot", default=str(ROOT / "benchmarks" / "compress_rd.png"), help="'' for no plot")
    parser.add_argument("--no-write", action="store_true", help="print the table without updating BENCHMARKS.md")
    parser.add_argument("--from-results", action="store_true", help="re-tabulate --work/results.json without fitting")
    args = parser.parse_args()

    from inrkit.api.bench import prepare_signal

    start = time.perf_counter()
    protocol, cells = protocol_cells(args.protocol, args.scale, args.data)
    fp16 = protocol.compress[0].get("fp16", "auto") if protocol.compress else "auto"
    images = list(dict.fromkeys(signal for _, signal, _ in cells))
    options = list({label: cell_options for label, _, cell_options in cells}.values())
    widths = sorted(o["width"] for o in options)
    signals = Path(args.work) / f"protocol-{protocol.name}-{protocol.scale}"  # its preprocessed images
    jobs = [{"image": str(prepare_signal(image, protocol, signals)), "name": image.stem, "work": args.work,
             "cells": options, "bits": args.bits, "qat_bits": args.qat_bits, "qat_steps": args.qat_steps,
             "qat_lr": args.qat_lr, "fp16": fp16} for image in images]
    if args.from_results:
        results = json.loads((Path(args.work) / "results.json").read_text())
    else:
        with mp.get_context("spawn").Pool(args.jobs) as pool:
            results = pool.map(run_image, jobs, chunksize=1)
        Path(args.work).mkdir(parents=True, exist_ok=True)
        (Path(args.work) / "results.json").write_text(json.dumps(results, indent=1))
    total = time.perf_counter() - start
    times = speed(Path(args.work), max(widths))

    table, rows = summarise(results, args)
    described = (f"{len(results)} images of protocol {protocol.name} at scale {protocol.scale}"
                 + (f" ({protocol.factors})" if protocol.factors else ""))
    if args.plot:
        plot(results, rows, Path(args.plot), described)
    coder_lines = ["| SIREN width | " + " | ".join(f"{c} payload (B)" for c in CODERS) + " | range models chosen |",
                   "|---:|" + "---:|" * len(CODERS) + "---|"]
    for width in widths:
        entries = [c for r in results for c in r["coders"] if c["width"] == width]
        sizes = {c: np.mean([e["payload"] for e in entries if e["coder"] == c]) for c in CODERS}
        chosen = [m for e in entries if e["coder"] == "range" for m in e["models"]]
        counts = ", ".join(f"{m} {chosen.count(m)}" for m in sorted(set(chosen)))
        coder_lines.append(f"| {width} | " + " | ".join(f"{sizes[c]:.0f}" for c in CODERS) + f" | {counts} |")
    scheme_lines = ["| SIREN width | per-tensor bytes | per-tensor PSNR | per-channel bytes | per-channel PSNR |",
                    "|---:|---:|---:|---:|---:|"]
    for width in widths:
        entries = [s for r in results for s in r["schemes"] if s["width"] == width]
        t = [s for s in entries if s["scheme"] == "tensor"]
        c = [s for s in entries if s["scheme"] == "channel"]
        scheme_lines.append(f"| {width} | {np.mean([s['bytes'] for s in t]):.0f} | {np.mean([s['psnr'] for s in t]):.2f} | "
                            f"{np.mean([s['bytes'] for s in c]):.0f} | {np.mean([s['psnr'] for s in c]):.2f} |")
    chosen = [c for r in results for p in r["points"] for c in p.get("coders_chosen", [])]
    chosen_range, chosen_all = chosen.count("range"), len(chosen)
    at03 = {codec: codec_at(results, codec, 0.3) for codec in ("jpeg", "webp")}
    command = " ".join(["python scripts/bench_compress.py", *sys.argv[1:]])
    comparable = [r for r in rows if not np.isnan(r["jpeg"])]
    ahead = [r for r in comparable if r["psnr"] >= r["jpeg"]]
    best = max(comparable, key=lambda r: r["psnr"] - r["jpeg"]) if comparable else None
    near = min(rows, key=lambda r: abs(r["bpp"] - 0.3))
    verdict = (f"Against JPEG at matched bpp inrkit is ahead at {len(ahead)} of {len(comparable)} comparable points"
               + (f" (best: width {best['width']}, {best['bits']} bits{' + QAT' if best['qat'] else ''}, {best['bpp']:.3f} bpp, "
                  f"{best['psnr'] - best['jpeg']:+.2f} dB)" if best else "")
               + f"; at the point nearest 0.3 bpp (width {near['width']}, {near['bits']} bits{' + QAT' if near['qat'] else ''}, "
               f"{near['bpp']:.3f} bpp) it is {near['psnr'] - near['jpeg']:+.2f} dB from JPEG.")
    lines = [
        "## Compressed weights: rate–distortion on Kodak (`scripts/bench_compress.py`)",
        "",
        f"Machine: {platform.machine()}, 2-core CPU shared with other jobs (one worker process per core, 1 torch thread "
        f"each; other agents' work ran on the same cores), Python {platform.python_version()}, torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}; total wall time {total / 60:.1f} min.",
        f"Command: `flock /tmp/inrkit-bench.lock {command}`",
        "",
        f"Protocol `{protocol.name}` v{protocol.version} at scale `{protocol.scale}`: {protocol.title}; "
        f"{described}; models {protocol.models}; options {protocol.options}. "
        "Compression: MSE-optimal per-tensor step, default coder "
        f"(`auto`: per tensor the smaller of the range coder and LZMA; range chosen for {chosen_range} of {chosen_all} "
        "quantised tensors), "
        f"`fp16={fp16!r}`; QAT = straight-through fine-tuning ({args.qat_steps} steps, lr {args.qat_lr:g}) through "
        "the fixed quantisation grid. bpp = 8 × whole file "
        "(magic, header, steps, codes) / pixels. PSNR: decoded field rendered, clamped, rounded to 8 bits, against the "
        "8-bit crop; mean of per-image PSNRs. JPEG/WebP: Pillow at qualities 1–100 on the same crops, PSNR "
        "interpolated at each image's inrkit bpp, then averaged.",
        "",
        *table,
        "",
        verdict,
        "",
        "Published INR codecs (REFERENCE.md §6, §7.5; 24 full-resolution 768×512 Kodak images, tens of thousands of GPU "
        "steps, meta-learning or rate-distortion training): COIN 26.41 dB at 0.307 bpp, Strümpler et al. 28.28 dB at "
        "0.249 bpp, COOL-CHIC v1 29.41 dB at 0.265 bpp, C3 31.34 dB at 0.276 bpp; JPEG there ≈ 26.0 dB at 0.3 bpp. These are "
        "not the same images (bpp is resolution-independent, quality is not), so the plot shows them only as context; "
        "the like-for-like comparison is JPEG/WebP on the same crops. inrkit here is a plain per-image SIREN fit "
        f"(COIN's recipe) with {protocol.options.get('steps')} CPU steps instead of COIN's 50,000, plus better "
        "quantisation and entropy coding.",
        "",
        f"At 0.3 bpp on these crops JPEG reaches {at03['jpeg']:.2f} dB (interpolated, mean of {len(results)}); WebP's "
        f"lowest rate (quality 1) is {np.mean([r['webp'][0][0] for r in results]):.3f} bpp on average "
        f"({np.mean([r['webp'][0][1] for r in results]):.2f} dB), so it has no point at or below 0.3 bpp on "
        f"{sum(r['webp'][0][0] > 0.3 for r in results)} of the {len(results)} crops (— in the table: a rate that "
        "the codec does not reach on every image).",
        "",
        "Entropy coders on the fitted weights (8-bit codes, mean payload bytes per image, headers excluded):",
        "",
        *coder_lines,
        "",
        "Per-tensor vs per-channel steps (6 bits, every tensor quantised: no fp16, no fine-tuning; bytes = whole file):",
        "",
        *scheme_lines,
        "",
        f"Speed (this machine, loaded, 2 torch threads): encoding the width-{max(widths)} field at 8 bits (step "
        f"search, coding, self-check decode) {times['encode']:.2f} s; decoding its `.inrz` {times['decode']:.3f} s, "
        f"rendering 768×512 from it {times['render']:.2f} s.",
        *(["", f"![rate-distortion]({os.path.relpath(args.plot, ROOT)})"] if args.plot else []),
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(text, "bench_compress")


if __name__ == "__main__":
    sys.exit(main())
