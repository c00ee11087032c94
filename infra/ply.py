"""Reading and writing PLY point clouds safely: numpy only, every size checked before it is used.

Shared by the gateway (``read_header`` at submission: a 422 for what the header shows) and the
matcher (``read_ply``: the whole file). OpenCV's own reader hangs, crashes or misreads on hostile
or merely unusual files, so uploads never reach it. Every message of ``PlyError`` is a sentence
meant for the user.
"""

from __future__ import annotations

import struct

import msgspec
import numpy as np

# Limits (docs/limits.md, "PLY files"). Parsed vertices cost 48 bytes each (x, y, z and normals
# as float64) and parsing peaks at about three times that: 2 million vertices ≈ 100 MB of arrays,
# ≈ 300 MB at the peak, within a worker's budget, and more than a 64 MiB upload can carry in
# ascii with normals.
MAX_VERTICES = 2_000_000
# Fewer points than this carry no usable shape for point-pair features (and below 3, none at all).
MIN_POINTS = 100
# Real headers are a few hundred bytes; a bounded search for end_header keeps garbage cheap.
MAX_HEADER_BYTES = 64 * 1024

# PLY's scalar types and their aliases → numpy type characters (sizes are the PLY spec's).
SCALAR_TYPES: dict[str, str] = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
FORMATS = {"ascii": "", "binary_little_endian": "<", "binary_big_endian": ">"}
XYZ = ("x", "y", "z")
NORMALS = ("nx", "ny", "nz")


class PlyError(ValueError):
    """The file is not a PLY this reader accepts; str() is a sentence meant for the user."""


class PlyProperty(msgspec.Struct, frozen=True):
    name: str
    type: str  # numpy type character without byte order, e.g. "f4"
    count_type: str | None = None  # set for a list property: the type of its length prefix


class PlyElement(msgspec.Struct, frozen=True):
    name: str
    count: int
    properties: tuple[PlyProperty, ...]

    @property
    def has_lists(self) -> bool:
        return any(p.count_type is not None for p in self.properties)


class PlyHeader(msgspec.Struct, frozen=True, kw_only=True):
    format: str  # ascii | binary_little_endian | binary_big_endian
    vertex_count: int
    vertex_properties: tuple[str, ...]
    header_length: int  # bytes up to and including the end_header line
    has_normals: bool
    elements: tuple[PlyElement, ...]


class PointCloud(msgspec.Struct, frozen=True):
    """Vertices as float64 arrays: ``xyz`` (N×3) and ``normals`` (N×3, None when the file has none)."""

    xyz: np.ndarray
    normals: np.ndarray | None


def _find_header_end(data: bytes) -> int:
    if not data:
        raise PlyError("the file is empty")
    if not (data.startswith(b"ply\n") or data.startswith(b"ply\r\n")):
        raise PlyError("not a PLY file: it must start with a line 'ply'")
    at = data.find(b"end_header", 0, MAX_HEADER_BYTES)
    if at < 0:
        if len(data) >= MAX_HEADER_BYTES:
            raise PlyError(f"the PLY header is longer than {MAX_HEADER_BYTES // 1024} KiB or has no 'end_header' line")
        raise PlyError("the PLY header has no 'end_header' line")
    eol = data.find(b"\n", at)
    if eol < 0:
        # A header with no data after it: the size check below names what is missing.
        return len(data)
    return eol + 1


def _parse_property(words: list[str], line: str) -> PlyProperty:
    if len(words) == 5 and words[1] == "list":
        count_type, item_type, name = words[2], words[3], words[4]
        if count_type not in SCALAR_TYPES or item_type not in SCALAR_TYPES:
            raise PlyError(f"the PLY header has an unknown property type in '{line}'")
        if SCALAR_TYPES[count_type][0] == "f":
            raise PlyError(f"a PLY list length must be an integer type, not '{count_type}' ('{line}')")
        return PlyProperty(name, SCALAR_TYPES[item_type], SCALAR_TYPES[count_type])
    if len(words) == 3:
        if words[1] not in SCALAR_TYPES:
            raise PlyError(f"the PLY header has an unknown property type '{words[1]}' in '{line}'")
        return PlyProperty(words[2], SCALAR_TYPES[words[1]])
    raise PlyError(f"the PLY header has a malformed property line '{line}'")


def _parse_elements(text: str) -> tuple[str, list[PlyElement]]:
    fmt: str | None = None
    elements: list[tuple[str, int, list[PlyProperty]]] = []
    for raw in text.splitlines()[1:]:
        line = raw.strip()
        words = line.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        key = words[0]
        if key == "end_header":
            break
        if key == "format":
            if fmt is not None or elements or len(words) != 3 or words[1] not in FORMATS:
                raise PlyError(f"the PLY format line '{line}' is not one of 'format ascii|binary_little_endian|binary_big_endian 1.0'")
            if not words[2].startswith("1"):
                raise PlyError(f"PLY version {words[2]} is not supported (only 1.0)")
            fmt = words[1]
        elif key == "element":
            if len(words) != 3 or not words[2].lstrip("-").isdigit():
                raise PlyError(f"the PLY header has a malformed element line '{line}'")
            count = int(words[2])
            if count < 0:
                raise PlyError(f"the PLY element '{words[1]}' has a negative count ({count})")
            elements.append((words[1], count, []))
        elif key == "property":
            if not elements:
                raise PlyError(f"the PLY property line '{line}' comes before any element")
            prop = _parse_property(words, line)
            if any(p.name == prop.name for p in elements[-1][2]):
                raise PlyError(f"the PLY element '{elements[-1][0]}' has the property '{prop.name}' twice")
            elements[-1][2].append(prop)
        else:
            raise PlyError(f"the PLY header has an unknown line '{line}'")
    if fmt is None:
        raise PlyError("the PLY header has no 'format' line")
    return fmt, [PlyElement(name, count, tuple(props)) for name, count, props in elements]


def _min_item_bytes(element: PlyElement, fmt: str) -> int:
    """The fewest bytes one item of the element can take (lists empty; ascii: one digit each)."""
    if fmt == "ascii":
        return 2 * len(element.properties)
    return sum(np.dtype(p.count_type or p.type).itemsize for p in element.properties)


def read_header(data: bytes) -> PlyHeader:
    """Parse and check a PLY header (cheap: reads at most 64 KiB); PlyError says what is wrong."""
    header_length = _find_header_end(data)
    try:
        text = data[:header_length].decode("ascii")
    except UnicodeDecodeError:
        raise PlyError("the PLY header is not plain ASCII text") from None
    fmt, elements = _parse_elements(text)
    names = [e.name for e in elements]
    if names.count("vertex") != 1:
        raise PlyError("the PLY file has no 'vertex' element" if "vertex" not in names else "the PLY file has more than one 'vertex' element")
    vertex = elements[names.index("vertex")]
    props = {p.name: p for p in vertex.properties}
    missing = [n for n in XYZ if n not in props]
    if missing:
        raise PlyError(f"the PLY vertices have no {'/'.join(missing)} coordinate (x, y and z are needed)")
    if any(props[n].count_type is not None for n in (*XYZ, *NORMALS) if n in props):
        raise PlyError("the PLY vertex coordinates and normals must be single values, not lists")
    if vertex.count == 0:
        raise PlyError("the PLY file has no vertices")
    if vertex.count < MIN_POINTS:
        raise PlyError(f"the PLY file has {vertex.count} vertices; at least {MIN_POINTS} are needed")
    if vertex.count > MAX_VERTICES:
        raise PlyError(f"the PLY file has {vertex.count:,} vertices; at most {MAX_VERTICES:,} are accepted")
    # Everything up to the end of the vertices must fit in the file: a huge count on a small file
    # is refused here, before anything is allocated for it.
    needed = 0
    for element in elements[: names.index("vertex") + 1]:
        needed += element.count * _min_item_bytes(element, fmt)
    if needed > len(data) - header_length:
        raise PlyError(
            f"the PLY file is too short for its {vertex.count:,} vertices: it is truncated or its header is wrong"
        )
    return PlyHeader(
        format=fmt,
        vertex_count=vertex.count,
        vertex_properties=tuple(p.name for p in vertex.properties),
        header_length=header_length,
        has_normals=all(n in props for n in NORMALS),
        elements=tuple(elements),
    )


def _wanted(header: PlyHeader) -> tuple[str, ...]:
    return XYZ + NORMALS if header.has_normals else XYZ


def _read_ascii(data: bytes, header: PlyHeader) -> np.ndarray:
    """The wanted vertex columns (float64, N×3 or N×6); ascii has one element item per line."""
    body = memoryview(data)[header.header_length :]
    before = 0
    for element in header.elements:
        if element.name == "vertex":
            vertex = element
            break
        before += element.count
    count = vertex.count
    newlines = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)
    # A last line without its newline still counts.
    lines = len(newlines) + (1 if len(body) and body[-1] != 10 else 0)
    if lines < before + count:
        got = max(0, lines - before)
        raise PlyError(f"the PLY file ends after {got:,} of its {count:,} vertices (truncated)")
    if before + count > len(newlines):
        # Every ascii line ends with a line end; a file that stops inside its last vertex line
        # was cut, and a cut number still reads as a (wrong) number.
        raise PlyError("the PLY file ends in the middle of its last vertex line (truncated)")
    start = int(newlines[before - 1]) + 1 if before else 0
    end = int(newlines[before + count - 1])
    block = bytes(body[start:end])
    names = [p.name for p in vertex.properties]
    if vertex.has_lists:
        return _ascii_rows_with_lists(block, vertex, _wanted(header))
    try:
        values = np.fromstring(block, dtype=np.float64, sep=" ")
    except ValueError:
        raise PlyError("the PLY vertex data has a value that is not a number") from None
    if values.size != count * len(names):
        raise PlyError(
            f"the PLY vertex data has {values.size:,} values where {count:,} vertices × {len(names)} properties "
            "were expected: the file is truncated or a vertex line is malformed"
        )
    table = values.reshape(count, len(names))
    return table[:, [names.index(n) for n in _wanted(header)]]


def _ascii_rows_with_lists(block: bytes, vertex: PlyElement, wanted: tuple[str, ...]) -> np.ndarray:
    """Slow path for vertices that carry list properties (rare): one line at a time."""
    out = np.empty((vertex.count, len(wanted)))
    lines = block.splitlines()
    for row, line in enumerate(lines):
        words, at, found = line.split(), 0, {}
        try:
            for prop in vertex.properties:
                if prop.count_type is not None:
                    at += 1 + int(words[at])
                else:
                    found[prop.name] = float(words[at])
                    at += 1
        except (ValueError, IndexError):
            raise PlyError(f"the PLY vertex line {row + 1} does not match the header") from None
        if at != len(words):
            raise PlyError(f"the PLY vertex line {row + 1} has more values than the header declares")
        out[row] = [found[n] for n in wanted]
    return out


def _scalar_dtype(element: PlyElement, order: str) -> np.dtype:
    return np.dtype([(p.name, order + p.type) for p in element.properties])


def _skip_binary_lists(body: memoryview, at: int, element: PlyElement, order: str) -> int:
    """Where the element's items end, for items with list properties."""
    # Fast path: every list as long as the first item's (triangle meshes). Checked, not assumed.
    fields, pos = [], at
    for prop in element.properties:
        if prop.count_type is None:
            fields.append((prop.name, order + prop.type))
            pos += np.dtype(prop.type).itemsize
            continue
        size = np.dtype(prop.count_type).itemsize
        if pos + size > len(body):
            raise PlyError(f"the PLY element '{element.name}' is truncated")
        length = int(np.frombuffer(body, order + prop.count_type, 1, pos)[0])
        fields.append((prop.name + "#", order + prop.count_type))
        fields.append((prop.name, order + prop.type, (max(length, 0),)))
        pos += size + max(length, 0) * np.dtype(prop.type).itemsize
    uniform = np.dtype(fields)
    if at + element.count * uniform.itemsize <= len(body):
        items = np.frombuffer(body, uniform, element.count, at)
        lengths_ok = all(
            np.all(items[p.name + "#"] == uniform[p.name].shape[0]) for p in element.properties if p.count_type
        )
        if lengths_ok:
            return at + element.count * uniform.itemsize
    # Slow path: lists of varying lengths, one item at a time.
    for _ in range(element.count):
        for prop in element.properties:
            if prop.count_type is None:
                at += np.dtype(prop.type).itemsize
                continue
            fmt = order + _STRUCT[prop.count_type]
            if at + struct.calcsize(fmt) > len(body):
                raise PlyError(f"the PLY element '{element.name}' is truncated")
            (length,) = struct.unpack_from(fmt, body, at)
            if length < 0:
                raise PlyError(f"the PLY element '{element.name}' has a list of negative length")
            at += struct.calcsize(fmt) + length * np.dtype(prop.type).itemsize
    if at > len(body):
        raise PlyError(f"the PLY element '{element.name}' is truncated")
    return at


_STRUCT = {"i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I"}


def _binary_rows_with_lists(body: memoryview, at: int, vertex: PlyElement, order: str, wanted: tuple[str, ...]) -> np.ndarray:
    """Slow path for binary vertices that carry list properties (rare): one item at a time."""
    out = np.empty((vertex.count, len(wanted)))
    for row in range(vertex.count):
        found = {}
        for prop in vertex.properties:
            fmt = order + (_STRUCT.get(prop.count_type or "") or "")
            if prop.count_type is not None:
                if at + struct.calcsize(fmt) > len(body):
                    raise PlyError("the PLY vertex data is truncated")
                (length,) = struct.unpack_from(fmt, body, at)
                at += struct.calcsize(fmt) + max(length, 0) * np.dtype(prop.type).itemsize
                continue
            size = np.dtype(prop.type).itemsize
            if at + size > len(body):
                raise PlyError("the PLY vertex data is truncated")
            found[prop.name] = float(np.frombuffer(body, order + prop.type, 1, at)[0])
            at += size
        out[row] = [found[n] for n in wanted]
    return out


def _read_binary(data: bytes, header: PlyHeader) -> np.ndarray:
    order = FORMATS[header.format]
    body = memoryview(data)[header.header_length :]
    at = 0
    for element in header.elements:
        if element.name == "vertex":
            break
        if element.has_lists:
            at = _skip_binary_lists(body, at, element, order)
        else:
            at += element.count * _scalar_dtype(element, order).itemsize
        if at > len(body):
            raise PlyError(f"the PLY element '{element.name}' before the vertices is truncated")
    vertex = next(e for e in header.elements if e.name == "vertex")
    wanted = _wanted(header)
    if vertex.has_lists:
        return _binary_rows_with_lists(body, at, vertex, order, wanted)
    dtype = _scalar_dtype(vertex, order)
    if at + vertex.count * dtype.itemsize > len(body):
        got = max(0, (len(body) - at) // dtype.itemsize)
        raise PlyError(f"the PLY file ends after {got:,} of its {vertex.count:,} vertices (truncated)")
    items = np.frombuffer(body, dtype, vertex.count, at)
    return np.stack([items[n].astype(np.float64) for n in wanted], axis=1)


def read_ply(data: bytes) -> PointCloud:
    """Read a PLY file's vertices (x, y, z and, when all three are there, nx, ny, nz)."""
    header = read_header(data)
    table = _read_ascii(data, header) if header.format == "ascii" else _read_binary(data, header)
    xyz = np.ascontiguousarray(table[:, :3], dtype=np.float64)
    normals = np.ascontiguousarray(table[:, 3:6], dtype=np.float64) if header.has_normals else None
    return PointCloud(xyz=xyz, normals=normals)


def write_ply(xyz: np.ndarray, normals: np.ndarray | None = None, *, comment: str = "") -> bytes:
    """Encode points (and normals) as a binary little-endian PLY of float32 vertices."""
    names = XYZ + (NORMALS if normals is not None else ())
    columns = [xyz] if normals is None else [xyz, normals]
    table = np.ascontiguousarray(np.hstack(columns), dtype="<f4")
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {line}" for line in comment.splitlines()]
    lines += [f"element vertex {len(table)}", *(f"property float {n}" for n in names), "end_header", ""]
    return "\n".join(lines).encode("ascii") + table.tobytes()
