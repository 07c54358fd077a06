"""Documents from what users hold: a manual exported as one big .txt is many documents, not one.

Held-out evaluation and the adaptation split work by document, so a single long text is cut into
documents of about :data:`DOCUMENT_BYTES` first: at blank lines (paragraphs, and the headings above
them), else at line ends, else at spaces; never inside a word. Documents already shorter than twice
that are kept whole.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

DOCUMENT_BYTES = 4096
_CUTS = (re.compile(r"\n[ \t]*\n+"), re.compile(r"\n"), re.compile(r" +"))


def split_long(document: str, target_bytes: int = DOCUMENT_BYTES) -> list[str]:
    """``document`` cut into parts of about ``target_bytes`` (at least that much, except the last) at
    the coarsest boundary that exists: blank lines, then line ends, then spaces; the parts joined
    give the document back."""
    if len(document.encode("utf-8")) < 2 * target_bytes:
        return [document]
    for cut in _CUTS:
        ends = [match.end() for match in cut.finditer(document)]
        if len(ends) < 2:
            continue
        parts, start, size = [], 0, 0
        for end in ends:
            size = len(document[start:end].encode("utf-8"))
            if size >= target_bytes:
                parts.append(document[start:end])
                start = end
        tail = document[start:]
        if parts and len(tail.encode("utf-8")) < target_bytes // 2:
            parts[-1] += tail  # a short tail joins the part before it
        elif tail:
            parts.append(tail)
        if len(parts) > 1:
            return parts
    return [document]


def as_documents(documents: Iterable[str], target_bytes: int = DOCUMENT_BYTES) -> list[str]:
    """Every document of at least twice ``target_bytes`` cut by :func:`split_long`; the others as they are."""
    return [part for document in documents for part in split_long(document, target_bytes)]


def document_share(document: str, salt: str) -> float:
    """Where a document falls in [0, 1) by a hash of its text and ``salt``: the same text always lands
    in the same place, and two splits with different salts are independent."""
    digest = hashlib.blake2b(document.encode("utf-8"), digest_size=8, person=salt.encode()[:16]).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_documents(documents: Iterable[str], share: float, *, salt: str) -> tuple[list[str], list[str]]:
    """(kept, held out): a document is held out when :func:`document_share` falls below ``share``; so
    no document is ever on both sides, and identical documents all fall on the same side."""
    kept: list[str] = []
    held: list[str] = []
    for document in documents:
        (held if document_share(document, salt) < share else kept).append(document)
    return kept, held


def spread_sample(documents: list[str], max_bytes: int, block_bytes: int = 2048) -> list[str]:
    """About ``max_bytes`` of ``documents``, drawn evenly across all of them: every document cut into
    blocks of about ``block_bytes`` (:func:`split_long`), then every k-th block in order. The leading
    documents alone can be unlike the rest (one page of code among prose); a sample spread over every
    document gives tokens per byte and bits per byte close to those of the whole set. All documents
    when they hold no more than ``max_bytes``."""
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive number of bytes, got {max_bytes}")
    total = sum(len(document.encode("utf-8")) for document in documents)
    if total <= max_bytes:
        return list(documents)
    blocks = as_documents(documents, block_bytes)
    step = max(1, round(total / max_bytes))
    return blocks[::step]
