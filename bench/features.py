"""Feature matching per detector × matcher: time and corner error against ground truth, and a
12 MP pair's time and peak memory in a fresh worker-like process.

    .venv/bin/python -m bench.features            # 5 runs per pair, 3 of the 12 MP pair per child
    .venv/bin/python -m bench.features --reps 3 --large-reps 1

Every task runs as a matcher worker runs it (``prepare_worker_process``: OpenCV on one thread)
through ``services.matcher.jobs.run_job``: decode both files, match, draw, encode ``matches.png``.
Times are medians; CPU is the process's own (``time.process_time``), wall is elapsed time, which
on a shared machine includes waiting for a core. Figures only: nothing here asserts.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time
from pathlib import Path
from typing import Any

import cv2
import msgspec
import numpy as np

from bench.stats import median, ms
from services.matcher.jobs import Job, run_job
from tests.warps import corner_error, large_pair, outline_in, view_homography, warped

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
DETECTORS = ["SIFT", "ORB", "AKAZE", "BRISK"]
MATCHERS = ["FLANN", "BFMatcher"]


class Pair(msgspec.Struct, frozen=True):
    """Two encoded images and the true query → train homography."""

    name: str
    query: bytes
    train: bytes
    truth: Any  # (3, 3) float64
    size: tuple[int, int]  # the query's width, height

    def job(self, detector: str, matcher: str) -> Job:
        return Job(uid=f"bench-{self.name}", tool="feature", params={"detector": detector, "matcher": matcher},
                   inputs=[("query_image", self.query), ("train_image", self.train)])

    def error(self, result_data: dict[str, Any]) -> float | None:
        corners = result_data.get("corners")
        return None if corners is None else corner_error(corners, outline_in(self.truth, *self.size))


def _encode(image: np.ndarray, ext: str, *flags: int) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(flags))
    assert ok
    return buf.tobytes()


def graf_pair() -> Pair:
    storage = cv2.FileStorage(str(DATA / "H1to3p.xml"), cv2.FILE_STORAGE_READ)
    truth = storage.getNode("H13").mat()
    storage.release()
    return Pair("graf1→3", (DATA / "graf1.png").read_bytes(), (DATA / "graf3.png").read_bytes(), truth, (800, 640))


def photo_warp_pair() -> Pair:
    """messi5.jpg and a view of it turned 25° and tilted 35° (as in the unit tests)."""
    photo = cv2.imread(str(DATA / "messi5.jpg"))
    h, w = photo.shape[:2]
    truth, size = view_homography(w, h, rotate=25, tilt=35)
    return Pair("messi5 warp", _encode(photo, ".png"), _encode(warped(photo, truth, size), ".png"), truth, (w, h))


def large_photo_pair() -> Pair:
    """graf1.png upscaled to 4000×3000 and a view of it (15°, tilt 30°), both JPEG quality 90."""
    query, train, truth = large_pair(cv2.imread(str(DATA / "graf1.png")))
    quality = (cv2.IMWRITE_JPEG_QUALITY, 90)
    return Pair("12 MP", _encode(query, ".jpg", *quality), _encode(train, ".jpg", *quality), truth, (4000, 3000))


def _timed(job: Job) -> tuple[Any, float, float]:
    c0, t0 = time.process_time(), time.perf_counter()
    outcome = run_job(job)
    return outcome, time.process_time() - c0, time.perf_counter() - t0


def _measure(pair: Pair, detector: str, matcher: str, reps: int) -> dict[str, Any]:
    runs = [_timed(pair.job(detector, matcher)) for _ in range(reps)]
    outcome = runs[0][0]
    # The wire form: what a client reads (an error's result_data is None here).
    data = msgspec.to_builtins(outcome.result_data) if outcome.result_data is not None else {}
    return {
        "status": outcome.status, "error": outcome.error,
        "good": data.get("good_matches"), "inliers": data.get("inliers"), "px": pair.error(data),
        "cpu": median(r[1] for r in runs), "wall": median(r[2] for r in runs),
    }


def _child(pair: Pair, detector: str, matcher: str, reps: int, conn: Any) -> None:
    from services.matcher.pool import prepare_worker_process

    prepare_worker_process()
    figures = _measure(pair, detector, matcher, reps)
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    conn.send(figures)
    conn.close()


def in_fresh_process(pair: Pair, detector: str, matcher: str, reps: int) -> dict[str, Any]:
    """The figures of ``reps`` runs in a new spawned process, with its peak RSS (ru_maxrss)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(pair, detector, matcher, reps, child))
    proc.start()
    child.close()
    figures = parent.recv()
    proc.join()
    return figures


def _cell(x: Any, fmt: str) -> str:
    return "—" if x is None else format(x, fmt)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i > 1 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows)


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--reps", type=int, default=5, help="runs per detector × matcher on the small pairs")
    args.add_argument("--large-reps", type=int, default=3, help="runs of the 12 MP pair in each fresh process")
    args.add_argument("--no-large", action="store_true", help="skip the 12 MP pair")
    opts = args.parse_args()

    from services.matcher.pool import prepare_worker_process

    prepare_worker_process()
    pairs = [graf_pair(), photo_warp_pair()]
    print(f"OpenCV {cv2.__version__}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
          f"one OpenCV thread per task as in the matcher's workers; medians of {opts.reps} runs")
    header = ["detector", "matcher"]
    for pair in pairs:
        header += [f"{pair.name}: good", "inliers", "corner px", "CPU ms", "wall ms"]
    rows = [header]
    for detector in DETECTORS:
        for matcher in MATCHERS:
            row = [detector, matcher]
            for pair in pairs:
                f = _measure(pair, detector, matcher, opts.reps)
                row += [_cell(f["good"], "d"), _cell(f["inliers"], "d"), _cell(f["px"], ".2f"),
                        f"{ms(f['cpu']):.0f}", f"{ms(f['wall']):.0f}"]
            rows.append(row)
    print(_table(rows))
    if opts.no_large:
        return
    large = large_photo_pair()
    print(f"\n12 MP pair (4000×3000 JPEG, {len(large.query) / 1e6:.1f} + {len(large.train) / 1e6:.1f} MB), "
          f"each detector × matcher in a fresh spawned process, medians of {opts.large_reps} runs:")
    rows = [["detector", "matcher", "good", "inliers", "corner px", "CPU s", "wall s", "peak RSS MB"]]
    for detector in DETECTORS:
        for matcher in MATCHERS:
            f = in_fresh_process(large, detector, matcher, opts.large_reps)
            rows.append([detector, matcher, _cell(f["good"], "d"), _cell(f["inliers"], "d"), _cell(f["px"], ".2f"),
                         f"{f['cpu']:.2f}", f"{f['wall']:.2f}", f"{f['peak_mb']:.0f}"])
    print(_table(rows))


if __name__ == "__main__":
    main()
