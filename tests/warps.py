"""Real photos seen from another viewpoint: warps by known homographies, the ground truth of feature matching."""

from __future__ import annotations

import math

import cv2
import numpy as np


def view_homography(
    width: int, height: int, *, rotate: float, tilt: float, scale: float = 1.0,
    fit: tuple[int, int] | None = None, margin: int = 20,
) -> tuple[np.ndarray, tuple[int, int]]:
    """The homography of a picture turned ``rotate`` degrees in its plane, tilted ``tilt`` degrees
    away about its horizontal axis and seen by a pinhole camera (focal length 1.2× its longer
    side), and the output size that holds all of it: its own extent plus ``margin``, or ``fit``
    (width, height) with the view scaled to fit inside and centred."""
    focal = 1.2 * max(width, height)
    a, t = math.radians(rotate), math.radians(tilt)
    spin = np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    lean = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(t), -math.sin(t)], [0.0, math.sin(t), math.cos(t)]])
    r = spin @ lean
    # A plane point (x − cx, y − cy, 0) in camera space is R·p + (0, 0, focal).
    plane_to_camera = np.array([[r[0, 0], r[0, 1], 0.0], [r[1, 0], r[1, 1], 0.0], [r[2, 0], r[2, 1], focal]])
    centre = np.array([[1.0, 0.0, -width / 2], [0.0, 1.0, -height / 2], [0.0, 0.0, 1.0]])
    h = np.diag([focal * scale, focal * scale, 1.0]) @ plane_to_camera @ centre
    corners = cv2.perspectiveTransform(
        np.array([[[0, 0]], [[width - 1, 0]], [[width - 1, height - 1]], [[0, height - 1]]], np.float64), h
    ).reshape(-1, 2)
    low, high = corners.min(axis=0), corners.max(axis=0)
    if fit is None:
        size = (int(math.ceil(high[0] - low[0])) + 2 * margin, int(math.ceil(high[1] - low[1])) + 2 * margin)
        shift = np.array([[1.0, 0.0, margin - low[0]], [0.0, 1.0, margin - low[1]], [0.0, 0.0, 1.0]])
        h = shift @ h
    else:
        f = min((fit[0] - 2 * margin) / (high[0] - low[0]), (fit[1] - 2 * margin) / (high[1] - low[1]))
        extent = (high - low) * f
        offset = (np.array(fit, np.float64) - extent) / 2 - low * f
        h = np.array([[f, 0.0, offset[0]], [0.0, f, offset[1]], [0.0, 0.0, 1.0]]) @ h
        size = fit
    return h / h[2, 2], size


def warped(image: np.ndarray, homography: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The image seen through the homography on a black background of ``size`` (width, height)."""
    return cv2.warpPerspective(image, homography, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def outline_in(homography: np.ndarray, width: int, height: int) -> np.ndarray:
    """Where the corner pixels' centres (TL, TR, BR, BL) of a width × height image land: (4, 2)."""
    corners = np.array([[[0, 0]], [[width - 1, 0]], [[width - 1, height - 1]], [[0, height - 1]]], np.float64)
    return cv2.perspectiveTransform(corners, np.asarray(homography, np.float64)).reshape(-1, 2)


def corner_error(corners: list[list[float]] | np.ndarray, truth: np.ndarray) -> float:
    """The largest distance, in pixels, between a reported outline and the true one."""
    return float(np.max(np.linalg.norm(np.asarray(corners, np.float64) - truth, axis=1)))


def large_pair(photo: np.ndarray, size: tuple[int, int] = (4000, 3000)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A phone-sized pair from a photo: the photo upscaled to ``size``, and a view of it (rotated
    15°, tilted 30°) fitted into the same size; with the query → train homography."""
    query = cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC)
    h, _ = view_homography(size[0], size[1], rotate=15, tilt=30, fit=size, margin=size[0] // 40)
    return query, warped(query, h, size), h
