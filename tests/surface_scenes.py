"""Synthetic scans with a known pose, made from the sample model (deterministic for a seed).

A scene is what a range sensor at the origin looking down −z would see of the model placed at a
random pose ~2 diameters in front of it: the whole model ("full") or only what faces the sensor and
is not hidden ("partial"), with Gaussian noise on positions and normals, on a support plane, next
to a distractor sphere, with outliers scattered around.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import msgspec
import numpy as np

from infra.ply import read_ply

DATA = Path(__file__).resolve().parent / "data"
MODEL_PLY = DATA / "parasaurolophus_6700.ply"
SCAN_PLY_GZ = DATA / "rs1_normals.ply.gz"

NOISE = 0.005  # of the diameter, on positions
NORMAL_NOISE = 0.1  # added to unit normals before renormalising (~6°)
OUTLIERS = 0.02  # of the scene's points, uniform in its box


class Scene(msgspec.Struct, frozen=True):
    xyz: np.ndarray
    normals: np.ndarray
    pose: np.ndarray  # the true model → scene pose


def model_bytes() -> bytes:
    return MODEL_PLY.read_bytes()


def scan_bytes() -> bytes:
    return gzip.decompress(SCAN_PLY_GZ.read_bytes())


def load_model() -> tuple[np.ndarray, np.ndarray]:
    """The sample model's points and unit normals."""
    cloud = read_ply(model_bytes())
    assert cloud.normals is not None
    return cloud.xyz, cloud.normals / np.linalg.norm(cloud.normals, axis=1, keepdims=True)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _sphere(rng: np.random.Generator, centre: np.ndarray, radius: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    n = int(4 * np.pi * radius**2 / spacing**2)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return centre + radius * d, d


def _plane(rng: np.random.Generator, point: np.ndarray, normal: np.ndarray, size: float, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    u = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    n = int((size / spacing) ** 2)
    a, b = rng.uniform(-size / 2, size / 2, (2, n))
    return point + a[:, None] * u + b[:, None] * v, np.tile(normal, (n, 1))


def _visible(xyz: np.ndarray, normals: np.ndarray, cell: float, depth_tolerance: float) -> np.ndarray:
    """What a sensor at the origin sees: surfaces facing it, the nearest along each ray."""
    facing = np.einsum("ij,ij->i", normals, -xyz) > 0
    depth = np.linalg.norm(xyz, axis=1)
    rays = xyz / depth[:, None]
    mean_depth = float(np.median(depth))
    # Angular cells whose size at the object's distance is `cell`.
    keys = np.floor(rays[:, :2] / rays[:, 2:3] * mean_depth / cell).astype(np.int64)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    nearest = np.full(group.max() + 1, np.inf)
    np.minimum.at(nearest, group[facing], depth[facing])
    return facing & (depth <= nearest[group] + depth_tolerance)


def make_scene(seed: int, *, partial: bool, clutter: bool = True, absent: bool = False) -> Scene:
    """A scan of the model at a random pose (see the module's docstring); ``absent``: the same
    scan without the model (its clutter only)."""
    rng = np.random.default_rng(seed)
    model_xyz, model_normals = load_model()
    size = float(np.linalg.norm(model_xyz.max(0) - model_xyz.min(0)))
    spacing = 0.01 * size
    pose = np.eye(4)
    pose[:3, :3] = _random_rotation(rng)
    centre = np.array([rng.uniform(-0.3, 0.3) * size, rng.uniform(-0.3, 0.3) * size, -2.0 * size])
    pose[:3, 3] = centre - pose[:3, :3] @ model_xyz.mean(axis=0)
    xyz = model_xyz @ pose[:3, :3].T + pose[:3, 3]
    normals = model_normals @ pose[:3, :3].T
    parts = [] if absent else [(xyz, normals)]
    if clutter:
        # A support plane touching the model from behind, tilted towards the sensor.
        up = np.array([rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), 1.0])
        up /= np.linalg.norm(up)
        lowest = xyz[np.argmin(xyz @ up)]
        parts.append(_plane(rng, lowest - 0.01 * size * up, up, 1.5 * size, spacing))
        side = rng.choice([-1.0, 1.0])
        parts.append(_sphere(rng, centre + np.array([side * 0.75 * size, 0.0, 0.1 * size]), 0.2 * size, spacing))
    xyz = np.vstack([p[0] for p in parts])
    normals = np.vstack([p[1] for p in parts])
    if partial:
        seen = _visible(xyz, normals, cell=spacing, depth_tolerance=0.02 * size)
        xyz, normals = xyz[seen], normals[seen]
    xyz = xyz + rng.normal(scale=NOISE * size, size=xyz.shape)
    normals = normals + rng.normal(scale=NORMAL_NOISE, size=normals.shape)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    if clutter:
        n = int(OUTLIERS * len(xyz))
        low, high = xyz.min(0), xyz.max(0)
        out_normals = rng.normal(size=(n, 3))
        xyz = np.vstack([xyz, rng.uniform(low, high, (n, 3))])
        normals = np.vstack([normals, out_normals / np.linalg.norm(out_normals, axis=1, keepdims=True)])
    order = rng.permutation(len(xyz))
    return Scene(xyz=xyz[order], normals=normals[order], pose=pose)
