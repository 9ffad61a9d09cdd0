"""Training options that change the optimisation itself: gradient-norm clipping (SIREN's SDF protocol) and
tiny-cuda-nn's EMA of the weights (instant-ngp), with their evaluation, checkpoints and resume."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import inrkit
from inrkit.cli import build_parser
from inrkit.errors import InrkitError
from inrkit.fields import build_field
from inrkit.signals import ImageSignal
from inrkit.train import Trainer, TrainOptions

CPU = torch.device("cpu")


def _tiny(tmp_path: Path, make_image, signal_class: type[ImageSignal] = ImageSignal, **options) -> Trainer:
    """A width-8 SIREN on an 8×8 image; the same initial weights on every call."""
    torch.manual_seed(0)
    field = build_field("siren", 2, 3, width=8, depth=2)
    signal = signal_class.from_array(make_image(8, 8))
    settings = {"schedule": "constant", "eval_every": 0, "quiet": True, "device": "cpu", **options}
    return Trainer(field, signal, TrainOptions(**settings), tmp_path, lr=1e-2, device=CPU)


def _total_norm(gradients: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in gradients])))


# -- gradient-norm clipping ----------------------------------------------------------------------------
def test_clip_grad_norm_rescales_the_accumulated_gradient_to_norm_c(tmp_path, make_image):
    gradients = {}
    for clip in (None, 1e-3, 1e9):
        trainer = _tiny(tmp_path, make_image, clip_grad_norm=clip, chunk_size=16)  # 64 pixels in 4 chunks
        trainer._start = time.perf_counter()
        trainer._step(trainer.signal.sample(None), use_amp=False)
        gradients[clip] = [p.grad.clone() for p in trainer.field.parameters()]
    norm = _total_norm(gradients[None])
    assert norm > 1e-2  # so a clip at 1e-3 applies
    assert _total_norm(gradients[1e-3]) == pytest.approx(1e-3, rel=1e-4)
    for raw, clipped, loose in zip(gradients[None], gradients[1e-3], gradients[1e9], strict=True):
        # g·C/(‖g‖ + 1e-6) over the whole accumulated gradient (one factor for every tensor), as torch and SIREN do
        torch.testing.assert_close(clipped, raw * (1e-3 / (norm + 1e-6)), rtol=1e-5, atol=1e-12)
        assert torch.equal(loose, raw)  # below the limit: untouched


def test_options_are_validated_and_are_flags():
    for bad in ({"clip_grad_norm": 0.0}, {"clip_grad_norm": float("inf")}, {"ema_decay": 1.0}, {"ema_decay": -0.1}):
        with pytest.raises(InrkitError):
            TrainOptions(**bad).validate()
    TrainOptions(clip_grad_norm=1.0, ema_decay=0.0).validate()
    args = build_parser().parse_args(["fit", "shape.xyz", "--clip-grad-norm", "1", "--ema-decay", "0.95"])
    assert (args.clip_grad_norm, args.ema_decay) == (1.0, 0.95)
    assert build_parser().parse_args(["nerf", "scene", "--ema-decay", "0"]).ema_decay == 0.0


# -- EMA of the weights ---------------------------------------------------------------------------------
def _bias_corrected_average(weights: list[dict[str, torch.Tensor]], decay: float) -> dict[str, torch.Tensor]:
    """tcnn's EMA after steps 1..t of weights ``w_1..w_t``: ``(1 − d)·Σ_s d^{t−s}·w_s / (1 − d^t)``."""
    t = len(weights)
    return {name: sum((1 - decay) * decay ** (t - s) * w[name] for s, w in enumerate(weights, 1)) / (1 - decay**t)
            for name in weights[0]}


class _Recording(ImageSignal):
    """Keeps a copy of the weights each evaluation sees."""

    def evaluate(self, field):
        self.seen = [*getattr(self, "seen", []), {k: v.clone() for k, v in field.state_dict().items()}]
        return super().evaluate(field)


def test_ema_is_tcnns_bias_corrected_average_and_evaluation_uses_it(tmp_path, make_image):
    decay = 0.9
    trainer = _tiny(tmp_path, make_image, _Recording, steps=4, eval_every=2, ema_decay=decay)
    raw: list[dict[str, torch.Tensor]] = []  # w_0 .. w_3: hooks run before each step
    trainer.step_hooks.append(lambda step: raw.append({k: v.clone() for k, v in trainer.field.state_dict().items()}))
    trainer.fit()
    checkpoint = load_file(str(tmp_path / "checkpoint-00000004" / "training.safetensors"))
    raw.append({k[len("field."):]: v for k, v in checkpoint.items() if k.startswith("field.")})  # w_4, kept to resume
    at_2, at_4 = _bias_corrected_average(raw[1:3], decay), _bias_corrected_average(raw[1:5], decay)
    assert not torch.allclose(at_2["network.output.weight"], raw[2]["network.output.weight"])  # the average differs
    seen = trainer.signal.seen
    assert len(seen) == 2
    for name in at_2:
        torch.testing.assert_close(seen[0][name], at_2[name])  # the step-2 evaluation used the average ...
        torch.testing.assert_close(seen[1][name], at_4[name])
        torch.testing.assert_close(checkpoint[f"average.{name}"], at_4[name])
    weights = load_file(str(tmp_path / "weights.safetensors"))
    final = trainer.field.state_dict()
    for name in at_4:
        torch.testing.assert_close(weights[name], at_4[name])  # ... as do the saved weights
        assert torch.equal(final[name], weights[name])  # and the field fit() hands back


def test_first_average_is_the_first_weights(tmp_path, make_image):
    """Bias correction: after one step the average is w_1 itself, not (1 − d)·w_1 + d·w_0."""
    trainer = _tiny(tmp_path, make_image, steps=1, ema_decay=0.95)
    trainer.fit()
    checkpoint = load_file(str(tmp_path / "checkpoint-00000001" / "training.safetensors"))
    for name, value in trainer.field.state_dict().items():
        assert torch.equal(value, checkpoint[f"field.{name}"])


def test_training_steps_use_the_raw_weights(tmp_path, make_image):
    """An EMA changes what is evaluated and saved, never the optimisation: raw weights equal a run without it."""
    with_ema = _tiny(tmp_path / "ema", make_image, steps=6, eval_every=3, ema_decay=0.9)
    with_ema.fit()
    plain = _tiny(tmp_path / "plain", make_image, steps=6, eval_every=3)
    plain.fit()
    raw = load_file(str(tmp_path / "ema" / "checkpoint-00000006" / "training.safetensors"))
    for name, value in plain.field.state_dict().items():
        assert torch.equal(raw[f"field.{name}"], value)


def test_resume_with_ema_matches_an_uninterrupted_run(tmp_path, smooth_png):
    png = smooth_png(height=12, width=12)
    options = {"model": "siren", "width": 16, "depth": 2, "device": "cpu", "quiet": True, "schedule": "constant",
               "batch_size": 50, "eval_every": 0, "ema_decay": 0.9, "seed": 2}
    straight = inrkit.fit(png, out=tmp_path / "straight", steps=12, **options)
    inrkit.fit(png, out=tmp_path / "cut", steps=5, **options)
    resumed = inrkit.fit(resume=True, out=tmp_path / "cut", steps=12, quiet=True)
    assert resumed.config["train"]["ema_decay"] == 0.9
    for a, b in zip(resumed.field.parameters(), straight.field.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    cut = load_file(str(tmp_path / "cut" / "checkpoint-00000012" / "training.safetensors"))
    whole = load_file(str(tmp_path / "straight" / "checkpoint-00000012" / "training.safetensors"))
    for key in (k for k in whole if k.startswith(("average.", "field."))):
        torch.testing.assert_close(cut[key], whole[key], rtol=1e-6, atol=1e-7)
    loaded = inrkit.load(tmp_path / "cut")  # weights.safetensors: the average
    for a, b in zip(loaded.parameters(), resumed.field.parameters(), strict=True):
        assert torch.equal(a, b)
