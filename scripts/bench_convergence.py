"""Convergence speed: (backbone × variant × signal), time to a target PSNR and PSNR at a fixed budget.

No protocol: it measures time to quality of flag variants against a baseline on signals given on the command line,
which no paper table describes (the protocols' fits run through ``scripts/bench_protocol.py``).

A *variant* is a name and a set of extra ``inrkit fit`` flags (``base=`` for none, ``int="--sampling int"``,
``ws="--weight-scale 2"``); the first variant given is the baseline the others are compared with. Each cell is
one whole process, ``python -m inrkit fit SIGNAL --model B --seconds S --eval-every E --quiet [flags] [variant]``
run with this checkout first on ``PYTHONPATH``; the curve comes from the run's ``metrics.jsonl``.

Measured per cell, in seconds of *training* (``train_seconds`` of the metrics records: time inside training
steps, sample selection included, periodic evaluations and checkpoints excluded):

* ``t→T dB``: the first time the PSNR reaches ``--target-db`` (linear interpolation between the two
  evaluations around the crossing; "—" when never reached within the budget);
* ``t→base``: the first time the PSNR reaches the *baseline variant's* final PSNR on the same signal and
  backbone (the papers' measure: the same quality in less time); ``saved`` = 1 − t→base / (baseline's training time);
* ``PSNR``: the PSNR after ``--seconds`` of training, interpolated between the evaluations around it.

Each run gets a wall-clock budget (``inrkit fit --seconds``) of ``--wall-factor`` × ``--seconds``, so that its
periodic evaluations (every ``--eval-every`` steps) fit beside ``--seconds`` of training; every variant is
then compared at the same training time, whatever its evaluations cost.

Images and audio clips are used at full size (Kodak 768×512, the Bach clip at 44.1 kHz). Results are kept in
``--work/results.json``; ``--update`` re-runs only the given cells and keeps the others.

    python scripts/bench_convergence.py --images ../shared/data/image/kodak/kodim05.png \\
        --audio ../shared/data/audio/gt_bach.wav --backbones siren finer relu-pe \\
        --variants base= int="--sampling int" --seconds 60 --section convergence_sampling
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import ROOT, write_section


def parse_variant(text: str) -> tuple[str, str]:
    """``name=flags`` → ``(name, flags)``."""
    name, separator, flags = text.partition("=")
    if not separator or not name:
        raise argparse.ArgumentTypeError(f"a variant is NAME=FLAGS (FLAGS may be empty), got {text!r}")
    return name, flags


def value_at(curve: list[tuple[float, float]], seconds: float) -> tuple[float, bool]:
    """The curve's PSNR at ``seconds`` (linear between the evaluations around it) and whether evaluations lie on
    both sides of it (False: the run's last value when it ended earlier, or its first when that came later)."""
    if curve[-1][0] < seconds:
        return curve[-1][1], False
    previous = None
    for time_, value in curve:
        if time_ >= seconds:
            if previous is None:
                return value, time_ == seconds
            (t0, v0) = previous
            return v0 + (value - v0) * (seconds - t0) / (time_ - t0), True
        previous = (time_, value)
    return curve[-1][1], True


def crossing_time(curve: list[tuple[float, float]], target: float) -> float | None:
    """First time the curve ``[(seconds, psnr), ...]`` reaches ``target``, interpolated linearly between
    the evaluation below and the one at or above it (the first evaluation's time if it is already above)."""
    previous = None
    for seconds, value in curve:
        if value >= target:
            if previous is None or previous[1] >= value:
                return seconds
            (s0, v0) = previous
            return s0 + (seconds - s0) * (target - v0) / (value - v0)
        previous = (seconds, value)
    return None


def run_cell(signal: Path, backbone: str, variant_flags: str, common_flags: str, seconds: float, eval_every: int,
             out: Path) -> dict:
    """One whole ``inrkit fit`` process; returns its curve, final metrics, peak RSS (MB) and wall time (s)."""
    command = [sys.executable, "-m", "inrkit", "fit", str(signal), "--model", backbone, "--seconds", str(seconds),
               "--eval-every", str(eval_every), "--out", str(out), "--overwrite", "--quiet",
               *shlex.split(common_flags), *shlex.split(variant_flags)]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS
    errors = process.stderr.read() if process.stderr else ""
    wall = time.perf_counter() - began
    if status != 0:
        lines = errors.strip().splitlines() or ["(no message)"]
        return {"error": lines[-1], "wall": wall}
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    curve = [(r.get("train_seconds", r["elapsed"]), r["psnr"]) for r in records if r.get("psnr") is not None]
    final = records[-1]
    return {"curve": curve, "psnr": final["psnr"], "steps": final["step"], "train_seconds": curve[-1][0],
            "ms_per_step": final.get("ms_per_step"), "peak_mb": usage.ru_maxrss / 1024, "wall": wall}


def summarise(results: list[dict], variants: list[str], target: float, budget: float) -> list[str]:
    """Markdown rows: one per (signal kind, backbone, variant), means over the signals of that kind."""
    for r in results:
        if "error" not in r:
            r["psnr_at_budget"], r["trained_budget"] = value_at(r["curve"], budget)
    rows = []
    baseline = variants[0]
    for kind in ("image", "audio"):
        backbones = list(dict.fromkeys(r["backbone"] for r in results if r["kind"] == kind))
        for backbone in backbones:
            base = {r["signal"]: r for r in results
                    if (r["kind"], r["backbone"], r["variant"]) == (kind, backbone, baseline) and "error" not in r}
            for variant in variants:
                cells = [r for r in results if (r["kind"], r["backbone"], r["variant"]) == (kind, backbone, variant)]
                ok = [r for r in cells if "error" not in r]
                if not cells:
                    continue
                if not ok:
                    rows.append(f"| {kind} | {backbone} | {variant} | failed: {cells[0]['error']} |||||||")
                    continue
                psnr = np.mean([r["psnr_at_budget"] for r in ok])
                short = "" if all(r["trained_budget"] for r in ok) else "*"
                delta = psnr - np.mean([base[r["signal"]]["psnr_at_budget"] for r in ok]) \
                    if all(r["signal"] in base for r in ok) else float("nan")
                to_target = [crossing_time(r["curve"], target) for r in ok]
                reached = [t for t in to_target if t is not None]
                target_text = f"{np.mean(reached):.1f} ({len(reached)}/{len(ok)})" if reached else f"— (0/{len(ok)})"
                saved = []
                for r in ok:
                    if r["signal"] in base:
                        t = crossing_time(r["curve"], base[r["signal"]]["psnr_at_budget"])
                        saved.append(None if t is None else 1.0 - t / budget)
                reached_base = [s for s in saved if s is not None]
                saved_text = (f"{100 * np.mean(reached_base):+.0f} % ({len(reached_base)}/{len(saved)})"
                              if reached_base else f"— (0/{len(saved)})")
                ms = np.mean([r["ms_per_step"] for r in ok if r["ms_per_step"] is not None])
                steps, peak = np.mean([r["steps"] for r in ok]), max(r["peak_mb"] for r in ok)
                rows.append(f"| {kind} | {backbone} | {variant} | {psnr:.2f}{short} | {delta:+.2f} | {target_text} | "
                            f"{saved_text} | {steps:.0f} | {ms:.1f} | {peak:.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", nargs="*", type=Path, default=[])
    parser.add_argument("--audio", nargs="*", type=Path, default=[])
    parser.add_argument("--backbones", nargs="+", default=["siren", "finer", "relu-pe"])
    parser.add_argument("--variants", nargs="+", type=parse_variant, default=[("base", "")],
                        help="NAME=FLAGS, the first is the baseline (e.g. base= int='--sampling int')")
    parser.add_argument("--baseline", help="the variant the others are compared with (default: the first given)")
    parser.add_argument("--flags", default="", help="fit flags common to every cell")
    parser.add_argument("--seconds", type=float, default=60.0, help="training time at which the PSNR is compared")
    parser.add_argument("--wall-factor", type=float, default=1.5,
                        help="each run's wall-clock budget (inrkit fit --seconds) is this times --seconds")
    parser.add_argument("--target-db", type=float, default=30.0)
    parser.add_argument("--eval-every", type=int, default=100, help="images: steps between evaluations")
    parser.add_argument("--audio-eval-every", type=int, default=100, help="audio: steps between evaluations")
    parser.add_argument("--work", type=Path, default=Path("/tmp/inrkit-bench-convergence"))
    parser.add_argument("--update", action="store_true", help="keep the other cells' results from --work/results.json")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rewrite the section from --work/results.json (with --notes)")
    parser.add_argument("--section", default="convergence")
    parser.add_argument("--title", default="Convergence speed")
    parser.add_argument("--notes", default="", help="a paragraph added under the table (what else ran, findings)")
    args = parser.parse_args()
    if not args.images and not args.audio and not args.report_only:
        parser.error("give --images and/or --audio")

    args.work.mkdir(parents=True, exist_ok=True)
    store = args.work / "results.json"
    results = json.loads(store.read_text()) if (args.update or args.report_only) and store.is_file() else []
    variants = dict(args.variants)
    signals = [] if args.report_only else [(path, "image", args.eval_every) for path in args.images] + \
        [(path, "audio", args.audio_eval_every) for path in args.audio]
    for path, kind, eval_every in signals:
        for backbone in args.backbones:
            for variant, flags in variants.items():
                out = args.work / f"{path.stem}-{backbone}-{variant}"
                cell = run_cell(path, backbone, flags, args.flags, args.seconds * args.wall_factor, eval_every, out)
                cell.update({"signal": path.name, "kind": kind, "backbone": backbone, "variant": variant,
                             "flags": flags})
                results = [r for r in results if (r["signal"], r["backbone"], r["variant"]) != (path.name, backbone, variant)]
                results.append(cell)
                store.write_text(json.dumps(results, indent=1))
                summary = cell.get("error") or f"{cell['psnr']:.2f} dB, {cell['steps']} steps, {cell['wall']:.0f} s"
                print(f"{path.name:14s} {backbone:8s} {variant:8s} {summary}", flush=True)

    order = list(dict.fromkeys([args.baseline or next(iter(variants)), *variants, *(r["variant"] for r in results)]))
    flags_of = {r["variant"]: r["flags"] for r in results}
    flag_text = "; ".join(f"`{name}`: `{flags_of.get(name) or '(none)'}`" for name in order)
    image_names = sorted({r["signal"] for r in results if r["kind"] == "image"})
    audio_names = sorted({r["signal"] for r in results if r["kind"] == "audio"})
    arguments = sys.argv[1:]
    shown = [a for i, a in enumerate(arguments) if a != "--notes" and (i == 0 or arguments[i - 1] != "--notes")]
    lines = [
        f"## {args.title} (`scripts/bench_convergence.py`)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU threads, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}.",
        f"Command: `python scripts/bench_convergence.py {' '.join(shlex.quote(a) for a in shown)}`",
        "",
        f"Protocol: images {', '.join(image_names) or 'none'} at full size; audio {', '.join(audio_names) or 'none'} at "
        f"full length. Every cell is one `inrkit fit` process with `--seconds {args.seconds * args.wall_factor:g}` (its "
        f"wall-clock budget, periodic evaluations inside it: every {args.eval_every} steps for images, "
        f"{args.audio_eval_every} for audio) and default flags otherwise{f' plus `{args.flags}`' if args.flags else ''}; "
        f"all times are training seconds (`train_seconds` of metrics.jsonl: sample selection included, evaluations "
        f"excluded). Variants: {flag_text}. `PSNR`: at {args.seconds:g} s of training, interpolated between evaluations "
        f"(mean over signals; *: no evaluations on both sides of it, the nearest value), `Δ` against `{order[0]}`; "
        f"`t→{args.target_db:g} dB`: "
        "training seconds (evaluations excluded) to the first crossing, interpolated between evaluations, mean over "
        f"the signals that reached it (reached/total); `saved`: 1 − (time to reach `{order[0]}`'s PSNR at "
        f"{args.seconds:g} s) / {args.seconds:g} s, mean over the signals that reached it; `steps` and `ms/step` are "
        "the whole run's; `ms/step` includes sample selection.",
        "",
        f"| signal | backbone | variant | PSNR | Δ | t→{args.target_db:g} dB (s) | saved | steps | ms/step | peak MB |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *summarise(results, order, args.target_db, args.seconds),
    ]
    if args.notes:
        lines += ["", args.notes]
    write_section("\n".join(lines), args.section)


if __name__ == "__main__":
    main()
