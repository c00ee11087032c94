"""One runner per tool: the two uploaded files' bytes and the tool's params in, result files and
stages handed over as they come, the tool's typed result at the end. Pure of NATS and of disk.

A runner is a generator: it yields each ``ResultFile`` as soon as it is encoded (the matcher stores
it while the runner goes on) and ``Stage`` markers on long jobs, and returns the result struct.
Adding a tool is one runner here plus one descriptor in ``contracts``.
"""

from __future__ import annotations

from typing import Any, Callable, Generator

from contracts.params import FeatureParams, SurfaceParams, TemplateParams
from contracts.results import FeatureResult, SurfaceResult, TemplateResult
from services.matcher import feature as fm
from services.matcher import template as tm
from services.matcher.images import decode_image, encode_png, to_gray
from services.matcher.parts import ResultFile, Stage
from services.matcher.surface import pipeline as surface
from services.matcher.surface.cache import DetectorCache

Steps = Generator[ResultFile | Stage, None, Any]
Runner = Callable[[Any, bytes, bytes], Steps]


def run_template(params: TemplateParams, image_bytes: bytes, template_bytes: bytes) -> Generator[ResultFile | Stage, None, TemplateResult]:
    # Decoded in colour once: the boxes are drawn on what the user sent, not on its gray version.
    picture = decode_image(image_bytes, grayscale=False, name="image")
    image = to_gray(picture) if params.use_grayscale else picture
    template = decode_image(template_bytes, grayscale=params.use_grayscale, name="template")
    matching = tm.match_template(image, template, params)
    # The larger file first: its storing overlaps the heat map's encoding.
    yield ResultFile("matches.png", encode_png(tm.draw_matches(picture, matching.result.matches)))
    yield ResultFile("heatmap.png", encode_png(tm.render_heatmap(matching.scores, image.shape, template.shape)))
    return matching.result


def run_feature(params: FeatureParams, query_bytes: bytes, train_bytes: bytes) -> Generator[ResultFile | Stage, None, FeatureResult]:
    # Colour for the picture; detection converts to gray on its own bounded copy.
    query = decode_image(query_bytes, grayscale=False, name="query_image")
    train = decode_image(train_bytes, grayscale=False, name="train_image")
    matching = fm.match_features(query, train, params)
    yield ResultFile("matches.png", encode_png(fm.draw_matches(query, train, matching)))
    return matching.result


# Trained surface detectors outlive a task: one bounded cache per worker process (the runner is
# called with the files only, so the process is where it can live). Nothing but memory.
SURFACE_DETECTORS = DetectorCache()


def run_surface(params: SurfaceParams, model_bytes: bytes, scene_bytes: bytes) -> Generator[ResultFile | Stage, None, SurfaceResult]:
    yield Stage("loading")
    loaded = surface.load(model_bytes, scene_bytes)
    yield Stage("training")
    trained, _ = surface.train_detector(loaded.model, params, SURFACE_DETECTORS)
    yield Stage("matching")
    matching = surface.match(trained, loaded, params)
    yield Stage("refining")
    matched = surface.refine(matching, loaded, params)
    for name, data in surface.result_files(matched, loaded):
        yield ResultFile(name, data)
    return matched.result


# The tools a chain may use as steps; ``jobs.RUNNERS`` adds the chain itself.
STEP_RUNNERS: dict[str, Runner] = {
    "template": run_template,
    "feature": run_feature,
    "surface": run_surface,
}
