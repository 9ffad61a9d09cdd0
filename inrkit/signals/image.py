"""Images as signals: pixels ``(H, W, C)`` in [0, 1] at pixel-centre coordinates in [-1, 1]².

Coordinates are ``(x, y)``: column ``j`` of ``W`` maps to ``x = (2j + 1)/W − 1`` and row ``i`` of ``H``
to ``y = (2i + 1)/H − 1`` (``y`` grows downwards). Values are normalised to [0, 1] by
``(raw − low)/(high − low)`` with ``low``/``high`` stored: 0/255 for 8-bit files, 0/65535 for 16-bit
files, the image's own min/max for floating-point (EXR) files.

Example:
    >>> import numpy as np, inrkit
    >>> signal = ImageSignal.from_array(np.random.rand(32, 48, 3).astype(np.float32))
    >>> field = inrkit.fields.build_field("siren", 2, 3)
    >>> render(field, 64, 96).shape   # super-resolution: query the field densely
    (64, 96, 3)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inrkit import metrics
from inrkit.errors import InrkitError
from inrkit.io.images import image_size, read_image, write_image
from inrkit.signals.base import Batch, Signal

ALPHA_MODES = ("keep", "composite")


@dataclass
class ImageOptions:
    """How an image file becomes a signal."""

    alpha: str = field(default="keep", metadata={"help": "alpha channel: keep (fit RGBA) | composite (onto --background)"})
    background: float = field(default=1.0, metadata={"help": "background grey level in [0,1] for --alpha composite"})
    max_megapixels: float = field(default=64.0, metadata={"help": "refuse larger images (raise to fit them anyway)"})


def pixel_centre(index: torch.Tensor, size: int) -> torch.Tensor:
    """Coordinate of pixel ``index`` (0 … size−1) along an axis of ``size`` pixels: ``(2i + 1)/size − 1``."""
    return (2 * index.float() + 1) / size - 1


def _grid(rows: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(x, y)`` coordinates ``(len(rows)·width, 2)`` of the given rows, row-major."""
    xs = pixel_centre(torch.arange(width, device=rows.device), width)
    grid_y, grid_x = torch.meshgrid(pixel_centre(rows, height), xs, indexing="ij")
    return torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), dim=1)


def pixel_grid(height: int, width: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Pixel-centre coordinates ``(height·width, 2)`` as ``(x, y)`` in [-1, 1], row-major."""
    return _grid(torch.arange(height, device=device), height, width)


@torch.no_grad()
def render(field: torch.nn.Module, height: int, width: int, max_points: int = 1 << 16) -> np.ndarray:
    """Query ``field`` on a ``height × width`` pixel grid: ``(height, width, C)`` float32, unclamped.

    Rows are evaluated in chunks of about ``max_points`` pixels, so memory stays at the output
    array plus one chunk's activations (a 4096² RGB render holds 200 MB of output).
    """
    if height < 1 or width < 1:
        raise InrkitError(f"render size must be positive, got {width}x{height}")
    device = next(field.parameters()).device
    rows_per_chunk = max(1, max_points // width)
    out: np.ndarray | None = None
    for row0 in range(0, height, rows_per_chunk):
        rows = torch.arange(row0, min(height, row0 + rows_per_chunk), device=device)
        values = field(_grid(rows, height, width)).float().cpu().numpy()
        if out is None:
            out = np.empty((height, width, values.shape[1]), dtype=np.float32)
        out[row0 : row0 + len(rows)] = values.reshape(len(rows), width, -1)
    assert out is not None
    return out


def _affine(normalisation: dict[str, Any], channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(low, high)``; a float image's alpha channel keeps ``(0, 1)``."""
    low = np.full(channels, normalisation["low"], dtype=np.float32)
    high = np.full(channels, normalisation["high"], dtype=np.float32)
    if normalisation.get("alpha") and normalisation["dtype"].startswith("float"):
        low[-1], high[-1] = 0.0, 1.0
    return low, high


def normalise(raw: np.ndarray, normalisation: dict[str, Any]) -> np.ndarray:
    """File units to [0, 1]: ``(raw − low)/(high − low)`` per channel, as float32."""
    low, high = _affine(normalisation, raw.shape[2])
    return ((raw.astype(np.float32) - low) / (high - low)).astype(np.float32)


def denormalise(values: np.ndarray, normalisation: dict[str, Any]) -> np.ndarray:
    """[0, 1] values to file units: ``clip(v, 0, 1)·(high − low) + low``, rounded for integer dtypes."""
    low, high = _affine(normalisation, values.shape[2])
    dtype = np.dtype(normalisation["dtype"])
    raw = np.clip(values, 0.0, 1.0) * (high - low) + low
    return np.round(raw).astype(dtype) if np.issubdtype(dtype, np.integer) else raw.astype(np.float32)


class ImageSignal(Signal):
    """An image to fit; see the module docstring for coordinates and normalisation."""

    kind = "image"
    n_input_dims = 2

    def __init__(self, pixels: np.ndarray, normalisation: dict[str, Any], source: str | None = None,
                 options: ImageOptions | None = None) -> None:
        if pixels.ndim != 3:
            raise InrkitError(f"image pixels must be (H, W, C), got shape {pixels.shape}")
        height, width, channels = pixels.shape
        if height < 2 or width < 2:
            raise InrkitError(f"image is {width}x{height} pixels; inrkit needs at least 2x2")
        if not np.isfinite(pixels).all():
            raise InrkitError("image contains NaN or infinite values")
        self.height, self.width, self.n_output_dims = height, width, channels
        self.normalisation = normalisation
        self.source = source
        self.options = options or ImageOptions()
        self.values = torch.from_numpy(np.ascontiguousarray(pixels.reshape(-1, channels), dtype=np.float32))
        self._grid: torch.Tensor | None = None

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, options: ImageOptions | None = None) -> ImageSignal:
        """Load an image file (PNG, JPEG, TIFF, EXR, 8/16-bit, grey/RGB/RGBA)."""
        options = options or ImageOptions()
        path = Path(path)
        if options.alpha not in ALPHA_MODES:
            raise InrkitError(f"--alpha must be one of {', '.join(ALPHA_MODES)}, got {options.alpha!r}")
        if not 0.0 <= options.background <= 1.0:  # NaN fails too
            raise InrkitError(f"--background must be a grey level in [0, 1], got {options.background}")
        if not options.max_megapixels > 0:
            raise InrkitError(f"--max-megapixels must be positive, got {options.max_megapixels}")
        if not path.is_file():
            raise InrkitError(f"cannot read {path}: no such file")
        height, width = image_size(path)
        megapixels = height * width / 1e6
        if megapixels > options.max_megapixels:
            raise InrkitError(
                f"{path} is {width}x{height} ({megapixels:.1f} megapixels), above --max-megapixels "
                f"{options.max_megapixels:g}; raise that limit to fit it anyway"
            )
        raw = read_image(path)
        has_alpha = raw.shape[2] in (2, 4)
        if raw.dtype == np.float32:
            if not np.isfinite(raw).all():
                raise InrkitError(f"cannot fit {path}: the image contains NaN or infinite values")
            colour = raw[:, :, :-1] if has_alpha else raw  # alpha is coverage in [0, 1]: never rescaled
            low, high = float(colour.min()), float(colour.max())
            high = high if high > low else low + 1.0
        else:
            low, high = 0.0, float(np.iinfo(raw.dtype).max)
        normalisation = {"dtype": str(raw.dtype), "low": low, "high": high, "alpha": has_alpha}
        pixels = normalise(raw, normalisation)
        if options.alpha == "composite" and has_alpha:
            alpha = pixels[:, :, -1:]
            pixels = pixels[:, :, :-1] * alpha + options.background * (1.0 - alpha)
            normalisation["alpha"] = False
        return cls(pixels, normalisation, source=str(path.resolve()), options=options)

    @classmethod
    def from_array(cls, pixels: np.ndarray) -> ImageSignal:
        """Wrap ``(H, W, C)`` (or ``(H, W)``) float values already in [0, 1]."""
        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        return cls(pixels, {"dtype": "float32", "low": 0.0, "high": 1.0})

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ImageSignal:
        """Reopen the signal described by :meth:`config`."""
        if config.get("source") is None:
            raise InrkitError("this run was fitted to an in-memory image; its signal cannot be reopened")
        return cls.from_file(config["source"], ImageOptions(**config.get("options", {})))

    # -- Signal interface -----------------------------------------------------------------------
    @property
    def samples_per_axis(self) -> int:
        return max(self.height, self.width)

    @property
    def n_samples(self) -> int:
        return self.height * self.width

    @property
    def pixels(self) -> torch.Tensor:
        """The target image ``(H, W, C)`` in [0, 1] (on the signal's device)."""
        return self.values.reshape(self.height, self.width, self.n_output_dims)

    def to(self, device: torch.device) -> ImageSignal:
        self.values = self.values.to(device)
        self._grid = None
        return self

    def sample(self, batch_size: int | None, generator: torch.Generator | None = None) -> Batch:
        if batch_size is None or batch_size >= self.n_samples:
            if self._grid is None:
                self._grid = pixel_grid(self.height, self.width, self.values.device)
            return Batch(self._grid, self.values)
        index = torch.randint(self.n_samples, (batch_size,), device=self.values.device, generator=generator)
        return self.pool_batch(index)

    @property
    def pool_size(self) -> int:
        """Every pixel: index ``i`` is row ``i // W``, column ``i % W``."""
        return self.n_samples

    @property
    def pool_grid(self) -> tuple[int, int]:  # type: ignore[override]
        return (self.height, self.width)

    def pool_batch(self, index: torch.Tensor) -> Batch:
        rows, cols = index // self.width, index % self.width
        coords = torch.stack((pixel_centre(cols, self.width), pixel_centre(rows, self.height)), dim=1)
        return Batch(coords, self.values[index])

    def _render(self, field: torch.nn.Module) -> np.ndarray:
        return render(field, self.height, self.width)

    def evaluate(self, field: torch.nn.Module) -> dict[str, float]:
        prediction = torch.from_numpy(self.reconstruct(field))
        target = self.pixels.cpu()
        return {"psnr": metrics.psnr(prediction, target), "ssim": metrics.ssim(prediction, target)}

    def denormalise(self, values: np.ndarray) -> np.ndarray:
        """Map [0, 1] values back to the file's units and dtype."""
        return denormalise(values, self.normalisation)

    @property
    def output_suffix(self) -> str:
        """``.exr`` for floating-point sources, ``.png`` (8 or 16 bit) otherwise."""
        return ".exr" if self.normalisation["dtype"].startswith("float") and self.source else ".png"

    def write_outputs(self, field: torch.nn.Module, out_dir: Path) -> list[Path]:
        prediction = self.reconstruct(field)
        error = np.abs(np.clip(prediction, 0, 1) - self.pixels.cpu().numpy()).mean(axis=2)
        error_map = (np.clip(10.0 * error, 0.0, 1.0) * 255).round().astype(np.uint8)[:, :, None]
        return [
            write_image(out_dir / f"reconstruction{self.output_suffix}", self.denormalise(prediction)),
            write_image(out_dir / "error.png", error_map),
        ]

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "options": asdict(self.options),
            "height": self.height,
            "width": self.width,
            "channels": self.n_output_dims,
            "normalisation": self.normalisation,
        }
