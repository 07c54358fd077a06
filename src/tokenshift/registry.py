"""Name → entry registries (transplant methods, heal stages, recipes, phases and distances, tokenizer
trainers, byte-level mixes, assets, ...): one class, so every table refuses a duplicate name and every
unknown name gets the same "did you mean" error, and CLI choices come from the table itself."""

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


class Registry(dict[str, T]):
    """A dict of named entries of one kind. ``add`` refuses a name already taken (two methods
    registered under one name would otherwise leave whichever was imported last); ``find`` is
    :func:`lookup` with this registry's ``what`` ("transplant method")."""

    def __init__(self, what: str, entries: Mapping[str, T] | None = None) -> None:
        super().__init__()
        self.what = what
        for name, entry in (entries or {}).items():
            self.add(name, entry)

    def add(self, name: str, entry: T) -> T:
        if name in self:
            raise ValueError(f"{self.what} {name!r} is registered twice; give one of them another name")
        self[name] = entry
        return entry

    def find(self, name: str) -> T:
        if name not in self:
            raise self.unknown(name)
        return self[name]

    def unknown(self, name: str) -> ValueError:
        """The error for a name this registry lacks: close matches, then every name."""
        try:
            lookup(self, name, what=self.what)
        except ValueError as error:
            return error
        raise ValueError(f"{self.what} {name!r} is registered")

    def names(self) -> list[str]:
        return list(self)
