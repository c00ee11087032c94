"""What a worker process runs for one task: the tool's runner, its failures turned into answers.

Pure of NATS: a ``Job`` (typed params and the two files' bytes) in, parts handed over as they
come, a ``JobOutcome`` at the end.
"""

from __future__ import annotations

from typing import Any, Generator, Literal

import msgspec

from contracts.tools import TOOLS
from services.matcher.chain import ChainFailed, run_chain
from services.matcher.errors import user_error
from services.matcher.parts import ResultFile, Stage, StepDone
from services.matcher.runners import STEP_RUNNERS, Runner

RUNNERS: dict[str, Runner] = {**STEP_RUNNERS, "chain": run_chain}


class Job(msgspec.Struct, frozen=True):
    uid: str
    tool: str
    params: Any  # the tool's params struct (a dict is converted)
    inputs: list[tuple[str, bytes]]  # (form field, file bytes)
    # A chain's steps an earlier attempt already recorded: it resumes after them.
    done_steps: list[Any] = []


class JobOutcome(msgspec.Struct, frozen=True):
    status: Literal["done", "error"]
    result_data: Any = None  # the tool's result struct; for an error, what it got to (or None)
    files: list[tuple[str, bytes]] = []  # (file name under results/<uid>/, bytes)
    error: str | None = None


# A job's steps hand over each part as soon as it is there and return the outcome (without the
# files it yielded): the matcher stores one file while the next is still being encoded.
JobSteps = Generator[ResultFile | Stage | StepDone, None, JobOutcome]


def job_steps(job: Job) -> JobSteps:
    """Run one task step by step; bad input ends as an error outcome with a reason a user
    understands (files yielded before it are then not part of the result)."""
    runner, tool = RUNNERS.get(job.tool), TOOLS.get(job.tool)
    if runner is None or tool is None:
        return JobOutcome(status="error", error=f"The tool '{job.tool}' is not available on this matcher")
    try:
        params = job.params if isinstance(job.params, tool.params) else msgspec.convert(job.params, tool.params)
        (_, first), (_, second) = job.inputs
        resume = {"done": job.done_steps} if job.done_steps else {}
        result = yield from runner(params, first, second, **resume)
        return JobOutcome(status="done", result_data=result)
    except ChainFailed as exc:
        return JobOutcome(status="error", result_data=exc.progress, error=str(exc))
    except Exception as exc:
        reason = user_error(exc)
        if reason is None:
            raise
        return JobOutcome(status="error", error=reason)


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
