"""Multipart bodies parsed in memory: files, fields, and broken bodies."""

from __future__ import annotations

import os

import pytest

from services.gateway.formdata import FormPart, MalformedForm, parse_form


def _body(*parts: tuple[str, str | None, bytes], boundary: str = "b0undary") -> bytes:
    out = []
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n")
    return b"".join(out) + f"--{boundary}--\r\n".encode()


def test_files_stay_bytes_and_fields_become_text_in_order() -> None:
    image = os.urandom(3 * 2**20)  # past the 1 MiB where Litestar would spool to disk
    body = _body(("image", "shot.png", image), ("threshold", None, b"0.9"), ("template", "icon.png", b"\x89PNG"))
    assert parse_form(body, "b0undary") == [
        FormPart("image", "shot.png", image),
        FormPart("threshold", None, "0.9"),
        FormPart("template", "icon.png", b"\x89PNG"),
    ]


def test_a_part_without_a_file_name_is_a_field_even_if_binary() -> None:
    [part] = parse_form(_body(("image", None, b"\xff\xfe binary")), "b0undary")
    assert part.filename is None and isinstance(part.value, str)
    [empty_name] = parse_form(_body(("image", "", b"x")), "b0undary")
    assert empty_name.filename is None


@pytest.mark.parametrize("body", [
    _body(("image", "a.png", b"data"))[:-12],  # cut before the closing boundary
    b"\x00\xff" * 100,
    b'--b0undary\r\nContent-Disposition: form-data; name="image"\r\n',  # headers never end
])
def test_broken_bodies_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedForm):
        parse_form(body, "b0undary")


def test_too_many_parts_is_malformed() -> None:
    body = _body(*[(f"f{i}", None, b"1") for i in range(5)])
    assert len(parse_form(body, "b0undary", max_parts=5)) == 5
    with pytest.raises(MalformedForm):
        parse_form(body, "b0undary", max_parts=4)
