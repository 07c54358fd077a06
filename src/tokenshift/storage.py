"""Where tokenshift keeps prepared assets, and how it writes folders so that none is ever half-written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def tokenshift_home() -> Path:
    """The cache folder: ``$TOKENSHIFT_HOME``, else ``$XDG_CACHE_HOME/tokenshift``, else ``~/.cache/tokenshift``."""
    explicit = os.environ.get("TOKENSHIFT_HOME")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "tokenshift"


@contextmanager
def atomic_folder(final: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``final``; on success rename it to ``final``.

    If the body raises (or the process is killed), ``final`` is untouched and the temporary folder
    (named ``.tmp-<name>-*``) is removed or left for :func:`clean_stale_temporaries`; it is never
    mistaken for a finished folder.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final} already exists; choose another output folder or pass overwrite=True")
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            # Rename the old folder aside first so that the swap is two renames, never a partial copy.
            old = Path(tempfile.mkdtemp(prefix=f".old-{final.name}-", dir=final.parent))
            old.rmdir()
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def clean_stale_temporaries(folder: Path) -> int:
    """Remove ``.tmp-*``/``.old-*`` folders left by killed runs inside ``folder``; return how many."""
    removed = 0
    if not folder.is_dir():
        return 0
    for child in folder.iterdir():
        if child.is_dir() and (child.name.startswith(".tmp-") or child.name.startswith(".old-")):
            shutil.rmtree(child, ignore_errors=True)
            removed += 1
    return removed


def write_json(path: Path, payload: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
