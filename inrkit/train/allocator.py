"""glibc malloc settings for CPU training: a step's large tensors reuse freed heap instead of fresh mappings.

By default glibc serves a block over 128 kB-32 MB (an adaptive threshold) with its own ``mmap`` and gives it
back on ``free``, so every training step maps its activations again and the kernel zeroes them page by page:
about 2,000 page faults per fit-many step (a fifth of its time) and, for the latent codec on a 768×512
image, 11–12 s of kernel time beside 58–68 s of user time over 150 steps (0.5 s once tuned).
:func:`tune_allocator` sets, once per process,

    M_MMAP_THRESHOLD = 32 MB    # blocks up to 32 MB come from the heap (a 768×512×16 float32 tensor is 25 MB)
    M_TRIM_THRESHOLD = 512 MB   # freed heap is returned to the system only beyond 512 MB

(``mallopt``; the same as the environment variables ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_``,
which take precedence when set). The price is up to 512 MB of freed heap kept by the process after a large
fit. Other C libraries (musl, macOS, Windows) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 512 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers
_tuned = False


def tune_allocator() -> bool:
    """Apply the settings of the module docstring to this process (once); ``True`` where glibc took them."""
    global _tuned
    if _tuned:
        return True
    _tuned = True
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") or os.environ.get("MALLOC_TRIM_THRESHOLD_"):
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                     TRIM_THRESHOLD_BYTES))
