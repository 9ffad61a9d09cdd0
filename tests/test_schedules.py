"""Learning-rate schedules and their use by the trainer."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import inrkit
from inrkit.fields import build_field
from inrkit.signals import ImageSignal
from inrkit.train import SCHEDULES, Trainer, TrainOptions, lr_factor


def test_exp_schedule():
    assert lr_factor("exp", 0.0) == pytest.approx(1.0)
    assert lr_factor("exp", 0.5) == pytest.approx(math.sqrt(0.1))
    assert lr_factor("exp", 1.0) == pytest.approx(0.1)


def test_cosine_schedule():
    assert lr_factor("cosine", 0.0) == pytest.approx(1.0)
    assert lr_factor("cosine", 0.5) == pytest.approx(0.55)
    assert lr_factor("cosine", 1.0) == pytest.approx(0.1)
    assert lr_factor("cosine-zero", 0.0) == pytest.approx(1.0)
    assert lr_factor("cosine-zero", 0.5) == pytest.approx(0.5)
    assert lr_factor("cosine-zero", 1.0) == pytest.approx(0.0, abs=1e-12)


def test_constant_schedule():
    assert all(lr_factor("constant", p) == 1.0 for p in (0.0, 0.3, 1.0))


def test_ngp_schedule_drops_at_four_and_six_sevenths():
    """instant-ngp's 35k-step run decays ×0.33 at steps 20k and 30k: at p = 4/7 and 6/7, exactly there."""
    assert [lr_factor("ngp", step / 35_000) for step in (0, 19_999, 20_000, 29_999, 30_000, 35_000)] == \
        pytest.approx([1.0, 1.0, 0.33, 0.33, 0.33**2, 0.33**2], rel=1e-12)
    for budget in (7, 700, 1400, 3500):  # the first step of each level, at budgets where 4/7 and 6/7 are steps
        factors = [lr_factor("ngp", step / budget) for step in range(budget + 1)]
        assert factors.index(0.33) == 4 * budget // 7
        assert factors.index(0.33**2) == 6 * budget // 7


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedules_are_monotone_and_clamped(schedule):
    values = [lr_factor(schedule, p) for p in np.linspace(0, 1, 21)]
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert lr_factor(schedule, -1.0) == lr_factor(schedule, 0.0)
    assert lr_factor(schedule, 2.0) == lr_factor(schedule, 1.0)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="exp"):
        lr_factor("linear", 0.5)


def test_trainer_applies_schedule(tmp_path, make_image):
    run = inrkit.fit(ImageSignal.from_array(make_image(8, 8)), model="siren", width=16, depth=2, steps=20, eval_every=10,
                     lr=1e-3, schedule="exp", device="cpu", quiet=True, out=tmp_path / "run")
    records = run.history
    # the lr of step k is set from the progress before it, (k - 1) / 20
    assert records[0]["step"] == 10
    assert records[0]["lr"] == pytest.approx(1e-3 * 0.1 ** (9 / 20))
    assert records[-1]["lr"] == pytest.approx(1e-3 * 0.1 ** (19 / 20))


def test_trainer_calls_step_hooks_before_each_step(tmp_path):
    signal = ImageSignal.from_array(np.random.default_rng(0).random((8, 8, 3)).astype(np.float32))
    field = build_field("relu", 2, 3, width=8, depth=1)
    seen: list[int] = []
    trainer = Trainer(field, signal, TrainOptions(steps=5, quiet=True, eval_every=0), tmp_path, 1e-3,
                      torch.device("cpu"), step_hooks=[seen.append])
    trainer.fit()
    assert seen == [0, 1, 2, 3, 4]
