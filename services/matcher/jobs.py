"""What a worker process runs for one task: decode, match, render, encode. Pure of NATS."""

from __future__ import annotations

from typing import Any, Literal

import cv2
import msgspec

from contracts.params import TemplateParams
from services.matcher import template as tm
from services.matcher.errors import InputError
from services.matcher.images import decode_image, encode_png


class Job(msgspec.Struct, frozen=True):
    uid: str
    tool: str
    params: dict[str, Any]
    inputs: list[tuple[str, bytes]]  # (form field, file bytes)


class JobOutcome(msgspec.Struct, frozen=True):
    status: Literal["done", "error"]
    result_data: dict[str, Any] = {}
    files: list[tuple[str, bytes]] = []  # (file name under results/<uid>/, bytes)
    error: str | None = None


def _template(job: Job) -> JobOutcome:
    params = msgspec.convert(job.params, TemplateParams)
    (image_field, image_bytes), (template_field, template_bytes) = job.inputs
    # Decoded in colour once: the boxes are drawn on what the user sent, not on its gray version.
    picture = decode_image(image_bytes, grayscale=False, name=image_field)
    image = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY) if params.use_grayscale else picture
    template = decode_image(template_bytes, grayscale=params.use_grayscale, name=template_field)
    result = tm.match_template(image, template, params)
    matches_png = encode_png(tm.draw_matches(picture, result.matches))
    heatmap_png = encode_png(tm.render_heatmap(result.scores, image.shape, template.shape))
    return JobOutcome(
        status="done",
        result_data=tm.result_data(result),
        files=[("matches.png", matches_png), ("heatmap.png", heatmap_png)],
    )


_RUNNERS = {"template": _template}


def run_job(job: Job) -> JobOutcome:
    """Run one task; bad input ends as an error outcome with a reason a user understands."""
    runner = _RUNNERS.get(job.tool)
    if runner is None:
        return JobOutcome(status="error", error=f"The tool '{job.tool}' is not available on this matcher")
    try:
        return runner(job)
    except InputError as exc:
        return JobOutcome(status="error", error=str(exc))
    except msgspec.ValidationError as exc:
        return JobOutcome(status="error", error=f"Invalid parameters: {exc}")
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        return JobOutcome(status="error", error=f"OpenCV could not process the input: {reason}")
    except MemoryError:
        return JobOutcome(status="error", error="The input is too large to process in memory")
