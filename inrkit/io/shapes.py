"""Reading shapes for SDF fitting: triangle meshes and (oriented) point clouds.

Meshes: OBJ, PLY, STL, OFF, GLB/GLTF (through trimesh; a multi-part scene is flattened with its
node transforms). Point clouds: PLY files without faces and XYZ text files (``x y z`` or
``x y z nx ny nz`` per line). A ``.ply`` is a mesh when it has faces and a point cloud otherwise.
Point clouds without normals get normals estimated by PCA over ``k`` nearest neighbours, oriented
consistently by propagation along a minimum spanning tree (Hoppe et al. 1992) and flipped so that
they point away from the centroid on the whole.

Example:
    >>> shape = read_shape("bunny.obj")          # doctest: +SKIP
    >>> shape.vertices.shape, shape.faces.shape  # doctest: +SKIP
    ((35947, 3), (69451, 3))
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inrkit.errors import InrkitError

MESH_SUFFIXES = (".obj", ".stl", ".off", ".glb", ".gltf")
POINT_SUFFIXES = (".xyz",)
SHAPE_SUFFIXES = (*MESH_SUFFIXES, ".ply", *POINT_SUFFIXES)
MIN_POINTS = 32
NORMAL_NEIGHBOURS = 16


@dataclass
class Shape:
    """A mesh (``faces`` set) or a point cloud (``faces`` None), in the file's units.

    ``vertices (V, 3)`` float64; ``faces (F, 3)`` int64; ``normals (V, 3)`` unit vectors for a
    point cloud (given or estimated; ``None`` for a mesh); ``normals_estimated`` says which.
    """

    vertices: np.ndarray
    faces: np.ndarray | None = None
    normals: np.ndarray | None = None
    normals_estimated: bool = False

    @property
    def is_mesh(self) -> bool:
        return self.faces is not None


TEXT_SHAPE_SUFFIXES = (".obj", ".off")  # text formats trimesh decodes (guessing the encoding of non-UTF-8 bytes)


def _utf8(data: bytes) -> bytes:
    """``data`` as UTF-8: unchanged when it is, else read as Latin-1 (every byte is a character; numbers and
    keywords are ASCII, so only comments and names can differ)."""
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        return data.decode("latin-1").encode("utf-8")


def _trimesh_load(path: Path):  # -> trimesh.Trimesh | trimesh.PointCloud
    import trimesh

    try:
        if path.suffix.lower() in TEXT_SHAPE_SUFFIXES:  # decoded here: trimesh would need charset_normalizer to guess
            loaded = trimesh.load(io.BytesIO(_utf8(path.read_bytes())), file_type=path.suffix.lower()[1:], process=False)
        else:
            loaded = trimesh.load(str(path), process=False)
    except Exception as err:  # trimesh raises many types for corrupt files
        raise InrkitError(f"cannot read {path}: not a readable mesh or point cloud ({type(err).__name__}: {err})") from None
    if isinstance(loaded, trimesh.Scene):
        if not loaded.geometry:
            raise InrkitError(f"cannot fit {path}: the file contains no geometry")
        meshes = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)]
        if meshes:
            return trimesh.util.concatenate(meshes)
        clouds = [g for g in loaded.dump() if isinstance(g, trimesh.PointCloud)]
        if clouds:
            return trimesh.PointCloud(np.concatenate([c.vertices for c in clouds]))
        raise InrkitError(f"cannot fit {path}: the file holds no triangles or points")
    return loaded


def _ply_normals(cloud) -> np.ndarray | None:
    """``(V, 3)`` normals stored as ``nx ny nz`` vertex properties of a PLY point cloud, if any."""
    raw = cloud.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
    if not isinstance(raw, dict) or not all(k in raw for k in ("nx", "ny", "nz")):
        return None
    return np.concatenate([np.asarray(raw[k], dtype=np.float64).reshape(-1, 1) for k in ("nx", "ny", "nz")], axis=1)


def _read_xyz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        table = np.loadtxt(path, dtype=np.float64, comments="#", ndmin=2)
    except ValueError as err:
        raise InrkitError(f"cannot read {path}: not an XYZ point file ({err})") from None
    if table.size == 0:
        raise InrkitError(f"cannot fit {path}: the file contains no points")
    if table.shape[1] not in (3, 6):
        raise InrkitError(f"cannot read {path}: XYZ lines need 3 (x y z) or 6 (x y z nx ny nz) numbers, found {table.shape[1]}")
    return table[:, :3], (table[:, 3:] if table.shape[1] == 6 else None)


def _check_finite(path: Path, array: np.ndarray, what: str) -> None:
    bad = int((~np.isfinite(array)).any(axis=1).sum())
    if bad:
        raise InrkitError(f"cannot fit {path}: {bad} of its {len(array)} {what} have NaN or infinite coordinates")


def _unit_normals(path: Path, normals: np.ndarray) -> np.ndarray:
    _check_finite(path, normals, "normals")
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    if (length < 1e-12).any():
        raise InrkitError(f"cannot fit {path}: {int((length < 1e-12).sum())} normals have zero length")
    return normals / length


def estimate_normals(points: np.ndarray, k: int = NORMAL_NEIGHBOURS) -> np.ndarray:
    """Unit normals ``(N, 3)`` of ``points (N, 3)``, consistently oriented, pointing outwards overall.

    Each normal is the smallest-eigenvalue eigenvector of the covariance of its ``k`` nearest
    neighbours. Orientation propagates over the minimum spanning tree of the k-NN graph weighted
    by ``1 − |n_i·n_j|`` (so it crosses flat regions first) from the point of largest ``z``,
    whose normal is set to point up; finally all normals are flipped if most point inwards
    (towards the centroid).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import breadth_first_order, connected_components, minimum_spanning_tree
    from scipy.spatial import cKDTree

    k = min(k, len(points) - 1)
    _, neighbours = cKDTree(points).query(points, k=k + 1)
    local = points[neighbours] - points[neighbours].mean(axis=1, keepdims=True)
    covariance = np.einsum("nki,nkj->nij", local, local)
    normals = np.linalg.eigh(covariance)[1][:, :, 0]
    rows = np.repeat(np.arange(len(points)), k)
    cols = neighbours[:, 1:].reshape(-1)
    weight = 1.0 - np.abs(np.einsum("ni,ni->n", normals[rows], normals[cols])) + 1e-6
    graph = coo_matrix((weight, (rows, cols)), shape=(len(points),) * 2).tocsr()
    tree = minimum_spanning_tree(graph.maximum(graph.T))
    tree = tree.maximum(tree.T)
    n_parts, labels = connected_components(tree, directed=False)
    for part in range(n_parts):
        members = np.flatnonzero(labels == part)
        root = members[np.argmax(points[members, 2])]
        if normals[root, 2] < 0:
            normals[root] = -normals[root]
        order, parents = breadth_first_order(tree, root, directed=False)
        for node in order[1:]:
            if normals[node] @ normals[parents[node]] < 0:
                normals[node] = -normals[node]
    outward = np.einsum("ni,ni->n", normals, points - points.mean(axis=0))
    if (outward < 0).mean() > 0.5:
        normals = -normals
    return normals


def read_shape(path: str | Path) -> Shape:
    """Load a mesh or point cloud; raise :class:`InrkitError` with one clear line on bad input."""
    import trimesh

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SHAPE_SUFFIXES:
        raise InrkitError(f"cannot read {path}: unsupported shape format {suffix!r} (reads {' '.join(SHAPE_SUFFIXES)})")
    if not path.is_file():
        raise InrkitError(f"cannot read {path}: no such file")
    if path.stat().st_size == 0:
        raise InrkitError(f"cannot read {path}: the file is empty")
    if suffix in POINT_SUFFIXES:
        points, normals = _read_xyz(path)
        return _point_cloud(path, points, normals)
    loaded = _trimesh_load(path)
    if isinstance(loaded, trimesh.PointCloud):
        if suffix != ".ply":
            raise InrkitError(f"cannot fit {path}: the file has vertices but no triangles")
        return _point_cloud(path, np.asarray(loaded.vertices, dtype=np.float64), _ply_normals(loaded))
    if not isinstance(loaded, trimesh.Trimesh):
        raise InrkitError(f"cannot fit {path}: unsupported geometry {type(loaded).__name__}")
    vertices = np.asarray(loaded.vertices, dtype=np.float64)
    faces = np.asarray(loaded.faces, dtype=np.int64).reshape(-1, 3)
    if len(faces) == 0:
        if suffix == ".ply" and len(vertices):
            return _point_cloud(path, vertices, _ply_normals(loaded))
        raise InrkitError(f"cannot fit {path}: the mesh has no triangles")
    _check_finite(path, vertices, "vertices")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise InrkitError(f"cannot fit {path}: faces refer to vertices that do not exist")
    used = vertices[np.unique(faces)]
    if float(np.ptp(used, axis=0).max()) <= 0.0:
        raise InrkitError(f"cannot fit {path}: all its triangles are degenerate (zero extent)")
    return Shape(vertices, faces)


def _point_cloud(path: Path, points: np.ndarray, normals: np.ndarray | None) -> Shape:
    if len(points) < MIN_POINTS:
        raise InrkitError(f"cannot fit {path}: {len(points)} points are too few (at least {MIN_POINTS} needed)")
    _check_finite(path, points, "points")
    if float(np.ptp(points, axis=0).max()) <= 0.0:
        raise InrkitError(f"cannot fit {path}: all points coincide")
    if normals is not None:
        return Shape(points, normals=_unit_normals(path, normals))
    return Shape(points, normals=estimate_normals(points), normals_estimated=True)
