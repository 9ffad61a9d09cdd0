"""The trainer's sampling policies (train/sampling/): INT's top-k and schedule, EVOS's selection, error-driven
probabilities, the signals' sample pools, resume and bad flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from inrkit.cli import main
from inrkit.errors import InrkitError
from inrkit.fields import Field, build_field
from inrkit.files import read_json
from inrkit.io.images import write_image
from inrkit.signals import AudioSignal, ImageSignal
from inrkit.signals.video import VideoSignal
from inrkit.train import Trainer, TrainingInterrupted, TrainOptions
from inrkit.train.sampling import build_sampling
from inrkit.train.sampling.error_driven import error_probabilities
from inrkit.train.sampling.evolutionary import crossover_order, fitness_interval, is_fitness_iteration, laplacian_map
from inrkit.train.sampling.nonparametric_teaching import int_ratio, int_reselects, top_k_residuals

CPU = torch.device("cpu")


def _policy(name: str, signal, batch_size: int | None, seed: int = 0, **kw):
    torch.manual_seed(seed)
    field = build_field("siren", signal.n_input_dims, signal.n_output_dims, width=16, depth=2)
    return build_sampling(name, signal, field, torch.Generator().manual_seed(seed), batch_size, **kw), field


def test_int_top_k_is_the_true_top_k():
    residuals = torch.randn(1000, 3, generator=torch.Generator().manual_seed(0))
    score = residuals.abs().sum(dim=1)  # INT's r_i = Σ_c |y − f|
    brute = sorted(range(1000), key=lambda i: -float(score[i]))[:137]
    assert set(top_k_residuals(residuals, 137).tolist()) == set(brute)


def test_int_policy_trains_on_the_top_k_of_the_current_field(make_image):
    signal = ImageSignal.from_array(make_image(12, 10))
    policy, field = _policy("int", signal, batch_size=None)  # full batch: the paper's protocol
    batch = policy.next_batch(0, 0.0, 100)
    with torch.no_grad():
        score = (field(signal.sample(None).coords) - signal.values).abs().sum(dim=1)
    expected = torch.argsort(score, descending=True)[: int(0.2 * 120)]
    assert len(batch) == 24
    torch.testing.assert_close(batch.values, signal.values[expected])


def test_int_schedule_hand_computed():
    # ρ(t) = min(0.2 + ⌊t/(T/10)⌋·0.08, 1), T = 1000
    assert [round(int_ratio(t, 1000), 6) for t in (0, 99, 100, 250, 950, 999)] == [0.2, 0.2, 0.28, 0.36, 0.92, 0.92]
    assert int_ratio(5, 1000, 0.5) == 0.5 and int_ratio(1000, 1000) == 1.0
    # T = 1000: startup ⌊T/4⌋ = 250, stages of ⌊750/5⌋ = 150; I = 10·(⌊max(1, t − 250)/150⌋ + 1)
    assert all(int_reselects(t, 1000) for t in range(250))
    assert [int_reselects(t, 1000) for t in (250, 255, 260, 399, 400, 410, 420, 540, 550, 950, 975, 999)] == \
        [True, False, True, False, True, False, True, True, False, True, False, False]


def test_int_reselection_steps_under_minibatches(make_image):
    """16×16 pool, B = 16: an iteration is ⌈0.2·256/16⌉ = 4 steps; over T = 10 iterations (40 steps) the first
    ⌊10/4⌋ = 2 reselect, then stages of ⌊8/5⌋ = 1 with I = 10·(⌊max(1, t−2)⌋ + 1) ≥ 20: never again."""
    signal = ImageSignal.from_array(make_image(16, 16))
    policy, _ = _policy("int", signal, batch_size=16)
    calls = []
    policy.pool_residuals = lambda: calls.append(1) or torch.rand(256, 3)  # count the pool passes
    for step in range(40):
        assert len(policy.next_batch(step, step / 40, 40)) == 16
    assert policy.per_iteration == 4 and len(calls) == 2


def test_evos_schedule_and_crossover_on_known_vectors():
    # I(t) = ⌊100 − 50·t/T⌋; fitness iterations t mod I(t) = 1
    assert [fitness_interval(t, 5000) for t in (1, 100, 2500, 5000)] == [99, 99, 75, 50]
    assert is_fitness_iteration(1, 5000) and is_fitness_iteration(100, 5000) and not is_fitness_iteration(2500, 5000)
    error = torch.arange(10, dtype=torch.float32)
    assert crossover_order(error, None, 4)[-4:].tolist() == [6, 7, 8, 9]
    # crossover: top-4 by error {6..9}, by Laplacian error {0..3}, no overlap; equal means share the 4 places 2:2
    order = crossover_order(error, 9.0 - error, 4)
    assert sorted(order[-4:].tolist()) == [0, 1, 8, 9]
    assert sorted(order.tolist()) == list(range(10)) and order[:6].tolist() == [2, 3, 4, 5, 6, 7]
    # x² along rows has Laplacian 2 (in pixel units) away from the border
    image = (torch.arange(6.0)[None, :] ** 2).repeat(5, 1).reshape(-1, 1)
    assert torch.equal(laplacian_map(image, (5, 6)).reshape(5, 6)[:, 1:-1], torch.full((5, 4), 2.0))


def test_evos_selection_is_survivors_plus_mutants(make_image):
    signal = AudioSignal.from_array(np.linspace(-1, 1, 400, dtype=np.float32) ** 3, 8000)
    policy, _ = _policy("evos", signal, batch_size=None)
    residual = torch.linspace(0, 1, 400)[torch.randperm(400, generator=torch.Generator().manual_seed(1))][:, None]
    policy.pool_residuals = lambda: residual
    first = policy.next_batch(0, 0.0, 5000)  # fitness iteration: the whole pool
    assert len(first) == 400
    second = policy.next_batch(1, 1 / 5000, 5000)
    selected = policy.selected
    top = set(torch.argsort(residual[:, 0], descending=True)[:100].tolist())  # (ρ − μ)·N = 0.25·400
    assert len(second) == 200 and len(set(selected.tolist())) == 200  # ρ·N, no sample twice
    assert set(selected[:100].tolist()) == top and not top & set(selected[100:].tolist())
    policy.next_batch(2, 2 / 5000, 5000)
    assert not torch.equal(policy.selected[100:], selected[100:])  # mutants are drawn afresh each iteration


def test_error_probabilities_follow_the_running_error_with_a_floor(make_image):
    p = error_probabilities(torch.tensor([0.0, 1.0, 3.0]), 0.1)
    torch.testing.assert_close(p, torch.tensor([0.1 / 3, 0.9 / 4 + 0.1 / 3, 0.9 * 3 / 4 + 0.1 / 3], dtype=torch.float64))
    assert torch.equal(error_probabilities(torch.zeros(4), 0.1), torch.full((4,), 0.25, dtype=torch.float64))

    signal = ImageSignal.from_array(make_image(2, 2))
    policy, _ = _policy("error", signal, batch_size=200_000, floor=0.2)
    policy.next_batch(0, 0.0, 10)
    policy.index = torch.tensor([0, 1, 1, 2, 3])  # a batch with sample 1 twice: the larger loss is kept
    policy.observe(0, torch.tensor([0.0, 0.5, 1.5, 1.0, 2.0]))
    assert policy.error.tolist() == [0.0, 1.5, 1.0, 2.0]
    policy.next_batch(1, 0.1, 10)
    counts = torch.bincount(policy.index, minlength=4).double() / 200_000
    expected = 0.8 * torch.tensor([0.0, 1.5, 1.0, 2.0], dtype=torch.float64) / 4.5 + 0.2 / 4
    torch.testing.assert_close(counts, expected, atol=4e-3, rtol=0)  # 200k draws: σ ≤ 1.1e-3


def test_pools_and_per_sample_losses_match_the_signals(make_image):
    torch.manual_seed(0)
    image = ImageSignal.from_array(make_image(6, 7))
    index = torch.tensor([0, 8, 41])
    batch = image.pool_batch(index)
    torch.testing.assert_close(batch.coords, image.sample(None).coords[index])
    field = build_field("siren", 2, 3, width=8, depth=2)
    torch.testing.assert_close(image.sample_losses(field, image.sample(None)).mean(), image.loss(field, image.sample(None)))

    frames = (np.arange(3 * 4 * 5 * 3) % 251).reshape(3, 4, 5, 3).astype(np.uint8)
    video = VideoSignal.from_array(frames)
    columns = video.train_columns.tolist()
    batch = video.pool_batch(torch.tensor([0, video.pool_size - 1]))
    expected = np.stack([frames[0, 0, columns[0]], frames[2, 3, columns[-1]]]) / 255.0
    torch.testing.assert_close(batch.values, torch.tensor(expected, dtype=torch.float32))


def test_uniform_is_the_signals_own_sampling(make_image):
    signal = ImageSignal.from_array(make_image(8, 8))
    assert TrainOptions().sampling == "uniform"
    policy, _ = _policy("uniform", signal, batch_size=10, seed=3)
    expected = signal.sample(10, torch.Generator().manual_seed(3))
    got = policy.next_batch(0, 0.0, 10)
    assert torch.equal(got.coords, expected.coords) and torch.equal(got.values, expected.values)


@pytest.mark.parametrize("policy", ["int", "evos", "error"])
def test_interrupted_and_resumed_equals_uninterrupted(tmp_path, make_image, policy):
    image = make_image(16, 16)
    options = TrainOptions(steps=24, batch_size=24, device="cpu", quiet=True, eval_every=0, sampling=policy, seed=2)

    def trainer(folder, field, hooks=()):
        return Trainer(field, ImageSignal.from_array(image), options, folder, lr=1e-3, device=CPU, step_hooks=list(hooks))

    torch.manual_seed(0)
    straight = build_field("siren", 2, 3, width=16, depth=2)
    cut_field = Field(straight.config)
    cut_field.load_state_dict(straight.state_dict())
    trainer(tmp_path / "straight", straight).fit()

    cut = trainer(tmp_path / "cut", cut_field, [lambda step: step == 9 and setattr(cut, "_stop_requested", True)])
    with pytest.raises(TrainingInterrupted, match="step 10"):
        cut.fit()
    state = read_json(tmp_path / "cut" / "checkpoint-00000010" / "state.json")
    assert state["sampling"] == {"policy": policy}
    saved = load_file(str(tmp_path / "cut" / "checkpoint-00000010" / "training.safetensors"))
    assert any(key.startswith("sampling.") for key in saved)
    resumed_field = Field(straight.config)
    again = trainer(tmp_path / "cut", resumed_field)
    again.resume()
    again.fit()
    for a, b in zip(resumed_field.parameters(), straight.parameters(), strict=True):
        assert torch.equal(a, b)
    damaged = {k[len("sampling."):]: torch.full((3,), 10**6) for k in saved if k.startswith("sampling.")}
    with pytest.raises(InrkitError, match=r"sampling state .* does not fit this signal.s pool of 256 samples"):
        trainer(tmp_path / "other", Field(straight.config)).sampling.load_state(damaged, {})


@pytest.mark.parametrize("policy, recorded", [("uniform", (None, None)), ("int", (0.2, None)), ("evos", (0.5, None)),
                                              ("error", (None, 0.1))])
def test_the_policys_default_settings_are_recorded(policy, recorded):
    options = TrainOptions(sampling=policy)
    options.resolve_defaults()  # what config.json records
    options.validate()
    assert (options.sampling_ratio, options.sampling_floor) == recorded
    given = TrainOptions(sampling="error", sampling_floor=0.3)
    given.resolve_defaults()
    assert given.sampling_floor == 0.3


BAD_FLAGS = {
    "unknown": (["--sampling", "topk"], "--sampling must be one of uniform, int, evos, error"),
    "ratio-zero": (["--sampling", "int", "--sampling-ratio", "0"], "--sampling-ratio must be in (0, 1]"),
    "ratio-uniform": (["--sampling-ratio", "0.3"], "--sampling-ratio applies to --sampling int or evos"),
    "floor-int": (["--sampling", "int", "--sampling-floor", "0.2"], "--sampling-floor applies to --sampling error"),
    "floor-big": (["--sampling", "error", "--sampling-floor", "1.5"], "--sampling-floor must be in (0, 1]"),
}


@pytest.mark.parametrize("case", BAD_FLAGS)
def test_bad_sampling_flags_are_one_line_exit_2(case, tmp_path, capsys):
    flags, phrase = BAD_FLAGS[case]
    png = write_image(tmp_path / "in.png", np.zeros((8, 8, 3), dtype=np.uint8))
    code = main(["fit", str(png), "--out", str(tmp_path / "out"), "--steps", "2", "--width", "8", "--quiet", *flags])
    captured = capsys.readouterr()
    assert code == 2 and captured.err.count("\n") == 1 and phrase in captured.err, captured.err
    assert not (tmp_path / "out").exists()


def test_signals_without_a_pool_are_refused(tmp_path: Path):
    points = np.random.default_rng(0).standard_normal((500, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    np.savetxt(tmp_path / "cloud.xyz", np.concatenate([points, points], axis=1))
    code = main(["fit", str(tmp_path / "cloud.xyz"), "--out", str(tmp_path / "out"), "--steps", "2", "--width", "8",
                 "--quiet", "--sampling", "int"])
    assert code == 2 and not (tmp_path / "out").exists()
    with pytest.raises(InrkitError, match="--sampling error needs a signal whose loss is a mean over a fixed pool"):
        build_sampling("error", type("NoPool", (ImageSignal,), {"pool_size": None}).from_array(np.zeros((2, 2, 1))),
                       build_field("siren", 2, 1, width=8, depth=2), torch.Generator(), 4)
