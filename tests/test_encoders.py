"""Encoders without the merge list (longest-prefix, least-tokens) and StochasTok: round trips, minimality,
determinism, growth, and their use in evaluate and measure."""

from __future__ import annotations

import json
import random
from functools import lru_cache

import numpy as np
import pytest

from tokenshift.tokenizer.encoders import ENCODERS, StochasTok, get_encoder
from tokenshift.tokenizer.encoders.least_tokens import least_tokens
from tokenshift.tokenizer.encoders.stochastok import splits_of, stochastok
from tokenshift.tokenizer.encoders.vocabulary import pretoken_groups, vocabulary_index

ALPHABET = list("abcdefghijklmnopqrstuvwxyz      ..,,''!?0123456789\n\tTHE") + ["é", "ü", "ç", "北", "京", "😀", "ı", "ß"]
SPECS = ["canonical", "longest-prefix", "least-tokens", "stochastok:0.3:1"]
DEFAULTS = {"stochastok": "stochastok:0.2"}


def random_strings(count: int, seed: int, max_length: int = 24) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, max_length))) for _ in range(count)]


@lru_cache(maxsize=1)
def metaspace_tokenizer():
    """A SentencePiece-style BPE like Gemma's: ▁ for spaces (normalizer), no pre-tokenization, byte
    fallback for characters outside the vocabulary."""
    from tokenizers import Tokenizer as Backend, decoders, models, normalizers, pre_tokenizers, trainers

    from conftest import synthetic_corpus
    from tokenshift.tokenizer.core import Tokenizer, roles_from_names

    backend = Backend(models.BPE())
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.pre_tokenizer = pre_tokenizers.Split(" ", behavior="merged_with_previous")
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<eos>"], show_progress=False, max_token_length=8)
    backend.train_from_iterator([line.replace("北京", "").replace("😀", "") for line in synthetic_corpus()], trainer=trainer)
    spec = json.loads(backend.to_str())
    vocab = spec["model"]["vocab"]
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    spec["model"]["byte_fallback"] = True
    backend = Backend.from_str(json.dumps(spec))
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tokenizer = Tokenizer(backend, name="tiny-spm", special=roles_from_names(backend, adds_bos=False))
    assert tokenizer.kind == "metaspace"
    return tokenizer


def test_every_registered_encoder_encodes(tiny_tokenizer):
    """A smoke test generated from the registry: each encoder spells a sentence the canonical way spells it."""
    text = "le chat mange une pomme, 12345 über 北京"
    for name in ENCODERS:
        encoder = get_encoder(DEFAULTS.get(name, name))
        ids = encoder.encode_batch(tiny_tokenizer, [text])[0]
        assert tiny_tokenizer.decode(ids) == text, name
        spans = encoder.encode_with_offsets(tiny_tokenizer, text)
        assert spans.exact_offsets and spans.ends[-1] == len(text.encode("utf-8"))


@pytest.mark.parametrize("spec", SPECS)
def test_round_trip_on_random_strings(spec, tiny_tokenizer):
    texts = random_strings(10_000, seed=7)
    encoded = get_encoder(spec).encode_batch(tiny_tokenizer, texts)
    for text, ids in zip(texts, encoded):
        assert b"".join(tiny_tokenizer.token_bytes(i) for i in ids) == text.encode("utf-8")
    sample = range(0, len(texts), 10)
    assert all(tiny_tokenizer.decode(encoded[i]) == texts[i] for i in sample)


@pytest.mark.parametrize("spec", SPECS)
def test_round_trip_with_byte_fallback(spec):
    """Gemma-style vocabulary: ▁ spellings, characters it lacks spelled as <0xNN> bytes."""
    tokenizer = metaspace_tokenizer()
    texts = random_strings(2_000, seed=8)
    canonical = tokenizer.encode_batch(texts)
    for text, ids, reference in zip(texts, get_encoder(spec).encode_batch(tokenizer, texts), canonical):
        assert tokenizer.decode(ids) == tokenizer.decode(reference) == text
        if spec == "least-tokens":
            assert len(ids) <= len(reference)


def _fewest(index, data: bytes) -> int:
    """Brute force: the fewest tokens over every segmentation of ``data`` (ordinary tokens only)."""
    best = {len(data): 0}
    for start in range(len(data) - 1, -1, -1):
        options = [1 + best[end] for end in range(start + 1, len(data) + 1) if data[start:end] in index.ids and end in best]
        if options:
            best[start] = min(options)
    return best.get(0, -1)


def test_least_tokens_is_minimal_and_never_longer_than_canonical(tiny_tokenizer):
    index = vocabulary_index(tiny_tokenizer)
    rng = random.Random(3)
    pieces = [t for t in index.ids if len(t) <= 4]
    for _ in range(500):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 3)))[:10]
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        ids = least_tokens(index, data)
        assert ids is not None and b"".join(tiny_tokenizer.token_bytes(i) for i in ids) == data
        # every split (memoised recursion, checked against exhaustive enumeration on the shortest)
        assert len(ids) == _fewest(index, data)
        if len(data) <= 6:
            def all_splits(rest: bytes) -> list[int]:
                if not rest:
                    return [0]
                return [1 + n for end in range(1, len(rest) + 1) if rest[:end] in index.ids for n in all_splits(rest[end:])]
            assert len(ids) == min(all_splits(data))
    texts = random_strings(2_000, seed=11, max_length=60)
    least = get_encoder("least-tokens").encode_batch(tiny_tokenizer, texts)
    for text, ids, reference in zip(texts, least, tiny_tokenizer.encode_batch(texts)):
        assert len(ids) <= len(reference), text
    for groups in pretoken_groups(tiny_tokenizer, texts[:200]):  # and per pretoken, not only per text
        for group, free in groups:
            if free:
                data = b"".join(tiny_tokenizer.token_bytes(i) for i in group)
                assert len(least_tokens(index, data)) <= len(group)


def _reference_stochastok(ids, splits, p, rng):
    """The paper's loop: draw a position in the current list, replace its token by a random split."""
    ids = list(ids)
    uniform = rng.random((int(p * len(ids)), 2))
    for u, v in uniform:
        position = int(u * len(ids))
        choices = splits.get(ids[position])
        if choices:
            ids[position : position + 1] = list(choices[int(v * len(choices))])
    return ids


def test_stochastok_matches_the_plain_loop_is_deterministic_and_grows_by_p_n(tiny_tokenizer):
    from conftest import synthetic_corpus

    splits = splits_of(tiny_tokenizer)
    ids = [i for doc in tiny_tokenizer.encode_batch(synthetic_corpus(60, seed=4)) for i in doc]
    for seed in range(5):
        fast, _ = stochastok(ids, splits, 0.3, np.random.default_rng(seed))
        assert fast == _reference_stochastok(ids, splits, 0.3, np.random.default_rng(seed))
    transform = StochasTok(tiny_tokenizer, 0.1, seed=5)
    first = transform.split(ids, transform.rng(0))
    assert first == transform.split(ids, transform.rng(0))
    assert first != transform.split(ids, transform.rng(1)) != StochasTok(tiny_tokenizer, 0.1, seed=6).split(ids, transform.rng(0))
    assert b"".join(tiny_tokenizer.token_bytes(i) for i in first) == b"".join(tiny_tokenizer.token_bytes(i) for i in ids)
    # tokens of 3+ bytes can be split at every draw (their pieces mostly too): growth is about p * n
    long = [i for i in ids if len(tiny_tokenizer.token_bytes(i)) >= 3 and i in splits] * 5
    for p in (0.05, 0.1, 0.3):
        grown = len(StochasTok(tiny_tokenizer, p, seed=1).split(long, np.random.default_rng(0))) - len(long)
        assert 0.85 * p * len(long) <= grown <= p * len(long)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        StochasTok(tiny_tokenizer, 1.5)


def test_stochastok_keeps_byte_spans(tiny_tokenizer):
    text = "le chat mange une pomme et le perro come pan"
    transform = StochasTok(tiny_tokenizer, 0.5, seed=2)
    split = transform.split_encoded(tiny_tokenizer.encode_with_offsets(text), transform.rng(0))
    data = text.encode("utf-8")
    assert len(split.ids) > len(tiny_tokenizer.encode(text))
    assert [data[s:e] for s, e in zip(split.starts, split.ends)] == [tiny_tokenizer.token_bytes(i) for i in split.ids]


@pytest.mark.parametrize("spec, problem", [("nosuch", "unknown encoder 'nosuch'"), ("least-tokens:3", "takes no parameters"),
                                           ("stochastok", "needs a share"), ("stochastok:abc", "P must be a number"),
                                           ("stochastok:1.5", "needs P in [0, 1)")])
def test_bad_encoder_specs_say_what_to_do(spec, problem):
    with pytest.raises(ValueError) as error:
        get_encoder(spec)
    assert problem in str(error.value)


@pytest.mark.usefixtures("one_thread")
def test_evaluate_and_measure_take_an_encoder(tiny_model_dir, tiny_tokenizer, documents):
    from tokenshift.data import TextSet
    from tokenshift.evaluate import evaluate_loaded
    from tokenshift.measure import measure_tokenizer
    from tokenshift.modeling import load_model

    loaded = load_model(str(tiny_model_dir), device="cpu", dtype="float32")
    texts = TextSet("docs", documents)
    results = {spec: evaluate_loaded(loaded, texts, encoder=spec) for spec in SPECS}
    default = evaluate_loaded(loaded, texts)
    assert default.bits_per_byte == results["canonical"].bits_per_byte and default.encoder == "canonical"
    assert {r.bytes for r in results.values()} == {texts.n_bytes}
    assert results["least-tokens"].tokens <= results["canonical"].tokens < results["stochastok:0.3:1"].tokens
    assert results["stochastok:0.3:1"].encoder == "stochastok:0.3:1"
    assert all(np.isfinite(r.bits_per_byte) and r.bits_per_byte > 0 for r in results.values())
    for spec in SPECS:
        measured = measure_tokenizer(tiny_tokenizer, texts, encoder=spec)
        assert measured.round_trip_share == 1.0 and measured.encoder == spec
        assert measured.tokens == results[spec].tokens


@pytest.mark.slow
@pytest.mark.parametrize("name", ["smollm2", "gemma-3"])
def test_real_tokenizers_round_trip_under_every_encoder(name):
    from conftest import require_assets
    from tokenshift.data import load_texts
    from tokenshift.tokenizer import load_tokenizer

    require_assets(name, "wiki-fr")
    tokenizer = load_tokenizer(name)
    texts = load_texts("wiki-fr:test", max_bytes=20_000).documents + random_strings(500, seed=1)
    canonical = tokenizer.encode_batch(texts)
    for spec in SPECS[1:]:
        encoded = get_encoder(spec).encode_batch(tokenizer, texts)
        for text, ids, reference in zip(texts, encoded, canonical):
            assert tokenizer.decode(ids) == tokenizer.decode(reference)
            if spec == "least-tokens":
                assert len(ids) <= len(reference)



@pytest.mark.usefixtures("one_thread")
def test_heal_batches_split_the_student_tokens(tiny_tokenizer):
    from conftest import synthetic_corpus
    from tokenshift.heal.data import make_batch

    pieces = [" ".join(synthetic_corpus(3, seed=i)) for i in range(4)]
    plain = make_batch(pieces, tiny_tokenizer, None, seq_len=400)
    splitter = StochasTok(tiny_tokenizer, 0.2, seed=3)
    split = make_batch(pieces, tiny_tokenizer, None, seq_len=400, stochastok=splitter, stream=(5, 0))
    again = make_batch(pieces, tiny_tokenizer, None, seq_len=400, stochastok=splitter, stream=(5, 0))
    other_step = make_batch(pieces, tiny_tokenizer, None, seq_len=400, stochastok=splitter, stream=(6, 0))
    assert split.bytes == plain.bytes and plain.truncated == split.truncated == 0
    assert plain.tokens < split.tokens <= plain.tokens * 1.2 + 4
    assert split.student.input_ids.equal(again.student.input_ids) and not split.student.input_ids.equal(other_step.student.input_ids)
    with_teacher = make_batch(pieces, tiny_tokenizer, tiny_tokenizer, seq_len=400, stochastok=splitter, stream=(5, 0))
    assert with_teacher.tokens == split.tokens > with_teacher.teacher_tokens
    assert with_teacher.n_chunks > 0  # split tokens align with the teacher's canonical ones through their byte spans


@pytest.mark.usefixtures("one_thread")
def test_heal_with_stochastok_trains_on_split_tokens(tiny_model_dir, tmp_path):
    from tokenshift.heal.config import HealConfig, Stage
    from tokenshift.heal.run import heal

    corpus = tmp_path / "corpus.txt"
    from conftest import synthetic_corpus

    corpus.write_text("\n".join(synthetic_corpus(40, seed=2)), encoding="utf-8")
    base = dict(text=(str(corpus),), recipe="stages", steps=2, batch_size=2, seq_len=48, eval_bytes=0, log_every=0, keep_last=True,
                mixed_precision="no", stages=(Stage("all", lr=1e-3, warmup=0),), teacher=None, distill_weight=0.0)
    _, _, plain = heal(str(tiny_model_dir), config=HealConfig(**base))
    _, _, split = heal(str(tiny_model_dir), config=HealConfig(**base, stochastok=0.3), out=tmp_path / "healed")
    assert split.tokens > plain.tokens
    assert json.loads((tmp_path / "healed" / "heal.json").read_text())["config"]["stochastok"] == 0.3
    with pytest.raises(ValueError, match="stochastok splits the training tokens of the stages recipe"):
        HealConfig(**{**base, "recipe": "rows", "steps": None, "minutes": 1}, stochastok=0.1).check()
