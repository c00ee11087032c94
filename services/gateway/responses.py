"""Answers whose JSON is already made (the task view as stored, an encoded struct)."""

from __future__ import annotations

from litestar import Response

JSON = "application/json"


def raw(data: bytes, status: int = 200) -> Response:
    return Response(content=data, status_code=status, media_type=JSON)
