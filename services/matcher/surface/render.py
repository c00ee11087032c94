"""Result pictures: the scene in gray with the posed model drawn in, from three viewpoints."""

from __future__ import annotations

import cv2
import numpy as np

from services.matcher.surface.geometry import diameter

PANEL = 480  # pixels per view (square)
# Points drawn per cloud at most: enough to read the surface, bounded in time for big scans.
_MAX_DRAWN = 80_000
_LIGHT = np.array([0.3, 0.5, 1.0]) / np.linalg.norm([0.3, 0.5, 1.0])
_SCENE_BGR = np.array([225.0, 225.0, 225.0])
_FOUND_BGR = np.array([60.0, 210.0, 40.0])  # green: a verified pose
_MISSED_BGR = np.array([0.0, 140.0, 255.0])  # orange: the best pose, not verified
_MODEL_ALPHA = 0.75


def _turn(axis: int, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


# (title, rotation applied to scene coordinates): the sensor's own view (looking down −z, as a
# scan is taken), the same from the right side, and from above.
VIEWS = [("sensor view", np.eye(3)), ("from the side", _turn(1, -90)), ("from above", _turn(0, 90))]


def _thin(xyz: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(xyz) <= _MAX_DRAWN:
        return xyz, normals
    pick = np.linspace(0, len(xyz) - 1, _MAX_DRAWN).astype(np.int64)
    return xyz[pick], normals[pick]


def _splat(image: np.ndarray, depth: np.ndarray, xyz: np.ndarray, normals: np.ndarray, colour: np.ndarray,
           scale: float, alpha: float) -> None:
    """Draw points (already in view coordinates: x right, y up, z towards the viewer) as 2×2
    squares, nearest on top, shaded by a fixed light; ``alpha`` < 1 blends over what is there."""
    cols = np.round(xyz[:, 0] * scale + PANEL / 2).astype(np.int64)
    rows = np.round(PANEL / 2 - xyz[:, 1] * scale).astype(np.int64)
    shade = 0.35 + 0.65 * np.abs(normals @ _LIGHT)
    order = np.argsort(xyz[:, 2])  # far first: nearer points overwrite them
    layer = np.zeros_like(image)
    layer_depth = np.full(depth.shape, -np.inf)
    for dr in (0, 1):
        for dc in (0, 1):
            r, c = rows[order] + dr, cols[order] + dc
            inside = (r >= 0) & (r < PANEL) & (c >= 0) & (c < PANEL)
            r, c, o = r[inside], c[inside], order[inside]
            layer[r, c] = shade[o, None] * colour
            layer_depth[r, c] = xyz[o, 2]
    drawn = np.isfinite(layer_depth)
    image[drawn] = (1 - alpha) * image[drawn] + alpha * layer[drawn]
    depth[drawn] = np.maximum(depth[drawn], layer_depth[drawn])


def render_views(scene_xyz: np.ndarray, scene_normals: np.ndarray, model_xyz: np.ndarray | None,
                 model_normals: np.ndarray | None, *, model_diameter: float, caption: str, found: bool = True) -> np.ndarray:
    """BGR picture of the scene (gray) with the posed model over it (green when verified, orange
    when not), three views side by side."""
    scene_xyz, scene_normals = _thin(scene_xyz, scene_normals)
    if model_xyz is not None and model_normals is not None:
        model_xyz, model_normals = _thin(model_xyz, model_normals)
        centre = model_xyz.mean(axis=0)
    else:
        centre = (scene_xyz.min(axis=0) + scene_xyz.max(axis=0)) / 2
    # The window: the whole scene, but at most 3 model diameters so the model stays visible.
    extent = min(diameter(scene_xyz), 3.0 * model_diameter)
    scale = 0.9 * PANEL / max(extent, 1e-9)
    panels = []
    for title, turn in VIEWS:
        image = np.full((PANEL, PANEL, 3), 40.0)
        depth = np.full((PANEL, PANEL), -np.inf)
        _splat(image, depth, (scene_xyz - centre) @ turn.T, scene_normals @ turn.T, _SCENE_BGR, scale, 1.0)
        if model_xyz is not None and model_normals is not None:
            _splat(image, depth, (model_xyz - centre) @ turn.T, model_normals @ turn.T, _FOUND_BGR if found else _MISSED_BGR, scale, _MODEL_ALPHA)
        panel = image.astype(np.uint8)
        cv2.putText(panel, title, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        panels.append(panel)
    picture = np.hstack(panels)
    cv2.putText(picture, caption, (10, PANEL - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return picture
