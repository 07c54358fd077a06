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
