"""A short seeded run of ``scripts/fuzz_inrz.py`` (the mutation engine): every mutated ``.inrz`` file is decoded and
used (forward pass, ``inrkit info``, a small render) or refused with one line; none fails."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fuzz_inrz.py"


@pytest.fixture(scope="module")
def fuzz_inrz():
    spec = importlib.util.spec_from_file_location("fuzz_inrz", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_inrz"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_short_seeded_fuzz_run_has_no_failures(fuzz_inrz, tmp_path):
    started = time.perf_counter()
    seeds = fuzz_inrz.make_seeds(tmp_path / "seeds", steps=2, quick=True)
    assert len(seeds) >= 9
    summary = fuzz_inrz.fuzz(seeds, inputs=300, engine="mutate", seed=0, time_limit=2.0, memory_mb=1024,
                             crashes=tmp_path / "failures")
    assert summary.inputs == 300
    assert summary.failures == 0, (summary.text(), sorted(p.read_text() for p in (tmp_path / "failures").glob("*.txt")))
    assert summary.decoded > 0 and summary.refused > 0, summary.text()  # the mutators reach both outcomes
    assert time.perf_counter() - started < 40.0


def test_mutations_are_deterministic_and_repack_valid_checksums(fuzz_inrz, tmp_path):
    import random

    from inrkit.export import compress, inrz
    from inrkit.fields import build_field

    compress(build_field("siren", 2, 3, width=8, depth=2), tmp_path / "s.inrz", coder="range")
    seeds = [(tmp_path / "s.inrz").read_bytes()]
    first = [fuzz_inrz.Mutator(seeds, random.Random(3))() for _ in range(50)]
    again = [fuzz_inrz.Mutator(seeds, random.Random(3))() for _ in range(50)]
    assert first == again
    repacked = 0
    for data in first:
        try:
            inrz.unpack(data)
            repacked += 1
        except Exception as err:
            assert "checksum" not in str(err) or data[:8] == inrz.MAGIC
    assert repacked > 20
