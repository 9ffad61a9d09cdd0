"""The prepared GPU check (issue 12 §6): everything in inrkit that needs CUDA, in one run of at most 8 minutes.

No protocol: a check of the CUDA code paths; its NeRF part is a 2-minute smoke run, not ``ingp-nerf-synthetic``'s
5 minutes per scene (``scripts/bench_nerf.py --scale full``).

    python scripts/gpu_check.py --out gpu-check          # full check, about 6 minutes on one GPU
    python scripts/gpu_check.py --quick --out gpu-check  # every part, shortened (about 2 minutes)
    python scripts/gpu_check.py --only compare --out gpu-check   # rerun one part (repeat --only for more)

Parts, run in this order, each guarded (a failure is recorded as one line and the check moves on):

1. ``info``: device, torch and CUDA versions, whether ``tinycudann`` imports.
2. ``tests``: the tests that skip without CUDA (found by their ``skipif`` markers in tests/), run with
   ``python -m pytest -q -m "not slow"`` in a subprocess with a time limit; pass/fail/skip counts.
3. ``compare``: the compiled grid path (backend "fast" on CUDA, torch.compile of the reference) and, when
   tinycudann imports, tcnn against the PyTorch reference on random inputs of fixed and of varying batch
   sizes (as NeRF batches vary): largest error relative to the output scale, compile time and new dynamo
   graphs per new size (the compiled path is specialised on the batch size).
4. ``amp``: ``hashgrid`` (ReLU MLP) image fit with and without ``amp=True`` (bfloat16), same steps: PSNR.
5. ``speed``: training steps/s of the ``hashgrid`` preset at 2^18 pixels per step, each backend.
6. ``nerf``: a 2-minute ``instant-ngp`` NeRF on the lego train views (every 8th view held out), PSNR/steps/wall.
7. ``codec``: the latent image codec trained on the GPU (``compress(..., codec="latent", device="cuda")``, 0.3 bpp,
   60 s; the file is coded and decoded on the CPU): steps/s against about 11 on one core of a fast CPU, bpp, PSNR.

Images: ``<shared>/data/image/kodak/kodim01.png`` when present, else a generated 768x512 image.
Data folder ``<shared>``: ``--shared``, else ``$INRKIT_SHARED``, else ``../shared`` or ``./shared`` of the checkout.
A global time guard skips parts that would not finish within ``--budget`` seconds (480).

Results: the ``gpu-check`` section of BENCHMARKS.md, and under ``--out DIR``: ``gpu_check.json`` (rewritten
after every part, so a killed run keeps what it did) and ``gpu_check.md``. Without CUDA the script exits at
once with status 2 (``--allow-cpu`` runs the parts on the CPU, for developing this script; it then leaves
BENCHMARKS.md alone).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import platform
import re
import signal as signals
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
sys.path[:0] = [str(SCRIPTS), str(ROOT)]  # bench_common & co., and this checkout's inrkit

PARTS = ("info", "tests", "compare", "amp", "speed", "nerf", "codec")
SECTION = "gpu-check"
# per part: (seconds needed to start it, hard limit in seconds), full run / --quick
NEEDS = {"info": (0, 60), "tests": (30, 150), "compare": (30, 120), "amp": (20, 90), "speed": (30, 150), "nerf": (60, 240),
         "codec": (80, 150)}
QUICK_NEEDS = {"info": (0, 60), "tests": (30, 120), "compare": (20, 60), "amp": (10, 40), "speed": (15, 60), "nerf": (45, 100),
               "codec": (30, 60)}
CPU_CODEC_STEPS_PER_S = 11.0  # BENCHMARKS.md's latent-codec table: about 6,600 steps in 600 s on one core


class PartTimeout(BaseException):
    """Raised inside a part when its hard time limit is reached (a BaseException: the parts' own
    ``except Exception`` clauses for optional pieces do not swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`PartTimeout` in the main thread after ``seconds`` (SIGALRM; checked between Python bytecodes)."""
    def expire(signum: int, frame: Any) -> None:
        raise PartTimeout(f"time limit of {seconds:.0f} s reached")

    previous = signals.signal(signals.SIGALRM, expire)
    signals.setitimer(signals.ITIMER_REAL, max(seconds, 1.0))
    try:
        yield
    finally:
        signals.setitimer(signals.ITIMER_REAL, 0)
        signals.signal(signals.SIGALRM, previous)


class Check:
    """Runs the parts, keeps their results and writes them out after each part."""

    def __init__(self, args: argparse.Namespace, device: Any) -> None:
        self.args = args
        self.device = device
        self.start = time.monotonic()
        self.results: dict[str, Any] = {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "argv": sys.argv[1:],
                                        "device_type": device.type, "budget_s": args.budget, "parts": {}}
        self.out = Path(args.out) if args.out else None
        if self.out:
            self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        self.partial: dict[str, Any] = {}  # the running part's record so far, kept when it fails or times out

    def left(self) -> float:
        return self.args.budget - (time.monotonic() - self.start)

    def run(self, name: str, part: Callable[[Check], dict[str, Any]]) -> None:
        need, limit = (QUICK_NEEDS if self.args.quick else NEEDS)[name]
        left = self.left()
        if left < need:
            record: dict[str, Any] = {"status": "skipped", "error": f"time guard: {left:.0f} s left of the budget, "
                                                                    f"part needs {need} s"}
        else:
            print(f"== {name} ({left:.0f} s left)", flush=True)
            begin = time.monotonic()
            self.partial = {}
            try:
                with time_limit(min(limit, left - 2)):
                    record = {"status": "ok", **part(self)}
            except (Exception, PartTimeout) as error:
                message = f"{type(error).__name__}: {error}".strip().splitlines()[0][:400]
                record = {**self.partial, "status": "failed", "error": message, "traceback": traceback.format_exc()[-3000:]}
            record["seconds"] = round(time.monotonic() - begin, 1)
        self.results["parts"][name] = record
        summary = record.get("summary") or record.get("error", "")
        print(f"== {name}: {record['status']}{' — ' + summary if summary else ''}", flush=True)
        self.save()

    def save(self) -> None:
        self.results["elapsed_s"] = round(time.monotonic() - self.start, 1)
        markdown = render_markdown(self.results)
        if self.out:
            (self.out / "gpu_check.json").write_text(json.dumps(self.results, indent=2, default=str))
            (self.out / "gpu_check.md").write_text(markdown + "\n")
        if self.device.type == "cuda" and not self.args.no_update:
            from bench_common import write_section

            write_section(markdown, SECTION)


# -- helpers -------------------------------------------------------------------------------------------------------

def shared_dir(explicit: str | None) -> Path | None:
    """The shared data folder: ``--shared``, ``$INRKIT_SHARED``, ``../shared`` or ``./shared`` of the checkout."""
    candidates = [explicit, os.environ.get("INRKIT_SHARED"), ROOT.parent / "shared", ROOT / "shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "data").is_dir():
            return Path(candidate)
    return None


def test_image(check: Check) -> tuple[Path, str]:
    """kodim01.png from the shared data, else a generated 768x512 image (edges, gradients, fine stripes)."""
    shared = shared_dir(check.args.shared)
    if shared and (shared / "data/image/kodak/kodim01.png").is_file():
        return shared / "data/image/kodak/kodim01.png", "kodim01.png"
    path = check.work / "generated.png"
    if not path.exists():
        import numpy as np
        from PIL import Image

        y, x = np.mgrid[0:512, 0:768].astype(np.float32)
        rgb = np.stack([0.5 + 0.5 * np.sin(x / 7.0 + 3 * np.sin(y / 53.0)),
                        ((x // 48 + y // 48) % 2) * 0.6 + 0.2 * (y / 512),
                        0.5 + 0.5 * np.cos(np.hypot(x - 384, y - 256) / 4.0) * np.exp(-np.hypot(x - 384, y - 256) / 300)],
                       axis=-1)
        Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).save(path)
    return path, "generated 768x512 image"


def synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cuda_tests(tests: Path) -> list[str]:
    """Node ids of the tests that skip without CUDA: decorated with a ``skipif`` (directly or through a module-level
    marker such as ``needs_cuda``) whose condition mentions ``cuda`` or ``tcnn_available``."""
    def needs_cuda(source: str) -> bool:
        return "skipif" in source and ("cuda" in source or "tcnn_available" in source)

    ids = []
    for path in sorted(tests.glob("test_*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        markers = {target.id for node in tree.body if isinstance(node, ast.Assign)
                   and needs_cuda(ast.get_source_segment(text, node.value) or "")
                   for target in node.targets if isinstance(target, ast.Name)}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
                for decorator in node.decorator_list:
                    source = ast.get_source_segment(text, decorator) or ""
                    if needs_cuda(source) or (isinstance(decorator, ast.Name) and decorator.id in markers):
                        ids.append(f"{path.relative_to(ROOT)}::{node.name}")
                        break
    return ids


def relative_error(actual: Any, expected: Any) -> float:
    """Largest absolute error over the reference's largest magnitude."""
    scale = expected.abs().max().item()
    return (actual.float() - expected.float()).abs().max().item() / max(scale, 1e-30)


def dynamo_graphs() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


# -- parts -----------------------------------------------------------------------------------------------------------

def part_info(check: Check) -> dict[str, Any]:
    import torch

    from inrkit.backends import tcnn_available

    record: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                              "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    if check.device.type == "cuda":
        properties = torch.cuda.get_device_properties(check.device)
        record |= {"device": torch.cuda.get_device_name(check.device), "capability": f"{properties.major}.{properties.minor}",
                   "memory_gib": round(properties.total_memory / 2**30, 1), "device_count": torch.cuda.device_count()}
    else:
        record["device"] = f"CPU ({platform.machine()}, {os.cpu_count()} cores)"
    try:
        import tinycudann

        record["tinycudann"] = f"imports ({getattr(tinycudann, '__version__', 'version unknown')})"
    except Exception as error:
        record["tinycudann"] = f"does not import: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    record["tcnn_available"] = tcnn_available()
    try:
        import triton

        record["triton"] = triton.__version__
    except Exception:
        record["triton"] = None
    record["summary"] = (f"{record['device']}, torch {record['torch']}, CUDA {record['cuda']}, "
                         f"tinycudann {record['tinycudann']}")
    print(json.dumps(record, indent=1), flush=True)
    return record


def part_tests(check: Check) -> dict[str, Any]:
    ids = cuda_tests(ROOT / "tests")
    if not ids:
        raise RuntimeError("no CUDA tests found in tests/")
    limit = max(10.0, min((QUICK_NEEDS if check.args.quick else NEEDS)["tests"][1], check.left()) - 10)
    command = [sys.executable, "-m", "pytest", "-q", "-m", "not slow", "-rfEs", "-p", "no:cacheprovider", *ids]
    print(" ".join(command), flush=True)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=limit, env=environment)
        output, returncode = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        raise RuntimeError(f"pytest did not finish within {limit:.0f} s; last output: {output[-300:]!r}") from None
    print(output[-4000:], flush=True)
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)", output)}
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.M)
    skipped = re.findall(r"^SKIPPED .*$", output, flags=re.M)
    summary = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "no summary line"
    record = {"tests": ids, "returncode": returncode, "counts": counts, "failed": failed, "skipped": skipped,
              "output_tail": output[-2000:], "summary": summary}
    if returncode not in (0, 5):
        record["summary"] += f" (pytest exit {returncode})"
    return record


def part_compare(check: Check) -> dict[str, Any]:
    import torch
    from bench_hashgrid import GRIDS

    from inrkit.backends import compiled, tcnn_available
    from inrkit.backends.grid_reference import grid_forward_reference
    from inrkit.encodings import GridEncoding

    device, quick = check.device, check.args.quick
    soft_limit = time.monotonic() + (QUICK_NEEDS if quick else NEEDS)["compare"][1] * 0.75
    generator = torch.Generator().manual_seed(0)
    fixed = [1 << 14, 1 << 18] if not quick else [1 << 14]
    # NeRF's adaptive ray batch: a different number of samples each step, around 2^18
    varying = [int(n) for n in torch.randint(200_000, 300_000, (3 if quick else 10,), generator=generator)]
    if device.type == "cpu":  # --allow-cpu: small sizes only
        fixed, varying = [n // 64 for n in fixed], [n // 64 for n in varying]
    dynamo = torch._dynamo.config
    record: dict[str, Any] = {"recompile_limit": getattr(dynamo, "recompile_limit", getattr(dynamo, "cache_size_limit", None)),
                              "compiled": [], "tcnn": []}
    check.partial = record
    torch.manual_seed(0)
    grid = GridEncoding(3, GRIDS[3]).to(device)
    with torch.no_grad():
        grid.params.uniform_(-1.0, 1.0)  # a trained scale: a fresh grid's U(±1e-4) would make any error look small
    worst_forward = worst_grad = 0.0
    for n in [*fixed, *varying]:
        if time.monotonic() > soft_limit:
            record["stopped"] = f"soft time limit reached before size {n}"
            break
        x = torch.rand(n, 3, device=device)
        upstream = torch.randn(n, grid.n_output_dims, device=device)
        reference = grid_forward_reference(x, grid.params, grid.spec)
        (grad_reference,) = torch.autograd.grad(reference, grid.params, upstream)
        graphs = dynamo_graphs()
        synchronize(device)
        begin = time.perf_counter()
        result = compiled.grid_forward(x, grid.params, grid.spec)
        (grad_result,) = torch.autograd.grad(result, grid.params, upstream)
        synchronize(device)
        first = time.perf_counter() - begin
        begin = time.perf_counter()
        again = compiled.grid_forward(x, grid.params, grid.spec)
        torch.autograd.grad(again, grid.params, upstream)
        synchronize(device)
        second = time.perf_counter() - begin
        row = {"n": n, "varying": n in varying, "forward_rel_error": relative_error(result, reference),
               "grad_rel_error": relative_error(grad_result, grad_reference), "first_call_s": round(first, 3),
               "second_call_s": round(second, 4), "new_graphs": dynamo_graphs() - graphs}
        worst_forward, worst_grad = max(worst_forward, row["forward_rel_error"]), max(worst_grad, row["grad_rel_error"])
        record["compiled"].append(row)
        print(json.dumps(row), flush=True)
    new_sizes = [r for r in record["compiled"] if r["varying"]]
    record["recompiles_on_varying_sizes"] = sum(r["new_graphs"] > 0 for r in new_sizes)
    record["compile_s_per_new_size"] = (round(sum(r["first_call_s"] for r in new_sizes) / len(new_sizes), 2)
                                        if new_sizes else None)
    summary = (f"compiled: forward error {worst_forward:.1e}, table gradient {worst_grad:.1e} of scale; "
               f"{record['recompiles_on_varying_sizes']}/{len(new_sizes)} new sizes compiled a new graph "
               f"({record['compile_s_per_new_size']} s first call each, dynamo recompile limit {record['recompile_limit']})")

    if tcnn_available() and device.type == "cuda":
        from inrkit.fields import build_field
        from inrkit.fields.tcnn import TcnnField
        from inrkit.fields.tcnn_layout import tcnn_parameters

        try:
            import tinycudann

            field = build_field("hashgrid", 2, 3)
            with torch.no_grad():
                field.encoding.params.uniform_(-1.0, 1.0)
            field = field.to(device)
            field.encoding.backend = "torch"
            flat = tcnn_parameters(field).to(device)
            n_network = flat.numel() - field.encoding.n_params
            encoding = tinycudann.Encoding(field.n_input_dims, dict(field.config["encoding"]))
            with torch.no_grad():
                encoding.params.copy_(flat[n_network:])
            tcnn_field = TcnnField(field)
            worst_encoding = worst_field = 0.0
            for n in [*fixed, *varying[:3]]:
                x = torch.rand(n, 2, device=device) * 2 - 1
                unit = (x + 1.0) * 0.5  # tcnn's encodings take [0, 1]
                with torch.no_grad():
                    synchronize(device)
                    begin = time.perf_counter()
                    row = {"n": n, "encoding_rel_error": relative_error(encoding(unit), field.encoding(unit)),
                           "field_rel_error": relative_error(tcnn_field(x), field(x))}
                    synchronize(device)
                    row["call_s"] = round(time.perf_counter() - begin, 4)
                worst_encoding = max(worst_encoding, row["encoding_rel_error"])
                worst_field = max(worst_field, row["field_rel_error"])
                record["tcnn"].append(row)
                print(json.dumps(row), flush=True)
            summary += f"; tcnn: encoding error {worst_encoding:.1e}, field {worst_field:.1e} of scale (fp16)"
        except Exception as error:
            record["tcnn_error"] = f"{type(error).__name__}: {error}".splitlines()[0][:400]
            summary += f"; tcnn failed: {record['tcnn_error']}"
    else:
        summary += "; tcnn not available"
    record["summary"] = summary
    return record


def part_amp(check: Check) -> dict[str, Any]:
    import inrkit

    image, name = test_image(check)
    steps = 100 if check.args.quick else 300
    batch = 1 << 18 if check.device.type == "cuda" else 1 << 12
    record: dict[str, Any] = {"image": name, "steps": steps, "batch_size": batch, "backend": "torch", "runs": {}}
    check.partial = record
    for label, amp in (("fp32", False), ("bf16", True)):
        run = inrkit.fit(image, model="hashgrid", steps=steps, batch_size=batch, amp=amp, backend="torch",
                         device=check.device.type, eval_every=0, seed=0, quiet=True, out=check.work / f"amp-{label}",
                         overwrite=True)
        record["runs"][label] = {k: run.metrics.get(k) for k in ("psnr", "ms_per_step", "elapsed", "step")}
        print(label, json.dumps(record["runs"][label]), flush=True)
    fp32, bf16 = record["runs"]["fp32"]["psnr"], record["runs"]["bf16"]["psnr"]
    record["psnr_difference_db"] = bf16 - fp32
    record["summary"] = (f"hashgrid on {name}, {steps} steps: fp32 {fp32:.2f} dB, bf16 {bf16:.2f} dB "
                         f"({bf16 - fp32:+.2f} dB); ms/step {record['runs']['fp32']['ms_per_step']:.1f} vs "
                         f"{record['runs']['bf16']['ms_per_step']:.1f}")
    return record


def part_speed(check: Check) -> dict[str, Any]:
    from bench_hashgrid import train_steps_per_second

    from inrkit.backends import tcnn_available
    from inrkit.signals import ImageSignal

    image, name = test_image(check)
    signal = ImageSignal.from_file(image).to(check.device)
    steps = (50 if check.args.quick else 200) if check.device.type == "cuda" else 5
    batch = 1 << 18 if check.device.type == "cuda" else 1 << 12
    backends = ("torch", "fast", *(("tcnn",) if tcnn_available() and check.device.type == "cuda" else ()))
    record: dict[str, Any] = {"image": name, "steps": steps, "batch_size": batch, "steps_per_s": {}, "errors": {}}
    check.partial = record
    for backend in backends:
        try:
            warmup = 20 if check.device.type == "cuda" else 2
            record["steps_per_s"][backend] = round(train_steps_per_second(signal, backend, steps, warmup, batch), 1)
        except Exception as error:
            record["errors"][backend] = f"{type(error).__name__}: {error}".splitlines()[0][:400]
        print(backend, record["steps_per_s"].get(backend, record["errors"].get(backend)), flush=True)
    parts = [f"{b} {s:.0f}" for b, s in record["steps_per_s"].items()] + [f"{b} failed" for b in record["errors"]]
    record["summary"] = f"steps/s at {batch} pixels/step on {name}: " + ", ".join(parts)
    if record["errors"] and not record["steps_per_s"]:
        raise RuntimeError("every backend failed: " + "; ".join(f"{b}: {e}" for b, e in record["errors"].items()))
    return record


def part_nerf(check: Check) -> dict[str, Any]:
    shared = shared_dir(check.args.shared)
    scene = Path(check.args.scene) if check.args.scene else shared / "data/nerf/lego" if shared else None
    if scene is None or not (scene / "transforms_train.json").is_file():
        return {"status": "skipped", "summary": f"no lego scene (looked in {scene or 'no shared data folder'})"}
    from bench_nerf import run

    seconds = 30.0 if check.args.quick else 120.0
    seconds = min(seconds, check.left() - 60)  # setup, evaluation (≤ 0.2·S) and the rendering timing after training
    if seconds < 20:
        return {"status": "skipped", "summary": f"time guard: {check.left():.0f} s left, too little for a NeRF"}
    preset = "instant-ngp" if check.device.type == "cuda" else "instant-ngp-cpu"
    begin = time.perf_counter()
    record = run(scene, preset, seconds, check.device.type, check.work / "nerf", seed=0)
    record["wall_s"] = round(time.perf_counter() - begin, 1)
    record["command"] = "python scripts/gpu_check.py " + " ".join(sys.argv[1:])
    record["scene"] = str(scene)
    record["holdout"] = 8 if not (scene / "transforms_test.json").is_file() else None  # NerfOptions' default
    record["summary"] = (f"{scene.name} ({record['n_train']} train / {record['n_test']} test views, {record['size']}), "
                         f"{seconds:.0f} s budget: test PSNR {record['psnr']:.2f} dB, SSIM {record['ssim']:.4f}, "
                         f"{record['step']} steps, {record['wall_s']:.0f} s wall, {record['render_rays_per_s']:,.0f} rays/s")
    return record


def part_codec(check: Check) -> dict[str, Any]:
    from inrkit.export import compress, load

    image, name = test_image(check)
    seconds = (20.0 if check.args.quick else 60.0) if check.device.type == "cuda" else 5.0
    out = check.work / "codec.inrz"
    report = compress(image, out, codec="latent", target_bpp=0.3, seconds=seconds, device=check.device.type, quiet=True)
    decoded = load(out)  # on the CPU, as every reader
    record = {"image": name, "seconds": seconds, "steps": report.steps, "steps_per_s": round(report.steps / seconds, 1),
              "bpp": round(report.bpp, 4), "psnr": round(report.psnr, 2), "lambda": report.lmbda,
              "encode_s": round(report.encode_seconds, 1), "decoded_psnr": decoded.metrics["psnr"]}
    record["summary"] = (f"latent codec on {name}, 0.3 bpp target, {seconds:.0f} s on {check.device.type}: "
                         f"{report.steps} steps ({record['steps_per_s']:.0f}/s, one fast CPU core about "
                         f"{CPU_CODEC_STEPS_PER_S:.0f}/s), {report.bpp:.3f} bpp at {report.psnr:.2f} dB, "
                         f"{report.encode_seconds:.0f} s in all")
    return record


PART_FUNCTIONS: dict[str, Callable[[Check], dict[str, Any]]] = {
    "info": part_info, "tests": part_tests, "compare": part_compare, "amp": part_amp, "speed": part_speed,
    "nerf": part_nerf, "codec": part_codec}


# -- report ----------------------------------------------------------------------------------------------------------

def render_markdown(results: dict[str, Any]) -> str:
    """The BENCHMARKS.md section: one line per part, then the tables of the parts that ran."""
    parts = results["parts"]
    info = parts.get("info", {})
    lines = ["## GPU check (`python scripts/gpu_check.py`)", "",
             f"Run {results['started']}, {results.get('elapsed_s', 0):.0f} s of a {results['budget_s']:.0f} s budget"
             + (f", on {info['device']}, torch {info['torch']}, CUDA {info['cuda']}" if info.get("status") == "ok" else "")
             + (f" (`{' '.join(results['argv'])}`)" if results["argv"] else "") + ".", "",
             "| part | status | result | seconds |", "|---|---|---|---:|"]
    for name in PARTS:
        if name in parts:
            record = parts[name]
            text = str(record.get("summary") or record.get("error", "")).replace("|", "/")
            lines.append(f"| {name} | {record['status']} | {text} | {record.get('seconds', 0):.0f} |")
    compare = parts.get("compare", {})
    if compare.get("compiled"):
        lines += ["", "Compiled grid path (3-D instant-ngp grid, table U(±1)) against the reference; relative to the "
                  "reference's largest magnitude:", "",
                  "| points | varying | forward error | table-gradient error | first call (s) | second call (s) | new graphs |",
                  "|---:|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['n']:,} | {'yes' if r['varying'] else 'no'} | {r['forward_rel_error']:.1e} | "
                  f"{r['grad_rel_error']:.1e} | {r['first_call_s']:.2f} | {r['second_call_s']:.4f} | {r['new_graphs']} |"
                  for r in compare["compiled"]]
    if compare.get("tcnn"):
        lines += ["", "tcnn against the reference (2-D `hashgrid` field, same parameters):", "",
                  "| points | encoding error | field error |", "|---:|---:|---:|"]
        lines += [f"| {r['n']:,} | {r['encoding_rel_error']:.1e} | {r['field_rel_error']:.1e} |" for r in compare["tcnn"]]
    tests = parts.get("tests", {})
    if tests.get("failed"):
        lines += ["", "Failed tests: " + ", ".join(f"`{t}`" for t in tests["failed"])]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", choices=PARTS, help="run only this part (repeatable)")
    parser.add_argument("--quick", action="store_true", help="shortened parts (fewer sizes and steps, 30 s NeRF)")
    parser.add_argument("--out", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--budget", type=float, default=480.0, help="global time guard in seconds (default 480)")
    parser.add_argument("--shared", help="shared data folder (holding data/image/kodak, data/nerf/lego)")
    parser.add_argument("--scene", help="NeRF scene folder (default: <shared>/data/nerf/lego)")
    parser.add_argument("--no-update", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU (developing this script only)")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available() and not args.allow_cpu:
        print("gpu_check: no CUDA device (torch.cuda.is_available() is False); run this on a GPU machine", file=sys.stderr)
        return 2
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check = Check(args, device)
    for name in PARTS:
        if args.only is None or name in args.only:
            check.run(name, PART_FUNCTIONS[name])
    check.save()
    print(render_markdown(check.results))
    statuses = [record["status"] for record in check.results["parts"].values()]
    return 1 if "failed" in statuses else 0


if __name__ == "__main__":
    sys.exit(main())
