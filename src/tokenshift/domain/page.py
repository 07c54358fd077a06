"""The adapted model's report page (``adapt.html``) and card (``README.md``)."""

from __future__ import annotations

from typing import Any

from .run import AdaptReport


def adapt_page(report: AdaptReport, heal: Any) -> Any:
    """Tokens per byte and bits per byte of the original, zero-shot and adapted models, on the held-out
    documents and on general text, with the heal's curve (``heal``: its :class:`~tokenshift.heal.HealReport`)."""
    from ..report.document import Page, Plot, Section, Table
    from ..report.pages import heal_section
    from ..report.plots import bar_chart

    texts = list(dict.fromkeys(r.text for r in report.rows))
    models = ["original", "zero-shot", "adapted"]

    def values(field: str) -> dict[str, list[float | None]]:
        return {m: [getattr(report.row(t, m), field) for t in texts] for m in models}

    plots = (Plot("Tokens per byte", bar_chart(texts, values("tokens_per_byte"), title="Tokens per byte", ylabel="tokens per byte",
                                               salt="adapt-tpb", digits=4), caption="Lower is cheaper."),
             Plot("Bits per byte", bar_chart(texts, values("bits_per_byte"), title="Bits per byte", ylabel="bits per byte",
                                             salt="adapt-bpb", digits=4), caption="Lower is better; the same bytes for all three."))
    table = Table(("text", "tokens/byte", "change", "bits/byte", "change"), tuple(report.summary()),
                  caption="original → adapted; the held-out documents were never trained on or chosen on")
    split = Table(("part", "documents", "bytes"), tuple((name.replace("_", " "), f"{v['documents']:,}", f"{v['bytes']:,}")
                                                        for name, v in report.split.items()), caption="the domain text, split by document")
    lead = (f"{report.model} adapted to {', '.join(report.texts)}: its tokenizer extended by {report.new_tokens:,} ids "
            f"({report.superwords:,} of them superwords), transplanted, healed {report.minutes:g} minutes; "
            f"{report.seconds / 60:.1f} minutes in all.")
    sections = [Section("Before and after", plots=plots, tables=(table, split))]
    sections.append(heal_section(heal, salt="adapt-heal"))
    return Page(title=f"tokenshift adapt: {report.model}", lead=lead, sections=tuple(sections), notes=tuple(report.notes))
