import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenshift.tokenizer import load_tokenizer
from tokenshift.tokenizer.bytemap import byte_level_to_bytes, bytes_to_byte_level
from tokenshift.tokenizer.core import Tokenizer, roles_from_names
from tokenshift.tokenizer.tiktoken_ranks import GPT2_PATTERN, read_ranks, ranks_to_backend

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)


@given(st.binary(max_size=64))
def test_byte_level_spelling_round_trips(data):
    assert byte_level_to_bytes(bytes_to_byte_level(data)) == data


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_offsets_cover_the_text_exactly(tiny_tokenizer, text):
    encoded = tiny_tokenizer.encode_with_offsets(text)
    data = text.encode("utf-8")
    assert encoded.exact_offsets
    assert b"".join(data[s:e] for s, e in zip(encoded.starts, encoded.ends)) == data
    assert all(a == b for a, b in zip(encoded.ends, encoded.starts[1:]))
    assert tiny_tokenizer.decode(encoded.ids) == text


def toy_ranks(tiny_backend) -> dict[bytes, int]:
    """A tiktoken-style ranks table: the 256 bytes, then the tiny BPE's merged tokens in merge order."""
    ranks = {bytes([b]): b for b in range(256)}
    model = json.loads(tiny_backend.to_str())["model"]
    for left, right in model["merges"]:
        token = byte_level_to_bytes(left) + byte_level_to_bytes(right)
        ranks.setdefault(token, len(ranks))
    return ranks


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_tiktoken_ranks_conversion_matches_tiktoken(tiny_backend, text):
    tiktoken = pytest.importorskip("tiktoken")
    ranks = toy_ranks(tiny_backend)
    special = {"<|endoftext|>": len(ranks)}
    reference = tiktoken.Encoding("toy", pat_str=GPT2_PATTERN, mergeable_ranks=ranks, special_tokens=special)
    converted = ranks_to_backend(ranks, pattern=GPT2_PATTERN, special_tokens=special)
    assert converted.encode(text, add_special_tokens=False).ids == reference.encode_ordinary(text)


def test_ranks_file_reader(tmp_path):
    path = tmp_path / "toy.tiktoken"
    path.write_text(f"{base64.b64encode(b'ab').decode()} 0\n{base64.b64encode(b' ').decode()} 1\n")
    assert read_ranks(path) == {b"ab": 0, b" ": 1}
    path.write_text("not a ranks line\n")
    with pytest.raises(ValueError, match="toy.tiktoken:1"):
        read_ranks(path)


def metaspace_backend():
    from tokenizers import Tokenizer as Backend
    from tokenizers import decoders, models, normalizers

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"<0x{b:02X}>": 3 + b for b in range(256)}, "▁the": 259, "▁cat": 260, "▁": 261, "t": 262, "h": 263, "e": 264}
    backend = Backend(models.BPE(vocab=vocab, merges=[], byte_fallback=True, unk_token="<unk>"))
    backend.normalizer = normalizers.Replace(" ", "▁")
    backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    backend.add_special_tokens(["<unk>", "<s>", "</s>"])
    return backend


def test_metaspace_vocabulary_as_bytes():
    tok = Tokenizer(metaspace_backend(), name="sp", special=roles_from_names(metaspace_backend(), adds_bos=False))
    assert tok.kind == "metaspace"
    assert tok.token_bytes(259) == b" the"
    assert tok.token_bytes(3 + 0xE2) == b"\xe2"
    assert tok.token_bytes(1) == b"<s>"
    assert tok.special.bos == 1 and tok.special.eos == 2


def test_roles_come_from_tokenizer_config(tiny_backend, tmp_path):
    tiny_backend.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": {"content": "<|endoftext|>"}, "bos_token": None}))
    tok = load_tokenizer(tmp_path)
    assert tok.special.eos == tiny_backend.token_to_id("<|endoftext|>")
    assert tok.special.bos is None
    assert tok.conditioning_token() == tok.special.eos


def test_save_and_reload_keeps_ids_and_roles(tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path / "saved")
    again = load_tokenizer(tmp_path / "saved")
    text = "le chat 😀 12345"
    assert again.encode(text) == tiny_tokenizer.encode(text)
    assert again.special.eos == tiny_tokenizer.special.eos


def test_bad_tokenizer_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer found"):
        load_tokenizer(tmp_path)
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a tokenizer.json: not valid JSON"):
        load_tokenizer(bad)
    bad.write_text('{"version": "1.0", "vocab": {"a": 0}}')
    with pytest.raises(ValueError, match='JSON but not a Hugging Face tokenizer.json: it has no "model" table'):
        load_tokenizer(bad)
    bad.write_text('{"model": {"type": "Nonsense"}}')
    with pytest.raises(ValueError, match="not a valid Hugging Face tokenizer.json"):
        load_tokenizer(bad)
    with pytest.raises(ValueError, match="asset 'wiki-fr' is text"):
        load_tokenizer("wiki-fr")
