import math

import numpy as np
import pytest

from conftest import train_byte_level_bpe
from tokenshift.data import TextSet
from tokenshift.measure import compare_tokenizers, digit_scheme, measure_tokenizer, shared_byte_tokens, token_premium
from tokenshift.measure.metrics import renyi_efficiency
from tokenshift.tokenizer.core import Tokenizer, roles_from_names


def wrap(backend, name="t"):
    return Tokenizer(backend, name=name, special=roles_from_names(backend, adds_bos=False))


def word_level(vocab_words):
    """Whole words as tokens, spaces their own token: splits are known by construction."""
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, pre_tokenizers

    alphabet = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [" "]
    vocab = {"<|endoftext|>": 0, **{ch: i + 1 for i, ch in enumerate(alphabet)}}
    for word in vocab_words:
        vocab.setdefault(word, len(vocab))
    merges = []
    for word in vocab_words:  # merge left to right: w+o -> wo, wo+r -> wor, ...
        for i in range(1, len(word)):
            left, right = word[:i], word[i]
            vocab.setdefault(left, len(vocab))
            if (left, right) not in merges:
                merges.append((left, right))
    backend = Backend(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.add_special_tokens(["<|endoftext|>"])
    return wrap(backend, "words")


def test_hand_computed_measurements():
    tok = word_level(["cat", "sat"])
    # "cat sat mat": cat | ' ' | sat | ' ' | m a t  -> 7 tokens, 3 words, 1 split word ("mat")
    m = measure_tokenizer(tok, TextSet("t", ["cat sat mat"]))
    assert (m.tokens, m.words, m.bytes) == (7, 3, 11)
    assert m.bytes_per_token == pytest.approx(11 / 7)
    assert m.fertility == pytest.approx(7 / 3)
    assert m.split_word_share == pytest.approx(1 / 3)
    assert m.vocab_used == 6  # cat, ' ', sat, m, a, t
    assert m.round_trip_share == 1.0 and m.encode_mb_per_second > 0


def test_renyi_efficiency_formula():
    counts = np.array([5, 3, 2, 0, 0, 0, 0, 0])
    p = np.array([0.5, 0.3, 0.2])
    alpha = 2.5
    expected = math.log((p**alpha).sum()) / (1 - alpha) / math.log(8)
    assert renyi_efficiency(counts, 8, alpha) == pytest.approx(expected)
    assert 0 < renyi_efficiency(counts, 8, alpha) <= 1
    assert renyi_efficiency(counts, 8, 1.0) == pytest.approx(-(p * np.log(p)).sum() / math.log(8))
    assert renyi_efficiency(np.ones(16), 16, 2.5) == pytest.approx(1.0)


def test_token_premium_on_parallel_text(tiny_tokenizer):
    en = TextSet("en", ["the cat sat", "the dog"])
    fr = TextSet("fr", ["le chat est assis", "le chien"])
    premium = token_premium(tiny_tokenizer, fr, en)
    expected = sum(len(tiny_tokenizer.encode(d)) for d in fr.documents) / sum(len(tiny_tokenizer.encode(d)) for d in en.documents)
    assert premium.premium == pytest.approx(expected)
    with pytest.raises(ValueError, match="parallel text"):
        token_premium(tiny_tokenizer, TextSet("fr", ["un"]), en)


def digit_tokenizer(rule: str):
    """Byte-level BPE that knows every 1-3 digit group, so the pretokenization rule alone decides the split."""
    from tokenizers import Regex
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, pre_tokenizers

    from tokenshift.tokenizer.bytemap import byte_to_unicode
    from tokenshift.train.pretokenize import word_pattern

    vocab = {char: i for i, char in enumerate(byte_to_unicode().values())}
    merges = []
    for n in range(100):
        two = f"{n:02d}"
        vocab.setdefault(two, len(vocab))
        merges.append((two[0], two[1]))
    for n in range(1000):
        three = f"{n:03d}"
        vocab.setdefault(three, len(vocab))
        merges.extend([(three[:2], three[2]), (three[0], three[1:])])  # whichever pair BPE formed first
    backend = Backend(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(word_pattern(rule)), "isolated"),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    backend.decoder = decoders.ByteLevel()
    return wrap(backend, rule)


@pytest.mark.parametrize("rule", ["single", "group3-left", "group3-right", "free"])
def test_digit_schemes_are_recognised(rule):
    assert digit_scheme(digit_tokenizer(rule)) == rule


def test_free_digits_recognised():
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, pre_tokenizers

    vocab = {str(d): d for d in range(10)}
    vocab.update({"12": 10, "123": 11, " ": 12, "a": 13, "b": 14, "c": 15, "x": 16, "y": 17})
    backend = Backend(models.BPE(vocab=vocab, merges=[("1", "2"), ("12", "3")]))
    backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="isolated")
    backend.decoder = decoders.Fuse()
    assert digit_scheme(wrap(backend)) == "free"


def test_shared_vocabulary_across_spellings(tiny_tokenizer):
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, normalizers

    vocab = {"<unk>": 0, "</s>": 1, **{f"<0x{b:02X}>": 2 + b for b in range(256)}, "▁the": 258, "▁cat": 259, "zz": 260}
    sp = Backend(models.BPE(vocab=vocab, merges=[], byte_fallback=True, unk_token="<unk>"))
    sp.normalizer = normalizers.Replace(" ", "▁")
    sp.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    sp.add_special_tokens(["<unk>", "</s>"])
    metaspace = wrap(sp, "sp")
    shared = shared_byte_tokens(tiny_tokenizer, metaspace)
    assert b" the" in shared and b"zz" not in shared
    assert shared[b" the"] == (tiny_tokenizer.backend.token_to_id("Ġthe"), 258)
    assert b"<|endoftext|>" not in shared and b"</s>" not in shared  # specials excluded
    comparison = compare_tokenizers(tiny_tokenizer, metaspace)
    assert comparison.shared == len(shared)
    assert comparison.shared_share_a == pytest.approx(len(shared) / comparison.vocab_a)
