"""Building the C kernels: cached by source, compiler and flags, atomic, and a clear error without a compiler."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from inrkit.backends import c_kernels

needs_compiler = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler")


@needs_compiler
def test_a_kernel_is_built_once_per_source_and_flags(tmp_path, monkeypatch):
    monkeypatch.setenv("INRKIT_CACHE", str(tmp_path))
    first = c_kernels.compile_kernel("softround_cpu", ("-fopenmp-simd",))
    assert first.parent == tmp_path / "kernels" and first.name.startswith("softround_cpu-")
    stamp = first.stat().st_mtime_ns
    assert c_kernels.compile_kernel("softround_cpu", ("-fopenmp-simd",)) == first and first.stat().st_mtime_ns == stamp
    assert c_kernels.compile_kernel("softround_cpu", ("-O2",)) != first  # other flags, another library
    assert sorted(p.suffix for p in (tmp_path / "kernels").iterdir()) == [".so", ".so"]  # no objects or temporaries left
    c_kernels.load("softround_cpu", ("-fopenmp-simd",)).inrkit_soft_round_noise  # noqa: B018 (the symbol resolves)


def test_without_a_compiler_the_build_fails_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("INRKIT_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "no-such-compiler-inrkit")
    with pytest.raises(OSError, match="no C compiler"):
        c_kernels.compile_kernel("softround_cpu")


def test_ranges_cover_the_work_once_on_every_thread_count():
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            seen = []
            c_kernels.run_ranges(lambda begin, end, seen=seen: seen.append((begin, end)), 10)
            assert sorted(seen) == c_kernels.split(10, threads) and sum(e - b for b, e in seen) == 10
    finally:
        torch.set_num_threads(previous)
    assert c_kernels.split(3, 8) == [(0, 1), (1, 2), (2, 3)]
