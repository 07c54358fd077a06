"""Choosing ``tokenizer.ggml.pre``: the llama.cpp name whose pre-tokenization equals the tokenizer's own.

llama.cpp does not run a tokenizer's ``pre_tokenizer``; it runs the regexes it keeps for the name in
``tokenizer.ggml.pre`` (see :mod:`tokenshift.tokenizer.pretokenizers`). A wrong name silently changes
how text is cut (digits in threes instead of alone, say), so every candidate is checked on the fixed
probe texts (``PROBE_TEXTS``) and only a name that cuts all of them as the tokenizer does is written:

    the name the source declared, if it matches  >  the first matching name  >  refuse (closest name, where it differs)

``pre=NAME`` (``--pre``) forces a name; the result then carries a warning if it differs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..tokenizer import Tokenizer
from ..tokenizer.pretokenizers import (
    PRE_TOKENIZATIONS,
    PROBE_TEXTS,
    get_pre_tokenization,
    matching_names,
    pretokenization_differences,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreChoice:
    """The ``tokenizer.ggml.pre`` to write, why, every matching name, and warnings for the report."""

    name: str
    reason: str
    matches: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def describe_difference(name: str, difference: tuple[str, list[str], list[str]]) -> str:
    """One clause saying where llama.cpp's ``name`` cuts a probe text differently from the tokenizer."""
    text, got, want = difference
    start = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    shown = text if len(text) <= 60 else text[:57] + "..."
    return f"on {shown!r} the tokenizer cuts {got[start:start + 4]} where {name} cuts {want[start:start + 4]}"


def _byte_level_names() -> list[str]:
    return [name for name, entry in PRE_TOKENIZATIONS.items() if entry.name == name and entry.byte_level]


def check_pre_name(name: str) -> None:
    """Raise a one-line ValueError unless ``name`` is a byte-level llama.cpp name (unknown: with "did you mean")."""
    if not get_pre_tokenization(name).byte_level:
        raise ValueError(f"--pre {name}: not a byte-level BPE pre-tokenization; tokenshift exports byte-level "
                         "vocabularies (tokenizer.ggml.model = gpt2) only")


def closest_name(tokenizer: Tokenizer) -> tuple[str, list[tuple[str, list[str], list[str]]]]:
    """The registered byte-level name that cuts the fewest probe texts differently, and those differences."""
    scored = [(name, pretokenization_differences(tokenizer, name)) for name in _byte_level_names()]
    return min(scored, key=lambda item: len(item[1]))  # min keeps registry order among ties


def choose_pre(tokenizer: Tokenizer, *, declared: str | None = None, forced: str | None = None) -> PreChoice:
    """Pick ``tokenizer.ggml.pre`` for ``tokenizer`` (see the module docstring).

    ``declared``: the name the source GGUF or asset recorded, preferred when it matches.
    ``forced``: write this name whatever the check says (a warning says where it differs).
    Raises a one-line ValueError when nothing matches and nothing is forced.
    """
    if forced is not None:
        check_pre_name(forced)
        differences = pretokenization_differences(tokenizer, forced)
        notes: tuple[str, ...] = ()
        if differences:
            notes = (f"--pre {forced} forced although llama.cpp will cut {len(differences)} of {len(PROBE_TEXTS)} probe "
                        f"texts differently from the tokenizer: {describe_difference(forced, differences[0])}",)
            logger.warning(notes[0])
        return PreChoice(forced, "forced (--pre)", tuple(matching_names(tokenizer)), notes)
    matches = tuple(matching_names(tokenizer))
    warnings: list[str] = []
    if declared:
        canonical = PRE_TOKENIZATIONS[declared].name if declared in PRE_TOKENIZATIONS else None
        if canonical in matches:
            return PreChoice(declared, "declared by the source, and it matches", matches)
        if canonical is not None and matches:
            warnings.append(f"the source declared tokenizer.ggml.pre {declared!r}, but it cuts text differently from the "
                            f"tokenizer ({describe_difference(declared, pretokenization_differences(tokenizer, declared)[0])}); "
                            f"wrote {matches[0]!r}, which matches")
            logger.warning(warnings[-1])
    if matches:
        return PreChoice(matches[0], "the first llama.cpp name that matches", matches, tuple(warnings))
    name, differences = closest_name(tokenizer)
    detail = describe_difference(name, differences[0]) if differences else "the tokenizer changes the text (a prefix space or ▁)"
    raise ValueError(f"the tokenizer's pre-tokenization matches none of llama.cpp's names (tokenizer.ggml.pre); the closest, "
                     f"{name!r}, differs on {len(differences)} of {len(PROBE_TEXTS)} probe texts: {detail}; llama.cpp would "
                     "tokenize such text differently: pass --pre NAME to write a name anyway")


def declared_pre(location: str | Path) -> str | None:
    """The ``tokenizer.ggml.pre`` recorded for a model folder, if any: the ``gguf_pre`` of its asset.json,
    else of the tokenizer asset built from the same GGUF (a model asset), else of the tokenizer asset a
    ``tokenshift transplant`` put on it (transplant.json)."""
    from ..assets.registry import ASSETS, asset_info

    folder = Path(location)

    def read(name: str) -> dict[str, Any]:
        path = folder / name
        try:
            return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError):
            return {}

    def tokenizer_assets() -> list[dict[str, Any]]:
        return [info for name, asset in ASSETS.items() if asset.kind == "tokenizer" and (info := asset_info(name))]

    info = read("asset.json")
    if info.get("gguf_pre"):
        return str(info["gguf_pre"])
    if info.get("source_gguf"):
        for other in tokenizer_assets():
            if other.get("source_gguf") == info["source_gguf"] and other.get("gguf_pre"):
                return str(other["gguf_pre"])
    moved = read("transplant.json").get("tokenizer")
    if moved in ASSETS and (other := asset_info(moved)) and other.get("gguf_pre"):
        return str(other["gguf_pre"])
    return None
