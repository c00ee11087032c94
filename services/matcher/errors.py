"""Errors the pure matching code raises when a user's input cannot be processed."""

from __future__ import annotations

import cv2
import msgspec


class InputError(Exception):
    """The user's input can't be processed; str() is a sentence meant for the user."""


def user_error(exc: BaseException) -> str | None:
    """What to tell the user about ``exc`` raised by a runner, or None if it is not about the input."""
    if isinstance(exc, InputError):
        return str(exc)
    if isinstance(exc, msgspec.ValidationError):
        return f"Invalid parameters: {exc}"
    if isinstance(exc, cv2.error):
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        return f"OpenCV could not process the input: {reason}"
    if isinstance(exc, MemoryError):
        return "The input is too large to process in memory"
    return None
