"""Template matching against ground truth: pasted templates and OpenCV's real sample images."""

from __future__ import annotations

from pathlib import Path

import cv2
import msgspec
import numpy as np
import pytest

from contracts.params import TemplateParams
from contracts.results import TemplateMatch, TemplateResult
from services.matcher.errors import InputError
from services.matcher.template import draw_matches, match_template, render_heatmap

IMAGES = Path(__file__).resolve().parents[1] / "data"
METHODS = ["TM_CCOEFF_NORMED", "TM_CCORR_NORMED", "TM_SQDIFF_NORMED", "TM_CCOEFF", "TM_CCORR", "TM_SQDIFF"]
PASTES = [(50, 60), (300, 200), (500, 400)]
T = 32


def _scene(gray: bool) -> tuple[np.ndarray, np.ndarray]:
    """A 640×480 blurred-noise background with one 32×32 noise template pasted at PASTES."""
    rng = np.random.default_rng(7)
    background = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
    template = rng.integers(0, 256, (T, T, 3), dtype=np.uint8)
    for x, y in PASTES:
        background[y : y + T, x : x + T] = template
    if gray:
        return cv2.cvtColor(background, cv2.COLOR_BGR2GRAY), cv2.cvtColor(template, cv2.COLOR_BGR2GRAY)
    return background, template


def match(image: np.ndarray, template: np.ndarray, params: TemplateParams) -> TemplateResult:
    return match_template(image, template, params).result


def _iou(a: TemplateMatch, b: TemplateMatch) -> float:
    ox = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    oy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ox * oy
    return inter / (a.w * a.h + b.w * b.h - inter)


@pytest.mark.parametrize("gray", [True, False])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_finds_the_three_pastes_first(method: str, gray: bool) -> None:
    image, template = _scene(gray)
    matching = match_template(image, template, TemplateParams(method=method, threshold=0.5, max_results=10))
    result = matching.result
    assert {(m.x, m.y) for m in result.matches[:3]} == set(PASTES)
    assert all(m.score >= 0.999 for m in result.matches[:3])
    scores = [m.score for m in result.matches]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all((m.w, m.h) == (T, T) for m in result.matches)
    assert matching.scores.dtype == np.float32
    assert matching.scores.shape == (480 - T + 1, 640 - T + 1)
    assert 0.0 <= float(matching.scores.min()) and float(matching.scores.max()) <= 1.0
    assert result.best_score >= 0.999


@pytest.mark.parametrize("method", METHODS)
def test_strict_threshold_keeps_exactly_the_pastes(method: str) -> None:
    image, template = _scene(gray=True)
    result = match(image, template, TemplateParams(method=method, threshold=0.99, max_results=10))
    assert sorted((m.x, m.y) for m in result.matches) == sorted(PASTES)
    assert result.filtered_matches == 3


def test_nms_leaves_no_duplicates_near_a_match() -> None:
    image, template = _scene(gray=True)
    result = match(image, template, TemplateParams(method="TM_CCORR_NORMED", threshold=0.3, max_results=1000))
    assert result.matches_found > result.filtered_matches > 3
    for i, a in enumerate(result.matches):
        for b in result.matches[i + 1 :]:
            assert _iou(a, b) <= 0.3
    for x, y in PASTES:
        paste = TemplateMatch(x, y, T, T, 1.0)
        near = [m for m in result.matches if _iou(m, paste) > 0.3]
        assert [(m.x, m.y) for m in near] == [(x, y)]


def test_max_results_caps_the_matches() -> None:
    image, template = _scene(gray=True)
    result = match(image, template, TemplateParams(threshold=0.8, max_results=2))
    assert result.filtered_matches == len(result.matches) == 2
    assert result.matches_found >= 3
    assert {(m.x, m.y) for m in result.matches} <= set(PASTES)


def test_threshold_one_still_finds_a_perfect_paste() -> None:
    image, template = _scene(gray=True)
    result = match(image, template, TemplateParams(method="TM_CCOEFF_NORMED", threshold=1.0))
    assert sorted((m.x, m.y) for m in result.matches) == sorted(PASTES)
    assert all(m.score >= 0.999 for m in result.matches)


def test_colour_tells_apart_what_grayscale_cannot() -> None:
    red, green = (0, 0, 255), (0, 130, 0)
    pattern = (np.indices((24, 24)).sum(axis=0) // 4) % 2 == 1
    red_patch = np.zeros((24, 24, 3), np.uint8)
    red_patch[pattern] = red
    green_patch = np.zeros((24, 24, 3), np.uint8)
    green_patch[pattern] = green
    # The premise: both patches have identical luminance.
    assert np.array_equal(cv2.cvtColor(red_patch, cv2.COLOR_BGR2GRAY), cv2.cvtColor(green_patch, cv2.COLOR_BGR2GRAY))
    image = np.full((200, 300, 3), 40, np.uint8)
    image[30:54, 40:64] = red_patch
    image[120:144, 200:224] = green_patch

    gray = match(
        cv2.cvtColor(image, cv2.COLOR_BGR2GRAY),
        cv2.cvtColor(red_patch, cv2.COLOR_BGR2GRAY),
        TemplateParams(threshold=0.9, use_grayscale=True),
    )
    assert {(m.x, m.y) for m in gray.matches} == {(40, 30), (200, 120)}

    colour = match(image, red_patch, TemplateParams(threshold=0.9, use_grayscale=False))
    assert [(m.x, m.y) for m in colour.matches] == [(40, 30)]


def test_gray_and_colour_inputs_can_be_mixed() -> None:
    image, template = _scene(gray=True)
    image_bgr, template_bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), cv2.cvtColor(template, cv2.COLOR_GRAY2BGR)
    for img, tpl in ((image_bgr, template), (image, template_bgr)):
        result = match(img, tpl, TemplateParams(threshold=0.9))
        assert sorted((m.x, m.y) for m in result.matches) == sorted(PASTES)


def test_template_larger_than_image_is_an_input_error() -> None:
    image = np.zeros((50, 50), np.uint8)
    template = np.zeros((80, 64), np.uint8)
    with pytest.raises(InputError) as err:
        match(image, template, TemplateParams())
    assert "64×80" in str(err.value) and "50×50" in str(err.value)
    with pytest.raises(InputError):
        match(image, np.zeros((10, 60), np.uint8), TemplateParams())


def test_empty_input_is_an_input_error() -> None:
    with pytest.raises(InputError):
        match(np.zeros((0, 0), np.uint8), np.zeros((1, 1), np.uint8), TemplateParams())


@pytest.mark.parametrize("method", METHODS)
def test_flat_image_gives_finite_scores_and_few_boxes(method: str) -> None:
    image = np.full((300, 400), 128, np.uint8)
    checker = (np.indices((20, 20)).sum(axis=0) % 2 * 255).astype(np.uint8)
    matching = match_template(image, checker, TemplateParams(method=method, threshold=0.1, max_results=50))
    result = matching.result
    assert np.isfinite(matching.scores).all()
    assert result.filtered_matches <= 50
    for i, a in enumerate(result.matches):
        for b in result.matches[i + 1 :]:
            assert _iou(a, b) <= 0.3


@pytest.mark.parametrize("gray", [True, False])
@pytest.mark.parametrize("method", ["TM_CCOEFF_NORMED", "TM_CCOEFF"])
@pytest.mark.parametrize("shape", [(1, 1), (40, 60)])
def test_a_single_colour_template_is_an_input_error_for_the_centred_methods(method, gray, shape) -> None:
    # OpenCV gives TM_CCOEFF_NORMED 1.0 at every position for it: 20 "perfect" matches anywhere.
    image, _ = _scene(gray)
    template = np.full(shape if gray else (*shape, 3), 200, np.uint8)
    with pytest.raises(InputError, match="single colour.*TM_SQDIFF_NORMED"):
        match(image, template, TemplateParams(method=method))


def test_a_single_colour_template_is_found_where_that_colour_is_by_sqdiff() -> None:
    image, _ = _scene(gray=True)
    image[100:140, 200:260] = 255
    result = match(image, np.full((40, 60), 255, np.uint8), TemplateParams(method="TM_SQDIFF_NORMED", threshold=0.99))
    assert (result.matches[0].x, result.matches[0].y) == (200, 100)
    assert result.matches[0].score == 1.0


def test_a_template_with_one_flat_channel_is_still_matched() -> None:
    image, template = _scene(gray=False)
    template[:, :, 0] = 0
    for x, y in PASTES:
        image[y : y + T, x : x + T] = template
    result = match(image, template, TemplateParams(max_results=3))
    assert sorted((m.x, m.y) for m in result.matches) == sorted(PASTES)


def test_messi_crop_is_found_where_it_was_cut() -> None:
    image = cv2.imread(str(IMAGES / "messi5.jpg"), cv2.IMREAD_COLOR)
    template = image[80:140, 200:260].copy()
    for use_gray in (True, False):
        img = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if use_gray else image
        tpl = cv2.cvtColor(template, cv2.COLOR_BGR2GRAY) if use_gray else template
        result = match(img, tpl, TemplateParams(use_grayscale=use_gray))
        best = result.matches[0]
        assert (best.x, best.y, best.w, best.h) == (200, 80, 60, 60)
        assert best.score >= 0.999


def test_chessboard_corner_gives_many_non_overlapping_matches() -> None:
    image = cv2.imread(str(IMAGES / "left01.jpg"), cv2.IMREAD_GRAYSCALE)
    template = image[115:135, 265:285].copy()  # centred on an inner corner of the board
    result = match(image, template, TemplateParams(threshold=0.8, max_results=100))
    assert result.filtered_matches >= 10
    assert (result.matches[0].x, result.matches[0].y) == (265, 115)
    for i, a in enumerate(result.matches):
        for b in result.matches[i + 1 :]:
            assert _iou(a, b) == 0.0


def test_heatmap_has_the_image_size_and_peaks_at_the_match_centre() -> None:
    image, template = _scene(gray=True)
    matching = match_template(image, template, TemplateParams())
    heat = render_heatmap(matching.scores, image.shape, template.shape)
    assert heat.shape == (480, 640, 3) and heat.dtype == np.uint8
    x, y = PASTES[0]
    # JET maps 1.0 to dark red (BGR ~ (0, 0, 128)); the centre of a pasted window is a peak.
    b, g, r = (int(v) for v in heat[y + T // 2, x + T // 2])
    assert r > 100 and g < 30 and b < 30


def test_draw_matches_returns_bgr_of_the_image_size() -> None:
    image, template = _scene(gray=True)
    result = match(image, template, TemplateParams())
    drawn = draw_matches(image, result.matches)
    assert drawn.shape == (480, 640, 3) and drawn.dtype == np.uint8
    colour_image, _ = _scene(gray=False)
    before = colour_image.copy()
    assert draw_matches(colour_image, result.matches).shape == (480, 640, 3)
    assert np.array_equal(colour_image, before)


def test_result_data_is_json_serialisable() -> None:
    image, template = _scene(gray=True)
    result = match(image, template, TemplateParams(threshold=0.5))
    decoded = msgspec.json.decode(msgspec.json.encode(result))
    assert set(decoded) == {"method", "matches_found", "filtered_matches", "best_score", "matches"}
    assert decoded["filtered_matches"] == len(decoded["matches"]) == 3
    assert set(decoded["matches"][0]) == {"x", "y", "w", "h", "score"}
    assert all(round(m["score"], 4) == m["score"] for m in decoded["matches"])


def test_full_hd_crop_is_found() -> None:
    # Speed is measured in bench/, not asserted here.
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (1080, 1920), dtype=np.uint8), (0, 0), 2)
    template = image[500:564, 900:964].copy()
    result = match(image, template, TemplateParams())
    assert (result.matches[0].x, result.matches[0].y) == (900, 500)
