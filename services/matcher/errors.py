"""Errors the pure matching code raises when a user's input cannot be processed."""

from __future__ import annotations


class InputError(Exception):
    """The user's input can't be processed; str() is a sentence meant for the user."""
