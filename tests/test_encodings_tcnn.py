"""tcnn's non-grid encodings (SphericalHarmonics, Frequency, Identity, Composite) and FullyFusedMLP."""

from __future__ import annotations

import math

import pytest
import torch

from inrkit.encodings import Composite, Frequency, SphericalHarmonics, build_encoding
from inrkit.errors import ConfigError
from inrkit.fields import Field
from inrkit.fields.fused_mlp import TcnnMLP


def _tcnn_sh_reference(d: torch.Tensor) -> torch.Tensor:
    """tcnn's generated SH constants (bands 0-3 and the first of band 4), written out."""
    x, y, z = d.unbind(1)
    x2, y2, z2 = x * x, y * y, z * z
    return torch.stack([
        torch.full_like(x, 0.28209479177387814), -0.48860251190291987 * y, 0.48860251190291987 * z,
        -0.48860251190291987 * x, 1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
        0.94617469575755997 * z2 - 0.31539156525251999, -1.0925484305920792 * x * z,
        0.54627421529603959 * x2 - 0.54627421529603959 * y2, 0.59004358992664352 * y * (-3.0 * x2 + y2),
        2.8906114426405538 * x * y * z, 0.45704579946446572 * y * (1.0 - 5.0 * z2),
        0.3731763325901154 * z * (5.0 * z2 - 3.0), 0.45704579946446572 * x * (1.0 - 5.0 * z2),
        1.4453057213202769 * z * (x2 - y2), 0.59004358992664352 * x * (-x2 + 3.0 * y2),
        2.5033429417967046 * x * y * (x2 - y2), 1.7701307697799304 * y * z * (-3.0 * x2 + y2),
    ], dim=1)


def test_spherical_harmonics_match_tcnn_constants_and_input_convention():
    d = torch.nn.functional.normalize(torch.randn(100, 3, dtype=torch.float64), dim=1)
    sh = SphericalHarmonics(3, {"degree": 5})
    ours = sh((d + 1) / 2)  # tcnn takes (d + 1)/2
    assert ours.shape == (100, 25)
    assert torch.allclose(ours[:, :18].double(), _tcnn_sh_reference(d), atol=1e-6)


def test_spherical_harmonics_are_orthonormal_up_to_degree_8():
    # Fibonacci sphere: near-uniform points; the Gram matrix approximates ∫ Y_i Y_j dω
    n = 20000
    k = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * k / n
    phi = math.pi * (1 + 5**0.5) * k
    d = torch.stack((torch.sqrt(1 - z * z) * torch.cos(phi), torch.sqrt(1 - z * z) * torch.sin(phi), z), 1)
    from inrkit.encodings.spherical_harmonics import spherical_harmonics

    basis = spherical_harmonics(d, 8)
    gram = basis.T @ basis * (4 * math.pi / n)
    assert torch.allclose(gram, torch.eye(64, dtype=torch.float64), atol=2e-3)


def test_spherical_harmonics_bad_degree():
    with pytest.raises(ConfigError, match="degree"):
        SphericalHarmonics(3, {"degree": 9})


def test_frequency_layout_is_tcnns():
    x = torch.tensor([[0.25, 0.5]])
    y = Frequency(2, 3)(x)
    assert y.shape == (1, 12)
    for j in range(12):
        dim, octave, cosine = j // 6, (j // 2) % 3, j % 2
        phase = 2**octave * math.pi * x[0, dim].item()
        assert y[0, j].item() == pytest.approx(math.cos(phase) if cosine else math.sin(phase), abs=1e-6)


def test_composite_splits_dimensions():
    config = {"otype": "Composite", "nested": [
        {"n_dims_to_encode": 3, "otype": "HashGrid", "n_levels": 4, "log2_hashmap_size": 10},
        {"otype": "SphericalHarmonics", "degree": 3},
    ]}
    composite = build_encoding(6, config)
    assert isinstance(composite, Composite) and composite.n_output_dims == 8 + 9
    x = torch.rand(7, 6)
    y = composite(x)
    assert torch.allclose(y[:, 8:], composite.nested[1](x[:, 3:]))
    summed = build_encoding(2, {"otype": "Composite", "reduction": "Sum", "nested": [
        {"n_dims_to_encode": 1, "otype": "Frequency", "n_frequencies": 2},
        {"n_dims_to_encode": 1, "otype": "Frequency", "n_frequencies": 2}]})
    assert summed(x[:, :2]).shape == (7, 4)
    with pytest.raises(ConfigError, match="n_dims_to_encode"):
        build_encoding(2, {"otype": "Composite", "nested": [{"n_dims_to_encode": 3, "otype": "Frequency"}]})


def test_identity_scale_offset():
    assert torch.equal(build_encoding(2, {"otype": "Identity", "scale": 2.0, "offset": 1.0})(torch.ones(1, 2)),
                       torch.full((1, 2), 3.0))


def test_fully_fused_mlp_layout_and_parameter_count():
    mlp = TcnnMLP(80, 1, {"otype": "FullyFusedMLP", "n_neurons": 32, "n_hidden_layers": 1})
    assert [tuple(w.shape) for w in mlp.weights] == [(32, 80), (16, 32)]
    assert sum(p.numel() for p in mlp.parameters()) == 3072  # tcnn issue #452
    odd = TcnnMLP(3, 4, {"otype": "FullyFusedMLP", "n_neurons": 64, "n_hidden_layers": 2})
    assert [tuple(w.shape) for w in odd.weights] == [(64, 16), (64, 64), (16, 64)]  # input padded to 16
    assert not any("bias" in name for name, _ in odd.named_parameters())
    x = torch.randn(5, 3)
    manual = torch.relu(torch.relu(torch.nn.functional.pad(x, (0, 13)) @ odd.weights[0].T) @ odd.weights[1].T)
    assert torch.allclose(odd(x), (manual @ odd.weights[2].T)[:, :4], atol=1e-6)


def test_fully_fused_mlp_bad_configs():
    with pytest.raises(ConfigError, match="n_neurons"):
        TcnnMLP(3, 1, {"otype": "FullyFusedMLP", "n_neurons": 100})
    with pytest.raises(ConfigError, match="activation"):
        TcnnMLP(3, 1, {"otype": "FullyFusedMLP", "activation": "Sine", "n_neurons": 64})
    assert TcnnMLP(3, 1, {"otype": "CutlassMLP", "activation": "Sine", "n_neurons": 100}).weights[0].shape == (100, 16)


def test_any_encoding_feeds_any_backbone():
    field = Field({"n_input_dims": 2, "n_output_dims": 3,
                   "encoding": {"otype": "HashGrid", "n_levels": 4, "log2_hashmap_size": 10},
                   "network": {"otype": "Siren", "n_neurons": 32, "n_hidden_layers": 2}})
    assert field(torch.rand(6, 2) * 2 - 1).shape == (6, 3)
    field = Field({"n_input_dims": 2, "n_output_dims": 1, "encoding": {"otype": "Frequency", "n_frequencies": 4},
                   "network": {"otype": "SL2A", "n_neurons": 32, "n_hidden_layers": 2, "degree": 8, "rank": 4}})
    assert field(torch.rand(6, 2)).shape == (6, 1)
