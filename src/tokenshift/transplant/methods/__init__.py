"""Registered initialisation methods. Each computes the rows of the *composed* new tokens:

    fn(old: (V_old, D) tensor, plan: TransplantPlan, *, donor: (V_new, D2) tensor | None, **options) -> (n_composed, D)

Exact and special copies and the fallback rows are filled by the caller, identically for every method.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...registry import Registry


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable[..., Any]
    summary: str
    uses_donor: bool = False


METHODS: Registry[Method] = Registry("transplant method")


def register(name: str, summary: str, *, uses_donor: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        METHODS.add(name, Method(name, fn, summary, uses_donor))
        return fn

    return wrap


def get_method(name: str) -> Method:
    return METHODS.find(name)


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
# scaled's options for extensions, chosen on wiki-en/fr/es:validation (32,000 bytes each; SmolLM2 + 8,192
# French or Spanish merges), bits per byte en / own language (fr for the French extension, es for the Spanish):
#   length-weighted (length_power 1):  scale 0.85: 0.9042 / 2.3777, - / 2.3930;  0.92: 0.9043 / 2.3449,
#     0.9043 / 2.3427;  0.95: 0.9048 / 2.3431;  1.0: 0.9075 / 2.3708, - / 2.3605
#   plain mean (length_power 0):  0.88: 0.9042 / 2.3458, 0.9034 / 2.3291;  0.90: 0.9042 / 2.3361, 0.9035 / 2.3157;
#     0.92: 0.9044 / 2.3297, 0.9037 / 2.3060;  0.95: 0.9050 / 2.3293, 0.9043 / 2.3018;  1.0 (= subword): 0.9079 / 2.3627, 0.9071 / 2.3329
#   other piece weights at 0.92, French / Spanish extension: bytes ** -0.5  0.9054 / 2.3474, 0.9049 / 2.3180;
#     first piece x2  0.9062 / 2.3810, 0.9059 / 2.3565;  last piece x2  0.9056 / 2.3405, 0.9049 / 2.3006
#   (blend without donor 0.9067 / 2.3713, - / 2.3549; original 0.8959 / 1.9598, - / 1.9458).
# The plain mean at 0.92: the new language about as low as at 0.95 or last x2 (summed 4.6357 vs 4.6311, 4.6411)
# with English lower.
# Extensions want less shrink than replacements: their composed tokens are whole words of 2-3 pieces
# competing with an exact first piece, not a whole new vocabulary; and a word's short ending weighs
# as much as its stem.
# Superwords (tokens of several words, from a domain extension): built from their first and last piece
# only. Chosen on adapt's validation pages (bench/superword_rows.py: SmolLM2-135M, 1 MB of man-en/man-fr:train,
# zero-shot bits per byte en / fr, only the superwords' rows changed, everything else x 0.92):
#   every piece x0.92 1.2615 / 1.7911 (x0.6 1.4119, x0.7 1.3568, x0.8 1.3053, x1.0 1.2758 / -, x1.1 1.4161, x1.25 1.9032);
#   by position (1..n) x0.92 1.2516 / 1.7945, x0.85 1.2708 / 1.8198, x1.1 1.4304;  by position squared 1.2637 / 1.7983;
#   first and last piece x0.92 1.2515 / 1.7656;  last piece x0.92 1.3342 / 1.8489;  first piece x1 1.5258.
# The held-out pages (reported, not chosen on): every piece 1.1279 / 1.7554, first and last 1.1289 / 1.7367.
EXTENSION_SCALE = 0.92
EXTENSION_OPTIONS: dict[str, Any] = {"scale": EXTENSION_SCALE, "length_power": 0.0, "superword_pieces": "first+last"}


def choose_method(*, donor: bool, extension: bool) -> tuple[str, dict[str, Any], str]:
    """What ``--method auto`` runs: (method, options, why). The lowest bits per byte measured: ``blend``
    with a donor; ``scaled`` without one (for an extension the plain piece mean, shrunk less: see :data:`EXTENSION_OPTIONS`)."""
    if donor:
        return "blend", {}, "a donor is given: blend (donor-space OMP + piece mean) measured best with a donor"
    if extension:
        return "scaled", dict(EXTENSION_OPTIONS), ("the new tokenizer extends the old one (every old id kept): scaled with "
                                                   f"the plain piece mean (length_power 0) x {EXTENSION_SCALE}, a superword's from its first and last piece, "
                                                   "measured best on extensions")
    return "scaled", {}, "no donor: scaled measured best on replacement tokenizers"


from . import blend, hybrid, mean, omp, scaled, subword  # noqa: E402,F401  (registration)
