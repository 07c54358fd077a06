"""Registered initialisation methods. Each computes the rows of the *composed* new tokens:

    fn(old: (V_old, D) tensor, plan: TransplantPlan, *, donor: (V_new, D2) tensor | None, **options) -> (n_composed, D)

Exact and special copies and the fallback rows are filled by the caller, identically for every method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...registry import lookup


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[..., Any]
    summary: str
    uses_donor: bool = False


METHODS: dict[str, Method] = {}


def register(name: str, summary: str, *, uses_donor: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        METHODS[name] = Method(name, fn, summary, uses_donor)
        return fn

    return wrap


def get_method(name: str) -> Method:
    return lookup(METHODS, name, what="transplant method")


from . import blend, hybrid, mean, omp, scaled, subword  # noqa: E402,F401  (registration)
