"""The PLY reader on odd and broken files: each is read right or refused with a clear reason."""

from __future__ import annotations

import numpy as np
import pytest

from infra.ply import MAX_HEADER_BYTES, MAX_VERTICES, MIN_POINTS, PlyError, read_header, read_ply, write_ply
from services.matcher.errors import InputError
from services.matcher.surface.pipeline import load
from tests.surface_scenes import model_bytes

# (name, ply type, numpy type) of every scalar type and alias the PLY spec has.
ALL_TYPES = [
    ("char", "i1"), ("uchar", "u1"), ("short", "i2"), ("ushort", "u2"), ("int", "i4"), ("uint", "u4"),
    ("float", "f4"), ("double", "f8"), ("int8", "i1"), ("uint8", "u1"), ("int16", "i2"), ("uint16", "u2"),
    ("int32", "i4"), ("uint32", "u4"), ("float32", "f4"), ("float64", "f8"),
]


def _cloud(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points on a bumpy sheet with their unit normals (float32-exact, so every format agrees)."""
    rng = np.random.default_rng(seed)
    u, v = rng.uniform(-1, 1, (2, n))
    xyz = np.stack([u, v, 0.2 * np.sin(3 * u) * np.cos(2 * v)], axis=1) * 50 + [10, -20, -300]
    normals = rng.normal(size=(n, 3))
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    return xyz.astype(np.float32).astype(np.float64), normals.astype(np.float32).astype(np.float64)


def _ply(fmt: str, elements: list[tuple[str, list[tuple[str, str]], list[list]]], *, eol: str = "\n",
         comments: tuple[str, ...] = ("made by test_ply",)) -> bytes:
    """A PLY file. Each element: (name, [(property, type) or (property, "list uchar int")], rows);
    a list property's value in a row is a Python list."""
    lines = ["ply", f"format {fmt} 1.0", *(f"comment {c}" for c in comments)]
    for name, props, rows in elements:
        lines.append(f"element {name} {len(rows)}")
        lines += [f"property {t} {p}" for p, t in props]
    lines.append("end_header")
    head = eol.join(lines).encode() + eol.encode()
    if fmt == "ascii":
        body = "".join(
            " ".join(" ".join([str(len(v)), *map(str, v)]) if isinstance(v, list) else repr(v) for v in row) + eol
            for _, _, rows in elements for row in rows
        )
        return head + body.encode()
    order = "<" if fmt == "binary_little_endian" else ">"
    types = dict((name, code) for name, code in ALL_TYPES)
    out = bytearray(head)
    for _, props, rows in elements:
        for row in rows:
            for (_, t), v in zip(props, row):
                if t.startswith("list"):
                    _, count_type, item_type = t.split()
                    out += np.array([len(v)], order + types[count_type]).tobytes()
                    out += np.array(v, order + types[item_type]).tobytes()
                else:
                    out += np.array([v], order + types[t]).tobytes()
    return bytes(out)


def _vertex_rows(xyz: np.ndarray, normals: np.ndarray | None) -> list[list]:
    table = xyz if normals is None else np.hstack([xyz, normals])
    return [[float(v) for v in row] for row in table]


XYZN = [("x", "float"), ("y", "float"), ("z", "float"), ("nx", "float"), ("ny", "float"), ("nz", "float")]
FORMATS = ["ascii", "binary_little_endian", "binary_big_endian"]


def _faces(n: int, vertices: int, mixed: bool = False) -> list[list]:
    rng = np.random.default_rng(1)
    return [[[int(i) for i in rng.integers(0, vertices, 4 if mixed and k % 3 == 0 else 3)]] for k in range(n)]


# -- files that are read ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_reads_the_same_points(fmt: str) -> None:
    xyz, normals = _cloud()
    data = _ply(fmt, [("vertex", XYZN, _vertex_rows(xyz, normals))])
    cloud = read_ply(data)
    assert np.array_equal(cloud.xyz, xyz) and cloud.normals is not None
    np.testing.assert_allclose(cloud.normals, normals, rtol=0, atol=1e-12)
    header = read_header(data)
    assert (header.format, header.vertex_count, header.has_normals) == (fmt, len(xyz), True)
    assert header.vertex_properties == ("x", "y", "z", "nx", "ny", "nz")


def test_the_sample_model_reads_the_same_in_binary_of_both_endians() -> None:
    original = read_ply(model_bytes())
    assert original.xyz.shape == (6700, 3) and original.normals is not None
    # Its first vertex, as the file says.
    np.testing.assert_allclose(original.xyz[0], [-47.1494, -13.58, -686.019], rtol=1e-6)
    for fmt in ("binary_little_endian", "binary_big_endian"):
        rows = _vertex_rows(original.xyz.astype(np.float32), original.normals.astype(np.float32))
        faces = _faces(50, 6700)
        again = read_ply(_ply(fmt, [("vertex", XYZN, rows), ("face", [("vertex_indices", "list uchar int")], faces)]))
        np.testing.assert_allclose(again.xyz, original.xyz, rtol=1e-6)
        np.testing.assert_allclose(again.normals, original.normals, rtol=1e-6)


@pytest.mark.parametrize("fmt", FORMATS)
def test_crlf_line_endings(fmt: str) -> None:
    xyz, normals = _cloud()
    cloud = read_ply(_ply(fmt, [("vertex", XYZN, _vertex_rows(xyz, normals))], eol="\r\n"))
    assert np.array_equal(cloud.xyz, xyz)
    assert cloud.normals is not None and np.allclose(cloud.normals, normals)


@pytest.mark.parametrize("fmt", FORMATS)
def test_extra_vertex_properties_in_any_order(fmt: str) -> None:
    xyz, normals = _cloud()
    props = [("red", "uchar"), ("nz", "double"), ("z", "float"), ("quality", "float"), ("x", "double"),
             ("nx", "float"), ("y", "float"), ("ny", "double"), ("alpha", "ushort")]
    rows = [[7, n[2], p[2], 0.5, p[0], n[0], p[1], n[1], 65535] for p, n in zip(xyz.tolist(), normals.tolist())]
    cloud = read_ply(_ply(fmt, [("vertex", props, rows)], comments=("a comment", "another")))
    assert np.allclose(cloud.xyz, xyz, atol=1e-4) and np.allclose(cloud.normals, normals, atol=1e-6)


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian", "ascii"])
def test_every_scalar_type_and_alias(fmt: str) -> None:
    props = [(f"p_{name}", name) for name, _ in ALL_TYPES] + [("x", "int16"), ("y", "uint8"), ("z", "float64")]
    rows = []
    for i in range(MIN_POINTS):
        values = [(-1) ** i * (i % 100) if code[0] == "i" else i % 200 if code[0] == "u" else i / 8 for _, code in ALL_TYPES]
        rows.append(values + [-i, i % 256, i * 0.25])
    cloud = read_ply(_ply(fmt, [("vertex", props, rows)]))
    expected = np.array([[-i, i % 256, i * 0.25] for i in range(MIN_POINTS)], dtype=np.float64)
    assert np.array_equal(cloud.xyz, expected) and cloud.normals is None


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mixed", [False, True])
def test_faces_and_other_elements_before_and_after_the_vertices_are_skipped(fmt: str, mixed: bool) -> None:
    xyz, normals = _cloud()
    elements = [
        ("face", [("flags", "uchar"), ("vertex_indices", "list uchar int"), ("weight", "double")],
         [[1, f[0], 0.5] for f in _faces(120, len(xyz), mixed)]),
        ("material", [("shine", "float"), ("name_chars", "list uchar uchar")], [[0.25, [65, 66]], [0.5, []]]),
        ("vertex", XYZN, _vertex_rows(xyz, normals)),
        ("edge", [("vertex1", "int"), ("vertex2", "int")], [[0, 1], [1, 2]]),
        ("face2", [("vertex_indices", "list int uint")], _faces(10, len(xyz), mixed)),
    ]
    cloud = read_ply(_ply(fmt, elements, comments=("obj_info is below",)))
    assert np.array_equal(cloud.xyz, xyz) and np.allclose(cloud.normals, normals)
    assert [e.name for e in read_header(_ply(fmt, elements)).elements] == ["face", "material", "vertex", "edge", "face2"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_vertex_list_property_is_read_around(fmt: str) -> None:
    xyz, _ = _cloud()
    props = [("x", "float"), ("tags", "list uchar ushort"), ("y", "float"), ("z", "float")]
    rows = [[p[0], list(range(i % 4)), p[1], p[2]] for i, p in enumerate(xyz.tolist())]
    cloud = read_ply(_ply(fmt, [("vertex", props, rows)]))
    assert np.array_equal(cloud.xyz, xyz) and cloud.normals is None


def test_obj_info_and_blank_header_lines_are_ignored() -> None:
    xyz, normals = _cloud()
    data = _ply("ascii", [("vertex", XYZN, _vertex_rows(xyz, normals))])
    data = data.replace(b"end_header", b"obj_info scanner 3\n\nend_header")
    assert np.array_equal(read_ply(data).xyz, xyz)


def test_no_normals_reads_none_and_they_are_estimated() -> None:
    xyz, _ = _cloud(400)
    data = _ply("ascii", [("vertex", XYZN[:3], _vertex_rows(xyz, None))])
    assert read_ply(data).normals is None and not read_header(data).has_normals
    loaded = load(model_bytes(), data)
    assert loaded.scene.normals_estimated and not loaded.model.normals_estimated
    assert np.allclose(np.linalg.norm(loaded.scene.normals, axis=1), 1.0)


def test_only_some_normal_properties_count_as_none() -> None:
    xyz, normals = _cloud()
    data = _ply("ascii", [("vertex", XYZN[:5], [r[:5] for r in _vertex_rows(xyz, normals)])])
    assert read_ply(data).normals is None


def test_write_ply_round_trips_as_binary_with_normals() -> None:
    xyz, normals = _cloud()
    data = write_ply(xyz, normals, comment="two\nlines")
    assert read_header(data).format == "binary_little_endian"
    cloud = read_ply(data)
    assert np.array_equal(cloud.xyz, xyz) and np.array_equal(cloud.normals, normals)
    assert read_ply(write_ply(xyz)).normals is None


# -- files that are refused ------------------------------------------------------------------

HEADER = b"ply\nformat ascii 1.0\nelement vertex %d\nproperty float x\nproperty float y\nproperty float z\nend_header\n"


def _points(n: int) -> bytes:
    return b"".join(b"%d %d %d\n" % (i, i * 7 % 13, i % 5) for i in range(n))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "not a PLY"),
        (b"solid cube\nfacet normal 0 0 1\n", "not a PLY"),
        (b"ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\n", "end_header"),
        (b"ply\n" + b"comment padding\n" * (MAX_HEADER_BYTES // 16 + 10) + b"end_header\n", "longer than 64 KiB"),
        (HEADER % 0, "no vertices"),
        (HEADER.replace(b"vertex %d", b"vertex -5"), "negative count"),
        (HEADER.replace(b"vertex %d", b"vertex -5") + _points(5), "negative count"),
        (HEADER % 10**12 + _points(200), "at most 2,000,000"),
        (HEADER % (MAX_VERTICES + 1), "at most 2,000,000"),
        (HEADER % 3 + _points(3), "at least 100"),
        (HEADER % 5000 + _points(200), "too short"),
        (HEADER % 200, "too short"),
        (HEADER.replace(b"format ascii 1.0", b"format binary 1.0") % 200 + _points(200), "format line"),
        (HEADER.replace(b"format ascii 1.0\n", b"") % 200 + _points(200), "no 'format' line"),
        (HEADER.replace(b"float x", b"float32x x") % 200 + _points(200), "unknown property type"),
        (HEADER.replace(b"property float z\n", b"") % 200 + _points(200), "no z coordinate"),
        (HEADER.replace(b"element vertex %d\n", b"") + _points(200), "before any element"),
        (HEADER.replace(b"vertex %d", b"point %d") % 200 + _points(200), "no 'vertex' element"),
        (HEADER.replace(b"end_header", b"elephant 3\nend_header") % 200 + _points(200), "unknown line"),
        (HEADER.replace(b"float x", b"list uchar float x") % 200 + _points(200), "single values"),
        (HEADER % 200 + _points(200).replace(b"7 ", b"7x ", 1), "not a number"),
        (HEADER % 200 + _points(200).replace(b"\n", b" 1\n", 1), "malformed"),
        ("ply\nformat ascii 1.0\ncomment café\nend_header\n".encode(), "not plain ASCII"),
    ],
)
def test_broken_files_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(PlyError) as err:
        read_ply(data)
    assert reason in str(err.value)


def test_the_gateway_check_refuses_what_the_header_shows_without_reading_the_data() -> None:
    with pytest.raises(PlyError, match="at most"):
        read_header(HEADER % 10**9)
    # A valid header with a damaged body passes the header check and fails on reading.
    data = HEADER % 200 + _points(200).replace(b"3 ", b"? ", 1)
    assert read_header(data).vertex_count == 200
    with pytest.raises(PlyError):
        read_ply(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_files_are_refused(fmt: str) -> None:
    xyz, normals = _cloud(300)
    data = _ply(fmt, [("vertex", XYZN, _vertex_rows(xyz, normals))])
    header = read_header(data).header_length
    # Cut in the middle of the vertices: within a value, and on a line/record boundary.
    for cut in (header + (len(data) - header) // 2, len(data) - 10):
        with pytest.raises(PlyError, match="truncated"):
            read_ply(data[:cut])
    if fmt != "ascii":
        body = len(data) - header
        with pytest.raises(PlyError, match="truncated"):
            read_ply(data[: header + body - 24])


@pytest.mark.parametrize("fmt", ["binary_little_endian", "binary_big_endian"])
def test_truncated_faces_before_the_vertices_are_refused(fmt: str) -> None:
    xyz, normals = _cloud(150)
    faces = ("face", [("vertex_indices", "list uchar int")], _faces(200, 150, mixed=True))
    data = _ply(fmt, [faces, ("vertex", XYZN, _vertex_rows(xyz, normals))])
    header = read_header(data).header_length
    with pytest.raises(PlyError, match="truncated"):
        read_ply(data[: header + 200 * 8])


# -- what is read but cannot be matched (InputError from the matcher's checks) ----------------


def _scene_with(xyz: np.ndarray, normals: np.ndarray | None) -> bytes:
    return _ply("ascii", [("vertex", XYZN if normals is not None else XYZN[:3], _vertex_rows(xyz, normals))])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_coordinates_are_refused_naming_the_file(bad: float) -> None:
    xyz, normals = _cloud()
    xyz[17, 1] = bad
    assert not np.isfinite(read_ply(_scene_with(xyz, normals)).xyz).all()
    with pytest.raises(InputError, match="1 of the 200 points in 'scene_file' have a coordinate that is NaN or infinite"):
        load(model_bytes(), _scene_with(xyz, normals))


def test_non_finite_normals_are_refused() -> None:
    xyz, normals = _cloud()
    normals[3] = np.nan
    with pytest.raises(InputError, match="normals in 'scene_file' are NaN"):
        load(model_bytes(), _scene_with(xyz, normals))


def test_all_points_equal_is_refused() -> None:
    xyz = np.tile([1.5, -2.0, 300.0], (150, 1))
    with pytest.raises(InputError, match="all points in 'model_file' are at the same place"):
        load(_scene_with(xyz, None), model_bytes())


def test_points_on_a_line_are_refused() -> None:
    xyz = np.outer(np.arange(150.0), [1.0, 2.0, -0.5])
    with pytest.raises(InputError, match="lie on a line"):
        load(model_bytes(), _scene_with(xyz, None))


def test_zero_normals_are_refused() -> None:
    xyz, normals = _cloud()
    normals[[5, 9]] = 0.0
    with pytest.raises(InputError, match="2 of the 200 normals in 'scene_file' are zero"):
        load(model_bytes(), _scene_with(xyz, normals))


def test_normals_are_made_unit_length() -> None:
    loaded = load(model_bytes(), model_bytes())
    # The sample model's normals are 0.12–6.3 long in the file.
    assert np.allclose(np.linalg.norm(loaded.model.normals, axis=1), 1.0)


def test_a_broken_file_names_its_field() -> None:
    with pytest.raises(InputError, match="could not read 'scene_file': the file is empty"):
        load(model_bytes(), b"")
    with pytest.raises(InputError, match="could not read 'model_file': not a PLY"):
        load(b"hello", model_bytes())
