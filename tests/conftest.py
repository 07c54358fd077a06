"""Fixtures: tiny tokenizers and tiny random causal LMs built on the spot (no network, no real assets)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

WORDS = ("the cat sat on a mat while le chat mange une pomme and el perro come pan 12345 tokens shift "
         "models read bytes über naïve café 北京 emoji 😀 fin.").split()


def synthetic_corpus(lines: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 14))) for _ in range(lines)]


def train_byte_level_bpe(vocab_size: int = 320, specials: tuple[str, ...] = ("<|endoftext|>",)):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(specials),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    backend.train_from_iterator(synthetic_corpus(), trainer=trainer)
    return backend


SPM_SPECIALS = ("<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>")
SPM_USER_DEFINED = ("\n", "\n\n")
SPM_SPACE_RUNS = ("▁▁", "▁▁▁", "▁▁▁▁")


def all_splits(pieces: list[str]) -> list[tuple[str, str]]:
    """Every way of cutting a piece into two pieces, best first: by the piece's rank, then longer left
    side first (transformers' ``generate_merges``, which turns a SentencePiece model into a BPE)."""
    rank = {piece: index for index, piece in enumerate(pieces)}
    merges = [(piece[:cut], piece[cut:], rank[piece]) for piece in pieces for cut in range(1, len(piece))
              if piece[:cut] in rank and piece[cut:] in rank]
    merges.sort(key=lambda m: (m[2], -len(m[0])))
    return [(a, b) for a, b, _ in merges]


def spm_style_backend(pieces: list[str] | None = None, *, learned: int = 260, extra_merges: tuple[tuple[str, str], ...] = ()):
    """A Gemma-like SentencePiece-style BPE and its pieces: specials, user-defined newlines, ▁ runs, 256
    byte tokens, then the pieces of a BPE (``learned`` ids) learned on the synthetic corpus, every split
    of a piece listed as a merge; ``extra_merges`` appended after (as ``train --extend`` appends them),
    each adding the token it spells."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if pieces is None:
        learner = Tokenizer(models.BPE())
        learner.normalizer = normalizers.Replace(" ", "▁")
        learner.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="never")
        learner.train_from_iterator(synthetic_corpus(), trainer=trainers.BpeTrainer(vocab_size=learned, show_progress=False))
        ordered = sorted(learner.get_vocab().items(), key=lambda item: item[1])
        pieces = [*SPM_SPECIALS, *SPM_USER_DEFINED, *SPM_SPACE_RUNS, *(f"<0x{b:02X}>" for b in range(256)),
                  *(token for token, _ in ordered if token not in SPM_SPACE_RUNS)]
    merges = all_splits(pieces) + list(extra_merges)
    vocab = {piece: index for index, piece in enumerate(pieces)}
    for a, b in extra_merges:
        vocab.setdefault(a + b, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.pre_tokenizer = pre_tokenizers.Split(" ", "merged_with_previous")  # Gemma's: a no-op after the normalizer
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    backend.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPM_SPECIALS])
    backend.add_tokens([AddedToken(t, normalized=False, special=False) for t in SPM_USER_DEFINED])
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    return backend, pieces


def spm_extension_pair(pieces: list[str], *, unique: bool) -> tuple[str, str]:
    """Two learned pieces whose join is no piece yet: with ``unique``, a join with no other split into
    pieces (llama.cpp then joins exactly as the merge does); without, one that also splits another way."""
    vocab = set(pieces)
    normal = pieces[len(SPM_SPECIALS) + len(SPM_USER_DEFINED) + len(SPM_SPACE_RUNS) + 256:]
    for a in normal:
        for b in normal:
            joined = a + b
            if joined in vocab:
                continue
            splits = {(joined[:i], joined[i:]) for i in range(1, len(joined)) if joined[:i] in vocab and joined[i:] in vocab}
            # the join as one side of a split of a longer piece: llama.cpp would join that too
            longer = any(p != joined and ((p.startswith(joined) and p[len(joined):] in vocab)
                                          or (p.endswith(joined) and p[:-len(joined)] in vocab)) for p in vocab)
            if unique == (splits == {(a, b)} and not longer):
                return a, b
    raise AssertionError("no such pair in the tiny vocabulary")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run several times faster on one thread than on cores shared with other work;
    a module asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_backend():
    return train_byte_level_bpe()


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_backend):
    from tokenshift.tokenizer.core import Tokenizer, roles_from_names

    return Tokenizer(tiny_backend, name="tiny-bpe", special=roles_from_names(tiny_backend, adds_bos=False))


def save_tiny_model(folder: Path, backend, *, arch: str = "llama", tie: bool = True, seed: int = 0) -> Path:
    """A 2-layer random causal LM over ``backend``'s vocabulary, saved with its tokenizer as an HF folder."""
    import torch
    from transformers import Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    vocab = backend.get_vocab_size(with_added_tokens=True)
    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=tie)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common))
    elif arch == "gemma2":
        model = Gemma2ForCausalLM(Gemma2Config(**common, head_dim=8, final_logit_softcapping=5.0, sliding_window=16))
    else:
        raise ValueError(arch)
    with torch.no_grad():  # larger weights than the default init, so that logits differ visibly across tokens
        model.get_input_embeddings().weight.normal_(0, 1.0)
    return write_model_folder(folder, model, backend)


def write_model_folder(folder: Path, model, backend) -> Path:
    """``model`` (safetensors) and its tokenizer ``backend`` as an HF folder; EOS <|endoftext|>, no BOS."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    backend.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>", "add_bos_token": False}))
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_backend) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), tiny_backend)


@pytest.fixture(scope="session")
def tiny_gemma2_dir(tmp_path_factory, tiny_backend) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny-gemma2"), tiny_backend, arch="gemma2")


@pytest.fixture
def documents() -> list[str]:
    rng = random.Random(1)
    docs = synthetic_corpus(lines=12, seed=5)
    # one long document so that windows are cut at the 64-token context
    docs.append(" ".join(rng.choice(WORDS) for _ in range(150)))
    return docs


def real_assets_required() -> bool:
    """In CI the real-asset smoke tests must run, so a missing asset fails instead of skipping."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_assets(*names: str) -> None:
    """Skip the test (fail it in CI) unless every asset in ``names`` is prepared."""
    from tokenshift.assets.registry import is_prepared

    missing = [n for n in names if not is_prepared(n)]
    if missing:
        message = f"assets not prepared: {' '.join(missing)} (run `tokenshift assets --install {' '.join(missing)}`)"
        if real_assets_required():
            pytest.fail(message)
        pytest.skip(message)
