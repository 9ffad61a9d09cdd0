"""Rate–distortion benchmark of the latent image codec (``--codec latent``) on Kodak 768×512 against JPEG, WebP,
AVIF and HEVC intra (measured in the same run), with BD-rates, decode times and the decoder's MAC/pixel.

No protocol: the latent codec's target-bpp encodes and BD-rates are not a fit protocol (SIREN weight
compression on Kodak is the ``coin-kodak`` protocol, ``scripts/bench_compress.py``).

The full protocol (12 images × 4+ rates × ≤ 10 min per encode) needs 8 CPU-hours; this script runs it in
parts that each fit a 10-minute slot of the shared lock, appending one record per encode to ``--results``
(``benchmarks/latent_codec_results.jsonl``, kept in the repository so that a later report can combine rounds; the
``.inrz`` files go to ``--work``):

    flock /tmp/inrkit-bench.lock python scripts/bench_codec.py encode kodim03 --rates 0.1 0.2 --seconds 240
    flock /tmp/inrkit-bench.lock python scripts/bench_codec.py encode kodim03 --rates 0.3 0.5 --seconds 240
    python scripts/bench_codec.py report --notes notes.md   # baselines, BD-rates, the BENCHMARKS.md section, the plot
    python scripts/bench_codec.py decode --threads 2        # decode + render times of the files, on a quiet machine

``encode``: each rate is one ``inrkit.export.compress(image, out, codec="latent", target_bpp=R, seconds=S)``
(the codec's preset for the rate unless ``--complexity``, seed 0); then the file is decoded three times in this
process (``inrkit.export.load``: read, check, decode latents, synthesise the image) and the median time kept.
Rate = 8 × file bytes / pixels (every byte: container, header, networks, latents); PSNR and MS-SSIM
(:func:`inrkit.metrics.ms_ssim`, in dB) of the decoded 8-bit image against the 8-bit original.
``report``: JPEG (``optimize=True``, 4:2:0), WebP (``method=6``), AVIF (Pillow's default speed; if Pillow has
it) and HEVC intra (x265 4:4:4 tuned for PSNR through ``pillow-heif``, BPG's coding tool in a HEIF file; if
installed) swept over quality on the same images; a codec's PSNR at each of our points is read off its per-image curve at our
per-image bpp (linear interpolation: "matched bpp"); BD-rate (Bjøntegaard: cubic fit of log-rate against PSNR,
integrated over the overlapping PSNR range) of our points against each codec's curve, per image, then averaged;
the same for MS-SSIM with ``--ms-ssim`` (over the records that hold it: records made before it was measured at encode
time, 2026-12-02, do not). The records with their baselines' matched values go to ``--work/report.jsonl``.
``decode``: each ``.inrz`` file of ``--work`` decoded and rendered ``--repeats`` times in one process (after one
warm-up decode), the median per file and the minimum, median and maximum over the files; ``--reference-arm`` runs
the latent decoder's NumPy ARM instead of its C kernel (:mod:`inrkit.backends.cpu_arm`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from bench_common import ROOT, write_section
from bench_compress import at_bpp, codec_curves, psnr8

sys.path.insert(0, str(ROOT))

if TYPE_CHECKING:
    from inrkit.export.latent_codec import DecodedImage

KODAK = Path("/work/shared/data/image/kodak")
WORK = Path("/tmp/inrkit-bench-codec")
RESULTS = ROOT / "benchmarks" / "latent_codec_results.jsonl"
QUALITIES = {"jpeg": range(0, 101), "webp": range(0, 101), "avif": range(0, 101, 4), "hevc": range(0, 101, 4)}
PUBLISHED = {  # mean PSNR on the 24 Kodak images (issue 17's table): context only
    "Cool-Chic 5.0.1 (published)": [(0.1, 28.06), (0.2, 30.54), (0.3, 32.33), (0.5, 34.74)],
    "C3 (published)": [(0.1, 27.35), (0.2, 29.98), (0.3, 31.70), (0.5, 34.22)],
}


def load_uint8(name: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(KODAK / f"{name}.png").convert("RGB"))


def encode_path(work: Path, image: str, rate: float, seconds: float) -> Path:
    """The ``.inrz`` file ``encode`` writes for one image, target rate and budget."""
    return work / f"{image}-{rate:g}-{seconds:g}s.inrz"


def decoded_pixels(decoded: DecodedImage) -> np.ndarray:
    """A decoded latent file's image as the 8-bit ``(H, W, 3)`` array it stands for."""
    return np.round(decoded.image.clamp(0, 1).numpy() * 255).astype(np.uint8)


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the machine type elsewhere): encode speed depends on it."""
    from inrkit.backends.c_kernels import cpuinfo_line

    def value(prefix: str) -> str:
        line = cpuinfo_line((prefix,))
        return line.split(":", 1)[1].strip() if line else ""

    name = value("model name") or platform.processor() or platform.machine()
    family, model, megahertz = value("cpu family"), value("model\t"), value("cpu MHz")
    if family and not any(character.isdigit() for character in name):  # a hypervisor's generic name
        name += f" (family {family} model {model}, {float(megahertz or 0):.0f} MHz)"
    return name


def _commit() -> str:
    """The short commit of the code being measured (``?`` outside a git checkout)."""
    import subprocess

    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip() or "?"


def encode(args: argparse.Namespace) -> None:
    import torch

    from inrkit.export import compress, load

    args.work.mkdir(parents=True, exist_ok=True)
    target = load_uint8(args.image)
    commit = _commit()  # the code imported now (the checkout may move on during a long encode)
    for rate in args.rates:
        out = encode_path(args.work, args.image, rate, args.seconds)
        report = compress(KODAK / f"{args.image}.png", out, codec="latent", target_bpp=rate, seconds=args.seconds,
                          complexity=args.complexity, quiet=True, threads=args.threads, device=args.device)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            decoded = load(out)
            times.append(time.perf_counter() - started)
        pixels = decoded_pixels(decoded)
        record = {"image": args.image, "target_bpp": rate, "seconds_budget": args.seconds, "complexity": report.complexity,
                  "bpp": report.bpp, "psnr": psnr8(pixels, target), "ms_ssim": ms_ssim8(pixels, target),
                  "encode_s": report.encode_seconds,
                  "steps": report.steps, "lambda": report.lmbda, "decode_ms": 1000 * statistics.median(times),
                  "macs_per_pixel": report.macs_per_pixel, "threads": args.threads or torch.get_num_threads(),
                  "load": os.getloadavg()[0], "cpu": cpu_model(), "commit": commit,
                  **({"device": torch.cuda.get_device_name(), "device_kind": "cuda"} if args.device.startswith("cuda")
                     else {})}
        with open(args.results, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)


def bd_rate(ours: list[tuple[float, float]], theirs: list[tuple[float, float]]) -> float:
    """Bjøntegaard delta rate (%) of ``ours`` against ``theirs`` (``(bpp, PSNR)`` points): negative = fewer bits."""
    def fit(points: list[tuple[float, float]]) -> np.ndarray:
        rates, quality = np.log10([r for r, _ in points]), np.array([q for _, q in points])
        return np.polyfit(quality, rates, 3 if len(points) > 3 else len(points) - 1)

    low = max(min(q for _, q in ours), min(q for _, q in theirs))
    high = min(max(q for _, q in ours), max(q for _, q in theirs))
    if high <= low:
        return float("nan")
    integral = [np.diff(np.polyval(np.polyint(fit(p)), [low, high]))[0] for p in (ours, theirs)]
    return float((10 ** ((integral[0] - integral[1]) / (high - low)) - 1) * 100)


def bd_text(bd: dict[str, float]) -> str:
    """``JPEG -50.2 %, WEBP …`` of per-codec BD-rates (none where every image has a single rate)."""
    if all(np.isnan(value) for value in bd.values()):
        return "none (a BD-rate needs two rates or more per image)"
    return ", ".join(f"{codec.upper()} {value:+.1f} %" for codec, value in bd.items())


def plot(series: dict[str, list[tuple[float, float]]], path: Path) -> None:
    """A PSNR-vs-bpp line plot drawn with Pillow (no matplotlib in the environment)."""
    from PIL import Image, ImageDraw

    width, height, left, bottom, top, right = 900, 600, 70, 60, 20, 250
    x_range, y_range = (0.0, 0.7), (20.0, 38.0)
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def xy(bpp: float, psnr: float) -> tuple[float, float]:
        x = left + (bpp - x_range[0]) / (x_range[1] - x_range[0]) * (width - left - right)
        y = height - bottom - (psnr - y_range[0]) / (y_range[1] - y_range[0]) * (height - top - bottom)
        return x, y

    draw.rectangle([xy(x_range[0], y_range[1]), xy(x_range[1], y_range[0])], outline="black")
    for tick in np.arange(0.0, 0.71, 0.1):
        x, y = xy(tick, y_range[0])
        draw.line([(x, y), (x, y + 5)], fill="black")
        draw.text((x - 10, y + 8), f"{tick:.1f}", fill="black")
    for tick in range(20, 39, 2):
        x, y = xy(x_range[0], tick)
        draw.line([(x - 5, y), (x, y)], fill="black")
        draw.text((x - 28, y - 6), f"{tick}", fill="black")
    draw.text((left + 200, height - 25), "bits per pixel (mean over the images)", fill="black")
    draw.text((5, top), "PSNR dB", fill="black")
    colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#7f7f7f", "#bcbd22", "#17becf", "#ff7f0e"]
    for index, (name, points) in enumerate(series.items()):
        colour = colours[index % len(colours)]
        inside = [xy(b, p) for b, p in sorted(points) if x_range[0] <= b <= x_range[1] and y_range[0] <= p <= y_range[1]]
        if len(inside) > 1:
            draw.line(inside, fill=colour, width=2)
        for x, y in inside:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.line([(width - right + 10, top + 20 * index + 6), (width - right + 30, top + 20 * index + 6)], fill=colour,
                  width=3)
        draw.text((width - right + 35, top + 20 * index), name, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def ms_ssim8(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM in dB (``−10·log10(1 − MS-SSIM)``) of two uint8 ``(H, W, 3)`` images."""
    import torch

    from inrkit import metrics

    return metrics.ms_ssim_db(metrics.ms_ssim(torch.tensor(a) / 255.0, torch.tensor(b) / 255.0))


def _sweep(job: tuple[str, str, bool]) -> dict[str, list[tuple[float, float]]]:
    """One ``(image, codec, with_ms_ssim)`` quality sweep (a worker process: one thread)."""
    import torch

    torch.set_num_threads(1)
    image, codec, with_ms_ssim = job
    return codec_curves(load_uint8(image), codec, QUALITIES[codec],
                        {"psnr": psnr8, **({"ms_ssim": ms_ssim8} if with_ms_ssim else {})})


def _matched(records: list[dict], baselines: list[str], with_ms_ssim: bool) -> dict[tuple[str, str, str], list]:
    """Every baseline's per-image (bpp, PSNR) curves and, ``with_ms_ssim``, (bpp, MS-SSIM dB) ones, keyed
    ``(image, codec, metric)``; each record gets every baseline's PSNR (``record[codec]``) and MS-SSIM
    (``record[codec + "_ms_ssim"]``) at its bpp (in place)."""
    jobs = [(image, codec, with_ms_ssim) for image in sorted({r["image"] for r in records}) for codec in baselines]
    with mp.get_context("spawn").Pool(os.cpu_count()) as pool:
        sweeps = pool.map(_sweep, jobs)
    curves = {(image, codec, metric): curve for (image, codec, _), sweep in zip(jobs, sweeps, strict=True)
              for metric, curve in sweep.items()}
    for record in records:
        for codec in baselines:
            record[codec] = at_bpp(curves[(record["image"], codec, "psnr")], record["bpp"])
            if with_ms_ssim:
                record[f"{codec}_ms_ssim"] = at_bpp(curves[(record["image"], codec, "ms_ssim")], record["bpp"])
    return curves


GOAL_RATES = {0.2, 0.3, 0.5}  # the goal range: images encoded at all of them make the mean table and curve


def core_rates(records: list[dict]) -> set[float]:
    """The rates of :data:`GOAL_RATES` that any record targets."""
    return GOAL_RATES & {record["target_bpp"] for record in records}


def core_images(records: list[dict]) -> list[str]:
    """The images encoded at every rate of :func:`core_rates`."""
    rates: dict[str, set[float]] = {}
    for record in records:
        rates.setdefault(record["image"], set()).add(record["target_bpp"])
    return sorted(image for image, done in rates.items() if done >= core_rates(records))


def _mean_rows(records: list[dict], baselines: list[str], series: dict[str, list[tuple[float, float]]]) -> list[str]:
    """The table of means per target rate over :func:`core_images` (and the plot's series)."""
    core = core_images(records)
    records = [r for r in records if r["image"] in core]
    rows = ["| target bpp | images | bpp (mean) | latent PSNR | " + " | ".join(f"{c.upper()} at matched bpp"
                                                                             for c in baselines)
            + " | encode s/image | steps | decode+render ms | MAC/pixel |", "|" + "---|" * (8 + len(baselines))]
    for rate in sorted({r["target_bpp"] for r in records}):
        group = [r for r in records if r["target_bpp"] == rate]
        mean = {key: float(np.mean([r[key] for r in group])) for key in
                ("bpp", "psnr", "encode_s", "steps", "decode_ms", "macs_per_pixel", *baselines)}
        if len(group) == len(core):  # the curve: rates measured on every core image
            series.setdefault("latent (this run)", []).append((mean["bpp"], mean["psnr"]))
            for codec in baselines:
                series.setdefault(f"{codec.upper()} matched", []).append((mean["bpp"], mean[codec]))
        rows.append(f"| {rate:g} | {len(group)} | {mean['bpp']:.3f} | **{mean['psnr']:.2f}** | "
                    + " | ".join(f"{mean[c]:.2f}" if np.isfinite(mean[c]) else "—" for c in baselines)
                    + f" | {mean['encode_s']:.0f} | {mean['steps']:.0f} | {mean['decode_ms']:.0f} | "
                      f"{mean['macs_per_pixel']:.0f} |")
    return rows


def _ms_ssim_rows(records: list[dict], baselines: list[str]) -> list[str]:
    """The MS-SSIM (dB) means per target rate over :func:`core_images` and the records that hold MS-SSIM, ours and
    each baseline at matched bpp."""
    core = core_images(records)
    records = [r for r in records if "ms_ssim" in r]
    rows = ["| target bpp | latent MS-SSIM dB | " + " | ".join(f"{c.upper()} at matched bpp" for c in baselines) + " |",
            "|" + "---|" * (2 + len(baselines))]
    for rate in sorted({r["target_bpp"] for r in records if r["image"] in core}):
        group = [r for r in records if r["target_bpp"] == rate and r["image"] in core]
        means = [float(np.mean([r[key] for r in group])) for key in ("ms_ssim", *(f"{c}_ms_ssim" for c in baselines))]
        rows.append(f"| {rate:g} | **{means[0]:.2f}** | "
                    + " | ".join(f"{m:.2f}" if np.isfinite(m) else "—" for m in means[1:]) + " |")
    return rows


def _image_rows(records: list[dict], baselines: list[str]) -> list[str]:
    """One row per encode: its point, every baseline at its bpp, and the margin over WebP."""
    rows = ["| image | target bpp | bpp | latent PSNR | " + " | ".join(c.upper() for c in baselines)
            + " | latent − WEBP | steps | λ |", "|" + "---|" * (7 + len(baselines))]
    for r in sorted(records, key=lambda r: (r["image"], r["target_bpp"])):
        margin = r["psnr"] - r["webp"] if np.isfinite(r.get("webp", np.nan)) else np.nan
        rows.append(f"| {r['image']} | {r['target_bpp']:g} | {r['bpp']:.3f} | {r['psnr']:.2f} | "
                    + " | ".join(f"{r[c]:.2f}" if np.isfinite(r[c]) else "—" for c in baselines)
                    + f" | {'—' if np.isnan(margin) else f'{margin:+.2f}'} | {r['steps']} | {r['lambda']:.3g} |")
    return rows


def provenance(records: list[dict]) -> str:
    """Which code and CPU made which records (rounds measured on different machines are combined)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in records:
        groups.setdefault((record.get("commit", "?"), record.get("cpu", "a CPU not recorded")), []).append(record)
    parts = []
    for (commit, cpu), group in sorted(groups.items(), key=lambda item: min(r["target_bpp"] for r in item[1])):
        steps = [r["steps"] for r in group]
        parts.append(f"{len(group)} at {', '.join(f'{t:g}' for t in sorted({r['target_bpp'] for r in group}))} bpp: "
                     f"commit {commit} on {cpu}, {min(steps):,}–{max(steps):,} steps")
    return "Encodes: " + "; ".join(parts) + "."


def presets(records: list[dict]) -> str:
    """``complexity `low` at 0.1 bpp, `medium` at 0.2–0.6 bpp``: the decoder presets the records used, by rate."""
    rates: dict[str, list[float]] = {}
    for record in records:
        rates.setdefault(record["complexity"], []).append(record["target_bpp"])
    parts = [f"`{name}` at {min(r):g}{f'–{max(r):g}' if max(r) > min(r) else ''} bpp"
             for name, r in sorted(rates.items(), key=lambda item: min(item[1]))]
    return "complexity " + ", ".join(parts)


def available_baselines() -> list[str]:
    """The codecs of :data:`QUALITIES` this machine can run: AVIF if Pillow was built with it, HEVC if
    ``pillow-heif`` is installed (the ``bench`` extra)."""
    import importlib.util

    from PIL import features

    return [c for c in QUALITIES if (c != "avif" or features.check("avif"))
            and (c != "hevc" or importlib.util.find_spec("pillow_heif") is not None)]


def report(args: argparse.Namespace) -> None:
    import PIL
    import torch

    records = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    baselines = available_baselines()
    curves = _matched(records, baselines, args.ms_ssim)
    images = sorted({r["image"] for r in records})
    series: dict[str, list[tuple[float, float]]] = {}
    rows = _mean_rows(records, baselines, series)

    def mean_bd(metric: str) -> dict[str, float]:  # per image over the range both cover, then averaged
        return {codec: float(np.nanmean([bd_rate([(r["bpp"], r[metric]) for r in records
                                                  if r["image"] == image and metric in r],
                                                 [p for p in curves[(image, codec, metric)] if 0.03 <= p[0] <= 1.2])
                                         for image in images])) for codec in baselines}

    bd = mean_bd("psnr")
    in_goal = [r for r in records if 0.2 <= r["target_bpp"] <= 0.5 and np.isfinite(r["webp"])]
    for name, points in PUBLISHED.items():
        series[name] = points
    plot(series, Path(args.plot))
    budgets = sorted({r["seconds_budget"] for r in records})
    threads = sorted({r["threads"] for r in records})
    lines = [
        f"## {args.title}",
        "",
        f"`scripts/bench_codec.py` ({time.strftime('%Y-%m-%d')}, "
        f"{' / '.join(sorted({r['cpu'] for r in records if 'cpu' in r})) or platform.machine()}, "
        f"{os.cpu_count()} cores, load average at encode start {min(r['load'] for r in records):.1f}–"
        f"{max(r['load'] for r in records):.1f}, torch {torch.__version__}, Pillow {PIL.__version__}). Protocol: see "
        f"the script's docstring. {'' if len(images) == 12 else '**Subset**: '}{len(images)} images "
        f"({', '.join(images)}) at {len({r['target_bpp'] for r in records})} target rates "
        f"({', '.join(f'{t:g}' for t in sorted({r['target_bpp'] for r in records}))} bpp; {len(records)} encodes), "
        f"a {' / '.join(f'{b:g}' for b in budgets)} s training budget per encode on "
        f"{' / '.join(map(str, threads))} thread(s), {presets(records)}. "
        f"Means and the plotted curve are over the images encoded at "
        f"{' and '.join(f'{t:g}' for t in sorted(core_rates(records)))} bpp "
        f"({', '.join(core_images(records))}); every encode is in the per-encode table. {provenance(records)}",
        "",
        *rows,
        "",
        "A codec's matched PSNR is its PSNR at our bpp on each image, averaged (— where its quality sweep does not "
        "reach our bpp on every image: WebP and JPEG cannot go that low on some; see the per-encode table). "
        "BD-rate of the latent codec against each (negative: fewer bits for the same PSNR; per image over the PSNR "
        "range both cover, then averaged): "
        + bd_text(bd) + ".",
        "",
        *(["MS-SSIM (Wang et al. 2003, five scales, RGB channels averaged; `inrkit.metrics.ms_ssim`) in dB, "
           "−10·log10(1 − MS-SSIM), of the decoded 8-bit images; baselines at matched bpp as above"
           + ("" if all("ms_ssim" in r for r in records) else
              f" (the {sum('ms_ssim' in r for r in records)} encodes whose records hold it; older records do not)")
           + ":", "",
           *_ms_ssim_rows(records, baselines), "",
           "BD-rate in MS-SSIM dB: " + bd_text(mean_bd("ms_ssim")) + ".",
           ""] if args.ms_ssim else []),
        "Per encode:",
        "",
        *_image_rows(records, baselines),
        "",
    ]
    if in_goal:
        worst = min(in_goal, key=lambda r: r["psnr"] - r["webp"])
        lines += [f"**Goal (beat WebP from 0.2 to 0.5 bpp)**: {sum(r['psnr'] > r['webp'] for r in in_goal)} of "
                  f"{len(in_goal)} encodes at those targets that WebP can match are above WebP at their bpp; mean margin "
                  f"{float(np.mean([r['psnr'] - r['webp'] for r in in_goal])):+.2f} dB, smallest "
                  f"{worst['psnr'] - worst['webp']:+.2f} dB ({worst['image']} at {worst['bpp']:.3f} bpp).", ""]
    lines += [f"![latent codec rate-distortion]({os.path.relpath(args.plot, ROOT)})", ""]
    if args.notes:
        lines += [args.notes.read_text().strip(), ""]
    write_section("\n".join(lines), args.section)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "report.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))  # with the matched baselines
    print("\n".join(lines))


def decode(args: argparse.Namespace) -> None:
    import torch

    from inrkit.backends import cpu_arm
    from inrkit.export import load

    files = sorted(args.work.glob("*.inrz"))
    if not files:
        raise SystemExit(f"no .inrz files in {args.work}")
    torch.set_num_threads(args.threads)
    if args.reference_arm:
        cpu_arm.available = lambda: False  # FixedPointArm then keeps to its NumPy code
    load(files[0])
    medians = []
    for path in files:
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            load(path)
            times.append(1000 * (time.perf_counter() - started))
        medians.append(statistics.median(times))
        print(f"{path.name}: {medians[-1]:.0f} ms", flush=True)
    print(f"{len(files)} files, {args.threads} thread(s), {'NumPy' if args.reference_arm else 'kernel'} ARM, "
          f"{cpu_model()}, load {os.getloadavg()[0]:.1f}: decode + render {min(medians):.0f} / "
          f"{statistics.median(medians):.0f} / {max(medians):.0f} ms (min / median / max of the medians of "
          f"{args.repeats})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("encode", help="encode one Kodak image at some rates (one locked slot)")
    run.add_argument("image", help="kodimNN")
    run.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.5])
    run.add_argument("--seconds", type=float, default=100.0)
    run.add_argument("--complexity", default="auto", help="decoder preset (default: the codec's own choice by rate)")
    run.add_argument("--threads", type=int, help="CPU threads of the encode (default: the Trainer's tuner)")
    run.add_argument("--device", default="cpu", help="where to train (cpu, cuda, ...; the file is coded on the CPU)")
    summary = commands.add_parser("report", help="baselines, BD-rates, BENCHMARKS.md section and plot")
    summary.add_argument("--plot", default=str(ROOT / "benchmarks" / "codec_rd.png"))
    summary.add_argument("--notes", type=Path, help="a markdown file appended to the section (other measurements)")
    summary.add_argument("--section", default="latent-codec", help="the BENCHMARKS.md section it writes (its marker)")
    summary.add_argument("--title", default="Latent image codec (Cool-Chic / C3 class) on Kodak 768×512")
    summary.add_argument("--ms-ssim", action="store_true",
                         help="MS-SSIM too (about 0.15 s per decode on one core: about 10 minutes more for 12 images)")
    timing = commands.add_parser("decode", help="decode + render times of the .inrz files in --work")
    timing.add_argument("--threads", type=int, default=2)
    timing.add_argument("--repeats", type=int, default=5)
    timing.add_argument("--reference-arm", action="store_true", help="the NumPy ARM instead of the C kernel")
    for command in (run, summary, timing):
        command.add_argument("--work", type=Path, default=WORK)
        command.add_argument("--results", type=Path, default=RESULTS, help="the encodes' records (JSON lines)")
    args = parser.parse_args()
    {"encode": encode, "report": report, "decode": decode}[args.command](args)


if __name__ == "__main__":
    main()
