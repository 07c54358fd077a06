"""Tables a person reads in the terminal (rich), built from the same result objects the JSON output serialises."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table


def bpb_table(results: Sequence[Any], title: str = "Bits per byte") -> Table:
    table = Table(title=title)
    for column in ("model", "text", "docs", "bytes", "tokens", "bits/byte", "tokens/byte", "bytes/s", "conditioned on"):
        table.add_column(column, justify="left" if column in ("model", "text", "conditioned on") else "right")
    for r in results:
        table.add_row(r.model, r.text, f"{r.documents:,}", f"{r.bytes:,}", f"{r.tokens:,}", f"{r.bits_per_byte:.4f}",
                      f"{r.tokens_per_byte:.4f}", f"{r.bytes_per_second:,.0f}", r.conditioning_token)
    return table


def ensemble_table(results: Sequence[Any], title: str = "Byte-level bits per byte of each model and each mixture") -> Table:
    """Per text: each member, then each mixture with its bits per byte against the best member's.
    ``results``: :class:`tokenshift.bytelevel.EnsembleResult`."""
    table = Table(title=title)
    for column in ("text", "model", "bytes", "bits/byte", "vs best model", "bytes/s", "dropped mass (max/step)"):
        table.add_column(column, justify="left" if column in ("text", "model") else "right")
    for e in results:
        best = e.best_member.bits_per_byte
        for r in e.members:
            dropped = max((s.dropped_mass_max for s in r.stats), default=0.0)
            table.add_row(e.text, r.model, f"{r.bytes:,}", f"{r.bits_per_byte:.4f}", f"{r.bits_per_byte - best:+.4f}",
                          f"{r.bytes_per_second:,.1f}", f"{dropped:.1e}")
        for r in e.mixtures.values():
            table.add_row(e.text, r.model, f"{r.bytes:,}", f"{r.bits_per_byte:.4f}", f"{r.bits_per_byte - best:+.4f}",
                          f"{r.bytes_per_second:,.1f}", "")
    return table


def measurement_table(measurements: Sequence[Any], title: str = "Tokenizers") -> Table:
    table = Table(title=title)
    columns = ("tokenizer", "text", "bytes/token", "fertility", "words split", f"Rényi eff. (α={measurements[0].renyi_alpha:g})" if measurements else "Rényi eff.",
               "vocab used", "round trip", "MB/s")
    for column in columns:
        table.add_column(column, justify="left" if column in ("tokenizer", "text") else "right")
    for m in measurements:
        table.add_row(m.tokenizer, m.text, f"{m.bytes_per_token:.3f}", f"{m.fertility:.3f}", f"{m.split_word_share:.1%}",
                      f"{m.renyi_efficiency:.3f}", f"{m.vocab_used:,} ({m.vocab_used_share:.1%})", f"{m.round_trip_share:.1%}",
                      f"{m.encode_mb_per_second:.2f}")
    return table


def savings_table(savings: Sequence[Any]) -> Table:
    table = Table(title="Savings against the stage-1 BPE (same size, same training text)")
    for column in ("tokenizer", "text", "tokens", "stage-1 BPE tokens", "fewer tokens"):
        table.add_column(column, justify="left" if column in ("tokenizer", "text") else "right")
    for s in savings:
        table.add_row(s.tokenizer, s.text, f"{s.tokens:,}", f"{s.baseline_tokens:,}", f"{s.savings:+.2%}")
    return table


def premium_table(premiums: Sequence[Any]) -> Table:
    table = Table(title="Token premium on parallel text")
    for column in ("tokenizer", "text", "reference", "tokens", "reference tokens", "premium"):
        table.add_column(column, justify="left" if column in ("tokenizer", "text", "reference") else "right")
    for p in premiums:
        table.add_row(p.tokenizer, p.text, p.reference, f"{p.tokens:,}", f"{p.reference_tokens:,}", f"{p.premium:.3f}")
    return table


def comparison_table(c: Any) -> Table:
    table = Table(title=f"{c.tokenizer_a} vs {c.tokenizer_b}")
    table.add_column("", justify="left")
    table.add_column(c.tokenizer_a, justify="right")
    table.add_column(c.tokenizer_b, justify="right")
    table.add_row("vocabulary (byte strings, specials excluded)", f"{c.vocab_a:,}", f"{c.vocab_b:,}")
    table.add_row("shared with the other", f"{c.shared:,} ({c.shared_share_a:.1%})", f"{c.shared:,} ({c.shared_share_b:.1%})")
    table.add_row("digit scheme", c.digits_a, c.digits_b)
    for number, splits in c.digit_examples.items():
        table.add_row(f"  {number}", "|".join(splits.get(c.tokenizer_a, [])), "|".join(splits.get(c.tokenizer_b, [])))
    return table


def language_cost_table(measurements: Sequence[Any], reference_text: str) -> Table:
    """Each tokenizer's tokens per byte on each text, relative to the reference text."""
    table = Table(title=f"Token cost per byte relative to {reference_text} (not parallel text)")
    table.add_column("tokenizer")
    texts = list(dict.fromkeys(m.text for m in measurements))
    for text in texts:
        table.add_column(text, justify="right")
    for name in dict.fromkeys(m.tokenizer for m in measurements):
        rows = {m.text: m for m in measurements if m.tokenizer == name}
        base = rows.get(reference_text)
        cells = []
        for text in texts:
            m = rows.get(text)
            if m is None or base is None:
                cells.append("-")
            else:
                cells.append(f"{m.tokens_per_byte:.3f} t/B ({m.tokens_per_byte / base.tokens_per_byte - 1:+.0%})")
        table.add_row(name, *cells)
    return table


def story_table(original: Sequence[Any], zero_shot: Sequence[Any], healed: Sequence[Any]) -> Table:
    """Original / zero-shot transplant / healed model per text: tokens per byte and bits per byte, with
    the changes against the original."""
    table = Table(title="Original → zero-shot transplant → healed, same text")
    for column in ("text", "tokens/byte", "→ new", "change", "bits/byte", "zero-shot", "change", "healed", "change"):
        table.add_column(column, justify="left" if column == "text" else "right")
    for a, z, h in zip(original, zero_shot, healed):
        table.add_row(a.text, f"{a.tokens_per_byte:.4f}", f"{h.tokens_per_byte:.4f}", f"{h.tokens_per_byte / a.tokens_per_byte - 1:+.1%}",
                      f"{a.bits_per_byte:.4f}", f"{z.bits_per_byte:.4f}", f"{z.bits_per_byte / a.bits_per_byte - 1:+.1%}",
                      f"{h.bits_per_byte:.4f}", f"{h.bits_per_byte / a.bits_per_byte - 1:+.1%}")
    return table


def transplant_table(original: Sequence[Any], transplanted: Sequence[Any]) -> Table:
    """Original vs transplanted model per text: tokens per byte and bits per byte, with the change."""
    table = Table(title="Original vs transplant, same text")
    for column in ("text", "tokens/byte", "→ new", "change", "bits/byte", "→ new", "change"):
        table.add_column(column, justify="left" if column == "text" else "right")
    for a, b in zip(original, transplanted):
        table.add_row(a.text, f"{a.tokens_per_byte:.4f}", f"{b.tokens_per_byte:.4f}", f"{b.tokens_per_byte / a.tokens_per_byte - 1:+.1%}",
                      f"{a.bits_per_byte:.4f}", f"{b.bits_per_byte:.4f}", f"{b.bits_per_byte / a.bits_per_byte - 1:+.1%}")
    return table
