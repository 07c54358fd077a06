"""Plots as inline SVG text, drawn by matplotlib without a GUI.

Each plot is a bare ``matplotlib.figure.Figure`` saved as SVG: pyplot is never imported, so no
backend is chosen and nothing global changes in the caller's matplotlib. Text stays text
(``svg.fonttype: none``), so the page is small, its words can be searched and selected, and a test
reads a plot's title and series names from the SVG. Every plot gets its own id salt: the ids
matplotlib gives clip paths and markers never collide between the plots of one page, and the same
numbers give the same bytes.

    svg = bar_chart(["wiki-en:test", "wiki-fr:test"], {"original": [0.91, 1.92], "healed": [0.92, 2.05]},
                    title="Bits per byte", ylabel="bits per byte", salt="bpb")
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

# Colour-blind-safe (Okabe-Ito), in the order series are drawn; the first is the "before" of a pair.
PALETTE = ("#7f7f7f", "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")
WIDTH_INCHES = 7.5
HEIGHT_INCHES = 3.6
# Value labels on bars only up to this many bars: past it they overlap and the table beside the plot holds the numbers.
MAX_LABELLED_BARS = 24
STYLE = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans"],  # bundled with matplotlib: the layout is measured in it, and browsers fall back to sans-serif
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.grid.axis": "y",
    "grid.color": "#dddddd",
    "axes.axisbelow": True,
}


def bar_chart(groups: Sequence[str], series: Mapping[str, Sequence[float | None]], *, title: str, ylabel: str, salt: str,
              digits: int = 3, reference: float | None = None) -> str:
    """Grouped bars, as SVG text: one group per entry of ``groups`` along x, one bar per series in each
    group, in ``series`` order, each with its value to ``digits`` places (up to :data:`MAX_LABELLED_BARS`
    bars). ``series``: name -> one value per group (None or NaN: no bar). ``reference``: a dashed
    horizontal line at this value (e.g. 1.0 for a ratio)."""
    for name, values in series.items():
        assert len(values) == len(groups), (name, len(values), len(groups))
    with _style(salt):
        figure, axes = _figure()
        count = max(len(series), 1)
        width = 0.8 / count
        labelled = len(groups) * count <= MAX_LABELLED_BARS
        for index, (name, values) in enumerate(series.items()):
            xs = [g + (index - (count - 1) / 2) * width for g in range(len(groups))]
            heights = [_number(v) for v in values]
            bars = axes.bar(xs, [0.0 if math.isnan(h) else h for h in heights], width=width * 0.92, label=name,
                            color=PALETTE[index % len(PALETTE)])
            if labelled:
                axes.bar_label(bars, labels=["" if math.isnan(h) else f"{h:.{digits}f}" for h in heights], padding=2, fontsize=7)
        if reference is not None:
            axes.axhline(reference, color="#444444", linestyle="--", linewidth=0.8)
        axes.set_xticks(range(len(groups)), list(groups))
        axes.set_ylabel(ylabel)
        axes.margins(y=0.12)
        return _finish(figure, axes, title, salt)


def line_chart(x: Sequence[float], series: Mapping[str, Sequence[float | None]], *, title: str, xlabel: str, ylabel: str, salt: str,
               point_labels: Sequence[str] = (), marked: int | None = None, marked_label: str = "") -> str:
    """Lines with markers, as SVG text: ``series`` name -> one y per entry of ``x`` (None or NaN: a gap).
    ``point_labels``: a short label per x written above the plot (left out past 12 points, where they
    would overlap); ``marked``: the index of a point to ring on every line, named ``marked_label`` in
    the legend."""
    for name, values in series.items():
        assert len(values) == len(x), (name, len(values), len(x))
    with _style(salt):
        figure, axes = _figure()
        for index, (name, values) in enumerate(series.items()):
            axes.plot(list(x), [_number(v) for v in values], marker="o", markersize=4, linewidth=1.5, label=name,
                      color=PALETTE[(index + 1) % len(PALETTE)])
        if marked is not None and 0 <= marked < len(x):
            ys = [_number(values[marked]) for values in series.values()]
            axes.scatter([x[marked]] * len(ys), ys, s=110, facecolors="none", edgecolors="#000000", linewidths=1.2, zorder=3,
                         label=marked_label or None)
        if point_labels and len(point_labels) <= 12:
            top = axes.secondary_xaxis("top")
            top.set_xticks(list(x), list(point_labels), fontsize=7, rotation=20, ha="left")
            top.tick_params(length=0)
            top.spines["top"].set_visible(False)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.margins(x=0.06, y=0.15)
        return _finish(figure, axes, title, salt)


@contextmanager
def _style(salt: str) -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context({**STYLE, "svg.hashsalt": f"tokenshift-{salt}"}):
        yield


def _figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_INCHES, HEIGHT_INCHES), layout="constrained")
    return figure, figure.add_subplot()


def _finish(figure: Any, axes: Any, title: str, salt: str) -> str:
    """Title and legend (below the plot, where long names fit), then the figure as one ``<svg>`` element
    whose ids all start with ``salt`` (matplotlib names groups ``figure_1``, ``axes_1``... in every plot)."""
    axes.set_title(title, loc="left", fontsize=11, fontweight="bold")
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(handles), 3), frameon=False)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and DOCTYPE: the SVG goes inside an HTML page
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.DOTALL).strip()
    return _prefix_ids(text, salt)


def _prefix_ids(svg: str, prefix: str) -> str:
    """Every ``id`` of ``svg`` and every reference to one (``url(#id)``, ``href="#id"``) prefixed ``prefix-``."""
    ids = set(re.findall(r'\sid="([^"]+)"', svg))
    svg = re.sub(r'(\sid=")([^"]+)"', lambda m: f'{m.group(1)}{prefix}-{m.group(2)}"', svg)
    return re.sub(r'(url\(#|href="#)([^)"]+)', lambda m: f"{m.group(1)}{prefix}-{m.group(2)}" if m.group(2) in ids else m.group(0), svg)


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)
