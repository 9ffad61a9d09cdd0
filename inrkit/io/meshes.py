"""Mesh files: PLY, OBJ, STL or GLB (optionally with vertex colours), written atomically through trimesh.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inrkit.errors import InrkitError
from inrkit.files import atomic_write_bytes

MESH_WRITE_SUFFIXES = (".ply", ".obj", ".stl", ".glb")


def write_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray, vertex_colors: np.ndarray | None = None) -> Path:
    """Write a triangle mesh as PLY (binary), OBJ, STL or GLB, atomically; returns the path.

    ``vertices (V, 3)``, ``faces (F, 3)``; ``vertex_colors (V, 3|4)`` uint8 or float in [0, 1]
    (PLY, OBJ and GLB keep them; STL has no colours).
    """
    import trimesh

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MESH_WRITE_SUFFIXES:
        raise InrkitError(f"cannot write {path}: mesh files must end in {', '.join(MESH_WRITE_SUFFIXES)}")
    if len(faces) == 0:
        raise InrkitError(f"not writing {path}: the mesh is empty (the field has no zero crossing in the box)")
    colors = None
    if vertex_colors is not None:
        colors = np.asarray(vertex_colors)
        if colors.dtype != np.uint8:
            colors = np.round(np.clip(colors, 0.0, 1.0) * 255).astype(np.uint8)
    mesh = trimesh.Trimesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces, dtype=np.int64),
                           vertex_colors=colors, process=False)
    data = mesh.export(file_type=suffix[1:])
    atomic_write_bytes(path, data if isinstance(data, bytes) else data.encode())
    return path
