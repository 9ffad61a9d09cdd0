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
