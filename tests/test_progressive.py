"""Progressive encodings: band weights on the encodings and the schedules' windows (hand-computed values)."""

from __future__ import annotations

import itertools
import math
import signal
import threading

import pytest
import torch

import inrkit
from inrkit.encodings import Frequency, GaussianFourier, PositionalEncoding
from inrkit.encodings.spatial_mask import SpatialBandMask
from inrkit.errors import InrkitError
from inrkit.fields import build_field
from inrkit.signals import ImageSignal
from inrkit.train import TrainingInterrupted
from inrkit.train.progressive import BandSchedule, SapeSchedule, band_weights, cosine_window


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


# -- levels on grids, SAPE, the run lifecycle ---------------------------------------------------------
def test_hard_level_weights_on_a_grid_equal_the_level_mask():
    field = build_field("hashgrid", 2, 3, n_levels=6, log2_hashmap_size=8)
    grid = field.encoding
    x = torch.rand(40, 2)
    grid.max_level = 2 / 6                                    # tcnn's mask: levels 0-2 on
    masked = grid(x)
    grid.max_level = 1.0
    grid.bands.set(torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0]))  # the same three levels as band weights
    assert torch.equal(grid(x), masked)
    grid.bands.set(torch.tensor([1.0, 0.25, 0.0, 0.0, 0.0]))  # a soft weight scales level 2's features
    grid.bands.set(torch.ones(5))
    full = grid(x)
    grid.bands.set(torch.tensor([1.0, 0.25, 0.0, 0.0, 0.0]))
    assert torch.allclose(grid(x)[:, 4:6], 0.25 * full[:, 4:6]) and torch.equal(grid(x)[:, :4], full[:, :4])


def test_sape_interpolation_and_blur_by_hand():
    mask = SpatialBandMask(1, 3, resolution=6, input_domain="signed")
    index, weight = mask.corners(torch.tensor([[0.0], [0.5], [1.0]]))
    # g = u·(R − 2) + 0.5: u = 0 → 0.5 (cells 0, 1 half each), 0.5 → 2.5, 1 → 4.5
    assert index.tolist() == [[0, 1], [2, 3], [4, 5]]
    assert torch.allclose(weight, torch.full((3, 2), 0.5))
    mask.level.copy_(torch.tensor([0.0, 0.0, 0.0, 3.0, 3.0, 3.0]))
    # band k's indicator blurred with K = 3 (6 cells), replicate borders: cell 2 sees (0 + 0 + 1)/3
    assert torch.allclose(mask.table()[:, 0], torch.tensor([0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0]))
    # x = 0.5 in [-1, 1] is u = 0.75: g = 3.5, cells 3 and 4 → ½(2/3) + ½(1) for every band
    assert torch.allclose(mask(torch.tensor([[0.5]])), torch.full((1, 3), 5 / 6))


def test_sape_mask_is_monotone_per_cell_and_stops_below_epsilon():
    mask = SpatialBandMask(2, 4, resolution=8, input_domain="signed")
    xs = torch.linspace(-1, 1, 64)
    coords = torch.cartesian_prod(xs, xs)
    left = coords[:, 0] < 0                                 # the first input axis is the grid's fastest axis
    history = [mask.level.clone()]
    for boundary in range(4):
        losses = torch.where(left, torch.tensor(0.1), torch.tensor(1e-5))
        if boundary >= 2:
            losses = torch.full_like(losses, 0.1)             # a stopped cell never restarts
        mask.splat(coords, losses)
        mask.advance(1e-3)
        history.append(mask.level.clone())
    for before, after in itertools.pairwise(history):
        assert bool((after >= before).all())
    grid = mask.level.view(8, 8)                            # (axis 1, axis 0)
    assert torch.equal(grid[:, 0], torch.full((8,), 4.0))   # high loss: a band per boundary, all four open
    assert torch.equal(grid[:, 7], torch.zeros(8))          # low loss: stopped at the first boundary for good
    assert int(mask.boundaries) == 4 and float(mask.loss_weight.sum()) == 0.0


def test_sape_schedule_passes_the_boundaries_due():
    field = build_field("ffn", 2, 3, width=8, depth=1)
    field.encoding.bands.spatial = SpatialBandMask(2, field.encoding.bands.n_bands, 8, "signed")
    schedule = SapeSchedule(field, 0.0, 0.5, progress=lambda: 0.1)
    schedule(0)                                             # ⌊255·0.1/0.5⌋ = 51 boundaries
    assert int(field.encoding.bands.spatial.boundaries) == 51


class _InterruptAt(ImageSignal):
    """Delivers SIGINT (a Ctrl-C) during the 12th loss, per-sample or not."""

    calls = 0

    def _count(self) -> None:
        self.calls += 1
        if self.calls == 12:
            signal.raise_signal(signal.SIGINT)

    def loss(self, field, batch):
        self._count()
        return super().loss(field, batch)

    def sample_losses(self, field, batch):
        self._count()
        return super().sample_losses(field, batch)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="SIGINT needs the main thread")
@pytest.mark.parametrize(("model", "flags"), [
    ("relu-pe", {"progressive": "barf", "progressive_start": 0.0, "progressive_end": 0.8}),
    ("relu-pe", {"progressive": "sape", "n_frequencies": 4}),
    ("hashgrid", {"coarse_to_fine": 4, "log2_hashmap_size": 8, "backend": "torch"}),
])
def test_interrupted_and_resumed_run_continues_the_schedule_exactly(tmp_path, make_image, model, flags):
    image = make_image(16, 16)
    options = {"model": model, "width": 16, "depth": 2, "steps": 24, "batch_size": 64, "eval_every": 0, "seed": 1,
               "device": "cpu", "quiet": True, **flags}
    with pytest.raises(TrainingInterrupted, match="interrupted at step"):
        inrkit.fit(_InterruptAt.from_array(image), out=tmp_path / "cut", **options)
    resumed = inrkit.fit(ImageSignal.from_array(image), resume=True, out=tmp_path / "cut", steps=24, quiet=True)
    straight = inrkit.fit(ImageSignal.from_array(image), out=tmp_path / "straight", **options)
    assert resumed.config["train"] == straight.config["train"]
    for (name, a), b in zip(resumed.field.state_dict().items(), straight.field.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    if flags.get("progressive") == "sape":                  # SAPE's mask moved and was saved with the weights
        mask = resumed.field.encoding.bands.spatial
        assert int(mask.boundaries) == 4 and bool((mask.level > 0).any())
        assert torch.equal(inrkit.load(tmp_path / "cut").encoding.bands.spatial.level, mask.level)


def test_coarse_to_fine_is_the_levels_schedule_by_steps(tmp_path, make_image):
    run = inrkit.fit(ImageSignal.from_array(make_image(8, 8)), model="hashgrid", out=tmp_path / "run", steps=3,
                     coarse_to_fine=5, log2_hashmap_size=8, backend="torch", eval_every=0, quiet=True, device="cpu")
    train = run.config["train"]
    assert (train["progressive"], train["coarse_to_fine"], train["progressive_start"]) == ("levels", 5, None)
    barf = inrkit.fit(ImageSignal.from_array(make_image(8, 8)), model="relu-pe", out=tmp_path / "barf", steps=2,
                      progressive="barf", width=8, depth=1, eval_every=0, quiet=True, device="cpu")
    assert (barf.config["train"]["progressive_start"], barf.config["train"]["progressive_end"]) == (0.1, 0.5)
    assert barf.field.encoding.bands.all_on                 # the saved field has every band on


@pytest.mark.parametrize(("flags", "message"), [
    (["--progressive", "cosine"], "--progressive must be one of"),
    (["--progressive", "barf", "--progressive-start", "0.6", "--progressive-end", "0.4"], "0 <= start < end <= 1"),
    (["--progressive-end", "0.5"], "need --progressive"),
    (["--progressive", "barf", "--coarse-to-fine", "10"], "cannot be combined with --progressive barf"),
    (["--coarse-to-fine", "-1"], "--coarse-to-fine must be >= 0"),
    (["--model", "siren", "--progressive", "barf"], "needs an encoding with frequency bands"),
    (["--model", "siren", "--progressive", "sape"], "needs an encoding with frequency bands"),
])
def test_bad_progressive_flags_exit_2_with_one_line(tmp_path, smooth_png, capsys, flags, message):
    from inrkit.cli import main

    png = smooth_png(height=8, width=8)
    code = main(["fit", str(png), "--out", str(tmp_path / "run"), "--steps", "2", "--quiet", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
