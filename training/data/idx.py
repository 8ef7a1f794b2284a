"""Reader for the IDX format of the MNIST files (yann.lecun.com/exdb/mnist), raw or gzip-compressed.

Layout: two zero bytes, a type code, the number of dimensions n, then n big-endian uint32 sizes, then the
values in row-major order, big-endian.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np

_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an IDX file; ``.gz`` files are decompressed. Errors name the file and the fault."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:  # gzip raises these for a corrupt or truncated stream
        raise ValueError(f"{path}: cannot read it as an IDX file: {err}") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: expected an IDX header starting with two zero bytes, got {data[:4]!r}")
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        known = ", ".join(f"0x{c:02X}" for c in _TYPES)
        raise ValueError(f"{path}: IDX type code: expected one of {known}, got 0x{code:02X}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: IDX header: expected {ndim} dimension sizes, the file ends first")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        raise ValueError(f"{path}: IDX data: expected {expected} bytes for shape {shape}, got {found}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
