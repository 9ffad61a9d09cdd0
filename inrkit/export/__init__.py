"""Exports of fitted fields: meshes (marching cubes) and their files."""

from inrkit.export.mesh import Mesh, extract_mesh, marching_cubes, sample_grid, write_mesh

__all__ = ["Mesh", "extract_mesh", "marching_cubes", "sample_grid", "write_mesh"]
