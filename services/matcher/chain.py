"""A chain: several tools on the same two files, in order, until one finds something.

Pure like the runners it composes. Each step's files go under ``step<N>/`` so steps never
overwrite each other; each finished step is handed over (``StepDone``) as soon as its files are,
so the matcher records it while the next one runs. A chain retried after a matcher died resumes
after the steps it already recorded (``done``) instead of running them again.
"""

from __future__ import annotations

from typing import Generator, Sequence

import msgspec

from contracts.tools import STEP_RECORDS, TOOLS, ChainParams, ChainProgress, ChainResult, tag_of
from services.matcher.errors import user_error
from services.matcher.parts import ResultFile, Stage, StepDone
from services.matcher.runners import STEP_RUNNERS

ChainSteps = Generator[ResultFile | Stage | StepDone, None, ChainResult]


class ChainFailed(Exception):
    """Every step that ran failed: the task ends in error, showing each step's reason."""

    def __init__(self, message: str, progress: ChainProgress) -> None:
        super().__init__(message)
        self.progress = progress


def _run_step(number: int, spec: msgspec.Struct, first: bytes, second: bytes) -> Generator:
    tool = tag_of(spec)
    record = STEP_RECORDS[tool]
    files: list[str] = []
    steps = STEP_RUNNERS[tool](spec.params, first, second)  # type: ignore[attr-defined]
    try:
        while True:
            part = next(steps)
            if isinstance(part, ResultFile):
                part = ResultFile(f"step{number}/{part.name}", part.data)
                files.append(part.name)
            yield part
    except StopIteration as end:
        result = end.value
        return record(step=number, params=spec.params, status="done", found=TOOLS[tool].found(result),
                      result_data=result, result_files=files)
    except Exception as exc:
        reason = user_error(exc)
        if reason is None:
            raise
        # Files it handed over before failing are stored but not part of the result.
        return record(step=number, params=spec.params, status="error", found=False, result_files=[], error=reason)


def _skipped(number: int, spec: msgspec.Struct) -> msgspec.Struct:
    return STEP_RECORDS[tag_of(spec)](step=number, params=spec.params, status="skipped", found=False, result_files=[])  # type: ignore[attr-defined]


def run_chain(params: ChainParams, first: bytes, second: bytes, *, done: Sequence[msgspec.Struct] = ()) -> ChainSteps:
    """Run the steps in order; stop at the first that finds something, the rest are ``skipped``."""
    recorded = {record.step: record for record in done}  # type: ignore[attr-defined]
    steps: list = []
    found_at = None
    for number, spec in enumerate(params.steps, start=1):
        if found_at is not None:
            steps.append(_skipped(number, spec))
            continue
        record = recorded.get(number)
        if record is None:
            record = yield from _run_step(number, spec, first, second)
            yield StepDone(record)
        steps.append(record)
        if record.found:
            found_at = number
    ran = [s for s in steps if s.status != "skipped"]
    if all(s.status == "error" for s in ran):
        reasons = "; ".join(f"step {s.step} ({tag_of(s)}): {s.error}" for s in ran)
        raise ChainFailed(f"Every step failed: {reasons}",
                          ChainProgress(completed_step=len(ran), total_steps=len(steps), steps=steps))
    return ChainResult(chain_result="found" if found_at else "not_found", completed_step=found_at or len(ran),
                       total_steps=len(steps), steps=steps)
