"""Multipart form bodies parsed in memory (pure): a submission's parts, files as bytes.

Litestar's form parsing puts every file part into a ``SpooledTemporaryFile`` that rolls over to a
temporary file past 1 MiB, and then writes each chunk through a thread: parsing a 1.4 MB upload
took 2.9 ms against 0.12 ms for 354 KB. The body is bounded by the upload limit and the gateway
needs the files in memory anyway, so it reads the body whole and parses it here.
"""

from __future__ import annotations

import msgspec
from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser


class FormPart(msgspec.Struct, frozen=True):
    name: str
    filename: str | None  # None: a plain field (a part sent without a file name, as browsers do)
    value: bytes | str  # bytes for a file, text for a field


class MalformedForm(ValueError):
    """The body is not well-formed multipart/form-data."""


def parse_form(body: bytes, boundary: str, *, max_parts: int = 1000) -> list[FormPart]:
    """Every part of ``body`` in order; ``MalformedForm`` if it is cut short or garbled."""
    parts: list[FormPart] = []
    segment: MultipartSegment | None = None
    chunks: list[bytes] = []
    try:
        with PushMultipartParser(boundary, max_segment_count=max_parts) as parser:
            for piece in (body, b""):  # b"": the end of the body
                for result in parser.parse(piece):
                    if isinstance(result, MultipartSegment):
                        segment, chunks = result, []
                    elif result:
                        chunks.append(result)
                    elif segment is None:
                        raise MalformedForm("a part ended before its headers")
                    else:
                        data = bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)
                        if segment.filename:
                            parts.append(FormPart(segment.name, segment.filename, data))
                        else:
                            text = data.decode(segment.charset or "utf-8", errors="replace")
                            parts.append(FormPart(segment.name, None, text))
                        segment = None
    except (ParserError, ParserLimitReached) as exc:
        raise MalformedForm(str(exc)) from None
    return parts
