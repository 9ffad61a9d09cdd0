"""Video as a signal: frames ``(T, H, W, C)`` at coordinates ``(t, y, x) ∈ [-1, 1]³``.

Frame ``f`` of ``T`` sits at ``t = (2f + 1)/T − 1``, row ``i`` at ``y = (2i + 1)/H − 1`` and column
``j`` at ``x = (2j + 1)/W − 1`` (centres, as for images and audio), so any other frame rate or size
is a denser or sparser grid of the same cube: frame interpolation and resizing are queries.

The frames are kept once, as the integers of the file (uint8 or uint16, :mod:`video_files`); a
batch gathers its pixels and divides by 255 (65535) on the fly, so no per-pixel coordinate or float
copy of the video exists.

**Held-out pixels** (ResFields protocol, REFERENCE §1.7): with ``holdout = 1/k`` every k-th column
of every frame (``j ≡ 0 mod k``, as the official ``test_every = 10``) is never trained on, and the
evaluation reports ``psnr_heldout`` on those pixels beside ``psnr_train``; ``psnr`` covers all pixels.

**Batches are grouped by frame**: ``F`` frames are drawn without replacement (all frames by
default, as the official sampler) and ``B // F`` random training pixels from each, laid out frame
after frame, which lets time-varying layers (ResFields) build one weight matrix per frame.

**Outputs** are rendered once: :meth:`VideoSignal.evaluate` keeps the frames it rendered (in the
file's integer type) with a fingerprint of the field, and :meth:`VideoSignal.write_outputs` encodes
``reconstruction.mp4`` from them (and the PNG folder ``frames/`` only with ``save_frames``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inrkit.errors import InrkitError
from inrkit.io.video import read_video, staged_folder, tee_frames, write_frames, write_mp4
from inrkit.metrics import psnr_from_mse
from inrkit.signals.base import Batch, Signal
from inrkit.signals.image import pixel_centre

DEFAULT_VIDEO_BATCH = 1 << 15
DEVICE_VIDEO_BATCH = 8192
DEVICE_RESFIELDS_WIDTH = 128
# the papers' video protocols (REFERENCE §1.1, §1.7)
RESFIELDS_VIDEO_TRAINING: dict[str, Any] = {"batch_size": 200_000, "lr": 5e-5, "schedule": "cosine"}
SIREN_VIDEO_TRAINING: dict[str, Any] = {"width": 1024, "lr": 1e-4, "schedule": "constant"}
SIREN_VIDEO_FRACTION = 0.0038  # of the pixels per step


@dataclass
class VideoOptions:
    """How a video (MP4/GIF/folder of frames) becomes a signal."""

    holdout: float = field(default=0.1, metadata={"help": "fraction of pixels per frame held out for testing: every "
                                                          "round(1/f)-th column (0: none)"})
    frames_per_batch: int = field(default=0, metadata={"help": "frames per training batch (0: all frames)"})
    video_downscale: int = field(default=1, metadata={"help": "average SxS pixel blocks on load (CPU-sized video)"})
    video_max_frames: int = field(default=0, metadata={"help": "keep only the first N frames (0: all)"})
    folder_fps: float = field(default=25.0, metadata={"help": "frame rate of a folder of frames"})
    save_frames: bool = field(default=False, metadata={"help": "after fitting, also write every reconstructed frame as "
                                                                "frames/frame_00000.png ... (slow for long videos)"})


def holdout_stride(fraction: float) -> int:
    """Column stride ``k = round(1/fraction)`` (0 when nothing is held out)."""
    if not 0.0 <= fraction < 1.0:
        raise InrkitError(f"--holdout must be in [0, 1), got {fraction}")
    return 0 if fraction == 0.0 else max(2, round(1.0 / fraction))


def frame_coords(t: float, height: int, width: int, rows: torch.Tensor) -> torch.Tensor:
    """``(len(rows)·width, 3)`` coordinates ``(t, y, x)`` of ``rows`` of one frame, row-major."""
    ys = pixel_centre(rows, height)
    xs = pixel_centre(torch.arange(width, device=rows.device), width)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((torch.full_like(grid_y, t).reshape(-1), grid_y.reshape(-1), grid_x.reshape(-1)), dim=1)


@torch.no_grad()
def render_frames(field: torch.nn.Module, n_frames: int, height: int, width: int,
                  max_points: int = 1 << 16) -> Iterator[np.ndarray]:
    """Yield ``n_frames`` frames ``(height, width, C)`` float32 (unclamped) of the field, one at a time.

    The field is queried about ``max_points`` coordinates at a time: several whole frames per call
    when frames are small (half the time of one call per frame on a CPU), row chunks of one frame
    when they are large.
    """
    if n_frames < 1 or height < 1 or width < 1:
        raise InrkitError(f"video size must be positive, got {n_frames} frames of {width}x{height}")
    device = next(field.parameters()).device
    frames_per_call = max(1, max_points // (height * width))
    rows_per_chunk = max(1, max_points // width)
    all_rows = torch.arange(height, device=device)
    times = pixel_centre(torch.arange(n_frames), n_frames).tolist()
    for first in range(0, n_frames, frames_per_call):
        group = times[first:first + frames_per_call]
        if len(group) > 1:
            coords = torch.cat([frame_coords(t, height, width, all_rows) for t in group])
            yield from field(coords).float().cpu().numpy().reshape(len(group), height, width, -1)
            continue
        parts = [field(frame_coords(group[0], height, width, all_rows[row0:row0 + rows_per_chunk])).float().cpu().numpy()
                 for row0 in range(0, height, rows_per_chunk)]
        yield np.concatenate(parts).reshape(height, width, -1)


def to_file_units(frame: np.ndarray, dtype: str) -> np.ndarray:
    """[0, 1] values to the frames' integer type (clipped and rounded)."""
    top = float(np.iinfo(np.dtype(dtype)).max)
    return np.round(np.clip(frame, 0.0, 1.0) * top).astype(dtype)


class VideoSignal(Signal):
    """A video to fit; see the module docstring for coordinates, held-out pixels and batches."""

    kind = "video"
    n_input_dims = 3
    time_dim = 0  # the column of the coordinates that holds time (used by time-varying fields)

    def __init__(self, frames: np.ndarray, fps: float, source: str | None = None, options: VideoOptions | None = None) -> None:
        if frames.ndim != 4:
            raise InrkitError(f"video frames must be (T, H, W, C), got shape {frames.shape}")
        if frames.dtype not in (np.uint8, np.uint16):
            raise InrkitError(f"video frames must be uint8 or uint16, got {frames.dtype}")
        n_frames, height, width, channels = frames.shape
        if n_frames < 2:
            raise InrkitError(f"the video has {n_frames} frame; inrkit needs at least 2 (fit a single frame as an image)")
        if height < 2 or width < 2:
            raise InrkitError(f"video frames are {width}x{height} pixels; inrkit needs at least 2x2")
        self.options = options or VideoOptions()
        if self.options.frames_per_batch < 0:
            raise InrkitError(f"--frames-per-batch must be >= 0, got {self.options.frames_per_batch}")
        self.stride = holdout_stride(self.options.holdout)
        self.n_frames, self.height, self.width, self.n_output_dims = n_frames, height, width, channels
        self.fps = float(fps)
        self.source = source
        self.dtype = str(frames.dtype)
        self.frames = torch.from_numpy(frames)  # shares memory with the decoded array: the only copy
        self._scale = 1.0 / float(np.iinfo(frames.dtype).max)
        columns = torch.arange(width)
        held_out = columns % self.stride == 0 if self.stride else torch.zeros(width, dtype=torch.bool)
        self.train_columns = columns[~held_out]
        self.heldout_columns = columns[held_out]

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, options: VideoOptions | None = None) -> VideoSignal:
        """Load an MP4 (any ffmpeg container), a GIF or a folder of PNG/JPEG/TIFF frames."""
        options = options or VideoOptions()
        path = Path(path)
        if not path.exists():
            raise InrkitError(f"cannot read {path}: no such file or folder")
        if options.video_max_frames < 0:
            raise InrkitError(f"--video-max-frames must be >= 0, got {options.video_max_frames}")
        if not options.folder_fps > 0:
            raise InrkitError(f"--folder-fps must be positive, got {options.folder_fps}")
        frames, fps = read_video(path, options.video_downscale, options.video_max_frames, options.folder_fps)
        try:
            return cls(frames, fps, source=str(path.resolve()), options=options)
        except InrkitError as err:
            raise InrkitError(f"cannot fit {path}: {err}") from None

    @classmethod
    def from_array(cls, frames: np.ndarray, fps: float = 25.0, options: VideoOptions | None = None) -> VideoSignal:
        """Wrap ``(T, H, W, C)`` (or ``(T, H, W)``) uint8/uint16 frames, or floats in [0, 1] (stored as uint16)."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[..., None]
        if np.issubdtype(frames.dtype, np.floating):
            frames = to_file_units(frames, "uint16")
        return cls(frames, fps, options=options)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> VideoSignal:
        """Reopen the signal described by :meth:`config`."""
        if config.get("source") is None:
            raise InrkitError("this run was fitted to an in-memory video; its signal cannot be reopened")
        return cls.from_file(config["source"], VideoOptions(**config.get("options", {})))

    # -- Signal interface -----------------------------------------------------------------------
    @property
    def samples_per_axis(self) -> int:
        return max(self.n_frames, self.height, self.width)

    @property
    def n_samples(self) -> int:
        return self.n_frames * self.height * self.width

    @property
    def n_train_samples(self) -> int:
        """Pixels available for training (held-out columns excluded)."""
        return self.n_frames * self.height * len(self.train_columns)

    def default_options(self, model: str, protocol: str) -> dict[str, Any]:
        """Suggestions for preset ``model``, decided from its name (a signal knows nothing of fields).

        ``paper``: ResFields' video protocol for ``resfields`` (200k pixels per step, Adam 5e-5,
        cosine to 0.1·lr), SIREN's ``train_video.py`` for ``siren`` (width 1024, Adam 1e-4, no
        schedule, 0.38 % of the pixels per step), :data:`DEFAULT_VIDEO_BATCH` pixels otherwise.
        ``device``: :data:`DEVICE_VIDEO_BATCH` pixels per step, and ``resfields`` at width
        :data:`DEVICE_RESFIELDS_WIDTH` (measured on bikes on a 2-core CPU: many more steps in a
        time budget, and a 4× cheaper final rendering; BENCHMARKS.md).
        """
        if protocol == "device":
            suggested: dict[str, Any] = {"batch_size": DEVICE_VIDEO_BATCH}
            if model == "resfields":
                suggested["width"] = DEVICE_RESFIELDS_WIDTH
            return suggested
        if model == "resfields":
            return dict(RESFIELDS_VIDEO_TRAINING)
        if model == "siren":
            return {**SIREN_VIDEO_TRAINING, "batch_size": max(1, round(SIREN_VIDEO_FRACTION * self.n_train_samples))}
        return {"batch_size": DEFAULT_VIDEO_BATCH}

    def to(self, device: torch.device) -> VideoSignal:
        self.frames = self.frames.to(device)
        self.train_columns = self.train_columns.to(device)
        self.heldout_columns = self.heldout_columns.to(device)
        return self

    def _values(self, t: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.frames[t, y, x].float() * self._scale

    def sample(self, batch_size: int | None, generator: torch.Generator | None = None) -> Batch:
        device = self.frames.device
        batch_size = min(batch_size or self.n_train_samples, self.n_train_samples)
        n_batch_frames = min(self.options.frames_per_batch or self.n_frames, self.n_frames, batch_size)
        per_frame = batch_size // n_batch_frames
        frames = torch.randperm(self.n_frames, device=device, generator=generator)[:n_batch_frames].sort().values
        t = frames.repeat_interleave(per_frame)
        y = torch.randint(self.height, t.shape, device=device, generator=generator)
        x = self.train_columns[torch.randint(len(self.train_columns), t.shape, device=device, generator=generator)]
        coords = torch.stack((pixel_centre(t, self.n_frames), pixel_centre(y, self.height), pixel_centre(x, self.width)), 1)
        return Batch(coords, self._values(t, y, x))

    @property
    def pool_size(self) -> int:
        """The training pixels (held-out columns excluded): index ``i`` is frame ``i // (H·W')``, row
        ``(i // W') % H`` and the ``(i % W')``-th training column, ``W'`` training columns a row."""
        return self.n_train_samples

    def pool_batch(self, index: torch.Tensor) -> Batch:
        columns = len(self.train_columns)
        t, y = index // (self.height * columns), (index // columns) % self.height
        x = self.train_columns[index % columns]
        coords = torch.stack((pixel_centre(t, self.n_frames), pixel_centre(y, self.height), pixel_centre(x, self.width)), 1)
        return Batch(coords, self._values(t, y, x))

    def evaluate(self, field: torch.nn.Module) -> dict[str, float]:
        """PSNR over all pixels, the training pixels and the held-out pixels (clamped, float64 sums).

        The rendered frames are kept in the file's integer type (one more copy of the video's size)
        with a fingerprint of ``field``, so that :meth:`write_outputs` encodes them instead of
        rendering the video a second time.
        """
        rendered = np.empty((self.n_frames, self.height, self.width, self.n_output_dims), dtype=self.dtype)
        heldout, train = self.heldout_columns.cpu().numpy(), self.train_columns.cpu().numpy()
        train_se = heldout_se = 0.0
        for index, frame in enumerate(render_frames(field, self.n_frames, self.height, self.width)):
            target = self.frames[index].cpu().numpy().astype(np.float64) * self._scale
            error = np.square(np.clip(frame, 0.0, 1.0) - target)
            heldout_se += float(error[:, heldout].sum())
            train_se += float(error[:, train].sum())
            rendered[index] = to_file_units(frame, self.dtype)
        self._remember(field, rendered)
        per_column = self.n_frames * self.height * self.n_output_dims
        metrics = {
            "psnr": psnr_from_mse((train_se + heldout_se) / (per_column * self.width)),
            "psnr_train": psnr_from_mse(train_se / (per_column * len(self.train_columns))),
        }
        if len(self.heldout_columns):
            metrics["psnr_heldout"] = psnr_from_mse(heldout_se / (per_column * len(self.heldout_columns)))
        return metrics

    def write_outputs(self, field: torch.nn.Module, out_dir: Path) -> list[Path]:
        """``reconstruction.mp4`` (and ``frames/`` with ``save_frames``), from the frames the last
        :meth:`evaluate` rendered when ``field`` is unchanged since (else rendered anew)."""
        folder = out_dir / "frames" if self.options.save_frames else None
        rendered = self._recall(field)
        if rendered is None:
            return write_video(field, self.config(), out_dir / "reconstruction.mp4", frames_folder=folder)
        return write_frame_files(rendered, out_dir / "reconstruction.mp4", self.fps, folder)

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "options": asdict(self.options),
            "n_frames": self.n_frames,
            "height": self.height,
            "width": self.width,
            "channels": self.n_output_dims,
            "fps": self.fps,
            "normalisation": {"dtype": self.dtype},
        }


def write_video(field: torch.nn.Module, signal_config: dict[str, Any], out: str | Path | None,
                fps: float | None = None, height: int | None = None, width: int | None = None,
                frames_folder: str | Path | None = None) -> list[Path]:
    """Render a video run and write it as an MP4 (``out``) and/or PNG frames (``frames_folder``).

    ``fps`` (default: the original) keeps the duration: ``round(T·fps/original_fps)`` frames are
    queried at frame centres of [-1, 1] (frame interpolation); ``height``/``width`` resize.
    One frame is rendered at a time and streamed to both writers.
    """
    original_fps = float(signal_config["fps"])
    fps = original_fps if fps is None else float(fps)
    if not fps > 0:
        raise InrkitError(f"--fps must be positive, got {fps}")
    n_frames = max(1, round(int(signal_config["n_frames"]) * fps / original_fps))
    height = height or int(signal_config["height"])
    width = width or int(signal_config["width"])
    dtype = signal_config["normalisation"]["dtype"]
    frames = (to_file_units(frame, dtype) for frame in render_frames(field, n_frames, height, width))
    return write_frame_files(frames, out, fps, frames_folder)


def write_frame_files(frames: Iterable[np.ndarray], out: str | Path | None, fps: float,
                      frames_folder: str | Path | None = None) -> list[Path]:
    """Stream ``(H, W, C)`` integer frames into an MP4 (``out``) and/or PNG frames (``frames_folder``).

    ``frames`` may be a lazy generator: nothing is rendered when there is nothing to write.
    """
    if out is not None and frames_folder is not None:
        with staged_folder(frames_folder) as staging:  # one pass over the frames feeds both writers
            mp4 = write_mp4(out, tee_frames(frames, staging), fps)
        return [mp4, Path(frames_folder)]
    if out is not None:
        return [write_mp4(out, frames, fps)]
    if frames_folder is None:
        raise InrkitError("nothing to write: give an MP4 path or a frames folder")
    return [write_frames(frames_folder, frames)]
