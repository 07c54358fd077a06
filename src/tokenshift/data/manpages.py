"""The ``man-en``/``man-fr``/``man-es``/``man-de``/``man-it`` text assets: Linux manual pages from Debian.

Text of another domain than Wikipedia, for checking that a tokenizer trained on one corpus holds up
on text it was not trained on. English: Debian's ``manpages`` and ``manpages-dev`` (the Linux
man-pages project, 6.03); other languages: ``manpages-XX`` and ``manpages-XX-dev`` (the
manpages-l10n translations, 4.18.1: the same project's pages and those of other GNU/Linux tools).
The packages are fetched with ``apt-get download`` at pinned versions (Debian 12), unpacked with
``dpkg-deb`` and rendered to plain UTF-8 text by groff as ``man`` would show them, without wrapping
or hyphenation (one paragraph a line; the title and footer lines dropped). Unwrapped, tables stretch
to the 4,000-column line: padding inside a line (3 or more spaces after text) is cut to 2 spaces and
rules of box-drawing characters to 8; the page layout's indentation is dropped (every line is
stripped), as it would be in text copied out of a manual. ``.so`` stubs and links (aliases of another page) are skipped.

Split rule (by page, fixed): the first 8 hex digits of SHA-256 of the page's file name
(``open.2``), read as an integer, modulo 100: 0-79 train, 80-89 validation, 90-99 test. A page is
one document; pages keep the order of their sorted file names within a split.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .wiki import write_splits

logger = logging.getLogger(__name__)

DEBIAN_VERSIONS = {"en": "6.03-2", "l10n": "4.18.1-1"}
LANGUAGES = ("en", "fr", "es", "de", "it")
_PADDING = re.compile(r"(?<=\S) {3,}")
_RULE = re.compile(r"([\u2500-\u257f])\1{8,}")
GROFF = ["groff", "-k", "-t", "-man", "-Tutf8", "-rLL=4000n", "-rHY=0", "-P-cbou"]


def debian_packages(language: str) -> list[str]:
    """``name=version`` of the Debian packages holding the pages of ``language``."""
    if language not in LANGUAGES:
        raise ValueError(f"no manual-page text for language {language!r}; choose one of {', '.join(LANGUAGES)}")
    if language == "en":
        return [f"manpages={DEBIAN_VERSIONS['en']}", f"manpages-dev={DEBIAN_VERSIONS['en']}"]
    return [f"manpages-{language}={DEBIAN_VERSIONS['l10n']}", f"manpages-{language}-dev={DEBIAN_VERSIONS['l10n']}"]


def split_of(page: str) -> str:
    bucket = int(hashlib.sha256(page.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if bucket < 80 else "validation" if bucket < 90 else "test"


def require_tools(tools: tuple[str, ...], what: str) -> None:
    """Refuse in one line when a Debian tool ``what`` needs is missing."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        hint = " with `apt-get install groff-base`" if "groff" in missing else ""
        raise FileNotFoundError(f"{what} need {', '.join(missing)} (Debian tools); run on Debian/Ubuntu{hint} or use another text")


def download_debs(packages: list[str], folder: Path) -> list[Path]:
    """Fetch the .deb files of ``packages`` into ``folder`` (apt-get download, no install)."""
    result = subprocess.run(["apt-get", "download", *packages], cwd=folder, capture_output=True, text=True)
    debs = sorted(folder.glob("*.deb"))
    if result.returncode != 0 or len(debs) < len(packages):
        tail = (result.stderr or result.stdout).strip().splitlines()[-2:]
        raise RuntimeError(f"could not download {' '.join(packages)} (apt-get said: {' | '.join(tail)}); "
                           "run `apt-get update` first, or check that Debian's archive is reachable")
    return debs


def render_page(source: bytes) -> str:
    """Plain text of one man(7) page (groff source, UTF-8): paragraphs on one line each, no title or footer line."""
    result = subprocess.run(GROFF, input=source, capture_output=True)
    lines = [_RULE.sub(r"\1" * 8, _PADDING.sub("  ", line.strip())) for line in result.stdout.decode("utf-8", "replace").splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    body = lines[1:-1]  # the title line ("open(2)   System Calls Manual   open(2)") and the footer
    text = "\n".join(body).strip("\n")
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text


def _pages(root: Path) -> list[Path]:
    """Every real page under ``root``'s man folders (links and ``.so`` stubs left out), sorted by name."""
    pages = []
    for path in sorted(root.rglob("man[0-9]*/*.gz"), key=lambda p: (p.name, str(p))):
        if path.is_symlink():
            continue
        with gzip.open(path, "rb") as handle:
            head = handle.read(256).lstrip()
        if head.startswith(b".so "):
            continue
        pages.append(path)
    return pages


def build_manpage_splits(language: str, out: Path, scratch: Path) -> dict[str, Any]:
    """Write ``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` (``{"title", "text"}`` per line) into ``out``."""
    require_tools(("apt-get", "dpkg-deb", "groff"), "the manual-page text assets")
    packages = debian_packages(language)
    unpacked = scratch / "unpacked"
    unpacked.mkdir(parents=True, exist_ok=True)
    for deb in download_debs(packages, scratch):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    pages = _pages(unpacked)
    seen: set[str] = set()
    unique = [p for p in pages if not (p.name in seen or seen.add(p.name))]  # type: ignore[func-returns-value]
    with ThreadPoolExecutor(max_workers=2) as pool:
        texts = list(pool.map(lambda p: render_page(gzip.decompress(p.read_bytes())), unique))
    rows: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    empty = 0
    for path, text in zip(unique, texts):
        name = path.name.removesuffix(".gz")
        if not text.strip():
            empty += 1
            continue
        rows[split_of(name)].append(json.dumps({"title": name, "text": text}, ensure_ascii=False))
    counts = write_splits(rows, out)
    logger.info("rendered %d pages of %s (%d duplicates by name and %d empty pages skipped)", len(unique) - empty,
                " ".join(packages), len(pages) - len(unique), empty)
    return {"debian_packages": packages, "splits": counts, "skipped_empty": empty, "skipped_duplicates": len(pages) - len(unique),
            "renderer": " ".join(GROFF), "split_rule": "sha256(page file name)[:8] % 100: 0-79 train, 80-89 validation, 90-99 test"}
