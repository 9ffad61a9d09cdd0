"""Worker processes of ``fit-many``'s local engine: shard jobs fitted side by side, each worker one at a time.

Why: on a CPU shared with other jobs two processes of one thread each keep both cores busy where one process of
two threads stalls (each parallel region of a step waits for its slowest thread, and a preempted thread stalls them
all): a compiled step of 64 SIRENs of 3×32 took 3.5 ms per field on two threads beside two other jobs and 0.72 ms
on one (BENCHMARKS.md, "Fitting many fields"). One thread per shard also makes a field's numbers independent of
the worker count and equal to a 1-CPU Ray task's.

Protocol: each worker is a fresh interpreter running :func:`main` (nothing of the caller's
``__main__`` is imported), reading one JSON shard job per line on stdin and answering one JSON line on its own
copy of stdout: ``{"result": ...}`` (:func:`~inrkit.api.shard_fit.fit_shard`'s), ``{"interrupted": message}`` or
``{"error": message}``. Whatever the fit prints to stdout goes to stderr. A worker exits when its stdin closes.

Signals: workers run in their own session and ignore Ctrl-C and SIGTERM between shards; the driver passes
one on to every worker (whose trainer stops after its step) and starts no other shard.
"""

from __future__ import annotations

import json
import os
import queue
import signal as os_signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from inrkit.api.shard_fit import fit_shard
from inrkit.errors import InrkitError
from inrkit.train import TrainingInterrupted
from inrkit.train.trainer import STOP_SIGNALS, stop_signals_handled

Job = dict[str, Any]
WAIT_SECONDS = 0.2  # the driver's wait for a result between checks of a stop request
EXIT_SECONDS = 30.0  # how long a worker may take to leave once its stdin is closed


def _spawn(threads: int | None) -> subprocess.Popen[str]:
    """One worker: this interpreter on this inrkit (its folder first on PYTHONPATH), in its own session (its
    Trainer tunes the allocator: :mod:`inrkit.train.allocator`)."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.Popen([sys.executable, "-c", "from inrkit.api.shard_workers import main; main()"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)


def run_in_workers(jobs: list[Job], on_done: Callable[[dict[str, Any]], None], workers: int) -> None:
    """Fit ``jobs`` in ``workers`` worker processes; ``on_done`` (called in this thread) gets each result."""
    waiting = list(reversed(jobs))
    lock = threading.Lock()
    stop: list[int] = []
    replies: queue.Queue[tuple[Job, dict[str, Any] | None]] = queue.Queue()
    processes: list[subprocess.Popen[str]] = []

    def serve(process: subprocess.Popen[str]) -> None:
        assert process.stdin is not None and process.stdout is not None
        while True:
            with lock:
                if stop or not waiting:
                    break
                job = waiting.pop()
            try:
                process.stdin.write(json.dumps(job) + "\n")
                process.stdin.flush()
                reply = json.loads(process.stdout.readline() or "null")
            except (OSError, ValueError):  # a dead worker (or one that could not answer)
                reply = None
            replies.put((job, reply))
            if reply is None:
                break

    servers: list[threading.Thread] = []
    try:
        with _forwarded_stop_signals(stop, processes):
            processes += [_spawn(jobs[0]["train"].get("threads")) for _ in range(min(workers, len(jobs)))]
            servers += [threading.Thread(target=serve, args=(p,), daemon=True) for p in processes]
            for server in servers:
                server.start()
            while any(s.is_alive() for s in servers) or not replies.empty():
                with suppress(queue.Empty):
                    job, reply = replies.get(timeout=WAIT_SECONDS)
                    if not stop:
                        on_done(_result(job, reply))
    except BaseException:
        with lock:
            stop.append(int(os_signal.SIGTERM))  # a failed shard: the others stop after their step
        _signal(processes, os_signal.SIGTERM)
        raise
    finally:
        for server in servers:
            server.join()
        for process in processes:
            _close(process)
    if stop:
        raise TrainingInterrupted("interrupted", stop[0])


def _result(job: Job, reply: dict[str, Any] | None) -> dict[str, Any]:
    """A worker's reply as the result, or its error as one line."""
    if reply is None:
        raise InrkitError(f"a worker process died while fitting shard {job['shard']} (out of memory?); the finished "
                          "shards are kept: run the same command again to resume")
    if "result" not in reply:
        raise InrkitError(str(reply.get("error") or reply.get("interrupted")))
    return dict(reply["result"])


def _signal(processes: list[subprocess.Popen[str]], signum: int) -> None:
    for process in processes:
        if process.poll() is None:
            with suppress(ProcessLookupError):
                process.send_signal(signum)


def _close(process: subprocess.Popen[str]) -> None:
    """Close the worker's stdin (it exits) and reap it; one that does not leave in time is killed."""
    with suppress(OSError):
        assert process.stdin is not None
        process.stdin.close()
    try:
        process.wait(timeout=EXIT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def _forwarded_stop_signals(stop: list[int], processes: list[subprocess.Popen[str]]) -> Iterator[None]:
    """Ctrl-C or SIGTERM to the driver is noted in ``stop`` and passed on to every worker."""
    def forward(signum: int, frame: Any) -> None:
        if not stop:
            stop.append(int(signum))
        _signal(processes, signum)

    with stop_signals_handled(forward):
        yield


def main() -> None:
    """The worker's loop (module docstring)."""
    for signum in STOP_SIGNALS:
        os_signal.signal(signum, os_signal.SIG_IGN)  # the trainer handles them during a shard
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    for line in sys.stdin:
        job = json.loads(line)
        try:
            reply: dict[str, Any] = {"result": fit_shard(job)}
        except TrainingInterrupted as err:
            reply = {"interrupted": str(err)}
        except InrkitError as err:
            reply = {"error": str(err)}
        except Exception as err:  # reported to the driver as one line; the worker goes on
            reply = {"error": f"shard {job['shard']} failed in a worker process: {type(err).__name__}: {err}"}
        answers.write(json.dumps(reply) + "\n")
        answers.flush()

