import json

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import synthetic_corpus
from tokenshift.tokenizer import load_tokenizer
from tokenshift.train import TrainConfig, train_tokenizer
from tokenshift.train import merges as merges_module
from tokenshift.train.bpe import train_bpe
from tokenshift.train.merges import continue_merges, encode_chunks, learn_merges
from tokenshift.train.pretokenize import word_pattern
from tokenshift.train.superbpe import count_word_runs, encode_word_runs, train_superbpe

PHRASES = ["of the", "in the", "par exemple", "de la", "is a", "il y a", "one of the best"]


def phrase_corpus(lines: int = 600) -> list[str]:
    """Synthetic text where some multi-word phrases recur, so superword merges have something to learn."""
    import random

    rng = random.Random(3)
    base = synthetic_corpus(lines, seed=11)
    return [f"{line} {rng.choice(PHRASES)} {rng.choice(PHRASES)}, 1234567.\nNew line {i}" for i, line in enumerate(base)]


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "train.jsonl"
    path.write_text("\n".join(json.dumps({"text": t}) for t in phrase_corpus()) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(corpus_file, tmp_path_factory):
    out = {}
    for kind, size in (("bpe", 430), ("superbpe", 600)):
        folder = tmp_path_factory.mktemp(kind) / "tok"
        config = TrainConfig(vocab_size=size, kind=kind, special_tokens=("<|endoftext|>",), transition=420)
        tokenizer, report = train_tokenizer([str(corpus_file)], config, out=folder)
        out[kind] = (tokenizer, report, folder)
    return out


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(text=TEXT)
@pytest.mark.parametrize("kind", ["bpe", "superbpe"])
def test_round_trip(trained, kind, text):
    tokenizer = trained[kind][0]
    assert tokenizer.decode(tokenizer.encode(text)) == text


def test_bpe_matches_hf_trainer(corpus_file, trained):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(word_pattern("group3-left")), "isolated"),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    hf.decoder = decoders.ByteLevel()
    hf.train_from_iterator(phrase_corpus(), trainers.BpeTrainer(vocab_size=430, special_tokens=["<|endoftext|>"],
                                                                 initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    ours = trained["bpe"][0]
    held_out = synthetic_corpus(50, seed=99)
    assert [ours.encode(t) for t in held_out] == [e.ids for e in hf.encode_batch(held_out, add_special_tokens=False)]


def test_superbpe_compresses_phrases_and_respects_limits(trained):
    bpe, superbpe = trained["bpe"][0], trained["superbpe"][0]
    text = "\n".join(phrase_corpus(100))
    assert len(superbpe.encode(text)) < 0.95 * len(bpe.encode(text))
    vocab = superbpe.vocab_bytes()
    superwords = [b for b in vocab[420:] if b is not None and regex.search(rb"[a-z] [a-z]", b)]
    assert superwords, "stage 2 learned no token spanning a space"
    for token in vocab[420:]:
        assert token is not None and b"\n" not in token
        assert not regex.search(rb"\d", token)
        assert len(regex.findall(r"\p{L}+", token.decode("utf-8", "replace"))) <= 4


def test_superbpe_encoding_reproduces_trained_merges():
    docs = phrase_corpus(300)
    runs, counted = count_word_runs(docs, "single")
    stage1 = train_bpe(counted, vocab_size=400, pattern=word_pattern("single"), special_tokens=[])
    merges = continue_merges(stage1, runs, n_merges=150, max_token_pieces=3)
    final = train_superbpe(docs, vocab_size=stage1.get_vocab_size() + len(merges), digits="single", special_tokens=[], transition=400, max_words=3)
    rank = {pair: i for i, pair in enumerate(merges)}
    checked = 0
    for run in list(runs)[:300]:
        pieces = [stage1.id_to_token(i) for i in stage1.encode(run, add_special_tokens=False).ids]
        while True:  # reference BPE over the stage-1 pieces with the stage-2 merges, lowest rank first
            candidates = [(rank[(a, b)], i) for i, (a, b) in enumerate(zip(pieces, pieces[1:])) if (a, b) in rank]
            if not candidates:
                break
            _, i = min(candidates)
            pieces[i : i + 2] = [pieces[i] + pieces[i + 1]]
        assert final.encode(run, add_special_tokens=False).tokens == pieces
        checked += 1
    assert checked == 300


TRICKY_RUNS = [
    "don't stop the music", "'s the thing", "'LL BE there", "it's 'tis", "\tfoo bar", "\u00a0foo bar baz",
    " leading space here", "(paren word here", "x  y z", "naïve café über", "日本語 テキスト です", "Ωmega ßeta",
    "a\u2028b c", "ǅemal x y", "e\u0301t e\u0301 a", "tab\there now", "émoji 😀 word", "ʼmod ʼletter x",
    "x\u3000y z", "a\u200bb c d", "\u00adsoft hy\u00adphen", "l'été à l'école", "ﬁne ﬂow", "ｆｕｌｌ ｗｉｄｔｈ",
    "of the<|endoftext|>of the", "\r\nwin dows", "x\x00y z", "ß ẞ ǈ ǉ", "ᾈ ᾐ ῼ",
]


@pytest.fixture(scope="module")
def stage1():
    docs = phrase_corpus(300)
    return train_bpe(count_word_runs(docs, "single")[1], vocab_size=400, pattern=word_pattern("single"), special_tokens=["<|endoftext|>"])


def assert_same_segmentation(stage1, docs: list[str]) -> None:
    runs, counted = count_word_runs(docs, "single")
    list(counted)  # the runs are counted as the documents go by
    fast, whole = encode_word_runs(stage1, runs), encode_chunks(stage1, runs)
    for name in ("ids", "lengths", "counts"):
        assert getattr(fast, name).tolist() == getattr(whole, name).tolist(), name


def test_word_runs_encode_word_by_word(stage1):
    assert_same_segmentation(stage1, TRICKY_RUNS)
    assert_same_segmentation(stage1, phrase_corpus(200))


@settings(max_examples=200, deadline=None)
@given(docs=st.lists(st.text(alphabet=st.one_of(st.sampled_from(list("ab éß'’ \t\n\u00a0\u3000.,-1")), st.characters(blacklist_categories=("Cs",))),
                             max_size=40), max_size=5))
def test_word_runs_encode_word_by_word_on_any_text(stage1, docs):
    assert_same_segmentation(stage1, docs)


@pytest.mark.parametrize("special", ["of the", "exemple"])
def test_word_runs_holding_special_tokens(special):
    """A special token inside a word stays with its word; one with a space makes each run encode whole."""
    docs = phrase_corpus(100)
    stage1 = train_bpe(iter(docs), vocab_size=300, pattern=word_pattern("single"), special_tokens=[special])
    assert_same_segmentation(stage1, docs)


@pytest.mark.parametrize("seed", range(4))
def test_cutting_at_a_floor_changes_no_merge(monkeypatch, seed):
    """Cutting at pairs rarer than a floor learns the merges learned from every pair, whether the floor
    is shown to hold (the cheap path) or not (the fallback)."""
    import random

    rng = random.Random(seed)
    docs = [f"{line} {rng.choice(PHRASES)} {rng.choice(PHRASES)}" for line in synthetic_corpus(400 + 200 * seed, seed=seed)]
    runs, counted = count_word_runs(docs, "single")
    base = train_bpe(counted, vocab_size=330 + 20 * seed, pattern=word_pattern("single"), special_tokens=[])
    segmentation = encode_word_runs(base, runs)
    held: list[bool] = []
    check = merges_module._floor_held

    def recorded_check(*args) -> bool:
        held.append(check(*args))
        return held[-1]

    monkeypatch.setattr(merges_module, "_floor_held", recorded_check)
    learned = {}
    for floor in (0, 3, 4, 5, 6, 8, 12, 20, 10**6):
        monkeypatch.setattr(merges_module, "_guess_floor", lambda distinct, n_merges, floor=floor: floor)
        learned[floor] = learn_merges(base, segmentation, n_merges=60, max_token_pieces=3)
    assert all(merges == learned[0] for merges in learned.values())
    assert set(held) == {True, False}  # the floor check both held and failed


def test_extension_keeps_every_old_id(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path / "base")
    (tmp_path / "new.txt").write_text("\n".join(phrase_corpus(200)), encoding="utf-8")
    extended, report = train_tokenizer([str(tmp_path / "new.txt")], TrainConfig(vocab_size=tiny_tokenizer.vocab_size + 60, extend=str(tmp_path / "base"),
                                                                                protect=()), out=tmp_path / "extended")
    old_vocab = tiny_tokenizer.backend.get_vocab(with_added_tokens=True)
    new_vocab = extended.backend.get_vocab(with_added_tokens=True)
    assert all(new_vocab[token] == idx for token, idx in old_vocab.items())
    assert report.vocab_size == extended.vocab_size == tiny_tokenizer.vocab_size + 60
    assert min(idx for token, idx in new_vocab.items() if token not in old_vocab) == tiny_tokenizer.vocab_size
    old_merges = json.loads(tiny_tokenizer.backend.to_str())["model"]["merges"]
    assert json.loads(extended.backend.to_str())["model"]["merges"][: len(old_merges)] == old_merges
    text = phrase_corpus(20)[5]
    assert len(extended.encode(text)) < len(tiny_tokenizer.encode(text))
    assert extended.decode(extended.encode(text)) == text
    assert report.base_vocab_size == tiny_tokenizer.vocab_size
    assert set(report.token_changes) == {str(tmp_path / "new.txt")} and 0 < report.token_changes[str(tmp_path / "new.txt")] <= 1


NUMBERS_TEXT = [f"In {1900 + i % 120}, {i * 7919} people paid {i * 31}.{i % 100:02d} euros for 12345 items." for i in range(300)]


def single_digit_base(tmp_path):
    """A byte-level BPE that reads digits one at a time (SmolLM2's scheme: Digits, then ByteLevel)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False)])
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(synthetic_corpus(), trainer=trainer)
    folder = tmp_path / "single-digit-base"
    folder.mkdir()
    backend.save(str(folder / "tokenizer.json"))
    return folder


@pytest.fixture(scope="module")
def digit_extension(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("digits")
    base = single_digit_base(tmp)
    (tmp / "numbers.txt").write_text("\n".join(NUMBERS_TEXT), encoding="utf-8")
    extended, report = train_tokenizer([str(tmp / "numbers.txt")], TrainConfig(vocab_size=320, extend=str(base), protect=()))
    return load_tokenizer(base), extended, report


DIGIT_TEXT = st.text(alphabet=st.sampled_from(list("0123456789 ,.-abcé€")), max_size=40)


@settings(max_examples=200, deadline=None)
@given(text=DIGIT_TEXT)
def test_extension_of_a_single_digit_base_keeps_digits_single(digit_extension, text):
    base, extended, _ = digit_extension
    encoded = extended.encode_with_offsets(text)
    data = text.encode("utf-8")
    for start, end in zip(encoded.starts, encoded.ends):
        piece = data[start:end].decode("utf-8", "replace")
        assert not regex.search(r"\p{N}", piece) or len(piece) == 1, piece
    assert extended.decode(extended.encode(text)) == text


def test_extension_report_measures_the_output(digit_extension):
    from tokenshift.measure import digit_scheme

    base, extended, report = digit_extension
    assert report.digits == digit_scheme(extended) == digit_scheme(base) == "single"
    assert report.vocab_size == extended.vocab_size == 320
    learned = [t for t, i in extended.backend.get_vocab().items() if i >= base.vocab_size]
    assert learned and not any(regex.search(r"\d", t) and len(t) > 1 for t in learned)  # numbers.txt's words, never its numbers


def test_protected_text_keeps_its_tokenization(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path / "base")
    shared = "the cat sat on a mat models read bytes"
    new = [f"{shared} le chat mange une pomme par exemple {i}" for i in range(200)]
    (tmp_path / "new.txt").write_text("\n".join(new), encoding="utf-8")
    (tmp_path / "english.txt").write_text("\n".join([shared] * 200), encoding="utf-8")
    reports = {}
    for protect in ((), (str(tmp_path / "english.txt"),)):
        _, reports[protect] = train_tokenizer([str(tmp_path / "new.txt")], TrainConfig(vocab_size=tiny_tokenizer.vocab_size + 40,
                                              extend=str(tmp_path / "base"), protect=protect))
    unprotected, protected = reports[()], reports[(str(tmp_path / "english.txt"),)]
    english = str(tmp_path / "english.txt")
    from tokenshift.measure import changed_token_share

    assert protected.token_changes[english] == 0.0
    assert changed_token_share(tiny_tokenizer, load_tokenizer(tmp_path / "base"), [shared]) == 0.0
    assert protected.token_changes[str(tmp_path / "new.txt")] > 0  # the French part still gets merges
    assert english not in unprotected.token_changes


def test_extension_refuses_what_it_cannot_extend(tmp_path):
    from tokenizers import Tokenizer, models, trainers

    backend = Tokenizer(models.BPE())
    backend.train_from_iterator(synthetic_corpus(), trainer=trainers.BpeTrainer(vocab_size=200, show_progress=False))
    spec = json.loads(backend.to_str())
    spec["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    (tmp_path / "bare").mkdir()
    (tmp_path / "bare" / "tokenizer.json").write_text(json.dumps(spec))
    (tmp_path / "new.txt").write_text("le chat mange une pomme " * 50)
    with pytest.raises(ValueError, match="no pre-tokenizer"):
        train_tokenizer([str(tmp_path / "new.txt")], TrainConfig(vocab_size=400, extend=str(tmp_path / "bare"), protect=()))
    wordlevel = Tokenizer(models.WordLevel({"[UNK]": 0, "le": 1}, unk_token="[UNK]"))
    (tmp_path / "wl").mkdir()
    wordlevel.save(str(tmp_path / "wl" / "tokenizer.json"))
    with pytest.raises(ValueError, match="needs a BPE tokenizer"):
        train_tokenizer([str(tmp_path / "new.txt")], TrainConfig(vocab_size=400, extend=str(tmp_path / "wl"), protect=()))
    with pytest.raises(ValueError, match="only applies to --extend"):
        train_tokenizer([str(tmp_path / "new.txt")], TrainConfig(vocab_size=400, protect=("x.txt",)))


def sentencepiece_base(tmp_path):
    """A Gemma-style tokenizer: spaces normalised to ▁, byte fallback, no pre-tokenizer split, single digits."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    backend.normalizer = normalizers.Replace(" ", "\u2581")
    # for training only: cut before each ▁ and around digits, as SentencePiece's rules do
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("\u2581", behavior="merged_with_next"),
                                                     pre_tokenizers.Digits(individual_digits=True)])
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"], show_progress=False)
    backend.train_from_iterator(synthetic_corpus(), trainer=trainer)
    spec = json.loads(backend.to_str())
    vocab = spec["model"]["vocab"]
    for byte in range(256):  # byte-fallback tokens, as Gemma has them
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    spec["pre_tokenizer"] = {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False}
    spec["decoder"] = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                        {"type": "ByteFallback"}, {"type": "Fuse"}]}
    folder = tmp_path / "spm-base"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<bos>", "eos_token": "<eos>", "add_bos_token": True}))
    return folder


def test_extension_of_a_sentencepiece_base(tmp_path):
    from tokenshift.measure import digit_scheme

    folder = sentencepiece_base(tmp_path)
    base = load_tokenizer(folder)
    assert base.kind == "metaspace"
    text = [f"le développement extraordinaire, 北京 {i} fois; naïve café ✓ anticonstitutionnellement" for i in range(300)]
    (tmp_path / "new.txt").write_text("\n".join(text), encoding="utf-8")
    extended, report = train_tokenizer([str(tmp_path / "new.txt")], TrainConfig(vocab_size=base.vocab_size + 30, extend=str(folder), protect=()))
    old_vocab = base.backend.get_vocab(with_added_tokens=True)
    new_vocab = extended.backend.get_vocab(with_added_tokens=True)
    assert all(new_vocab[token] == idx for token, idx in old_vocab.items()) and extended.vocab_size == base.vocab_size + 30
    learned = [t for t, i in new_vocab.items() if i >= base.vocab_size]
    assert all("\u2581" not in t[1:].lstrip("\u2581") for t in learned)  # ▁ only leads a token
    assert not any(t.count("<0x") > 0 for t in learned)  # no merge of byte-fallback tokens
    assert not any(regex.search(r"\p{N}", t) for t in learned)
    assert not any(regex.search(r"\p{L}", t) and regex.search(r"[^\p{L}\p{M}\u2581]", t) for t in learned)
    assert report.digits == digit_scheme(extended) == digit_scheme(base) == "single"
    sample = text[7] + " Ωmega 😀 ✓✓"
    assert extended.decode(extended.encode(sample)) == sample
    assert len(extended.encode(text[7])) < len(base.encode(text[7]))


def test_sentencepiece_chunks_follow_its_rules():
    from tokenshift.train.extend import sentencepiece_chunks

    assert sentencepiece_chunks("▁le▁chat,▁12▁北京大学abc▁▁x\n\nfin") == [
        "▁le", "▁chat", ",", "▁", "1", "2", "▁北京大学", "abc", "▁▁x", "\n\n", "fin"]
    assert sentencepiece_chunks("▁Привет▁мир!!") == ["▁Привет", "▁мир", "!!"]
    assert sentencepiece_chunks("日本語のテキスト") == ["日本語のテキスト"]  # kana count as Han, as in SentencePiece
    assert sentencepiece_chunks("naïve") == ["naïve"] and sentencepiece_chunks("nai\u0308ve") == ["nai\u0308ve"]


def test_special_tokens_survive(trained):
    tokenizer = trained["superbpe"][0]
    eot = tokenizer.token_id("<|endoftext|>")
    ids = tokenizer.encode("of the<|endoftext|>of the")
    assert ids.count(eot) == 1
    assert tokenizer.decode(ids) == "of the<|endoftext|>of the"


def test_deterministic(corpus_file, trained, tmp_path):
    config = TrainConfig(vocab_size=600, kind="superbpe", special_tokens=("<|endoftext|>",), transition=420)
    train_tokenizer([str(corpus_file)], config, out=tmp_path / "again")
    assert (tmp_path / "again" / "tokenizer.json").read_bytes() == (trained["superbpe"][2] / "tokenizer.json").read_bytes()


@pytest.mark.parametrize("kind", ["bpe", "superbpe"])
def test_loads_in_transformers_and_tokenizers(trained, kind):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    folder = trained[kind][2]
    auto = AutoTokenizer.from_pretrained(str(folder))
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in phrase_corpus(20):
        assert auto(text, add_special_tokens=False)["input_ids"] == raw.encode(text, add_special_tokens=False).ids
        assert auto.decode(auto(text, add_special_tokens=False)["input_ids"]) == text
    report = json.loads((folder / "train.json").read_text())
    expected = {"bpe": 430, "superbpe": 600}[kind]
    assert report["vocab_size"] == expected and report["corpus_bytes"] > 0 and report["peak_rss_mb"] > 0
    assert load_tokenizer(folder).vocab_size == expected


def test_bad_input(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="no non-empty document"):
        train_tokenizer([str(tmp_path / "empty.txt")], TrainConfig(vocab_size=500))
    (tmp_path / "ok.txt").write_text("some text")
    with pytest.raises(ValueError, match="too small"):
        train_tokenizer([str(tmp_path / "ok.txt")], TrainConfig(vocab_size=200))
    with pytest.raises(FileNotFoundError, match="not found"):
        train_tokenizer([str(tmp_path / "missing.txt")], TrainConfig(vocab_size=500))
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        train_tokenizer([str(tmp_path / "latin1.txt")], TrainConfig(vocab_size=500))
    with pytest.raises(ValueError, match="unknown kind"):
        train_tokenizer([str(tmp_path / "ok.txt")], TrainConfig(vocab_size=500, kind="wordpiece"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown digit scheme"):
        train_tokenizer([str(tmp_path / "ok.txt")], TrainConfig(vocab_size=500, digits="pairs"))


@pytest.fixture
def like_folder(tmp_path):
    """A model tokenizer with BOS added by a TemplateProcessing post-processor, roles and a chat template."""
    from tokenizers import processors

    from conftest import train_byte_level_bpe

    backend = train_byte_level_bpe(vocab_size=300, specials=("<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"))
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    folder = tmp_path / "like"
    folder.mkdir()
    backend.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "<|im_end|>", "pad_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
        "chat_template": "{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}",
    }))
    return folder


def test_like_carries_specials_roles_template_and_post_processor(like_folder, corpus_file, tmp_path):
    from transformers import AutoTokenizer

    like = load_tokenizer(like_folder)
    tokenizer, report = train_tokenizer([str(corpus_file)], TrainConfig(vocab_size=500, kind="superbpe", like=str(like_folder), transition=400),
                                        out=tmp_path / "dressed")
    from tokenshift.measure import digit_scheme

    assert report.digits == digit_scheme(like) == digit_scheme(tokenizer)
    special = tokenizer.special
    names = {role: tokenizer.id_to_token(getattr(special, role)) for role in ("bos", "eos", "pad", "unk")}
    assert names == {"bos": "<s>", "eos": "<|im_end|>", "pad": "</s>", "unk": "<unk>"}
    assert special.adds_bos and set(special.chat) == {"<|im_start|>", "<|im_end|>"}
    assert tokenizer.chat_template == like.chat_template
    auto = AutoTokenizer.from_pretrained(str(tmp_path / "dressed"))
    assert auto("of the")["input_ids"][0] == special.bos == auto.bos_token_id
    assert auto.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == "<|im_start|>hi<|im_end|>"


def test_protection_drops_merges_that_would_recut_protected_words(tiny_tokenizer, tmp_path, monkeypatch):
    # Made-up French verb forms share the stem " zqx" with English words that never occur in the French
    # text, so protecting whole pretokens alone cannot keep English as it was; dropping merges the
    # English text would use (and everything built on them) can.
    tiny_tokenizer.save(tmp_path / "base")
    french = [f"nous zqxons vous zqxez ils zqxent une pomme rouge bien bonne chaque jour {i % 7}" for i in range(300)]
    english = [f"zqxite zqxation zqxile {i % 5}" for i in range(300)]
    (tmp_path / "new.txt").write_text("\n".join(french), encoding="utf-8")
    (tmp_path / "english.txt").write_text("\n".join(english), encoding="utf-8")
    config = TrainConfig(vocab_size=tiny_tokenizer.vocab_size + 8, extend=str(tmp_path / "base"), protect=(str(tmp_path / "english.txt"),))
    from tokenshift.train import extend

    reports = {}
    for share in (float("inf"), extend.PROTECTED_USE_SHARE):
        monkeypatch.setattr(extend, "PROTECTED_USE_SHARE", share)
        monkeypatch.setattr(extend.drop_protected_merges, "__kwdefaults__", {"share": share, "max_rounds": 5})
        extended, reports[share] = train_tokenizer([str(tmp_path / "new.txt")], config)
    english_key = str(tmp_path / "english.txt")
    assert reports[float("inf")].token_changes[english_key] > 0  # whole-pretoken protection lets " zqx" re-cut English
    assert reports[extend.PROTECTED_USE_SHARE].token_changes[english_key] == 0.0
    assert reports[extend.PROTECTED_USE_SHARE].token_changes[str(tmp_path / "new.txt")] > 0
    assert extended.vocab_size == tiny_tokenizer.vocab_size + 8  # spare merges took the dropped ones' places
