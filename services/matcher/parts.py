"""What a runner hands over while it works, before its result: files to store, stages reached."""

from __future__ import annotations

from typing import Any

import msgspec


class ResultFile(msgspec.Struct, frozen=True):
    """A result file, stored under ``results/<uid>/<name>`` as soon as the worker hands it over."""

    name: str
    data: bytes


class Stage(msgspec.Struct, frozen=True):
    """The runner moved on to a named stage (``loading``, ``training``, ``matching``, ``refining``):
    long jobs show it in the task view while they run."""

    name: str


class StepDone(msgspec.Struct, frozen=True):
    """A chain step ended; its files were handed over before it. ``record.result_files`` are
    names relative to the task's results folder (the matcher makes them paths)."""

    record: Any
