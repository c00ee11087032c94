"""Feature matching against ground truth: OpenCV's box and graffiti samples, and real photos warped
by known homographies; every detector × matcher, bad inputs, determinism, the runner end to end."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import cv2
import msgspec
import numpy as np
import pytest

from contracts.params import FeatureParams
from contracts.results import FeatureResult
from services.matcher.descriptor_matching import ratio_test_matches
from services.matcher.feature import CANVAS_MAX_HEIGHT, CANVAS_MAX_WIDTH, draw_matches, match_features
from services.matcher.homography import fit_homography, implausibility, outline, project
from services.matcher.jobs import Job, run_job
from services.matcher.keypoints import DETECT_MAX_PIXELS, MAX_KEYPOINTS, detect, make_detector
from tests.warps import corner_error, large_pair, outline_in, view_homography, warped

DATA = Path(__file__).resolve().parents[1] / "data"
DETECTORS = ["SIFT", "ORB", "AKAZE", "BRISK"]
MATCHERS = ["FLANN", "BFMatcher"]
EVERY_PAIR = list(itertools.product(DETECTORS, MATCHERS))
# The targets of the issue: SIFT and AKAZE within 3 px of the truth. ORB and BRISK localise their
# keypoints more coarsely; they are held to 5 px (they measure 1.9–2.7 px on graf1→3 here).
TOLERANCE = {"SIFT": 3.0, "AKAZE": 3.0, "ORB": 5.0, "BRISK": 5.0}

# Where box.png lies in box_in_scene.png (TL, TR, BR, BL corner pixel centres). No published
# ground truth exists for this pair, so it was measured once: SIFT + BF with every good match
# (ratio 0.75): 75 of 80 matches are inliers with an RMS reprojection error of 0.49 px, and FLANN
# or ratios 0.7–0.8 move no corner by more than 0.3 px.
BOX_OUTLINE = np.array([[118.7, 161.1], [284.4, 175.0], [267.5, 297.9], [89.8, 272.0]])
# ~5 % of the outline's shorter side (~125 px): a wrong homography is off by tens of pixels.
BOX_TOLERANCE = 6.0


@functools.cache
def _image(name: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    image = cv2.imread(str(DATA / name), flags)
    assert image is not None, name
    return image


@functools.cache
def _graf_truth() -> np.ndarray:
    storage = cv2.FileStorage(str(DATA / "H1to3p.xml"), cv2.FILE_STORAGE_READ)
    truth = storage.getNode("H13").mat()
    storage.release()
    return truth


def _png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def _params(detector: str, matcher: str, **more) -> FeatureParams:
    return FeatureParams(detector=detector, matcher=matcher, **more)


@pytest.mark.parametrize(("detector", "matcher"), EVERY_PAIR)
def test_every_detector_and_matcher_finds_the_box_in_the_scene(detector: str, matcher: str) -> None:
    result = match_features(_image("box.png"), _image("box_in_scene.png"), _params(detector, matcher)).result
    assert (result.detector, result.matcher) == (detector, matcher)
    assert result.query_keypoints > 100 and result.train_keypoints > 100
    assert 20 <= result.good_matches <= 200
    assert result.homography is not None and result.inliers is not None and result.corners is not None
    assert 10 <= result.inliers <= result.good_matches
    assert corner_error(result.corners, BOX_OUTLINE) < BOX_TOLERANCE


@pytest.mark.parametrize(("detector", "matcher"), EVERY_PAIR)
def test_graf1_to_graf3_against_the_published_homography(detector: str, matcher: str) -> None:
    result = match_features(_image("graf1.png"), _image("graf3.png"), _params(detector, matcher)).result
    assert result.corners is not None
    truth = project(_graf_truth(), outline(800, 640))
    assert corner_error(result.corners, truth) < TOLERANCE[detector]
    # The reported matrix is what the corners come from, normalised (h33 = 1).
    assert result.homography[2][2] == 1.0
    assert corner_error(project(np.array(result.homography), outline(800, 640)), truth) < TOLERANCE[detector]


# Views of real photos: (photo, in-plane rotation °, tilt away from the camera °, scale).
VIEWS = [("messi5.jpg", 25, 35, 1.0), ("messi5.jpg", -10, 50, 0.8), ("box_in_scene.png", 20, 35, 1.0)]


@pytest.mark.parametrize(("detector", "matcher"), [(d, m) for d in ("SIFT", "AKAZE") for m in MATCHERS])
@pytest.mark.parametrize("view", VIEWS, ids=lambda v: f"{v[0]}-r{v[1]}-t{v[2]}")
def test_warped_photos_within_3_px_for_sift_and_akaze(view: tuple, detector: str, matcher: str) -> None:
    name, rotate, tilt, scale = view
    photo = _image(name)
    h, w = photo.shape[:2]
    homography, size = view_homography(w, h, rotate=rotate, tilt=tilt, scale=scale)
    result = match_features(photo, warped(photo, homography, size), _params(detector, matcher)).result
    assert result.corners is not None
    assert corner_error(result.corners, outline_in(homography, w, h)) < 3.0


UNRELATED = [("box.png", "messi5.jpg"), ("messi5.jpg", "box_in_scene.png")]


@pytest.mark.parametrize(("detector", "matcher"), EVERY_PAIR)
def test_unrelated_images_give_no_homography(detector: str, matcher: str) -> None:
    for query, train in UNRELATED:
        result = match_features(_image(query), _image(train), _params(detector, matcher)).result
        assert result.homography is None and result.inliers is None and result.corners is None
        # Omitted on the wire, not null.
        assert set(msgspec.to_builtins(result)) == {
            "query_keypoints", "train_keypoints", "good_matches", "detector", "matcher"
        }


def test_ratio_test_and_max_matches_keep_the_best_first() -> None:
    q, t = detect(_image("box.png"), "SIFT"), detect(_image("box_in_scene.png"), "SIFT")

    def good(ratio: float, limit: int = 5000):
        return ratio_test_matches(q.descriptors, t.descriptors, norm=q.norm, flann=False, ratio=ratio, limit=limit)

    strict, loose, capped = good(0.6), good(0.8), good(0.8, limit=5)
    assert 0 < len(strict.query_idx) < len(loose.query_idx)
    # Brute force is exact: whatever passes a stricter ratio passes a looser one.
    assert set(zip(strict.query_idx, strict.train_idx)) <= set(zip(loose.query_idx, loose.train_idx))
    assert np.all(np.diff(loose.distance) >= 0)
    assert len(capped.query_idx) == 5
    np.testing.assert_array_equal(capped.query_idx, loose.query_idx[:5])
    few = match_features(_image("box.png"), _image("box_in_scene.png"), FeatureParams(max_matches=5)).result
    assert few.good_matches == 5 and few.homography is None  # 5 matches cannot support a homography


def test_binary_descriptors_use_hamming_and_lsh_may_find_fewer_than_two_neighbours() -> None:
    assert detect(_image("box.png"), "SIFT").norm == cv2.NORM_L2
    for name in ("ORB", "AKAZE", "BRISK"):
        assert detect(_image("box.png"), name).norm == cv2.NORM_HAMMING
    # ORB with 3- or 4-point comparisons says so itself; the matcher takes the norm from it.
    assert cv2.ORB_create(WTA_K=3).defaultNorm() == cv2.NORM_HAMMING2
    rng = np.random.default_rng(3)
    query = rng.integers(0, 256, (50, 61), dtype=np.uint8)
    train = rng.integers(0, 256, (3, 61), dtype=np.uint8)
    good = ratio_test_matches(query, train, norm=cv2.NORM_HAMMING, flann=True, ratio=1.0, limit=200)
    assert good.unpaired > 0 and len(good.query_idx) <= 50 - good.unpaired
    # FLANN refuses an index of one descriptor; no second neighbour exists anyway.
    assert len(ratio_test_matches(query, train[:1], norm=cv2.NORM_HAMMING, flann=True, ratio=1.0, limit=9).query_idx) == 0


def test_every_detector_is_found_in_this_opencv_build() -> None:
    for name in DETECTORS:
        extractor = make_detector(name)
        assert hasattr(extractor, "detectAndCompute")


def _corners_of(matrix: np.ndarray, w: int = 400, h: int = 300) -> np.ndarray:
    return project(matrix, outline(w, h))


def test_plausible_views_pass_the_rule() -> None:
    assert implausibility(np.eye(3), 400, 300, 50, 60) is None
    for rotate, tilt in [(0, 0), (45, 30), (170, 60), (90, 75)]:
        matrix, _ = view_homography(400, 300, rotate=rotate, tilt=tilt, scale=0.5)
        assert implausibility(matrix, 400, 300, 50, 60) is None, (rotate, tilt)


@pytest.mark.parametrize(("matrix", "why"), [
    (np.diag([-1.0, 1.0, 1.0]) @ np.array([[1, 0, -400], [0, 1, 0], [0, 0, 1.0]]), "outline flipped or not convex"),
    (np.diag([0.01, 0.01, 1.0]), "extreme scale"),
    (np.diag([50.0, 50.0, 1.0]), "extreme scale"),
    (np.array([[1, 0, 0], [0, 1, 0], [-0.004, 0, 1.0]]), "outline behind the camera"),
    (np.array([[1, 5, 0], [0, 1, 0], [0, 0, 1.0]]), "outline too skewed"),
    (np.diag([1.0, 0.05, 1.0]), "outline too stretched"),
    (np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0.0]]), "not finite"),
    (np.full((3, 3), np.nan), "not finite"),
], ids=["mirrored", "collapsed", "huge", "wraps-through-infinity", "sheared", "squashed", "h33-zero", "nan"])
def test_degenerate_homographies_are_rejected(matrix: np.ndarray, why: str) -> None:
    assert implausibility(matrix, 400, 300, 50, 60) == why


def test_a_bow_tie_outline_is_not_convex() -> None:
    # A homography that swaps the images of two neighbouring corners: the outline crosses itself.
    src = outline(400, 300).astype(np.float32)
    dst = np.float32([[0, 0], [0, 299], [399, 299], [399, 0]])[[0, 3, 1, 2]]
    matrix = cv2.getPerspectiveTransform(src, dst)
    assert implausibility(matrix, 400, 300, 50, 60) is not None


def test_support_is_required() -> None:
    assert implausibility(np.eye(3), 400, 300, 9, 9) == "too few inliers"
    assert implausibility(np.eye(3), 400, 300, 20, 1000) == "too few inliers"


def test_fit_finds_a_known_homography_and_refuses_a_mirror() -> None:
    rng = np.random.default_rng(5)
    src = rng.uniform([0, 0], [400, 300], (60, 2))
    true, _ = view_homography(400, 300, rotate=20, tilt=40)
    noisy = project(true, src) + rng.normal(0, 0.5, src.shape)
    # A quarter of the matches are wrong.
    noisy[:15] = rng.uniform([0, 0], [500, 400], (15, 2))
    found = fit_homography(src, noisy, 400, 300, 3.0)
    assert found is not None and found.inlier_mask[15:].mean() > 0.9 and not found.inlier_mask[:15].any()
    assert corner_error(found.corners, outline_in(true, 400, 300)) < 1.5
    mirror = np.array([[-1.0, 0, 399], [0, 1, 0], [0, 0, 1]])
    assert fit_homography(src, project(mirror, src), 400, 300, 3.0) is None


BAD_IMAGES = {
    "blank": np.full((240, 320, 3), 128, np.uint8),
    "one-pixel": np.zeros((1, 1, 3), np.uint8),
    "one-row": np.full((1, 300, 3), 90, np.uint8),
    "thin": np.ascontiguousarray(np.tile(np.arange(200, dtype=np.uint8)[:, None, None], (1, 5, 3))),
    "gradient": np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 1, 3)),
    "gray-2d": np.full((64, 64), 200, np.uint8),
    "bgra": np.zeros((50, 50, 4), np.uint8),
}


@pytest.mark.parametrize(("detector", "matcher"), EVERY_PAIR)
def test_images_without_keypoints_give_an_empty_valid_result(detector: str, matcher: str) -> None:
    box = _image("box.png")
    for name, bad in BAD_IMAGES.items():
        for query, train in ((bad, box), (box, bad), (bad, bad)):
            matching = match_features(query, train, _params(detector, matcher))
            result = matching.result
            assert result.good_matches == 0 and result.homography is None, name
            assert (result.query_keypoints == 0) == (query is bad)
            picture = draw_matches(query, train, matching)
            assert picture.shape == (max(query.shape[0], train.shape[0]), query.shape[1] + train.shape[1], 3)


def test_detection_runs_on_a_bounded_copy_and_answers_in_original_pixels() -> None:
    rng = np.random.default_rng(2)
    texture = cv2.resize(rng.integers(0, 256, (300, 400), dtype=np.uint8), (4000, 3000), interpolation=cv2.INTER_LINEAR)
    detected = detect(texture, "ORB")
    assert detected.scale > 2.0 and (4000 * 3000) / detected.scale**2 <= DETECT_MAX_PIXELS * 1.01
    assert 100 < len(detected.points) <= MAX_KEYPOINTS
    assert detected.points[:, 0].max() > 3500 and detected.points[:, 1].max() > 2500
    assert detected.points.min() >= 0


def test_a_12_megapixel_pair_within_3_px_and_a_bounded_picture() -> None:
    query, train, truth = large_pair(_image("graf1.png"))
    matching = match_features(query, train, FeatureParams())
    assert len(matching.query_points) <= MAX_KEYPOINTS
    assert matching.result.corners is not None
    assert corner_error(matching.result.corners, outline_in(truth, 4000, 3000)) < 3.0
    picture = draw_matches(query, train, matching)
    assert picture.shape[1] <= CANVAS_MAX_WIDTH and picture.shape[0] <= CANVAS_MAX_HEIGHT


def test_same_input_same_result_whatever_ran_before() -> None:
    box, scene = _image("box.png"), _image("box_in_scene.png")
    for detector in DETECTORS:
        params = FeatureParams(detector=detector, matcher="FLANN", ratio_threshold=0.9, max_matches=1000)
        first = match_features(box, scene, params)
        # FLANN draws from OpenCV's thread RNG; advance it as another task would.
        cv2.randu(np.empty((100, 100), np.float32), 0, 1)
        second = match_features(box, scene, params)
        assert first.result == second.result, detector
        np.testing.assert_array_equal(first.matches, second.matches)


def test_the_picture_shows_inliers_outliers_and_the_outline() -> None:
    box, scene = _image("box.png"), _image("box_in_scene.png")
    matching = match_features(box, scene, FeatureParams(ratio_threshold=0.9))
    assert 0 < matching.result.inliers < matching.result.good_matches  # both kinds present
    picture = draw_matches(box, scene, matching)
    assert picture.shape == (384, 324 + 512, 3)

    def count(bgr: tuple[int, int, int]) -> int:
        return int(np.all(picture == bgr, axis=2).sum())

    assert count((0, 200, 0)) > 500 and count((0, 0, 255)) > 100 and count((255, 0, 255)) > 200
    unrelated = match_features(box, _image("messi5.jpg"), FeatureParams())
    plain = draw_matches(box, _image("messi5.jpg"), unrelated)
    assert unrelated.result.good_matches > 0
    assert int(np.all(plain == (0, 200, 255), axis=2).sum()) > 0
    assert int(np.all(plain == (0, 200, 0), axis=2).sum()) == 0


def _feature_job(query: bytes, train: bytes, **params) -> Job:
    return Job(uid="f1", tool="feature", params=params, inputs=[("query_image", query), ("train_image", train)])


def test_the_runner_end_to_end_through_run_job() -> None:
    outcome = run_job(_feature_job(_png(_image("box.png")), _png(_image("box_in_scene.png")), detector="AKAZE"))
    assert outcome.status == "done", outcome.error
    result = outcome.result_data
    assert isinstance(result, FeatureResult)
    assert result.detector == "AKAZE" and result.matcher == "FLANN" and result.inliers >= 10
    wire = msgspec.json.decode(msgspec.json.encode(result))
    assert list(wire) == ["query_keypoints", "train_keypoints", "good_matches", "detector", "matcher",
                          "homography", "inliers", "corners"]
    assert corner_error(result.corners, BOX_OUTLINE) < BOX_TOLERANCE
    [(name, data)] = outcome.files
    assert name == "matches.png"
    picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (384, 324 + 512, 3)


def test_the_runner_turns_bad_files_into_errors_or_empty_results() -> None:
    scene = _png(_image("box_in_scene.png"))
    garbage = run_job(_feature_job(b"not an image", scene))
    assert garbage.status == "error" and "query_image" in garbage.error and garbage.files == []
    empty = run_job(_feature_job(scene, b""))
    assert empty.status == "error" and "train_image" in empty.error
    tiny = run_job(_feature_job(_png(np.zeros((1, 1, 3), np.uint8)), scene, detector="BRISK"))
    assert tiny.status == "done" and tiny.result_data.good_matches == 0
    wire = msgspec.json.decode(msgspec.json.encode(tiny.result_data))
    assert wire["query_keypoints"] == 0 and "homography" not in wire and "corners" not in wire
    invalid = run_job(_feature_job(scene, scene, ratio_threshold=1.5))
    assert invalid.status == "error" and "ratio_threshold" in invalid.error
