"""The ``handbook-en``/``handbook-fr``/... text assets: The Debian Administrator's Handbook, from Debian.

A third domain beside Wikipedia and the manual pages: a book of system administration (explanations,
case studies, shell sessions, configuration files), in the translations that Debian's
``debian-handbook`` package ships (11.20220922, Debian 12). Unlike the manual pages it is running
prose; like them it is full of commands, paths and options. The package is fetched with
``apt-get download`` at its pinned version and unpacked with ``dpkg-deb``; each HTML page of the
book (a chapter's opening or one section, 128 pages) becomes plain UTF-8 text with the standard
library's HTML parser: one paragraph, heading, list item or table row a line, ``<pre>`` blocks
(shell sessions, files) kept verbatim, the navigation, banner, tables of contents and index anchors
dropped. The cover page (``index.html``: front matter and the whole table of contents) is left out.

Split rule (by page, fixed, as for the manual pages): the first 8 hex digits of SHA-256 of the page's
file name (``sect.apt-get.html``), read as an integer, modulo 100: 0-79 train, 80-89 validation, 90-99
test. A page is one document; pages keep the order of their sorted file names within a split.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .manpages import download_debs, require_tools, split_of
from .wiki import write_splits

logger = logging.getLogger(__name__)

DEBIAN_PACKAGE = "debian-handbook=11.20220922"
FOLDERS = {"en": "en-US", "fr": "fr-FR", "es": "es-ES", "de": "de-DE", "it": "it-IT"}
LANGUAGES = tuple(FOLDERS)
_BLOCKS = {"div", "p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "li", "dt", "dd", "tr", "table", "br", "ul", "ol", "dl",
           "blockquote", "title"}
_SPACES = re.compile(r"[ \t\r\n\f\v]+")  # not \s: a no-break space (French typography) is text


def _skipped(tag: str, attributes: dict[str, str | None]) -> bool:
    """Elements whose text is not the book's: page furniture, tables of contents, index anchors."""
    classes = set((attributes.get("class") or "").split())
    return (tag in ("head", "script", "style") or attributes.get("id") in ("banner", "title")
            or bool(classes & {"docnav", "toc", "indexterm"}))


class _PageText(HTMLParser):
    """Collect a page's text: a line for each block, whitespace collapsed except inside ``<pre>``."""

    _VOID = {"br", "img", "meta", "link", "hr", "input", "col", "area", "base", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.open: list[tuple[str, bool]] = []  # (tag, starts a skipped subtree)
        self.skip_depth = 0
        self.pre_depth = 0

    def _end_line(self) -> None:
        text = "".join(self.current)
        self.current = []
        line = text.strip("\n") if self.pre_depth else _SPACES.sub(" ", text).strip()
        if line.strip():
            self.lines.append(line)

    def close(self) -> None:
        super().close()
        self._end_line()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._VOID:
            if tag == "br" and not self.skip_depth:
                self._end_line()
            return
        skipped = _skipped(tag, dict(attrs))
        self.open.append((tag, skipped))
        if skipped:
            self.skip_depth += 1
        if self.skip_depth:
            return
        if tag in _BLOCKS:
            self._end_line()
        if tag == "pre":
            self.pre_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in self._VOID or not any(name == tag for name, _ in self.open):
            return
        while self.open:  # close what the page left open inside this element too
            name, skipped = self.open.pop()
            if not self.skip_depth and name in _BLOCKS:
                self._end_line()
            if not self.skip_depth and name == "pre":
                self.pre_depth -= 1
            if skipped:
                self.skip_depth -= 1
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.skip_depth:
            self.current.append(data)


def page_text(html: str) -> str:
    """Plain text of one page of the handbook: blocks on lines of their own, ``<pre>`` verbatim."""
    parser = _PageText()
    parser.feed(html)
    parser.close()
    return "\n".join(parser.lines).strip()


def build_handbook_splits(language: str, out: Path, scratch: Path) -> dict[str, Any]:
    """Write ``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` (``{"title", "text"}`` per line) into ``out``."""
    if language not in FOLDERS:
        raise ValueError(f"no handbook text for language {language!r}; choose one of {', '.join(LANGUAGES)}")
    require_tools(("apt-get", "dpkg-deb"), "the handbook text assets")
    unpacked = scratch / "unpacked"
    unpacked.mkdir(parents=True, exist_ok=True)
    for deb in download_debs([DEBIAN_PACKAGE], scratch):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    folder = unpacked / "usr/share/doc/debian-handbook/html" / FOLDERS[language]
    pages = sorted(p for p in folder.glob("*.html") if p.name != "index.html")
    if not pages:
        raise RuntimeError(f"{DEBIAN_PACKAGE} has no pages under {folder.relative_to(unpacked)}; the package layout changed")
    rows: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    empty = 0
    for path in pages:
        text = page_text(path.read_text(encoding="utf-8"))
        if not text:
            empty += 1
            continue
        rows[split_of(path.name)].append(json.dumps({"title": path.name, "text": text}, ensure_ascii=False))
    counts = write_splits(rows, out)
    logger.info("extracted %d pages of the %s handbook (%d empty pages skipped)", len(pages) - empty, language, empty)
    return {"debian_packages": [DEBIAN_PACKAGE], "folder": FOLDERS[language], "splits": counts, "skipped_empty": empty,
            "extractor": "html.parser: blocks a line, <pre> verbatim; navigation, tables of contents, index anchors dropped",
            "split_rule": "sha256(page file name)[:8] % 100: 0-79 train, 80-89 validation, 90-99 test"}
