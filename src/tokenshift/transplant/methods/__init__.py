"""Registered initialisation methods. Each computes the rows of the *composed* new tokens:

    fn(old: (V_old, D) tensor, plan: TransplantPlan, *, donor: (V_new, D2) tensor | None, **options) -> (n_composed, D)

Exact and special copies and the fallback rows are filled by the caller, identically for every method.
"""

from __future__ import annotations

import inspect
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


def check_options(name: str, options: dict[str, Any]) -> None:
    """Raise one ValueError naming every option ``name``'s function does not take, or takes as another
    type (a number given as text), before anything is loaded."""
    method = get_method(name)
    params = {n: p for n, p in inspect.signature(method.fn).parameters.items()
              if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "donor"}
    problems = []
    for key, value in options.items():
        if key not in params:
            problems.append(f"no option {key!r}")
            continue
        default = params[key].default
        numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
        if numeric and (isinstance(value, bool) or not isinstance(value, (int, float))):
            problems.append(f"option {key!r} must be a number like {default!r}, got {value!r}")
        elif isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float) and not value.is_integer():
            problems.append(f"option {key!r} must be a whole number like {default!r}, got {value!r}")
    if problems:
        listed = ", ".join(f"{n}={p.default!r}" for n, p in params.items()) or "none"
        raise ValueError(f"transplant method {name!r}: {'; '.join(problems)} (its options: {listed})")


AUTO = "auto"
# scaled's shrink for extensions, chosen on wiki-en/fr/es:validation (32,000 bytes each; SmolLM2 + 8,192
# French or Spanish merges), bits per byte en / fr / es:  0.85: 0.9042 / 2.3777 / 2.3930;
# 0.92: 0.9043 / 2.3449 / 2.3427;  0.95: 0.9048 / 2.3431 / -;  1.0: 0.9075 / 2.3708 / 2.3605
# (subword 0.9079 / 2.3627 / 2.3329, blend without donor 0.9067 / 2.3713 / 2.3549; original 0.8959 / 1.9598 / 1.9458).
# Extensions want less shrink than replacements: their composed tokens are whole words of 2-3 pieces
# competing with an exact first piece, not a whole new vocabulary.
EXTENSION_SCALE = 0.92


def choose_method(*, donor: bool, extension: bool) -> tuple[str, dict[str, Any], str]:
    """What ``--method auto`` runs: (method, options, why). The lowest bits per byte measured: ``blend``
    with a donor; ``scaled`` without one (shrunk less for an extension, see :data:`EXTENSION_SCALE`)."""
    if donor:
        return "blend", {}, "a donor is given: blend (donor-space OMP + piece mean) measured best with a donor"
    if extension:
        return "scaled", {"scale": EXTENSION_SCALE}, ("the new tokenizer extends the old one (every old id kept): "
                                                      f"scaled with scale {EXTENSION_SCALE}, measured best on extensions")
    return "scaled", {}, "no donor: scaled measured best on replacement tokenizers"


from . import blend, hybrid, mean, omp, scaled, subword  # noqa: E402,F401  (registration)
