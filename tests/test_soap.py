"""SOAP (inrkit.train.soap): AdamW where it does not precondition, rotation equivariance where it does, resume."""

import math

import pytest
import torch

from inrkit.errors import ConfigError
from inrkit.train.checkpoint import optimizer_state, restore_optimizer
from inrkit.train.optim import build_optimizer
from inrkit.train.soap import Soap


def _run(optimizer: torch.optim.Optimizer, param: torch.nn.Parameter, grads: list[torch.Tensor]) -> None:
    for grad in grads:
        param.grad = grad.clone()
        optimizer.step()


def test_unpreconditioned_parameters_follow_adamw():
    torch.manual_seed(0)
    start = torch.randn(5, 4)
    grads = [torch.randn(5, 4) for _ in range(30)]
    for precondition, shape in ((False, (5, 4)), (True, (20,))):  # a group without it, a vector
        ours = torch.nn.Parameter(start.clone().reshape(shape))
        adamw = torch.nn.Parameter(start.clone().reshape(shape))
        _run(Soap([{"params": [ours], "precondition": precondition}], lr=1e-2, betas=(0.9, 0.99), eps=1e-8,
                  weight_decay=0.05), ours, [g.reshape(shape) for g in grads])
        _run(torch.optim.AdamW([adamw], lr=1e-2, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.05), adamw,
             [g.reshape(shape) for g in grads])
        torch.testing.assert_close(ours, adamw, rtol=1e-6, atol=1e-7)


def test_diagonal_gradients_give_adamw_after_the_setup_step():
    """Diagonal gradients keep both factors diagonal, so the eigenbasis is the identity up to order and sign and
    SOAP is AdamW on the gradients after the first (which only sets up the factors)."""
    torch.manual_seed(1)
    scales = torch.linspace(0.5, 3.0, 6)  # distinct eigenvalues: a well-defined order
    grads = [torch.diag(scales * (1 + 0.3 * torch.rand(6))) for _ in range(25)]
    start = torch.randn(6, 6)
    soap, adamw = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    _run(Soap([soap], lr=1e-2, precondition_every=3, weight_decay=0.01), soap, grads)
    _run(torch.optim.AdamW([adamw], lr=1e-2, betas=(0.95, 0.95), eps=1e-8, weight_decay=0.01), adamw, grads[1:])
    torch.testing.assert_close(soap, adamw, rtol=1e-5, atol=1e-6)


def test_first_matrix_gradient_only_sets_up_the_factors():
    param = torch.nn.Parameter(torch.ones(3, 4))
    _run(Soap([param], lr=0.1), param, [torch.randn(3, 4)])
    assert torch.equal(param.detach(), torch.ones(3, 4))


def test_matrices_update_equivariantly_under_rotations():
    """Training ``U·W·Vᵀ`` on the gradients ``U·G·Vᵀ`` gives ``U·W_t·Vᵀ`` (SOAP's defining property; Adam's
    elementwise update does not have it)."""
    torch.manual_seed(2)
    m = n = 5  # square: the first gradient's factors have full rank, so their eigenbases are unique up to sign
    u = torch.linalg.qr(torch.randn(m, m, dtype=torch.float64))[0]
    v = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64))[0]
    start = torch.randn(m, n, dtype=torch.float64)
    grads = [torch.randn(m, n, dtype=torch.float64) for _ in range(40)]
    plain = torch.nn.Parameter(start.clone())
    rotated = torch.nn.Parameter(u @ start @ v.T)
    for param, sequence in ((plain, grads), (rotated, [u @ g @ v.T for g in grads])):
        _run(Soap([param], lr=1e-2, precondition_every=5, weight_decay=0.01, eps=1e-12), param, sequence)
    assert not torch.allclose(plain, start)
    torch.testing.assert_close(rotated.detach(), u @ plain.detach() @ v.T, rtol=1e-7, atol=1e-9)
    adam_plain, adam_rotated = torch.nn.Parameter(start.clone()), torch.nn.Parameter(u @ start @ v.T)
    _run(torch.optim.Adam([adam_plain], lr=1e-2), adam_plain, grads)
    _run(torch.optim.Adam([adam_rotated], lr=1e-2), adam_rotated, [u @ g @ v.T for g in grads])
    assert not torch.allclose(adam_rotated, u @ adam_plain @ v.T, atol=1e-4)


def test_checkpointed_state_resumes_exactly():
    torch.manual_seed(3)
    module = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    grads = [[torch.randn_like(p) for p in module.parameters()] for _ in range(24)]

    def steps(optimizer, chunk):
        for step_grads in chunk:
            for param, grad in zip(module.parameters(), step_grads, strict=True):
                param.grad = grad.clone()
            optimizer.step()

    optimizer = Soap(module.parameters(), lr=1e-2, precondition_every=4, weight_decay=0.01)
    steps(optimizer, grads[:11])
    tensors, groups = optimizer_state(optimizer)
    tensors = {name: value.clone() for name, value in tensors.items()}  # a checkpoint writes them out at once
    saved = [p.detach().clone() for p in module.parameters()]
    steps(optimizer, grads[11:])
    expected = [p.detach().clone() for p in module.parameters()]
    with torch.no_grad():
        for param, value in zip(module.parameters(), saved, strict=True):
            param.copy_(value)
    resumed = Soap(module.parameters(), lr=1e-2)
    restore_optimizer(resumed, tensors, groups)
    steps(resumed, grads[11:])
    for param, value in zip(module.parameters(), expected, strict=True):
        assert torch.equal(param.detach(), value)


def test_build_optimizer_reads_a_soap_config():
    from inrkit.api.latent_compress import latent_config
    from inrkit.fields.latent_field import LatentField

    field = LatentField(latent_config(16, 24, 3))
    optimizer = build_optimizer(field, 2e-2, field.config["optimizer"])
    assert isinstance(optimizer, Soap)
    grids = {id(p) for p in field.encoding.grids}
    by_kind = {bool(id(group["params"][0]) in grids): group for group in optimizer.param_groups}
    assert by_kind[True]["precondition"] is False and by_kind[True]["betas"] == (0.9, 0.999)
    assert by_kind[True]["weight_decay"] == 0.0 and len(by_kind[True]["params"]) == len(grids)
    assert by_kind[False]["precondition"] is True and by_kind[False]["weight_decay"] == 0.01
    assert by_kind[False]["betas"] == (0.95, 0.95)
    with pytest.raises(ConfigError, match="SOAP takes the keys"):
        build_optimizer(field, 1e-2, {"otype": "SOAP", "momentum": 0.9})
    with pytest.raises(ConfigError, match="precondition_every"):
        build_optimizer(field, 1e-2, {"otype": "SOAP", "precondition_every": 0})
    with pytest.raises(ConfigError, match="stacked"):
        build_optimizer(field, 1e-2, {"otype": "SOAP"}, leading_dims=1)
    assert math.isclose(optimizer.param_groups[0]["lr"], 2e-2)
