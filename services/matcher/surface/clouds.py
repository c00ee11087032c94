"""Point clouds checked before any native call, with unit normals, and their cheap reductions."""

from __future__ import annotations

import math

import msgspec
import numpy as np

from infra.ply import MIN_POINTS, PointCloud
from services.matcher.errors import InputError
from services.matcher.surface.geometry import diameter
from services.matcher.surface.neighbours import Neighbours
from services.matcher.surface.normals import estimate_normals

# A normal shorter than this is "zero": it has no direction to normalise.
_MIN_NORMAL_LENGTH = 1e-6
# Coordinates beyond this are refused: OpenCV works in float32 and squares distances.
MAX_COORDINATE = 1e9
# Extent below this share of the coordinates' magnitude is float noise: the points are one point.
_MIN_RELATIVE_EXTENT = 1e-6


class Cloud(msgspec.Struct, frozen=True):
    """A checked cloud: finite float64 points (N×3), unit normals (N×3), and where the normals came from."""

    xyz: np.ndarray
    normals: np.ndarray
    normals_estimated: bool
    diameter: float


def checked_cloud(cloud: PointCloud, field: str, *, orientation: str) -> Cloud:
    """Check a cloud read from a file (InputError names the field) and give it unit normals,
    estimated when the file has none (``orientation``: "outward" or "sensor", see normals.py)."""
    xyz = cloud.xyz
    if len(xyz) < MIN_POINTS:
        raise InputError(f"'{field}' has {len(xyz)} points; at least {MIN_POINTS} are needed")
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise InputError(f"{int(bad.sum()):,} of the {len(xyz):,} points in '{field}' have a coordinate that is NaN or infinite")
    if float(np.abs(xyz).max()) > MAX_COORDINATE:
        raise InputError(f"'{field}' has coordinates beyond ±{MAX_COORDINATE:.0e}: use smaller units")
    size = diameter(xyz)
    if size <= _MIN_RELATIVE_EXTENT * max(1.0, float(np.abs(xyz).max())):
        raise InputError(f"all points in '{field}' are at the same place: there is no surface to match")
    spread = np.linalg.eigvalsh(np.cov(xyz.T))
    if spread[1] <= _MIN_RELATIVE_EXTENT**2 * spread[2]:
        raise InputError(f"the points in '{field}' lie on a line: there is no surface to match")
    if cloud.normals is None:
        return Cloud(xyz, estimate_normals(xyz, orientation=orientation), True, size)
    normals = cloud.normals
    if not np.isfinite(normals).all():
        raise InputError(f"some normals in '{field}' are NaN or infinite")
    length = np.linalg.norm(normals, axis=1)
    zero = length < _MIN_NORMAL_LENGTH
    if zero.any():
        raise InputError(
            f"{int(zero.sum()):,} of the {len(xyz):,} normals in '{field}' are zero: give every point a normal, "
            "or leave nx/ny/nz out of the file to have them estimated"
        )
    # PPF features are angles between normals: they must be unit length (the sample model's are not).
    return Cloud(xyz, normals / length[:, None], False, size)


def working_scale(model_diameter: float) -> float:
    """The power of two that brings the model's diameter to 256..512, where the matcher works.
    OpenCV's PPF has absolute thresholds: the sample model in metres (0.36 across) was never found,
    in millimetres it is. A power of two changes no digit of a float, so a model already in that
    range is matched bit for bit as given."""
    return 2.0 ** (8 - math.floor(math.log2(model_diameter)))


def scaled(cloud: Cloud, factor: float) -> Cloud:
    if factor == 1.0:
        return cloud
    return Cloud(cloud.xyz * factor, cloud.normals, cloud.normals_estimated, cloud.diameter * factor)


def voxel_groups(xyz: np.ndarray, voxel: float) -> np.ndarray:
    """Each point's cube of side ``voxel``, numbered 0..cubes-1."""
    cells = np.floor((xyz - xyz.min(axis=0)) / voxel).astype(np.int64)
    dims = cells.max(axis=0) + 1
    if float(dims[0]) * float(dims[1]) * float(dims[2]) < 2.0**62:
        # One integer per cube: a 1-D unique is ~20× faster than unique over rows.
        _, group = np.unique((cells[:, 0] * dims[1] + cells[:, 1]) * dims[2] + cells[:, 2], return_inverse=True)
    else:
        _, group = np.unique(cells, axis=0, return_inverse=True)
    return group.ravel()


def voxel_sample(xyz: np.ndarray, normals: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """One point per occupied cube of side ``voxel``: the mean position and the mean normal (unit)."""
    group = voxel_groups(xyz, voxel)
    counts = np.bincount(group).astype(np.float64)
    mean = np.stack([np.bincount(group, xyz[:, i]) for i in range(3)], axis=1) / counts[:, None]
    summed = np.stack([np.bincount(group, normals[:, i]) for i in range(3)], axis=1)
    length = np.linalg.norm(summed, axis=1)
    # Opposite normals in one cell (a thin wall) cancel out: such a cell has no surface direction.
    keep = length > 1e-3 * counts
    return mean[keep], summed[keep] / length[keep, None]


def drop_isolated(xyz: np.ndarray, radius: float, neighbours: int = 3, *, tree: Neighbours | None = None) -> np.ndarray:
    """Mask of points that have ``neighbours`` other points within ``radius`` (outliers are False);
    ``tree``: a neighbour index over ``xyz`` when there is one."""
    _, dist = (tree if tree is not None else Neighbours(xyz)).nearest(xyz, neighbours + 1)
    keep = dist[:, -1] <= radius
    # A scan sparser than the radius would lose its surface, not its outliers: keep it whole.
    return keep if keep.mean() >= 0.5 else np.ones(len(xyz), bool)
