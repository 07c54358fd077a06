"""The targets table the benchmarks print: each check with what this run measured and whether it is met."""

from __future__ import annotations

from rich.table import Table


def targets_table(title: str, checks: list[tuple[str, str, str, bool]]) -> Table:
    """``checks``: (what, measured, target, met) rows."""
    table = Table(title=title)
    for column in ("check", "measured", "target", "met"):
        table.add_column(column)
    for name, measured, target, met in checks:
        table.add_row(name, measured, target, "yes" if met else "NO")
    return table
