"""Fuzz the ``.inrz`` decoder: decode **and use** every input, classify it, print a summary.

No protocol: a fuzzer of the ``.inrz`` decoder, not a benchmark of fits.

The harness (:func:`run_one`) writes the input to a file and runs what a user would: ``inrkit.export.load``
(reading, header checks, bounded decoding), a forward pass on a few coordinates (a radiance field renders
a few rays), the ``inrkit info`` printing path (``inrkit.cli.main(["info", FILE])`` with ``INRKIT_DEBUG``
set so that any internal error surfaces as an exception) and a small render (an image at 8x8 through
``inrkit.render_image``; other kinds evaluate their field). Every input is classified:

* ``decoded`` — it loaded and every use worked;
* ``refused`` — inrkit refused it with its own error (:class:`~inrkit.errors.InrkitError`, one line);
* ``failure`` — any other exception, a multi-line message, an input that uses more than ``--time-limit``
  seconds of CPU time (a SIGPROF timer interrupts it where Python can; the CPU time is checked too; CPU
  time, not wall-clock time, so that a busy machine does not fail inputs) or one that runs out of the
  ``--memory-limit`` (``RLIMIT_AS`` above the process's size at start). Failures are saved to ``--crashes``.

Inputs come from structure-aware mutators (:class:`Mutator`) applied to seed files that the script makes
itself (:func:`make_seeds`: tiny fields of several presets fitted for a few steps, a radiance field, each
compressed with several coders, bit widths and schemes, and the 8×8 image coded with the latent codec, format
version 4, whose ``latent`` section and stream the mutators edit like a tensor's): they edit header JSON values (numbers at and
beyond their limits, wrong types, deleted keys, values crossed over from other seeds), tensor-table
entries (coder, model parameters, bits, storage), and payload streams (bit flips, cut, padded, zeroed or
swapped between tensors), then re-pack the file with valid checksums so that the deeper checks are
reached; a few raw byte edits keep the container checks exercised.

Engines: ``atheris`` (coverage-guided: libFuzzer's search, instrumenting ``inrkit``, with the mutators above
as its custom mutator, mixed with libFuzzer's own byte mutations) and ``mutate`` (the same mutators from a
seeded random generator, no coverage guidance: deterministic, and what the test suite runs).

Usage::

    python scripts/fuzz_inrz.py --engine atheris --inputs 100000 --benchmarks BENCHMARKS.md
    python scripts/fuzz_inrz.py --engine mutate --inputs 300 --seed 0
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# -- seeds --------------------------------------------------------------------------------------------
IMAGE_PRESETS = {  # tiny fields: seeds of a few KB, so that mutated inputs stay cheap
    "siren": {"width": 16, "depth": 2},
    "wire": {"width": 16, "depth": 2},
    "ffn": {"width": 16, "depth": 2},
    "spder": {"width": 16, "depth": 2},
    "sl2a": {"width": 16, "depth": 2},
    "relu-pe": {"width": 16, "depth": 2},
    "hashgrid": {"n_levels": 4, "log2_hashmap_size": 8, "base_resolution": 4},
    "hashgrid-siren": {"n_levels": 4, "log2_hashmap_size": 8, "base_resolution": 4, "width": 16, "depth": 1},
}
COMPRESSIONS = [  # (coder, bits, scheme)
    ("range", 8, "tensor"), ("range", 2, "channel"), ("range", 16, "tensor"), ("auto", 5, "tensor"),
    ("lzma", 8, "channel"), ("zlib", 4, "tensor"), ("raw", 12, "tensor"),
]


def make_seeds(folder: str | Path, steps: int = 3, nerf: bool = True, quick: bool = False) -> list[Path]:
    """Fit tiny fields (image presets, an audio hash grid, a radiance field) for ``steps`` steps and compress
    each with several coders, bit widths and schemes into ``folder``; returns the files (made once, then reused).
    ``quick``: three image presets and three compressions (the test suite's seeds)."""
    import numpy as np
    import torch
    from PIL import Image

    import inrkit
    from inrkit.export import compress
    from inrkit.io.audio import write_wav

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    done = sorted(folder.glob("*.inrz"))
    if done:
        return done
    torch.manual_seed(0)
    y, x = np.mgrid[0:8, 0:8] / 8.0
    Image.fromarray((np.stack([x, y, x * y], -1) * 255).astype(np.uint8)).save(folder / "image.png")
    write_wav(folder / "audio.wav", (0.5 * np.sin(np.arange(256) / 5.0))[:, None].astype(np.float32), 8000)
    runs = []
    presets = dict(list(IMAGE_PRESETS.items())[:3]) if quick else IMAGE_PRESETS
    for model, options in presets.items():
        run = folder / f"run-{model}"
        inrkit.fit(str(folder / "image.png"), model, out=run, steps=steps, quiet=True, device="cpu", overwrite=True,
                   **options)
        runs.append(run)
    if not quick:
        run = folder / "run-audio"
        inrkit.fit(str(folder / "audio.wav"), "hashgrid", out=run, steps=steps, quiet=True, device="cpu",
                   overwrite=True, n_levels=4, log2_hashmap_size=8)
        runs.append(run)
    files = [compress(folder / "image.png", folder / f"latent-{complexity}.inrz", codec="latent", steps=steps,
                      complexity=complexity, quiet=True).path for complexity in (("low",) if quick else ("low", "medium"))]
    if nerf and not quick:
        run = folder / "run-nerf"
        inrkit.nerf.fit("spheres", preset="instant-ngp-cpu", steps=steps, out=run, device="cpu", quiet=True,
                        overwrite=True, scene_resolution=8, target_samples=256, grid_resolution=8)
        runs.append(run)
    for index, run in enumerate(runs):
        choices = COMPRESSIONS[:3] if quick else COMPRESSIONS
        for coder, bits, scheme in (choices if index < 2 or quick else choices[index % 3::3]):
            path = folder / f"{run.name}-{coder}-{bits}-{scheme}.inrz"
            compress(run, path, bits=bits, coder=coder, scheme=scheme)
            files.append(path)
    return sorted(files)


# -- structure-aware mutation -------------------------------------------------------------------------------
_PREFIX = struct.Struct("<8sHII")
INTERESTING = [0, -1, 1, 2, 3, 7, 8, 16, 255, 256, 1023, 1024, 65535, 65536, 1 << 20, (1 << 31) - 1, -(1 << 31) + 1,
               0.0, -0.0, 0.5, 1e-9, 1e-3, 1.5, 30.0, 1e6, 1e9, 1e30, -1e30, "", "x", "0", "4000", "sqrt", "arctan",
               "cubic", None, True, False, [], {}, [0, 0], [1.0, 1.0], [-1e30, 1e30]]
MODELS = ["adaptive", "recent", "laplace", "gaussian", "uniform", "other"]


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) into a JSON value, capped for long lists."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:64]):
            out += _paths(item, (*prefix, index))
    return out


def _get(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def _set(root: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    _get(root, path[:-1])[path[-1]] = new
    return root


class Mutator:
    """Structure-aware mutations of ``.inrz`` files, re-packed with valid checksums (see the module docstring)."""

    def __init__(self, seeds: list[bytes], rng: random.Random) -> None:
        from inrkit.export import inrz

        self.inrz = inrz
        self.seeds = seeds
        self.rng = rng
        self.headers = [inrz.unpack(s)[0] for s in seeds]

    def _value(self, old: Any) -> Any:
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            return copy.deepcopy(rng.choice(INTERESTING))
        if roll < 0.65 and isinstance(old, (int, float)) and not isinstance(old, bool):
            factor = rng.choice([-1, 0, 2, 10, 1000, 0.5, 1e-3])
            value = old * factor + rng.choice([0, 1, -1])
            return int(value) if isinstance(old, int) and abs(value) < 1 << 62 else float(value)
        if roll < 0.75 and isinstance(old, (int, float, bool)):
            return str(old)
        if roll < 0.9:  # cross-over: a value at some path of another seed's header
            other = rng.choice(self.headers)
            return copy.deepcopy(_get(other, rng.choice(_paths(other))))
        return rng.randrange(-(1 << 20), 1 << 20)

    def mutate_header(self, header: dict, payload: bytes) -> tuple[dict, bytes]:
        rng = self.rng
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            paths = [p for p in _paths(header) if p]
            if not paths:
                break
            path = rng.choice(paths)
            parent, key = _get(header, path[:-1]), path[-1]
            roll = rng.random()
            if roll < 0.15 and isinstance(parent, dict):
                del parent[key]
            elif roll < 0.22 and isinstance(parent, list):
                parent.insert(key, copy.deepcopy(parent[key]))
            else:
                header = _set(header, path, self._value(_get(header, path)))
        return header, payload

    def mutate_table(self, header: dict, payload: bytes) -> tuple[dict, bytes]:
        """Edit one tensor entry's coding (coder, model, alphabet, bits, storage) and keep the payload consistent."""
        rng = self.rng
        table = header.get("tensors")
        if not isinstance(table, list) or not table:
            return header, payload
        entry = rng.choice(table)
        if not isinstance(entry, dict):
            return header, payload
        key = rng.choice(["coder", "params", "bits", "storage", "scheme", "step", "shape"])
        if key == "coder":
            entry["coder"] = rng.choice(["range", "zlib", "lzma", "raw", "auto"])
        elif key == "params":
            params = entry.setdefault("params", {}) if isinstance(entry.get("params", {}), dict) else {}
            params["model"] = rng.choice(MODELS)
            for name in rng.sample(["min", "alphabet", "mean", "scale"], 2):
                params[name] = rng.choice([0, 1, 2, -127, 255, 65535, -32767, 1e-3, 1e3, 0.5, -1])
            entry["params"] = params
        elif key == "bits":
            entry["bits"] = rng.choice([1, 2, 4, 8, 12, 16, 17, 32])
        elif key == "storage":
            entry["storage"] = rng.choice(["quantized", "float16", "float32", "rebuilt", "bitmask", "int64", "omitted"])
        elif key == "scheme":
            entry["scheme"] = rng.choice(["tensor", "channel"])
        elif key == "step":
            entry["step"] = rng.choice([0.0, -1.0, 1e-30, 1e30, 1.0])
        else:
            entry["shape"] = [rng.choice([0, 1, 3, 8, 1 << 16])]
        return header, payload

    def mutate_payload(self, header: dict, payload: bytes) -> tuple[dict, bytes]:
        """Edit the bytes of one tensor's stream (flip, cut, pad, zero, empty, swap) and fix the table's lengths."""
        rng = self.rng
        table = header.get("tensors")
        entries = [e for e in table if isinstance(e, dict) and isinstance(e.get("length"), int)] \
            if isinstance(table, list) else []
        latent = header.get("latent")
        if isinstance(latent, dict) and isinstance(latent.get("length"), int):
            entries.append(latent)  # a latent file's stream follows the tables' tensors
        if not entries or sum(e["length"] for e in entries) != len(payload):
            data = bytearray(payload)
            for _ in range(rng.randint(1, 4)):
                if data:
                    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            return header, bytes(data)
        streams, offset = [], 0
        for entry in entries:
            streams.append(bytearray(payload[offset : offset + entry["length"]]))
            offset += entry["length"]
        index = rng.randrange(len(streams))
        stream = streams[index]
        roll = rng.random()
        if roll < 0.3 and stream:
            for _ in range(rng.randint(1, 3)):
                stream[rng.randrange(len(stream))] ^= 1 << rng.randrange(8)
        elif roll < 0.45:
            del stream[rng.randrange(len(stream) + 1):]
        elif roll < 0.55:
            stream += bytes(rng.choice([1, 4, 8, 64]))
        elif roll < 0.65:
            streams[index] = bytearray(rng.choice([b"", b"\0\0\0\0", bytes(len(stream))]))
        elif roll < 0.75:
            other = rng.randrange(len(streams))
            streams[index], streams[other] = streams[other], streams[index]
        else:
            stream[:] = bytes(rng.getrandbits(8) for _ in range(rng.choice([4, 8, 16, len(stream)])))
        for entry, data in zip(entries, streams, strict=True):
            entry["length"] = len(data)
        return header, b"".join(bytes(s) for s in streams)

    def raw(self, data: bytes) -> bytes:
        """Byte edits without re-packing: the container's own checks (magic, lengths, checksums)."""
        rng = self.rng
        out = bytearray(data)
        roll = rng.random()
        if roll < 0.4 and out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif roll < 0.7:
            del out[rng.randrange(len(out) + 1):]
        else:
            out += bytes(rng.choice([1, 16, 4096]))
        return bytes(out)

    def __call__(self, data: bytes | None = None) -> bytes:
        """A mutation of ``data`` (a random seed when None or not a valid file)."""
        rng = self.rng
        if data is None or rng.random() < 0.2:
            data = rng.choice(self.seeds)
        if rng.random() < 0.08:
            return self.raw(data)
        try:
            header, payload = self.inrz.unpack(data)
        except Exception:
            data = rng.choice(self.seeds)
            header, payload = self.inrz.unpack(data)
        header = copy.deepcopy(header)
        for _ in range(rng.choice([1, 1, 2])):
            action = rng.choices([self.mutate_header, self.mutate_table, self.mutate_payload], [0.45, 0.2, 0.35])[0]
            header, payload = action(header, payload)
        try:
            return repack(header, payload)
        except Exception:
            return self.raw(data)


def repack(header: Any, payload: bytes) -> bytes:
    """An ``.inrz`` file of any JSON ``header`` (not only objects) and ``payload``, with valid checksums."""
    from inrkit.export import inrz, latent_codec

    latent = isinstance(header, dict) and header.get("codec", "weights") != "weights"
    version = latent_codec.VERSION if latent else inrz.VERSION
    body = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=inrz.HEADER_DICTIONARIES[version])
    packed = body.compress(json.dumps(header, separators=(",", ":"), allow_nan=False).encode()) + body.flush()
    return b"".join([_PREFIX.pack(inrz.MAGIC, version, len(packed), zlib.crc32(packed)), packed,
                     struct.pack("<II", len(payload), zlib.crc32(payload)), payload])


# -- the harness --------------------------------------------------------------------------------------------
class TimeLimit(BaseException):
    """Raised by the SIGPROF handler: the input ran past the time limit (a BaseException: no ``except Exception``
    inside inrkit swallows it)."""


@dataclass
class Summary:
    """What a campaign found."""

    engine: str
    inputs: int = 0
    decoded: int = 0
    refused: int = 0
    failures: int = 0
    slowest: float = 0.0
    slowest_outcome: str = ""
    started: float = field(default_factory=time.perf_counter)
    peak_rss_mb: float = 0.0
    failure_kinds: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        elapsed = time.perf_counter() - self.started
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.failure_kinds.items())) or "none"
        return (f"engine {self.engine}: {self.inputs:,} inputs in {elapsed:.0f} s, {self.decoded:,} decoded, "
                f"{self.refused:,} refused, {self.failures:,} failures ({kinds}); slowest input {self.slowest:.3f} CPU s "
                f"({self.slowest_outcome}); peak memory {self.peak_rss_mb:.0f} MB (process RSS)")


def _address_space_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def use(path: Path, work: Path) -> None:
    """Decode ``path`` and use it as a user would: forward pass, ``inrkit info``, a small render."""
    import torch

    import inrkit
    from inrkit.cli import main
    from inrkit.export import load
    from inrkit.fields import NerfModel

    decoded = load(path)
    model = decoded.field
    with torch.no_grad():
        if isinstance(model, NerfModel):
            origins = torch.tensor([[0.5, 0.5, 3.0]]).repeat(4, 1)
            directions = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, -1.0]]) + 0.1 * torch.rand(4, 3), dim=1)
            out = model.render_rays(origins, directions)
        else:
            out = model(torch.rand(8, model.n_input_dims) * 2 - 1)
    del out
    debug = os.environ.get("INRKIT_DEBUG")
    os.environ["INRKIT_DEBUG"] = "1"  # cli.main re-raises an internal error instead of printing it
    try:
        # real files, not StringIO: code below (a kernel compiler's subprocess) may need their descriptors
        with open(work / "stdout.txt", "w+") as stdout, open(work / "stderr.txt", "w+") as stderr, \
                contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["info", str(path)])
            stderr.seek(0)
            message = stderr.read()
    finally:
        if debug is None:
            del os.environ["INRKIT_DEBUG"]
        else:
            os.environ["INRKIT_DEBUG"] = debug
    if code != 0:
        raise AssertionError(f"info exited {code} after a successful load: {message.strip()}")
    signal_config = decoded.config.get("signal") or {}
    if not isinstance(model, NerfModel) and signal_config.get("kind") == "image":
        inrkit.render_image(path, work / "render.png", height=8, width=8, device="cpu", overwrite=True)


def run_one(data: bytes, work: Path, summary: Summary, time_limit: float, crashes: Path | None) -> str:
    """Run the harness on one input and record it in ``summary``; returns its outcome."""
    from inrkit.errors import InrkitError

    path = work / "input.inrz"
    path.write_bytes(data)
    outcome, detail = "decoded", ""
    started = time.process_time()
    signal.setitimer(signal.ITIMER_PROF, time_limit)
    try:
        use(path, work)
    except InrkitError as err:
        outcome = "refused"
        if "\n" in str(err) or not str(err):
            outcome, detail = "failure", f"multi-line or empty InrkitError: {str(err)[:200]!r}"
    except TimeLimit:
        outcome, detail = "failure", "time limit"
    except MemoryError:
        outcome, detail = "failure", f"memory limit: address space {_address_space_mb():.0f} MB"
    except RecursionError as err:
        outcome, detail = "failure", f"RecursionError: {err}"
    except Exception as err:
        outcome, detail = "failure", f"{type(err).__name__}: {str(err)[:300]}"
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    elapsed = time.process_time() - started
    if outcome != "failure" and elapsed > time_limit:
        outcome, detail = "failure", "time limit"
    summary.inputs += 1
    setattr(summary, outcome if outcome != "failure" else "failures", getattr(summary, outcome if outcome != "failure"
                                                                              else "failures") + 1)
    if elapsed > summary.slowest:
        summary.slowest, summary.slowest_outcome = elapsed, outcome
    summary.peak_rss_mb = max(summary.peak_rss_mb, _peak_rss_mb())
    if outcome == "failure":
        kind = detail.split(":")[0]
        summary.failure_kinds[kind] = summary.failure_kinds.get(kind, 0) + 1
        if crashes is not None:
            crashes.mkdir(parents=True, exist_ok=True)
            name = f"failure-{zlib.crc32(data):08x}"
            (crashes / f"{name}.inrz").write_bytes(data)
            (crashes / f"{name}.txt").write_text(detail + "\n")
    return outcome


def _limits(memory_mb: float) -> tuple[Any, tuple[int, int]]:
    """``RLIMIT_AS`` at the process's current size plus ``memory_mb``; SIGPROF raises :class:`TimeLimit`.
    Returns what to restore: the previous SIGPROF handler and address-space limits."""
    def alarm(signum: int, frame: Any) -> None:
        raise TimeLimit()

    previous = signal.signal(signal.SIGPROF, alarm), resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as handle:
        size = int(handle.read().split()[0]) * resource.getpagesize()
    limit = size + int(memory_mb * 2**20)
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard >= limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return previous


def _warm_up(seeds: list[bytes], work: Path) -> None:
    """Decode every seed once, untimed: torch's first meta-device build imports for about a second."""
    for data in seeds:
        (work / "input.inrz").write_bytes(data)
        use(work / "input.inrz", work)


def fuzz(seed_files: list[Path], inputs: int, engine: str = "mutate", seed: int = 0, time_limit: float = 2.0,
         memory_mb: float = 1024.0, crashes: Path | None = None, max_seconds: float | None = None,
         progress_every: int = 0, finish: Any = None) -> Summary:
    """Run ``inputs`` inputs (or until ``max_seconds``) through the harness; returns the :class:`Summary`.
    The atheris engine never returns (libFuzzer exits the process): ``finish(summary)`` is called at the end
    of either engine, and the atheris engine then exits with its return value."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    seeds = [Path(p).read_bytes() for p in seed_files]
    summary = Summary(engine)
    work = Path(tempfile.mkdtemp(prefix="inrkit-fuzz-"))
    _warm_up(seeds, work)
    handler, limits = _limits(memory_mb)
    summary.started = time.perf_counter()
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    if engine == "atheris":
        return _fuzz_atheris(seeds, inputs, seed, time_limit, crashes, summary, work, deadline, progress_every, finish)
    try:
        rng = random.Random(seed)
        mutator = Mutator(seeds, rng)
        previous: bytes | None = None
        for index in range(inputs):
            if deadline is not None and time.monotonic() > deadline:
                break
            data = mutator(previous if previous is not None and rng.random() < 0.3 else None)
            outcome = run_one(data, work, summary, time_limit, crashes)
            previous = data if outcome == "decoded" else None  # stack mutations on inputs that still decode
            if progress_every and (index + 1) % progress_every == 0:
                print(summary.text(), file=sys.stderr, flush=True)
    finally:  # the mutate engine runs inside test suites: leave the process as it was
        resource.setrlimit(resource.RLIMIT_AS, limits)
        signal.signal(signal.SIGPROF, handler)
        torch.set_num_threads(threads)
    if finish is not None:
        finish(summary)
    return summary


def _fuzz_atheris(seeds: list[bytes], inputs: int, seed: int, time_limit: float, crashes: Path | None,
                  summary: Summary, work: Path, deadline: float | None, progress_every: int, finish: Any) -> Summary:
    import atheris

    mutator = Mutator(seeds, random.Random(seed))

    def custom_mutator(data: bytes, max_size: int, mutation_seed: int) -> bytes:
        mutator.rng.seed(mutation_seed)
        if mutator.rng.random() < 0.25:
            return atheris.Mutate(data, max_size)  # libFuzzer's own byte-level mutations
        out = mutator(data if data else None)
        return out if len(out) <= max_size else mutator.raw(out)[:max_size]

    def test_one_input(data: bytes) -> None:
        run_one(data, work, summary, time_limit, crashes)
        if progress_every and summary.inputs % progress_every == 0:
            print(summary.text(), file=sys.stderr, flush=True)
        if summary.inputs >= inputs or (deadline is not None and time.monotonic() > deadline):
            code = finish(summary) if finish is not None else 0
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code or 0)  # libFuzzer would exit without returning to Python

    corpus = Path(tempfile.mkdtemp(prefix="inrkit-fuzz-corpus-"))
    for index, data in enumerate(seeds):
        (corpus / f"seed-{index}.inrz").write_bytes(data)
    args = [sys.argv[0], str(corpus), f"-runs={inputs + len(seeds) + 10}", f"-seed={seed + 1}",
            f"-max_len={max(map(len, seeds)) * 2}", "-rss_limit_mb=0", "-timeout=0"]
    atheris.Setup(args, test_one_input, custom_mutator=custom_mutator)
    with contextlib.suppress(SystemExit):
        atheris.Fuzz()
    return summary


def append_benchmarks(path: Path, summary: Summary, seeds: int, args: argparse.Namespace) -> None:
    """Append (or replace) the fuzzing section of ``path``."""
    title = "## .inrz decoder fuzzing"
    section = (f"{title}\n\n`python scripts/fuzz_inrz.py --engine {summary.engine} --inputs {args.inputs} --seed {args.seed}"
               f" --time-limit {args.time_limit:g} --memory-limit {args.memory_limit:g}` on {seeds} seed files it made "
               f"itself ({time.strftime('%Y-%m-%d', time.gmtime())}, 1 CPU thread, under nice 19 on a shared 2-core "
               f"machine). Each input is decoded and used: forward pass, `inrkit info`, an 8x8 render.\n\n"
               f"| inputs | decoded | refused | failures | slowest input | peak memory (RSS) |\n|---|---|---|---|---|---|\n"
               f"| {summary.inputs:,} | {summary.decoded:,} | {summary.refused:,} | {summary.failures:,} | "
               f"{summary.slowest:.3f} CPU s ({summary.slowest_outcome}) | {summary.peak_rss_mb:.0f} MB |\n\n"
               f"{summary.text()}\n")
    text = path.read_text() if path.exists() else ""
    if title in text:
        start = text.index(title)
        following = text.find("\n## ", start + len(title))
        text = text[:start] + section + (text[following + 1:] if following >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engine", choices=("atheris", "mutate"), default="atheris")
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--max-seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=Path, default=Path(tempfile.gettempdir()) / "inrkit-fuzz-seeds",
                        help="folder of seed files (made when empty)")
    parser.add_argument("--time-limit", type=float, default=2.0, help="seconds per input")
    parser.add_argument("--memory-limit", type=float, default=1024.0, help="MB of address space per input")
    parser.add_argument("--crashes", type=Path, default=Path("fuzz-failures"))
    parser.add_argument("--benchmarks", type=Path, default=None, help="append the summary to this Markdown file")
    parser.add_argument("--progress-every", type=int, default=1000)
    args = parser.parse_args(argv)
    if args.engine == "atheris":  # coverage of inrkit's own code (not torch's): instrument it as it is imported
        import atheris

        with atheris.instrument_imports(include=["inrkit"]):
            import inrkit.api.compress
            import inrkit.cli
            import inrkit.export.codec
            import inrkit.export.entropy
            import inrkit.export.inrz
            import inrkit.fields
            import inrkit.signals  # noqa: F401
    seed_files = make_seeds(args.seeds)

    def finish(summary: Summary) -> int:
        print(summary.text(), flush=True)
        if args.benchmarks is not None:
            append_benchmarks(args.benchmarks, summary, len(seed_files), args)
        return 1 if summary.failures else 0

    summary = fuzz(seed_files, args.inputs, args.engine, args.seed, args.time_limit, args.memory_limit, args.crashes,
                   args.max_seconds, args.progress_every, finish)
    return 1 if summary.failures else 0


if __name__ == "__main__":
    sys.exit(main())
