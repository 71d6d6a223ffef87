"""Array aliases and vectorised helpers the simulator shares.

The simulator never builds a Python object per span: everything is a numpy array indexed by
span, and strings are produced by Arrow kernels (`take`, element-wise joins) at the end.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
U64Array = npt.NDArray[np.uint64]

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def mix64(values: U64Array) -> U64Array:
    """SplitMix64 finaliser: a bijection on 64-bit integers.

    Distinct inputs give distinct outputs, so ids derived from span indices are unique
    without a collision check, yet look random like real trace and span ids.
    """
    z = values + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hex_ids(values: U64Array, *, words: int = 1) -> pa.Array:
    """Lower-case hex strings of `words` 64-bit words per id, built without a Python loop.

    `values` has shape (n,) for 16-character ids or (n, words) for longer ones. The
    array uses 32-bit offsets, which holds some 67 million 32-character ids.
    """
    matrix = values.reshape(len(values), words).astype(">u8")
    raw = matrix.view(np.uint8).reshape(len(values), 8 * words)
    chars = np.empty((len(values), 16 * words), dtype=np.uint8)
    chars[:, 0::2] = _HEX_DIGITS[raw >> 4]
    chars[:, 1::2] = _HEX_DIGITS[raw & 15]
    width = 16 * words
    offsets = np.arange(0, width * len(values) + 1, width, dtype=np.int32)
    return pa.StringArray.from_buffers(
        len(values), pa.py_buffer(offsets.tobytes()), pa.py_buffer(chars.tobytes())
    )


def take_strings(names: list[str] | tuple[str, ...], index: IntArray) -> pa.Array:
    """The strings `names[index]` as an Arrow string array (one vectorised `take`)."""
    return pa.array(list(names), type=pa.string()).take(pa.array(index, type=pa.int64()))


def join_strings(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of equally long string arrays; a str repeats."""
    return pc.binary_join_element_wise(*parts, "")


def int_strings(values: IntArray) -> pa.Array:
    """Decimal text of integers, vectorised."""
    return pc.cast(pa.array(values, type=pa.int64()), pa.string())


def group_first(sorted_keys: IntArray) -> IntArray:
    """For keys sorted ascending, the index of the first row of each row's group."""
    return np.searchsorted(sorted_keys, sorted_keys, side="left").astype(np.int64)
