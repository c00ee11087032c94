"""Rigid poses as 4×4 float64 matrices (model → scene) and what is measured with them."""

from __future__ import annotations

import numpy as np


def transform(pose: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Points moved by a pose."""
    return xyz @ pose[:3, :3].T + pose[:3, 3]


def rotate(pose: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Normals turned by a pose's rotation."""
    return normals @ pose[:3, :3].T


def rotation_about(axis_angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (…×3×3) from axis-angle vectors (…×3), Rodrigues' formula."""
    theta = np.linalg.norm(axis_angle, axis=-1, keepdims=True)
    k = axis_angle / np.maximum(theta, 1e-12)
    kx, ky, kz = k[..., 0], k[..., 1], k[..., 2]
    zero = np.zeros_like(kx)
    cross = np.stack([zero, -kz, ky, kz, zero, -kx, -ky, kx, zero], axis=-1).reshape(*k.shape[:-1], 3, 3)
    s, c = np.sin(theta)[..., None], np.cos(theta)[..., None]
    eye = np.broadcast_to(np.eye(3), cross.shape)
    return eye + s * cross + (1 - c) * (cross @ cross)


def mean_point_distance(a: np.ndarray, b: np.ndarray, xyz: np.ndarray) -> float:
    """Mean distance between the points placed by two poses (the success measure of a pose)."""
    return float(np.linalg.norm(transform(a, xyz) - transform(b, xyz), axis=1).mean())


def diameter(xyz: np.ndarray) -> float:
    """The bounding box's diagonal (what OpenCV's PPF scales its steps by)."""
    return float(np.linalg.norm(xyz.max(axis=0) - xyz.min(axis=0)))
