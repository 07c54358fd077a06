"""GGUF export: round trips through transformers' GGUF reader (weights and tokenizer), the
``tokenizer.ggml.pre`` check, padded rows, refusals, and a write that fails halfway.

llama.cpp itself is not run here; transformers' reader is the reference (it undoes the llama Q/K
permutation and rebuilds the tokenizer from the file's metadata).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import save_tiny_model, write_model_folder
from tokenshift.export import ARCHITECTURES, choose_pre, export_gguf, load_gguf
from tokenshift.tokenizer.pretokenizers import PROBE_TEXTS, pre_tokenizer_json

pytestmark = pytest.mark.usefixtures("one_thread")

MIXED = ("In 2023, naïve café-goers paid $1,234.56 for 12345 croissants! It's, don't, we're, I'VE & you'll... "
         "Wait!!!   three   spaces\t\ttabs\n\n  indented\r\nline  北京大学 日本語のテキスト 한국어 Привет, мир! "
         "Ångström ÉCOLE aÉcole 😀👍🏽 👨‍👩‍👧‍👦 ❤️ x = foo(1,2); if (a>=b) { return a**2 + b // 3; }  end.   ")
TEXTS = (MIXED, *PROBE_TEXTS)


def export(folder: Path, out: Path, **options):
    report = export_gguf(str(folder), out, **options)
    assert out.is_file() and report.bytes == out.stat().st_size
    return report


def logits(model, ids):
    import torch

    with torch.no_grad():
        return model(ids).logits


def gguf_fields(path: Path) -> tuple[dict, list[str]]:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return {key: field.contents() for key, field in reader.fields.items()}, [t.name for t in reader.tensors]


def _random_model_folder(folder: Path, backend, model) -> Path:
    import torch

    torch.manual_seed(3)
    with torch.no_grad():
        model.get_input_embeddings().weight.normal_(0, 1.0)
        for name, parameter in model.named_parameters():
            if name.endswith(".bias"):  # zero-initialised: make a mis-mapped bias visible
                parameter.normal_(0, 0.5)
    return write_model_folder(folder, model, backend)


@pytest.fixture(scope="module")
def untied_dir(tmp_path_factory, tiny_backend) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("untied"), tiny_backend, tie=False, seed=1)


@pytest.fixture(scope="module")
def qwen2_dir(tmp_path_factory, tiny_backend) -> Path:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=tiny_backend.get_vocab_size(with_added_tokens=True), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True)
    return _random_model_folder(tmp_path_factory.mktemp("qwen2"), tiny_backend, Qwen2ForCausalLM(config))


@pytest.fixture(scope="module")
def padded_dir(tmp_path_factory, tiny_backend) -> Path:
    """A llama whose 384 embedding rows exceed the tokenizer's 320 ids (as after transplant's padding), RoPE base 50,000."""
    from transformers import LlamaConfig, LlamaForCausalLM

    assert tiny_backend.get_vocab_size(with_added_tokens=True) == 320
    config = LlamaConfig(vocab_size=384, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True,
                         rope_parameters={"rope_type": "default", "rope_theta": 50000.0})
    return _random_model_folder(tmp_path_factory.mktemp("padded"), tiny_backend, LlamaForCausalLM(config))


@pytest.mark.parametrize("fixture", ["tiny_model_dir", "untied_dir", "qwen2_dir", "padded_dir"])
def test_f32_round_trip_gives_the_same_logits(fixture, request, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    folder = request.getfixturevalue(fixture)
    out = tmp_path / "model.gguf"
    report = export(folder, out)
    original = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    back = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file=out.name, dtype=torch.float32).eval()
    ids = torch.randint(0, report.tokenizer_ids, (2, 24), generator=torch.Generator().manual_seed(0))
    error = (logits(original, ids) - logits(back, ids)).abs().max().item()
    assert error <= 1e-5, error
    _, names = gguf_fields(out)
    assert ("output.weight" in names) == (not report.tied) == (not original.config.tie_word_embeddings)
    assert report.tensor_types == {"F32": len(names)} and report.tensors == len(names)


@pytest.mark.parametrize("dtype, bound", [("f16", 2e-3), ("bf16", 2e-2), ("q8_0", 2e-2)])
def test_lossy_dtypes_stay_close_and_are_smaller(dtype, bound, tiny_model_dir, tmp_path):
    """Max logit error relative to the largest logit (measured: f16 1.8e-4, bf16 1.5e-3, q8_0 4.4e-3)."""
    import torch
    from transformers import AutoModelForCausalLM

    f32 = export(tiny_model_dir, tmp_path / "f32.gguf")
    report = export(tiny_model_dir, tmp_path / f"{dtype}.gguf", dtype=dtype)
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    back = load_gguf(tmp_path / f"{dtype}.gguf").model
    ids = torch.randint(0, report.tokenizer_ids, (2, 24), generator=torch.Generator().manual_seed(0))
    reference = logits(original, ids)
    relative = ((reference - logits(back, ids)).abs().max() / reference.abs().max()).item()
    print(f"{dtype}: max logit error {relative:.2e} of the largest logit, {report.bytes:,} bytes (f32 {f32.bytes:,})")
    assert 0 < relative <= bound
    assert report.bytes < f32.bytes
    matrices = 1 + 2 * 7  # token_embd (tied), and q, k, v, o, gate, up, down per layer
    assert report.tensor_types == {"F32": 2 * 2 + 1, dtype.upper(): matrices}


def test_the_tokenizer_reads_back_identically(tiny_model_dir, tiny_backend, tmp_path):
    from transformers import AutoTokenizer

    from tokenshift.tokenizer import load_tokenizer

    out = tmp_path / "model.gguf"
    report = export(tiny_model_dir, out)
    assert report.pre == "gpt-2" and report.pre_reason == "the first llama.cpp name that matches"
    transformers_reader = AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=out.name)
    llama_cpp_like = load_tokenizer(out)  # the file's vocabulary, llama.cpp's pre-tokenizer for tokenizer.ggml.pre
    for text in TEXTS:
        expected = tiny_backend.encode(text, add_special_tokens=False).ids
        assert transformers_reader.encode(text, add_special_tokens=False) == expected, text
        assert llama_cpp_like.encode(text) == expected, text
    fields, _ = gguf_fields(out)
    eos = tiny_backend.token_to_id("<|endoftext|>")
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.eos_token_id"] == eos
    assert fields["tokenizer.ggml.add_bos_token"] is False
    assert fields["tokenizer.ggml.token_type"][eos] == 3  # CONTROL
    assert len(fields["tokenizer.ggml.merges"]) == len(json.loads(tiny_backend.to_str())["model"]["merges"])


def test_smollm_pre_is_chosen_and_a_declared_name_preferred(tiny_model_dir, tiny_backend, tmp_path):
    from tokenizers import Tokenizer as Backend

    from tokenshift.tokenizer import load_tokenizer

    spec = json.loads(tiny_backend.to_str())
    spec["pre_tokenizer"] = pre_tokenizer_json("smollm")  # every digit alone, then GPT-2's regex
    backend = Backend.from_str(json.dumps(spec))
    folder = tmp_path / "smollm-like"
    shutil.copytree(tiny_model_dir, folder)
    backend.save(str(folder / "tokenizer.json"))
    report = export(folder, tmp_path / "smollm.gguf")
    assert report.pre == "smollm" and {"starcoder", "refact"} <= set(report.pre_matches)
    read_back = load_tokenizer(tmp_path / "smollm.gguf")
    for text in TEXTS:
        assert read_back.encode(text) == backend.encode(text, add_special_tokens=False).ids, text
    (folder / "asset.json").write_text(json.dumps({"gguf_pre": "starcoder"}))  # what a prepared asset records
    declared = export(folder, tmp_path / "declared.gguf")
    assert declared.pre == "starcoder" and declared.pre_reason.startswith("declared")


def test_the_pre_check_accepts_the_right_name_and_refuses_a_wrong_one(tiny_tokenizer, tiny_backend):
    from tokenizers import Regex, pre_tokenizers
    from tokenizers import Tokenizer as Backend

    from tokenshift.tokenizer.core import Tokenizer, roles_from_names

    assert choose_pre(tiny_tokenizer).name == "gpt-2"
    assert choose_pre(tiny_tokenizer, declared="mpt").name == "mpt"  # same cuts: the declared name wins
    wrong = choose_pre(tiny_tokenizer, declared="llama-bpe")
    assert wrong.name == "gpt-2" and "llama-bpe" in wrong.warnings[0]
    # digits in pairs, then GPT-2: no llama.cpp name cuts text this way
    custom = Backend.from_str(tiny_backend.to_str())
    custom.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r"\p{N}{1,2}"), "isolated"),
                                                    pre_tokenizers.ByteLevel(add_prefix_space=False)])
    paired = Tokenizer(custom, name="paired", special=roles_from_names(custom, adds_bos=False))
    with pytest.raises(ValueError) as refused:
        choose_pre(paired)
    message = str(refused.value)
    assert "matches none of llama.cpp's names" in message and "1 12 123" in message and "--pre NAME" in message
    assert "\n" not in message
    forced = choose_pre(paired, forced="smollm")
    assert forced.name == "smollm" and forced.reason == "forced (--pre)" and "1 12 123" in forced.warnings[0]
    with pytest.raises(ValueError, match="did you mean smollm"):
        choose_pre(paired, forced="smolm")


def test_padded_rows_are_unused_tokens_never_produced(padded_dir, tmp_path):
    from gguf import TokenType
    from transformers import AutoTokenizer

    from tokenshift.tokenizer import load_tokenizer

    out = tmp_path / "padded.gguf"
    report = export(padded_dir, out)
    assert (report.tokenizer_ids, report.embedding_rows, report.token_types["unused"]) == (320, 384, 64)
    fields, names = gguf_fields(out)
    assert fields["tokenizer.ggml.tokens"][320:] == [f"[PAD{i}]" for i in range(320, 384)]
    assert set(fields["tokenizer.ggml.token_type"][320:]) == {TokenType.UNUSED}
    assert set(fields["tokenizer.ggml.token_type"][:320]) == {TokenType.NORMAL, TokenType.CONTROL}
    text = MIXED + " [PAD330] [PAD383]"
    assert max(AutoTokenizer.from_pretrained(str(tmp_path), gguf_file=out.name).encode(text, add_special_tokens=False)) < 320
    assert max(load_tokenizer(out).encode(text)) < 320
    # the architecture keys llama.cpp reads
    expected = {"general.architecture": "llama", "llama.context_length": 64, "llama.embedding_length": 32,
                "llama.block_count": 2, "llama.feed_forward_length": 64, "llama.attention.head_count": 4,
                "llama.attention.head_count_kv": 2, "llama.rope.freq_base": 50000.0, "llama.rope.dimension_count": 8,
                "llama.vocab_size": 384, "tokenizer.ggml.pre": "gpt-2", "general.file_type": 0}
    assert {key: fields[key] for key in expected} == expected
    assert fields["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-6)
    layer = ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]
    assert set(names) == {"token_embd.weight", "output_norm.weight", *(f"blk.{i}.{t}.weight" for i in range(2) for t in layer)}


def test_llama3_rope_scaling_is_written_as_rope_freqs():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tokenshift.export.architectures import extra_tensor, llama3_rope_factors, plan_tensors

    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192}
    config = LlamaConfig(vocab_size=16, hidden_size=256, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, max_position_embeddings=131072, rope_parameters=rope)
    model = LlamaForCausalLM(config)
    factors = llama3_rope_factors(config)
    base = 1.0 / (500000.0 ** (torch.arange(0, 128, 2, dtype=torch.float32) / 128))
    torch.testing.assert_close(base / factors, model.model.rotary_emb.inv_freq.float(), rtol=1e-5, atol=0)
    assert 1.0 in factors.tolist() and 8.0 in factors.tolist()  # both ends and the smooth middle are exercised
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    first = plan_tensors(shapes, ARCHITECTURES["llama"], config, tied=False)[0]
    assert first.name == "rope_freqs.weight" and first.source is None and first.shape == (64,)
    assert torch.equal(extra_tensor(first.name, ARCHITECTURES["llama"], config), factors)


def test_other_architectures_are_refused_in_one_line(tiny_gemma2_dir, tmp_path):
    with pytest.raises(ValueError) as refused:
        export_gguf(str(tiny_gemma2_dir), tmp_path / "gemma.gguf")
    message = str(refused.value)
    assert "is a gemma2 model (Gemma2ForCausalLM); GGUF export supports llama (SmolLM2, Llama-3), qwen2" in message
    assert "\n" not in message and list(tmp_path.iterdir()) == []


def test_a_write_that_fails_leaves_nothing_and_an_existing_file_is_kept(tiny_model_dir, tmp_path, monkeypatch):
    import gguf

    write = gguf.GGUFWriter.write_tensor_data
    calls = []

    def fail(self, *args, **kwargs):  # the disk fills up at the third tensor, halfway through the file
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return write(self, *args, **kwargs)

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensor_data", fail)
    with pytest.raises(OSError, match="No space left"):
        export_gguf(str(tiny_model_dir), tmp_path / "model.gguf")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "model.gguf").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="already exists"):
        export_gguf(str(tiny_model_dir), tmp_path / "model.gguf")
    assert (tmp_path / "model.gguf").read_bytes() == b"mine"


def test_the_cli_prints_one_line_or_the_report(tiny_model_dir, tmp_path, capsys):
    from tokenshift.cli import main

    assert main(["export", str(tiny_model_dir), "--gguf", str(tmp_path / "a.gguf"), "--dtype", "q8_0"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"exported {tiny_model_dir} as llama GGUF (q8_0, tokenizer.ggml.pre gpt-2") and "\n" not in line
    assert main(["export", str(tiny_model_dir), "--gguf", str(tmp_path / "b.gguf"), "--pre", "smollm", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pre"] == "smollm" and report["warnings"] and report["dtype"] == "f32"


@pytest.mark.slow
def test_smollm2_exports_with_its_declared_pre_and_reads_back(tmp_path):
    """The real model: tokenizer.ggml.pre ``smollm`` (declared by the smollm2 asset's GGUF, and checked),
    logits and wiki-fr tokenization unchanged through transformers' GGUF reader."""
    from conftest import real_assets_required
    from tokenshift.assets.registry import is_prepared

    missing = [name for name in ("smollm2-135m", "smollm2", "wiki-fr") if not is_prepared(name)]
    if missing:
        message = f"assets not prepared: {' '.join(missing)} (run `tokenshift assets --install {' '.join(missing)}`)"
        if real_assets_required():
            pytest.fail(message)
        pytest.skip(message)
    import torch

    from tokenshift.data import load_texts
    from tokenshift.modeling import load_model

    report = export("smollm2-135m", tmp_path / "smollm2.gguf")
    assert (report.pre, report.pre_reason, report.tied) == ("smollm", "declared by the source, and it matches", True)
    assert report.warnings == [] and report.embedding_rows == report.tokenizer_ids == 49152
    original, back = load_model("smollm2-135m", dtype="float32", device="cpu"), load_gguf(tmp_path / "smollm2.gguf")
    documents = load_texts("wiki-fr:test", max_bytes=8000).documents
    for document in documents:
        assert back.tokenizer.encode(document) == original.tokenizer.encode(document)
    ids = torch.tensor([original.tokenizer.encode(documents[0])[:64]])
    error = (logits(original.model, ids) - logits(back.model, ids)).abs().max().item()
    assert error <= 1e-4, error
