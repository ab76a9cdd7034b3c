"""Byte-level mutations of seed files, as hypothesis strategies (they shrink like any data)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hypothesis import strategies as st

Edit = tuple[str, int, bytes]
"""``(operation, position, bytes)``; the position is taken modulo the data's length."""


def _truncate(data: bytearray, at: int, _: bytes) -> bytearray:
    return data[:at]


def _flip(data: bytearray, at: int, value: bytes) -> bytearray:
    data[at: at + len(value)] = value
    return data


def _insert(data: bytearray, at: int, value: bytes) -> bytearray:
    data[at:at] = value
    return data


def _delete(data: bytearray, at: int, value: bytes) -> bytearray:
    del data[at: at + len(value) * 8]
    return data


def _repeat(data: bytearray, at: int, value: bytes) -> bytearray:
    chunk = data[at: at + len(value) * 16]
    data[at:at] = chunk * (1 + value[0] % 4)
    return data


OPERATIONS: Mapping[str, Callable[[bytearray, int, bytes], bytearray]] = {
    "truncate": _truncate, "flip": _flip, "insert": _insert, "delete": _delete,
    "repeat": _repeat,
}


def edits(max_edits: int = 4) -> st.SearchStrategy[list[Edit]]:
    one = st.tuples(st.sampled_from(sorted(OPERATIONS)), st.integers(0, 1 << 20),
                    st.binary(min_size=1, max_size=16))
    return st.lists(one, max_size=max_edits)


def apply(data: bytes, changes: list[Edit]) -> bytes:
    """``data`` with every edit applied in order."""
    out = bytearray(data)
    for name, position, value in changes:
        out = OPERATIONS[name](out, position % (len(out) + 1), value)
    return bytes(out)


@st.composite
def mutated(draw: st.DrawFn, seeds: Mapping[str, bytes]) -> tuple[str, bytes]:
    """A seed (by name) after zero to four edits."""
    name = draw(st.sampled_from(sorted(seeds)))
    return name, apply(seeds[name], draw(edits()))
