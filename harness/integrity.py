"""Checks of weight files without loading them: a safetensors header and the size it declares, a GGUF table.

Each check returns None for a sound file, else one line saying what is wrong (for error messages that
name the file). Nothing here unpickles anything.
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
from pathlib import Path
from typing import Any

MAX_HEADER = 100_000_000  # safetensors' own limit on the JSON header
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I16": 2, "U16": 2,
               "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8, "C64": 8}


def safetensors_problem(path: Path) -> str | None:
    """None if ``path`` is a whole safetensors file: a readable header whose tensors fill the file exactly."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                return f"truncated safetensors file ({size} bytes, no header)"
            (length,) = struct.unpack("<Q", prefix)
            if length > min(MAX_HEADER, size - 8):
                return f"truncated or not a safetensors file (header of {length} bytes in a file of {size})"
            header = json.loads(f.read(length))
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    except (UnicodeDecodeError, ValueError):
        return "unreadable safetensors header (not JSON)"
    if not isinstance(header, dict):
        return "unreadable safetensors header (not a JSON object)"
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = info["data_offsets"]
            nbytes = math.prod(info["shape"]) * DTYPE_BYTES[info["dtype"]]
        except (KeyError, TypeError, ValueError):
            return f"unreadable safetensors header (tensor {name!r})"
        if stop - begin != nbytes:
            return f"inconsistent safetensors header (tensor {name!r} spans {stop - begin} bytes, needs {nbytes})"
        end = max(end, stop)
    declared = 8 + length + end
    if size != declared:
        return f"truncated safetensors file ({size} bytes, its header declares {declared})"
    return None


GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
GGUF_STRING, GGUF_ARRAY = 8, 9


class _Cursor:
    """Reads little-endian GGUF fields from a memory map, failing with struct.error past the end."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data, self.at = data, 0

    def read(self, fmt: str) -> Any:
        (value,) = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize(fmt)
        return value

    def string(self) -> bytes:
        length = self.read("Q")
        if self.at + length > len(self.data):
            raise struct.error("string past the end")
        self.at += length
        return self.data[self.at - length:self.at]

    def value(self, kind: int) -> Any:
        if kind == GGUF_STRING:
            return self.string()
        if kind == GGUF_ARRAY:
            item, count = self.read("I"), self.read("Q")
            if item in GGUF_SCALARS:  # skip a run of fixed-size items at once
                self.at += count * struct.calcsize(GGUF_SCALARS[item])
                return None
            for _ in range(count):
                self.value(item)
            return None
        if kind not in GGUF_SCALARS:
            raise struct.error(f"unknown value type {kind}")
        return self.read(GGUF_SCALARS[kind])


def gguf_problem(path: Path) -> str | None:
    """None if ``path`` is a GGUF file whose tensors, by its own header, fit in the file."""
    from gguf.constants import GGML_QUANT_SIZES

    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 24 or f.read(4) != b"GGUF":
                return "not a GGUF file (no GGUF magic)"
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                cursor = _Cursor(data)
                cursor.at = 8  # magic and version
                tensors, fields = cursor.read("Q"), cursor.read("Q")
                alignment = 32
                for _ in range(fields):
                    key, kind = cursor.string(), cursor.read("I")
                    value = cursor.value(kind)
                    if key == b"general.alignment":
                        alignment = int(value)
                end = 0
                for _ in range(tensors):
                    cursor.string()
                    dims = [cursor.read("Q") for _ in range(cursor.read("I"))]
                    kind, offset = cursor.read("I"), cursor.read("Q")
                    block, nbytes = GGML_QUANT_SIZES[kind]
                    end = max(end, offset + math.prod(dims) // block * nbytes)
                start = -(-cursor.at // alignment) * alignment
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    except (struct.error, KeyError, ValueError, OverflowError):
        return f"truncated or malformed GGUF header ({size} bytes)"
    if start + end > size:
        return f"truncated GGUF file ({size} bytes, its tensors need {start + end})"
    return None


def weights_problem(path: Path) -> str | None:
    """The check for a weight file by its suffix (``.safetensors`` or ``.gguf``); None for other files."""
    if path.name.endswith(".safetensors"):
        return safetensors_problem(path)
    if path.name.endswith(".gguf"):
        return gguf_problem(path)
    return None
