"""fit-many on a real local Ray cluster of two worker processes, one of them killed mid-way: nothing lost or doubled."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import inrkit
from scripts.bench_common import ray_shard_workers
from tests.test_fit_many import TINY, _images

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'inrkit[ray]')")


@pytest.mark.slow
def test_ray_engine_gives_the_local_engines_fields(tmp_path: Path) -> None:
    """About 10 s, mostly Ray's start: the cluster fit-many starts itself (no address) runs two shards, shuts down."""
    folder = _images(tmp_path / "in", 2)
    data = inrkit.fit_many(folder, "siren", out=tmp_path / "ray", fields_per_batch=1, engine="ray", **TINY)
    assert not ray.is_initialized()  # the cluster fit-many started is shut down
    local = inrkit.fit_many(folder, "siren", out=tmp_path / "local", fields_per_batch=1, **TINY)
    for index in range(2):
        ray_state = data.field(index).state_dict()
        for name, value in local.field(index).state_dict().items():
            torch.testing.assert_close(ray_state[name], value, rtol=1e-5, atol=1e-6)


def test_ray_engine_retries_a_killed_worker_and_loses_nothing(tmp_path: Path) -> None:
    """The default run's Ray test (12 s on an idle 2-core machine, 21 s on a busy one): six shards on two workers,
    one worker SIGKILLed in the middle of a shard."""
    folder = _images(tmp_path / "in", 6)
    out = tmp_path / "ray"
    options = {**TINY, "steps": 400}
    killed: list[int] = []
    before_kill: dict[str, int] = {}

    def kill_one_worker() -> None:  # once two shards are written, SIGKILL a worker in the middle of its shard
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            shards = sorted(out.glob("shard-*.safetensors"))
            workers = ray_shard_workers()
            if len(shards) >= 2 and workers:
                before_kill.update({p.name: p.stat().st_mtime_ns for p in shards})
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])
            time.sleep(0.02)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=100 << 20)
    try:
        killer = threading.Thread(target=kill_one_worker, daemon=True)
        killer.start()
        data = inrkit.fit_many(folder, "siren", out=out, fields_per_batch=1, engine="ray", **options)
        killer.join()
    finally:
        ray.shutdown()
    assert killed, "no worker was running a shard to kill"
    assert len(data) == 6 and sorted(i["id"] for i in data.items) == list(range(6))  # nothing lost
    shards = sorted(out.glob("shard-*.safetensors"))
    assert len(shards) == 6  # one shard per item: nothing fitted twice into two shards
    assert all(shards_now == before_kill[name] for name, shards_now in
               ((p.name, p.stat().st_mtime_ns) for p in shards) if name in before_kill)  # finished shards kept
    local = inrkit.fit_many(folder, "siren", out=tmp_path / "local", fields_per_batch=1, **options)
    for index in (0, 5):
        ray_state = data.field(index).state_dict()
        for name, value in local.field(index).state_dict().items():
            torch.testing.assert_close(ray_state[name], value, rtol=1e-5, atol=1e-6)
    assert load_file(shards[0]).keys() == local.field(0).state_dict().keys()
