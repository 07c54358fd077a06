"""How much memory a run needs, how much the machine has, and which dtype to load weights in.

Measured here (random Llama-3.2-1B shape, 2.47 GB of bf16, transformers 5.23 on the CPU): loading in
the stored dtype maps the file and copies nothing (0.36 GB resident after loading, the pages arrive as
the forward pass reads them: 1.0x the file at most); loading bf16 as float32 peaks at 7.6 GB, the
float32 copy (4.9 GB) plus the mapped file it is converted from (2.5 GB). So a float32 load needs
``4 x parameters + stored bytes``, a stored-dtype load ``stored bytes``.

The machine's memory is ``MemAvailable`` (``/proc/meminfo``), lowered to what a cgroup limit leaves;
``TOKENSHIFT_MEMORY_BYTES`` overrides it (tests, or a user who wants to keep room for other work).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

GB = 1e9
# Room left beyond an estimate: the interpreter and libraries (~0.6 GB measured), allocator slack,
# the other processes of a desktop.
RESERVE_BYTES = int(1.5 * GB)
RESERVE_SHARE = 0.08
MEMORY_VARIABLE = "TOKENSHIFT_MEMORY_BYTES"


def parse_bytes(text: str) -> int:
    """``"24GB"``, ``"512MB"``, ``"2.5e10"`` or ``"1000"`` as bytes (powers of 1000; ``GiB`` etc. of 1024)."""
    match = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kmgt]i?b?)?\s*", text.lower())
    if match is None:
        raise ValueError(f"{MEMORY_VARIABLE}={text!r}: give bytes, e.g. 24GB, 16GiB or 2.4e10")
    number = float(match.group(1))
    unit = match.group(2) or ""
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[unit[:1]]
    if "i" in unit:
        scale = {"k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[unit[:1]]
    return int(number * scale)


def _cgroup_room() -> int | None:
    """What the cgroup (v2 or v1) limit leaves for this process's group, or None without a limit."""
    for limit_path, used_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                  ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_path).read_text().strip()
            used = int(Path(used_path).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            return max(0, int(limit) - used)
    return None


def available_bytes() -> int:
    """Memory this process can still take (see the module docstring)."""
    override = os.environ.get(MEMORY_VARIABLE)
    if override:
        return parse_bytes(override)
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    if available is None:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            return 2**62  # unknown: no guard
    room = _cgroup_room()
    return min(available, room) if room is not None else available


def reserve(need: int) -> int:
    """The margin kept beyond an estimate of ``need`` bytes."""
    return RESERVE_BYTES + int(RESERVE_SHARE * need)


@dataclass(frozen=True)
class MemoryEstimate:
    """What a run needs, part by part (bytes), against what is available."""

    what: str
    parts: dict[str, int] = field(default_factory=dict)
    available: int = 0

    @property
    def need(self) -> int:
        return sum(self.parts.values())

    @property
    def with_margin(self) -> int:
        return self.need + reserve(self.need)

    @property
    def fits(self) -> bool:
        return self.with_margin <= self.available

    def describe(self) -> str:
        parts = ", ".join(f"{name} {size / GB:.1f} GB" for name, size in self.parts.items() if size)
        return f"about {self.need / GB:.1f} GB ({parts})"


class NotEnoughMemory(ValueError):
    """A run that would not fit in memory, refused before it starts (one line: need, have, the option that fits)."""


def check_memory(estimate: MemoryEstimate, *, fix: str) -> None:
    """Raise :class:`NotEnoughMemory` when ``estimate`` does not fit; ``fix``: what to do instead."""
    if estimate.fits:
        return
    raise NotEnoughMemory(f"{estimate.what} needs {estimate.describe()} plus {reserve(estimate.need) / GB:.1f} GB of margin, "
                          f"but {estimate.available / GB:.1f} GB are available; {fix}")


def load_bytes(parameters: int, stored_bytes: int, stored_dtype: str, dtype: str) -> int:
    """Peak bytes of loading weights stored as ``stored_dtype`` (``stored_bytes`` on disk) in ``dtype``."""
    if dtype == stored_dtype:
        return stored_bytes
    return parameters * _itemsize(dtype) + stored_bytes  # the converted copy, and the mapped file it is made from


def _itemsize(dtype: str) -> int:
    return {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}.get(dtype, 4)


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str
    reason: str


def choose_cpu_dtype(parameters: int, stored_bytes: int, stored_dtype: str, *, extra: int = 0,
                     available: int | None = None) -> DtypeChoice:
    """``--dtype auto`` on a CPU: float32 where loading it (plus ``extra`` bytes the run needs besides the
    weights) fits in the available memory with the margin; else the stored dtype, which loads without a
    copy. float32 is the precision every quality number here was measured in."""
    available = available_bytes() if available is None else available
    if stored_dtype not in ("bfloat16", "float16"):
        return DtypeChoice("float32", f"stored as {stored_dtype}")
    need = load_bytes(parameters, stored_bytes, stored_dtype, "float32") + extra
    if need + reserve(need) <= available:
        return DtypeChoice("float32", f"float32 ({need / GB:.1f} GB with the stored copy it is converted from) fits in "
                                      f"{available / GB:.1f} GB available")
    return DtypeChoice(stored_dtype, f"float32 would need {need / GB:.1f} GB (plus {reserve(need) / GB:.1f} GB of margin) and "
                                     f"{available / GB:.1f} GB are available: loading the stored {stored_dtype}, without a copy; "
                                     "pass --dtype float32 to insist")
