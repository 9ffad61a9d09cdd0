"""The generic training loop: Adam, lr schedule, budget, evaluation, checkpoints, Ctrl-C, NaN guard.

The trainer knows nothing about pixels or rays: it asks the signal for batches and for the loss
given the field, and the signal for metrics and outputs.
"""

from __future__ import annotations

import contextlib
import math
import resource
import signal as os_signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from inrkit.errors import InrkitError
from inrkit.metrics import psnr_from_mse
from inrkit.runs import append_metrics, truncate_metrics
from inrkit.signals.base import Batch, Signal
from inrkit.train import checkpoint
from inrkit.train.allocator import tune_allocator
from inrkit.train.optim import build_optimizer
from inrkit.train.options import TrainOptions
from inrkit.train.progress import ProgressBar
from inrkit.train.sampling import build_sampling
from inrkit.train.schedules import group_lr


class TrainingDiverged(InrkitError):
    """The loss became NaN or infinite; the run keeps its last good checkpoint."""


class TrainingInterrupted(InrkitError):
    """Ctrl-C or SIGTERM: a resumable checkpoint was written before stopping.

    ``signum`` is the signal that asked to stop (SIGINT for Ctrl-C; SIGTERM, what SLURM, Kubernetes and
    Ray send before killing a job); the CLI exits with ``128 + signum``, as a shell does.
    """

    def __init__(self, message: str, signum: int = int(os_signal.SIGINT)) -> None:
        super().__init__(message)
        self.signum = signum


STOP_SIGNALS = (os_signal.SIGINT, os_signal.SIGTERM)  # both finish the step, save a checkpoint and stop


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: CUDA allocator peak on a GPU, else the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


StepHook = Callable[[int], None]
SampleLossHook = Callable[[Batch, torch.Tensor], None]  # (a training chunk, its per-sample losses (N,), detached)
EvaluationHook = Callable[[dict[str, Any]], None]
LONG_RUN_SECONDS = 3600.0  # a step budget longer than this gets a one-line note (and how to shorten it)
ESTIMATE_AFTER_STEPS = 5
ESTIMATE_AFTER_SECONDS = 10.0
BACKWARD_FACTOR = 3.0  # a training step costs about three forward passes
DRY_RUN_SAMPLES = 1 << 14  # a dry run times steps of at most this many samples and scales by the batch size
# steps between loss-finiteness checks; off the CPU each check waits for the device. Evaluations and
# checkpoints check regardless, so a NaN state is never saved.
CPU_CHECK_EVERY = 1
DEVICE_CHECK_EVERY = 16


@contextlib.contextmanager
def stop_signals_handled(handler: Callable[[int, Any], None]) -> Iterator[None]:
    """Within the block Ctrl-C and SIGTERM (:data:`STOP_SIGNALS`) call ``handler(signum, frame)``, and the previous
    handlers come back after it. Off the main thread, where Python delivers no signals, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: os_signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old_handler in previous.items():
            os_signal.signal(signum, old_handler)


class Trainer:
    """Fit ``field`` to ``signal`` into ``run_dir``.

    Each step's batch comes from the sampling policy ``options.sampling`` (:mod:`inrkit.train.sampling`:
    uniform, INT, EVOS, error-driven); a policy that reads per-sample losses gets them from the step's
    forward pass (``Signal.sample_losses``), and its state is part of every checkpoint.

    ``step_hooks`` are called with the step number (0-based) before each training step: occupancy
    grid updates, coarse-to-fine level schedules and the like live there, not in the loop. A hook with
    state of its own (a controller's set point) has a ``state_key`` and ``state()`` / ``load_state(dict)``
    (JSON values): its state goes into every checkpoint under that key and comes back on resume.
    ``evaluation_hooks`` are called with each evaluation's metrics record, the field in the state
    it was evaluated in (e.g. to keep the best state seen). With ``sample_loss_hooks`` the loss is
    the mean of the signal's per-sample losses (:meth:`~inrkit.signals.Signal.sample_losses`), and each
    hook sees every training chunk with them (SAPE's feedback).

    With ``options.ema_decay`` = d the trainer keeps tiny-cuda-nn's EMA of the parameters
    (``optimizers/ema.h``, instant-ngp's ``EMA ∘ ExponentialDecay ∘ Adam``; REFERENCE §2.6, §3.1): after
    optimizer step t (1, 2, ...) ``â_t = â_{t−1} + β_t·(w_t − â_{t−1})`` with ``β_t = (1 − d)/(1 − d^t)``,
    the bias-corrected average ``â_t = (1 − d)·Σ_{s≤t} d^{t−s}·w_s / (1 − d^t)`` (so ``â_1 = w_1``).
    Training steps use the raw weights ``w``; evaluations, ``weights.safetensors`` and the field
    :meth:`fit` hands back hold ``â`` (tcnn's inference weights), and checkpoints keep both for an
    exact resume.

    Example:
        >>> trainer = Trainer(field, signal, TrainOptions(steps=500), run_dir, lr=5e-4)  # doctest: +SKIP
        >>> final_metrics = trainer.fit()                                                # doctest: +SKIP
    """

    def __init__(self, field: torch.nn.Module, signal: Signal, options: TrainOptions, run_dir: Path, lr: float,
                 device: torch.device, step_hooks: list[StepHook] | None = None,
                 evaluation_hooks: list[EvaluationHook] | None = None,
                 sample_loss_hooks: list[SampleLossHook] | None = None) -> None:
        if device.type == "cpu":
            tune_allocator()
        self.field = field
        self.step_hooks = list(step_hooks or [])
        self.sample_loss_hooks = list(sample_loss_hooks or [])
        self.evaluation_hooks = list(evaluation_hooks or [])
        self.signal = signal
        self.options = options
        self.run_dir = Path(run_dir)
        self.base_lr = lr
        self.device = device
        self.optimizer = build_optimizer(field, lr, getattr(field, "config", {}).get("optimizer"),
                                         getattr(field, "leading_dims", 0))
        self.generator = torch.Generator(device=device).manual_seed(options.seed)
        self.sampling = build_sampling(options.sampling, signal, field, self.generator, options.batch_size,
                                       options.sampling_ratio, options.sampling_floor)
        self.step = 0
        self.elapsed = 0.0
        self.step_seconds = 0.0
        self.checkpoint_step = -1
        self._stop_requested = False
        self._stop_signal = int(os_signal.SIGINT)
        self._start = 0.0
        self._estimate_checked = False
        self.progress = ProgressBar(options.step_budget, options.seconds, quiet=options.quiet)
        # the EMA of the parameters (options.ema_decay), by name; None without one (ema_decay None or 0)
        self.average: dict[str, torch.Tensor] | None = None
        if options.ema_decay:
            self.average = {name: p.detach().clone() for name, p in field.named_parameters()}

    # -- checkpoints ----------------------------------------------------------------------------
    def _rng_states(self) -> dict[str, torch.Tensor]:
        return {"torch": torch.get_rng_state(), "sampler": self.generator.get_state().cpu()}

    def save_checkpoint(self) -> None:
        """Write a resumable checkpoint at the current step (with an EMA, ``weights.safetensors`` holds the average)."""
        sampling_tensors, sampling_state = self.sampling.state()
        state = {"step": self.step, "elapsed": self.elapsed, "step_seconds": self.step_seconds,
                 "sampling": {"policy": self.sampling.name, **sampling_state},
                 "hooks": {hook.state_key: hook.state() for hook in self._stateful_hooks()}}
        weights = None
        if self.average is not None:
            with self.averaged_weights():
                weights = {k: v.detach().clone() for k, v in self.field.state_dict().items()}
        checkpoint.save_checkpoint(self.run_dir, self.field, self.optimizer, self._rng_states(), state,
                                   self.average, weights, sampling_tensors)
        self.checkpoint_step = self.step

    def resume(self) -> None:
        """Continue from the run directory's current checkpoint."""
        state, tensors = checkpoint.load_checkpoint(self.run_dir)
        field_state = {k[len("field."):]: v for k, v in tensors.items() if k.startswith("field.")}
        try:
            self.field.load_state_dict(field_state, strict=True)
            checkpoint.restore_optimizer(self.optimizer, tensors, state["param_groups"])
            torch.set_rng_state(tensors["rng.torch"])
            self.generator.set_state(tensors["rng.sampler"].to(self.generator.get_state().device))
        except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as err:
            lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
            detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(err).__name__)
            raise InrkitError(f"cannot resume {self.run_dir}: its checkpoint does not match the run's field or optimizer "
                              f"(copied from another run?): {detail}") from None
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.step_seconds = float(state.get("step_seconds", 0.0))
        self._resume_sampling(state.get("sampling") or {"policy": "uniform"}, tensors)
        saved_hooks = state.get("hooks") or {}
        for hook in self._stateful_hooks():
            if hook.state_key in saved_hooks:
                hook.load_state(saved_hooks[hook.state_key])
        if self.average is not None:
            missing = [name for name in self.average if f"average.{name}" not in tensors]
            if missing:
                raise InrkitError(f"the checkpoint in {self.run_dir} has no weight average for {missing[0]!r} "
                                  "(resume with the backend and --ema-decay it was trained with)")
            for name, value in self.average.items():
                value.copy_(tensors[f"average.{name}"])
        self.checkpoint_step = self.step
        truncate_metrics(self.run_dir, self.step)

    def _stateful_hooks(self) -> list[Any]:
        """The step hooks whose state is checkpointed (class docstring)."""
        return [hook for hook in self.step_hooks if isinstance(getattr(hook, "state_key", None), str)]

    def _resume_sampling(self, saved: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        """Restore the sampling policy's state (``sampling.*`` tensors, ``state.json``'s ``sampling``)."""
        if saved.get("policy") != self.sampling.name:
            raise InrkitError(f"cannot resume {self.run_dir}: its checkpoint was trained with --sampling "
                              f"{saved.get('policy')}, not {self.sampling.name}")
        prefix = "sampling."
        try:
            self.sampling.load_state({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, saved)
        except KeyError as err:
            raise InrkitError(f"cannot resume {self.run_dir}: its checkpoint has no sampling state {err}") from None

    # -- the weight average ---------------------------------------------------------------------
    @torch.no_grad()
    def _update_average(self, step: int) -> None:
        """After optimizer step ``step`` (1-based): ``â ← â + β·(w − â)``, ``β = (1 − d)/(1 − d^step)`` (class docstring)."""
        if self.average is None:
            return
        decay = float(self.options.ema_decay or 0.0)
        weight = (1.0 - decay) / (1.0 - decay**step)
        parameters = dict(self.field.named_parameters())
        torch._foreach_lerp_(list(self.average.values()), [parameters[name].detach() for name in self.average], weight)

    @contextlib.contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """Within the block the field holds the EMA weights (nothing changes without an EMA); the raw
        training weights come back afterwards, bit for bit."""
        if self.average is None:
            yield
            return
        raw = self._load_average()
        try:
            yield
        finally:
            parameters = dict(self.field.named_parameters())
            with torch.no_grad():
                for name, value in raw.items():
                    parameters[name].copy_(value)

    @torch.no_grad()
    def _load_average(self) -> dict[str, torch.Tensor]:
        """Copy the EMA weights into the field; returns (copies of) the raw weights they replace."""
        assert self.average is not None
        parameters = dict(self.field.named_parameters())
        raw = {name: parameters[name].detach().clone() for name in self.average}
        for name, value in self.average.items():
            parameters[name].copy_(value)
        return raw

    # -- the loop -------------------------------------------------------------------------------
    def progress_fraction(self) -> float:
        """The fraction of the budget used, ``p ∈ [0, 1]``: steps done over the step budget, or seconds over
        the time budget, whichever is further (the lr and progressive-encoding schedules' clock)."""
        fractions = []
        if self.options.step_budget:
            fractions.append(self.step / self.options.step_budget)
        if self.options.seconds:
            fractions.append(self.elapsed / self.options.seconds)
        return max(fractions)

    @contextlib.contextmanager
    def _graceful_interrupt(self) -> Iterator[None]:
        """The first Ctrl-C or SIGTERM asks the loop to stop after the current step (a checkpoint is saved);
        a second one aborts at once."""
        def request_stop(signum: int, frame: Any) -> None:
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True
            self._stop_signal = int(signum)

        with stop_signals_handled(request_stop):
            yield

    def _evaluate(self, train_loss: float, final: bool = False) -> dict[str, Any]:
        began = time.perf_counter()
        self.field.eval()
        with torch.no_grad(), self.averaged_weights():
            quality = self.signal.evaluate(self.field)
        self.field.train()
        self.progress.tail_seconds = time.perf_counter() - began  # the final evaluation will cost about as much
        record = {
            "step": self.step,
            "elapsed": round(self.elapsed, 3),
            "train_seconds": round(self.step_seconds, 3),  # time in training steps only (no evaluations, checkpoints)
            "lr": self.optimizer.param_groups[0]["lr"],
            "loss": train_loss,
            **quality,
        }
        if final:
            record.update({
                "final": True,
                "ms_per_step": 1000.0 * self.step_seconds / max(self.step, 1),
                "peak_memory_mb": round(peak_memory_mb(self.device), 1),
            })
        append_metrics(self.run_dir, record)
        for hook in self.evaluation_hooks:
            hook(record)
        return record

    def _out_of_time(self) -> bool:
        seconds = self.options.seconds
        return seconds is not None and time.perf_counter() - self._start >= seconds

    def _step(self, batch: Batch, use_amp: bool) -> torch.Tensor:
        """Gradients of the batch loss, accumulated over chunks of ``options.chunk_size`` samples.

        ``∇L = Σ_c (n_c/N)·∇L_c`` for a loss that is a mean over the batch (train/chunking.py). When the
        time budget runs out between chunks, the step ends with the chunks done so far, their gradient
        rescaled to the mean over the samples they hold. With ``options.clip_grad_norm`` = C the
        accumulated gradient is then clipped as ``torch.nn.utils.clip_grad_norm_`` does (SIREN's SDF
        protocol): ``g ← g·min(1, C/(‖g‖₂ + 10⁻⁶))``, ``‖g‖₂`` over all parameters together.
        Returns the (detached) loss.
        """
        self.optimizer.zero_grad(set_to_none=True)
        n_samples = len(batch)
        chunk = self.options.chunk_size if self.signal.chunkable and self.options.chunk_size else n_samples
        total = torch.zeros((), device=self.device)
        done = 0
        for start in range(0, n_samples, chunk):
            part = batch.chunk(start, min(start + chunk, n_samples))  # the whole batch when it is one chunk
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_amp):
                if self.sampling.observes_losses or self.sample_loss_hooks:  # the per-sample terms of the loss
                    losses = self.signal.sample_losses(self.field, part)
                    if self.sampling.observes_losses:  # the sampling policy reads them
                        self.sampling.observe(start, losses.detach())
                    for hook in self.sample_loss_hooks:
                        hook(part, losses.detach())
                    loss = losses.mean() * (len(part) / n_samples)
                else:
                    loss = self.signal.loss(self.field, part) * (len(part) / n_samples)
            loss.backward()
            total += loss.detach()
            done += len(part)
            if done < n_samples and self._out_of_time():
                scale = n_samples / done
                for param in self.field.parameters():
                    if param.grad is not None:
                        param.grad.mul_(scale)
                total = total * scale
                break
        if self.options.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.field.parameters(), self.options.clip_grad_norm)
        return total

    def _evaluation_would_overrun(self) -> bool:
        """True when a periodic evaluation now would end past the time budget (the final one follows anyway)."""
        seconds = self.options.seconds
        return seconds is not None and self.elapsed + self.progress.tail_seconds >= seconds

    def _check_estimate(self) -> None:
        """Once, after a few steps: say so when the budget will take far longer than a user probably meant."""
        self._estimate_checked = True
        budget = self.options.step_budget
        if self.options.steps is not None or self.options.seconds is not None or budget is None:
            return  # the user chose the budget
        seconds_per_step = self.elapsed / max(self.step, 1)
        remaining = seconds_per_step * (budget - self.step)
        if remaining > LONG_RUN_SECONDS:
            self.progress.message(
                f"note: the default {budget} steps at {seconds_per_step:.2f} s/step will take about "
                f"{remaining / 3600:.1f} h; give --seconds S or --steps N for a shorter run")

    def _check_finite(self, loss_sum: torch.Tensor, loss_count: int, weights: bool = False) -> float:
        """The mean loss since the last evaluation (NaN when there is none); raises TrainingDiverged when it
        is not finite or, with ``weights`` (before an evaluation or a checkpoint), when a parameter is not."""
        loss = float(loss_sum) / loss_count if loss_count else math.nan
        problem = f"loss became {loss}" if loss_count and not math.isfinite(loss) else None
        if problem is None and weights and not all(bool(torch.isfinite(p).all()) for p in self.field.parameters()):
            problem = "the weights became non-finite"
        if problem is not None:
            self.progress.close()
            raise TrainingDiverged(
                f"{problem} near step {self.step}; training stopped. The last good "
                f"checkpoint (step {self.checkpoint_step}) is kept in {self.run_dir}; try a lower --lr"
            )
        return loss

    def time_steps(self, n_steps: int) -> float:
        """Seconds per training step, timed over ``n_steps`` steps after one warm-up step (for dry runs:
        the field and optimizer state change, nothing is written). A batch larger than
        :data:`DRY_RUN_SAMPLES` is timed on that many samples and scaled by the number of samples."""
        batch_size = self.options.batch_size or self.signal.n_samples
        timed_size = min(batch_size, self.options.chunk_size or batch_size, DRY_RUN_SAMPLES) if self.signal.chunkable \
            else batch_size
        timings = []
        for _ in range(n_steps + 1):
            began = time.perf_counter()
            self.train_steps(1, timed_size)
            timings.append(time.perf_counter() - began)
        return sum(timings[1:]) / n_steps * batch_size / timed_size

    def train_steps(self, n_steps: int, batch_size: int | None) -> float:
        """Run ``n_steps`` optimizer steps on batches of ``batch_size`` at the current lr, nothing else (no
        schedule, evaluation, checkpoint or step count): dry-run timings and the inner loops of a meta-learned
        initialisation. Returns the last step's loss (waiting for the device)."""
        use_amp = self.options.amp and self.device.type == "cuda"
        loss = torch.zeros(())
        for _ in range(n_steps):
            self._start = time.perf_counter()
            loss = self._step(self.signal.sample(batch_size, self.generator), use_amp)
            self.optimizer.step()
            self._update_average(self.step + 1)
        return float(loss)

    def fit(self) -> dict[str, Any]:
        """Train until the budget is spent; returns the final metrics record. With an EMA the field
        then holds the averaged weights (the outputs' and ``weights.safetensors``'); the checkpoint
        keeps the raw ones for a resume."""
        options = self.options
        if self.checkpoint_step < 0:
            self.save_checkpoint()  # step 0: a good state to fall back on
        use_amp = options.amp and self.device.type == "cuda"
        check_every = CPU_CHECK_EVERY if self.device.type == "cpu" else DEVICE_CHECK_EVERY
        loss_sum = torch.zeros((), device=self.device)
        loss_count = 0
        last_loss = math.nan
        start = time.perf_counter() - self.elapsed
        self._start = start
        with self._graceful_interrupt():
            while self.progress_fraction() < 1.0 and not self._stop_requested:
                for group in self.optimizer.param_groups:
                    group["lr"] = group_lr(group, self.base_lr, options.schedule or "exp", self.progress_fraction())
                step_start = time.perf_counter()
                for hook in self.step_hooks:
                    hook(self.step)
                batch = self.sampling.next_batch(self.step, self.progress_fraction(), options.step_budget)
                loss = self._step(batch, use_amp)
                self.optimizer.step()
                self._update_average(self.step + 1)
                loss_sum += loss
                loss_count += 1
                self.step += 1
                if self.step % check_every == 0 or self.progress_fraction() >= 1.0:
                    last_loss = self._check_finite(loss_sum, loss_count)
                now = time.perf_counter()
                self.step_seconds += now - step_start
                self.elapsed = now - start
                if not self._estimate_checked and (self.step >= ESTIMATE_AFTER_STEPS or self.elapsed > ESTIMATE_AFTER_SECONDS):
                    self._check_estimate()
                    if not self.progress.tail_seconds:  # until an evaluation is timed: a forward pass over the signal
                        samples_per_step = options.batch_size or self.signal.n_samples
                        # a sampling policy's timed pass over the pool when it made one (its passes inflate the steps)
                        self.progress.tail_seconds = self.sampling.pass_seconds or (
                            self.signal.n_samples / samples_per_step * self.step_seconds / self.step / BACKWARD_FACTOR)
                if options.eval_every and self.step % options.eval_every == 0 and self.progress_fraction() < 1.0 \
                        and not self._evaluation_would_overrun():
                    last_loss = self._check_finite(loss_sum, loss_count, weights=True)
                    record = self._evaluate(last_loss)
                    self.save_checkpoint()
                    self.progress.update(self.step, self.elapsed, last_loss, record.get("psnr", math.nan),
                                         self.step / self.elapsed, force=True)
                    loss_sum.zero_()
                    loss_count = 0
                else:
                    live_psnr = psnr_from_mse(last_loss) if self.signal.loss_is_mse else math.nan
                    self.progress.update(self.step, self.elapsed, last_loss, live_psnr, self.step / max(self.elapsed, 1e-9))
        if self._stop_requested:
            self._check_finite(loss_sum, loss_count, weights=True)
            self.save_checkpoint()
            self.progress.close()
            cause = "terminated (SIGTERM)" if self._stop_signal == os_signal.SIGTERM else "interrupted"
            raise TrainingInterrupted(
                f"{cause} at step {self.step}; checkpoint saved in {self.run_dir} (continue with --resume)",
                self._stop_signal,
            )
        mean_loss = self._check_finite(loss_sum, loss_count, weights=True)
        if loss_count:
            last_loss = mean_loss
        record = self._evaluate(last_loss, final=True)
        self.save_checkpoint()
        if self.average is not None:  # from here the field holds the EMA weights, as weights.safetensors does
            self._load_average()
        self.progress.update(self.step, self.elapsed, last_loss, record.get("psnr", math.nan),
                             self.step / max(self.elapsed, 1e-9), force=True)
        self.progress.close()
        return record
