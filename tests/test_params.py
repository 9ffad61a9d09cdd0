"""Parameter counts of the presets (the published numbers) and default-architecture construction."""

from __future__ import annotations

import pytest
import torch

from inrkit import InrkitError
from inrkit.fields import PRESETS, Field, build_field

PUBLISHED = {"siren": 198_915, "finer": 198_915, "gauss": 198_915, "sl2a": 330_243, "spder": 330_499, "wire": 99_915}


@pytest.mark.parametrize(("model", "expected"), PUBLISHED.items())
def test_published_parameter_count(model, expected):
    assert build_field(model, 2, 3).n_params == expected


def test_relu_pe_parameter_count():
    explicit = build_field("relu-pe", 2, 3, n_frequencies=5)
    assert explicit.n_params == 204_035
    default = build_field("relu-pe", 2, 3)  # Nyquist rule at 512 samples per axis -> 5 octaves
    assert default.config["encoding"]["n_frequencies"] == 5
    assert default.n_params == 204_035


def test_wire_count_matches_its_layer_list():
    field = build_field("wire", 2, 3)
    linears = [layer.linear for layer in field.network.hidden] + [field.network.output]
    layout = [(lin.in_features, lin.out_features, lin.weight.dtype) for lin in linears]
    assert layout == [(2, 181, torch.float32)] + [(181, 181, torch.complex64)] * 3 + [(181, 3, torch.complex64)]
    derived = sum(n_in * n_out + n_out for n_in, n_out, _ in layout)  # a complex entry counts once
    assert derived == field.n_params == 99_915


def test_spder_has_six_hidden_layers():
    field = build_field("spder", 2, 3)
    assert len(field.network.hidden) == 6
    assert field.n_params == 2 * 256 + 256 + 5 * (256 * 256 + 256) + 256 * 3 + 3


def test_width_and_depth_overrides():
    field = build_field("siren", 2, 3, width=64, depth=2)
    assert field.n_params == (2 * 64 + 64) + (64 * 64 + 64) + (64 * 3 + 3)
    assert field.config["network"]["n_neurons"] == 64
    assert field.config["network"]["n_hidden_layers"] == 2


@pytest.mark.parametrize("model", PRESETS)
def test_default_architecture_builds_runs_and_rebuilds(model):
    torch.manual_seed(0)
    n_in = 3 if PRESETS[model].time_varying else 2  # time-varying presets see (t, y, x)
    field = build_field(model, n_in, 3, n_frames=5 if PRESETS[model].time_varying else None)
    coords = torch.rand(64, n_in) * 2 - 1
    out = field(coords)
    assert out.shape == (64, 3)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in field.parameters()]
    assert all(g is not None and torch.isfinite(torch.view_as_real(g) if g.is_complex() else g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    rebuilt = Field(field.config)  # the JSON-able config alone rebuilds the same architecture
    assert rebuilt.n_params == field.n_params
    rebuilt.load_state_dict(field.state_dict())
    assert torch.equal(rebuilt(coords), out.detach())


def test_option_that_does_not_apply_is_refused():
    with pytest.raises(InrkitError, match="does not apply"):
        build_field("relu", 2, 3, omega0=10.0)


def test_unknown_model_lists_presets():
    with pytest.raises(InrkitError, match="siren"):
        build_field("nope", 2, 3)
