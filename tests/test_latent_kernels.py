"""The CPU kernels of latent fields (``inrkit.backends.cpu_mlp``, ``cpu_conv``, ``cpu_softround``, the bilinear
upsampling's backward) against their PyTorch references on random inputs.

Tolerances: the kernels do the references' float32 arithmetic in another order (blocks of 16 points, the
parameters' gradients summed per lane, then in double), so bits agree to 1e-5 relative and gradients to
2e-5 of their largest magnitude (the ARM's gradient sums a latent's terms from up to 13 latents).
"""

from __future__ import annotations

import os
import shutil

import pytest
import torch
import torch.nn.functional as F

from inrkit.backends import cpu_conv, cpu_mlp, cpu_softround
from inrkit.encodings.latent_grids import MAX_LATENT, quantise_latent, soft_round, upsample_bilinear
from inrkit.fields.arm import ARM, CODER_PROBABILITY_FLOOR, PROBABILITY_FLOOR
from inrkit.fields.synthesis import Synthesis

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CC", "cc")) is None, reason="no C compiler for the kernels")


def test_the_kernels_build_where_there_is_a_compiler():
    """Otherwise every test below would pass by running the references against themselves."""
    assert cpu_mlp.available() and cpu_conv.available() and cpu_softround.available()

ARMS = [{"n_context": 8, "n_neurons": 8, "n_hidden_layers": 1}, {"n_context": 12, "n_neurons": 12, "n_hidden_layers": 2},
        {"n_context": 21, "n_neurons": 24, "n_hidden_layers": 3}]
GRID_SHAPES = [(37, 53), (19, 17), (5, 40), (2, 3), (1, 1)]


def random_arm(config: dict, generator: torch.Generator) -> ARM:
    arm = ARM(config)
    with torch.no_grad():
        for parameter in arm.parameters():
            parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
    return arm


def random_latents(generator: torch.Generator) -> list[torch.Tensor]:
    """Rounded values with soft-rounding noise, some far in a Laplace's tail (the kernel's two branches)."""
    return [((3 * torch.randn(shape, generator=generator)).round() + 0.3 * torch.randn(shape, generator=generator))
            .requires_grad_() for shape in GRID_SHAPES]


def gradients(loss: torch.Tensor, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, tensors))


def assert_gradients_close(result: list[torch.Tensor], reference: list[torch.Tensor], tolerance: float = 2e-5) -> None:
    for got, want in zip(result, reference, strict=True):
        assert got.shape == want.shape
        assert float((got - want).abs().max()) <= tolerance * max(float(want.abs().max()), 1e-6)


@pytest.mark.parametrize("floor", [PROBABILITY_FLOOR, CODER_PROBABILITY_FLOOR])
@pytest.mark.parametrize("config", ARMS)
def test_arm_bits_and_their_gradients_match_the_reference(config, floor):
    generator = torch.Generator().manual_seed(len(config) + config["n_context"])
    arm = random_arm(config, generator)
    grids = random_latents(generator)
    tensors = [*grids, *arm.parameters()]
    reference = arm.reference_bits(grids, floor)
    result = cpu_mlp.arm_bits(grids, arm.offsets, arm.layers(), floor)
    assert float(result.detach()) == pytest.approx(float(reference.detach()), rel=1e-5)
    upstream = 0.37  # the backward scales the gradient of Σ bits
    assert_gradients_close(gradients(upstream * result, tensors), gradients(upstream * reference, tensors))


def test_arm_bits_do_not_depend_on_the_thread_count_beyond_rounding():
    generator = torch.Generator().manual_seed(3)
    arm = random_arm(ARMS[1], generator)
    grids = [(3 * torch.randn(96, 70, generator=generator)).round().requires_grad_()]
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            bits = cpu_mlp.arm_bits(grids, arm.offsets, arm.layers(), PROBABILITY_FLOOR)
            results.append((float(bits.detach()), gradients(bits, [*grids, *arm.parameters()])))
    finally:
        torch.set_num_threads(previous)
    for bits, grads in results[1:]:
        assert bits == pytest.approx(results[0][0], rel=1e-6)
        assert_gradients_close(grads, results[0][1])


def test_arm_bits_without_gradient_equal_the_differentiable_ones():
    generator = torch.Generator().manual_seed(4)
    arm = random_arm(ARMS[1], generator)
    grids = random_latents(generator)
    with torch.no_grad():
        plain = cpu_mlp.arm_bits(grids, arm.offsets, arm.layers(), PROBABILITY_FLOOR)
    assert float(plain) == float(cpu_mlp.arm_bits(grids, arm.offsets, arm.layers(), PROBABILITY_FLOOR).detach())


def test_the_coder_floor_charges_the_far_tail_up_to_24_bits():
    """Latents the training floor counts at 16 bits cost more under the coder's floor, and never over 24."""
    generator = torch.Generator().manual_seed(6)
    arm = random_arm(ARMS[1], generator)
    grids = [(40 * torch.randn(30, 30, generator=generator)).round()]
    with torch.no_grad():
        trained = float(cpu_mlp.arm_bits(grids, arm.offsets, arm.layers(), PROBABILITY_FLOOR))
        coded = float(cpu_mlp.arm_bits(grids, arm.offsets, arm.layers(), CODER_PROBABILITY_FLOOR))
    assert trained <= 16 * 900 and 16 * 900 < coded <= 24 * 900 * (1 + 1e-6)


def test_the_arm_uses_the_kernel_only_where_it_applies(monkeypatch):
    generator = torch.Generator().manual_seed(5)
    arm = random_arm(ARMS[0], generator)
    grids = random_latents(generator)
    assert cpu_mlp.supports(arm.layers(), [*grids, *arm.parameters()])
    assert not cpu_mlp.supports(arm.layers(), [grids[0].double()])
    calls = []
    monkeypatch.setattr(cpu_mlp, "arm_bits", lambda *args: calls.append(args) or torch.tensor(0.0))
    arm.bits(grids)
    assert len(calls) == 1
    monkeypatch.setattr(cpu_mlp, "available", lambda: False)
    assert float(arm.bits(grids).detach()) == float(arm.reference_bits(grids).detach())


@pytest.mark.parametrize(("inputs", "width", "hidden", "outputs"), [(7, 16, 1, 3), (7, 8, 2, 1), (12, 48, 1, 4)])
def test_synthesis_mlp_and_its_gradients_match_the_reference(inputs, width, hidden, outputs):
    generator = torch.Generator().manual_seed(inputs * width + hidden)
    synthesis = Synthesis(inputs, outputs, {"otype": "Synthesis", "n_neurons": width, "n_hidden_layers": hidden,
                                                  "n_refine": 0})
    with torch.no_grad():
        for parameter in synthesis.parameters():
            parameter.copy_(0.4 * torch.randn(parameter.shape, generator=generator))
    features = torch.randn(inputs, 1000, generator=generator).requires_grad_()  # 1000: not a multiple of 16
    upstream = torch.randn(outputs, 1000, generator=generator)
    tensors = [features, *synthesis.parameters()]
    reference = synthesis.reference_channels_first(features)
    result = synthesis.channels_first(features)
    assert torch.allclose(result, reference, rtol=1e-5, atol=1e-5)
    assert_gradients_close(gradients((result * upstream).sum(), tensors), gradients((reference * upstream).sum(), tensors))


@pytest.mark.parametrize(("source", "size"), [((8, 12), (64, 96)), ((5, 7), (17, 23)), ((1, 1), (4, 5)), ((3, 4), (3, 9))])
def test_upsampling_equals_interpolate_and_its_backward_is_the_adjoint(source, size):
    generator = torch.Generator().manual_seed(sum(size))
    grid = torch.randn(source, generator=generator).requires_grad_()
    upstream = torch.randn(size, generator=generator)
    reference = F.interpolate(grid[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]
    result = upsample_bilinear(grid, *size)
    assert torch.equal(result, reference)
    assert_gradients_close(gradients((result * upstream).sum(), [grid]), gradients((reference * upstream).sum(), [grid]))


def test_loading_the_kernel_keeps_denormal_numbers():
    """gcc's -ffast-math at link time would add a constructor that flushes denormals in the loading thread."""
    assert cpu_mlp.available()
    assert float(torch.tensor([1e-40]) * 3.0) == pytest.approx(3e-40, rel=1e-3)


@pytest.mark.parametrize(("channels", "height", "width"), [(3, 37, 53), (1, 5, 2), (4, 1, 1), (3, 70, 19)])
def test_refinement_convolutions_match_the_reference(channels, height, width):
    generator = torch.Generator().manual_seed(channels * height + width)
    synthesis = Synthesis(5, channels, {"otype": "Synthesis", "n_neurons": 8, "n_hidden_layers": 1, "n_refine": 2})
    with torch.no_grad():
        for conv in synthesis.refine:
            conv.weight.copy_(0.3 * torch.randn(conv.weight.shape, generator=generator))
            conv.bias.copy_(0.1 * torch.randn(conv.bias.shape, generator=generator))
    image = torch.randn(1, channels, height, width, generator=generator).requires_grad_()
    upstream = torch.randn(1, channels, height, width, generator=generator)
    tensors = [image, *synthesis.refine.parameters()]
    reference = synthesis.reference_refined(image)
    result = synthesis.refined(image)
    assert torch.allclose(result, reference, rtol=1e-5, atol=1e-5)
    assert_gradients_close(gradients((result * upstream).sum(), tensors), gradients((reference * upstream).sum(), tensors))


@pytest.mark.parametrize(("temperature", "sigma"), [(0.35, 0.22), (0.08, 0.15), (0.3, 0.0)])
def test_noisy_soft_rounding_matches_the_reference(temperature, sigma):
    generator = torch.Generator().manual_seed(int(100 * temperature))
    values = torch.cat([40 * torch.randn(5000, generator=generator), torch.tensor([-200.0, 200.0, 127.0, -127.4])])
    values.requires_grad_()
    upstream = torch.randn(values.shape, generator=generator)
    draw = torch.Generator().manual_seed(7)
    result = quantise_latent(values, "noise", draw, temperature, sigma)
    epsilon = torch.randn(values.shape, generator=torch.Generator().manual_seed(7))
    clamped = values.clamp(-MAX_LATENT, MAX_LATENT)
    reference = soft_round(soft_round(clamped, temperature) + sigma * epsilon, temperature)
    assert torch.allclose(result, reference, rtol=0, atol=2e-5 * MAX_LATENT)
    assert_gradients_close(gradients((result * upstream).sum(), [values]), gradients((reference * upstream).sum(), [values]),
                           tolerance=1e-4)
