"""Domain adaptation: documents from one big file, the split by document, superwords on a model's own
tokenizer (old ids and merges kept, never a text split into more tokens), and ``adapt`` end to end."""

from __future__ import annotations

import json
import random

import pytest

from conftest import WORDS, spm_style_backend, synthetic_corpus
from tokenshift.data.documents import as_documents, split_documents, split_long
from tokenshift.tokenizer import Tokenizer
from tokenshift.tokenizer.core import roles_from_names
from tokenshift.train.superwords import (GPT2_PATTERN, _alternatives, check_never_longer, extend_with_superwords, merges_crossing_words,
                                         run_pre_tokenizer, widen_word_rule)

pytestmark = pytest.mark.usefixtures("one_thread")

DOMAIN_PHRASES = ("the file descriptor", "is not", "can be", "see also", "on success zero is returned", "the calling process",
                  "le descripteur de fichier", "page de manuel")


def domain_documents(n: int = 120, seed: int = 0) -> list[str]:
    """Documents of a made-up domain: its phrases, recurring, among the fixtures' words."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        sentences = [" ".join([rng.choice(DOMAIN_PHRASES), *rng.sample(WORDS, 3), rng.choice(DOMAIN_PHRASES)]) + "."
                     for _ in range(rng.randint(4, 10))]
        docs.append(" ".join(sentences))
    return docs


def random_strings(n: int = 3000, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    alphabet = "abcdefilnoprst éèà,.'\n\t1234-_ÜΩ北😀"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 50))) for _ in range(n)] + \
        [" ".join(rng.choice(DOMAIN_PHRASES + tuple(WORDS)) for _ in range(rng.randint(1, 12))) for _ in range(n)]


def test_one_big_file_is_cut_into_documents_at_paragraphs():
    paragraphs = [f"Heading {i}\n\n" + " ".join(["word"] * 300) + "\n" for i in range(40)]
    whole = "\n".join(paragraphs)
    parts = split_long(whole, target_bytes=4096)
    assert len(parts) > 5 and "".join(parts) == whole
    assert all(len(p.encode()) >= 4096 for p in parts[:-1])
    assert all(p.startswith("Heading") for p in parts[1:])  # cut at blank lines, so each part starts at a heading
    assert split_long("short text") == ["short text"]
    no_breaks = " ".join(["mot"] * 5000)
    assert "".join(split_long(no_breaks)) == no_breaks and len(split_long(no_breaks)) > 1  # at spaces, never inside a word
    assert as_documents(["a", whole]) == ["a", *parts]


def test_the_split_by_document_never_puts_a_document_on_both_sides():
    docs = [f"document {i} " * 20 for i in range(1000)]
    kept, held = split_documents(docs, 0.1, salt="x")
    assert not set(kept) & set(held) and len(kept) + len(held) == len(docs)
    assert 50 < len(held) < 150
    assert split_documents(docs, 0.1, salt="x") == (kept, held)  # the same text always splits the same way
    _, other = split_documents(docs, 0.1, salt="y")
    assert set(other) != set(held)  # another salt, another split
    _, inner = split_documents(kept, 0.1, salt="y")
    assert inner  # a second split of what the first kept still holds documents out


def test_adapt_splits_whole_documents_so_no_page_sits_on_two_sides():
    """Long pages are cut into parts only after the split: every part of a page lands on its page's side."""
    import re

    from tokenshift.data import TextSet
    from tokenshift.domain.run import AdaptConfig, split_domain

    pages = ["\n\n".join(f"p{i}x " * 150 for _ in range(16)) for i in range(120)]  # ~10 KB each, cut into parts
    sides = split_domain([TextSet("pages", pages)], AdaptConfig(text=("pages",)))
    assert sum(map(len, sides)) > len(pages)  # long pages were cut
    page_side: dict[str, int] = {}
    for index, parts in enumerate(sides):
        for part in parts:
            for page in set(re.findall(r"p\d+x", part)):
                assert page_side.setdefault(page, index) == index, page
    assert len(page_side) == len(pages) and all(sides)
    one_file = "\n\n".join(pages)  # one big file: split by its parts, all of it kept
    parts = split_domain([TextSet("manual", [one_file])], AdaptConfig(text=("manual",)))
    assert all(parts) and sorted(p for side in parts for p in side) == sorted(as_documents([one_file]))


def test_spread_sample_draws_from_every_document():
    from tokenshift.data.documents import spread_sample

    docs = ["".join(f"doc{i} line {j}\n" for j in range(400)) for i in range(10)]  # ~5.6 KB each
    sample = spread_sample(docs, 6000)
    assert 3000 < sum(len(d.encode()) for d in sample) < 9000
    assert len({d.split()[0] for d in sample}) >= 3  # not the leading document alone
    assert spread_sample(docs[:1], 10**6) == docs[:1]


def test_the_word_rule_widens_to_runs_of_words():
    llama3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    assert _alternatives(widen_word_rule(llama3))[1:3] == [r"(?:[^\r\n\p{L}\p{N}]?\p{L}+)(?: \p{L}+)*", r"\p{N}{1,3}"]
    assert r"(?: ?\p{L}+)(?: \p{L}+)*" in widen_word_rule(GPT2_PATTERN)
    assert widen_word_rule(r"\w+|\s+") is None
    with pytest.raises(ValueError, match="no word rule tokenshift knows"):
        run_pre_tokenizer({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": r"\w+|\s+"}, "behavior": "Isolated"}}, "odd")


def _byte_level_base(tiny_backend) -> Tokenizer:
    return Tokenizer(tiny_backend, name="tiny", special=roles_from_names(tiny_backend, adds_bos=False))


@pytest.mark.parametrize("style", ["byte-level", "sentencepiece"])
def test_superwords_keep_every_old_id_and_merge_and_never_split_more(style, tiny_backend):
    if style == "byte-level":
        base = _byte_level_base(tiny_backend)
    else:
        backend, _ = spm_style_backend()
        base = Tokenizer(backend, name="tiny-spm", special=roles_from_names(backend, adds_bos=True))
    docs = domain_documents()
    extension = extend_with_superwords(base, docs, vocab_size=base.vocab_size + 200, protect=synthetic_corpus(200), held_out_share=0.1)
    extended = extension.tokenizer
    old, new = json.loads(base.backend.to_str())["model"], json.loads(extended.backend.to_str())["model"]
    assert all(new["vocab"][token] == index for token, index in old["vocab"].items())  # every old token keeps its id
    assert new["merges"][: len(old["merges"])] == old["merges"]  # old merges first, in their order
    assert not extension.report.fallback and extension.superword_count > 0
    assert any(" " in example.strip() for example in extension.examples)
    texts = random_strings() + docs + synthetic_corpus(300, seed=5)
    assert check_never_longer(base, extended, texts) > 0
    for text in texts[:2000]:
        assert extended.decode(extended.encode(text)) == base.decode(base.encode(text))  # the same text back
    # the domain's unseen documents take fewer tokens
    unseen = domain_documents(30, seed=9)
    before = sum(len(base.encode(d)) for d in unseen)
    assert sum(len(extended.encode(d)) for d in unseen) < 0.9 * before


def test_no_shipped_style_base_merges_across_words(tiny_backend):
    assert merges_crossing_words(json.loads(tiny_backend.to_str())) == []


def test_train_extend_superbpe_reports_the_held_out_savings(tmp_path, tiny_model_dir):
    from tokenshift.train import TrainConfig, train_tokenizer

    text = tmp_path / "domain.jsonl"
    text.write_text("".join(json.dumps({"text": d}) + "\n" for d in domain_documents()))
    _, report = train_tokenizer([str(text)], TrainConfig(vocab_size=520, extend=str(tiny_model_dir), kind="superbpe", protect=(),
                                                         held_out=0.1), out=tmp_path / "tok")
    facts = json.loads((tmp_path / "tok" / "train.json").read_text())["superbpe"]
    assert facts["baseline"] == "the subword extension of the same size" and facts["superwords"] > 0
    assert facts["held_out_savings_vs_base"] > 0.1 and facts["never_longer_than_base_checked_bytes"] > 0
    assert report.base_vocab_size == 320


def test_adapt_end_to_end_on_a_tiny_model(tmp_path, tiny_model_dir):
    """The whole path: split, extend, transplant, heal, evaluate; a folder transformers loads, with its report."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tokenshift import AdaptConfig, adapt

    manual = tmp_path / "manual.txt"  # one big file: its paragraphs become the documents
    manual.write_text("\n\n".join(domain_documents(160)), encoding="utf-8")
    out = tmp_path / "adapted"
    report = adapt(str(tiny_model_dir), AdaptConfig(text=(str(manual),), minutes=0.3, new_tokens=150), out=out)
    assert {r.model for r in report.rows} == {"original", "zero-shot", "adapted"}
    assert sum(v["documents"] for v in report.split.values()) > 10 and report.split["held_out"]["documents"] >= 1
    held_before, held_after = report.row("held-out documents", "original"), report.row("held-out documents", "adapted")
    assert held_after.tokens_per_byte < held_before.tokens_per_byte
    for name in ("adapt.json", "adapt.html", "README.md", "config.json", "tokenizer.json"):
        assert (out / name).is_file(), name
    assert "held-out documents" in (out / "README.md").read_text()
    assert report.heal["recipe"] in (out / "adapt.html").read_text()  # the heal's section is on the page
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.get_input_embeddings().weight.shape[0] >= len(tokenizer)
    assert json.loads((out / "adapt.json").read_text())["new_tokens"] == report.new_tokens


def test_adapt_refuses_too_little_text_in_one_line(tmp_path, tiny_model_dir):
    from tokenshift import AdaptConfig, adapt

    small = tmp_path / "notes.txt"
    small.write_text("a few notes\n" * 100)
    with pytest.raises(ValueError, match="adapt needs at least 50,000"):
        adapt(str(tiny_model_dir), AdaptConfig(text=(str(small),)), out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_adapt_refuses_gguf_with_superwords_before_any_work(tmp_path, tiny_model_dir):
    """llama.cpp cannot cut text into superwords: the refusal comes first, not after a 15-minute heal."""
    from tokenshift import AdaptConfig, adapt
    from tokenshift.cli import main

    with pytest.raises(ValueError, match="add --kind bpe"):
        adapt(str(tiny_model_dir), AdaptConfig(text=("any.txt",), gguf=True), out=tmp_path / "out")
    AdaptConfig(text=("any.txt",), gguf=True, kind="bpe").check()
    assert main(["adapt", str(tiny_model_dir), "--text", "any.txt", "--gguf", "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_heal_takes_one_big_file_and_holds_out_its_last_paragraphs(tmp_path, tiny_model_dir):
    from tokenshift.heal import HealConfig
    from tokenshift.heal.run import training_texts

    manual = tmp_path / "manual.txt"
    manual.write_text("\n\n".join(domain_documents(40)), encoding="utf-8")
    documents, held = training_texts(HealConfig(text=(str(manual),), minutes=1))
    assert len(documents) > 1 and held and held[0].documents
    assert "".join(documents) + "".join(held[0].documents) == manual.read_text()
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("only a few words")
    with pytest.raises(ValueError, match="too little to hold some out for evaluation"):
        training_texts(HealConfig(text=(str(tiny),), minutes=1))


def test_adapt_says_when_the_adapted_model_is_worse_than_the_original():
    from tokenshift.domain.run import AdaptReport, AdaptRow, worse_than_original

    rows = [AdaptRow("held-out documents", "original", 0.37, 1.46, 100), AdaptRow("held-out documents", "adapted", 0.24, 1.24, 100),
            AdaptRow("wiki-en:test", "original", 0.21, 0.85, 100), AdaptRow("wiki-en:test", "adapted", 0.21, 1.72, 100)]
    report = AdaptReport(model="m", texts=["t"], split={}, vocab_size=1, new_tokens=1, superwords=0, rows=rows, train={}, transplant={},
                         heal={}, minutes=1.0, seconds=1.0, peak_rss_mb=1.0)
    (line,) = worse_than_original(report)
    assert line.startswith("on wiki-en:test the adapted model is +102.4% in bits per byte") and "keep the original" in line
