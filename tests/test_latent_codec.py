"""The latent image codec (issue 17): context gathering, the Laplace rate, the bit-exact fixed-point ARM,
row-parallel latent coding, and the whole pipeline (train → file → decode, also in a fresh process)."""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from inrkit.backends import cpu_arm
from inrkit.encodings.latent_grids import grid_shapes, soft_round
from inrkit.errors import InrkitError
from inrkit.export import inrz, latent_codec
from inrkit.export.quantize import best_step, dequantise, quantise
from inrkit.fields.arm import ARM, CONTEXTS, context_offsets, gather_context, laplace_bits
from inrkit.fields.latent_field import LatentField
from inrkit.signals.image import ImageSignal, pixel_grid

ROOT = Path(__file__).resolve().parent.parent


def quantised_arm(n_context: int = 12, seed: int = 0) -> tuple[ARM, dict[str, torch.Tensor]]:
    """A random ARM whose weights sit on 8-bit per-tensor grids, and those steps (named as in a latent field)."""
    torch.manual_seed(seed)
    arm = ARM({"n_context": n_context, "n_neurons": 8, "n_hidden_layers": 2})
    steps = {}
    with torch.no_grad():
        for name, parameter in arm.named_parameters():
            parameter.normal_(0.0, 0.3)
            step = best_step(parameter, 8)
            parameter.copy_(dequantise(quantise(parameter, step, 8), step).reshape(parameter.shape))
            steps[f"arm.{name}"] = step
    return arm, steps


def image_signal(height: int = 24, width: int = 32) -> ImageSignal:
    y, x = np.mgrid[0:height, 0:width] / 8.0
    pixels = np.stack([0.5 + 0.4 * np.sin(3 * x), 0.5 + 0.3 * np.cos(2 * y + x), (x + y) / 8.0], -1)
    return ImageSignal(np.round(np.clip(pixels, 0, 1) * 255).astype(np.float32) / 255,
                       {"dtype": "uint8", "low": 0.0, "high": 255.0, "alpha": False})


def test_context_holds_the_rows_above_with_zeros_outside():
    grid = torch.arange(1.0, 13.0).reshape(3, 4)  # rows [1 2 3 4] [5 6 7 8] [9 10 11 12]
    context = gather_context(grid, CONTEXTS[8])  # (-1, -2..2) then (-2, -1..1)
    assert context.shape == (8, 12)  # channels first
    assert context[:, 6].tolist() == [1, 2, 3, 4, 0, 0, 0, 0]  # latent (1, 2): row 0 cols 0..4, no row -1
    assert context[:, 9].tolist() == [0, 5, 6, 7, 8, 1, 2, 3]  # latent (2, 1)
    assert not context[:, :4].any()  # the first row has no context


def test_laplace_bits_match_the_cdf_difference():
    values = torch.tensor([-3.0, -1.0, 0.0, 0.0, 1.0, 2.0, 7.0, 0.3])
    mean = torch.tensor([0.2, -0.7, 0.0, 0.45, 0.9, -1.0, 0.0, 0.1])
    log2_scale = torch.tensor([0.0, -1.0, -3.0, 1.0, 2.0, 0.5, -2.0, 0.0])
    b = 2.0 ** log2_scale.double()

    def cdf(t: torch.Tensor) -> torch.Tensor:
        u = t - mean.double()
        return 0.5 + 0.5 * torch.sign(u) * (1 - torch.exp(-u.abs() / b))

    expected = -torch.log2((cdf(values.double() + 0.5) - cdf(values.double() - 0.5)).clamp_min(2.0**-16))
    assert torch.allclose(laplace_bits(values, mean, log2_scale).double(), expected, atol=1e-4)


def test_soft_round_goes_from_rounding_to_identity():
    y = torch.tensor([-1.4, -0.6, 0.2, 0.49, 0.51, 1.9])
    assert torch.allclose(soft_round(y, 1e-3), torch.round(y), atol=1e-6)
    assert torch.allclose(soft_round(y, 10.0), y, atol=2e-3)


def test_fixed_point_arm_is_batch_independent_and_close_to_the_float_arm():
    arm, steps = quantised_arm()
    exact = latent_codec.FixedPointArm(arm, steps)
    context = torch.randint(-6, 7, (3000, 12)).double()
    mean, scale = exact(context.numpy())
    for start in range(0, 3000, 37):  # rows of another size: the same numbers, bit for bit
        part_mean, part_scale = exact(context[start : start + 37].numpy())
        assert np.array_equal(part_mean, mean[start : start + 37]) and np.array_equal(part_scale, scale[start : start + 37])
    with torch.no_grad():
        float_mean, float_log2 = arm(context.float().T)
    assert np.abs(mean - float_mean.double().numpy()).max() <= 1 / 128 + 1e-2
    assert np.abs(np.log2(scale) - float_log2.double().numpy()).max() <= 1 / 32 + 1e-2
    assert np.allclose(np.log2(scale) * 16, np.round(np.log2(scale) * 16), atol=1e-9)  # scales are 2^(k/16)


def test_latents_round_trip_row_parallel():
    arm, steps = quantised_arm(n_context=21)
    exact = latent_codec.FixedPointArm(arm, steps)
    rng = np.random.default_rng(0)
    shapes = grid_shapes(37, 53, 5)
    grids = [np.clip(np.round(rng.laplace(0, 1.5 / (k + 1), size=shape)), -20, 20) for k, shape in enumerate(shapes)]
    stream, max_abs = latent_codec.encode_latents(grids, exact, arm.offsets)
    assert max_abs == max(int(np.abs(g).max()) for g in grids)
    assert len(stream) % 4 == 0 and len(stream) >= 4 * latent_codec.min_stream_words(sum(g.size for g in grids))
    decoded = latent_codec.decode_latents(stream, shapes, exact, arm.offsets, max_abs)
    assert all(np.array_equal(a, b) for a, b in zip(decoded, grids, strict=True))


EXACT_ARMS = [(8, 4, 1, 5), (12, 12, 2, 8), (21, 24, 3, 10), (21, 64, 4, 10)]  # n_context, width, depth, bits


def wide_quantised_arm(n_context: int, width: int, depth: int, bits: int) -> latent_codec.FixedPointArm:
    """A random ARM on ``bits``-bit grids whose hidden values grow 10-100× per layer, so that deep ones reach the
    activations' limit (2^25) and the outputs both clamps of log2 b (zero contexts the lower one)."""
    torch.manual_seed(width + depth)
    arm = ARM({"n_context": n_context, "n_neurons": width, "n_hidden_layers": depth})
    steps = {}
    with torch.no_grad():
        for name, parameter in arm.named_parameters():
            parameter.normal_(0.0, 2.0)
            if name == "output.bias":
                parameter[1] = -20.0  # a context of zeros gives log2 b below its range
            step = best_step(parameter, bits)
            parameter.copy_(dequantise(quantise(parameter, step, bits), step).reshape(parameter.shape))
            steps[f"arm.{name}"] = step
    return latent_codec.FixedPointArm(arm, steps)


@pytest.mark.skipif(not cpu_arm.available(), reason="no C compiler for the ARM kernel")
@pytest.mark.parametrize(("n_context", "width", "depth", "bits"), EXACT_ARMS)
def test_the_arm_kernel_is_the_fixed_point_reference_bit_for_bit(n_context, width, depth, bits):
    exact = wide_quantised_arm(n_context, width, depth, bits)
    assert exact.kernel is not None
    shapes = grid_shapes(29, 41, 5)
    rng = np.random.default_rng(width)
    grids = [np.clip(np.round(rng.laplace(0, 2.0, size=shape) * rng.choice([0, 1, 40], size=shape)), -127, 127)
             for shape in shapes]
    offsets = context_offsets(n_context)
    order = latent_codec.LatentOrder.build(shapes, offsets)
    buffer = order.fill(grids)
    mean, scale = exact.over(buffer, order)(slice(None))
    want_mean, want_scale = exact(buffer[order.context(slice(None))])
    assert np.array_equal(mean, want_mean) and np.array_equal(scale, want_scale)
    predict = exact.over(buffer, order)  # one decoding row at a time: the same numbers
    rows = [predict(slice(order.row_starts[r], order.row_starts[r + 1])) for r in range(len(order.row_starts) - 1)]
    assert np.array_equal(np.concatenate([m for m, _ in rows]), mean)
    assert np.array_equal(np.concatenate([b for _, b in rows]), scale)
    assert len(offsets) == n_context
    assert np.isin([2.0**-6, 2.0**8], scale).all()  # both clamps of log2 b were hit
    with exact.ahead(buffer, order, background=True) as start:  # on the kernel's thread, in uneven pieces
        bounds = [0, 1, 7, 300, order.size // 3, len(order.positions)]
        waits = [start(slice(a, b)) for a, b in itertools.pairwise(bounds)]
        pieces = [wait() for wait in waits]
    assert np.array_equal(np.concatenate([m for m, _ in pieces]), mean)
    assert np.array_equal(np.concatenate([b for _, b in pieces]), scale)


@pytest.mark.skipif(not cpu_arm.available(), reason="no C compiler for the ARM kernel")
def test_files_coded_with_the_kernel_decode_without_it_and_back():
    exact = wide_quantised_arm(12, 12, 2, 8)
    reference = copy.copy(exact)
    reference.kernel = None
    shapes = grid_shapes(23, 31, 4)
    rng = np.random.default_rng(3)
    grids = [np.clip(np.round(rng.laplace(0, 3.0, size=shape)), -30, 30) for shape in shapes]
    offsets = context_offsets(12)
    for coder, decoder in ((exact, reference), (reference, exact)):
        stream, max_abs = latent_codec.encode_latents(grids, coder, offsets)
        decoded = latent_codec.decode_latents(stream, shapes, decoder, offsets, max_abs)
        assert all(np.array_equal(a, b) for a, b in zip(decoded, grids, strict=True))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("height", "width", "n_context"), [(37, 53, 21), (23, 9, 12), (11, 3, 21), (1, 1, 8)])
def test_latents_round_trip_with_the_arm_ahead_of_the_range_decoder(height, width, n_context, threads):
    """The decoder's three runs per row (head, neck, rest; the ARM of the next one on the kernel's thread with
    more than one thread) decode what the encoder coded, also where grid 0 is narrower than the context's reach."""
    arm, steps = quantised_arm(n_context=n_context)
    exact = latent_codec.FixedPointArm(arm, steps)
    shapes = grid_shapes(height, width, 5)
    rng = np.random.default_rng(height)
    grids = [np.clip(np.round(rng.laplace(0, 2.0, size=shape)), -40, 40) for shape in shapes]
    stream, max_abs = latent_codec.encode_latents(grids, exact, arm.offsets)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        decoded = latent_codec.decode_latents(stream, shapes, exact, arm.offsets, max_abs)
    finally:
        torch.set_num_threads(previous)
    assert all(np.array_equal(a, b) for a, b in zip(decoded, grids, strict=True))


def spy(function, calls: list):
    """``function``, recording each call's arguments in ``calls``."""
    def recorded(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)
    return recorded


@pytest.mark.skipif(not (cpu_arm.available() and Path("/proc/self/task").is_dir()), reason="needs the kernel, Linux")
def test_a_failing_decode_ends_the_arm_thread(monkeypatch):
    arm, steps = quantised_arm()
    exact = latent_codec.FixedPointArm(arm, steps)
    shapes = grid_shapes(40, 40, 3)
    stream, max_abs = latent_codec.encode_latents([np.zeros(shape) for shape in shapes], exact, arm.offsets)
    threads = len(list(Path("/proc/self/task").iterdir()))
    monkeypatch.setattr(latent_codec, "_family", lambda max_abs: "not a distribution")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # the ARM on its thread
    started = []
    monkeypatch.setattr(cpu_arm.ExactArm, "ahead", spy(cpu_arm.ExactArm.ahead, started))
    with pytest.raises(TypeError):
        latent_codec.decode_latents(stream, shapes, exact, arm.offsets, max_abs)
    assert started and len(list(Path("/proc/self/task").iterdir())) == threads


def test_coordinate_path_equals_the_dense_decoder_at_pixel_centres():
    field = LatentField({"n_input_dims": 2, "n_output_dims": 3,
                         "encoding": {"otype": "LatentGrids", "height": 13, "width": 22, "n_levels": 4},
                         "network": {"otype": "Synthesis", "n_neurons": 8, "n_hidden_layers": 1},
                         "arm": {"otype": "ARM", "n_context": 8, "n_neurons": 4, "n_hidden_layers": 1}})
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in field.named_parameters():
            parameter.normal_(0.0, 0.2 if name.startswith("encoding") else 1.0)  # decoded latents ~ N(0, 3.2²)
        dense = field.image()
        points = field(pixel_grid(13, 22)).reshape(13, 22, 3)
    # float32 sums in two orders (the MLP kernel's blocks differ between the N's): 1e-5 of the outputs' scale (~240)
    assert float((dense - points).abs().max()) <= 1e-5 * float(dense.abs().max())
    # ARM 8·4 + 4·2 per latent × 393 latents / 286 pixels, 4 per coarse grid, synthesis 4·8 + 8·3 + 2·9·3·3
    assert field.macs_per_pixel() == pytest.approx(40 * 393 / 286 + 4 * 3 + (4 * 8 + 8 * 3 + 2 * 81))


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """A latent field fitted for a few steps to a generated image, and its file."""
    from inrkit.api.latent_compress import LatentOptions, train_latent_field

    folder = tmp_path_factory.mktemp("latent")
    field, lmbda, _ = train_latent_field(image_signal(), LatentOptions(steps=15, quiet=True, lmbda=1e-3,
                                                                       complexity="low"), folder / "run")
    bits = latent_codec.choose_network_bits(field, image_signal().pixels, lmbda)
    data = latent_codec.encode(field, bits, image_signal().config(), {"psnr": 1.0})
    (folder / "x.inrz").write_bytes(data)
    return field, bits, data, folder


def test_file_decodes_to_the_encoders_latents_and_image(coded):
    field, bits, data, _ = coded
    header, payload = inrz.unpack(data)
    assert data[8:10] == b"\x04\x00" and header["codec"] == "latent"
    decoded = latent_codec.decode(header, payload)
    decoded.field.encoding.mode = "exact"
    for mine, theirs in zip(field.encoding.integers(), decoded.field.encoding.quantised(), strict=True):
        assert mine.abs().max() > 0 and torch.equal(mine, theirs.detach())
    quantised, _, _ = latent_codec.quantise_networks(field, bits)
    with torch.no_grad():
        own = quantised.image(field.encoding.integers())
    assert torch.equal(own, decoded.image)


def test_a_fresh_process_decodes_identical_bytes(coded, tmp_path):
    from inrkit.export import decompress

    _, _, _, folder = coded
    decompress(folder / "x.inrz", tmp_path / "here.png")
    subprocess.run([sys.executable, "-m", "inrkit", "decompress", str(folder / "x.inrz"), "--out",
                    str(tmp_path / "there.png")], check=True, cwd=ROOT, capture_output=True)
    assert hashlib.sha256((tmp_path / "here.png").read_bytes()).digest() == \
        hashlib.sha256((tmp_path / "there.png").read_bytes()).digest()


@pytest.mark.parametrize("edit, match", [
    (lambda h, p: ({**h, "latent": {**h["latent"], "length": h["latent"]["length"] + 4}}, p), "accounts for"),
    (lambda h, p: ({**h, "latent": {**h["latent"], "max_abs": 0}}, p), "max_abs"),
    (lambda h, p: ({**h, "field": {**h["field"], "encoding": {**h["field"]["encoding"], "height": 1 << 15,
                                                              "width": 1 << 15}}}, p), "pixels, above the limit"),
    (lambda h, p: (h, p[:-4]), "latent stream has|accounts for"),
    (lambda h, p: ({**h, "codec": "weights"}, p), "codec"),
    (lambda h, p: ({**h, "latent": {**h["latent"], "bits": 17}}, p), "latent bits must be an integer in 2..16"),
    (lambda h, p: ({**h, "tensors": h["tensors"][:-1]}, p), "must list the field config's 12 tensors"),
    (lambda h, p: ({**h, "tensors": [[*h["tensors"][0], 4], *h["tensors"][1:]]}, p), "must be \\[model, parameter"),
    (lambda h, p: ({**h, "tensors": [{"params": {}}, *h["tensors"][1:]]}, p), "must be \\[model, parameter"),
    (lambda h, p: ({**h, "tensors": [["weights", *h["tensors"][0][1:]], *h["tensors"][1:]]}, p), "must be \\[model"),
    (lambda h, p: ({**h, "tensors": [[*h["tensors"][0][:3], -1.0, h["tensors"][0][4]], *h["tensors"][1:]]}, p),
     "invalid step"),
    (lambda h, p: ({**h, "tensors": [["adaptive", -200, 3, *h["tensors"][0][3:]], *h["tensors"][1:]]}, p),
     "alphabet lies outside the code range"),
    (lambda h, p: ({**h, "tensors": [["laplace", 0.0, -1.0, *h["tensors"][0][3:]], *h["tensors"][1:]]}, p),
     "mean or scale is out of range"),
    (lambda h, p: ({**h, "tensors": [[*h["tensors"][0][:4], h["tensors"][0][4] + 4], *h["tensors"][1:]]}, p),
     "accounts for"),
])
def test_forged_latent_files_are_refused_with_one_line(coded, tmp_path, edit, match):
    from inrkit.export import load

    header, payload = inrz.unpack(coded[2])
    header, payload = edit(header, payload)
    path = tmp_path / "forged.inrz"
    path.write_bytes(inrz.pack(header, payload, version=latent_codec.VERSION))
    with pytest.raises(InrkitError, match=match) as caught:
        load(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("version", [2, 3])
def test_development_latent_files_are_refused_with_one_line(coded, tmp_path, version):
    """Versions 2 and 3 put the first refinement's ReLU inside its residual branch: decoded now, their images
    would be wrong, so the container refuses them before reading the header."""
    from inrkit.export import load

    data = bytearray(coded[2])
    data[8:10] = version.to_bytes(2, "little")
    (tmp_path / "old.inrz").write_bytes(bytes(data))
    with pytest.raises(InrkitError, match=f"format version {version}, a latent file from a development version"):
        load(tmp_path / "old.inrz")


def test_medium_header_of_a_768x512_image_is_small():
    """Untrained (seeded init, 8 bits): 153 bytes; the same header with its tensor table in full would hold 372."""
    from inrkit.api.latent_compress import latent_config

    torch.manual_seed(0)
    field = LatentField(latent_config(512, 768, 3, "medium"))
    signal = {"kind": "image", "height": 512, "width": 768, "channels": 3,
              "normalisation": {"dtype": "uint8", "low": 0.0, "high": 255.0, "alpha": False}}
    metrics = {"encode_seconds": 300.0, "lambda": 0.001, "steps": 1000, "psnr": 30.0}
    data = latent_codec.encode(field, 8, signal, metrics)
    header, payload = inrz.unpack(data)
    header_bytes = int.from_bytes(data[10:14], "little")
    assert header_bytes <= 160
    full = inrz.pack(latent_codec.decode(header, payload).header, payload, version=1)  # version 1's dictionary
    assert int.from_bytes(full[10:14], "little") > 2.4 * header_bytes


def test_compress_an_image_file_end_to_end(tmp_path, monkeypatch):
    from PIL import Image

    from inrkit.cli import main
    from inrkit.export import compress, load

    Image.fromarray(np.round(image_signal(16, 20).pixels.numpy() * 255).astype(np.uint8)).save(tmp_path / "p.png")
    coded = []
    code_field = latent_codec.code_field
    monkeypatch.setattr(latent_codec, "code_field", lambda *args: coded.append(args) or code_field(*args))
    report = compress(tmp_path / "p.png", tmp_path / "p.inrz", codec="latent", target_bpp=2.0, steps=12,
                      complexity="low", quiet=True)
    assert len(coded) == 1  # networks and latents are coded once; only the header is packed again with the PSNR
    assert report.n_bytes == (tmp_path / "p.inrz").stat().st_size and not (tmp_path / "p.inrz.run").exists()
    assert math.isfinite(report.psnr) and report.bpp == pytest.approx(8 * report.n_bytes / 320)
    decoded = load(tmp_path / "p.inrz")
    assert decoded.metrics["psnr"] == round(report.psnr, 2) and decoded.image.shape == (16, 20, 3)
    assert main(["info", str(tmp_path / "p.inrz")]) == 0
    assert main(["compress", str(tmp_path / "p.png"), str(tmp_path / "q.inrz"), "--lambda", "1", "--bits", "4"]) == 2
    absent = ["tpu"] + ([] if torch.cuda.is_available() else ["cuda"])
    for device in absent:  # refused in one line before anything is written
        assert main(["compress", str(tmp_path / "p.png"), str(tmp_path / "q.inrz"), "--codec", "latent",
                     "--device", device, "--steps", "2"]) == 2
        assert not (tmp_path / "q.inrz").exists() and not (tmp_path / "q.inrz.run").exists()
    decoded_pairs = []
    for name in ("again", "first"):  # the same seed: the same networks and latents
        compress(tmp_path / "p.png", tmp_path / f"{name}.inrz", codec="latent", target_bpp=2.0, steps=12,
                 complexity="low", quiet=True, threads=1)
        header, payload = inrz.unpack((tmp_path / f"{name}.inrz").read_bytes())
        del header["metrics"]["encode_seconds"]  # the time differs, and the deflated header's size with it
        decoded_pairs.append((header, payload))
    assert decoded_pairs[0] == decoded_pairs[1]


def test_auto_complexity_builds_the_low_preset_for_low_target_rates(tmp_path):
    from PIL import Image

    from inrkit.api.latent_compress import LOW_PRESET_BELOW, LatentOptions
    from inrkit.cli import main
    from inrkit.export import compress

    assert LatentOptions(target_bpp=LOW_PRESET_BELOW / 2).preset() == "low"
    assert LatentOptions(target_bpp=LOW_PRESET_BELOW).preset() == "medium"
    assert LatentOptions(lmbda=0.1).preset() == "medium" and LatentOptions().preset() == "medium"
    assert LatentOptions(target_bpp=0.05, complexity="high").preset() == "high"  # a chosen preset is kept
    Image.fromarray(np.round(image_signal(16, 20).pixels.numpy() * 255).astype(np.uint8)).save(tmp_path / "p.png")
    sizes = {}
    for target in (LOW_PRESET_BELOW / 2, 2.0):
        report = compress(tmp_path / "p.png", tmp_path / "p.inrz", codec="latent", target_bpp=target, steps=2,
                          quiet=True, threads=1)
        sizes[report.complexity] = report.macs_per_pixel
    assert sizes.keys() == {"low", "medium"} and sizes["low"] < sizes["medium"]
    assert main(["compress", str(tmp_path / "p.png"), str(tmp_path / "q.inrz"), "--codec", "latent",
                 "--complexity", "huge"]) == 2
    assert not (tmp_path / "q.inrz").exists()


class _Clock:
    """A stand-in Trainer: the schedule reads only its progress."""

    def __init__(self) -> None:
        self.progress = 0.0

    def progress_fraction(self) -> float:
        return self.progress


def test_rate_schedule_steers_lambda_only_in_its_window_by_bounded_steps(monkeypatch):
    """λ moves by ``exp(clip(0.15·log(R/R*), ±0.1))`` every LAMBDA_EVERY steps inside LAMBDA_WINDOW, never
    past LAMBDA_RANGE of its start, and the quantisation noise anneals linearly with progress."""
    from inrkit.api import latent_compress as lc
    from inrkit.signals.rate_distortion import RateDistortionImage

    image = image_signal(8, 8)
    field_ = LatentField(lc.latent_config(8, 8, 3))
    signal = RateDistortionImage(image, lmbda=0.01)
    bpp = {"value": 0.6}  # the rate the field "has": twice the target
    monkeypatch.setattr(field_, "rate_bits", lambda grids, floor: torch.tensor(bpp["value"] * 64 - 64.0))
    schedule = lc.RateSchedule(field_, signal, target_bpp=0.3, overhead_bits=64.0)
    schedule.trainer = clock = _Clock()
    clock.progress = 0.2  # before the window: λ untouched, noise annealed a fifth of the way
    schedule(10)
    assert signal.lmbda == 0.01 and field_.encoding.mode == "noise"
    assert math.isclose(field_.encoding.noise, lc.NOISE_SIGMA[0] + 0.2 * (lc.NOISE_SIGMA[1] - lc.NOISE_SIGMA[0]))
    clock.progress = 0.5
    schedule(11)  # not a multiple of LAMBDA_EVERY
    assert signal.lmbda == 0.01
    schedule(20)  # 0.15·log 2 = 0.104 → clipped to 0.1
    assert math.isclose(signal.lmbda, 0.01 * math.exp(0.1))
    bpp["value"] = 0.3 * math.exp(0.2)  # 0.15·0.2 = 0.03, within the clip
    schedule(30)
    assert math.isclose(signal.lmbda, 0.01 * math.exp(0.13), rel_tol=1e-6)  # the rate is a float32
    bpp["value"] = 10.0
    for step in range(40, 2000, 10):
        schedule(step)
    assert math.isclose(signal.lmbda, 0.01 * lc.LAMBDA_RANGE)  # bounded
    clock.progress = 0.95  # after the window: frozen
    bpp["value"] = 0.01
    schedule(3000)
    assert math.isclose(signal.lmbda, 0.01 * lc.LAMBDA_RANGE)


@pytest.mark.parametrize("rate", [{"lmbda": 0.01}, {"target_bpp": 3.0}])
def test_an_interrupted_encode_resumes_to_the_same_file(tmp_path, monkeypatch, rate):
    """Ctrl-C (the Trainer's stop flag) keeps a checkpoint and no output; ``resume=True`` finishes it, and the file
    equals an uninterrupted encode's (SOAP's state, the quantisation noise's RNG and, aiming at a rate, the λ the
    controller moved are checkpointed: it moves at steps 20 and 30 of 40, the cut is at step 27)."""
    from PIL import Image

    from inrkit.api import latent_compress as lc
    from inrkit.train.trainer import TrainingInterrupted

    Image.fromarray(np.round(image_signal(16, 20).pixels.numpy() * 255).astype(np.uint8)).save(tmp_path / "p.png")
    options = {**rate, "steps": 40, "complexity": "low", "quiet": True, "threads": 1}
    whole = lc.compress_image(tmp_path / "p.png", tmp_path / "whole.inrz", **options)
    assert ("target_bpp" not in rate) or whole.lmbda != lc.initial_lambda(image_signal(16, 20), 3.0)  # λ moved
    schedule_step = lc.RateSchedule.__call__

    def stop_at_27(self, step):
        schedule_step(self, step)
        if step == 27:
            self.trainer._stop_requested = True

    monkeypatch.setattr(lc.RateSchedule, "__call__", stop_at_27)
    with pytest.raises(TrainingInterrupted, match="--resume"):
        lc.compress_image(tmp_path / "p.png", tmp_path / "cut.inrz", **options)
    assert not (tmp_path / "cut.inrz").exists() and (tmp_path / "cut.inrz.run" / "checkpoint.json").is_file()
    monkeypatch.setattr(lc.RateSchedule, "__call__", schedule_step)
    resumed = lc.compress_image(tmp_path / "p.png", tmp_path / "cut.inrz", resume=True, **options)
    assert resumed.steps == whole.steps == 40 and resumed.lmbda == whole.lmbda and not (tmp_path / "cut.inrz.run").exists()
    assert inrz.unpack((tmp_path / "cut.inrz").read_bytes())[1] == inrz.unpack((tmp_path / "whole.inrz").read_bytes())[1]
