"""Where tokenshift keeps prepared assets, and how it reads and writes files so that none is ever half-written.

Every folder a command writes is built as a temporary beside its final place and renamed at the end:

    OUT's parent/.tmp-OUT-<pid>-<random>/   written here, renamed to OUT when complete

The ``<pid>`` names the process that owns it: a later run removes temporaries whose owner is gone
(killed, or the machine rebooted) and leaves those of running processes and anything else alone.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# .tmp-<name>-<pid>-<random> and .old-<name>-<pid>-<random>: <random> is tempfile's (no dashes).
_TEMPORARY = re.compile(r"^\.(?:tmp|old)-.*-(\d+)-[a-z0-9_]+$")
# Leave this much room beyond the estimate: metadata, a tokenizer, the file system's own blocks.
SPACE_MARGIN = 1.05


def tokenshift_home() -> Path:
    """The cache folder: ``$TOKENSHIFT_HOME``, else ``$XDG_CACHE_HOME/tokenshift``, else ``~/.cache/tokenshift``."""
    explicit = os.environ.get("TOKENSHIFT_HOME")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tokenshift"


def _owner_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def clean_stale_temporaries(folder: Path) -> int:
    """Remove the ``.tmp-*``/``.old-*`` folders and files inside ``folder`` whose owning process is gone;
    return how many. Temporaries of live processes, and names without an owner, are left alone."""
    removed = 0
    if not Path(folder).is_dir():
        return 0
    for child in Path(folder).iterdir():
        match = _TEMPORARY.match(child.name)
        if match is None or _owner_alive(int(match.group(1))):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        removed += 1
        logger.info("removed %s, left by process %s that is gone", child, match.group(1))
    return removed


def _temporary_folder(final: Path, kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{kind}-{final.name}-{os.getpid()}-", dir=final.parent))


@contextmanager
def atomic_folder(final: Path, *, overwrite: bool = False, point: str | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``final``; on success rename it to ``final``.

    If the body raises (Ctrl-C included), ``final`` is untouched and the temporary is removed; if the
    process is killed, the temporary (``.tmp-<name>-<pid>-*``) is removed by the next run that writes
    beside it. It is never mistaken for a finished folder.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; choose another output folder or pass overwrite=True")
    clean_stale_temporaries(final.parent)
    tmp = _temporary_folder(final, "tmp")
    try:
        yield tmp
        if point is not None:
            from .signals import kill_point

            kill_point(point)
        if final.exists():
            # Rename the old folder aside first so that the swap is two renames, never a partial copy.
            old = _temporary_folder(final, "old")
            old.rmdir()
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return path


def check_output_folder(out: Path, *, inputs: Iterable[str | Path] = (), need_bytes: int = 0, option: str = "--out") -> None:
    """Before any work: ``out`` must not exist, must not lie inside one of the ``inputs``, and its
    nearest existing parent must be a writable folder with ``need_bytes`` free (an estimate; 0: unknown).

    Raises FileExistsError/ValueError with one line naming ``option`` and what to do."""
    out = Path(out).expanduser()
    if out.exists() or out.is_symlink():
        raise FileExistsError(f"{option} {out} already exists; choose a new folder or remove it")
    resolved = Path(os.path.realpath(out))
    for source in inputs:
        source_path = Path(source).expanduser()
        if source_path.is_dir():
            inside = Path(os.path.realpath(source_path))
            if resolved == inside or inside in resolved.parents:
                raise ValueError(f"{option} {out} lies inside the input folder {source_path}; write the output beside it, not into it")
    parent = _existing_ancestor(resolved.parent)
    if not parent.is_dir():
        raise ValueError(f"{option} {out}: {parent} is a file, not a folder; choose another place")
    try:
        probe, probe_path = tempfile.mkstemp(prefix=f".tmp-probe-{os.getpid()}-", dir=parent)
        os.close(probe)
        os.unlink(probe_path)
    except OSError as exc:
        raise ValueError(f"{option} {out}: cannot write in {parent} ({exc.strerror or exc}); choose a folder you can write to") from None
    if need_bytes:
        free = shutil.disk_usage(parent).free
        if free < need_bytes * SPACE_MARGIN:
            raise ValueError(f"{option} {out}: {parent} has {free / 1e6:,.0f} MB free, the output needs about "
                             f"{need_bytes * SPACE_MARGIN / 1e6:,.0f} MB; free some space or choose another disk")


def rescue_folder(final: Path) -> Path:
    """Where a finished result goes when ``final`` cannot be written: ``$TOKENSHIFT_HOME/rescued/NAME-TIME``."""
    return tokenshift_home() / "rescued" / f"{Path(final).name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


def write_folder(final: Path, write: Callable[[Path], None], *, rescue: bool = True, point: str | None = None) -> Path:
    """Write a folder with ``write(tmp)`` through :func:`atomic_folder`; return where it went.

    A finished result is not thrown away because its place cannot take it (the disk filled up, the
    folder was removed or made read-only meanwhile): with ``rescue`` it is written to
    :func:`rescue_folder` instead, and a RuntimeError says where it is."""
    final = Path(final)
    try:
        with atomic_folder(final, point=point) as tmp:
            write(tmp)
        return final
    except OSError as exc:
        if not rescue:
            raise
        kept = rescue_folder(final)
        try:
            with atomic_folder(kept) as tmp:
                write(tmp)
        except OSError:
            raise exc from None
        raise RuntimeError(f"could not write {final} ({exc.strerror or exc}); the finished result is kept in {kept}: "
                           f"move it where you want it") from exc


def write_json(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_safetensors(path: Path) -> None:
    """Raise a one-line ValueError naming ``path`` when it is not a whole safetensors file: the header
    (an 8-byte length, then JSON) is read and the tensors' byte ranges checked against the file's size,
    without loading any tensor. A file cut short by a killed copy or download is the usual cause."""
    path = Path(path)
    fix = "write it again (rerun the command that made it, or download it again)"
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise ValueError(f"{path} is damaged: {size} bytes, too short for a safetensors header; {fix}")
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            raise ValueError(f"{path} is damaged: its header claims {length:,} bytes but the file has {size:,}; it was cut short; {fix}")
        try:
            header = json.loads(handle.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError(f"{path} is damaged: its header is not JSON; not a safetensors file, or overwritten; {fix}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is damaged: its header is not a table of tensors; {fix}")
    ends = [entry["data_offsets"][1] for name, entry in header.items()
            if name != "__metadata__" and isinstance(entry, dict) and len(entry.get("data_offsets", ())) == 2]
    expected = 8 + length + max(ends, default=0)
    if expected > size:
        raise ValueError(f"{path} is damaged: its tensors need {expected:,} bytes but the file has {size:,}; it was cut short; {fix}")


def check_safetensors_folder(folder: Path) -> None:
    """:func:`check_safetensors` on every ``*.safetensors`` file in ``folder``."""
    for path in sorted(Path(folder).glob("*.safetensors")):
        check_safetensors(path)
