"""Initialisation statistics of SIREN (Sitzmann et al. 2020, §3.2 / supplement) and SPDER's finite gradient.

With the preset's official form ``sin(ω0·(Wx + b))`` the bias, PyTorch's default ``U(±1/√n)``, is also
scaled by ω0, so a hidden pre-activation is ``ω0·Wx`` (≈ N(0, 1), the paper's result) plus ``ω0·b`` with
variance ``ω0²/(3n)``: for ω0 = 30, n = 256 its std is ``√(1 + 900/768) ≈ 1.47``. The paper's form
``sin(ω0·Wx + b)`` (``omega_on_bias=False``) gives the standard normal itself.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from inrkit.fields import Field, build_field
from inrkit.fields.activations import spder

N_POINTS = 8192
WIDTH = 256
OMEGA = 30.0


def _pre_activations(field: Field, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Per hidden layer: the weight part ω0·Wx, the full pre-activation z, and the activation."""
    stats = []
    h = x
    with torch.no_grad():
        for layer in field.network.hidden:
            weight_part = layer.omega_0 * (h @ layer.linear.weight.T)
            bias = layer.omega_0 * layer.linear.bias if layer.omega_on_bias else layer.linear.bias
            z = weight_part + bias
            out = layer(h)
            assert torch.allclose(out, torch.sin(z), atol=1e-4)  # the layer computes what we model
            stats.append({"weight_part": weight_part, "z": z, "activation": out})
            h = out
    return stats


@pytest.fixture(scope="module")
def siren_stats():
    torch.manual_seed(0)
    field = build_field("siren", 2, 3, width=WIDTH, depth=5)
    x = torch.rand(N_POINTS, 2) * 2 - 1
    return _pre_activations(field, x)


def test_first_layer_spread(siren_stats):
    # W ~ U(±1/2), x ~ U(±1)², b ~ U(±1/√2): Var(Wx + b) = 2·(1/12)(1/3) + 1/6 = 2/9
    z = siren_stats[0]["z"]
    assert z.std().item() == pytest.approx(OMEGA * math.sqrt(2 / 9), rel=0.1)
    assert abs(z.mean().item()) < 1.0


def test_hidden_weight_part_is_standard_normal(siren_stats):
    for layer in siren_stats[1:]:
        part = layer["weight_part"]
        std = part.std().item()
        assert 0.85 < std < 1.15
        assert abs(part.mean().item()) < 0.15
        centred = (part - part.mean()).abs() / std
        assert (centred < 1).float().mean().item() == pytest.approx(0.6827, abs=0.03)
        assert (centred < 2).float().mean().item() == pytest.approx(0.9545, abs=0.02)


def test_hidden_pre_activation_spread_with_omega_on_bias(siren_stats):
    predicted = math.sqrt(1 + OMEGA**2 / (3 * WIDTH))  # ≈ 1.47
    for layer in siren_stats[1:]:
        z = layer["z"]
        assert z.std().item() == pytest.approx(predicted, rel=0.12)
        assert abs(z.mean().item()) < 0.3


def test_hidden_pre_activation_is_standard_normal_in_paper_form():
    torch.manual_seed(0)
    config = copy.deepcopy(build_field("siren", 2, 3, width=WIDTH, depth=5).config)
    config["network"]["omega_on_bias"] = False
    field = Field(config)
    stats = _pre_activations(field, torch.rand(N_POINTS, 2) * 2 - 1)
    for layer in stats[1:]:
        z = layer["z"]
        assert 0.8 < z.std().item() < 1.25
        assert abs(z.mean().item()) < 0.2


def test_activations_are_arcsine_distributed(siren_stats):
    for index, layer in enumerate(siren_stats):
        a = layer["activation"].flatten()
        assert a.abs().max().item() <= 1.0
        assert a.std().item() == pytest.approx(1 / math.sqrt(2), abs=0.03)
        assert abs(a.mean().item()) < 0.05
        # Kolmogorov-Smirnov distance to the arcsine CDF 1/2 + arcsin(y)/π
        values = torch.sort(a[:: 4].double()).values
        cdf = 0.5 + torch.asin(values) / math.pi
        empirical = torch.arange(1, len(values) + 1, dtype=torch.float64) / len(values)
        assert (cdf - empirical).abs().max().item() < (0.01 if index == 0 else 0.05)


@pytest.mark.parametrize("damping", ["sqrt", "arctan"])
@pytest.mark.parametrize("ftz", [False, True])
def test_spder_gradient_finite_at_zero(damping, ftz, flush_denormal):
    torch.set_flush_denormal(ftz)
    z = torch.tensor([0.0, -0.0, 1e-45, -1e-40, 1e-30, 1e-3, -2.0, 5.0], requires_grad=True)
    y = spder(z, damping)
    y.sum().backward()
    assert torch.isfinite(y).all()
    assert torch.isfinite(z.grad).all()
    assert y[0].item() == 0.0
    assert abs(z.grad[0].item()) < 1e-6  # d/dz sin(z)·δ(z) vanishes at 0 for both dampings
    assert y[6].item() == pytest.approx(math.sin(-2.0) * (math.sqrt(2.0) if damping == "sqrt" else math.atan(-2.0)), rel=1e-5)


def test_spder_rejects_unknown_damping():
    with pytest.raises(ValueError, match="sqrt"):
        spder(torch.zeros(2), "log")


def test_spder_field_finite_everywhere(flush_denormal):
    torch.manual_seed(0)
    field = build_field("spder", 2, 3, width=64)
    coords = torch.cat([torch.zeros(4, 2), torch.rand(256, 2) * 2 - 1, torch.tensor([[1.0, -1.0], [-1.0, 1.0]])])
    h = coords
    for layer in field.network.hidden:
        h = layer(h)
        assert torch.isfinite(h).all()
    out = field(coords)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in field.parameters())
