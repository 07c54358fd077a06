"""Dynamic tokenization (tokenshift.dynamic): batch BPE over ids, merged-token embeddings, scoring."""

from __future__ import annotations

import json

import pytest

from tokenshift.dynamic.merges import NO_MERGE, learn_merges, merge_texts, merge_units

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["the cat sat on the mat, the cat sat on a mat; naïve café 12345 tokens",
         "le chat mange une pomme, le chat mange une pomme et el perro come pan",
         "models read bytes, models read bytes über naïve café tokens shift\nfin."]


@pytest.fixture(scope="module")
def spm_tokenizer():
    from conftest import spm_style_backend

    from tokenshift.tokenizer.core import Tokenizer, roles_from_names

    backend, _ = spm_style_backend()
    return Tokenizer(backend, name="tiny-spm", special=roles_from_names(backend, bos="<bos>", eos="<eos>", adds_bos=True))


@pytest.fixture(scope="module")
def tiny_loaded(tiny_model_dir):
    from tokenshift.modeling import load_model

    return load_model(str(tiny_model_dir), device="cpu", dtype="float32")


def _units_of_merged(merged, vocabulary, units):
    """For each merged token, the units of the base tokens it spells."""
    out, at = [], 0
    for token in merged:
        n = len(vocabulary.spell(token))
        out.append(units[at : at + n])
        at += n
    return out


@pytest.mark.parametrize("boundary", ["pretoken", "word", "none"])
@pytest.mark.parametrize("kind", ["byte-level", "spm"])
def test_merges_expand_back_shorten_and_respect_boundaries(kind, boundary, tiny_tokenizer, spm_tokenizer):
    tokenizer = tiny_tokenizer if kind == "byte-level" else spm_tokenizer
    base = tokenizer.encode_batch(TEXTS)
    units = [merge_units(tokenizer, text, ids, boundary=boundary) for text, ids in zip(TEXTS, base)]
    lengths = []
    for n in (0, 1, 2, 4, 8, 16, 64, 256):
        batch = merge_texts(tokenizer, TEXTS, max_merges=n, boundary=boundary, min_count=1)
        assert len(batch.vocabulary) <= n
        assert [batch.vocabulary.expand(s) for s in batch.sequences] == base
        assert batch.dynamic_tokens == sum(map(len, batch.sequences))
        lengths.append(batch.dynamic_tokens)
        for merged, unit in zip(batch.sequences, units):
            for spelled in _units_of_merged(merged, batch.vocabulary, unit):
                if len(spelled) > 1:
                    assert len(set(spelled)) == 1 and spelled[0] != NO_MERGE
    assert lengths[0] == sum(map(len, base))
    assert all(a >= b for a, b in zip(lengths, lengths[1:])), lengths
    assert lengths[-1] < lengths[0]


def test_pretoken_units_follow_the_pre_tokenizer(tiny_tokenizer):
    text = "the cat, 12345 naïve"
    ids = tiny_tokenizer.encode(text)
    units = merge_units(tiny_tokenizer, text, ids, boundary="pretoken")
    pieces = [piece for piece, _ in tiny_tokenizer.backend.pre_tokenizer.pre_tokenize_str(text)]
    assert len(set(units)) == len(pieces)
    assert units == sorted(units)


def test_spm_words_keep_digits_apart(spm_tokenizer):
    text = "the cat 9786"
    ids = spm_tokenizer.encode(text)
    units = merge_units(spm_tokenizer, text, ids, boundary="pretoken")
    digits = [u for i, u in zip(ids, units) if (spm_tokenizer.token_bytes(i) or b"").strip().isdigit()]
    assert len(digits) == len(set(digits)) >= 2


def test_reduction_target_and_min_count():
    sequences = [[1, 2, 3, 1, 2, 3, 4, 5]]
    units = [[0] * 8]
    batch = learn_merges(sequences, units, base_size=10, reduction=0.2)
    assert batch.reduction >= 0.2 and batch.vocabulary.pieces[0] == (1, 2)
    assert learn_merges(sequences, units, base_size=10, max_merges=100, min_count=3).dynamic_tokens == 8
    with pytest.raises(ValueError, match="merges or a target reduction"):
        learn_merges(sequences, units, base_size=10)


def test_zero_merges_reproduce_the_base_logits_exactly(tiny_model_dir, tiny_gemma2_dir):
    import torch

    from tokenshift.dynamic.embed import input_embeddings
    from tokenshift.modeling import load_model

    for folder in (tiny_model_dir, tiny_gemma2_dir):
        model = load_model(str(folder), device="cpu", dtype="float32").model
        ids = torch.tensor([[3, 17, 40, 41, 99, 7]])
        with torch.no_grad():
            expected = model(input_ids=ids).logits
            got = model(inputs_embeds=input_embeddings(model, ids, None)).logits
        assert torch.equal(expected, got)


def test_every_method_without_donor_builds_merged_rows(tiny_tokenizer):
    import torch

    from tokenshift.dynamic.embed import byte_lengths, merged_rows
    from tokenshift.transplant.methods import METHODS

    batch = merge_texts(tiny_tokenizer, TEXTS, max_merges=8, min_count=1)
    table = torch.randn(tiny_tokenizer.vocab_size, 16)
    sizes = byte_lengths(tiny_tokenizer, tiny_tokenizer.vocab_size)
    for name, method in METHODS.items():
        if method.uses_donor:
            with pytest.raises(ValueError, match="needs a donor"):
                merged_rows(table, batch.vocabulary, piece_bytes=sizes, method=name)
            continue
        rows = merged_rows(table, batch.vocabulary, piece_bytes=sizes, method=name)
        assert rows.shape == (len(batch.vocabulary), 16) and torch.isfinite(rows).all(), name
    subword = merged_rows(table, batch.vocabulary, piece_bytes=sizes, method="subword")
    first = batch.vocabulary.pieces[0]
    assert torch.allclose(subword[0], table[list(first)].mean(0))


def test_the_scored_half_is_tokenized_identically(tiny_loaded, documents):
    from tokenshift.data import TextSet
    from tokenshift.dynamic.score import evaluate_dynamic_loaded, merge_contexts, prepare_halves, split_document

    tokenizer = tiny_loaded.tokenizer
    halves = prepare_halves(tokenizer, documents, max_tokens=64)
    for context, continuation, c, m in zip(halves.contexts, halves.continuations, halves.context_ids, halves.continuation_ids):
        assert m == tokenizer.encode(continuation) and c == tokenizer.encode(context)
        assert 1 + len(c) + len(m) <= 64
    assert split_document("ab cd ef") == ("ab cd", " ef")
    before = [list(m) for m in halves.continuation_ids]
    merged = merge_contexts(tokenizer, halves, base_size=tiny_loaded.embedding_rows, max_merges=16, min_count=1)
    assert halves.continuation_ids == before
    assert [merged.vocabulary.expand(s) for s in merged.sequences] == halves.context_ids

    texts = TextSet("docs", documents)
    zero = evaluate_dynamic_loaded(tiny_loaded, texts, merges=0)
    assert zero.bits_per_byte_dynamic == zero.bits_per_byte_base and zero.context_tokens_dynamic == zero.context_tokens_base
    some = evaluate_dynamic_loaded(tiny_loaded, texts, merges=16, min_count=1, method="scaled")
    assert some.context_tokens_dynamic < some.context_tokens_base
    assert (some.bytes, some.tokens, some.bits_per_byte_base) == (zero.bytes, zero.tokens, zero.bits_per_byte_base)
    assert some.bits_per_byte_dynamic != some.bits_per_byte_base


def test_distilled_merged_rows_lower_their_objective_and_leave_the_model_alone(tiny_loaded, documents):
    import torch

    from tokenshift.data import TextSet
    from tokenshift.dynamic.distil import aligned_positions, distil_merged_rows
    from tokenshift.evaluate.scoring import length_batches
    from tokenshift.dynamic.embed import byte_lengths, merged_rows
    from tokenshift.dynamic.merges import DynamicVocabulary
    from tokenshift.dynamic.score import evaluate_dynamic_loaded, merge_contexts, prepare_halves

    vocabulary = DynamicVocabulary(base_size=10, pieces=[(3, 4), (3, 4, 5)])
    # base C 1 3 4 5 6 ; merged C 1 A(3,4) 5 6 -> compared from A on: merged 2~base 3, 3~4, 4~5
    assert aligned_positions([0, 1, 3, 4, 5, 6], [0, 1, 10, 5, 6], vocabulary) == ([2, 3, 4], [3, 4, 5])
    assert aligned_positions([0, 1, 3, 4, 5, 6], [0, 1, 11, 6], vocabulary) == ([2, 3], [4, 5])
    with pytest.raises(ValueError, match="does not spell"):
        aligned_positions([0, 1, 3], [0, 1, 10], vocabulary)

    tokenizer = tiny_loaded.tokenizer
    halves = prepare_halves(tokenizer, documents, max_tokens=64)
    embedding = tiny_loaded.model.get_input_embeddings().weight
    merged = merge_contexts(tokenizer, halves, base_size=embedding.shape[0], max_merges=16, min_count=1)
    rows = merged_rows(embedding, merged.vocabulary, piece_bytes=byte_lengths(tokenizer, embedding.shape[0]))
    before = {k: v.clone() for k, v in tiny_loaded.model.state_dict().items()}
    conditioning = tokenizer.conditioning_token()
    same, report = distil_merged_rows(tiny_loaded, halves.context_ids, merged.sequences, merged.vocabulary, rows,
                                      conditioning=conditioning, steps=0)
    assert same is rows and report.steps == 0
    trained, report = distil_merged_rows(tiny_loaded, halves.context_ids, merged.sequences, merged.vocabulary, rows,
                                         conditioning=conditioning, steps=30, lr=1e-2, layer=1)
    assert report.positions > 0 and report.loss_end < report.loss_start, report
    assert trained.shape == rows.shape and trained.dtype == rows.dtype and not torch.equal(trained, rows)
    assert all(torch.equal(v, tiny_loaded.model.state_dict()[k]) for k, v in before.items())
    assert [len(g) for g in length_batches([3, 9, 4, 8], token_budget=16, longest_first=True)] == [1, 2, 1]  # 9 | 8, 4 (2 x 8) | 3
    assert all(p.requires_grad for p in tiny_loaded.model.parameters()) or not any(p.requires_grad for p in tiny_loaded.model.parameters())
    # length buckets are the same objective as one padded batch: the same rows after the same steps
    one_pass, whole = distil_merged_rows(tiny_loaded, halves.context_ids, merged.sequences, merged.vocabulary, rows,
                                     conditioning=conditioning, steps=5, lr=1e-2, layer=1, bucket_tokens=10**9)
    buckets, split = distil_merged_rows(tiny_loaded, halves.context_ids, merged.sequences, merged.vocabulary, rows,
                                    conditioning=conditioning, steps=5, lr=1e-2, layer=1, bucket_tokens=1)
    assert split.loss_start == pytest.approx(whole.loss_start, rel=1e-5) and split.loss_end == pytest.approx(whole.loss_end, rel=1e-3)
    torch.testing.assert_close(buckets, one_pass, rtol=0, atol=1e-3)  # Adam divides float noise in near-zero gradients; rows move ~5e-2
    result = evaluate_dynamic_loaded(tiny_loaded, TextSet("docs", documents), merges=16, min_count=1, distil_steps=3)
    assert result.distil is not None and result.distil["steps"] == 3


def test_evaluate_cli_dynamic_json(tiny_model_dir, tmp_path, capsys):
    from conftest import synthetic_corpus

    from tokenshift.cli import main

    text = tmp_path / "text.txt"
    text.write_text("\n\n".join(" ".join(synthetic_corpus(lines=6, seed=s)) for s in range(3)), encoding="utf-8")
    assert main(["evaluate", str(tiny_model_dir), "--text", str(text), "--dynamic-merges", "8", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    for key in ("context_tokens_base", "context_tokens_dynamic", "bits_per_byte_base", "bits_per_byte_dynamic", "bits_per_byte", "bytes"):
        assert key in result
    assert result["context_tokens_dynamic"] <= result["context_tokens_base"]


def test_generate_dynamic_prefills_shorter(tiny_model_dir, tmp_path, capsys):
    from tokenshift.cli import main

    prompt = tmp_path / "prompt.txt"
    prompt.write_text(" ".join(TEXTS * 2), encoding="utf-8")
    assert main(["generate", str(tiny_model_dir), "--prompt-file", str(prompt), "--dynamic", "--max-new-tokens", "4",
                 "--dynamic-min-count", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["prompt_tokens_dynamic"] < result["prompt_tokens_base"] and result["new_tokens"] <= 4
    assert result["prefill_seconds_base"] > 0 and result["prefill_seconds_dynamic"] > 0


def test_merged_rows_are_scaled_as_the_model_scales_its_own():
    """Gemma-3 multiplies rows by sqrt(D) inside its embedding module: a merged id whose row is a base
    row must read exactly as that base id."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from tokenshift.dynamic.embed import input_embeddings

    torch.manual_seed(0)
    model = Gemma3ForCausalLM(Gemma3TextConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                               num_attention_heads=2, num_key_value_heads=1, head_dim=16)).eval()
    weight = model.get_input_embeddings().weight
    rows = weight[[7, 9]].detach().clone()
    with torch.no_grad():
        merged = input_embeddings(model, torch.tensor([[1, 50, 3, 51]]), rows)
        base = input_embeddings(model, torch.tensor([[1, 7, 3, 9]]), None)
    assert torch.equal(merged, base)


@pytest.mark.slow
def test_real_models_zero_merges_exact_and_merges_shorten():
    from conftest import require_assets

    from tokenshift.data import load_texts
    from tokenshift.dynamic import evaluate_dynamic_loaded
    from tokenshift.modeling import load_model

    require_assets("smollm2-135m", "gemma3-270m", "wiki-fr")
    texts = load_texts("wiki-fr:validation", max_bytes=1500)
    for name in ("smollm2-135m", "gemma3-270m"):
        loaded = load_model(name, device="cpu", dtype="float32")
        zero = evaluate_dynamic_loaded(loaded, texts, merges=0, context=512)
        assert zero.bits_per_byte_dynamic == zero.bits_per_byte_base
        some = evaluate_dynamic_loaded(loaded, texts, merges=32, min_count=1, context=512)
        assert some.context_tokens_dynamic < some.context_tokens_base
        assert abs(some.bits_per_byte_change) < 0.2, some
