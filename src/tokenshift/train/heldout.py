"""A validation slice held out from the training text, for choices that must hold on unseen text.

Documents are cut into blocks of about :data:`BLOCK_CHARS` characters (a short document is one
block), and a block is held out when a hash of its text falls in the first ``share`` of the hash
range, until :data:`MAX_BYTES` are held out. The rule depends only on the text, so the same corpus
always gives the same slice, and identical blocks (boilerplate) all fall on the same side.

A block ends right after a newline that is followed by a non-space character, and nowhere else:
every pretokenization rule here (:mod:`.pretokenize`) has a pretoken boundary there, so training on
the blocks learns exactly what training on the whole documents would, minus the held-out blocks.

    "para one ...\\n  indented ...\\npara two ...\\n..."   ->   "para one ...\\n  indented ...\\n" | "para two ...\\n..."
                    (no cut: a space follows the newline)          (cut once the block is long enough)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

DEFAULT_SHARE = 0.05  # of the blocks, by hash
MAX_BYTES = 1_000_000  # enough to resolve 0.1% differences in token counts; measuring more costs time
BLOCK_CHARS = 8192
_CUT = re.compile(r"\n(?=\S)")


@dataclass
class HeldOut:
    """The held-out blocks (filled as the training iterator is consumed). ``bytes``: UTF-8 bytes;
    ``sources[i]``: which text block i came from (what ``hold_out``'s ``source`` said; 0 without it)."""

    share: float
    documents: list[str] = field(default_factory=list)
    bytes: int = 0
    sources: list[int] = field(default_factory=list)


def blocks(document: str, block_chars: int = BLOCK_CHARS) -> Iterator[str]:
    """``document`` cut into blocks of at least ``block_chars`` characters (the last may be shorter),
    only right after a newline followed by a non-space character."""
    if len(document) <= block_chars:
        yield document
        return
    start = 0
    for match in _CUT.finditer(document, block_chars):
        if match.end() - start >= block_chars:
            yield document[start : match.end()]
            start = match.end()
    if start < len(document):
        yield document[start:]


def _in_slice(block: str, share: float) -> bool:
    digest = hashlib.blake2b(block.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


def hold_out(documents: Iterable[str], *, share: float = DEFAULT_SHARE, max_bytes: int = MAX_BYTES,
             block_chars: int = BLOCK_CHARS, source: Callable[[], int] | None = None) -> tuple[Iterator[str], HeldOut]:
    """(training blocks, held-out slice): iterating the first fills the second. ``source()``, asked as
    each held-out block is taken, says which text it belongs to (the reader's current text)."""
    if not 0 < share < 0.5:
        raise ValueError(f"the held-out share must lie between 0 and 0.5 (0.05 holds out 5% of the text), got {share}")
    held = HeldOut(share)

    def training() -> Iterator[str]:
        for document in documents:
            for block in blocks(document, block_chars):
                if held.bytes < max_bytes and _in_slice(block, share):
                    held.documents.append(block)
                    held.sources.append(source() if source is not None else 0)
                    held.bytes += len(block.encode("utf-8"))
                else:
                    yield block

    return training(), held
