"""GGUF export checked by llama.cpp itself (through llama-cpp-python), not only by transformers' reader.

The real smollm2-135m is exported (f32 and q8_0); llama.cpp loads each file, tokenizes 1,000 varied
strings exactly as the Hugging Face tokenizer does, and gives the same log-probabilities of a short text
as transformers (the same id sequence fed to both). The product's case is checked too: a tokenizer
extended for French (it keeps SmolLM2's pre-tokenizer, with new merges), transplanted and exported.
So is the real gemma3-270m, whose SentencePiece-style vocabulary llama.cpp tokenizes by scores.

All tests here are slow: ``make test-slow`` builds llama-cpp-python from its sdist first (3.6 minutes
on 2 idle cores, 11 on 2 busy ones), then this file takes about 70 s; without ``llama_cpp`` importable
they skip. The llama.cpp settings (f32 KV cache, no repacked weights) are explained in :func:`llama_model`.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
LOGPROB_TOKENS = 100
# Bounds on llama.cpp's log-probabilities of the ~100 next tokens against transformers' on the HF model, in
# nats: (max per-token |difference|, |difference of the mean NLL|). Measured with llama-cpp-python 0.3.36 on
# an x86 CPU: f32 2.6e-5 max (4.5e-3 with llama.cpp's default f16 KV cache); q8_0 0.48 max, 0.011 mean
# (transformers on the same q8_0 file dequantized: 0.33 max, 0.005 mean; llama.cpp also quantizes activations).
LOGPROB_BOUNDS = {"f32": (1e-3, 1e-4), "q8_0": (1.0, 0.05)}

SKIP_REASON = ("llama_cpp is not importable: install llama-cpp-python (built from its sdist: 4 to 11 minutes on 2 cores; "
               "`make test-slow` does it, or pip install -c constraints.txt -e '.[llama]')")


# -- 1,000 varied strings, deterministic -------------------------------------------------------

CONTRACTIONS = [
    "don't", "I'VE", "we're", "you'll", "she'd", "it's", "they've", "can't", "won't", "Y'all'd've", "o'clock",
    "l'homme", "j'ai", "qu'il", "aujourd'hui", "c'est", "n'est-ce pas", "jusqu'à", "presqu'île", "s'il",
    "dell'anno", "l'acqua", "c'è", "po'", "all'una", "d'Italia",
    "del", "al", "¿qué?", "¡Hola!", "pa'l", "p'ra",
    "geht's", "wie geht’s", "hab'", "don’t", "l’école", "j’ai", "rock 'n' roll", "'quoted'", "''", "'s", "'S", "'LL",
]
PUNCTUATION = ["!", "?", ".", ",", ";", ":", "-", "—", "–", "…", "(", ")", "[", "]", "{", "}", "\"", "'", "«", "»", "„",
               "“", "”", "/", "\\", "|", "@", "#", "$", "%", "^", "&", "*", "+", "=", "<", ">", "~", "`", "_", "¿", "¡",
               "§", "°", "€", "£", "¥", "©", "®", "™", "•", "·", "¶", "†", "‰", "→", "⇒", "∀", "∑", "√", "∞", "≠", "≤"]
WHITESPACE = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", " \n", "\n ", " \t ", "\u00a0",
              "\u3000", "\u2009", "\u200b", "\f", "\v", "        "]
SCRIPTS = {
    "latin": ["café", "naïve", "façade", "Ångström", "ÉCOLE", "aÉcole", "über", "Straße", "smørrebrød", "Łódź", "Dvořák",
              "crème brûlée", "São Paulo", "İstanbul", "ñandú", "Œuvre", "æther", "ÀÉÎÕÜ", "ǅemal", "ﬁnance"],
    "cyrillic": ["Привет", "мир", "Москва", "съешь же ещё этих мягких французских булок", "Їжак", "ёлка", "ЩУКА", "Ђорђе"],
    "greek": ["Καλημέρα", "κόσμε", "ΑΘΗΝΑ", "λόγος", "ψυχή", "Ωμέγα", "ἀρχή", "ς σ Σ"],
    "cjk": ["北京大学", "日本語のテキスト", "東京タワー", "한국어", "안녕하세요", "中文分词测试", "ｶﾀｶﾅ", "ひらがな", "漢字かな交じり文", "。、「」"],
    "arabic": ["مرحبا", "العربية", "السلام عليكم", "١٢٣٤٥", "كتاب", "שלום", "עברית"],
    "indic": ["नमस्ते", "हिन्दी", "தமிழ்", "ภาษาไทย", "ສະບາຍດີ", "ქართული", "Հայերեն"],
    "emoji": ["😀", "👍🏽", "👨‍👩‍👧‍👦", "❤️", "🇫🇷", "🏳️‍🌈", "🤖🤖🤖", "✨", "🙂‍↔️", "☕", "1️⃣", "👩🏾‍💻"],
    "code": ["x = foo(1,2);", "if (a>=b) { return a**2 + b // 3; }", "def f(x):\n    return x", "<div class=\"a\">", "a->b",
             "i++", "#include <stdio.h>", "SELECT * FROM t;", "https://example.org/a?b=1&c=2", "user@example.com",
             "C:\\Windows\\path", "$HOME/.bashrc", "0x1F 0b1010 1e-9 3.14f"],
}
WORDS = ["the", "cat", "sat", "on", "a", "mat", "le", "chat", "mange", "une", "pomme", "el", "perro", "come", "pan",
         "tokens", "shift", "models", "read", "bytes", "Hello", "World", "HELLO", "wORLD", "Internationalization", "ok"]


def _number(rng: random.Random) -> str:
    digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 24)))
    form = rng.randrange(8)
    if form == 0:
        return f"{int(digits):,}"
    if form == 1:
        return f"-{digits}.{rng.randint(0, 99999)}"
    if form == 2:
        return f"{digits[:3]} {digits[3:]}".strip()
    if form == 3:
        return f"{rng.randint(0, 99)}%"
    if form == 4:
        return f"{rng.randint(1, 31):02d}/{rng.randint(1, 12):02d}/{rng.randint(1000, 2099)}"
    if form == 5:
        return f"v{rng.randint(0, 9)}.{rng.randint(0, 99)}.{rng.randint(0, 999)}"
    return digits


def _fragment(rng: random.Random) -> str:
    kind = rng.randrange(7)
    if kind == 0:
        return _number(rng)
    if kind == 1:
        return rng.choice(CONTRACTIONS)
    if kind == 2:
        return "".join(rng.choice(PUNCTUATION) for _ in range(rng.randint(1, 6)))
    if kind == 3:
        return rng.choice(WHITESPACE)
    if kind == 4:
        return rng.choice(WORDS)
    return rng.choice(SCRIPTS[rng.choice(sorted(SCRIPTS))])


def varied_strings(paragraphs: list[str], n: int = 1000, seed: int = 0) -> list[str]:
    """``n`` distinct strings: systematic cases first (every number length, every contraction, script
    sample, whitespace and punctuation run, alone and between words), then ``paragraphs``, then random
    mixtures of all of these."""
    rng = random.Random(seed)
    strings: list[str] = []
    strings += ["7" * k for k in range(1, 41)] + [("1234567890" * 4)[:k] for k in range(1, 41)]
    strings += [f"in {n_} years" for n_ in ("1", "12", "123", "1234", "12345", "123456", "1,234,567.89", "3.14159")]
    strings += CONTRACTIONS + [f"{c} {w}" for c in CONTRACTIONS[:20] for w in ("it", "là")]
    strings += [f"word{w}word" for w in WHITESPACE] + [f"{w}lead" for w in WHITESPACE] + [f"trail{w}" for w in WHITESPACE]
    strings += ["".join(PUNCTUATION[i:i + k]) for i in range(0, len(PUNCTUATION), 5) for k in (1, 3, 7)]
    strings += ["!!!", "???", "...", "?!?!", "----", "====", "....\n....", "  ,  ,  ", ")))(((", "'''", '"""']
    strings += [s for script in SCRIPTS.values() for s in script]
    strings += [f"{a} {b}" for a, b in zip(SCRIPTS["latin"], SCRIPTS["cyrillic"] + SCRIPTS["greek"] + SCRIPTS["cjk"])]
    strings += paragraphs
    while len(strings) < 10 * n:  # enough candidates for n distinct ones
        parts = [_fragment(rng) for _ in range(rng.randint(1, 12))]
        glue = rng.choice(["", " ", " ", " ", "\n", "\t", "  "])
        strings.append(glue.join(parts))
    unique = list(dict.fromkeys(s for s in strings if s))
    return unique[:n]


def wiki_paragraphs(per_language: int = 60) -> list[str]:
    from tokenshift.data import load_texts

    paragraphs: list[str] = []
    for language in ("en", "fr", "es"):
        documents = load_texts(f"wiki-{language}:test", max_bytes=60_000).documents
        lines = [line for document in documents for line in document.split("\n") if line.strip()]
        paragraphs += lines[:per_language]
        paragraphs += documents[:3]  # whole documents, newlines included
    return paragraphs


# -- llama.cpp helpers ---------------------------------------------------------------------------

def llama_tokenizer(path: Path):
    from llama_cpp import Llama

    return Llama(model_path=str(path), vocab_only=True, verbose=False)


def llama_model(path: Path, *, n_ctx: int = 512):
    from tokenshift.export.read_back import load_llama_cpp

    return load_llama_cpp(path, n_ctx=n_ctx)


def llama_cpp_logprobs(path: Path, ids: list[int]):
    """log p(ids[i+1] | ids[:i+1]) for every i, from llama.cpp's logits (float64 log-softmax)."""
    import numpy as np

    llm = llama_model(path)
    llm.eval(ids)
    scores = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
    llm.close()
    return _next_token_logprobs(scores, ids)


def transformers_logprobs(model, ids: list[int]):
    import torch

    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double().numpy()
    return _next_token_logprobs(logits, ids)


def _next_token_logprobs(logits, ids: list[int]):
    import numpy as np

    logits = logits[: len(ids) - 1]
    top = logits.max(axis=1, keepdims=True)
    logsumexp = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    return logits[np.arange(len(ids) - 1), ids[1:]] - logsumexp


def tokenization_mismatches(path: Path, tokenizer, strings: list[str]) -> list[str]:
    llm = llama_tokenizer(path)
    mismatches = []
    for text in strings:
        expected = tokenizer.encode(text)
        got = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if got != expected:
            mismatches.append(f"{text!r}: llama.cpp {got[:12]} vs HF {expected[:12]}")
    llm.close()
    return mismatches


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        pytest.skip(SKIP_REASON)
    return llama_cpp


@pytest.fixture(scope="module")
def assets(llama_cpp):
    from conftest import require_assets

    require_assets(MODEL, "smollm2", "wiki-en", "wiki-fr", "wiki-es")


@pytest.fixture(scope="module")
def exports(assets, tmp_path_factory) -> dict[str, Path]:
    from tokenshift.export import export_gguf

    folder = tmp_path_factory.mktemp("llama-cpp-gguf")
    return {dtype: export_gguf(MODEL, folder / f"{MODEL}-{dtype}.gguf", dtype=dtype).out for dtype in LOGPROB_BOUNDS}


@pytest.fixture(scope="module")
def hf(assets):
    from tokenshift.modeling import load_model

    return load_model(MODEL, dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def strings(assets) -> list[str]:
    return varied_strings(wiki_paragraphs())


def short_text_ids(loaded, spec: str = "wiki-en:test") -> list[int]:
    """The conditioning token (``<|endoftext|>``, as evaluate does) and the first ~100 ids of a document."""
    from tokenshift.data import load_texts

    document = load_texts(spec, max_bytes=4000).documents[0]
    return [loaded.tokenizer.conditioning_token(), *loaded.tokenizer.encode(document)[:LOGPROB_TOKENS]]


# -- tests ---------------------------------------------------------------------------------------

def test_the_strings_are_1000_distinct_and_varied(strings):
    assert len(strings) == len(set(strings)) == 1000
    joined = "".join(strings)
    for sample in ("\t", "\n\n", "   ", "1234567890", "l'homme", "Привет", "Καλημέρα", "北京", "مرحبا", "👨‍👩‍👧‍👦", "¿qué?"):
        assert sample in joined, sample


def test_llama_cpp_tokenizes_1000_strings_like_the_hf_tokenizer(exports, hf, strings):
    mismatches = tokenization_mismatches(exports["f32"], hf.tokenizer, strings)
    assert not mismatches, f"{len(mismatches)} of {len(strings)} differ; first: " + "; ".join(mismatches[:5])


@pytest.mark.parametrize("dtype", list(LOGPROB_BOUNDS))
def test_llama_cpp_logprobs_agree_with_transformers(dtype, exports, hf):
    import numpy as np

    ids = short_text_ids(hf)
    reference = transformers_logprobs(hf.model, ids)
    ours = llama_cpp_logprobs(exports[dtype], ids)
    error, mean_error = float(np.abs(ours - reference).max()), abs(float(ours.mean() - reference.mean()))
    print(f"{dtype}: max |Δ log p| {error:.2e} nats over {len(ids) - 1} tokens, mean NLL transformers {-reference.mean():.4f}, "
          f"llama.cpp {-ours.mean():.4f}")
    max_bound, mean_bound = LOGPROB_BOUNDS[dtype]
    assert math.isfinite(error) and error <= max_bound and mean_error <= mean_bound, (error, mean_error)


@pytest.fixture(scope="module")
def transplanted(assets, tmp_path_factory) -> Path:
    """smollm2's tokenizer extended with French merges (SmolLM2's pre-tokenizer kept), transplanted onto smollm2-135m."""
    from tokenshift.cli import main

    folder = tmp_path_factory.mktemp("extended")
    tokenizer, model = folder / "tokenizer", folder / "model"
    assert main(["train", "--text", "wiki-fr:train", "--vocab-size", "50176", "--extend", "smollm2", "--out", str(tokenizer)]) == 0
    assert main(["transplant", MODEL, str(tokenizer), "--out", str(model)]) == 0
    return model


def test_an_extended_transplanted_model_exports_and_llama_cpp_agrees(transplanted, strings, tmp_path):
    import numpy as np

    from tokenshift.data import load_texts
    from tokenshift.export import export_gguf
    from tokenshift.modeling import load_model

    report = export_gguf(str(transplanted), tmp_path / "extended.gguf")
    assert report.pre == "smollm" and report.tokenizer_ids == 50176
    loaded = load_model(str(transplanted), dtype="float32", device="cpu")
    french = load_texts("wiki-fr:test", max_bytes=60_000).documents
    paragraphs = [line for document in french for line in document.split("\n") if line.strip()]
    new_ids = [i for text in paragraphs for i in loaded.tokenizer.encode(text) if i >= 49152]
    assert len(new_ids) > 100  # the new merges are in use on this text
    mismatches = tokenization_mismatches(report.out, loaded.tokenizer, french + paragraphs + strings)
    assert not mismatches, f"{len(mismatches)} differ; first: " + "; ".join(mismatches[:5])
    ids = short_text_ids(loaded, "wiki-fr:test")
    error = float(np.abs(llama_cpp_logprobs(report.out, ids) - transformers_logprobs(loaded.model, ids)).max())
    print(f"extended f32: max |Δ log p| {error:.2e} nats over {len(ids) - 1} tokens")
    assert error <= LOGPROB_BOUNDS["f32"][0], error


# -- Gemma-3: a SentencePiece-style vocabulary (tokenizer.ggml.model = llama) --------------------

GEMMA = "gemma3-270m"
# Measured with llama-cpp-python 0.3.36 on an x86 CPU: max 4.6e-3 nats, mean NLL 1.0e-4 apart (SmolLM2: 2.6e-5).
# Not llama.cpp's fp16 GELU table (emulating it in transformers moves the max to 5.5e-3); Gemma's large
# activations (norm weights up to 62, embeddings scaled by sqrt(640)) magnify float32 rounding.
GEMMA_LOGPROB_BOUNDS = (1e-2, 1e-3)


@pytest.fixture(scope="module")
def gemma(llama_cpp, tmp_path_factory):
    from conftest import require_assets
    from tokenshift.export import export_gguf
    from tokenshift.modeling import load_model

    require_assets(GEMMA, "wiki-en", "wiki-fr", "wiki-es")
    report = export_gguf(GEMMA, tmp_path_factory.mktemp("gemma3-gguf") / f"{GEMMA}-f32.gguf")
    return report, load_model(GEMMA, dtype="float32", device="cpu")


def test_llama_cpp_tokenizes_1000_strings_like_the_gemma3_tokenizer(gemma):
    report, hf = gemma
    strings = varied_strings(wiki_paragraphs())
    assert (report.pre, report.token_types["byte"], report.token_types["user_defined"]) == ("default", 256, 165)
    mismatches = tokenization_mismatches(report.out, hf.tokenizer, strings)
    assert not mismatches, f"{len(mismatches)} of {len(strings)} differ; first: " + "; ".join(mismatches[:5])


def test_llama_cpp_gemma3_logprobs_agree_with_transformers(gemma):
    import numpy as np

    report, hf = gemma
    ids = short_text_ids(hf)  # <bos> first, as Gemma is run
    reference = transformers_logprobs(hf.model, ids)
    ours = llama_cpp_logprobs(report.out, ids)
    error, mean_error = float(np.abs(ours - reference).max()), abs(float(ours.mean() - reference.mean()))
    print(f"gemma3 f32: max |Δ log p| {error:.2e} nats over {len(ids) - 1} tokens, mean NLL transformers "
          f"{-reference.mean():.4f}, llama.cpp {-ours.mean():.4f}")
    assert math.isfinite(error) and error <= GEMMA_LOGPROB_BOUNDS[0] and mean_error <= GEMMA_LOGPROB_BOUNDS[1], (error, mean_error)
