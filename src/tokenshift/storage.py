"""Where tokenshift keeps prepared assets, and how it reads and writes files so that none is ever half-written.

Every folder a command writes is built as a temporary beside its final place and renamed at the end:

    OUT's parent/.tokenshift-tmp-OUT-<host>-<pid>-<8 random>/   written here, renamed to OUT when complete

The ``<host>`` and ``<pid>`` name the process that owns it: a later run on the same host removes
temporaries whose process is gone (killed, or the machine rebooted), and leaves alone those of live
processes, of other hosts (a shared file system), and every name not of this exact shape.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# .tokenshift-tmp-<name>-<host>-<pid>-<random> (and -old-): <random> is tempfile's 8 characters.
_TEMPORARY = re.compile(r"^\.tokenshift-(?:tmp|old|lock)-.+-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d{1,9})-[a-z0-9_]{8}$")
# Leave this much room beyond the estimate: metadata, a tokenizer, the file system's own blocks.
SPACE_MARGIN = 1.05


def tokenshift_home() -> Path:
    """The cache folder: ``$TOKENSHIFT_HOME``, else ``$XDG_CACHE_HOME/tokenshift``, else ``~/.cache/tokenshift``."""
    explicit = os.environ.get("TOKENSHIFT_HOME")
    if explicit:
        home = Path(explicit).expanduser()
        if not home.is_absolute():  # relative: every folder a command runs in would grow its own cache
            raise ValueError(f"TOKENSHIFT_HOME={explicit} is a relative path; set it to an absolute one (e.g. {Path.home() / '.cache/tokenshift'})")
        if home.exists() and not home.is_dir():
            raise ValueError(f"TOKENSHIFT_HOME={explicit} is a file, not a folder; point it at a folder (it is created if missing)")
        return home
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tokenshift"


def _host() -> str:
    import socket

    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"


def temporary_prefix(name: str, kind: str = "tmp") -> str:
    """The prefix of a temporary beside ``name``, owned by this process (see the module docstring)."""
    return f".tokenshift-{kind}-{name}-{_host()}-{os.getpid()}-"


def _owner_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except (OverflowError, ValueError):  # not a process id this system can have
        return True
    return True


def clean_stale_temporaries(folder: Path) -> int:
    """Remove the temporaries inside ``folder`` that this host's processes left and whose process is
    gone; return how many. Everything else is left alone."""
    removed = 0
    if not Path(folder).is_dir():
        return 0
    host = _host()
    for child in Path(folder).iterdir():
        match = _TEMPORARY.match(child.name)
        if match is None or match.group("host") != host or _owner_alive(int(match.group("pid"))):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
        removed += 1
        logger.info("removed %s, left by process %s that is gone", child, match.group("pid"))
    return removed


class OutputAppeared(RuntimeError):
    """The output folder was created by someone else during the run; the result was kept beside it."""


def _unused(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``... whichever does not exist."""
    candidate, n = path, 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def rescued_results() -> list[tuple[Path, int]]:
    """Finished results kept in the rescue folders (:func:`rescue_folders`), with their sizes in bytes."""
    found = []
    for root in _rescue_roots():
        if root.is_dir():
            for folder in sorted(root.iterdir()):
                size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else folder.stat().st_size
                found.append((folder, size))
    return found


def _temporary_folder(final: Path, kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=temporary_prefix(final.name, kind), dir=final.parent))


@contextmanager
def atomic_folder(final: Path, *, overwrite: bool = False, point: str | None = None) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``final``; on success rename it to ``final``.

    If the body raises (Ctrl-C included), ``final`` is untouched and the temporary is removed; if the
    process is killed, the temporary (``.tokenshift-tmp-<name>-<host>-<pid>-*``) is removed by the next run that writes
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
        if (final.exists() or final.is_symlink()) and not overwrite:
            # It appeared while this ran (another process, a user's mkdir): never touch what this run
            # did not make. The result goes beside it, under a name that says when.
            kept = _unused(final.with_name(f"{final.name}-{time.strftime('%Y%m%d-%H%M%S')}"))
            tmp.rename(kept)
            raise OutputAppeared(f"{final} appeared while this ran (another process or a mkdir?) and was left as it is; "
                                 f"the result is in {kept}: move it where you want it")
        if final.exists():
            # Rename the old folder aside first so that the swap is two renames, never a partial copy.
            old = _temporary_folder(final, "old")
            old.rmdir()
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except OutputAppeared:
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists():
        path = path.parent
    return path


def _live_writer(out: Path) -> int | None:
    """The pid of another live process of this host writing ``out`` (its lock or temporary beside it), or None.
    The second and later processes of a distributed launch (torchrun's ``RANK``) never write: not asked."""
    if not out.parent.is_dir() or os.environ.get("RANK", "0") not in ("", "0"):
        return None
    host = _host()
    for child in out.parent.iterdir():
        match = _TEMPORARY.match(child.name)
        if (match and child.name.startswith((f".tokenshift-tmp-{out.name}-{host}-", f".tokenshift-lock-{out.name}-{host}-"))
                and int(match.group("pid")) != os.getpid() and _owner_alive(int(match.group("pid")))):
            return int(match.group("pid"))
    return None


@contextmanager
def claim_output(out: Path) -> Iterator[None]:
    """Mark ``out`` as being written by this process for the length of the block (a lock file named
    like the temporaries beside it, removed at the end, and by the next run if this one is killed):
    a second run writing the same ``out`` meanwhile is refused by :func:`check_output_folder`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=temporary_prefix(out.name, "lock"), dir=out.parent)
    os.close(handle)
    try:
        other = _live_writer(out)
        if other is not None:
            raise FileExistsError(f"{out} is being written by another tokenshift process (pid {other}); wait for it or choose another folder")
        yield
    finally:
        Path(name).unlink(missing_ok=True)


@contextmanager
def claim_folder(folder: Path) -> Iterator[None]:
    """Hold ``folder`` (a checkpoint folder) for the length of the block: a lock file inside it, named
    like the temporaries (so a killed run's is removed by the next); another live process holding it
    is refused in one line."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(folder)
    handle, name = tempfile.mkstemp(prefix=temporary_prefix("checkpoints", "lock"), dir=folder)
    os.close(handle)
    try:
        host = _host()
        for child in folder.iterdir():
            match = _TEMPORARY.match(child.name)
            if (match and child.name.startswith(f".tokenshift-lock-checkpoints-{host}-") and int(match.group("pid")) != os.getpid()
                    and _owner_alive(int(match.group("pid")))):
                raise FileExistsError(f"{folder} is in use by another heal (pid {match.group('pid')}), which writes its checkpoints "
                                      "there; wait for it or choose another --checkpoint-dir")
        yield
    finally:
        Path(name).unlink(missing_ok=True)
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # made for this run, which left nothing in it


def check_output_folder(out: Path, *, inputs: Iterable[str | Path] = (), need_bytes: int = 0, option: str = "--out") -> None:
    """Before any work: ``out`` must not exist, must not lie inside one of the ``inputs``, and its
    nearest existing parent must be a writable folder with ``need_bytes`` free (an estimate; 0: unknown).

    Raises FileExistsError/ValueError with one line naming ``option`` and what to do."""
    out = Path(out).expanduser()
    if out.exists() or out.is_symlink():
        raise FileExistsError(f"{option} {out} already exists; choose a new folder or remove it")
    other = _live_writer(out)
    if other is not None:
        raise FileExistsError(f"{option} {out} is being written by another tokenshift process (pid {other}); wait for it or choose another folder")
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
        probe, probe_path = tempfile.mkstemp(prefix=temporary_prefix("probe"), dir=parent)
        os.close(probe)
        os.unlink(probe_path)
    except OSError as exc:
        raise ValueError(f"{option} {out}: cannot write in {parent} ({exc.strerror or exc}); choose a folder you can write to") from None
    if need_bytes:
        free = shutil.disk_usage(parent).free
        if free < need_bytes * SPACE_MARGIN:
            raise ValueError(f"{option} {out}: {parent} has {free / 1e6:,.0f} MB free, the output needs about "
                             f"{need_bytes * SPACE_MARGIN / 1e6:,.0f} MB; free some space or choose another disk")


def rescue_folders(final: Path) -> list[Path]:
    """Where a finished result goes when ``final`` cannot be written, in order of preference:
    ``$TOKENSHIFT_HOME/rescued/NAME-TIME``, else the system's temporary folder (often another disk)."""
    name = f"{Path(final).name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    return [root / name for root in _rescue_roots()]


def _rescue_roots() -> list[Path]:
    return [tokenshift_home() / "rescued", Path(tempfile.gettempdir()) / "tokenshift-rescued"]


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
        failures = []
        for kept in rescue_folders(final):
            try:
                with atomic_folder(kept) as tmp:
                    write(tmp)
            except OSError as again:
                failures.append(f"{kept.parent}: {again.strerror or again}")
                continue
            raise RuntimeError(f"could not write {final} ({exc.strerror or exc}); the finished result is kept in {kept}: "
                               f"move it where you want it (`tokenshift assets --list` lists what is kept there)") from exc
        raise RuntimeError(f"could not write {final} ({exc.strerror or exc}), nor keep the finished result elsewhere "
                           f"({'; '.join(failures)}): it is lost; free some space and run again") from exc


def write_json(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename."""
    write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def write_text(path: Path, text: str, *, overwrite: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it and a rename, so a reader
    sees the old file or the whole new one, never a part. ``overwrite=False``: raise FileExistsError
    if ``path`` appeared meanwhile (checked just before the rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(path.name), dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if not overwrite and (path.exists() or path.is_symlink()):
            raise FileExistsError(f"{path} appeared while this ran; nothing was overwritten")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_safetensors(path: Path) -> None:
    """Raise a one-line ValueError naming ``path`` when it is not a whole, consistent safetensors file:
    the header is parsed and every tensor's dtype, shape and byte range checked against the file's size
    and each other, without loading any tensor (:func:`tokenshift.weights.files.read_header`). A file cut
    short by a killed copy or download is the usual cause."""
    from .weights.files import read_header

    read_header(Path(path))


def check_safetensors_folder(folder: Path) -> None:
    """Every safetensors file in ``folder`` checked, and its index (when there is one) checked against
    them (:meth:`tokenshift.weights.files.Checkpoint.open`)."""
    from .weights.files import Checkpoint

    if any(Path(folder).glob("*.safetensors")):
        Checkpoint.open(Path(folder))
