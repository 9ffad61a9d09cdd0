"""ResFields layer: shapes, parameter counts, ΔW = 0 equivalence, time modes, grouped vs factored paths."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from inrkit.errors import InrkitError
from inrkit.fields import Field, build_field
from inrkit.fields.resfields import ResFieldLinear


def frame_centres(n_frames: int) -> torch.Tensor:
    return (2 * torch.arange(n_frames) + 1) / n_frames - 1


def test_shapes_and_parameter_count():
    layer = ResFieldLinear(16, 8, n_frames=10, rank=4)
    assert layer.coefficients.shape == (10, 4)
    assert layer.matrices.shape == (4, 8 * 16)
    assert sum(p.numel() for p in layer.parameters()) == 16 * 8 + 8 + 10 * 4 + 4 * 8 * 16
    assert layer(torch.randn(33, 16), torch.rand(33) * 2 - 1).shape == (33, 8)
    assert layer.weights_at(frame_centres(10)).shape == (10, 8, 16)


def test_field_parameter_count_matches_the_formula():
    # SIREN (t, y, x) -> RGB, 4 sine layers of 256: 1,024 + 3·65,792 + 771; ResFields on layers 1-3: C·R + R·256²
    field = build_field("resfields", 3, 3, n_frames=250)
    assert field.n_params == 199_171 + 3 * (250 * 10 + 10 * 256 * 256)
    assert build_field("resfields", 3, 3, n_frames=20, rank=2, resfield_layers="2").n_params == 199_171 + 20 * 2 + 2 * 65_536


def test_zero_delta_equals_plain_linear():
    torch.manual_seed(0)
    layer = ResFieldLinear(12, 7, n_frames=5, rank=3)
    with torch.no_grad():
        layer.coefficients.zero_()
    plain = nn.Linear(12, 7)
    plain.load_state_dict({"weight": layer.weight, "bias": layer.bias})
    x, t = torch.randn(40, 12), torch.rand(40) * 2 - 1
    torch.testing.assert_close(layer(x, t), plain(x))
    torch.testing.assert_close(layer(x, t, scale=30.0), 30.0 * plain(x))


def test_mul_fusion_starts_at_identity():
    layer = ResFieldLinear(6, 5, n_frames=4, rank=3, fusion="mul")
    x, t = torch.randn(9, 6), torch.rand(9) * 2 - 1
    torch.testing.assert_close(layer(x, t), nn.functional.linear(x, layer.weight, layer.bias))


def test_weights_follow_the_low_rank_formula():
    torch.manual_seed(1)
    layer = ResFieldLinear(4, 3, n_frames=6, rank=2)
    frame = 4
    expected = layer.weight + (layer.coefficients[frame] @ layer.matrices).view(3, 4)
    torch.testing.assert_close(layer.weights_at(frame_centres(6)[frame : frame + 1])[0], expected)


def test_lookup_equals_interpolation_at_frame_centres_and_interpolates_between():
    torch.manual_seed(2)
    lookup = ResFieldLinear(4, 3, n_frames=6, rank=2, mode="lookup")
    interp = ResFieldLinear(4, 3, n_frames=6, rank=2, mode="interpolation")
    interp.load_state_dict(lookup.state_dict())
    centres = frame_centres(6)
    torch.testing.assert_close(lookup.coefficients_at(centres), lookup.coefficients)
    torch.testing.assert_close(interp.coefficients_at(centres), lookup.coefficients)
    midway = (centres[1:] + centres[:-1]) / 2
    torch.testing.assert_close(interp.coefficients_at(midway), (lookup.coefficients[1:] + lookup.coefficients[:-1]) / 2)
    # beyond the first and last frame centres the coefficients are clamped at the border rows
    ends = interp.coefficients_at(torch.tensor([-1.0, 1.0]))
    torch.testing.assert_close(ends, lookup.coefficients[[0, -1]])


@pytest.mark.parametrize("fusion", ["add", "mul"])
def test_grouped_padded_and_factored_paths_agree(fusion):
    torch.manual_seed(3)
    layer = ResFieldLinear(8, 5, n_frames=7, rank=3, fusion=fusion)
    with torch.no_grad():
        layer.coefficients.normal_()
        layer.matrices.normal_()
    frames = torch.randint(7, (60,))
    t = frame_centres(7)[frames]
    x = torch.randn(60, 8)
    reference = torch.einsum("noi,ni->no", layer.weights_at(t), x) + layer.bias  # one matrix per sample
    torch.testing.assert_close(layer(x, t), reference)  # unsorted: sorted, padded groups, unsorted back
    order = torch.argsort(frames, stable=True)
    torch.testing.assert_close(layer(x[order], t[order]), reference[order])
    torch.testing.assert_close(layer._factored(x, t, 1.0), reference)
    equal = frame_centres(7).repeat_interleave(4)  # equal groups: a single batched product
    x_equal = torch.randn(28, 8)
    torch.testing.assert_close(layer(x_equal, equal), torch.einsum("noi,ni->no", layer.weights_at(equal), x_equal) + layer.bias)


def test_gradients_reach_only_the_sampled_frames():
    layer = ResFieldLinear(4, 3, n_frames=5, rank=2)
    layer(torch.randn(10, 4), frame_centres(5)[[1, 3]].repeat_interleave(5)).square().sum().backward()
    touched = layer.coefficients.grad.abs().sum(1) > 0
    assert touched.tolist() == [False, True, False, True, False]


def test_field_config_round_trip_and_time_column():
    field = build_field("resfields", 3, 2, n_frames=4, width=16, rank=2)
    rebuilt = Field(field.config)
    rebuilt.load_state_dict(field.state_dict())
    coords = torch.rand(20, 3) * 2 - 1
    torch.testing.assert_close(rebuilt(coords), field(coords))
    assert field.config["network"]["n_frames"] == 4
    moved = coords.clone()
    moved[:, 0] = frame_centres(4)[2]
    assert not torch.allclose(field(moved), field(coords))  # the output depends on the time column


def test_resfields_needs_frames_and_valid_options():
    with pytest.raises(InrkitError, match="time-varying"):
        build_field("resfields", 2, 3)
    with pytest.raises(InrkitError, match="outside"):
        build_field("resfields", 3, 3, n_frames=4, resfield_layers="1,7")
    with pytest.raises(InrkitError, match="time-mode"):
        build_field("resfields", 3, 3, n_frames=4, time_mode="nearest")
    with pytest.raises(InrkitError, match="fusion"):
        build_field("resfields", 3, 3, n_frames=4, fusion="concat")
    with pytest.raises(InrkitError, match="does not apply"):
        build_field("siren", 3, 3, fusion="add")


def test_a_batch_over_many_frames_builds_one_matrix_per_frame(monkeypatch):
    layer = ResFieldLinear(32, 32, n_frames=50, rank=4)
    built: list[int] = []
    original = layer.weights_at
    monkeypatch.setattr(layer, "weights_at", lambda t: built.append(len(t)) or original(t))
    frames = torch.randint(50, (5000,))
    layer(torch.randn(5000, 32), frame_centres(50)[frames])  # unsorted, every frame present
    assert built == [len(torch.unique(frames))]  # never one matrix per sample
    built.clear()
    layer(torch.randn(5000, 32), torch.rand(5000) * 2 - 1)  # every sample at its own time: factored form
    assert built == []
