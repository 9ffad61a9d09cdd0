"""Reading and writing image files: PNG (8/16-bit), JPEG, TIFF, EXR; grey, RGB, RGBA.

Arrays are ``(H, W, C)`` with ``C`` in {1, 2, 3, 4}. Integer files keep their dtype (``uint8`` or
``uint16``); EXR gives ``float32``. Writes are atomic.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from inrkit.errors import InrkitError
from inrkit.files import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".bmp", ".webp")


def _png_bit_depth(path: Path) -> int:
    with open(path, "rb") as handle:
        header = handle.read(25)
    if len(header) < 25 or header[:8] != b"\x89PNG\r\n\x1a\n":
        return 0
    return header[24]


@contextlib.contextmanager
def _no_pillow_pixel_limit() -> Iterator[None]:
    """Lift Pillow's decompression-bomb limit: inrkit applies its own (``--max-megapixels``)."""
    from PIL import Image

    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` from the file header, without decoding the pixels."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".exr":
            import OpenEXR

            with OpenEXR.File(str(path), header_only=True) as exr:
                (x0, y0), (x1, y1) = exr.header()["dataWindow"]
            return int(y1) - int(y0) + 1, int(x1) - int(x0) + 1
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                page = tiff.pages[0]
                return int(page.imagelength), int(page.imagewidth)
        from PIL import Image

        with _no_pillow_pixel_limit(), Image.open(path) as image:
            width, height = image.size
        return height, width
    except Exception as err:  # any decoder failure means "not an image we can read"
        raise InrkitError(f"cannot read {path}: not a readable image ({_reason(err)})") from None


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def read_image(path: str | Path) -> np.ndarray:
    """Decode ``path`` into an ``(H, W, C)`` array (uint8, uint16 or float32)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".exr":
            array = _read_exr(path)
        elif _png_bit_depth(path) == 16:
            array = _read_png16(path)
        else:
            import imageio.v3 as iio

            with _no_pillow_pixel_limit():
                array = np.asarray(iio.imread(path))
    except InrkitError:
        raise
    except Exception as err:
        raise InrkitError(f"cannot read {path}: not a readable image ({_reason(err)})") from None
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise InrkitError(f"cannot read {path}: unsupported image layout {tuple(array.shape)}")
    if array.dtype not in (np.uint8, np.uint16, np.float32):
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
        elif array.dtype == np.bool_:
            array = array.astype(np.uint8) * 255
        else:
            raise InrkitError(f"cannot read {path}: unsupported pixel type {array.dtype}")
    return array


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(str(path)) as exr:
        channels = exr.channels()
        if "RGBA" in channels:
            return np.asarray(channels["RGBA"].pixels, dtype=np.float32)
        if "RGB" in channels:
            return np.asarray(channels["RGB"].pixels, dtype=np.float32)
        # colour first (Y, or R G B), alpha last, whatever the alphabetical order of the names
        names = sorted(channels, key=lambda name: ({"Y": 0, "R": 1, "G": 2, "B": 3, "A": 5}.get(name, 4), name))
        planes = [np.asarray(channels[name].pixels, dtype=np.float32) for name in names]
    planes = [p[:, :, None] if p.ndim == 2 else p for p in planes]
    return np.concatenate(planes[:4], axis=2)


def _read_png16(path: Path) -> np.ndarray:
    import png

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()
    array = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    return array.reshape(height, width, info["planes"])


def _fit_format(array: np.ndarray, suffix: str) -> np.ndarray:
    """Convert pixels to a dtype ``suffix`` can hold: floats (taken as [0, 1]) and uint16 become
    uint8 for 8-bit formats; PNG and TIFF keep uint16; EXR and TIFF keep floats."""
    if array.dtype == np.uint8 or (array.dtype == np.uint16 and suffix in (".png", ".tif", ".tiff")):
        return array
    if np.issubdtype(array.dtype, np.floating):
        if suffix in (".exr", ".tif", ".tiff"):
            return array.astype(np.float32)
        return (np.clip(array, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if array.dtype == np.uint16:
        return (array.astype(np.float32) / 257.0).round().astype(np.uint8)
    raise InrkitError(f"cannot write pixels of type {array.dtype}")


def encode_image(array: np.ndarray, suffix: str) -> bytes:
    """Encode ``(H, W, C)`` pixels for a file with ``suffix``; uint16 PNG goes through pypng.

    Floats are written as they are to EXR and TIFF and taken as [0, 1] for other formats.
    """
    suffix = suffix.lower()
    array = _fit_format(array, suffix)
    if suffix == ".exr":
        import OpenEXR

        data = np.ascontiguousarray(array.astype(np.float32))
        name = {1: "Y", 3: "RGB", 4: "RGBA"}.get(data.shape[2], "RGB")
        pixels = data[:, :, 0] if name == "Y" else data
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        with tempfile.TemporaryDirectory() as tmp:  # OpenEXR writes to a path, not a buffer
            target = Path(tmp) / "image.exr"
            with OpenEXR.File(header, {name: pixels}) as exr:
                exr.write(str(target))
            return target.read_bytes()
    if array.dtype == np.uint16 and suffix == ".png":
        import png

        height, width, channels = array.shape
        buffer = io.BytesIO()
        writer = png.Writer(width=width, height=height, bitdepth=16, greyscale=channels <= 2, alpha=channels in (2, 4))
        writer.write(buffer, array.reshape(height, width * channels).tolist())
        return buffer.getvalue()
    if suffix in (".tif", ".tiff"):
        import tifffile

        channels = array.shape[2]
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, array[:, :, 0] if channels == 1 else array,
                         photometric="rgb" if channels >= 3 else "minisblack",
                         extrasamples=["unassalpha"] if channels in (2, 4) else None)
        return buffer.getvalue()
    import imageio.v3 as iio

    pixels = array[:, :, 0] if array.shape[2] == 1 else array
    if suffix in (".jpg", ".jpeg") and pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = pixels[:, :, :3]
    return bytes(iio.imwrite("<bytes>", pixels, extension=suffix))


def write_image(path: str | Path, array: np.ndarray) -> Path:
    """Write ``(H, W, C)`` pixels to ``path`` atomically; the format follows the suffix."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise InrkitError(f"cannot write {path}: unknown image format; use one of {', '.join(IMAGE_SUFFIXES)}")
    atomic_write_bytes(path, encode_image(array, path.suffix))
    return path
