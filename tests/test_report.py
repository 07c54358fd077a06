"""The ``--report`` page: one self-contained HTML file whose plots (one <svg> each) carry the expected
titles and series, with the numbers in tables, written atomically by the library and by every command
that takes ``--report`` (evaluate, measure, heal, demo). Result objects are built directly: no model
is loaded except by the evaluate command's own test, on the tiny model."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from tokenshift.cli import main
from tokenshift.demo import DemoReport
from tokenshift.evaluate import BpbResult
from tokenshift.heal import HealReport
from tokenshift.measure import TokenizerMeasurement, TokenPremium
from tokenshift.report import check_report_path, demo_page, evaluate_page, heal_page, measure_page, write_page
from tokenshift.report.pages import kept_index

TEXTS = ("wiki-en:test", "wiki-fr:test", "wiki-es:test")


def bpb(model: str, text: str, bits_per_byte: float, tokens_per_byte: float, tokenizer: str | None = None) -> BpbResult:
    size = 32_000
    return BpbResult(model=model, tokenizer=tokenizer or model, text=text, documents=12, bytes=size, tokens=round(tokens_per_byte * size),
                     bits=bits_per_byte * size, bits_per_byte=bits_per_byte, tokens_per_byte=tokens_per_byte,
                     bits_per_token=bits_per_byte / tokens_per_byte, seconds=2.0, bytes_per_second=size / 2, context=2048, stride=2048,
                     conditioning_token="<|endoftext|>", device="cpu", dtype="float32")


def measurement(tokenizer: str, text: str, tokens_per_byte: float) -> TokenizerMeasurement:
    return TokenizerMeasurement(tokenizer=tokenizer, text=text, documents=12, bytes=32_000, tokens=round(tokens_per_byte * 32_000), words=5_000,
                                bytes_per_token=1 / tokens_per_byte, tokens_per_byte=tokens_per_byte, fertility=1.4, split_word_share=0.2,
                                renyi_alpha=2.5, renyi_efficiency=0.41, vocab_used=9_000, vocab_used_share=0.18, vocab_size=49_152,
                                round_trip_share=1.0, round_trip_failures=0, encode_mb_per_second=3.2)


PHASES_CURVE = [
    {"phase": "start", "minutes": 0.0, "tokens": 0, "bits_per_byte": {"wiki-fr:validation": 2.30, "wiki-en:validation": 0.92}},
    {"phase": "distill-rows", "minutes": 2.6, "tokens": 90_000, "bits_per_byte": {"wiki-fr:validation": 2.10, "wiki-en:validation": 0.919}},
    {"phase": "fit-head", "minutes": 4.9, "tokens": 160_000, "bits_per_byte": {"wiki-fr:validation": 2.05, "wiki-en:validation": 0.918}},
]
STAGES_CURVE = [
    {"step": 0, "minutes": 0.0, "tokens": 0, "stage": "new-rows", "bits_per_byte": {"notes.txt": 3.1}},
    {"step": 12, "minutes": 1.5, "tokens": 49_152, "stage": "all", "bits_per_byte": {"notes.txt": 2.8}},
    {"step": 24, "minutes": 3.0, "tokens": 98_304, "stage": "all", "bits_per_byte": {"notes.txt": 2.9}},
]


def heal_report(curve: list[dict], kept: dict, *, recipe: str = "rows") -> HealReport:
    phases = [{"name": p["phase"]} for p in curve if p.get("phase") not in (None, "start")]
    return HealReport(
        model="out/smollm2-ext", teacher="smollm2-135m", tokenizer="smollm2+fr-8k", objective={"name": recipe, "phases": [p["name"] for p in phases]},
        stages=[{"train": "new-rows", "steps": 12, "lr": 2e-3}, {"train": "all", "steps": 12, "lr": 1e-4}] if recipe == "stages" else [],
        steps=24, tokens=curve[-1]["tokens"], teacher_tokens=0, bytes=640_000, truncated_tokens=0, train_seconds=290.0, eval_seconds=20.0,
        seconds=315.0, tokens_per_second=550.0, flops_per_token=8e8, batch_size=8, seq_len=512, processes=1, device="cpu",
        mixed_precision="no", loss_impl="chunked", frozen_rows=49_152, seed=0, resumed_at=[], curve=curve, losses=[],
        config={"text": ["wiki-fr:train", "wiki-en:train"]}, versions={"tokenshift": "0.1.0"}, recipe=recipe, recipe_reason="a transplant folder",
        minutes=5.0, phases=phases if recipe != "stages" else [], kept=kept)


ROWS_REPORT = heal_report(PHASES_CURVE, {"state": "fit-head", "reason": "the final state is the best",
                                          "bits_per_byte": PHASES_CURVE[-1]["bits_per_byte"]})


def demo_report() -> DemoReport:
    original = [bpb("smollm2-135m", t, b, tp, "smollm2") for t, b, tp in zip(TEXTS, (0.908, 1.917, 1.961), (0.2174, 0.3690, 0.3433))]
    zero_shot = [bpb("smollm2-135m → smollm2+fr-8k (zero-shot scaled)", t, b, tp, "smollm2+fr-8k")
                 for t, b, tp in zip(TEXTS, (0.918, 2.298, 2.045), (0.2169, 0.2765, 0.3373))]
    healed = [bpb("smollm2-135m → smollm2+fr-8k (healed 5 min)", t, b, tp, "smollm2+fr-8k")
              for t, b, tp in zip(TEXTS, (0.916, 2.048, 2.045), (0.2169, 0.2765, 0.3373))]
    measurements = [measurement(tok, t, tp) for tok, tps in (("smollm2", (0.217, 0.369, 0.343)), ("smollm2+fr-8k", (0.217, 0.277, 0.337)),
                                                               ("gpt2", (0.233, 0.41, 0.39))) for t, tp in zip(TEXTS, tps)]
    return DemoReport(original=original, transplanted=zero_shot, healed=healed, measurements=measurements,
                      train=SimpleNamespace(vocab_size=57_344, texts=["wiki-fr:train"], seconds=40.0, to_json=lambda: {"vocab_size": 57_344}),
                      transplant=SimpleNamespace(method="scaled", seconds=9.0, counts={"exact": 49_152, "composed": 8_192},
                                                 to_json=lambda: {"method": "scaled"}),
                      heal=ROWS_REPORT, max_bytes=32_000, notes=["The wiki splits are different articles per language, not translations."])


class _Plots(HTMLParser):
    """Each <figure class="plot">: its aria-label, how many <svg> it holds, and the words of its <text> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: list[dict] = []
        self.tags: list[str] = []
        self.in_text = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure" and attrs.get("class") == "plot":
            self.plots.append({"title": attrs.get("aria-label"), "svgs": 0, "words": []})
        elif self.plots and tag == "svg":
            self.plots[-1]["svgs"] += 1
        self.in_text = tag == "text"

    def handle_endtag(self, tag):
        self.in_text = False

    def handle_data(self, data):
        if self.in_text and self.plots and data.strip():
            self.plots[-1]["words"].append(data.strip())


def plots_of(page_html: str) -> list[dict]:
    parser = _Plots()
    parser.feed(page_html)
    return parser.plots


def assert_self_contained(page_html: str) -> None:
    """Nothing to fetch: no script, no external address (SVG namespace names are names, not fetched)."""
    without_namespaces = re.sub(r'\sxmlns(:\w+)?="[^"]*"', "", page_html)
    assert "<script" not in page_html and "http:" not in without_namespaces and "https:" not in without_namespaces
    assert re.findall(r'\s(?:src|href)="([^"]*)"', page_html) == ["data:,"]
    ids = re.findall(r'\sid="([^"]+)"', page_html)
    assert len(ids) == len(set(ids)), "two plots share an element id"


def test_evaluate_page_has_bits_and_tokens_per_byte_per_text():
    results = [bpb("smollm2-135m", t, b, tp) for t, b, tp in zip(TEXTS, (0.908, 1.917, 1.961), (0.2174, 0.369, 0.3433))]
    results += [bpb("out/healed", t, b, tp) for t, b, tp in zip(TEXTS, (0.916, 2.048, 2.045), (0.2169, 0.2765, 0.3373))]
    page = evaluate_page(results).html()
    plots = plots_of(page)
    assert [p["title"] for p in plots] == ["Bits per byte per text", "Tokens per byte per text"]
    for plot in plots:
        assert plot["svgs"] == 1
        assert {"smollm2-135m", "healed", *TEXTS} <= set(plot["words"]), plot["words"]  # series (a path's last part) and groups
    assert {"0.9080", "2.0480"} <= set(plots[0]["words"]) and "0.2765" in plots[1]["words"]  # the bars' values
    assert "<td>1.9170</td>" in page and ">out/healed</td>" in page  # the numbers as a table too
    assert page.count("<svg") == 2
    assert_self_contained(page)


def test_evaluate_page_names_the_tokenizer_when_one_model_is_read_two_ways():
    results = [bpb("m", "t", 1.0, 0.3, tokenizer="a"), bpb("m", "t", 1.1, 0.25, tokenizer="b")]
    [bits, _] = plots_of(evaluate_page(results).html())
    assert {"m + a", "m + b"} <= set(bits["words"])


def test_measure_page_has_the_language_cost_per_tokenizer_and_the_premium():
    measurements = [measurement(tok, t, tp) for tok in ("gpt2", "qwen2.5") for t, tp in zip(TEXTS, (0.23, 0.41, 0.39))]
    premiums = [TokenPremium("gpt2", "fr.jsonl", "en.jsonl", 2, 30, 20, 1.5), TokenPremium("qwen2.5", "fr.jsonl", "en.jsonl", 2, 26, 20, 1.3)]
    page = measure_page(measurements, premiums).html()
    cost, premium = plots_of(page)
    assert cost["title"] == "Language cost per tokenizer" and premium["title"] == "Token premium against en.jsonl"
    assert {"gpt2", "qwen2.5", *TEXTS, "Tokens per byte, per tokenizer and text"} <= set(cost["words"])
    assert {"1.500", "1.300", "fr.jsonl"} <= set(premium["words"])
    assert "<td>0.4100</td>" in page and "<td>1.500</td>" in page
    assert page.count("<svg") == 2
    assert_self_contained(page)
    assert measure_page(measurements).html().count("<svg") == 1  # no premium without parallel text


def test_heal_page_plots_bits_per_byte_against_minutes_and_rings_the_kept_state():
    page = heal_page(ROWS_REPORT).html()
    [curve] = plots_of(page)
    assert curve["svgs"] == 1 and curve["title"] == "Heal curve: bits per byte against minutes"
    assert {"wiki-fr:validation", "wiki-en:validation", "minutes", "bits per byte", "kept: fit-head",
            "start", "distill-rows", "fit-head"} <= set(curve["words"])
    assert kept_index(ROWS_REPORT) == 2
    assert ">kept: fit-head</td>" in page and "<td>2.0500</td>" in page and "<td>4.90</td>" in page
    assert_self_contained(page)

    stages = heal_report(STAGES_CURVE, {"state": "start", "reason": "worse", "bits_per_byte": {"notes.txt": 3.1}}, recipe="stages")
    [curve] = plots_of(heal_page(stages).html())
    assert {"step 0", "step 12", "step 24", "kept: start", "notes.txt"} <= set(curve["words"])
    assert kept_index(stages) == 0
    assert kept_index(heal_report(STAGES_CURVE, {"state": "end"}, recipe="stages")) == 2

    nothing = replace(heal_report(STAGES_CURVE[:1], {"state": "last"}, recipe="stages"), curve=[])
    page = heal_page(nothing).html()
    assert "<svg" not in page and "Nothing was evaluated" in page


def test_demo_page_has_before_and_after_the_heal_curve_and_the_tokenizers():
    page = demo_page(demo_report()).html()
    plots = plots_of(page)
    assert [p["title"] for p in plots] == ["Tokens per byte, original tokenizer and new", "Bits per byte: original, zero-shot transplant, healed",
                                           "Heal curve: bits per byte against minutes", "Language cost per tokenizer"]
    assert all(p["svgs"] == 1 for p in plots)
    assert {"original (smollm2)", "new (smollm2+fr-8k)"} <= set(plots[0]["words"])
    assert {"original", "zero-shot transplant", "healed", *TEXTS} <= set(plots[1]["words"])
    assert "<td>-25.1%</td>" in page  # French: the change in tokens per byte
    assert "different articles per language" in page
    assert_self_contained(page)


def test_same_numbers_same_page():
    assert demo_page(demo_report()).html() == demo_page(demo_report()).html()


def test_write_page_is_atomic_and_checks_the_path(tmp_path):
    page = heal_page(ROWS_REPORT)
    out = write_page(page, tmp_path / "heal.html")
    assert out.read_text(encoding="utf-8") == page.html() and [p.name for p in tmp_path.iterdir()] == ["heal.html"]
    with pytest.raises(FileExistsError, match="already exists; choose another name or remove it"):
        write_page(page, out)
    write_page(evaluate_page([bpb("m", "t", 1.0, 0.3)]), out, overwrite=True)
    assert out.read_text(encoding="utf-8").count("<svg") == 2 and [p.name for p in tmp_path.iterdir()] == ["heal.html"]
    with pytest.raises(ValueError, match="is a folder; name the page to write in it"):
        check_report_path(tmp_path)
    with pytest.raises(ValueError, match="the folder .*no-such does not exist; create it first"):
        check_report_path(tmp_path / "no-such" / "r.html")
    with pytest.raises(ValueError, match="name the page FILE.html"):
        check_report_path(tmp_path / "r.png")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_report_path(tmp_path / "file" / "r.html")


# -- the commands ------------------------------------------------------------------------------


def run(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: bad input
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_writes_the_report(capsys, tiny_model_dir, tmp_path):
    (tmp_path / "fr.txt").write_text("le chat mange une pomme et le chat dort", encoding="utf-8")
    report = tmp_path / "evaluate.html"
    code, out, _ = run(capsys, "evaluate", str(tiny_model_dir), "--text", str(tmp_path / "fr.txt"), "--device", "cpu", "--report", str(report))
    assert code == 0 and f"report: {report}" in out
    plots = plots_of(report.read_text(encoding="utf-8"))
    assert [p["svgs"] for p in plots] == [1, 1] and "fr.txt" in plots[0]["words"]
    # --json keeps standard output JSON: the report's path goes to standard error
    code, out, err = run(capsys, "evaluate", str(tiny_model_dir), "--text", str(tmp_path / "fr.txt"), "--device", "cpu", "--json",
                         "--report", str(tmp_path / "again.html"))
    assert code == 0 and json.loads(out)[0]["bytes"] == 39 and f"report: {tmp_path / 'again.html'}" in err


def test_measure_writes_the_report(capsys, tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path / "tok")
    (tmp_path / "en.jsonl").write_text('{"text": "the cat sat"}\n{"text": "the dog 12345"}\n')
    (tmp_path / "fr.jsonl").write_text('{"text": "le chat est assis"}\n{"text": "le chien 12345"}\n')
    report = tmp_path / "measure.html"
    code, out, _ = run(capsys, "measure", str(tmp_path / "tok"), "--text", str(tmp_path / "fr.jsonl"), str(tmp_path / "en.jsonl"),
                       "--reference", str(tmp_path / "en.jsonl"), "--report", str(report))
    assert code == 0 and f"report: {report}" in out
    cost, premium = plots_of(report.read_text(encoding="utf-8"))
    assert {"fr.jsonl", "en.jsonl", "tok"} <= set(cost["words"]) and premium["svgs"] == 1


def test_heal_writes_the_report(capsys, monkeypatch, tiny_model_dir, tmp_path):
    """The command's wiring only: the heal itself is replaced by its report (tests/test_heal*.py run real ones)."""
    import tokenshift.heal.run

    monkeypatch.setattr(tokenshift.heal.run, "heal", lambda model, **kwargs: (None, None, ROWS_REPORT))
    (tmp_path / "t.txt").write_text("le chat mange une pomme", encoding="utf-8")
    report = tmp_path / "heal.html"
    code, out, _ = run(capsys, "heal", str(tiny_model_dir), "--text", str(tmp_path / "t.txt"), "--minutes", "1", "--out", str(tmp_path / "healed"),
                       "--report", str(report))
    assert code == 0 and f"report: {report}" in out
    [curve] = plots_of(report.read_text(encoding="utf-8"))
    assert "kept: fit-head" in curve["words"]


def test_demo_writes_its_report_by_default_and_replaces_its_own(capsys, monkeypatch, tmp_path):
    import tokenshift.demo

    monkeypatch.setenv("TOKENSHIFT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(tokenshift.demo, "run_demo", lambda **kwargs: demo_report())
    default = tmp_path / "home" / "demo" / "report.html"
    for _ in range(2):  # the demo's own page is replaced by the next run
        code, out, _ = run(capsys, "demo")
        assert code == 0 and f"report: {default}" in out.replace("\n", "")
        assert len(plots_of(default.read_text(encoding="utf-8"))) == 4
    chosen = tmp_path / "mine.html"
    code, out, err = run(capsys, "demo", "--json", "--report", str(chosen))
    assert code == 0 and json.loads(out)["max_bytes"] == 32_000 and f"report: {chosen}" in err and chosen.is_file()
    code, _, err = run(capsys, "demo", "--report", str(chosen))  # a page the user named is never replaced
    assert code == 2 and "already exists" in err


@pytest.mark.parametrize("target, expected", [
    ("no-such-folder/r.html", "the folder {tmp}/no-such-folder does not exist; create it first"),
    (".", "{tmp} is a folder; name the page to write in it"),
    ("r.txt", "name the page FILE.html"),
])
def test_a_bad_report_path_fails_before_any_work(capsys, monkeypatch, tmp_path, target, expected):
    import tokenshift.demo

    monkeypatch.setattr(tokenshift.demo, "run_demo", lambda **kwargs: pytest.fail("the demo ran"))
    code, _, err = run(capsys, "demo", "--report", str(Path(tmp_path, target)) if target != "." else str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "argument --report" in err
    assert expected.format(tmp=tmp_path) in err
