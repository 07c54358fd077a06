"""Lookup in a name → entry registry, with a "did you mean" error for unknown names."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup(table: Mapping[str, T], name: str, *, what: str) -> T:
    """``table[name]``, or a ValueError naming the close matches and every available name."""
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=2)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise ValueError(f"unknown {what} {name!r}; {hint}available: {', '.join(table)}")
    return table[name]
