"""Test images with known ground truth: templates pasted at known positions."""

from __future__ import annotations

import cv2
import numpy as np

from tests.harness import DATA

POSITIONS = [(120, 45), (340, 180), (560, 310)]


def encode(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def textured_template(size: int = 32, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    patch = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return cv2.GaussianBlur(patch, (3, 3), 0)


def scene_with_pastes(template: np.ndarray, size=(640, 480), positions=POSITIONS, darken: float = 0.4) -> np.ndarray:
    """A real photo (messi5.jpg), darkened so even TM_CCORR peaks on the pastes, with the template pasted."""
    photo = cv2.imread(str(DATA / "messi5.jpg"))
    scene = (cv2.resize(photo, size, interpolation=cv2.INTER_AREA) * darken).astype(np.uint8)
    h, w = template.shape[:2]
    for x, y in positions:
        scene[y:y + h, x:x + w] = template
    return scene
