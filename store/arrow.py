"""numpy ↔ Arrow for the ingest's and the publisher's columns, without pyarrow's converters.

`pa.array(...)` and `Array.to_numpy()` import pandas on their first call when it is installed
(great-expectations needs it): ~0.3 s of every replay (the import also holds the GIL, stalling
the other threads), for columns that need no pandas. These build the same arrays from the
buffers: numbers share memory, booleans are packed into Arrow's bitmap.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def to_arrow(values: np.ndarray) -> pa.Array:
    """A numpy bool or integer array as an Arrow bool or int64 array."""
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def int64s(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow int64 column without nulls as a numpy array (one copy if it has several chunks)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for ch in chunks:
        if ch.type != pa.int64() or ch.null_count:
            raise TypeError(f"int64s: an int64 column without nulls, not {ch.type} with {ch.null_count} nulls")
        if len(ch):
            parts.append(np.frombuffer(ch.buffers()[1], dtype=np.int64)[ch.offset:ch.offset + len(ch)])
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def empty_table(schema: pa.Schema) -> pa.Table:
    """`schema.empty_table()` (the same Parquet bytes), without pandas."""
    return pa.Table.from_batches([], schema=schema)
