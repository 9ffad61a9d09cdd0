"""Every fast path against the PyTorch reference on random inputs, and tcnn's parameter layout.

Tolerances: the fast CPU kernel does the reference's float32 arithmetic in the same order per
corner but sums corners in a different order, so features agree to 1e-5 relative to the table
values' scale and table gradients to 1e-4 (scatter sums over many points). GPU paths (tcnn, the
compiled CUDA path) are compared with looser tolerances (tcnn trains in fp16) and skip without CUDA.
"""

from __future__ import annotations

import pytest
import torch

from inrkit.backends import cpu_grid, grid_forward, tcnn_available
from inrkit.backends.grid_reference import grid_forward_reference
from inrkit.encodings import GridEncoding
from inrkit.errors import InrkitError
from inrkit.fields import Field, build_field
from inrkit.fields.tcnn_layout import load_tcnn_parameters, tcnn_parameter_count, tcnn_parameters
from inrkit.train.optim import TcnnAdam, build_optimizer

needs_kernel = pytest.mark.skipif(not cpu_grid.available(), reason="no C compiler for the fast CPU kernel")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def random_grid(dims: int, features: int = 2, interpolation: str = "Linear", **overrides) -> GridEncoding:
    config = {"otype": "HashGrid", "n_levels": 8, "n_features_per_level": features, "log2_hashmap_size": 12,
              "base_resolution": 4, "per_level_scale": 1.7, "interpolation": interpolation, **overrides}
    grid = GridEncoding(dims, config)
    with torch.no_grad():
        grid.params.uniform_(-1, 1)
    return grid


def compare(grid: GridEncoding, x: torch.Tensor, fast) -> None:
    reference = grid_forward_reference(x, grid.params, grid.spec)
    result = fast(x, grid.params, grid.spec)
    assert torch.allclose(result, reference, rtol=1e-5, atol=1e-5)
    upstream = torch.randn_like(reference)
    (grad_reference,) = torch.autograd.grad(reference, grid.params, upstream)
    (grad_fast,) = torch.autograd.grad(result, grid.params, upstream)
    assert torch.allclose(grad_fast, grad_reference, rtol=1e-4, atol=1e-4)


@needs_kernel
@pytest.mark.parametrize("dims", [1, 2, 3, 4])
@pytest.mark.parametrize("interpolation", ["Linear", "Smoothstep", "Nearest"])
def test_fast_cpu_kernel_matches_reference(dims, interpolation):
    torch.manual_seed(dims)
    for features in (1, 2, 4, 8):
        grid = random_grid(dims, features, interpolation)
        x = torch.rand(3000, dims) * 1.4 - 0.2  # includes points outside [0,1]
        compare(grid, x, cpu_grid.grid_forward)


@needs_kernel
def test_fast_cpu_kernel_dense_tiled_and_masked_levels():
    torch.manual_seed(0)
    for overrides in ({"otype": "DenseGrid", "n_levels": 3}, {"otype": "TiledGrid"}, {"log2_hashmap_size": 19}):
        compare(random_grid(3, **overrides), torch.rand(2000, 3), cpu_grid.grid_forward)
    grid = random_grid(2)
    grid.max_level = 0.4
    compare(grid, torch.rand(2000, 2), cpu_grid.grid_forward)


@needs_kernel
def test_dispatch_uses_reference_when_coordinates_need_gradients():
    grid = random_grid(3)
    x = torch.rand(100, 3, requires_grad=True)
    y = grid_forward(x, grid.params, grid.spec, "fast")
    (dx,) = torch.autograd.grad(y.sum(), x)
    assert dx.abs().sum() > 0


@needs_kernel
def test_sparse_adam_kernel_matches_torch_update(monkeypatch):
    torch.manual_seed(0)
    size = 50_000
    grads = [torch.randn(size) * (torch.rand(size) < 0.3) for _ in range(3)]  # 70% exact zeros each step
    start = torch.randn(size)
    results = []
    for use_kernel in (True, False):
        monkeypatch.setattr(cpu_grid, "available", lambda use=use_kernel: use)
        param = torch.nn.Parameter(start.clone())
        optimizer = TcnnAdam([{"params": [param], "matrix": False}], lr=1e-2)
        for grad in grads:
            param.grad = grad.clone()
            optimizer.step()
        results.append((param.detach().clone(), optimizer.state[param]["step"].clone()))
    (p_kernel, t_kernel), (p_torch, t_torch) = results
    assert torch.equal(t_kernel, t_torch)
    assert torch.allclose(p_kernel, p_torch, rtol=1e-5, atol=1e-6)


def test_tcnn_adam_skips_untouched_entries_and_counts_steps_per_entry():
    param = torch.nn.Parameter(torch.ones(4))
    optimizer = TcnnAdam([{"params": [param], "matrix": False}], lr=0.1)
    param.grad = torch.tensor([1.0, 0.0, 1.0, 0.0])
    optimizer.step()
    param.grad = torch.tensor([1.0, 1.0, 0.0, 0.0])
    optimizer.step()
    state = optimizer.state[param]
    assert state["step"].tolist() == [2, 1, 1, 0]
    assert param[3].item() == 1.0
    # first step of an entry: m = 0.1 g, v = 0.01 g², step size lr·√(1−β2)/(1−β1) -> update lr·sign(g)
    assert param[1].item() == pytest.approx(0.9, abs=1e-6) and param[2].item() == pytest.approx(0.9, abs=1e-6)


def test_tcnn_adam_l2_on_matrices_only():
    field = build_field("hashgrid", 2, 3, log2_hashmap_size=10, n_levels=4)
    optimizer = build_optimizer(field, 1e-2, field.config["optimizer"])
    groups = {g["matrix"]: g for g in optimizer.param_groups}
    assert {id(p) for p in groups[True]["params"]} == {id(w) for w in field.network.weights}
    assert [id(p) for p in groups[False]["params"]] == [id(field.encoding.params)]
    assert groups[True]["l2_reg"] == 1e-6 and groups[True]["betas"] == (0.9, 0.99) and groups[True]["eps"] == 1e-15


def test_tcnn_parameter_layout_round_trip():
    field = build_field("hashgrid", 2, 3)
    flat = tcnn_parameters(field)
    network = field.network.weights
    assert flat.numel() == tcnn_parameter_count(field) == 708_368 + 64 * 32 + 64 * 64 + 16 * 64
    assert torch.equal(flat[: 64 * 32], network[0].detach().reshape(-1))  # network first, row-major [out, in]
    assert torch.equal(flat[-field.encoding.n_params:], field.encoding.params.detach())  # then the grid
    other = build_field("hashgrid", 2, 3)
    load_tcnn_parameters(other, flat)
    x = torch.rand(100, 2) * 2 - 1
    assert torch.equal(other(x), field(x))
    with pytest.raises(InrkitError, match="715,536"):
        load_tcnn_parameters(other, flat[:-1])
    with pytest.raises(InrkitError, match="FullyFusedMLP"):
        tcnn_parameters(build_field("siren", 2, 3))


def test_composite_field_layout_orders_nested_grids():
    field = Field({"n_input_dims": 4, "n_output_dims": 1, "network": {"otype": "FullyFusedMLP", "n_neurons": 16,
                                                                      "n_hidden_layers": 1},
                   "encoding": {"otype": "Composite", "nested": [
                       {"n_dims_to_encode": 2, "otype": "HashGrid", "n_levels": 2, "log2_hashmap_size": 8},
                       {"n_dims_to_encode": 2, "otype": "DenseGrid", "n_levels": 2, "base_resolution": 4}]}})
    flat = tcnn_parameters(field)
    first, second = field.encoding.nested
    assert torch.equal(flat[-second.n_params:], second.params.detach())
    assert torch.equal(flat[-second.n_params - first.n_params:-second.n_params], first.params.detach())


class CountingBackend:
    """A ``torch.compile`` backend that runs the captured graph eagerly and counts the graphs it is given."""

    def __init__(self) -> None:
        self.graphs = 0

    def __call__(self, graph: torch.fx.GraphModule, example_inputs: list[torch.Tensor]):
        self.graphs += 1
        return graph.forward


def test_compiled_path_buckets_batch_sizes(monkeypatch):
    """Eight batch sizes in five buckets: five graphs; features and gradients as the reference (compare's
    tolerances), and the padded rows (1019 of the 1024 for 5 points) add nothing to the table gradient."""
    from inrkit.backends import compiled

    counter = CountingBackend()
    monkeypatch.setattr(compiled, "_BACKEND", counter)
    torch.manual_seed(0)
    grid = random_grid(3)
    sizes = (5, 700, 1024, 1025, 1500, 1537, 3000, 5000)
    assert sorted({compiled.bucket_rows(n) for n in sizes}) == [1024, 1536, 2048, 3072, 6144]
    for n in sizes:
        compare(grid, torch.rand(n, 3) * 0.5 + 0.5, compiled.grid_forward)  # away from the padding's origin
    assert counter.graphs == 5
    x = torch.rand(5, 3) * 0.5 + 0.5
    upstream = torch.randn(5, grid.n_output_dims)
    (fast,) = torch.autograd.grad(compiled.grid_forward(x, grid.params, grid.spec), grid.params, upstream)
    (reference,) = torch.autograd.grad(grid_forward_reference(x, grid.params, grid.spec), grid.params, upstream)
    assert torch.equal(fast != 0, reference != 0)
    assert counter.graphs == 5


def test_compiled_path_compiles_every_level_mask(monkeypatch):
    """Twelve level masks (coarse-to-fine) at one batch size: twelve graphs, more than dynamo's recompile
    limit (8) for one code object, so none of them silently falls back to eager."""
    from inrkit.backends import compiled

    counter = CountingBackend()
    monkeypatch.setattr(compiled, "_BACKEND", counter)
    torch.manual_seed(0)
    grid = random_grid(2, n_levels=12)
    x = torch.rand(100, 2)
    with torch.no_grad():
        for level in range(12):
            grid.max_level = level / 12  # 1 … 12 active levels
            reference = grid_forward_reference(x, grid.params, grid.spec)
            assert torch.equal(compiled.grid_forward(x, grid.params, grid.spec), reference)
    assert counter.graphs == 12


@pytest.mark.slow
def test_compiled_path_matches_reference_on_cpu():
    """Inductor's C++ backend on the CPU: three batch sizes in two buckets compile two graphs."""
    from torch._dynamo.utils import counters

    from inrkit.backends import compiled

    torch.manual_seed(0)
    grid = random_grid(3)
    before = counters["stats"]["unique_graphs"]
    for n in (4096, 3000, 3073):
        compare(grid, torch.rand(n, 3), compiled.grid_forward)
    assert counters["stats"]["unique_graphs"] - before == 2


@needs_cuda
def test_compiled_cuda_path_matches_reference():
    from inrkit.backends import compiled

    torch.manual_seed(0)
    grid = random_grid(3).cuda()
    x = torch.rand(1 << 16, 3, device="cuda")
    reference = grid_forward_reference(x, grid.params, grid.spec)
    assert torch.allclose(compiled.grid_forward(x, grid.params, grid.spec), reference, rtol=1e-4, atol=1e-4)


def _assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor, fraction: float) -> None:
    """Largest error at most ``fraction`` of the reference's largest magnitude, which must be of order one."""
    scale = expected.abs().max().item()
    assert scale > 0.05, f"reference scale {scale:.3g}: the comparison would be vacuous"
    error = (actual.float() - expected).abs().max().item()
    assert error <= fraction * scale, f"largest error {error:.3g}, reference scale {scale:.3g}"


@pytest.mark.skipif(not tcnn_available(), reason="needs tinycudann and CUDA")
def test_tcnn_matches_reference_with_the_same_parameters():
    """tcnn against the reference on the same parameters at a trained scale: table entries ``U(±1)`` (a fresh
    grid's ``U(±10⁻⁴)`` makes every output ~10⁻⁴, which any absolute tolerance accepts) and the MLP's
    Xavier weights. Encoding and network are compared separately (the network on the reference's features),
    then the whole field. Tolerances, relative to the reference's scale: tcnn stores the table and the
    features in fp16 (rounding 2⁻¹¹ ≈ 5·10⁻⁴, so 5·10⁻³) and runs the MLP in fp16 (2·10⁻²); a wrong hash,
    level scale or layout gives errors of the order of the scale itself."""
    import tinycudann

    from inrkit.fields.tcnn import TcnnField

    torch.manual_seed(0)
    field = build_field("hashgrid", 2, 3)
    with torch.no_grad():
        field.encoding.params.uniform_(-1.0, 1.0)
    field = field.cuda()
    field.encoding.backend = "torch"  # the reference lookup, the specification
    x = torch.rand(1 << 14, 2, device="cuda") * 2 - 1
    unit = (x + 1.0) * 0.5  # tcnn's encodings take [0, 1]
    flat = tcnn_parameters(field).cuda()
    n_network = flat.numel() - field.encoding.n_params

    encoding = tinycudann.Encoding(field.n_input_dims, dict(field.config["encoding"]))
    network = tinycudann.Network(field.encoding.n_output_dims, field.n_output_dims, dict(field.config["network"]))
    with torch.no_grad():
        encoding.params.copy_(flat[n_network:])
        network.params.copy_(flat[:n_network])
        features = field.encoding(unit)
        _assert_close_to_scale(encoding(unit), features, 5e-3)
        _assert_close_to_scale(network(features), field.network(features), 2e-2)
        _assert_close_to_scale(TcnnField(field)(x), field(x), 2e-2)


def test_prepare_field_picks_backends_and_refuses_impossible_ones():
    from inrkit.fields.execution import prepare_field

    field = build_field("hashgrid", 2, 3, log2_hashmap_size=10)
    assert prepare_field(field, "torch", torch.device("cpu")) is field and field.encoding.backend == "torch"
    if not tcnn_available():
        with pytest.raises(InrkitError, match="tinycudann"):
            prepare_field(field, "tcnn", torch.device("cpu"))
    with pytest.raises(InrkitError, match="FullyFusedMLP"):
        prepare_field(build_field("siren", 2, 3), "tcnn", torch.device("cpu"))
    with pytest.raises(InrkitError, match="backend"):
        prepare_field(field, "cuda-magic", torch.device("cpu"))


def test_coarse_to_fine_unlocks_levels_and_fits(tmp_path, make_image):
    import inrkit
    from inrkit.signals import ImageSignal
    from inrkit.train.progressive import BandSchedule

    field = build_field("hashgrid", 2, 3, n_levels=8, log2_hashmap_size=10)
    schedule = BandSchedule(field, "levels", every=10, progress=lambda: 0.0)  # what --coarse-to-fine 10 runs
    seen = []
    for step in (0, 9, 10, 35, 60, 1000):
        schedule(step)
        seen.append(int((field.encoding(torch.rand(50, 2)) != 0).any(0).view(8, 2).any(1).sum()))
    assert seen == [2, 2, 3, 5, 8, 8]
    run = inrkit.fit(ImageSignal.from_array(make_image(24, 24, 3, seed=0)), model="hashgrid", out=tmp_path / "run",
                     steps=80, coarse_to_fine=10, backend="torch", log2_hashmap_size=10, eval_every=0, quiet=True,
                     device="cpu")
    assert run.metrics["psnr"] > 28
    assert run.field.encoding.bands.all_on  # outputs are written with every level on
    assert (run.config["train"]["progressive"], run.config["train"]["coarse_to_fine"]) == ("levels", 10)


@pytest.mark.parametrize("resume", [False, True])
def test_coarse_to_fine_with_tcnn_is_refused(tmp_path, make_image, monkeypatch, resume):
    """tcnn hides the grids inside its module, where the level schedule cannot reach them: refuse, don't ignore."""
    import inrkit
    from inrkit.api import lifecycle
    from inrkit.signals import ImageSignal

    image = ImageSignal.from_array(make_image(8, 8, 3, seed=0))
    options = {"model": "hashgrid", "log2_hashmap_size": 8, "eval_every": 0, "quiet": True, "device": "cpu"}
    if resume:
        inrkit.fit(image, out=tmp_path / "run", steps=2, coarse_to_fine=1, **options)
    monkeypatch.setattr(lifecycle, "resolve_backend", lambda field, backend, device: "tcnn")
    with pytest.raises(InrkitError, match="--coarse-to-fine does not work with the tcnn backend"):
        if resume:
            inrkit.fit(image, resume=True, out=tmp_path / "run", steps=4, backend="tcnn")
        else:
            inrkit.fit(image, out=tmp_path / "run", steps=2, coarse_to_fine=1, backend="tcnn", **options)
