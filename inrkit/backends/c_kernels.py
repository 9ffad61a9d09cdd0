"""C kernels of the CPU fast paths: compiled on first use, loaded through ctypes, run on a few threads.

A kernel's source (``csrc/*.c``) is built with the system C compiler (``cc``, or ``$CC``) into
``$INRKIT_CACHE`` (default ``~/.cache/inrkit``), keyed by a hash of its source, compiler and flags (and,
for flags that tune the code to this CPU, of the CPU's feature list), and written atomically, so
concurrent processes never load a half-written library. Without a compiler :func:`load` raises
``OSError`` and the caller runs the PyTorch reference.

Parallelism: ctypes releases the GIL during a call, so :func:`run_ranges` splits a call into ranges run on
``torch.get_num_threads()`` Python threads. The kernels have no OpenMP: a second OpenMP runtime next to
PyTorch's makes the two spin against each other.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

from inrkit.files import atomic_path

SOURCES = Path(__file__).with_name("csrc")
BASE_FLAGS = ("-O3", "-std=c11", "-fPIC")


def cache_dir() -> Path:
    """Where compiled kernels are kept: ``$INRKIT_CACHE`` or ``~/.cache/inrkit``."""
    return Path(os.environ.get("INRKIT_CACHE", Path.home() / ".cache" / "inrkit")) / "kernels"


def cpuinfo_line(prefixes: tuple[str, ...]) -> str:
    """The first line of ``/proc/cpuinfo`` that starts with one of ``prefixes`` (``""`` where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(prefixes):
                return line
    except OSError:
        pass
    return ""


@functools.cache
def _cpu_features() -> str:
    """The CPU's feature flags (``/proc/cpuinfo``), part of the cache key of code built for this CPU."""
    return cpuinfo_line(("flags", "Features"))


def compile_kernel(name: str, flags: tuple[str, ...] = ()) -> Path:
    """The shared library of ``csrc/NAME.c`` compiled with :data:`BASE_FLAGS` + ``flags`` (cached; module docstring).

    Compiling and linking are two commands: linked with ``-ffast-math``, gcc (before 13) adds a constructor that
    sets the loading thread's denormals-to-zero flags, which would change PyTorch's arithmetic in that thread."""
    source_path = SOURCES / f"{name}.c"
    source = source_path.read_bytes()
    compiler = os.environ.get("CC", "cc")
    all_flags = (*BASE_FLAGS, *flags)
    native = any(flag.startswith(("-march=native", "-mcpu=native")) for flag in flags)
    key_text = " ".join((compiler, *all_flags)) + (_cpu_features() if native else "")
    key = hashlib.sha256(source + key_text.encode()).hexdigest()[:16]
    target = cache_dir() / f"{name}-{key}.so"
    if target.is_file():
        return target
    if shutil.which(compiler) is None:
        raise OSError(f"no C compiler ({compiler}) on PATH")
    with atomic_path(target, ".so") as built:
        built.unlink()  # the compiler creates it, with its usual (not mkstemp's 0600) permissions
        objects = built.with_suffix(".o")
        try:
            for command in ([compiler, *all_flags, "-c", str(source_path), "-o", str(objects)],
                            [compiler, "-shared", str(objects), "-o", str(built), "-lm"]):
                result = subprocess.run(command, capture_output=True, text=True)
                if result.returncode != 0:
                    raise OSError(f"compiling {source_path.name} failed: {result.stderr.strip().splitlines()[-1:]}")
        finally:
            objects.unlink(missing_ok=True)
    return target


def load(name: str, flags: tuple[str, ...] = ()) -> ctypes.CDLL:
    """The loaded library of ``csrc/NAME.c`` (:func:`compile_kernel`); ``OSError`` when it cannot be built."""
    return ctypes.CDLL(str(compile_kernel(name, flags)))


Signature = tuple[list[Any], Any]  # a C function's ctypes argument types and result type (None: void)


def bind(name: str, flags: tuple[str, ...], functions: dict[str, Signature], what: str) -> ctypes.CDLL | None:
    """:func:`load` with the ``functions``' signatures declared, or ``None`` (and one warning naming ``what``
    and the reason) when the library cannot be built: the caller then runs its PyTorch reference."""
    try:
        library = load(name, flags)
    except OSError as err:
        warnings.warn(f"inrkit: {what} is unavailable ({err}); using the PyTorch reference", stacklevel=3)
        return None
    for function, (argtypes, restype) in functions.items():
        getattr(library, function).argtypes = argtypes
        getattr(library, function).restype = restype
    return library


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inrkit-kernel")


def split(total: int, parts: int) -> list[tuple[int, int]]:
    """``[0, total)`` cut into at most ``parts`` non-empty ``(begin, end)`` ranges of about equal size."""
    bounds = [total * k // parts for k in range(parts + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(parts) if bounds[k] < bounds[k + 1]]


def run_parallel(calls: list[Callable[[], object]]) -> list[object]:
    """Run the calls on the kernel threads (inline when there is one) and return their results in order."""
    if len(calls) <= 1:
        return [call() for call in calls]
    return [future.result() for future in [_pool(len(calls)).submit(call) for call in calls]]


def thread_ranges(total: int, min_size: int = 1) -> list[tuple[int, int]]:
    """``[0, total)`` cut into one range per ``torch.get_num_threads()`` thread, each of at least ``min_size``
    (one range when ``total`` is smaller)."""
    return split(total, max(1, min(torch.get_num_threads(), total // max(min_size, 1))))


def run_ranges(call: Callable[[int, int], None], total: int, min_size: int = 1) -> None:
    """Run ``call(begin, end)`` over the :func:`thread_ranges` of ``[0, total)``."""
    run_parallel([functools.partial(call, begin, end) for begin, end in thread_ranges(total, min_size)])
