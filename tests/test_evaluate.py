import math

import pytest
import torch

from tokenshift.data import TextSet
from tokenshift.evaluate import evaluate, evaluate_loaded
from tokenshift.evaluate import scoring
from tokenshift.evaluate.windows import document_windows
from tokenshift.modeling import load_model


def reference_bits(model, tokenizer, documents, context):
    """Independent computation: transformers' own mean loss with labels, times the tokens it covers."""
    conditioning = tokenizer.conditioning_token()
    nats = 0.0
    for doc in documents:
        sequence = [conditioning, *tokenizer.encode(doc)]
        n = len(sequence) - 1
        for block_start in range(0, n, context):
            last = min(block_start + context, n)
            first = max(0, last - context)
            input_ids = torch.tensor([sequence[first : last + 1]])
            labels = input_ids.clone()
            labels[0, : block_start - first + 1] = -100  # positions before the block are context only
            with torch.no_grad():
                loss = model(input_ids=input_ids, labels=labels).loss
            nats += float(loss) * (last - block_start)
    return nats / math.log(2)


def test_bits_per_byte_matches_transformers_loss(tiny_model_dir, documents):
    loaded = load_model(str(tiny_model_dir), device="cpu")
    context = 31  # inputs of up to 32 tokens for the reference, within the model's 64 positions
    result = evaluate_loaded(loaded, TextSet("docs", documents), context=context)
    expected_bits = reference_bits(loaded.model, loaded.tokenizer, documents, context)
    n_bytes = sum(len(d.encode()) for d in documents)
    assert result.bytes == n_bytes
    assert result.tokens == sum(len(loaded.tokenizer.encode(d)) for d in documents)
    assert result.bits == pytest.approx(expected_bits, rel=1e-5)
    assert result.bits_per_byte == pytest.approx(expected_bits / n_bytes, rel=1e-5)
    assert result.tokens_per_byte == pytest.approx(result.tokens / n_bytes)
    assert result.conditioning_token == "<|endoftext|>"


def test_invariant_to_batch_size_and_padding(tiny_model_dir, documents):
    loaded = load_model(str(tiny_model_dir), device="cpu")
    texts = TextSet("docs", documents)
    one_per_batch = evaluate_loaded(loaded, texts, batch_tokens=1)
    all_in_one = evaluate_loaded(loaded, texts, batch_tokens=1_000_000)
    assert one_per_batch.bits == pytest.approx(all_in_one.bits, rel=1e-5)
    reordered = evaluate_loaded(loaded, TextSet("docs", list(reversed(documents))), batch_tokens=200)
    assert reordered.bits == pytest.approx(all_in_one.bits, rel=1e-5)


def test_overlapping_stride_scores_every_token_once(tiny_model_dir, documents):
    loaded = load_model(str(tiny_model_dir), device="cpu")
    texts = TextSet("docs", documents)
    disjoint = evaluate_loaded(loaded, texts, context=32)
    sliding = evaluate_loaded(loaded, texts, context=32, stride=8)
    assert sliding.tokens == disjoint.tokens
    assert math.isfinite(sliding.bits) and sliding.bits != disjoint.bits  # more history changes the score


def test_chunked_head_with_softcapping_equals_full_logits(tiny_gemma2_dir, documents, monkeypatch):
    loaded = load_model(str(tiny_gemma2_dir), device="cpu")
    windows = [w for d in documents for w in document_windows(loaded.tokenizer.conditioning_token(), loaded.tokenizer.encode(d), context=16)]
    monkeypatch.setattr(scoring, "LOGIT_BYTES_PER_CHUNK", 4 * loaded.embedding_rows * 5)  # 5 rows per chunk
    chunked = scoring.WindowScorer(loaded.model, device="cpu")
    full = scoring.WindowScorer(loaded.model, device="cpu")
    full.use_chunked_head = False
    a = chunked.nll_nats(windows, pad_id=0)
    b = full.nll_nats(windows, pad_id=0)
    assert chunked.use_chunked_head and chunked.checked
    assert a == pytest.approx(b, rel=1e-5)


def test_evaluate_from_files(tiny_model_dir, tmp_path):
    (tmp_path / "a.txt").write_text("le chat mange une pomme", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"text": "the cat sat"}\n{"text": "el perro"}\n', encoding="utf-8")
    results = evaluate(str(tiny_model_dir), [str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")], device="cpu")
    assert [r.documents for r in results] == [1, 2]
    assert [r.bytes for r in results] == [23, len("the cat sat") + len("el perro")]
    assert all(math.isfinite(r.bits_per_byte) and r.bits_per_byte > 0 for r in results)


def test_tokenizer_larger_than_embeddings_is_refused(tiny_model_dir, tmp_path):
    from conftest import train_byte_level_bpe

    bigger = tmp_path / "big"
    bigger.mkdir()
    train_byte_level_bpe(vocab_size=400).save(str(bigger / "tokenizer.json"))
    with pytest.raises(ValueError, match="embedding rows"):
        load_model(str(tiny_model_dir), tokenizer=str(bigger / "tokenizer.json"), device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_bits_per_byte(tiny_model_dir, documents):
    texts = TextSet("docs", documents)
    on_cpu = evaluate_loaded(load_model(str(tiny_model_dir), device="cpu", dtype="float32"), texts)
    on_cuda = evaluate_loaded(load_model(str(tiny_model_dir), device="cuda", dtype="float32"), texts)
    assert on_cuda.device.startswith("cuda") and on_cuda.tokens == on_cpu.tokens
    assert on_cuda.bits_per_byte == pytest.approx(on_cpu.bits_per_byte, rel=1e-4)


def test_round_trip_is_checked_on_pieces_of_the_leading_text(tiny_tokenizer):
    from tokenshift.evaluate.bpb import ROUND_TRIP_PIECE_CHARS, _pieces, round_trip_loss

    documents = [" ".join(f"mot{i}" for i in range(3000)), "court"]
    pieces = _pieces(documents)
    assert "".join(pieces) == "".join(documents)  # nothing dropped or repeated under the sample size
    assert all(len(p) <= ROUND_TRIP_PIECE_CHARS for p in pieces) and all(p.endswith(" ") for p in pieces[:-2])
    assert round_trip_loss(tiny_tokenizer, documents) == 0.0  # byte-level BPE gives every byte back
