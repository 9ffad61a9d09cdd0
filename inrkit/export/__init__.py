"""Exports: meshes from implicit functions (marching cubes) and media files."""

from inrkit.export.mesh import extract_mesh, write_mesh

__all__ = ["extract_mesh", "write_mesh"]
