"""Files of a run turned into inline HTML payloads: ``data:`` URIs for images, audio and video, and meshes
packed as base64 little-endian arrays for the report's canvas viewer. Nothing refers outside the page."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
        ".wav": "audio/wav", ".mp4": "video/mp4"}
MAX_MESH_FACES = 20_000  # the canvas viewer sorts and fills every face each frame
MAX_EMBED_BYTES = 24 * 2**20  # audio and video files above this are linked by name instead of inlined


def data_uri(data: bytes, mime: str) -> str:
    """``data:MIME;base64,...`` of ``data``."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def file_uri(path: Path) -> str | None:
    """The file as a ``data:`` URI (type from its suffix); None when it is missing or above ``MAX_EMBED_BYTES``."""
    if not path.is_file() or path.stat().st_size > MAX_EMBED_BYTES:
        return None
    return data_uri(path.read_bytes(), MIME.get(path.suffix.lower(), "application/octet-stream"))


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """``(H, W, C)`` pixels of any inrkit image dtype as 8-bit RGB or grey: uint16 /257, float clipped to [0, 1] ×255
    (EXR by its own min/max); an alpha channel is composited onto white."""
    if pixels.dtype == np.uint16:
        pixels = (pixels.astype(np.float32) / 257.0).round()
    elif pixels.dtype != np.uint8:
        low, high = float(np.min(pixels)), float(np.max(pixels))
        scale = 255.0 / (high - low) if high > 1.0 or low < 0.0 else 255.0
        pixels = ((pixels - (low if scale != 255.0 else 0.0)) * scale).clip(0, 255).round()
    pixels = pixels.astype(np.uint8)
    if pixels.shape[2] in (2, 4):
        colour, alpha = pixels[..., :-1].astype(np.float32), pixels[..., -1:].astype(np.float32) / 255.0
        pixels = (colour * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)
    return pixels


def png_uri(pixels: np.ndarray, max_side: int | None = None) -> str:
    """An 8-bit ``(H, W, C)`` array as a PNG ``data:`` URI, shrunk (box filter) to ``max_side`` pixels when larger."""
    from PIL import Image

    image = Image.fromarray(pixels.squeeze(2) if pixels.shape[2] == 1 else pixels)
    if max_side and max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.BOX)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return data_uri(buffer.getvalue(), "image/png")


def image_uri(path: Path, max_side: int | None = None) -> str | None:
    """An image file (any format inrkit reads) as a PNG ``data:`` URI, or None when it cannot be read."""
    from inrkit.errors import InrkitError
    from inrkit.io.images import read_image

    try:
        return png_uri(to_uint8(read_image(path)), max_side)
    except (InrkitError, OSError):
        return None


def simplify_mesh(vertices: np.ndarray, faces: np.ndarray, max_faces: int = MAX_MESH_FACES) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering until at most ``max_faces`` remain: vertices are snapped to a ``G³`` grid over the bounding
    box (cells merged to their mean), faces whose corners fall in fewer than three cells are dropped; ``G`` halves
    until the count fits. Returns ``(V', 3) float32`` vertices and ``(F', 3) uint32`` faces."""
    vertices, faces = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    grid = 256
    while len(faces) > max_faces and grid >= 4:
        low, high = vertices.min(0), vertices.max(0)
        cell = np.floor((vertices - low) / np.maximum(high - low, 1e-12) * (grid - 1e-6)).astype(np.int64)
        keys = (cell[:, 0] * grid + cell[:, 1]) * grid + cell[:, 2]
        unique, inverse = np.unique(keys, return_inverse=True)
        merged = np.zeros((len(unique), 3))
        np.add.at(merged, inverse, vertices)
        merged /= np.bincount(inverse, minlength=len(unique))[:, None]
        mapped = inverse[faces]
        keep = (mapped[:, 0] != mapped[:, 1]) & (mapped[:, 1] != mapped[:, 2]) & (mapped[:, 0] != mapped[:, 2])
        candidate = mapped[keep]
        if len(candidate) <= max_faces or grid == 4:
            vertices, faces = merged, candidate
            break
        grid //= 2
    return vertices.astype(np.float32), faces.astype(np.uint32)


def mesh_payload(path: Path) -> dict[str, str | int] | None:
    """A mesh file as ``{"vertices": base64 float32 (V·3), "faces": base64 uint32 (F·3), "n_faces", "n_vertices"}``
    for the viewer (simplified to ``MAX_MESH_FACES``), or None when it cannot be read."""
    import trimesh

    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception:  # any unreadable mesh file: the section says so instead
        return None
    if len(mesh.faces) == 0:
        return None
    vertices, faces = simplify_mesh(mesh.vertices, mesh.faces)
    return {"vertices": base64.b64encode(vertices.astype("<f4").tobytes()).decode("ascii"),
            "faces": base64.b64encode(faces.astype("<u4").tobytes()).decode("ascii"),
            "n_faces": len(mesh.faces), "n_vertices": len(mesh.vertices)}
