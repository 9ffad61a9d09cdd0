"""One shard of ``fit-many``: its items' fields trained together by the one Trainer, written as one shard file.

A shard job is a JSON-able dict (so any engine can ship it to a worker): the dataset directory, shard index,
field config, resolved training options, signal options, initialisation and the items (id, source, sha256,
seed). :func:`fit_shard` is idempotent: when the shard file already holds exactly these items (a retried task
whose worker died after writing it) it returns them without training.

Field ``n`` starts from ``seed_everything(seed_n); Field(config)``, as ``inrkit.fit(..., seed=seed_n)`` builds
it (``--init random``), or from the dataset's saved initialisation (``shared``, ``meta``), and samples its
batches with a generator seeded with ``seed_n``: it is the field a single fit would give.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch

from inrkit.api.neural_dataset import load_init, read_shard_items, shard_name, write_shard
from inrkit.devices import resolve_device, seed_everything
from inrkit.errors import InrkitError, warn
from inrkit.fields import Field
from inrkit.fields.execution import prepare_field
from inrkit.signals import open_signal
from inrkit.train import Trainer, TrainOptions
from inrkit.train.stacked import StackedFields
from inrkit.train.stacked_signal import StackedSignal
from inrkit.train.threads import cpu_thread_hooks, restored_threads

WORK_DIR = ".work"  # per-shard Trainer folders (checkpoints of the shard being trained), removed when it is written


def build_fields(config: dict[str, Any], items: list[dict[str, Any]], init: dict[str, torch.Tensor] | None) -> list[Field]:
    """Each item's initial field: from its seed (``init`` None) or the state ``init``, one field built once and
    listed per item (:class:`StackedFields` copies the tensors)."""
    def prepared(field: Field) -> Field:
        return prepare_field(field, "torch", torch.device("cpu"))  # grids: the reference lookup, which vmaps

    if init is not None:
        field = Field(config)
        field.load_state_dict(init, strict=True)
        return [prepared(field)] * len(items)
    fields = []
    for item in items:
        seed_everything(int(item["seed"]))
        fields.append(prepared(Field(config)))
    return fields


def _probe_compiled(stacked: StackedFields, shape: tuple[int, ...], device: torch.device) -> None:
    """One forward and backward of the compiled forward at the training shape; falls back to eager with a warning."""
    coords = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(device) * 2.0 - 1.0
    try:
        stacked(coords).float().sum().backward()
    except Exception as err:  # inductor needs a C compiler and supports most, not all, operators
        warn(f"torch.compile could not compile these fields ({type(err).__name__}); training without it")
        stacked.use_eager()
    stacked.zero_grad(set_to_none=True)


def fit_shard(job: dict[str, Any]) -> dict[str, Any]:
    """Train and write shard ``job["shard"]``; returns ``{"shard", "items", "seconds", "reused"}``."""
    out = Path(job["dir"])
    path = out / shard_name(int(job["shard"]))
    wanted = [(item["id"], item["sha256"]) for item in job["items"]]
    written = read_shard_items(path)
    if written is not None and [(item.get("id"), item.get("sha256")) for item in written] == wanted:
        return {"shard": job["shard"], "items": written, "seconds": 0.0, "reused": True}
    began = time.perf_counter()
    device = resolve_device(job["device"])
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # as a single fit does (Gauss/WIRE denormals)
    train = dict(job["train"])
    lr = float(train.pop("lr"))
    options = TrainOptions(**{**train, "eval_every": 0, "quiet": bool(job.get("quiet", True))})
    signals = [open_signal(item["source"], job["signal_options"]) for item in job["items"]]
    init = load_init(out) if job.get("init_file") else None
    fields = build_fields(job["field"], job["items"], init)
    signal = StackedSignal(signals, [int(item["seed"]) for item in job["items"]], options.batch_size, device)
    compiled = job.get("compile") == "on" and device.type != "mps"
    stacked = StackedFields(fields, compile=compiled).to(device)
    if compiled:
        _probe_compiled(stacked, (len(fields), signal.samples_per_step, signal.n_input_dims), device)
    work = out / WORK_DIR / path.stem
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    with restored_threads():
        trainer = Trainer(stacked, signal, options, work, lr, device, cpu_thread_hooks(device, options.threads))
        trainer.fit()
    if len(signal.item_metrics) != len(fields):
        raise InrkitError(f"shard {job['shard']}: the final evaluation gave {len(signal.item_metrics)} results "
                          f"for {len(fields)} fields")
    records = [{**item, "row": row, "metrics": metrics}
               for row, (item, metrics) in enumerate(zip(job["items"], signal.item_metrics, strict=True))]
    write_shard(path, stacked.stacked_state_dict(), records)
    shutil.rmtree(work, ignore_errors=True)
    return {"shard": job["shard"], "items": records, "seconds": time.perf_counter() - began, "reused": False}
