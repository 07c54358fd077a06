"""SuperBPE's transition chosen on held-out text: deterministic, never worse than BPE, honest reports."""

import json
import random

import pytest

from conftest import synthetic_corpus
from tokenshift.data import TextSet
from tokenshift.measure import savings_against, stage1_baseline
from tokenshift.tokenizer import load_tokenizer
from tokenshift.train import TrainConfig, train_tokenizer
from tokenshift.train.bpe import train_bpe
from tokenshift.train.heldout import blocks, hold_out
from tokenshift.train.pretokenize import word_pattern
from tokenshift.train.transition import count_tokens, truncate_bpe

PHRASES = ["of the", "in the", "par exemple", "de la", "is a", "il y a", "one of the best", "as well as"]


def phrase_corpus(lines: int, seed: int = 3) -> list[str]:
    """Words with recurring multi-word phrases: superwords pay here, on held-out lines too."""
    rng = random.Random(seed)
    return [f"{line} {rng.choice(PHRASES)} {rng.choice(PHRASES)} {rng.choice(PHRASES)}." for line in synthetic_corpus(lines, seed=seed)]


def shuffled_corpus(lines: int, seed: int = 0) -> list[str]:
    """Random word order over a small lexicon: no pair of words recurs more than chance allows, so
    superword tokens cannot pay on unseen lines."""
    rng = random.Random(seed)
    lexicon = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 7))) for _ in range(300)]
    return [" ".join(rng.choice(lexicon) for _ in range(rng.randint(5, 30))) for _ in range(lines)]


def write_corpus(folder, name: str, documents: list[str]):
    path = folder / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps({"text": d}) for d in documents) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def phrases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phrases")
    corpus = write_corpus(folder, "train", phrase_corpus(1500))
    tokenizer, report = train_tokenizer([str(corpus)], TrainConfig(vocab_size=600, kind="superbpe"), out=folder / "tok")
    return corpus, folder / "tok", tokenizer, report


def test_stage1_truncation_is_the_bpe_trained_to_that_size():
    docs = phrase_corpus(400)
    full = train_bpe(iter(docs), vocab_size=520, pattern=word_pattern("single"), special_tokens=["<|endoftext|>"])
    short = train_bpe(iter(docs), vocab_size=430, pattern=word_pattern("single"), special_tokens=["<|endoftext|>"])
    assert truncate_bpe(full, 430).to_str() == short.to_str()


def test_words_spelled_out_from_the_full_bpe_equal_the_cut_bpe_s_encoding():
    import numpy as np

    from tokenshift.train.superbpe import _encode_words, truncated_ids

    docs = phrase_corpus(400)
    full = train_bpe(iter(docs), vocab_size=520, pattern=word_pattern("single"), special_tokens=["<|endoftext|>"])
    words = sorted({w for doc in docs for w in doc.replace(" ", "\n ").split("\n")} | {"", " anticonstitutionnellement", "1234"})
    ids, lengths = _encode_words(full, words)
    for size in (300, 430, 519, 520):
        expected_ids, expected_lengths = _encode_words(truncate_bpe(full, size), words)
        got_ids, got_lengths = truncated_ids(full, ids, lengths, size)
        assert np.array_equal(got_lengths, expected_lengths) and np.array_equal(got_ids, expected_ids), size


def test_blocks_cut_only_where_a_pretoken_ends():
    doc = "".join(f"line {i} of text\n  indented {i}\n" for i in range(200))
    pieces = list(blocks(doc, block_chars=100))
    assert "".join(pieces) == doc and len(pieces) > 5
    assert all(p.endswith("\n") and not p.startswith(" ") for p in pieces[:-1])
    training, held = hold_out(iter([doc, "short one"]), share=0.3, block_chars=100)
    kept = list(training)
    assert sorted(kept + held.documents) == sorted([*pieces, "short one"]) and held.documents
    with pytest.raises(ValueError, match="held-out share must lie between 0 and 0.5"):
        hold_out(iter([doc]), share=0.7)


def test_auto_transition_is_reported_and_deterministic(phrases, tmp_path):
    corpus, folder, tokenizer, report = phrases
    choice = report.superbpe
    assert choice["mode"] == "auto" and not choice["fallback"] and choice["transition"] in (540, 510, 480)
    assert choice["candidates"][0]["transition"] == 540  # latest first
    kept = next(c for c in choice["candidates"] if c["transition"] == choice["transition"])
    assert kept["savings"] == choice["savings"] > 0.05
    written = json.loads((folder / "train.json").read_text())
    assert written["superbpe"] == choice and written["savings_vs_bpe"] == report.savings_vs_bpe
    assert (folder / "bpe" / "tokenizer.json").is_file() and tokenizer.vocab_size == 600
    train_tokenizer([str(corpus)], TrainConfig(vocab_size=600, kind="superbpe"), out=tmp_path / "again")
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == (folder / "tokenizer.json").read_bytes()
    assert json.loads((tmp_path / "again" / "train.json").read_text())["superbpe"]["candidates"] == [
        {**c, "seconds": c2["seconds"]} for c, c2 in zip(choice["candidates"], json.loads((tmp_path / "again" / "train.json").read_text())["superbpe"]["candidates"])]


def test_reported_savings_match_a_recount(phrases):
    corpus, folder, tokenizer, report = phrases
    bpe = load_tokenizer(folder / "bpe")
    documents = [json.loads(line)["text"] for line in corpus.read_text().splitlines()]
    recount = 1 - count_tokens(tokenizer.backend, documents) / count_tokens(bpe.backend, documents)
    assert report.savings_vs_bpe[str(corpus)] == pytest.approx(recount, abs=1e-6)
    training, held = hold_out(iter(documents), share=report.superbpe["held_out_share"])  # the same slice again
    list(training)  # the slice fills as the training text is read
    recount_held = 1 - count_tokens(tokenizer.backend, held.documents) / count_tokens(bpe.backend, held.documents)
    assert report.savings_vs_bpe["held-out"] == pytest.approx(recount_held, abs=1e-6) == report.superbpe["savings"]
    # measure finds the stage-1 BPE beside the tokenizer and counts the same
    baseline = stage1_baseline(str(folder))
    assert baseline is not None and stage1_baseline(str(corpus)) is None
    measured = savings_against(load_tokenizer(folder), baseline, TextSet("corpus", documents))
    assert measured.savings == pytest.approx(recount, abs=1e-9) and measured.tokens < measured.baseline_tokens


def test_savings_per_text_come_from_its_own_held_out_blocks(tmp_path, monkeypatch):
    import tokenshift.train.run as run
    from tokenshift.data import iter_documents

    first = write_corpus(tmp_path, "first", phrase_corpus(900, seed=3))
    second = write_corpus(tmp_path, "second", phrase_corpus(900, seed=4))
    entered = []
    assert len(list(iter_documents([str(first), str(second)], on_spec=entered.append))) == 1800 and entered == [0, 1]
    monkeypatch.setattr(run, "SAVINGS_MIN_HELD_BYTES", 1)  # the small corpora hold a few KB out each
    tokenizer, report = train_tokenizer([str(first), str(second)], TrainConfig(vocab_size=600, kind="superbpe"), out=tmp_path / "tok")
    bpe = load_tokenizer(tmp_path / "tok" / "bpe")
    share = report.superbpe["held_out_share"]
    for path in (first, second):
        documents = [json.loads(line)["text"] for line in path.read_text().splitlines()]
        training, held = hold_out(iter(documents), share=share)  # this text's blocks of the same slice
        list(training)
        recount = 1 - count_tokens(tokenizer.backend, held.documents) / count_tokens(bpe.backend, held.documents)
        assert report.savings_vs_bpe[str(path)] == pytest.approx(recount, abs=1e-6)
        assert report.savings_sample[str(path)].startswith("held out: ")
    monkeypatch.setattr(run, "SAVINGS_MIN_HELD_BYTES", 10**9)  # too little held out: the leading bytes, said so
    _, fallback = train_tokenizer([str(first)], TrainConfig(vocab_size=600, kind="superbpe"))
    assert fallback.savings_sample[str(first)].endswith("(trained on)")


def test_random_word_order_falls_back_to_bpe(tmp_path, caplog):
    corpus = write_corpus(tmp_path, "shuffled", shuffled_corpus(3000))
    with caplog.at_level("WARNING"):
        tokenizer, report = train_tokenizer([str(corpus)], TrainConfig(vocab_size=700, kind="superbpe"), out=tmp_path / "tok")
    assert report.superbpe["fallback"] and report.superbpe["transition"] is None
    assert "not better than BPE on the held-out slice" in caplog.text and "wrote the BPE instead" in report.superbpe["message"]
    bpe = load_tokenizer(tmp_path / "tok" / "bpe")
    assert (tmp_path / "tok" / "tokenizer.json").read_text() == (tmp_path / "tok" / "bpe" / "tokenizer.json").read_text()
    assert bpe.vocab_size == tokenizer.vocab_size and all(v == 0.0 for v in report.savings_vs_bpe.values())


def test_fixed_transition_is_checked_too(tmp_path):
    corpus = write_corpus(tmp_path, "train", phrase_corpus(1500))
    _, report = train_tokenizer([str(corpus)], TrainConfig(vocab_size=600, kind="superbpe", transition=0.8), out=tmp_path / "tok")
    assert report.superbpe["mode"] == "fixed" and [c["transition"] for c in report.superbpe["candidates"]] == [480]
    _, unchecked = train_tokenizer([str(corpus)], TrainConfig(vocab_size=600, kind="superbpe", transition=0.8, held_out=0))
    assert unchecked.superbpe is None and unchecked.savings_vs_bpe == {}


def test_bad_held_out_settings():
    with pytest.raises(ValueError, match="--held-out 0.6 must be a share between 0 and 0.5"):
        train_tokenizer(["x"], TrainConfig(vocab_size=600, kind="superbpe", held_out=0.6))
    with pytest.raises(ValueError, match="pass a --held-out share or a fixed --transition"):
        train_tokenizer(["x"], TrainConfig(vocab_size=600, kind="superbpe", held_out=0))


@pytest.mark.skipif(__import__("shutil").which("groff") is None, reason="needs groff")
def test_manual_page_rendering():
    from tokenshift.assets.registry import ASSETS, _pip_requirements
    from tokenshift.data.manpages import render_page, split_of

    source = (b'.TH DEMO 1 2024 "demo 1.0" "User Commands"\n.SH NAME\ndemo \\- show a page\n.SH DESCRIPTION\n'
              b".B demo\nreads one file of the list and writes it out again, as it is, to the standard output.\n")
    text = render_page(source)
    assert text.startswith("NAME\ndemo - show a page") or text.startswith("NAME\ndemo \u2010 show a page")
    assert "demo reads one file of the list and writes it out again, as it is, to the standard output." in text
    assert "User Commands" not in text and not any(line.startswith(" ") for line in text.splitlines())
    assert {split_of(f"page{i}.1") for i in range(200)} == {"train", "validation", "test"}
    assert _pip_requirements(ASSETS["man-fr"]) == [] and ASSETS["man-fr"].kind == "text"


def test_handbook_page_text_keeps_the_book_and_drops_the_furniture():
    from tokenshift.assets.registry import ASSETS, _pip_requirements
    from tokenshift.data.handbook import page_text

    html = ('<?xml version="1.0"?><html><head><title>6.2. apt</title><style>p {}</style></head><body>'
            '<div id="banner"><a href="x"><span class="text">Download the ebook</span></a></div>'
            '<p id="title"><a class="left" href="y">Site</a></p><ul class="docnav top"><li class="previous">Prev</li></ul>'
            '<div class="section"><h2 class="title"><a id="s"></a>6.2. Commands <code>apt</code> and   <code>apt-get</code></h2>'
            '<div class="toc"><dl><dt>6.2.1 Initialisation</dt></dl></div>'
            '<a id="i1" class="indexterm"></a><div class="para">\n\t\t\tAPT is a&nbsp;vast\n\t\t\tproject, <em>split</em> in two.\n\t\t</div>'
            '<pre class="screen"><code class="prompt">$ </code><strong>apt update</strong>\n  Hit:1 http://deb.debian.org\n</pre>'
            '<ul><li>one<br/>two</li><li>three</li></ul></div><ul class="docnav"><li>Next</li></ul></body></html>')
    text = page_text(html)
    assert text.splitlines() == ["6.2. Commands apt and apt-get", "APT is a\u00a0vast project, split in two.",
                                 "$ apt update", "  Hit:1 http://deb.debian.org", "one", "two", "three"]
    assert _pip_requirements(ASSETS["handbook-fr"]) == [] and ASSETS["handbook-en"].kind == "text"
