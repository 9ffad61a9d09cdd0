"""Start-up costs a CPU user pays on every run: no compiler import, OpenMP threads that do not spin."""

from __future__ import annotations

import subprocess
import sys

import torch

from inrkit.train.optim import Adam

FIT_AND_REPORT = """
import os, sys, numpy as np, inrkit
from inrkit.signals import ImageSignal
inrkit.fit(ImageSignal.from_array(np.random.rand(16, 16, 3).astype("float32")), model=sys.argv[1], steps=3, quiet=True,
           device="cpu", out=sys.argv[2], width=16, depth=1)
print("torch._dynamo" in sys.modules, os.environ["OMP_WAIT_POLICY"])
"""


def test_a_fit_imports_no_compiler_and_sets_a_passive_openmp_wait(tmp_path):
    env = {key: value for key, value in __import__("os").environ.items() if key != "OMP_WAIT_POLICY"}
    for model in ("siren", "hashgrid"):
        result = subprocess.run([sys.executable, "-c", FIT_AND_REPORT, model, str(tmp_path / model)], env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == ["False", "PASSIVE"], (model, result.stdout)


def test_adam_without_the_compiler_wrapper_equals_torch_adam():
    torch.manual_seed(0)
    ours, theirs = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
    theirs.load_state_dict(ours.state_dict())
    optimizers = Adam(ours.parameters(), lr=1e-2), torch.optim.Adam(theirs.parameters(), lr=1e-2)
    for _ in range(5):
        x = torch.randn(8, 4)
        for module, optimizer in zip((ours, theirs), optimizers, strict=True):
            optimizer.zero_grad()
            module(x).square().sum().backward()
            optimizer.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)


def test_thread_tuner_keeps_the_faster_count_and_retries_after_its_period(monkeypatch):
    from inrkit.train import threads

    clock = {"now": 0.0}
    monkeypatch.setattr(threads.time, "perf_counter", lambda: clock["now"])
    before = torch.get_num_threads()
    try:
        tuner = threads.ThreadTuner(max_threads=2, trial_steps=3, period=100.0)
        step_seconds = {2: 0.3, 1: 0.1}  # one thread is faster, as on a busy two-core machine
        for step in range(2 * 4 + 1):  # the trial: 4 steps per candidate, then the decision
            tuner(step)
            clock["now"] += step_seconds[torch.get_num_threads()]
        assert tuner.chosen == 1 and torch.get_num_threads() == 1
        for step in range(9, 20):  # settled: no further trial within the period
            tuner(step)
            clock["now"] += 1.0
        assert torch.get_num_threads() == 1 and not tuner._plan
        clock["now"] += 100.0
        step_seconds = {2: 0.1, 1: 0.3}  # the machine became idle
        for step in range(20, 30):
            tuner(step)
            clock["now"] += step_seconds[torch.get_num_threads()]
        assert tuner.chosen == 2 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
