"""Progressive encodings: band weights on the encodings and the schedules' windows (hand-computed values)."""

from __future__ import annotations

import math

import pytest
import torch

from inrkit.encodings import Frequency, GaussianFourier, PositionalEncoding
from inrkit.errors import InrkitError
from inrkit.fields import build_field
from inrkit.train.progressive import BandSchedule, band_weights, cosine_window


def test_cosine_window_matches_hand_computed_values():
    # α = 1.2: band 0 full, band 1 at ½(1 − cos 0.2π) = 0.0954915, the rest off
    assert torch.allclose(cosine_window(1.2, 4), torch.tensor([1.0, 0.0954915, 0.0, 0.0]), atol=1e-7)
    # α = 2.5: band 2 half way
    assert torch.allclose(cosine_window(2.5, 4), torch.tensor([1.0, 1.0, 0.5, 0.0]), atol=1e-7)


def test_barf_alpha_from_progress_and_window():
    # BARF's NeRF setting: L = 10, (s, e) = (0.1, 0.5); p = 0.32 gives α = 10·0.22/0.4 = 5.5
    weights = band_weights("barf", 10, 0.32, 0.1, 0.5)
    assert torch.allclose(weights, torch.tensor([1.0] * 5 + [0.5] + [0.0] * 4), atol=1e-6)
    assert torch.equal(band_weights("barf", 10, 0.05, 0.1, 0.5), torch.zeros(10))   # before s: all off
    assert torch.equal(band_weights("barf", 10, 0.5, 0.1, 0.5), torch.ones(10))     # at e: all on


def test_nerfies_linear_alpha_holds_after_the_window():
    # (s, e) = (0, 0.8), L = 8: p = 0.425 gives α = 4.25, w_4 = ½(1 − cos(π/4)) = 0.1464466
    weights = band_weights("nerfies", 8, 0.425, 0.0, 0.8)
    assert torch.allclose(weights, torch.tensor([1.0] * 4 + [0.1464466] + [0.0] * 3), atol=1e-6)
    assert torch.equal(band_weights("nerfies", 8, 0.9, 0.0, 0.8), torch.ones(8))


def test_step_opens_a_band_where_the_cosine_reaches_one():
    # α = 4·(0.3 − 0.1)/0.4 = 2: bands 0 and 1 on (α ≥ k + 1), band 2 off although the cosine would start it
    assert torch.equal(band_weights("step", 4, 0.3, 0.1, 0.5), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert torch.equal(band_weights("step", 4, 0.2999, 0.1, 0.5), torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_levels_schedule_by_progress_and_by_steps():
    # 16 levels = 15 bands + the always-on level: 4 levels on at first (3 bands), all 16 at e
    assert band_weights("levels", 15, 0.0, 0.05, 0.17).sum() == 3
    # p = 0.11: 4 + ⌊12·0.06/0.12⌋ = 10 levels on, 9 bands
    assert band_weights("levels", 15, 0.11, 0.05, 0.17).sum() == 9
    assert band_weights("levels", 15, 0.17, 0.05, 0.17).sum() == 15
    # a level every 10 steps (--coarse-to-fine 10): step 35 has 4 + 3 = 7 levels on
    assert band_weights("levels", 15, 0.0, 0.0, 1.0, step=35, every=10).sum() == 6


def test_identity_and_lowest_band_always_on():
    x = torch.rand(5, 2)
    pe = PositionalEncoding(2, 4)
    reference = pe(x)
    pe.bands.set(torch.zeros(4))
    out = pe(x)
    assert torch.equal(out[:, :2], x)                       # the identity
    assert torch.equal(out[:, 2:], torch.zeros_like(out[:, 2:]))
    tcnn = Frequency(2, 3)                                  # no identity: octave 0 stays on
    full = tcnn(x)
    tcnn.bands.set(torch.zeros(2))
    octave = (torch.arange(12) // 2) % 3
    assert torch.equal(tcnn(x)[:, octave == 0], full[:, octave == 0])
    assert torch.equal(tcnn(x)[:, octave > 0], torch.zeros(5, 8))
    pe.bands.set(torch.ones(4))
    assert torch.equal(pe(x), reference)                    # all on: bit for bit the plain encoding


def test_fourier_feature_bands_follow_frequency_norm():
    ff = GaussianFourier(2, n_features=6, sigma=10.0, seed=3)
    norms = ff.B.norm(dim=1)
    x = torch.rand(4, 2) * 2 - 1
    full = ff(x)
    ff.bands.set(torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0]))   # the three lowest frequencies stay
    kept = torch.argsort(norms)[:3]
    mask = torch.zeros(6, dtype=torch.bool)
    mask[kept] = True
    out = ff(x)
    assert torch.equal(out[:, mask.repeat(2)], full[:, mask.repeat(2)])
    assert torch.equal(out[:, ~mask.repeat(2)], torch.zeros(4, 6))


def test_band_schedule_sets_weights_of_the_field():
    field = build_field("relu-pe", 2, 3, n_frequencies=4)
    schedule = BandSchedule(field, "barf", 0.0, 1.0)
    schedule.apply(step=0, progress=0.3)                    # α = 1.2
    assert torch.allclose(field.encoding.bands.weights, torch.tensor([1.0, 0.0954915, 0.0, 0.0]), atol=1e-7)
    seen = iter([0.25, 0.75])
    schedule.follow(lambda: next(seen))
    schedule(0)
    assert torch.equal(field.encoding.bands.weights, torch.tensor([1.0, 0.0, 0.0, 0.0]))
    schedule(1)
    assert math.isclose(float(field.encoding.bands.weights[2]), 1.0) and float(field.encoding.bands.weights[3]) == 0.0
    schedule.unlock_all()
    assert torch.equal(field.encoding.bands.weights, torch.ones(4))


@pytest.mark.parametrize("window", [(0.5, 0.5), (-0.1, 0.5), (0.2, 1.5), (float("nan"), 0.5)])
def test_bad_windows_are_refused(window):
    with pytest.raises(InrkitError, match="--progressive-start"):
        BandSchedule(build_field("relu-pe", 2, 3, n_frequencies=4), "barf", *window)
