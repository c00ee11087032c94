"""What a worker process runs for one task: decode, match, render, encode. Pure of NATS."""

from __future__ import annotations

from typing import Any, Generator, Literal

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


class ResultFile(msgspec.Struct, frozen=True):
    name: str  # under results/<uid>/
    data: bytes


class JobOutcome(msgspec.Struct, frozen=True):
    status: Literal["done", "error"]
    result_data: dict[str, Any] = {}
    files: list[tuple[str, bytes]] = []  # (file name under results/<uid>/, bytes)
    error: str | None = None


# A job's steps yield each result file as soon as it is encoded and return the outcome (without
# the files it yielded): the matcher stores one file while the next is still being encoded.
JobSteps = Generator[ResultFile, None, JobOutcome]


def _template(job: Job) -> JobSteps:
    params = msgspec.convert(job.params, TemplateParams)
    (image_field, image_bytes), (template_field, template_bytes) = job.inputs
    # Decoded in colour once: the boxes are drawn on what the user sent, not on its gray version.
    picture = decode_image(image_bytes, grayscale=False, name=image_field)
    image = cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY) if params.use_grayscale else picture
    template = decode_image(template_bytes, grayscale=params.use_grayscale, name=template_field)
    result = tm.match_template(image, template, params)
    # The larger file first: its storing overlaps the heat map's encoding.
    yield ResultFile("matches.png", encode_png(tm.draw_matches(picture, result.matches)))
    yield ResultFile("heatmap.png", encode_png(tm.render_heatmap(result.scores, image.shape, template.shape)))
    return JobOutcome(status="done", result_data=tm.result_data(result))


_RUNNERS = {"template": _template}


def job_steps(job: Job) -> JobSteps:
    """Run one task step by step; bad input ends as an error outcome with a reason a user
    understands (files yielded before it are then not part of the result)."""
    runner = _RUNNERS.get(job.tool)
    if runner is None:
        return JobOutcome(status="error", error=f"The tool '{job.tool}' is not available on this matcher")
    try:
        return (yield from runner(job))
    except InputError as exc:
        return JobOutcome(status="error", error=str(exc))
    except msgspec.ValidationError as exc:
        return JobOutcome(status="error", error=f"Invalid parameters: {exc}")
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        return JobOutcome(status="error", error=f"OpenCV could not process the input: {reason}")
    except MemoryError:
        return JobOutcome(status="error", error="The input is too large to process in memory")


def run_job(job: Job) -> JobOutcome:
    """Run one task to the end: the outcome with every result file."""
    steps, files = job_steps(job), []
    while True:
        try:
            part = next(steps)
        except StopIteration as end:
            outcome: JobOutcome = end.value
            break
        files.append((part.name, part.data))
    if outcome.status != "done":
        return outcome
    return msgspec.structs.replace(outcome, files=files + outcome.files)
