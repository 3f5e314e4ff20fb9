"""The shape of a JSON text — how deep it nests, how many values it holds — measured
without parsing it. Native JSON parsers recurse once per level of nesting: far enough
down they overflow the C stack and the process dies (SIGSEGV), which no `except` can
catch; so whatever parses JSON from an untrusted source measures it first. Used by the
API on request bodies and by mirroring on documents served by peers and archives.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# What `json.loads` holds, at most, per value beyond its text and per array or object:
# upper bounds measured on CPython 3.11 with tracemalloc (a two-character string: 59
# bytes; a float: 32; a small int: 8; an empty array: 64; `[0]`: 96 with its one value).
PARSED_BYTES_PER_VALUE = 64
PARSED_BYTES_PER_CONTAINER = 64
# The densest JSON this node accepts from others, in bytes held once parsed (by the bound
# below) per byte of text: mirroring refuses a served document denser than this (plus an
# allowance per record), and ingest the disclosed values of a record, so that a record
# one node accepted never makes its batch one that others refuse.
MAX_PARSED_PER_BYTE = 8
# What a record's public disclosed arrays and objects may take to parse beyond
# MAX_PARSED_PER_BYTE times their size (ingest); a record's other parts (fixed fields,
# field envelopes, hex strings) parse to under 4 times their size, so a mirroring node
# allows each record this much and 4 KiB more (`ledger.peers`).
RECORD_PARSE_SLACK = 16 * 2**10

_CHUNK = 1 << 18  # bytes measured at a time: the temporaries stay a few MiB
_KEEP = b'"[]{},:'
_ONLY_STRUCTURE = bytes(b for b in range(256) if b not in _KEEP)
_NORMALISE = bytes.maketrans(b"{}:", b"[],")


class JsonShape(NamedTuple):
    """What `json_shape` measured of a JSON text."""

    depth: int  # deepest nesting of arrays/objects
    values: int  # `,` and `:` outside strings, plus one
    containers: int  # arrays and objects


def json_shape(body: bytes | bytearray, max_depth: int | None = None, max_values: int | None = None) -> JsonShape:
    """The depth, number of values and number of containers of `body`, without parsing
    it, in time linear in its size (no regex backtracking: hostile bodies cost what
    ordinary ones cost). The value count is that of `,` and `:` outside strings (plus one).

    1. Escapes go first: `\\\\` pairs, then `\\"` (left to right, exactly as a JSON
       string escape is read), so every remaining `"` opens or closes a string.
    2. Only quotes, brackets and separators are kept (a byte-level translate).
    3. One pass over that, 256 KiB at a time with numpy: a byte counts when an even
       number of quotes precede it (outside strings); the depth is the running sum of
       +1/-1 for brackets, carried from chunk to chunk. Stops early once past a limit.

    Invalid JSON (a backslash outside a string, unbalanced brackets) gives a depth no
    lower than any parser would reach before failing on it."""
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(_NORMALISE, _ONLY_STRUCTURE)
    depth = deepest = quotes = containers = 0
    values = 1
    for start in range(0, len(text), _CHUNK):
        chunk = np.frombuffer(text, dtype=np.uint8, count=min(_CHUNK, len(text) - start), offset=start)
        inside = np.bitwise_xor.accumulate(chunk == ord('"'))  # after an odd number of quotes
        if quotes:
            np.logical_not(inside, out=inside)
        quotes = int(inside[-1])
        outside = ~inside
        values += int(np.count_nonzero((chunk == ord(",")) & outside))
        opens = (chunk == ord("[")) & outside
        containers += int(np.count_nonzero(opens))
        running = np.cumsum(opens, dtype=np.int32)
        running -= np.cumsum((chunk == ord("]")) & outside, dtype=np.int32)
        deepest = max(deepest, depth + int(running.max()))
        depth += int(running[-1])
        if (max_depth is not None and deepest > max_depth) or (max_values is not None and values > max_values):
            break
    return JsonShape(deepest, values, containers)


def encoding_problem(body: bytes | bytearray) -> str | None:
    """Why `body` is not JSON text this module can measure, or None. `json_shape` reads
    bytes as UTF-8, the encoding JSON between systems must use (RFC 8259, section 8.1);
    `json.loads`, given bytes, detects UTF-16 and UTF-32 from NUL bytes and decodes them.
    A UTF-16 text hides its structure from the byte count (U+0122 is the bytes 22 01:
    its 0x22 reads as a quote), so its depth and size would go unchecked. A NUL byte is
    never valid in JSON (control characters are escaped in strings), so refusing any
    body holding one or not UTF-8 refuses no valid UTF-8 JSON."""
    if b"\x00" in body:
        return "JSON must be UTF-8 (a NUL byte: UTF-16 or UTF-32 is not accepted)"
    if body.isascii():
        return None
    try:
        bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"JSON must be UTF-8 ({exc.reason} at byte {exc.start})"
    return None


def parsed_bytes_bound(size: int, shape: JsonShape) -> int:
    """An upper bound on the memory `json.loads` holds for a text of `size` bytes and this shape."""
    return size + PARSED_BYTES_PER_VALUE * shape.values + PARSED_BYTES_PER_CONTAINER * shape.containers


def json_depth(body: bytes | bytearray, limit: int | None = None) -> int:
    """Deepest nesting of arrays/objects in `body` (see `json_shape`)."""
    return json_shape(body, limit)[0]
