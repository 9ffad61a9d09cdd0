"""The compiled fast path for stacked SIRENs (feature-major batched matmuls) against the vectorised field's forward."""

from __future__ import annotations

import pytest
import torch

from inrkit.devices import seed_everything
from inrkit.fields import Field, build_field
from inrkit.train.stacked import StackedFields
from inrkit.train.stacked_siren import stacked_siren_forward

CASES = {
    "image": {"inputs": 2, "outputs": 3},
    "audio, omega off the bias, [0, 1] output": {"inputs": 1, "outputs": 1, "omega_on_bias": False, "range": [0.0, 1.0]},
    "volume, scaled coordinates": {"inputs": 3, "outputs": 1, "encoding": {"scale": 0.5, "offset": 0.25}},
    "many inputs (a first-layer matmul)": {"inputs": 6, "outputs": 2, "first_omega_0": 10.0},
}


def _siren(case: dict, seed: int) -> Field:
    seed_everything(seed)
    return Field({"n_input_dims": case["inputs"], "n_output_dims": case["outputs"],
                  "encoding": {"otype": "Identity", **case.get("encoding", {})},
                  "network": {"otype": "Siren", "n_neurons": 8, "n_hidden_layers": 3,
                              "first_omega_0": case.get("first_omega_0", 30.0), "hidden_omega_0": 30.0,
                              "omega_on_bias": case.get("omega_on_bias", True)},
                  "output": {"range": case.get("range", [-1.0, 1.0]), "activation": "None"}})


@pytest.mark.parametrize("name", list(CASES))
def test_fast_path_equals_the_vectorised_fields_and_their_gradients(name: str) -> None:
    """Outputs and parameter gradients within float32 rounding of sums taken in another order: rtol 1e-5, atol 1e-5
    (ω0 = 30 scales each layer's pre-activation, so an ulp there moves a sine by ~1e-6)."""
    case = CASES[name]
    stacked = StackedFields([_siren(case, seed) for seed in range(3)])
    fast = stacked_siren_forward(stacked._template[0])
    assert fast is not None
    generator = torch.Generator().manual_seed(0)
    coords = torch.rand(3, 40, case["inputs"], generator=generator) * 2 - 1
    target = torch.rand(3, 40, case["outputs"], generator=generator)
    params, buffers = stacked.stacked_state()
    results = []
    for forward in (lambda: stacked(coords), lambda: fast(params, buffers, coords)):
        y = forward()
        grads = torch.autograd.grad(((y - target) ** 2).sum(), list(params.values()))
        results.append((y.detach(), grads))
    (y_ref, g_ref), (y, g) = results
    assert y.shape == y_ref.shape == (3, 40, case["outputs"])
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for parameter, fast_grad, reference in zip(params, g, g_ref, strict=True):
        torch.testing.assert_close(fast_grad, reference, rtol=1e-5, atol=1e-5, msg=parameter)


@pytest.mark.parametrize("model", ["siren", "finer", "spder", "gauss", "relu-pe", "wire", "hashgrid-siren"])
def test_only_plain_sirens_take_the_fast_path(model: str) -> None:
    fast = stacked_siren_forward(build_field(model, 2, 3, width=8, depth=2))
    assert (fast is not None) == (model == "siren")
