"""Video reading and writing: MP4 (and other ffmpeg containers), GIF, or a folder of frames.

Frames land in one preallocated ``(T, H, W, C)`` integer array (uint8, or uint16 for 16-bit frame
folders), filled frame by frame: a video is never held twice, not even while it is decoded.
``downscale = s`` averages ``s × s`` blocks as each frame arrives (a CPU-sized copy of a large
video costs ``1/s²`` of its memory).

MP4 is read and written through imageio's ffmpeg plugin (``imageio-ffmpeg`` ships the binary), GIF
through Pillow, frame folders through :mod:`inrkit.io.images` (PNG/JPEG/TIFF, 8 or 16 bit).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from inrkit.errors import InrkitError
from inrkit.files import atomic_path
from inrkit.io.images import IMAGE_SUFFIXES, read_image, write_image

FFMPEG_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
VIDEO_SUFFIXES = (*FFMPEG_SUFFIXES, ".gif")
FRAME_SUFFIXES = tuple(s for s in IMAGE_SUFFIXES if s != ".exr")


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _natural_key(path: Path) -> list:
    """``frame2.png`` before ``frame10.png``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` in natural order (hidden files ignored)."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")]
    return sorted(files, key=_natural_key)


def downscale_frame(frame: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor × factor`` blocks of ``(H, W, C)`` (edge rows/columns that do not fill a block are dropped)."""
    if factor == 1:
        return frame
    height, width = frame.shape[0] // factor, frame.shape[1] // factor
    blocks = frame[: height * factor, : width * factor].reshape(height, factor, width, factor, frame.shape[2])
    mean = blocks.mean(axis=(1, 3), dtype=np.float64)
    return np.round(mean).astype(frame.dtype)


class _Filler:
    """Fills a preallocated ``(T, H, W, C)`` array frame by frame, checking every frame's shape."""

    def __init__(self, path: Path, n_frames: int, downscale: int) -> None:
        self.path, self.n_frames, self.downscale = path, n_frames, downscale
        self.frames: np.ndarray | None = None
        self.count = 0

    def add(self, frame: np.ndarray, name: str) -> bool:
        """Store one frame; returns False once the array is full."""
        if frame.ndim == 2:
            frame = frame[:, :, None]
        small = downscale_frame(frame, self.downscale)
        if small.shape[0] < 1 or small.shape[1] < 1:
            raise InrkitError(f"cannot read {self.path}: frames of {frame.shape[1]}x{frame.shape[0]} are smaller than "
                              f"--video-downscale {self.downscale}")
        if self.frames is None:
            self.frames = np.empty((self.n_frames, *small.shape), dtype=small.dtype)
            self.first = (frame.shape, frame.dtype, name)
        elif frame.shape != self.first[0] or frame.dtype != self.first[1]:
            shape, dtype, first_name = self.first
            raise InrkitError(
                f"cannot read {self.path}: {name} is {frame.shape[1]}x{frame.shape[0]}x{frame.shape[2]} {frame.dtype}, "
                f"but {first_name} is {shape[1]}x{shape[0]}x{shape[2]} {dtype}; all frames must match"
            )
        self.frames[self.count] = small
        self.count += 1
        return self.count < self.n_frames

    def result(self) -> np.ndarray:
        if self.frames is None or self.count == 0:
            raise InrkitError(f"cannot read {self.path}: it holds no frames")
        return self.frames[: self.count]


def _limit(count: int, max_frames: int) -> int:
    return min(count, max_frames) if max_frames > 0 else count


def _read_ffmpeg(path: Path, downscale: int, max_frames: int) -> tuple[np.ndarray, float]:
    import imageio.v2 as imageio

    try:
        reader = imageio.get_reader(str(path), "ffmpeg")
    except Exception as err:  # imageio/ffmpeg raise OSError, RuntimeError, IndexError... for broken files
        raise InrkitError(f"cannot read {path}: corrupt or unsupported video ({_first_line(err)})") from None
    try:
        fps = float(reader.get_meta_data().get("fps") or 25.0)
        count = reader.count_frames()
        if count < 1:
            raise InrkitError(f"cannot read {path}: the video has no frames")
        filler = _Filler(path, _limit(count, max_frames), downscale)
        for index, frame in enumerate(reader):
            if not filler.add(np.asarray(frame), f"frame {index}"):
                break
    except InrkitError:
        raise
    except Exception as err:
        raise InrkitError(f"cannot read {path}: corrupt or truncated video ({_first_line(err)})") from None
    finally:
        with contextlib.suppress(Exception):
            reader.close()
    if filler.count < filler.n_frames:
        raise InrkitError(f"cannot read {path}: truncated video (the container lists {count} frames, "
                          f"only {filler.count} could be decoded)")
    return filler.result(), fps


def _read_gif(path: Path, downscale: int, max_frames: int) -> tuple[np.ndarray, float]:
    from PIL import Image, ImageSequence

    try:
        with Image.open(path) as image:
            count = getattr(image, "n_frames", 1)
            duration_ms = image.info.get("duration") or 40
            filler = _Filler(path, _limit(count, max_frames), downscale)
            for index, frame in enumerate(ImageSequence.Iterator(image)):
                if not filler.add(np.asarray(frame.convert("RGB")), f"frame {index}"):
                    break
    except InrkitError:
        raise
    except Exception as err:
        raise InrkitError(f"cannot read {path}: corrupt or truncated GIF ({_first_line(err)})") from None
    return filler.result(), 1000.0 / float(duration_ms)


def _read_folder(path: Path, downscale: int, max_frames: int, fps: float) -> tuple[np.ndarray, float]:
    files = frame_files(path)
    if not files:
        raise InrkitError(f"cannot read {path}: the folder holds no frames ({' '.join(FRAME_SUFFIXES)})")
    filler = _Filler(path, _limit(len(files), max_frames), downscale)
    for file in files:
        frame = read_image(file)
        if frame.dtype == np.float32:
            raise InrkitError(f"cannot read {path}: {file.name} is a floating-point image; frames must be 8 or 16-bit")
        if not filler.add(frame, file.name):
            break
    return filler.result(), fps


def read_video(path: Path, downscale: int = 1, max_frames: int = 0, folder_fps: float = 25.0) -> tuple[np.ndarray, float]:
    """``(frames (T, H, W, C) uint8|uint16, fps)`` from a video file, a GIF or a folder of frames.

    ``max_frames > 0`` keeps the first frames only; ``downscale`` averages blocks (see module docstring).
    """
    if downscale < 1:
        raise InrkitError(f"--video-downscale must be a positive integer, got {downscale}")
    if path.is_dir():
        return _read_folder(path, downscale, max_frames, folder_fps)
    if path.suffix.lower() == ".gif":
        return _read_gif(path, downscale, max_frames)
    return _read_ffmpeg(path, downscale, max_frames)


def to_rgb8(frame: np.ndarray) -> np.ndarray:
    """Any ``(H, W, C)`` uint8/uint16 frame as 8-bit RGB for a video file (grey repeated, alpha dropped)."""
    if frame.dtype == np.uint16:
        frame = np.round(frame / 257.0).astype(np.uint8)
    if frame.shape[2] in (1, 2):
        frame = np.repeat(frame[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(frame[:, :, :3])


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float) -> Path:
    """Write ``(H, W, C)`` frames as an H.264 MP4 at ``fps``, atomically (temp file + rename).

    Even sizes use yuv420p (plays everywhere); odd sizes use yuv444p, which H.264 allows. CRF 12 is
    visually lossless; the RGB -> YUV conversion alone costs ~1-2 levels of 255.
    """
    import imageio.v2 as imageio

    path = Path(path)
    with atomic_path(path, ".mp4") as tmp:
        writer = None
        try:
            for frame in frames:
                rgb = to_rgb8(frame)
                if writer is None:
                    even = rgb.shape[0] % 2 == 0 and rgb.shape[1] % 2 == 0
                    writer = imageio.get_writer(str(tmp), "ffmpeg", fps=fps, codec="libx264", quality=None,
                                                output_params=["-crf", "12"], macro_block_size=1,
                                                pixelformat="yuv420p" if even else "yuv444p", ffmpeg_log_level="error")
                writer.append_data(rgb)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise InrkitError("cannot write a video without frames")
    return path


@contextlib.contextmanager
def staged_folder(folder: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``folder`` that replaces it when the block succeeds (complete or not at all)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def tee_frames(frames: Iterable[np.ndarray], folder: Path) -> Iterator[np.ndarray]:
    """Pass frames through while writing each as ``folder/frame_00000.png ...``."""
    for index, frame in enumerate(frames):
        write_image(folder / f"frame_{index:05d}.png", frame)
        yield frame


def write_frames(folder: str | Path, frames: Iterable[np.ndarray]) -> Path:
    """Write frames as ``frame_00000.png ...`` into ``folder``; the folder appears complete or not at all."""
    with staged_folder(folder) as tmp:
        for _ in tee_frames(frames, tmp):
            pass
    return Path(folder)
