"""What a name on the command line points to — an asset, a local path, or a Hugging Face id — answered
offline and at once.

A mistyped name (``smolm2``) is not sent to the hub, where it would spend most of a minute in retries
before failing: only names shaped like a hub id (``OWNER/NAME``) are, and only after a connection to
the hub has answered within :data:`HUB_TIMEOUT` seconds (or the id is in the local cache).
Everything else that is neither an asset nor an existing path gets a "did you mean" over the assets
and the entries of the folder it would be in.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
HUB_TIMEOUT = 3.0
_FILE_SUFFIXES = (".json", ".gguf", ".tiktoken", ".gz", ".safetensors", ".txt", ".jsonl")


def looks_like_path(text: str) -> bool:
    """Written as a path: starts with ``.``, ``/`` or ``~``, has more than one ``/``, or a file suffix."""
    return text.startswith((".", "/", "~")) or text.count("/") > 1 or text.endswith(_FILE_SUFFIXES)


def looks_like_hub_id(text: str) -> bool:
    """``OWNER/NAME`` and not an existing local path."""
    return bool(HUB_ID.match(text)) and not looks_like_path(text) and not Path(text).exists()


def _asset_names(kinds: tuple[str, ...]) -> list[str]:
    from .assets.registry import ASSETS

    return [name for name, asset in ASSETS.items() if asset.kind in kinds]


def close_names(text: str, kinds: tuple[str, ...]) -> list[str]:
    """Assets of ``kinds`` and entries of the folder ``text`` would be in, that look like ``text``."""
    path = Path(text).expanduser()
    folder = path.parent if str(path.parent) not in ("", ".") else Path(".")
    local: list[str] = []
    if folder.is_dir():
        try:
            entries = [entry.name for entry in folder.iterdir() if not entry.name.startswith(".")][:2000]
        except OSError:
            entries = []
        prefix = "" if folder == Path(".") else f"{folder}{os.sep}"
        local = [prefix + name for name in difflib.get_close_matches(path.name, entries, n=2, cutoff=0.7)]
    return difflib.get_close_matches(text, _asset_names(kinds), n=3, cutoff=0.6) + local


def in_hub_cache(text: str, filenames: tuple[str, ...]) -> bool:
    """Whether the local Hugging Face cache holds one of ``filenames`` of repository ``text`` (also the
    owner-less ids of the oldest models, such as ``gpt2`` or ``bert-base-uncased``)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return any(isinstance(try_to_load_from_cache(text, name), str) for name in filenames)
    except ValueError:  # not a valid repository id
        return False


def unknown_name(text: str, *, what: str, kinds: tuple[str, ...]) -> FileNotFoundError:
    """The error for a name that is not an asset, not an existing path and not a hub id."""
    close = close_names(text, kinds)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    shape = "no such file or folder" if looks_like_path(text) else "not an asset, a local path, or a Hugging Face id (OWNER/NAME)"
    return FileNotFoundError(f"{what} {text!r}: {shape}; {hint}{what} assets: {', '.join(_asset_names(kinds))}")


def check_hub_id(text: str, *, what: str, filenames: tuple[str, ...] = ("config.json",)) -> None:
    """Fail in one line, within :data:`HUB_TIMEOUT` seconds, when hub id ``text`` cannot be fetched:
    it is not in the local Hugging Face cache and the hub is offline (``HF_HUB_OFFLINE``) or does not
    answer."""
    from urllib.parse import urlparse

    from huggingface_hub.utils import get_session

    if in_hub_cache(text, filenames):
        return
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ValueError(f"{what} {text!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; "
                         "use an asset or a local folder, or unset HF_HUB_OFFLINE")
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    host = urlparse(endpoint).hostname or endpoint
    try:  # through huggingface_hub's own session, so that proxies it would use are used; any answer will do
        get_session().head(endpoint, timeout=HUB_TIMEOUT)  # httpx (huggingface_hub >= 1) does not follow redirects by default
    except Exception as exc:  # noqa: BLE001  (requests or httpx, whichever huggingface_hub uses)
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        raise ValueError(f"{what} {text!r} is not in the local Hugging Face cache and {host} cannot be reached ({reason}); "
                         "use an asset or a local folder (tokenshift assets --list), or connect to the network") from None
