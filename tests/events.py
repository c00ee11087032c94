"""Typed events for tests, as the services publish them."""

from __future__ import annotations

from contracts import events
from contracts.params import TemplateParams
from contracts.results import TemplateMatch, TemplateResult
from contracts.tools import STEP_SPECS, ChainParams

RESULT = TemplateResult(method="TM_CCOEFF_NORMED", matches_found=1, filtered_matches=1, best_score=1.0,
                        matches=[TemplateMatch(0, 0, 8, 8, 1.0)])


def submitted(uid: str, input_files: list[str] | None = None, **params) -> events.TaskSubmitted:
    return events.submitted("template", uid=uid, params=TemplateParams(**params), input_files=input_files or [])


def chain_submitted(uid: str) -> events.TaskSubmitted:
    params = ChainParams(steps=[STEP_SPECS["template"](params=TemplateParams())])
    return events.submitted("chain", uid=uid, params=params, input_files=[])


def done(uid: str, result: TemplateResult = RESULT) -> events.TaskFinished:
    return events.finished("template", "done", uid=uid, result_data=result)


def failed(uid: str, error: str = "bad") -> events.TaskFinished:
    return events.finished("template", "error", uid=uid, error=error)
