"""Surface matching measured in-process: ours against OpenCV out of the box, and the real pair.

``python -m bench.surface [--seeds N] [--reps N]`` prints, for synthetic scans of the sample model
(full and partial views, noise, clutter; tests/surface_scenes.py), how many poses are right (mean
model-point error < 10 % of the diameter) and the median CPU time per scene, for this pipeline and
for OpenCV's PPF as its sample uses it (PPF3DDetector(0.05, 0.05, 30), match(scene, 1/40, 0.05),
top-voted pose); then the real pair (rs1_normals.ply) through the runner with and without the
trained-model cache, its pose and overlap. OpenCV runs on one thread, as in a worker. Times are
CPU time (time.process_time): on a shared machine wall time says more about the neighbours.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from contracts.params import SurfaceParams
from contracts.results import SurfaceResult
from infra.ply import write_ply
from services.matcher import runners
from services.matcher.jobs import Job, run_job
from services.matcher.pool import prepare_worker_process
from services.matcher.surface import pipeline
from services.matcher.surface.cache import DetectorCache
from services.matcher.surface.geometry import diameter, mean_point_distance
from tests.surface_scenes import load_model, make_scene, model_bytes, scan_bytes


def _ours(scene_bytes: bytes, cache: DetectorCache) -> tuple[np.ndarray | None, float]:
    start = time.process_time()
    params = SurfaceParams()
    loaded = pipeline.load(model_bytes(), scene_bytes)
    trained, _ = pipeline.train_detector(loaded.model, params, cache)
    matched = pipeline.refine(pipeline.match(trained, loaded, params), loaded, params)
    pose = np.array(matched.result.pose) if matched.result.pose is not None else None
    return pose, time.process_time() - start


def _opencv(detector, xyz: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray | None, float]:
    start = time.process_time()
    results = detector.match(np.hstack([xyz, normals]).astype(np.float32), 1.0 / 40.0, 0.05)
    return (np.array(results[0].pose) if results else None), time.process_time() - start


def _synthetic(seeds: int) -> None:
    xyz, normals = load_model()
    size = diameter(xyz)
    cache = DetectorCache()
    start = time.process_time()
    pipeline.train_detector(pipeline.load(model_bytes(), model_bytes()).model, SurfaceParams(), cache)
    print(f"training (ours, default params): {time.process_time() - start:.2f} s CPU")
    start = time.process_time()
    opencv = cv2.ppf_match_3d_PPF3DDetector(0.05, 0.05, 30)
    opencv.trainModel(np.hstack([xyz, normals]).astype(np.float32))
    print(f"training (OpenCV out of the box): {time.process_time() - start:.2f} s CPU\n")
    print(f"{'scenes':<16}{'ours right':>12}{'median s':>10}{'OpenCV right':>14}{'median s':>10}")
    for partial in (False, True):
        rows = []
        for seed in range(seeds):
            scene = make_scene(seed, partial=partial)
            ours, t_ours = _ours(write_ply(scene.xyz, scene.normals), cache)
            theirs, t_theirs = _opencv(opencv, scene.xyz, scene.normals)
            rows.append([
                ours is not None and mean_point_distance(ours, scene.pose, xyz) < 0.1 * size, t_ours,
                theirs is not None and mean_point_distance(theirs, scene.pose, xyz) < 0.1 * size, t_theirs,
            ])
        kind = "partial views" if partial else "full views"
        print(f"{kind:<16}{sum(r[0] for r in rows):>9}/{seeds:<2}{statistics.median(r[1] for r in rows):>10.2f}"
              f"{sum(r[2] for r in rows):>11}/{seeds:<2}{statistics.median(r[3] for r in rows):>10.2f}")


def _run_surface(model: bytes, scene: bytes) -> tuple[SurfaceResult, float, list[str]]:
    start = time.process_time()
    outcome = run_job(Job(uid="bench-surface", tool="surface", params=SurfaceParams(),
                          inputs=[("model_file", model), ("scene_file", scene)]))
    seconds = time.process_time() - start
    assert outcome.status == "done", outcome.error
    return outcome.result_data, seconds, [name for name, _ in outcome.files]


def _real_pair(reps: int) -> None:
    model, scene = model_bytes(), scan_bytes()
    cold, warm = [], []
    for _ in range(reps):
        runners.SURFACE_DETECTORS.clear()
        result, seconds, _ = _run_surface(model, scene)
        cold.append(seconds)
        result, seconds, names = _run_surface(model, scene)
        warm.append(seconds)
    print(f"\nreal pair (parasaurolophus_6700.ply in rs1_normals.ply, 114,373 points), whole runner incl. "
          f"reading, result files ({', '.join(names)}); median of {reps}, CPU s:")
    print(f"  without the cache (training included): {statistics.median(cold):.2f}  (runs: {', '.join(f'{s:.2f}' for s in cold)})")
    print(f"  with the cache:                        {statistics.median(warm):.2f}  (runs: {', '.join(f'{s:.2f}' for s in warm)})")
    print(f"  poses_found {result.poses_found}, overlap {result.overlap}, icp_residual {result.icp_residual}, "
          f"next candidate's overlap {result.candidates[1].overlap if len(result.candidates) > 1 else None}")
    print("  pose (model → scene):")
    for row in result.pose or []:
        print("    " + "  ".join(f"{v:10.5f}" for v in row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="synthetic scenes per kind")
    parser.add_argument("--reps", type=int, default=3, help="runs of the real pair, each way")
    args = parser.parse_args()
    prepare_worker_process()
    _synthetic(args.seeds)
    _real_pair(args.reps)


if __name__ == "__main__":
    main()
