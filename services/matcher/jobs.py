"""What a worker process runs for one task: decode, match, render, encode. Pure of NATS."""

from __future__ import annotations

from typing import Any, Generator, Literal

import cv2
import msgspec

from contracts.params import PARAMS_BY_TOOL
from services.matcher.errors import InputError
from services.matcher.parts import ResultFile, Stage
from services.matcher.runners import RUNNERS


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


# A job's steps yield each result file (and stage) as soon as it is there and return the outcome
# (without the files it yielded): the matcher stores one file while the next is still being encoded.
JobSteps = Generator[ResultFile | Stage, None, JobOutcome]


def job_steps(job: Job) -> JobSteps:
    """Run one task step by step; bad input ends as an error outcome with a reason a user
    understands (files yielded before it are then not part of the result)."""
    runner, params_type = RUNNERS.get(job.tool), PARAMS_BY_TOOL.get(job.tool)
    if runner is None or params_type is None:
        return JobOutcome(status="error", error=f"The tool '{job.tool}' is not available on this matcher")
    try:
        params = msgspec.convert(job.params, params_type)
        (_, first), (_, second) = job.inputs
        result = yield from runner(params, first, second)
        return JobOutcome(status="done", result_data=msgspec.to_builtins(result))
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
        if isinstance(part, ResultFile):
            files.append((part.name, part.data))
    if outcome.status != "done":
        return outcome
    return msgspec.structs.replace(outcome, files=files + outcome.files)
