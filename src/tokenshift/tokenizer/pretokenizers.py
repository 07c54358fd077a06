"""llama.cpp's BPE pre-tokenizations, named by the GGUF key ``tokenizer.ggml.pre``, as ``tokenizers`` pre-tokenizers.

Before BPE, llama.cpp cuts text with a list of regexes chosen by ``tokenizer.ggml.pre``; each regex
cuts every piece the previous one left, and both the matches and the text between them become
pieces (``unicode_regex_split_stl`` keeps the gaps), then every piece is spelled in GPT-2's byte map::

    "abc 123"  ──\\p{N}──▶  "abc ", "1", "2", "3"  ──GPT-2 regex──▶  "abc", " ", "1", "2", "3"  ──bytes──▶  "abc", "Ġ", ...

In ``tokenizers`` terms that is ``Sequence[Split(Regex(r1), "isolated"), ..., ByteLevel(use_regex=False)]``.

Read from ggml-org/llama.cpp (the stored snapshot; commits per file):
- ``src/llama-vocab.cpp`` @00ad355e: ``llm_tokenizer_bpe`` (the ``LLAMA_VOCAB_PRE_TYPE_*`` switch that
  sets ``regex_exprs``) and ``llama_vocab::impl::load`` (name -> type, ``ignore_merges``; a
  ``tokenizer.ggml.model = llama`` vocabulary is SentencePiece and ignores ``pre``).
- ``src/unicode.cpp`` @0c4093cc: ``unicode_regex_split``; the GPT-2 and llama-3 regexes run as
  hand-written C++ (``unicode_regex_split_custom_gpt2`` / ``_llama3``), every other regex through
  ``std::regex`` on a text whose non-ASCII code points are collapsed to one byte per category.
- ``convert_hf_to_gguf_update.py`` @00bd27a6: the Hugging Face model each name was taken from.

Where llama.cpp's behaviour and the regex text differ, the regexes here follow llama.cpp (it is what
runs the model there); the comments at each regex say where.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..registry import lookup
from .bytemap import byte_level_to_bytes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreTokenization:
    """How llama.cpp cuts text before BPE for one ``tokenizer.ggml.pre`` value."""

    name: str  # llama.cpp's tokenizer.ggml.pre name (the canonical one where llama.cpp accepts several)
    regexes: tuple[str, ...]  # applied in order, each inside the pieces of the previous one (onig syntax)
    summary: str
    byte_level: bool = True  # GPT-2 style byte mapping after the split
    aliases: tuple[str, ...] = ()  # other names llama.cpp maps to the same type (flags such as clean_spaces may differ)
    hf_model: str | None = None  # the Hugging Face model convert_hf_to_gguf_update.py took the name from
    ignore_merges: bool = False  # llama.cpp takes a piece that is a whole vocabulary entry without merging


# --- the regexes -----------------------------------------------------------------------------------
# GPT-2. llama.cpp's list holds it without the final "|\s+", but that exact string is dispatched to
# unicode_regex_split_custom_gpt2, which ends with "regex: \s+" (a lone whitespace before a non-space),
# so llama.cpp behaves as the full GPT-2 regex below, which is also what tokenizers' ByteLevel(use_regex)
# runs. The C++ "\s+(?!\S)" branch (a run of n > 1 spaces followed by text gives n - 1, then the last
# space joins the word) equals the backtracking regex; tests/test_pretokenizers.py ports the C++ and
# checks the two agree.
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# Llama-3, as llama.cpp writes it: "(?i:'s|...)" spelled "'[sS]|..." (std::regex has no inline flags).
# Dispatched to unicode_regex_split_custom_llama3, which lower-cases with unicode_tolower: both match
# only ASCII s/t/r/e/v/m/l/d, whereas onig's "(?i:'s)" in Meta's tokenizer.json also matches "'ſ"
# (long s folds to s). Only that case differs; we follow llama.cpp.
LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Qwen2: Llama-3 with single digits. Runs through std::regex (no custom C++), which backtracks like onig.
QWEN2 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
         r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN35 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
          r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SEED_CODER = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}"
              r"| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+")
BAILINGMOE = (r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
              r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+")
# Tekken and GPT-4o (o200k) as llama.cpp rewrites them. llama.cpp's std::regex sees every non-ASCII
# letter as one collapsed byte, so it cannot tell \p{Lu} from \p{Ll}: "upper" becomes "a letter that is
# not a-z", "lower" "a letter that is not A-Z", and the \p{M} of the original class is dropped. So
# llama.cpp cuts combining marks (Devanagari vowel signs, viramas) off their letters and keeps "aÉcole"
# whole, where the original regex (Mistral's / OpenAI's) does neither. We follow llama.cpp.
_LETTERS_LOWER_RUN = r"((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+"
_LETTERS_UPPER_RUN = r"((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*"
_CONTRACTION = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
TEKKEN = (rf"[^\r\n\p{{L}}\p{{N}}]?{_LETTERS_LOWER_RUN}|[^\r\n\p{{L}}\p{{N}}]?{_LETTERS_UPPER_RUN}|\p{{N}}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT4O = (rf"[^\r\n\p{{L}}\p{{N}}]?{_LETTERS_LOWER_RUN}{_CONTRACTION}?|[^\r\n\p{{L}}\p{{N}}]?{_LETTERS_UPPER_RUN}{_CONTRACTION}?"
         r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# DeepSeek: literal code point ranges copied from llama.cpp (they came from DeepSeek's tokenizer.json).
# Six of these code points (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A) are written as \u escapes: they
# are canonical singletons that any NFC-normalising editor would silently turn into other code points.
_DEEPSEEK_LETTERS = (
    r"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-"
    "\u1f7d"
    r"ᾀ-ᾴᾶ-ᾼ"
    "\u1fbe"
    r"ῂ-ῄῆ-ῌῐ-"
    "\u1fd3"
    r"ῖ-"
    "\u1fdb"
    r"ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ"
    "\u2126"
    r"ℨ"
    "\u212a"
    r"-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+"
)
_DEEPSEEK_PUNCT = r"\s?[!-/:-~！-／：-～‘-‟　-。]+"
_DEEPSEEK_CJK = r"[一-龥ࠀ-一가-퟿]+"
_DEEPSEEK3_MAIN = (r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
                   r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_BLOOM = r" ?[^(\s|.,!?…。，、।۔،)]+"
_FALCON_PUNCT = r"[\p{P}\$\+<=>\^~\|`]+"  # tokenizers' Punctuation(): Unicode P plus ASCII symbols
_DEFAULT_PUNCT = r"[\p{P}\$\+<=>\^~\|]+"  # as falcon's, without the backtick


# Probe texts that tell the registered pre-tokenizations apart (and catch a missing digit split).
PROBE_TEXTS: tuple[str, ...] = (
    "1 12 123 1234 1234567 3.14 2023-01-01 10,000.50",
    "x1 x12 x123 x1234 1x 12x",
    "It's don't we're I've I'm you'll he'd",
    "IT'S DON'T WE'RE I'VE I'M YOU'LL HE'D 'S",
    "Wait!!! What... Really?! \"?!\" (yes) [no] {maybe}",
    "double  spaces   triple    quad",
    "tab\tseparated\t\tdouble tab",
    "line one\nline two\n\nparagraph\r\nwindows\n \n  \n",
    "   leading spaces",
    "trailing spaces   ",
    " \t mixed \t\n whitespace \n\t ",
    "end.\nnext!\n\nlast?\r\n",
    "北京大学 日本語のテキスト 한국어 텍스트",
    "Привет, мир! Ёлка",
    "مرحبا بالعالم ١٢٣",
    "हिन्दी में लिखा पाठ",
    "😀👍🏽 👨‍👩‍👧‍👦 ❤️ 🇫🇷",
    "naïve café Ångström ÉCOLE aÉcole",
    "abc123def COVID-19 iPhone15 HTTPServer camelCase",
    "x = foo(1,2); if (a>=b) { return a**2 + b // 3; }",
    "https://example.com/path?q=1&r=2#frag user@mail.org",
    "$100 + 5% = <tag> ^caret~ |pipe| `code` @at #hash",
    "def f(x):\n    return x\n\n\tpass\n",
    "！？ＡＢＣ　全角、句読点。 ½ ² Ⅻ",
)


def _entries() -> list[PreTokenization]:
    p = PreTokenization
    digits_then_gpt2 = (r"\p{N}", GPT2)
    return [
        # the names tokenshift's own assets carry first: matching_names lists in this order
        p("smollm", digits_then_gpt2, "every digit alone, then GPT-2's regex (SmolLM, SmolLM2)",
          hf_model="HuggingFaceTB/SmolLM-135M"),
        p("llama-bpe", (LLAMA3,), "Llama-3: contractions any case, digits in threes, punctuation keeps trailing newlines",
          aliases=("llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"),
          hf_model="meta-llama/Meta-Llama-3-8B", ignore_merges=True),
        p("qwen2", (QWEN2,), "Llama-3's regex with single digits (Qwen1.5/2/2.5/3)",
          aliases=("deepseek-r1-qwen", "kormo", "f2llmv2", "megrez"), hf_model="Qwen/Qwen1.5-7B"),
        p("gpt-2", (GPT2,), "GPT-2's regex: lower-case contractions, letter/number/other runs with one leading space",
          aliases=("phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
                   "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "exaone4"),
          hf_model="openai-community/gpt2"),
        # other llama.cpp types with GPT-2's regex
        p("mpt", (GPT2,), "GPT-2's regex (MPT)", hf_model="mosaicml/mpt-7b"),
        p("olmo", (GPT2,), "GPT-2's regex (OLMo 1.7)", hf_model="allenai/OLMo-1.7-7B-hf"),
        p("jais", (GPT2,), "GPT-2's regex (Jais)", hf_model="core42/jais-13b"),
        p("trillion", (GPT2,), "GPT-2's regex (Trillion)", hf_model="trillionlabs/Trillion-7B-preview"),
        p("granite-docling", (GPT2,), "GPT-2's regex (Granite Docling)", hf_model="ibm-granite/granite-docling-258M"),
        # digits alone, then GPT-2's regex
        p("starcoder", digits_then_gpt2, "every digit alone, then GPT-2's regex (StarCoder 2)", hf_model="bigcode/starcoder2-3b"),
        p("refact", digits_then_gpt2, "every digit alone, then GPT-2's regex (Refact)", hf_model="smallcloudai/Refact-1_6-base"),
        p("command-r", digits_then_gpt2, "every digit alone, then GPT-2's regex (Command-R)",
          hf_model="CohereForAI/c4ai-command-r-v01"),
        p("codeshell", digits_then_gpt2, "every digit alone, then GPT-2's regex (CodeShell)", hf_model="WisdomShell/CodeShell-7B"),
        p("exaone", digits_then_gpt2, "every digit alone, then GPT-2's regex (EXAONE 3)",
          hf_model="LGAI-EXAONE/EXAONE-3.0-7.8B-Instruct"),
        p("minerva-7b", digits_then_gpt2, "every digit alone, then GPT-2's regex (Minerva)",
          hf_model="sapienzanlp/Minerva-7B-base-v1.0"),
        p("mellum2", digits_then_gpt2, "every digit alone, then GPT-2's regex (Mellum 2)"),
        # llama.cpp types with Llama-3's regex, without Llama-3's ignore_merges
        p("dbrx", (LLAMA3,), "Llama-3's regex (DBRX)", hf_model="databricks/dbrx-base"),
        p("smaug-bpe", (LLAMA3,), "Llama-3's regex (Smaug)", hf_model="abacusai/Smaug-Llama-3-70B-Instruct"),
        p("chatglm-bpe", (LLAMA3,), "Llama-3's regex (GLM-4)", aliases=("glm4",), hf_model="THUDM/glm-4-9b-chat"),
        # llama.cpp types with Qwen2's regex
        p("stablelm2", (QWEN2,), "Qwen2's regex (StableLM 2)", hf_model="stabilityai/stablelm-2-zephyr-1_6b"),
        p("hunyuan", (QWEN2,), "Qwen2's regex (Hunyuan-A13B)", hf_model="tencent/Hunyuan-A13B-Instruct"),
        p("solar-open", (QWEN2,), "Qwen2's regex (Solar Open)", hf_model="upstage/Solar-Open-100B"),
        p("grok-2", (QWEN2,), "Qwen2's regex (Grok 2)", hf_model="alvarobartt/grok-2-tokenizer"),
        p("qwen35", (QWEN35,), "Qwen2's regex with combining marks inside words (Qwen3.5)", hf_model="Qwen/Qwen3.5-9B-Instruct"),
        p("seed-coder", (SEED_CODER,), "Qwen2's regex, punctuation without trailing newlines (Seed-Coder)",
          hf_model="ByteDance-Seed/Seed-Coder-8B-Base"),
        p("bailingmoe", (BAILINGMOE,), "Qwen2's regex, one newline per whitespace run (Ling)",
          aliases=("bailingmoe2", "llada-moe"), hf_model="inclusionAI/Ling-lite"),
        p("tekken", (TEKKEN,), "Mistral Tekken: case-split words, single digits (llama.cpp's rewrite, see TEKKEN)",
          hf_model="mistralai/Mistral-Nemo-Base-2407", ignore_merges=True),
        p("gpt-4o", (GPT4O,), "OpenAI o200k: case-split words with contractions, digits in threes (llama.cpp's rewrite)",
          aliases=("llama4", "kanana2", "talkie"), hf_model="Xenova/gpt-4o"),
        p("minimax-m2", (GPT4O,), "o200k's regex (MiniMax-M2)", hf_model="MiniMaxAI/MiniMax-M2"),
        p("deepseek-llm", (r"[\r\n]", _DEEPSEEK_LETTERS, _DEEPSEEK_PUNCT, r"\s+$", _DEEPSEEK_CJK, r"\p{N}+"),
          "DeepSeek LLM: newlines, Latin/Greek/Cyrillic words, punctuation, trailing spaces, CJK, number runs",
          hf_model="deepseek-ai/deepseek-llm-7b-base"),
        p("deepseek-coder", (r"[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", _DEEPSEEK_CJK, r"\p{N}"),
          "DeepSeek Coder: newlines, words, punctuation, CJK, single digits", hf_model="deepseek-ai/deepseek-coder-6.7b-base"),
        p("deepseek-v3", (r"\p{N}{1,3}", r"[一-龥぀-ゟ゠-ヿ]+", _DEEPSEEK3_MAIN),
          "DeepSeek V3: digits in threes, CJK/kana runs, then words with marks", hf_model="deepseek-ai/DeepSeek-V3"),
        p("falcon", (_FALCON_PUNCT, GPT2, r"[0-9][0-9][0-9]"),
          "Falcon: punctuation runs, GPT-2's regex, ASCII digits in threes", hf_model="tiiuae/falcon-7b"),
        p("default", (_DEFAULT_PUNCT, GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"),
          "llama.cpp's fallback for a BPE GGUF without tokenizer.ggml.pre (it warns: quality degraded)"),
        p("poro-chat", (_BLOOM,), "BLOOM's split: words with one leading space, punctuation alone",
          hf_model="LumiOpen/Poro-34B-chat"),
        p("bloom", (_BLOOM,), "BLOOM's split: words with one leading space, punctuation alone", hf_model="bigscience/bloom"),
        p("gpt3-finnish", (_BLOOM,), "BLOOM's split (GPT-3 Finnish)", hf_model="TurkuNLP/gpt3-finnish-small"),
        p("viking", (_BLOOM, r"\p{N}"), "BLOOM's split, then every digit alone (Viking)", hf_model="LumiOpen/Viking-7B"),
        p("chameleon", (r"<sentinel:[0-9]+>", r"(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", r"([\t\n]|    |  )", r"\p{N}",
                        r"[\p{P}!-/:-@\[-`{-~]", GPT2),
          "Chameleon: sentinel and image tokens, tabs/newlines/space pairs, digits, punctuation, then GPT-2's regex",
          hf_model="facebook/chameleon-7b"),
        # not byte-level: Gemma 4 is SentencePiece-style BPE on raw UTF-8 with spaces spelled ▁
        p("gemma4", (r"[^\n]+|[\n]+",), "Gemma 4: only newline runs are cut; raw UTF-8, spaces escaped to ▁ (no byte map)",
          byte_level=False, aliases=("granite-embed-multi-311m",)),
    ]


def _registry(entries: Iterable[PreTokenization]) -> dict[str, PreTokenization]:
    canonical = list(entries)
    table = {entry.name: entry for entry in canonical}
    for entry in canonical:
        for alias in entry.aliases:
            assert alias not in table, f"pre-tokenization name {alias!r} registered twice"
            table[alias] = entry
    return table


PRE_TOKENIZATIONS: dict[str, PreTokenization] = _registry(_entries())

# tokenizer.ggml.model = "llama" (SentencePiece): llama.cpp forces pre-type DEFAULT and never runs a
# regex; the whole text goes to the SentencePiece merges (spaces become ▁, a leading one only if
# tokenizer.ggml.add_space_prefix). convert_hf_to_gguf.py writes pre = "default" for these (Gemma 3 does).
SENTENCEPIECE = PreTokenization(
    "default", (), "SentencePiece (tokenizer.ggml.model = llama): no pre-tokenizer split; spaces are spelled ▁",
    byte_level=False,
)


def get_pre_tokenization(name: str) -> PreTokenization:
    """The registered pre-tokenization llama.cpp runs for ``tokenizer.ggml.pre = name`` (aliases resolve)."""
    return lookup(PRE_TOKENIZATIONS, name, what="llama.cpp pre-tokenizer (tokenizer.ggml.pre)")


def gguf_pre_tokenization(model: str, pre: str | None) -> PreTokenization:
    """What llama.cpp runs for a GGUF's (``tokenizer.ggml.model``, ``tokenizer.ggml.pre``) pair."""
    if model == "llama":
        return SENTENCEPIECE
    if model == "gemma4":
        return PRE_TOKENIZATIONS["gemma4"]
    if model != "gpt2":
        raise ValueError(f"tokenizer.ggml.model {model!r} is not a BPE vocabulary llama.cpp pre-tokenizes "
                         "(only 'gpt2', 'gemma4' and SentencePiece 'llama' are described here)")
    if not pre:
        logger.warning("GGUF has no tokenizer.ggml.pre; llama.cpp falls back to 'default' and warns of degraded quality")
        return PRE_TOKENIZATIONS["default"]
    return get_pre_tokenization(pre)


def pre_tokenizer_json(name: str) -> dict[str, Any]:
    """The tokenizer.json ``pre_tokenizer`` entry that cuts text as llama.cpp does for ``name``.

    Byte-level names: ``Sequence[Split(Regex, "Isolated") ..., ByteLevel(add_prefix_space=False, use_regex=False)]``.
    """
    entry = get_pre_tokenization(name)
    if not entry.regexes:
        raise ValueError(f"{name!r} has no pre-tokenizer split (SentencePiece); build its tokenizer with a ▁ normalizer instead")
    steps: list[dict[str, Any]] = [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False} for regex in entry.regexes
    ]
    if entry.byte_level:
        steps.append({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False})
    return {"type": "Sequence", "pretokenizers": steps}


def _field_text(reader: Any, key: str, path: Path) -> str | None:
    from gguf import GGUFValueType

    field = reader.fields.get(key)
    if field is None:
        return None
    if field.types != [GGUFValueType.STRING]:
        raise ValueError(f"{path}: {key} should be a string, found {[t.name for t in field.types]}; the GGUF is malformed")
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def gguf_tokenizer_kind(path: str | Path) -> tuple[str, str | None]:
    """(``tokenizer.ggml.model``, ``tokenizer.ggml.pre`` or None) of a GGUF file; tensors stay on disk (memory-mapped)."""
    from gguf import GGUFReader

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}; pass the path of a .gguf file")
    reader = GGUFReader(str(path), "r")
    model = _field_text(reader, "tokenizer.ggml.model", path)
    if model is None:
        raise ValueError(f"{path} has no tokenizer.ggml.model key; it is not a GGUF with a vocabulary (llama.cpp needs one)")
    return model, _field_text(reader, "tokenizer.ggml.pre", path)


@lru_cache(maxsize=256)
def _pre_tokenizer_from_json(entry_json: str) -> Any:
    from tokenizers import Tokenizer, models

    shell = json.loads(Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")).to_str())
    shell["pre_tokenizer"] = json.loads(entry_json)
    return Tokenizer.from_str(json.dumps(shell)).pre_tokenizer


def _as_pre_tokenizer(pre_tokenizer: Any) -> Any:
    """A ``tokenizers`` PreTokenizer (or None) from an object, a Tokenizer (tokenizers' or tokenshift's),
    a tokenizer.json ``pre_tokenizer`` entry or a whole tokenizer.json dict."""
    if isinstance(pre_tokenizer, dict):
        entry = pre_tokenizer.get("pre_tokenizer") if "model" in pre_tokenizer else pre_tokenizer
        return None if entry is None else _pre_tokenizer_from_json(json.dumps(entry, sort_keys=True))
    if pre_tokenizer is None or hasattr(pre_tokenizer, "pre_tokenize_str"):
        return pre_tokenizer
    if hasattr(pre_tokenizer, "pre_tokenizer"):  # a tokenizers.Tokenizer
        return pre_tokenizer.pre_tokenizer
    if hasattr(getattr(pre_tokenizer, "backend", None), "pre_tokenizer"):  # tokenshift's Tokenizer
        return pre_tokenizer.backend.pre_tokenizer
    raise TypeError(f"expected a tokenizers pre-tokenizer, a Tokenizer or a tokenizer.json dict, got {type(pre_tokenizer).__name__}")


def _pieces(pre_tokenizer: Any, text: str) -> list[tuple[str, tuple[int, int]]]:
    backend = _as_pre_tokenizer(pre_tokenizer)
    if backend is None:
        return [(text, (0, len(text)))] if text else []
    return backend.pre_tokenize_str(text)


def pretokens(pre_tokenizer: Any, text: str) -> list[str]:
    """The pieces ``pre_tokenizer`` cuts ``text`` into, as substrings of ``text`` (offsets, so no Ġ spelling)."""
    return [text[start:end] for _, (start, end) in _pieces(pre_tokenizer, text)]


def _keeps_text(pieces: list[tuple[str, tuple[int, int]]], text: str) -> bool:
    """Whether every piece spells exactly its span of ``text``, raw or in the byte map (no added prefix space, no ▁)."""
    for piece, (start, end) in pieces:
        span = text[start:end]
        if piece != span and byte_level_to_bytes(piece) != span.encode("utf-8"):
            return False
    return True


@lru_cache(maxsize=None)
def _registered_splits(name: str, texts: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    entry = _pre_tokenizer_from_json(json.dumps(pre_tokenizer_json(name), sort_keys=True))
    return tuple(tuple(pretokens(entry, text)) for text in texts)


def matching_names(pre_tokenizer: Any, *, texts: Iterable[str] = PROBE_TEXTS) -> list[str]:
    """Every registered byte-level name (canonical, in registry order) that cuts ``texts`` as ``pre_tokenizer`` does.

    The first is the one to write as ``tokenizer.ggml.pre``; aliases of a match are in its ``aliases``.
    A pre-tokenizer that changes the text (adds a prefix space, spells ▁) matches nothing: llama.cpp's
    BPE never does that. Only the pre-tokenizer is compared, not the normalizer (Qwen2.5's NFC, say).
    """
    probe = tuple(texts)
    backend = _as_pre_tokenizer(pre_tokenizer)
    splits = []
    for text in probe:
        pieces = _pieces(backend, text)
        if not _keeps_text(pieces, text):
            return []
        splits.append(tuple(text[start:end] for _, (start, end) in pieces))
    wanted = tuple(splits)
    names = [name for name, entry in PRE_TOKENIZATIONS.items() if entry.name == name and entry.byte_level]
    return [name for name in names if _registered_splits(name, probe) == wanted]


def pretokenization_differences(pre_tokenizer: Any, name: str, *, texts: Iterable[str] = PROBE_TEXTS,
                                ) -> list[tuple[str, list[str], list[str]]]:
    """(text, pieces of ``pre_tokenizer``, pieces llama.cpp cuts for ``name``) for every text where the two differ."""
    expected = pre_tokenizer_json(name)
    return [(text, got, want) for text in texts
            if (got := pretokens(pre_tokenizer, text)) != (want := pretokens(expected, text))]
