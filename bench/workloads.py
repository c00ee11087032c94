"""Benchmark workloads as data: what is submitted, with which parameters, and how a result is judged.

A workload knows how to build its input files (deterministically, once per process), the form
fields it sends, the in-process ``Job`` that does exactly the matcher's work on the same bytes,
and a ground-truth check of ``result_data``. Feature and surface matching slot in by adding a
``Workload(...)`` to ``WORKLOADS`` with their own generator and check; nothing else changes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import msgspec
import numpy as np

from contracts.tools import TOOLS
from services.matcher.jobs import Job
from tests.warps import corner_error, outline_in

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """OpenCV's sample images shipped with the tests (messi5.jpg is the workloads' photo)."""
    return ROOT / "tests" / "data"


# An input file: (form field, file name, bytes).
InputFile = tuple[str, str, bytes]


@dataclass(frozen=True)
class Workload:
    name: str
    tool: str  # the API's tool: POST /api/v1/match/<tool>
    description: str
    make_inputs: Callable[[], list[InputFile]]  # deterministic; cached by ``inputs()``
    params: dict[str, Any]  # form fields as a client sends them
    check: Callable[[dict[str, Any]], str | None]  # result_data -> None if right, else why not
    result_files: int = 1  # files a done task must list
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def endpoint(self) -> str:
        return f"/api/v1/match/{self.tool}"

    def inputs(self) -> list[InputFile]:
        return _cached_inputs(self.name)

    def form_fields(self) -> dict[str, str]:
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in self.params.items()}

    def resolved_params(self) -> dict[str, Any]:
        """The params the matcher receives: the client's, completed from the tool's defaults."""
        cls = TOOLS[self.tool].params
        return msgspec.to_builtins(msgspec.convert(self.params, cls, strict=False))

    def job(self, uid: str = "bench") -> Job:
        """The in-process equivalent of one task: the same bytes and params the matcher gets."""
        fields = [slot.field for slot in TOOLS[self.tool].files]
        files = self.inputs()
        assert tuple(f for f, _, _ in files) == tuple(fields), (files, fields)
        return Job(uid=uid, tool=self.tool, params=self.resolved_params(), inputs=[(f, data) for f, _, data in files])

    def verify(self, status: str, result_data: Any, n_files: int, error: str | None = None) -> str | None:
        """Ground truth of one finished task (service or in-process): None when right."""
        if status != "done":
            return f"status {status}: {error}"
        if n_files != self.result_files:
            return f"{n_files} result files, expected {self.result_files}"
        return self.check(result_data)


# --- template matching: a textured patch pasted 3 times into a darkened photo ----------------


def textured_template(size: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    patch = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    return cv2.GaussianBlur(patch, (3, 3), 0)


def _background(size: tuple[int, int]) -> np.ndarray:
    photo_path = data_dir() / "messi5.jpg"
    photo = cv2.imread(str(photo_path)) if photo_path.exists() else None
    if photo is None:  # no shared data: a smooth synthetic scene instead of the photo
        rng = np.random.default_rng(1)
        photo = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (0, 0), 3)
    return cv2.resize(photo, size, interpolation=cv2.INTER_AREA)


def scene_with_pastes(template: np.ndarray, size: tuple[int, int], positions, darken: float = 0.4) -> np.ndarray:
    """As tests/images.py: the photo darkened (so only the pastes correlate), template pasted."""
    scene = (_background(size) * darken).astype(np.uint8)
    h, w = template.shape[:2]
    for x, y in positions:
        scene[y:y + h, x:x + w] = template
    return scene


def _png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def template_check(positions: list[tuple[int, int]], size: int) -> Callable[[dict[str, Any]], str | None]:
    expected = sorted(positions)

    def check(result_data: dict[str, Any]) -> str | None:
        top = result_data.get("matches", [])[: len(expected)]
        found = sorted((m["x"], m["y"]) for m in top)
        if found != expected:
            return f"top matches at {found}, pasted at {expected}"
        if any(m["w"] != size or m["h"] != size for m in top):
            return f"match size is not {size}×{size}"
        return None

    return check


def template_workload(name: str, image_size: tuple[int, int], tsize: int, positions: list[tuple[int, int]],
                      method: str = "TM_CCOEFF_NORMED") -> Workload:
    def make() -> list[InputFile]:
        template = textured_template(tsize)
        scene = scene_with_pastes(template, image_size, positions)
        return [("image", "image.png", _png(scene)), ("template", "template.png", _png(template))]

    w, h = image_size
    return Workload(
        name=name, tool="template",
        description=f"{w}×{h} image, {tsize}×{tsize} template pasted {len(positions)}×, {method}",
        make_inputs=make, params={"method": method},
        check=template_check(positions, tsize), result_files=2, tags=("template",),
    )


# --- feature matching: a textured picture, warped by a known homography into a darkened photo ----


def _warp(query_size: tuple[int, int], angle: float, scale: float, tilt: float,
          centre: tuple[float, float]) -> np.ndarray:
    """Query pixels → scene pixels: a turn, a scale and a slight perspective, centred on ``centre``."""
    qw, qh = query_size
    to_origin = np.array([[1, 0, -qw / 2], [0, 1, -qh / 2], [0, 0, 1]], np.float64)
    a = np.deg2rad(angle)
    turn = np.array([[scale * np.cos(a), -scale * np.sin(a), 0], [scale * np.sin(a), scale * np.cos(a), 0], [0, 0, 1]])
    perspective = np.array([[1, 0, 0], [0, 1, 0], [tilt / qw, 0, 1]], np.float64)
    place = np.array([[1, 0, centre[0]], [0, 1, centre[1]], [0, 0, 1]], np.float64)
    return place @ turn @ perspective @ to_origin


def feature_workload(name: str, scene_size: tuple[int, int], query_size: tuple[int, int]) -> Workload:
    sw, sh = scene_size
    qw, qh = query_size
    homography = _warp(query_size, angle=12.0, scale=0.8, tilt=0.15, centre=(sw * 0.55, sh * 0.5))
    truth = outline_in(homography, qw, qh)

    def make() -> list[InputFile]:
        graf = cv2.imread(str(data_dir() / "graf1.png"))
        query = cv2.resize(graf, query_size, interpolation=cv2.INTER_AREA)
        scene = (_background(scene_size) * 0.5).astype(np.uint8)
        warped = cv2.warpPerspective(query, homography, scene_size)
        mask = cv2.warpPerspective(np.full(query.shape[:2], 255, np.uint8), homography, scene_size)
        scene[mask > 0] = warped[mask > 0]
        return [("query_image", "query.png", _png(query)), ("train_image", "train.png", _png(scene))]

    def check(result_data: dict[str, Any]) -> str | None:
        corners = result_data.get("corners")
        if not corners:
            return f"no homography ({result_data.get('good_matches')} good matches)"
        error = corner_error(corners, truth)
        return None if error < 3.0 else f"corner error {error:.1f} px"

    return Workload(
        name=name, tool="feature",
        description=f"{qw}×{qh} query warped into a {sw}×{sh} scene, SIFT + FLANN, corners within 3 px",
        make_inputs=make, params={}, check=check, result_files=1, tags=("feature",),
    )


# --- surface matching: the sample model in a synthetic partial scan with a known pose -----------


def surface_workload(name: str, seed: int) -> Workload:
    from infra.ply import write_ply
    from services.matcher.surface.geometry import diameter, mean_point_distance
    from tests.surface_scenes import load_model, make_scene, model_bytes

    scene = make_scene(seed, partial=True)
    model_xyz, _ = load_model()
    size = diameter(model_xyz)

    def make() -> list[InputFile]:
        return [("model_file", "model.ply", model_bytes()),
                ("scene_file", "scene.ply", write_ply(scene.xyz, scene.normals))]

    def check(result_data: dict[str, Any]) -> str | None:
        pose = result_data.get("pose")
        if not pose or not result_data.get("poses_found"):
            return "no verified pose"
        error = mean_point_distance(np.asarray(pose, np.float64), scene.pose, model_xyz) / size
        return None if error < 0.1 else f"pose off by {error:.0%} of the model's size"

    return Workload(
        name=name, tool="surface",
        description=f"the sample model (6,700 points) in a partial scan of {len(scene.xyz):,} points, defaults, pose within 10 %",
        make_inputs=make, params={}, check=check, result_files=2, tags=("surface",),
    )


SMALL_POSITIONS = [(120, 45), (340, 180), (560, 310)]
LARGE_POSITIONS = [(360, 135), (1020, 540), (1680, 930)]

WORKLOADS: dict[str, Workload] = {
    w.name: w for w in (
        template_workload("small", (640, 480), 32, SMALL_POSITIONS),
        template_workload("large", (1920, 1080), 64, LARGE_POSITIONS),
        feature_workload("feature-small", (640, 480), (320, 240)),
        feature_workload("feature-large", (1920, 1080), (800, 600)),
        surface_workload("surface", seed=11),
    )
}


@functools.lru_cache(maxsize=None)
def _cached_inputs(name: str) -> list[InputFile]:
    return WORKLOADS[name].make_inputs()


def get(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise SystemExit(f"unknown workload {name!r}; known: {', '.join(WORKLOADS)}") from None
