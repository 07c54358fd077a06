"""Spellings of bytes inside vocabularies: GPT-2's byte-to-unicode map, SentencePiece's ▁ and <0xNN>."""

from __future__ import annotations

import re
from functools import lru_cache

METASPACE = "\u2581"  # ▁, SentencePiece's visible space
_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@lru_cache(maxsize=1)
def byte_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 byte values to printable unicode characters (Ġ is space)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    shift = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + shift)
            shift += 1
    return {byte: chr(code) for byte, code in zip(printable, codes)}


@lru_cache(maxsize=1)
def unicode_to_byte() -> dict[str, int]:
    return {char: byte for byte, char in byte_to_unicode().items()}


def bytes_to_byte_level(data: bytes) -> str:
    """Spell ``data`` the way a byte-level BPE vocabulary does (b" the" -> "Ġthe")."""
    table = byte_to_unicode()
    return "".join(table[b] for b in data)


def byte_level_to_bytes(token: str) -> bytes | None:
    """Inverse of :func:`bytes_to_byte_level`; None if ``token`` has a character outside the map."""
    table = unicode_to_byte()
    try:
        return bytes(table[char] for char in token)
    except KeyError:
        return None


def metaspace_to_bytes(token: str) -> bytes:
    """Bytes of a SentencePiece-style token: ``<0xE2>`` is one raw byte, ``▁`` is a space."""
    match = _BYTE_FALLBACK.match(token)
    if match:
        return bytes([int(match.group(1), 16)])
    return token.replace(METASPACE, " ").encode("utf-8")
