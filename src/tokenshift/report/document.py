"""One self-contained HTML page: a title, sections of plots (inline SVG) and tables, written atomically.

The page needs nothing beside it: no script, no style sheet, no font, no image file, no address
outside it, so it opens from a mail attachment or an artifact store the same as from disk.

    page = Page(title="...", lead="...", sections=(Section("Bits per byte", plots=(Plot(...),), tables=(Table(...),)),))
    check_report_path("out/report.html")          # before the work: a bad path fails in one line
    write_page(page, "out/report.html")           # after it
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path

SUFFIXES = (".html", ".htm")

CSS = """
body { margin: 0; background: #fafafa; color: #1a1a1a; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 24px 28px 40px; background: #ffffff; }
h1 { font-size: 1.6em; margin: 0 0 0.3em; }
h2 { font-size: 1.2em; margin: 1.8em 0 0.5em; padding-top: 0.6em; border-top: 1px solid #e4e4e4; }
p.lead { color: #333333; }
figure.plot { margin: 1em 0; }
figure.plot svg { display: block; width: 100%; height: auto; max-width: 900px; }
figcaption { color: #555555; font-size: 0.9em; margin-top: 0.3em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; font-variant-numeric: tabular-nums; }
div.table { overflow-x: auto; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; white-space: nowrap; }
th.l, td.l { text-align: left; }
th { background: #f2f2f2; }
caption { text-align: left; color: #555555; padding-bottom: 0.3em; }
ul.notes { color: #333333; }
footer { margin-top: 2.5em; color: #777777; font-size: 0.85em; }
""".strip()


@dataclass(frozen=True)
class Plot:
    """One plot: ``svg`` is a whole ``<svg>`` element (see :mod:`tokenshift.report.plots`); ``title``
    names it for the page and for tests; ``caption`` says how to read it."""

    title: str
    svg: str
    caption: str = ""


@dataclass(frozen=True)
class Table:
    """The numbers behind a plot, as text cells: the ``left`` leading columns (names) left-aligned, the rest right."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    left: int = 1


@dataclass(frozen=True)
class Section:
    heading: str
    text: str = ""
    plots: tuple[Plot, ...] = ()
    tables: tuple[Table, ...] = ()


@dataclass(frozen=True)
class Page:
    title: str
    lead: str
    sections: tuple[Section, ...]
    notes: tuple[str, ...] = ()

    @property
    def plots(self) -> list[Plot]:
        return [plot for section in self.sections for plot in section.plots]

    def html(self) -> str:
        """The whole page as one HTML document (UTF-8 text)."""
        from .. import __version__

        body = [f"<h1>{_e(self.title)}</h1>", f'<p class="lead">{_e(self.lead)}</p>']
        number = 0
        for section in self.sections:
            body.append(f"<section>\n<h2>{_e(section.heading)}</h2>")
            if section.text:
                body.append(f"<p>{_e(section.text)}</p>")
            for plot in section.plots:
                number += 1
                caption = f"<figcaption>{_e(plot.caption)}</figcaption>" if plot.caption else ""
                body.append(f'<figure class="plot" id="plot-{number}" aria-label="{_e(plot.title)}">\n{plot.svg}\n{caption}</figure>')
            body.extend(_table(table) for table in section.tables)
            body.append("</section>")
        if self.notes:
            body.append('<ul class="notes">' + "".join(f"<li>{_e(note)}</li>" for note in self.notes) + "</ul>")
        body.append(f"<footer>Written by tokenshift {_e(__version__)}; plots drawn with matplotlib. "
                    "This page is self-contained: it loads nothing else.</footer>")
        # rel=icon with an empty data: address: a browser asks for nothing, not even /favicon.ico
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                f"<link rel=\"icon\" href=\"data:,\">\n<title>{_e(self.title)}</title>\n<style>\n{CSS}\n</style>\n</head>\n"
                "<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n")


def check_report_path(path: str | Path, *, option: str | None = "--report", overwrite: bool = False) -> Path:
    """``path`` expanded, after checking that a page can be written there: it ends in ``.html`` (a
    browser opens a local file by its suffix), it is not a folder, it does not exist (unless
    ``overwrite``), and its folder exists and can be written. Raises ValueError/FileExistsError with
    one line naming ``option`` (None: just the path), the problem and the fix."""
    out = Path(path).expanduser()
    named = f"{option} {out}" if option else str(out)
    if out.is_dir():
        raise ValueError(f"{named} is a folder; name the page to write in it, e.g. {out / 'report.html'}")
    if out.suffix.lower() not in SUFFIXES:
        raise ValueError(f"{named}: name the page FILE.html (a browser opens a local file by its suffix)")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise FileExistsError(f"{named} already exists; choose another name or remove it")
    folder = out.parent
    if not folder.exists():
        raise ValueError(f"{named}: the folder {folder} does not exist; create it first or choose another place")
    if not folder.is_dir():
        raise ValueError(f"{named}: {folder} is a file, not a folder; choose another place")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{named}: cannot write in {folder}; choose a folder you can write to")
    return out


def write_page(page: Page, path: str | Path, *, overwrite: bool = False, option: str | None = "--report") -> Path:
    """Write ``page`` to ``path`` (checked by :func:`check_report_path`) through a temporary file and a
    rename; return the path written."""
    from ..storage import write_text

    out = check_report_path(path, option=option, overwrite=overwrite)
    write_text(out, page.html(), overwrite=overwrite)
    return out


def _table(table: Table) -> str:
    def cells(tag: str, values: tuple[str, ...]) -> str:
        return "".join(f'<{tag} class="l">{_e(v)}</{tag}>' if i < table.left else f"<{tag}>{_e(v)}</{tag}>" for i, v in enumerate(values))

    head = cells("th", table.columns)
    rows = "\n".join(f"<tr>{cells('td', row)}</tr>" for row in table.rows)
    caption = f"<caption>{_e(table.caption)}</caption>" if table.caption else ""
    return f'<div class="table"><table>{caption}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table></div>'


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
