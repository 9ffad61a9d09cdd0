"""Initialisation statistics of SIREN (Sitzmann et al. 2020, §3.2 / supplement), SPDER's finite gradient, and the
initial activations of FINER, Gauss, WIRE and SL²A (with its Chebyshev recurrence).

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
from inrkit.fields.sl2a import ChebyshevLayer, chebyshev_basis

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


# -- FINER, Gauss, WIRE, SL²A ------------------------------------------------------------------------
def _layer_stats(field: Field, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """Per hidden layer: its input ``h``, the pre-activation ``z = Wh + b`` and its output."""
    stats = []
    h = x
    with torch.no_grad():
        for layer in field.network.hidden:
            out = layer(h)
            stats.append({"input": h, "z": layer.linear(h), "activation": out})
            h = out
    return stats


def _rms(t: torch.Tensor) -> float:
    return t.abs().square().mean().sqrt().item()


def _predicted_rms(h: torch.Tensor, weight_var: float, bias_var: float) -> float:
    """RMS of ``z = Wh + b`` for independent zero-mean weights and biases: ``√(n·Var W·E|h|² + Var b)``."""
    return math.sqrt(h.shape[1] * weight_var * h.abs().square().mean().item() + bias_var)


def test_finer_layers_and_pre_activation_spread():
    """FINER keeps SIREN's weights (first ``U(±1/n)``, hidden ``U(±√(6/n)/ω0)``) and PyTorch's bias ``U(±1/√n)``,
    but ω0 multiplies outside: ``sin(ω0·(|z|+1)·z)`` with ``z = Wh + b``."""
    torch.manual_seed(0)
    stats = _layer_stats(build_field("finer", 2, 3, width=WIDTH, depth=5), torch.rand(N_POINTS, 2) * 2 - 1)
    for index, layer in enumerate(stats):
        z, n = layer["z"], layer["input"].shape[1]
        torch.testing.assert_close(layer["activation"], torch.sin(OMEGA * (z.abs() + 1) * z), atol=1e-4, rtol=0)
        weight_var = 1 / (3 * n * n) if index == 0 else 2 / (n * OMEGA**2)
        assert _rms(z) == pytest.approx(_predicted_rms(layer["input"], weight_var, 1 / (3 * n)), rel=0.1)


def test_finer_first_bias_scale_draws_the_first_bias_only():
    torch.manual_seed(0)
    scale = 1.0
    hidden = build_field("finer", 2, 3, width=WIDTH, depth=3, first_bias_scale=scale).network.hidden
    first = hidden[0].linear.bias
    assert first.abs().max().item() <= scale
    assert first.std().item() == pytest.approx(scale / math.sqrt(3), rel=0.15)
    assert all(layer.linear.bias.abs().max().item() <= 1 / math.sqrt(WIDTH) for layer in hidden[1:])


def test_gauss_pre_activation_spread_and_range():
    """PyTorch's default init (weights and biases ``U(±1/√n)``) under ``exp(−(s·z)²)``, s = 30."""
    torch.manual_seed(0)
    stats = _layer_stats(build_field("gauss", 2, 3, width=WIDTH, depth=4), torch.rand(N_POINTS, 2) * 2 - 1)
    for layer in stats:
        z, n = layer["z"], layer["input"].shape[1]
        torch.testing.assert_close(layer["activation"], torch.exp(-(30.0 * z) ** 2), atol=1e-6, rtol=0)
        assert _rms(z) == pytest.approx(_predicted_rms(layer["input"], 1 / (3 * n), 1 / (3 * n)), rel=0.1)
        assert layer["activation"].min().item() >= 0.0 and layer["activation"].max().item() <= 1.0


def test_wire_gabor_layers_spread_and_magnitude_bound():
    """WIRE (ω0 = 20, s0 = 10): PyTorch's default init, real first layer, then complex weights whose real and
    imaginary parts are each ``U(±1/√n)``; ``|exp(jω0z − |s0z|²)| = exp(−ω0·Im z − s0²|z|²) ≤ exp(ω0²/4s0²) = e``."""
    torch.manual_seed(0)
    stats = _layer_stats(build_field("wire", 2, 3, width=WIDTH, depth=4), torch.rand(N_POINTS, 2) * 2 - 1)
    for index, layer in enumerate(stats):
        z, n = layer["z"], layer["input"].shape[1]
        assert n == (2 if index == 0 else math.floor(WIDTH / math.sqrt(2)))
        expected = torch.exp(1j * 20.0 * z - (10.0 * z).abs().square())
        torch.testing.assert_close(layer["activation"], expected.to(layer["activation"].dtype), atol=1e-5, rtol=1e-4)
        parts = 1 if index == 0 else 2  # E|W|² of a complex weight: two uniform parts
        assert _rms(z) == pytest.approx(_predicted_rms(layer["input"], parts / (3 * n), parts / (3 * n)), rel=0.1)
        bound = 1.0 if index == 0 else math.e
        assert layer["activation"].abs().max().item() <= bound * (1 + 1e-5)


def test_sl2a_chebyshev_layer_spread_and_layer_norm():
    """Coefficients ``U(±√(6/((in+out)(K+1))))``: ``Var y = Var a · Σ_{i,k} E[T_k(tanh x_i)²]`` with
    ``Var a = 2/((in+out)(K+1))``; the LayerNorm then gives every row mean 0 and the first fusion layer's
    input ``z1 ⊙ z1`` the row mean ``v/(v + ε)`` (``v`` the row's variance, about 0.005, ``ε = 10⁻⁵``)."""
    torch.manual_seed(0)
    degree = 256
    network = build_field("sl2a", 2, 3, width=WIDTH, depth=4).network
    x = torch.rand(N_POINTS, 2) * 2 - 1
    with torch.no_grad():
        y = network.first(x)
        z1 = network.norm(y)
    k = torch.arange(degree + 1, dtype=torch.float64)
    second_moments = torch.cos(k * torch.arccos(torch.tanh(x.double()))[..., None]).square().mean(0).sum().item()
    assert _rms(y) == pytest.approx(math.sqrt(second_moments * 2 / ((2 + WIDTH) * (degree + 1))), rel=0.1)
    torch.testing.assert_close(z1.mean(1), torch.zeros(N_POINTS), atol=1e-5, rtol=0)
    variance = y.var(1, unbiased=False)
    torch.testing.assert_close((z1 * z1).mean(1), variance / (variance + network.norm.eps), atol=1e-5, rtol=0)


def test_chebyshev_recurrence_is_cos_k_arccos():
    degree = 256
    u = torch.linspace(-1, 1, 2001, dtype=torch.float64)
    expected = torch.cos(torch.arange(degree + 1, dtype=torch.float64) * torch.arccos(u)[:, None])
    torch.testing.assert_close(chebyshev_basis(u[:, None], degree)[:, 0], expected, atol=1e-10, rtol=0)
    torch.testing.assert_close(chebyshev_basis(u.float()[:, None], degree)[:, 0], expected.float(), atol=1e-4, rtol=0)


def test_chebyshev_gradient_is_finite_where_tanh_saturates():
    torch.manual_seed(0)
    layer = ChebyshevLayer(2, 8, degree=16)
    x = torch.tensor([[30.0, -30.0], [10.0, -1e4], [0.5, -0.2]], requires_grad=True)
    assert torch.tanh(x[:2]).abs().eq(1.0).all()  # saturated in float32: arccos has an infinite slope there
    layer(x).sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(layer.coefficients.grad).all()
    u = torch.tanh(x.detach()).requires_grad_()  # the cosine form would give NaN there
    torch.cos(16 * torch.arccos(u)).sum().backward()
    assert not torch.isfinite(u.grad[:2]).any()
