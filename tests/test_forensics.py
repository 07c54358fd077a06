"""Tokenizer forensics: merge histories, pair counts along them, and mixture inference on planted mixtures."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from tokenshift.forensics import infer_mixture, merge_history, pair_trajectory
from tokenshift.forensics.pair_counts import _merge_word

# Three made-up languages: words built from disjoint-ish syllable sets with Zipf-like word frequencies.
SYLLABLES = {
    "ka": "ka ko ku ki ta to tu ma mo na".split(),
    "ela": "el la le ar re er an on en al".split(),
    "zu": "zu zi xu xa qu qe vu vo wa wi".split(),
}


def _language(name: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(SYLLABLES[name]) for _ in range(rng.randint(1, 4))) for _ in range(400)]


LEXICONS = {name: _language(name, i) for i, name in enumerate(SYLLABLES)}


def _documents(name: str, n_bytes: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lexicon = LEXICONS[name]
    weights = [1 / (rank + 1) for rank in range(len(lexicon))]
    docs, size = [], 0
    while size < n_bytes:
        doc = " ".join(rng.choices(lexicon, weights, k=40))
        docs.append(doc)
        size += len(doc) + 1
    return docs


def _train(corpus: list[str], merges: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from tokenshift.tokenizer.core import Tokenizer as Wrapper, roles_from_names

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=256 + merges, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(corpus, trainer=trainer)
    return Wrapper(backend, name="planted", special=roles_from_names(backend, adds_bos=False))


@pytest.mark.parametrize("truth", [{"ka": 0.6, "ela": 0.3, "zu": 0.1}, {"ka": 0.15, "ela": 0.25, "zu": 0.6}])
def test_recovers_a_planted_mixture(truth):
    total = 300_000
    corpus = [doc for i, (name, share) in enumerate(truth.items()) for doc in _documents(name, int(share * total), seed=10 + i)]
    random.Random(0).shuffle(corpus)
    tokenizer = _train(corpus, merges=300)
    samples = {name: _documents(name, 100_000, seed=100 + i) for i, name in enumerate(truth)}  # not the training text
    result = infer_mixture(tokenizer, samples, merges=300)
    assert set(result.shares) == set(truth)
    assert sum(result.shares.values()) == pytest.approx(1.0)
    error = max(abs(result.shares[name] - share) for name, share in truth.items())
    assert error < 0.03, (result.shares, truth)
    assert result.merges == 300 and result.constraints > 0 and result.rounds >= 1


def test_merge_history_reads_a_recovered_merge_list():
    """A ranks-style list (every pair spelling each token, ordered by the token's rank, as the tiktoken
    and GGUF conversions write it) gives back the trainer's own merges."""
    from tokenizers import Tokenizer as Backend

    from tokenshift.tokenizer.core import Tokenizer, roles_from_names

    trained = _train([doc for name in LEXICONS for doc in _documents(name, 30_000, seed=3)], merges=300).backend
    spec = json.loads(trained.to_str())
    vocab = spec["model"]["vocab"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in spec["model"]["merges"]]
    every = sorted(((vocab[t[:j]], vocab[t[j:]], vocab[t], t[:j], t[j:]) for t in vocab if len(t) > 1 for j in range(1, len(t))
                    if t[:j] in vocab and t[j:] in vocab and vocab[t[:j]] < vocab[t] and vocab[t[j:]] < vocab[t]),
                   key=lambda row: (row[2], row[0], row[1]))
    spec["model"]["merges"] = [[left, right] for _, _, _, left, right in every]
    assert len(spec["model"]["merges"]) > len(merges)  # the list really holds several spellings per token
    backend = Backend.from_str(json.dumps(spec))
    recovered = merge_history(Tokenizer(backend, name="ranks", special=roles_from_names(backend)))
    assert recovered == merges
    assert merge_history(Tokenizer(trained, name="trained", special=roles_from_names(trained)), 10) == merges[:10]


def test_pair_counts_follow_the_merges(tiny_tokenizer):
    """The stored changes give, at every step, exactly the counts of a recount from scratch."""
    from tokenshift.forensics import category_words

    from conftest import synthetic_corpus

    words = {"a": category_words(tiny_tokenizer, synthetic_corpus(60, seed=1)), "b": category_words(tiny_tokenizer, synthetic_corpus(30, seed=2))}
    merges = merge_history(tiny_tokenizer, 40)
    trajectory = pair_trajectory(words, merges)
    index = {pair: i for i, pair in enumerate(trajectory.pairs)}
    spelled = {c: {w: list(w) for w in ws} for c, ws in words.items()}
    for step in range(len(merges) + 1):
        if step in (0, 1, 7, 20, len(merges)):
            counts = trajectory.counts_at(step)
            for k, c in enumerate(words):
                recount: Counter[tuple[str, str]] = Counter()
                for w, symbols in spelled[c].items():
                    for pair in zip(symbols, symbols[1:]):
                        recount[pair] += words[c][w]
                assert all(counts[index[p], k] == n for p, n in recount.items())
                assert counts[:, k].sum() == sum(recount.values())
        if step < len(merges):
            left, right = merges[step]
            for c in spelled:
                for w, symbols in spelled[c].items():
                    syms = {s: i for i, s in enumerate(dict.fromkeys([*symbols, left, right, left + right]))}
                    names = list(syms)
                    merged = _merge_word([syms[s] for s in symbols], syms[left], syms[right], syms[left + right])
                    spelled[c][w] = [names[i] for i in merged]


def test_a_tokenizer_without_merges_is_refused():
    from tokenizers import Tokenizer as Backend, models

    from tokenshift.tokenizer.core import Tokenizer, roles_from_names

    backend = Backend(models.WordLevel({"a": 0, "b": 1}, unk_token="a"))
    with pytest.raises(ValueError, match="needs a BPE tokenizer"):
        merge_history(Tokenizer(backend, name="words", special=roles_from_names(backend)))


def test_cli_prints_shares_as_json(tiny_backend, tmp_path, capsys):
    from tokenshift.cli import main

    from conftest import synthetic_corpus

    path = tmp_path / "tok" / "tokenizer.json"
    path.parent.mkdir()
    tiny_backend.save(str(path))
    for name, seed in (("one", 1), ("two", 2)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in synthetic_corpus(80, seed=seed)))
    code = main(["infer-mixture", str(path), "--category", f"one={tmp_path / 'one.jsonl'}", f"two={tmp_path / 'two.jsonl'}",
                 "--merges", "30", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload["shares"]) == {"one", "two"}
    assert sum(payload["shares"].values()) == pytest.approx(1.0)
    assert payload["merges"] == 30 and "constraints" in payload and payload["solver"].startswith("HiGHS")


@pytest.mark.slow
def test_real_tokenizers_lean_to_english():
    """SmolLM2 and GPT-2 were trained mostly on English: their first merges say so against French and Spanish."""
    from conftest import require_assets

    require_assets("smollm2", "gpt2", "wiki-en", "wiki-fr", "wiki-es")
    samples = {lang: f"wiki-{lang}:validation" for lang in ("en", "fr", "es")}
    for name in ("smollm2", "gpt2"):
        result = infer_mixture(name, samples, merges=500, max_bytes=150_000)
        assert result.shares["en"] > 0.6, (name, result.shares)
