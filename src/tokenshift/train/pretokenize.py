"""Pretokenization patterns: GPT-4-style words, a chosen digit rule, and SuperBPE's looser stage-2 rule."""

from __future__ import annotations

import json
from typing import Literal

DigitScheme = Literal["single", "group3-left", "group3-right", "free"]
DIGIT_SCHEMES: tuple[str, ...] = ("single", "group3-left", "group3-right", "free")

DIGIT_RULES: dict[str, str] = {
    "single": r"\p{N}",
    "group3-left": r"\p{N}{1,3}",
    # 1-3 digits followed by a whole number of 3-digit groups: 1234567 -> 1|234|567
    "group3-right": r"\p{N}{1,3}(?=(?:\p{N}{3})*(?!\p{N}))",
    "free": r"\p{N}+",
}

CONTRACTIONS = r"'(?i:[sdmt]|ll|ve|re)"
WORD = r"[^\r\n\p{L}\p{N}]?+\p{L}+"
TAIL = r" ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"


def digit_rule(digits: str) -> str:
    if digits not in DIGIT_RULES:
        raise ValueError(f"unknown digit scheme {digits!r}; choose one of {', '.join(DIGIT_SCHEMES)}")
    return DIGIT_RULES[digits]


def word_pattern(digits: str = "group3-left") -> str:
    """cl100k's (GPT-4's) pretokenization regex with the digit rule swapped for ``digits``."""
    return f"{CONTRACTIONS}|{WORD}|{digit_rule(digits)}|{TAIL}"


def superword_pattern(digits: str = "group3-left") -> str:
    """SuperBPE's stage-2 rule: a run of words joined by single spaces is one pretoken.

    Each run starts where a stage-1 word (or contraction) starts and continues only over
    ``" " + letters``, so it is a union of whole stage-1 pretokens; newlines, digit groups and
    punctuation runs stay their own pretokens. The named group ``words`` marks the runs.
    """
    return f"(?P<words>(?:{CONTRACTIONS}|{WORD})(?: \\p{{L}}+)*)|{digit_rule(digits)}|{TAIL}"


def byte_level_pre_tokenizer_json(pattern: str) -> dict:
    """The tokenizer.json ``pre_tokenizer`` entry for regex split + byte-level mapping."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    probe = Tokenizer(models.BPE())
    # The named group is for our own chunk counting; the Rust regex needs it anonymous.
    probe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern.replace("(?P<words>", "(?:")), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    return json.loads(probe.to_str())["pre_tokenizer"]
