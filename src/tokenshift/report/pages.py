"""The page of each command's results, built from the same result objects its JSON output serialises.

    evaluate_page(results)                  bits per byte and tokens per byte per text, one series per model
    measure_page(measurements, premiums)    each tokenizer's tokens per byte on each text (the language cost)
    heal_page(report)                       the heal curve: bits per byte of each held-out text against minutes
    demo_page(report)                       original → zero-shot transplant → healed, then the heal curve and the tokenizers

Every plot's numbers are in a table below it too, to the digits the terminal shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from .document import Page, Plot, Section, Table
from .plots import bar_chart, line_chart

if TYPE_CHECKING:
    from ..demo import DemoReport
    from ..evaluate import BpbResult
    from ..heal.run import HealReport
    from ..measure import TokenizerMeasurement, TokenPremium

BPB = "bits per byte: the model's negative log2-likelihood of the text over its UTF-8 bytes (lower is better; comparable across tokenizers)"
TPB = "tokens per byte: tokens the tokenizer spends on each UTF-8 byte (lower is cheaper: more text per context and per step)"


def evaluate_page(results: Sequence[BpbResult], *, title: str = "tokenshift evaluate") -> Page:
    """Bits per byte and tokens per byte of each model (one series each) on each text (one group each)."""
    series: dict[str, list[Any]] = {}
    shared = _shared_names(results)
    for r in results:
        series.setdefault(f"{r.model} + {r.tokenizer}" if r.model in shared else r.model, []).append(r)
    texts = _ordered(r.text for r in results)
    models = ", ".join(series)
    lead = f"{models} on {len(texts)} text{'s' if len(texts) != 1 else ''}: {BPB}; {TPB}."
    table = Table(("model", "tokenizer", "text", "documents", "bytes", "tokens", "bits/byte", "tokens/byte", "conditioned on"),
                  tuple((r.model, r.tokenizer, r.text, f"{r.documents:,}", f"{r.bytes:,}", f"{r.tokens:,}", f"{r.bits_per_byte:.4f}",
                         f"{r.tokens_per_byte:.4f}", r.conditioning_token) for r in results), left=3)
    section = Section("Bits per byte and tokens per byte", plots=(
        _per_text_bars(series, texts, "bits_per_byte", title="Bits per byte per text", ylabel="bits per byte", salt="evaluate-bpb",
                       caption="Lower is better."),
        _per_text_bars(series, texts, "tokens_per_byte", title="Tokens per byte per text", ylabel="tokens per byte",
                       salt="evaluate-tpb", caption="Lower is cheaper."),
    ), tables=(table,))
    return Page(title=title, lead=lead, sections=(section,))


def measure_page(measurements: Sequence[TokenizerMeasurement], premiums: Sequence[TokenPremium] = (), *,
                 title: str = "tokenshift measure") -> Page:
    """Each tokenizer's tokens per byte on each text (the cost of each language), and the token premium
    on parallel text when measured."""
    sections = [language_cost_section(measurements, salt="measure")]
    if premiums:
        tokenizers = _ordered(p.tokenizer for p in premiums)
        texts = _ordered(p.text for p in premiums)
        by_key = {(p.tokenizer, p.text): p.premium for p in premiums}
        reference = premiums[0].reference
        plot = Plot(f"Token premium against {reference}", bar_chart(
            _shorts(tokenizers), {short: [by_key.get((t, text)) for t in tokenizers] for short, text in zip(_shorts(texts), texts)},
            title=f"Token premium against {_shorts([reference])[0]}", ylabel="tokens / reference tokens", salt="measure-premium", reference=1.0),
            caption="Tokens for each text over tokens for its translation in the reference (1: the same cost).")
        table = Table(("tokenizer", "text", "reference", "tokens", "reference tokens", "premium"),
                      tuple((p.tokenizer, p.text, p.reference, f"{p.tokens:,}", f"{p.reference_tokens:,}", f"{p.premium:.3f}")
                            for p in premiums), left=3)
        sections.append(Section("Token premium on parallel text", plots=(plot,), tables=(table,)))
    tokenizers = _ordered(m.tokenizer for m in measurements)
    lead = f"{len(tokenizers)} tokenizer{'s' if len(tokenizers) != 1 else ''} ({', '.join(tokenizers)}) on {len(_ordered(m.text for m in measurements))} texts; {TPB}."
    return Page(title=title, lead=lead, sections=tuple(sections))


def language_cost_section(measurements: Sequence[TokenizerMeasurement], *, salt: str) -> Section:
    """One group of bars per tokenizer, one bar per text: its tokens per byte there."""
    tokenizers = _ordered(m.tokenizer for m in measurements)
    texts = _ordered(m.text for m in measurements)
    by_key = {(m.tokenizer, m.text): m for m in measurements}
    series = {short: [_get(by_key.get((t, text)), "tokens_per_byte") for t in tokenizers] for short, text in zip(_shorts(texts), texts)}
    plot = Plot("Language cost per tokenizer", bar_chart(_shorts(tokenizers), series, title="Tokens per byte, per tokenizer and text",
                                                          ylabel="tokens per byte", salt=f"{salt}-cost"),
                caption="The cost of each text (language) under each tokenizer; lower is cheaper.")
    alpha = measurements[0].renyi_alpha if measurements else 2.5
    table = Table(("tokenizer", "text", "tokens/byte", "bytes/token", "fertility", "words split", f"Rényi eff. (α={alpha:g})", "vocab used",
                   "round trip"),
                  tuple((m.tokenizer, m.text, f"{m.tokens_per_byte:.4f}", f"{m.bytes_per_token:.3f}", f"{m.fertility:.3f}",
                         f"{m.split_word_share:.1%}", f"{m.renyi_efficiency:.3f}", f"{m.vocab_used:,} ({m.vocab_used_share:.1%})",
                         f"{m.round_trip_share:.1%}") for m in measurements), left=2)
    return Section("Language cost per tokenizer", plots=(plot,), tables=(table,))


def heal_page(report: HealReport, *, title: str = "tokenshift heal") -> Page:
    """The heal curve of ``report`` (a :class:`tokenshift.heal.HealReport`) and what was kept."""
    how = (" + ".join(s["train"] for s in report.stages) if report.recipe == "stages"
           else " + ".join(p.get("name", "?") for p in report.phases) or " + ".join(report.objective.get("phases", [])))
    texts = ", ".join(report.config.get("text") or ())
    lead = (f"{report.model} healed with the recipe {report.recipe} ({how}) on {texts}: {report.tokens:,} tokens, "
            f"{report.train_seconds:,.0f} s of training, {report.seconds:,.0f} s in all. "
            f"Kept {report.kept.get('state', 'the last state')}: {report.kept.get('reason', '')}.")
    return Page(title=title, lead=lead, sections=(heal_section(report, salt="heal"),))


def heal_section(report: HealReport, *, salt: str) -> Section:
    """Bits per byte of every held-out text at every evaluation, against wall-clock minutes; the state kept is ringed."""
    curve = report.curve
    if not curve:
        return Section("Heal curve", text="Nothing was evaluated (no evaluation text), so there is no curve.")
    texts = _ordered(text for point in curve for text in point["bits_per_byte"])
    labels = [_point_label(point) for point in curve]
    kept = kept_index(report)
    state = report.kept.get("state")
    plot = Plot("Heal curve: bits per byte against minutes", line_chart(
        [float(point.get("minutes") or 0.0) for point in curve],
        {short: [point["bits_per_byte"].get(text) for point in curve] for short, text in zip(_shorts(texts), texts)},
        title="Bits per byte on held-out text, against minutes of healing", xlabel="minutes", ylabel="bits per byte", salt=f"{salt}-curve",
        point_labels=labels, marked=kept, marked_label=f"kept: {state}" if kept is not None else ""),
        caption="Each point is an evaluation (its phase or step above the plot); lower is better. The ring marks the state written.")
    kept_values = report.kept.get("bits_per_byte") or {}
    rows = [(label, f"{point.get('minutes', 0.0):.2f}", f"{point.get('tokens', 0):,}",
             *(_fmt(point["bits_per_byte"].get(text)) for text in texts)) for label, point in zip(labels, curve)]
    if kept_values:
        rows.append((f"kept: {state}", "", "", *(_fmt(kept_values.get(text)) for text in texts)))
    table = Table(("evaluation", "minutes", "tokens", *texts), tuple(rows), caption="Bits per byte at each evaluation.")
    return Section("Heal curve", plots=(plot,), tables=(table,))


def kept_index(report: HealReport) -> int | None:
    """The index in ``report.curve`` of the state the healed model holds: the last point of that phase
    (phase recipes), the first or last point (the stages trainer's ``start`` / ``end``); None if unknown."""
    state = report.kept.get("state")
    curve = report.curve
    if not curve or not state:
        return None
    phases = [point.get("phase") for point in curve]
    if state in phases:
        return len(phases) - 1 - phases[::-1].index(state)
    if "phase" not in curve[0]:
        return {"start": 0, "end": len(curve) - 1}.get(state)
    return None


def demo_page(report: DemoReport, *, title: str = "tokenshift demo") -> Page:
    """Original, zero-shot transplant and healed model on each text; the heal curve; the tokenizers' language cost."""
    texts = [r.text for r in report.original]
    train, transplant, heal = report.train, report.transplant, report.heal
    lead = (f"Extend → transplant → heal → evaluate: {report.original[0].model}'s tokenizer extended to {train.vocab_size:,} ids on "
            f"{' + '.join(train.texts)}; the model transplanted onto it with {transplant.method}, training-free; healed ({heal.recipe}) "
            f"for {heal.train_seconds / 60:.1f} minutes; all three evaluated on the leading test-split documents of each language, "
            f"up to {report.max_bytes:,} bytes each. {BPB}; {TPB}.")
    tokens = _per_text_bars({f"original ({report.original[0].tokenizer})": report.original, f"new ({report.healed[0].tokenizer})": report.healed},
                            texts, "tokens_per_byte", title="Tokens per byte, original tokenizer and new", ylabel="tokens per byte",
                            salt="demo-tpb", caption="Lower is cheaper: the extension spends fewer tokens where it learned merges.")
    bits = _per_text_bars({"original": report.original, "zero-shot transplant": report.transplanted, "healed": report.healed}, texts,
                          "bits_per_byte", title="Bits per byte: original, zero-shot transplant, healed", ylabel="bits per byte",
                          salt="demo-bpb", caption="Lower is better; the same text and bytes for all three models.")
    table = Table(("text", "tokens/byte", "→ new", "change", "bits/byte", "zero-shot", "change", "healed", "change"), tuple(
        (a.text, f"{a.tokens_per_byte:.4f}", f"{h.tokens_per_byte:.4f}", f"{h.tokens_per_byte / a.tokens_per_byte - 1:+.1%}",
         f"{a.bits_per_byte:.4f}", f"{z.bits_per_byte:.4f}", f"{z.bits_per_byte / a.bits_per_byte - 1:+.1%}",
         f"{h.bits_per_byte:.4f}", f"{h.bits_per_byte / a.bits_per_byte - 1:+.1%}")
        for a, z, h in zip(report.original, report.transplanted, report.healed)),
        caption=f"{report.original[0].model} → {report.transplanted[0].model} → {report.healed[0].model}")
    story = Section("Before and after, same text", plots=(tokens, bits), tables=(table,))
    sections = [story, heal_section(heal, salt="demo-heal")]
    if report.measurements:
        sections.append(language_cost_section(report.measurements, salt="demo"))
    return Page(title=title, lead=lead, sections=tuple(sections), notes=tuple(report.notes))


def _per_text_bars(series: Mapping[str, Sequence[Any]], texts: Sequence[str], field: str, *, title: str, ylabel: str, salt: str,
                   caption: str) -> Plot:
    values = {short: [_get(next((r for r in results if r.text == text), None), field) for text in texts]
              for short, results in zip(_shorts(list(series), limit=40), series.values())}
    return Plot(title, bar_chart(_shorts(texts), values, title=title, ylabel=ylabel, salt=salt, digits=4), caption=caption)


def _shared_names(results: Sequence[Any]) -> set[str]:
    """Models evaluated more than once on one text (with different tokenizers): their series name the tokenizer too."""
    seen: set[tuple[str, str]] = set()
    shared = set()
    for r in results:
        if (r.model, r.text) in seen:
            shared.add(r.model)
        seen.add((r.model, r.text))
    return shared


def _point_label(point: Mapping[str, Any]) -> str:
    return str(point["phase"]) if "phase" in point else f"step {point.get('step', 0):,}"


def _ordered(names: Any) -> list[str]:
    return list(dict.fromkeys(names))


def _get(result: Any, field: str) -> float | None:
    return None if result is None else getattr(result, field)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _shorts(names: Sequence[str], limit: int = 28) -> list[str]:
    """Names short enough for an axis or a legend, still told apart: a path's last part, cut with … past
    ``limit``; the whole names where shortening would make two alike."""
    for short in (_short_head, _short_tail):
        shorts = [short(name, limit) for name in names]
        if len(set(shorts)) == len(set(names)):
            return shorts
    return list(names)


def _short_head(name: str, limit: int) -> str:
    if "/" in name:
        name = PurePath(name).name or name
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _short_tail(name: str, limit: int) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1):]

