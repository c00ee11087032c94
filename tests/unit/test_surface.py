"""Surface matching against ground truth: synthetic scans of the sample model, and the real scan."""

from __future__ import annotations

import time

import cv2
import msgspec
import numpy as np
import pytest

from contracts.params import SurfaceParams
from infra.ply import read_ply, write_ply
from services.matcher.errors import InputError
from services.matcher.jobs import Job, job_steps, run_job
from services.matcher.parts import ResultFile, Stage
from services.matcher.surface import pipeline
from services.matcher.surface.cache import DetectorCache
from services.matcher.surface.detector import Trained
from services.matcher.surface.geometry import diameter, mean_point_distance
from services.matcher.surface.neighbours import Neighbours
from services.matcher.surface.normals import estimate_normals
from services.matcher.surface.verify import MIN_OVERLAP
from tests.surface_scenes import load_model, make_scene, model_bytes, scan_bytes

MODEL_XYZ, MODEL_NORMALS = load_model()
DIAMETER = diameter(MODEL_XYZ)
SEEDS = range(10)

# The model's pose in rs1_normals.ply, established once (2024, OpenCV 5.0): the pipeline's pose,
# refined by 30 point-to-plane ICP steps against the full scan; a second run from an independent
# start converged to the same pose (to 1e-13 mm). Evidence: 77 % of the model's sensor-facing
# points (sampled at 3 % of its diameter) lie within 2 % of the diameter of the scan with normals
# within 45° (79 % without the normal test, full model and scan); the next-best distinct pose
# scores 0.43. pose.png shows the model over the lower dinosaur of the scan, legs, arms, ribbed
# body and crest in place; its tail runs past the bottom of the scan's field of view.
RS1_POSE = np.array([
    [0.99434, -0.08735, 0.06054, -74.58048],
    [0.09934, 0.56162, -0.82141, -601.98856],
    [0.03775, 0.82277, 0.56711, -293.44625],
    [0.0, 0.0, 0.0, 1.0],
])


@pytest.fixture(scope="module")
def cache() -> DetectorCache:
    """One cache for the file: the model is trained once."""
    return DetectorCache()


def _match(model: bytes, scene: bytes, cache: DetectorCache, params: SurfaceParams = SurfaceParams()) -> pipeline.Matched:
    loaded = pipeline.load(model, scene)
    trained, _ = pipeline.train_detector(loaded.model, params, cache)
    return pipeline.refine(pipeline.match(trained, loaded, params), loaded, params)


def _error(pose: list[list[float]] | None, truth: np.ndarray) -> float:
    """Mean distance of the posed model points to the true ones, as a share of the diameter."""
    return np.inf if pose is None else mean_point_distance(np.array(pose), truth, MODEL_XYZ) / DIAMETER


@pytest.mark.parametrize("partial", [False, True], ids=["full", "partial"])
def test_synthetic_scans_give_the_true_pose(partial: bool, cache: DetectorCache) -> None:
    right, times = 0, []
    for seed in SEEDS:
        scene = make_scene(seed, partial=partial)
        scene_bytes = write_ply(scene.xyz, scene.normals)
        start = time.process_time()
        result = _match(model_bytes(), scene_bytes, cache).result
        times.append(time.process_time() - start)
        if _error(result.pose, scene.pose) < 0.1:
            right += 1
            assert result.poses_found >= 1 and result.overlap is not None and result.overlap >= MIN_OVERLAP
    # The target: at least 9 of 10 right for each kind (measured: 10/10 both).
    assert right >= 9, f"{right}/10 right"
    # Within 2 s per scene here (CPU time, shared machine: generous on purpose).
    assert float(np.median(times)) < 2.0


def test_scans_without_the_model_find_nothing(cache: DetectorCache) -> None:
    for seed in range(4):
        scene = make_scene(seed, partial=seed % 2 == 1, absent=True)
        result = _match(model_bytes(), write_ply(scene.xyz, scene.normals), cache).result
        assert result.poses_found == 0 and result.pose is None and result.icp_residual is None
        assert result.candidates and all(c.overlap < MIN_OVERLAP for c in result.candidates)


def test_the_real_scan_gives_its_recorded_pose(cache: DetectorCache) -> None:
    matched = _match(model_bytes(), scan_bytes(), cache)
    result = matched.result
    assert matched.found and result.poses_found == 1
    assert _error(result.pose, RS1_POSE) < 0.02
    assert result.overlap is not None and result.overlap > 0.7
    # The next distinct candidate is far below: the pose is not a coin toss.
    assert result.candidates[1].overlap < 0.5
    assert (result.num_model_points, result.num_scene_points) == (6700, 114373)
    assert result.icp_residual is not None and 0 < result.icp_residual < 0.01 * DIAMETER
    assert not result.model_normals_estimated and not result.scene_normals_estimated


def test_the_real_scan_without_normals_gives_the_same_pose(cache: DetectorCache) -> None:
    scan = read_ply(scan_bytes())
    result = _match(model_bytes(), write_ply(scan.xyz), cache).result
    assert result.scene_normals_estimated and not result.model_normals_estimated
    assert _error(result.pose, RS1_POSE) < 0.02


@pytest.mark.parametrize("unit", [0.001, 1000.0], ids=["metres", "microns"])
def test_the_real_pair_in_other_units_gives_the_same_pose_in_those_units(unit: float, cache: DetectorCache) -> None:
    """Scanners write metres: the sample pair in metres (0.36 across) was never found, because
    OpenCV's PPF has absolute thresholds. The matcher works in units where the model is 256..512
    across and answers in the files' own."""
    model, scan = read_ply(model_bytes()), read_ply(scan_bytes())
    result = _match(write_ply(model.xyz * unit, model.normals), write_ply(scan.xyz * unit, scan.normals), cache).result
    assert result.poses_found == 1 and result.pose is not None
    pose = np.array(result.pose)
    pose[:3, 3] /= unit
    assert _error(pose.tolist(), RS1_POSE) < 0.02
    assert result.model_diameter == pytest.approx(DIAMETER * unit, rel=1e-6)
    assert result.icp_residual is not None and 0 < result.icp_residual < 0.01 * DIAMETER * unit
    # The candidates are in file units too: the best one (before the final ICP) is near the pose.
    best = np.array(result.candidates[0].pose)
    assert np.linalg.norm(best[:3, 3] - np.array(result.pose)[:3, 3]) < 0.1 * DIAMETER * unit


# A scan in a frame other than its sensor's: a robot cell's, a CAD's, 10-20 m from the origin.
ELSEWHERE = np.array([1e4, -3e3, 2e4])


def test_the_real_scan_moved_into_another_frame_gives_the_same_pose(cache: DetectorCache) -> None:
    """The overlap counts the model points a scan could see. With the sensor no longer at the
    origin, facing the origin was the wrong half of the model: nothing was ever found."""
    scan = read_ply(scan_bytes())
    result = _match(model_bytes(), write_ply(scan.xyz + ELSEWHERE, scan.normals), cache).result
    assert result.poses_found == 1 and result.overlap is not None and result.overlap > 0.7
    pose = np.array(result.pose)
    pose[:3, 3] -= ELSEWHERE
    assert _error(pose.tolist(), RS1_POSE) < 0.02
    assert result.candidates[1].overlap < 0.5


@pytest.mark.parametrize("kind", ["partial", "absent", "all around"])
def test_synthetic_scans_in_another_frame(kind: str, cache: DetectorCache) -> None:
    if kind == "all around":  # a merged scan: every side of the model, no support plane
        rng = np.random.default_rng(5)
        truth = np.eye(4)
        truth[:3, :3] = cv2.Rodrigues(rng.normal(size=3))[0]
        truth[:3, 3] = rng.normal(size=3) * 100
        xyz = MODEL_XYZ @ truth[:3, :3].T + truth[:3, 3] + rng.normal(size=MODEL_XYZ.shape) * 0.005 * DIAMETER
        normals = MODEL_NORMALS @ truth[:3, :3].T
    else:
        scene = make_scene(3, partial=True, absent=kind == "absent")
        xyz, normals, truth = scene.xyz, scene.normals, scene.pose.copy()
    truth[:3, 3] += ELSEWHERE
    result = _match(model_bytes(), write_ply(xyz + ELSEWHERE, normals), cache).result
    if kind == "absent":
        assert result.poses_found == 0 and all(c.overlap < MIN_OVERLAP for c in result.candidates)
    else:
        assert result.poses_found >= 1 and _error(result.pose, truth) < 0.1


def test_a_model_without_normals_is_still_found(cache: DetectorCache) -> None:
    result = _match(write_ply(MODEL_XYZ), scan_bytes(), cache).result
    assert result.model_normals_estimated
    assert _error(result.pose, RS1_POSE) < 0.02


def test_estimated_normals_agree_with_the_files() -> None:
    scan = read_ply(scan_bytes())
    estimated = estimate_normals(scan.xyz, orientation="sensor")
    dots = np.einsum("ij,ij->i", estimated, scan.normals)
    # Measured: median 2.3°, 99.8 % on the same side.
    assert np.median(np.degrees(np.arccos(np.clip(np.abs(dots), 0, 1)))) < 5
    assert np.mean(dots > 0) > 0.99
    model = estimate_normals(MODEL_XYZ, orientation="outward")
    dots = np.einsum("ij,ij->i", model, MODEL_NORMALS)
    aligned = np.abs(dots) > np.cos(np.radians(30))
    # The model's own normals are rough (mesh normals); where the directions agree, the side does
    # for ~80 % (outward from the centroid: 58 %).
    assert np.mean(dots[aligned] > 0) > 0.75


def test_a_flat_scene_does_not_crash_opencv(cache: DetectorCache) -> None:
    # OpenCV divides by each axis' extent when sampling: a scene flat in z crashed it (SIGSEGV).
    rng = np.random.default_rng(3)
    xyz = np.c_[rng.uniform(-200, 200, (5000, 2)), np.full(5000, -600.0)]
    result = _match(model_bytes(), write_ply(xyz, np.tile([0.0, 0.0, 1.0], (5000, 1))), cache).result
    assert result.poses_found == 0


def test_models_whose_features_repeat_are_refused_quickly() -> None:
    # A plate trained in 63 s and then hung in matching; a sphere never finished. Refused in < 1 s.
    rng = np.random.default_rng(4)
    sphere = rng.normal(size=(6000, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    plate = np.c_[rng.uniform(0, 100, (6000, 2)), np.zeros(6000)]
    for xyz, normals in ((50 * sphere, sphere), (plate, np.tile([0.0, 0.0, 1.0], (6000, 1)))):
        start = time.process_time()
        with pytest.raises(InputError, match="repeat too much"):
            _match(write_ply(xyz, normals), model_bytes(), DetectorCache())
        assert time.process_time() - start < 3.0


def test_a_too_fine_sampling_step_is_refused_before_training() -> None:
    with pytest.raises(InputError, match="relative_sampling_step=0.01 keeps"):
        _match(model_bytes(), model_bytes(), DetectorCache(), SurfaceParams(relative_sampling_step=0.01))


def test_the_cache_trains_once_per_model_and_params(cache: DetectorCache) -> None:
    loaded = pipeline.load(model_bytes(), model_bytes())
    first, _ = pipeline.train_detector(loaded.model, SurfaceParams(), cache)
    again, hit = pipeline.train_detector(loaded.model, SurfaceParams(), cache)
    assert hit and again is first
    # The same points in another format are the same model (the key is the content, not the file).
    binary = pipeline.load(write_ply(loaded.model.xyz.astype(np.float32), loaded.model.normals.astype(np.float32)), model_bytes())
    same = pipeline.load(write_ply(loaded.model.xyz.astype(np.float32), loaded.model.normals.astype(np.float32), comment="other"), model_bytes())
    pipeline.train_detector(binary.model, SurfaceParams(), cache)
    assert pipeline.train_detector(same.model, SurfaceParams(), cache)[1]
    other, hit = pipeline.train_detector(loaded.model, SurfaceParams(num_angles=20), cache)
    assert not hit and other is not first


def test_the_cache_is_bounded_in_entries_and_bytes() -> None:
    def fake(size: int):
        return lambda: Trained(detector=object(), frame=np.eye(4), cost=None, bytes=size)  # type: ignore[arg-type]

    cache = DetectorCache(max_entries=2, max_bytes=100)
    cache.get_or_train("a", fake(40))
    cache.get_or_train("b", fake(40))
    cache.get_or_train("a", fake(40))  # a is now the most recent
    cache.get_or_train("c", fake(40))
    assert len(cache) == 2 and cache.get_or_train("a", fake(40))[1] and not cache.get_or_train("b", fake(40))[1]
    cache.get_or_train("d", fake(90))  # pushes everything else out
    assert len(cache) == 1 and cache.bytes == 90
    cache.get_or_train("e", fake(500))  # larger than the budget: used, not kept
    assert len(cache) == 1 and cache.get_or_train("d", fake(90))[1]


# -- the runner, end to end -------------------------------------------------------------------


def _job(model: bytes, scene: bytes, **params) -> Job:
    return Job(uid="s1", tool="surface", params=params, inputs=[("model_file", model), ("scene_file", scene)])


def test_the_runner_reports_its_stages_and_files() -> None:
    steps, parts = job_steps(_job(model_bytes(), scan_bytes())), []
    while True:
        try:
            parts.append(next(steps))
        except StopIteration as end:
            outcome = end.value
            break
    assert [p.name for p in parts if isinstance(p, Stage)] == ["loading", "training", "matching", "refining"]
    files = {p.name: p.data for p in parts if isinstance(p, ResultFile)}
    assert set(files) == {"pose.png", "posed_model.ply"}
    assert outcome.status == "done"
    data = msgspec.to_builtins(outcome.result_data)  # the wire form a client reads
    assert list(data)[:5] == ["pose", "num_model_points", "num_scene_points", "icp_residual", "poses_found"]
    assert data["poses_found"] == 1 and _error(data["pose"], RS1_POSE) < 0.02
    assert data["min_overlap"] == MIN_OVERLAP and data["model_normals_estimated"] is False
    assert 1 <= len(data["candidates"]) <= 5 and {"pose", "votes", "overlap"} == set(data["candidates"][0])
    picture = cv2.imdecode(np.frombuffer(files["pose.png"], np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (480, 3 * 480, 3)
    # The posed model lies on the scan: most of its points have a scan point within 2 % of the diameter.
    posed = read_ply(files["posed_model.ply"])
    assert posed.xyz.shape == (6700, 3) and posed.normals is not None
    scan = read_ply(scan_bytes())
    _, dist = Neighbours(scan.xyz).nearest(posed.xyz, 1)
    assert np.mean(dist[:, 0] < 0.02 * DIAMETER) > 0.5


def test_a_broken_ply_ends_as_an_error_and_the_next_task_runs() -> None:
    for model, scene, field in ((b"ply\nformat ascii 1.0\nelement vertex -3\nend_header\n", scan_bytes(), "model_file"),
                                (model_bytes(), b"", "scene_file")):
        outcome = run_job(_job(model, scene))
        assert outcome.status == "error" and outcome.files == []
        assert f"'{field}'" in (outcome.error or "")
    nothing = make_scene(0, partial=True, absent=True)
    outcome = run_job(_job(model_bytes(), write_ply(nothing.xyz, nothing.normals)))
    assert outcome.status == "done" and outcome.result_data.poses_found == 0
    assert outcome.result_data.pose is None and [name for name, _ in outcome.files] == ["pose.png"]


def test_bad_params_are_an_error_outcome() -> None:
    outcome = run_job(_job(model_bytes(), model_bytes(), num_angles=0))
    assert outcome.status == "error" and "num_angles" in (outcome.error or "")


def test_the_result_round_trips_through_json(cache: DetectorCache) -> None:
    result = _match(model_bytes(), scan_bytes(), cache).result
    assert msgspec.json.decode(msgspec.json.encode(result), type=type(result)) == result
