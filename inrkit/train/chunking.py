"""Bounded memory for any batch: a step's batch is processed in chunks with gradient accumulation.

For a loss that is a mean over the ``N`` samples of a batch, ``L = (1/N)·Σᵢ ℓᵢ``, splitting the batch
into chunks ``c`` of ``n_c`` samples and accumulating ``∇L = Σ_c (n_c/N)·∇L_c`` gives the same
gradient as one pass over the whole batch (up to float rounding), while only one chunk's activations
are alive at a time. This is how the official SPDER code fits large images (40,000 pixels a chunk).

The chunk size comes from the memory the device has free and the network's activation cost per
sample, measured by counting the bytes autograd saves for the backward pass on two small probe
batches (the difference removes what does not grow with the batch, such as saved weights).

Example:
    >>> import torch
    >>> from inrkit.fields import build_field
    >>> from inrkit.signals import ImageSignal
    >>> signal = ImageSignal.from_array(torch.rand(64, 64, 3).numpy())
    >>> cost = activation_bytes_per_sample(build_field("siren", 2, 3), signal)
    >>> 5_000 < cost < 50_000        # ~4 saved floats per hidden unit, 4 × 256 units
    True
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from inrkit.signals.base import Signal
from inrkit.train.options import TrainOptions

PROBE_SIZES = (256, 512)
TRANSIENT_FACTOR = 1.5  # gradients of activations and the chunk being built live beside the saved tensors
CPU_ACTIVATION_CAP = 1 << 30  # at most 1 GiB of activations on a CPU: a 768×512 fit stays under 2 GB RSS
MIN_CHUNK = 1024
FALLBACK_AVAILABLE = 4 << 30  # when the free memory cannot be read


def available_memory(device: torch.device) -> int:
    """Bytes the process can still use on ``device``: CUDA's free memory, else the OS's MemAvailable."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return FALLBACK_AVAILABLE


def current_memory_bytes() -> int:
    """The process's resident memory now (Linux ``/proc/self/statm``; else its peak so far)."""
    statm = Path("/proc/self/statm")
    if statm.is_file():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _saved_bytes(field: torch.nn.Module, signal: Signal, n_samples: int, generator: torch.Generator) -> int:
    """Bytes of the distinct tensors autograd saves while computing the loss on ``n_samples`` samples.

    The graph keeps only an index per saved tensor into a list that holds the tensors (so no storage is freed
    and reused while the loss is computed, and a loss that differentiates inside, such as the eikonal term,
    can still unpack them); the list is dropped at the end. Handing the tensor itself to the graph would make a
    node → saved output → node cycle through C++ that Python's collector cannot see: the probe's
    activations would outlive the fit (≈30 MB per SPDER fit in a long-lived process).
    """
    storages: dict[int, int] = {}
    held: list[torch.Tensor] = []

    def pack(tensor: torch.Tensor) -> int:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        held.append(tensor)
        return len(held) - 1

    def unpack(index: int) -> torch.Tensor:
        return held[index]

    batch = signal.sample(n_samples, generator)
    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        signal.loss(field, batch)
    held.clear()
    return sum(storages.values())


def activation_bytes_per_sample(field: torch.nn.Module, signal: Signal) -> float:
    """Training memory per sample of ``signal.loss(field, ·)`` in bytes (saved activations × a transient margin).

    Uses its own generator, so the training RNG streams are untouched.
    """
    generator = torch.Generator(device=next(field.parameters()).device).manual_seed(0)
    small, large = (_saved_bytes(field, signal, n, generator) for n in PROBE_SIZES)
    per_sample = max(large - small, 0) / (PROBE_SIZES[1] - PROBE_SIZES[0])
    return max(per_sample, 64.0) * TRANSIENT_FACTOR


def auto_chunk_size(bytes_per_sample: float, device: torch.device) -> int:
    """Samples per chunk so that one chunk's activations fit the memory budget of ``device``.

    Budget: a quarter of the available memory, at most :data:`CPU_ACTIVATION_CAP` off the GPU
    (half of the free memory on CUDA); rounded down to a multiple of 1,024, at least 1,024.
    """
    available = available_memory(device)
    budget = available // 2 if device.type == "cuda" else min(available // 4, CPU_ACTIVATION_CAP)
    chunk = int(budget // bytes_per_sample) // MIN_CHUNK * MIN_CHUNK
    return max(chunk, MIN_CHUNK)


def resolve_chunk_size(options: TrainOptions, field: torch.nn.Module, signal: Signal, device: torch.device) -> None:
    """Set ``options.chunk_size`` from the memory budget when it is unset and the signal's batches can be split
    (``field`` and ``signal`` on ``device``)."""
    if options.chunk_size is None and signal.chunkable:
        options.chunk_size = auto_chunk_size(activation_bytes_per_sample(field, signal), device)
