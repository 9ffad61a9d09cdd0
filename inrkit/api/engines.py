"""Engines that run ``fit-many``'s shard jobs: ``local`` (this machine) and ``ray``.

``local`` fits the shards one after another in this process, or with ``workers`` > 1 in that many worker
processes of this machine (:mod:`~inrkit.api.shard_workers`: why, and how they stop).

With ``ray`` each shard job becomes a Ray task running :func:`~inrkit.api.shard_fit.fit_shard` on whatever
device the task is given (``gpus_per_task``, ``cpus_per_task``), in a Ray worker process (whose Trainer tunes the allocator
as every CPU run's does: :mod:`inrkit.train.allocator`); ``address`` connects to a running cluster
(default: start a local one, shut down afterwards). A task whose worker process dies is retried (``retries``
times); a retried task that finds its shard already written returns it without training. The dataset directory
(local, or a path every node sees) is the single source of truth, so a crashed driver resumes as a local run
does. Both engines call the same function on the same jobs: results do not depend on the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inrkit.api.shard_fit import fit_shard
from inrkit.api.shard_workers import run_in_workers
from inrkit.errors import InrkitError

ENGINES = ("local", "ray")
RAY_RETRIES = 3
LOCAL_OBJECT_STORE_BYTES = 100 << 20  # shard jobs and results are small JSON: a local cluster needs little

Job = dict[str, Any]
Done = Callable[[dict[str, Any]], None]


def run_local(jobs: list[Job], on_done: Done, workers: int = 1) -> None:
    """Fit the shards in this process, in order, or in ``workers`` worker processes
    (:mod:`~inrkit.api.shard_workers`); ``on_done`` gets each result as it is written."""
    if workers > 1 and len(jobs) > 1:
        run_in_workers(jobs, on_done, workers)
        return
    for job in jobs:
        on_done(fit_shard(job))


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InrkitError("--engine ray needs Ray: pip install 'inrkit[ray]' (or pip install ray)") from None
    return ray


def run_ray(jobs: list[Job], on_done: Done, address: str | None = None, cpus_per_task: float = 1.0,
            gpus_per_task: float = 0.0, retries: int = RAY_RETRIES) -> None:
    """Fit the shards as Ray tasks (module docstring); ``on_done`` gets each result as it completes."""
    ray = _import_ray()
    started = not ray.is_initialized()
    if started:
        try:
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(include_dashboard=False, log_to_driver=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
        except (ConnectionError, ValueError, RuntimeError) as err:
            raise InrkitError(f"cannot start or reach a Ray cluster{' at ' + address if address else ''}: "
                              f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    try:
        task = ray.remote(fit_shard).options(num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=retries,
                                            retry_exceptions=False)
        pending = {task.remote(job): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                on_done(ray.get(ready[0]))
            except ray.exceptions.RayTaskError as err:
                cause = getattr(err, "cause", None)
                if isinstance(cause, InrkitError):
                    raise InrkitError(str(cause)) from None
                raise InrkitError(f"shard {job['shard']} failed on a Ray worker: {type(cause).__name__}: {cause}") from None
            except ray.exceptions.RayError as err:
                raise InrkitError(f"shard {job['shard']} was lost after {retries} retries ({type(err).__name__}); "
                                  "the finished shards are kept: run the same command again to resume") from None
    finally:
        if started:
            ray.shutdown()


def run_jobs(engine: str, jobs: list[Job], on_done: Done, **options: Any) -> None:
    """Run ``jobs`` with ``engine`` (``local``, ``options``: ``workers`` | ``ray``, ``options``: :func:`run_ray`'s)."""
    if engine == "local":
        run_local(jobs, on_done, int(options.get("workers", 1)))
    elif engine == "ray":
        run_ray(jobs, on_done, **options)
    else:
        raise InrkitError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}")
