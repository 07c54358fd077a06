"""Byte-level model: distributions, brute-force parity of the cover sum, log_prob, ensembles, token healing, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import write_model_folder

torch = pytest.importorskip("torch")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def tiny_loaded(tiny_model_dir):
    from tokenshift.modeling import load_model

    return load_model(str(tiny_model_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def tiny_gemma2_loaded(tiny_gemma2_dir):
    from tokenshift.modeling import load_model

    return load_model(str(tiny_gemma2_dir), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def other_loaded(tmp_path_factory):
    """A second tiny model with a different tokenizer (another vocabulary size, other merges)."""
    from conftest import save_tiny_model, train_byte_level_bpe

    from tokenshift.modeling import load_model

    folder = save_tiny_model(tmp_path_factory.mktemp("tiny-other"), train_byte_level_bpe(vocab_size=290), seed=3)
    return load_model(str(folder), device="cpu", dtype="float32")


def bigram_model_dir(folder: Path) -> Path:
    """A hand-built byte-level BPE and a llama that is a deterministic bigram model over its tokens.

    Tokens: bytes of "say print" plus merges up to ``Ġprint``; "say pri" encodes as [say, Ġpri],
    "say print" as [say, Ġprint]. Attention and MLP outputs are zeroed and the embeddings are one-hot,
    so the logits depend on the last token only: <|endoftext|> -> say -> Ġprint -> <|endoftext|>,
    and Ġpri -> Ġp (what plain decoding of the cut prompt follows).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM

    names = ["<|endoftext|>", "s", "a", "y", "Ġ", "p", "r", "i", "n", "t", "sa", "say", "Ġp", "ri", "Ġpri", "nt", "Ġprint"]
    vocab = {name: i for i, name in enumerate(names)}
    merges = [("s", "a"), ("sa", "y"), ("Ġ", "p"), ("r", "i"), ("Ġp", "ri"), ("n", "t"), ("Ġpri", "nt")]
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(["<|endoftext|>"])
    assert backend.encode("say pri").tokens == ["say", "Ġpri"] and backend.encode("say print").tokens == ["say", "Ġprint"]

    hidden = 32
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(names), hidden_size=hidden, intermediate_size=8, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                         tie_word_embeddings=False))
    logits = torch.full((len(names), len(names)), -12.0)  # [current, next]
    for current, following in [("<|endoftext|>", "say"), ("say", "Ġprint"), ("Ġprint", "<|endoftext|>"), ("Ġpri", "Ġp")]:
        logits[vocab[current], vocab[following]] = 12.0
    with torch.no_grad():
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[:, : len(names)] = torch.eye(len(names))
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        model.lm_head.weight[:, : len(names)] = logits.T / math.sqrt(hidden)  # the final norm scales one-hot by sqrt(hidden)
    return write_model_folder(folder, model, backend)


@pytest.fixture(scope="module")
def bigram_dir(tmp_path_factory) -> Path:
    return bigram_model_dir(tmp_path_factory.mktemp("bigram"))


# ----------------------------------------------------------------------------- brute force


_BRUTE_MEMO: dict[int, dict[tuple[int, ...], list[float]]] = {}  # next-token log probs per token sequence


def brute_force(loaded, prefix: bytes) -> tuple[float, float]:
    """P(prefix) and P(prefix, then end of text), by enumerating every token sequence by hand.

    Which sequences count (the same set the beam sums, with nothing pruned): every sequence of
    tokens with bytes (special tokens excluded) t1..tk such that bytes(t1..t(k-1)) is a proper
    prefix of ``prefix`` and bytes(t1..tk) starts with it, canonical or not, each with its product of
    model probabilities after the conditioning token. For the end: every sequence whose bytes are
    exactly ``prefix``, times p(end | sequence). Each probability comes from a full forward without cache.
    """
    tokenizer = loaded.tokenizer
    special = set(tokenizer.special.all_special)
    pieces = {i: p for i, p in enumerate(tokenizer.vocab_bytes()) if p and i not in special}
    end_id = tokenizer.special.eos
    conditioning = tokenizer.conditioning_token()
    totals = [0.0, 0.0]
    memo = _BRUTE_MEMO.setdefault(id(loaded), {})

    def walk(sequence: list[int], position: int, logp: float) -> None:
        key = tuple(sequence)
        if key not in memo:
            with torch.no_grad():
                logits = loaded.model(torch.tensor([[conditioning, *sequence]])).logits[0, -1].double()
            memo[key] = torch.log_softmax(logits, -1).tolist()
        logprobs = memo[key]
        if position == len(prefix):
            totals[1] += math.exp(logp + logprobs[end_id])
            return
        rest = prefix[position:]
        for token, piece in pieces.items():
            if piece.startswith(rest):  # reaches or crosses the end: a cover
                totals[0] += math.exp(logp + logprobs[token])
            elif rest.startswith(piece):  # ends inside the prefix: extend
                walk([*sequence, token], position + len(piece), logp + logprobs[token])

    walk([], 0, 0.0)
    return totals[0], totals[1]


def brute_force_exact_end(loaded, prefix: bytes) -> float:
    """Sum over sequences whose bytes are exactly ``prefix`` of P(sequence) p(end | sequence)."""
    return brute_force(loaded, prefix)[1] if prefix else 0.0


# ----------------------------------------------------------------------------- tests


def test_vocab_ranges_are_prefix_sets(tiny_tokenizer):
    from tokenshift.bytelevel import ByteVocab

    vocab = ByteVocab.from_tokenizer(tiny_tokenizer)
    lo, hi, depth = 0, vocab.size, 0
    for byte in b" ca":
        lo, hi = vocab.narrow(lo, hi, depth, byte)
        depth += 1
        while lo < hi and vocab.lengths[lo] == depth:
            lo += 1
    expected = sorted(p for p in tiny_tokenizer.vocab_bytes() if p and p.startswith(b" ca") and len(p) > 3
                      and p != b"<|endoftext|>")
    assert sorted(vocab.token_bytes(r) for r in range(lo, hi)) == expected
    assert vocab.excluded == 0 and list(vocab.end_ids) == [tiny_tokenizer.special.eos]


@pytest.mark.parametrize("fixture", ["tiny_loaded", "tiny_gemma2_loaded"])
def test_packed_tree_forward_matches_plain_forwards(fixture, request, tiny_tokenizer):
    """Suffixes packed after a cached prefix give the logits of plain full forwards (gemma2: past its 16-token window)."""
    from tokenshift.bytelevel.forward import PrefixForward

    loaded = request.getfixturevalue(fixture)
    ids = tiny_tokenizer.encode("the cat sat on a mat while le chat mange une pomme and el perro come pan")
    assert len(ids) > 20
    cond = tiny_tokenizer.conditioning_token()
    forward = PrefixForward(loaded.model, device="cpu", first_token=cond)
    forward.commit(ids[:18])
    suffixes = [(), tuple(ids[18:21]), (ids[18], ids[5]), (ids[9],)]
    got = forward.next_logits(suffixes)
    forward.commit(ids[18:20])
    again = forward.next_logits([(), (ids[20],)])
    with torch.no_grad():
        for row, suffix in zip(got, suffixes):
            want = loaded.model(torch.tensor([[cond, *ids[:18], *suffix]])).logits[0, -1]
            assert torch.allclose(row, want, atol=1e-4)
        want = loaded.model(torch.tensor([[cond, *ids[:21]]])).logits[0]
        assert torch.allclose(again[0], want[-2], atol=1e-4) and torch.allclose(again[1], want[-1], atol=1e-4)
    assert forward.length == 21  # the suffixes never stay in the cache


@pytest.mark.parametrize("prefix", [b"", b"the c", b"caf\xc3", "北".encode()[:2], b"sat on"])
def test_distribution_sums_to_one(tiny_loaded, prefix):
    from tokenshift.bytelevel import ByteLevelModel

    dist = ByteLevelModel(tiny_loaded, beam=4).next_byte_distribution(prefix)
    assert dist.shape == (257,) and (dist >= 0).all()
    assert abs(dist.sum() - 1.0) < 1e-9


@pytest.mark.parametrize("prefix", [b"the c", b"a m", "é".encode()[:1] + b""])
def test_prefix_probability_equals_brute_force(tiny_loaded, prefix):
    """With nothing pruned, the product of next-byte probabilities is the hand-enumerated cover sum."""
    from tokenshift.bytelevel import ByteLevelModel

    model = ByteLevelModel(tiny_loaded, beam=10_000, threshold=0.0, window=10_000)
    assert model.vocab.excluded == 0  # nothing renormalised away, so the sum must match exactly
    score = model.log_prob(prefix)
    want, _ = brute_force(tiny_loaded, prefix)
    assert score.stats.dropped_mass_max < 1e-12
    assert abs(2.0 ** -score.bits - want) < 1e-6 * max(1.0, want) or abs(-score.bits - math.log2(want)) < 1e-6
    # next-byte conditionals: P(x | b) = P(b + x) / P(b), and P(end | b) from the exact-end sum
    dist = model.next_byte_distribution(prefix)
    for byte in (ord("a"), ord("t"), ord(" ")):
        assert abs(dist[byte] - brute_force(tiny_loaded, prefix + bytes([byte]))[0] / want) < 1e-6
    assert abs(dist[256] - brute_force_exact_end(tiny_loaded, prefix) / want) < 1e-6


def test_log_prob_is_product_of_next_byte_probabilities(tiny_loaded):
    """Pruned (beam 3): log_prob equals the sum of log next-byte probabilities from fresh states."""
    from tokenshift.bytelevel import ByteLevelModel

    model = ByteLevelModel(tiny_loaded, beam=3, threshold=1e-4)
    text = "le chat 😀"
    data = text.encode()
    score = model.log_prob(text, end=True)
    bits = [-math.log2(model.next_byte_distribution(data[:i])[data[i]]) for i in range(len(data))]
    bits.append(-math.log2(model.next_byte_distribution(data)[256]))
    assert score.bytes == len(data) and len(score.byte_bits) == len(data) + 1
    assert abs(score.bits - sum(bits)) < 1e-6
    assert score.stats.max_items <= 4 and score.stats.dropped_mass_max > 0  # the beam did prune here


def test_byte_level_bits_at_most_token_level(tiny_loaded):
    """The cover sum contains the canonical tokenization, so it can only add probability."""
    from tokenshift.bytelevel import ByteLevelModel, evaluate_bytes
    from tokenshift.data import TextSet
    from tokenshift.evaluate import evaluate_loaded

    texts = TextSet("tiny", ["the cat sat on a mat", "naïve café 12345 fin."])
    token_level = evaluate_loaded(tiny_loaded, texts)
    byte_level, scores = evaluate_bytes(ByteLevelModel(tiny_loaded, beam=8), texts)
    assert byte_level.bytes == token_level.bytes == texts.n_bytes and len(scores) == 2
    assert byte_level.bits <= token_level.bits + 1e-6
    assert json.loads(json.dumps(byte_level.to_json()))["bits_per_byte"] == pytest.approx(byte_level.bits_per_byte)


def test_ensemble_across_tokenizers(tiny_loaded, other_loaded):
    from tokenshift.bytelevel import MIXES, ByteEnsemble, ByteLevelModel, mix_byte_bits

    assert other_loaded.tokenizer.vocab_size != tiny_loaded.tokenizer.vocab_size
    members = [ByteLevelModel(tiny_loaded, beam=4), ByteLevelModel(other_loaded, beam=4)]
    text = "the cat mange"
    alone = [m.log_prob(text) for m in members]
    for mix in MIXES:  # every registered mixture: a distribution, and the same bits as mixing the members' scores
        ensemble = ByteEnsemble(members, weights=[0.3, 0.7], mix=mix)
        dist = ensemble.next_byte_distribution(b"the ca")
        assert abs(dist.sum() - 1.0) < 1e-9
        score = ensemble.log_prob(text)
        mixed = mix_byte_bits([a.byte_bits for a in alone], weights=[0.3, 0.7], mix=mix)
        assert score.byte_bits == pytest.approx(mixed, abs=1e-9)
    # a linear mixture never costs more than -log2(weight) bits per byte over the member
    linear = ByteEnsemble(members, weights=[0.5, 0.5]).log_prob(text)
    assert all(m <= min(a, b) + 1.0 + 1e-9 for m, a, b in zip(linear.byte_bits, alone[0].byte_bits, alone[1].byte_bits))
    with pytest.raises(ValueError, match="one weight per model"):
        ByteEnsemble(members, weights=[1.0])
    with pytest.raises(ValueError, match="unknown mix"):
        ByteEnsemble(members, mix="geometric")


def test_token_healing_continues_like_the_uncut_prompt(bigram_dir):
    from tokenshift.bytelevel import ByteLevelModel, generate_bytes, generate_tokens
    from tokenshift.modeling import load_model

    loaded = load_model(str(bigram_dir), device="cpu", dtype="float32")
    model = ByteLevelModel(loaded)
    uncut = generate_bytes(model, "say", max_bytes=20)
    assert uncut.text == " print" and uncut.ended
    for back_off in (None, 1):
        healed = generate_bytes(model, "say pri", max_bytes=20, back_off=back_off)
        assert "say pri" + healed.text == "say" + uncut.text and healed.ended
    plain = generate_tokens(loaded, "say pri", max_bytes=6)
    assert "say pri" + plain.text != "say print"  # the canonical cut [say, Ġpri] leads elsewhere


def test_cli_generate_and_ensemble(tiny_model_dir, bigram_dir, tmp_path, capsys):
    import argparse

    from tokenshift.bytelevel.cli import add_parsers

    parser = argparse.ArgumentParser(prog="tokenshift")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["generate", str(bigram_dir), "--prompt", "say pri", "--byte-level", "--device", "cpu", "--json"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["text"] == "nt" and out["mode"] == "bytes"
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on a mat", encoding="utf-8")
    args = parser.parse_args(["ensemble", str(tiny_model_dir), str(tiny_model_dir), "--text", str(text), "--weights", "1", "3",
                              "--beam", "2", "--device", "cpu", "--json"])
    assert args.func(args) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert len(result["members"]) == 2 and set(result["mixtures"]) == {"linear"} and result["weights"] == [0.25, 0.75]
    # the same model twice mixes to itself
    assert result["members"][0]["bits"] == pytest.approx(result["mixtures"]["linear"]["bits"], abs=1e-6)
    args = parser.parse_args(["ensemble", str(tiny_model_dir), str(tiny_model_dir), "--text", str(text), "--beam", "2",
                              "--device", "cpu"])
    assert args.func(args) == 0
    table = capsys.readouterr().out
    assert "linear(0.5·" in table and "vs best model" in table
    args = parser.parse_args(["ensemble", str(tiny_model_dir), "--text", str(text)])
    with pytest.raises(ValueError, match="at least two"):
        args.func(args)


def test_evaluate_ensemble_scores_members_once_and_fits_on_held_out_text(tiny_loaded, other_loaded):
    from tokenshift.bytelevel import FITTED, MIXES, ByteEnsemble, ByteLevelModel, evaluate_ensemble
    from tokenshift.data import TextSet

    members = [ByteLevelModel(tiny_loaded, beam=4), ByteLevelModel(other_loaded, beam=4)]
    scored = [TextSet("a", ["the cat sat", "a mat"]), TextSet("b", ["le chat mange"])]
    held_out = TextSet("held", ["the cat ate", "le chat dort"])
    results = evaluate_ensemble(members, scored, mixes=list(MIXES), fit_on=held_out, weights=[1, 3])
    assert [r.text for r in results] == ["a", "b"]
    for result, texts in zip(results, scored):
        assert set(result.mixtures) == {*MIXES, FITTED} and result.weights == [0.25, 0.75]
        for mix in MIXES:  # each mixture equals running the ensemble itself, document by document
            direct = sum(ByteEnsemble(members, weights=[1, 3], mix=mix).log_prob(d).bits for d in texts.documents)
            assert result.mixtures[mix].bits == pytest.approx(direct, abs=1e-6)
            assert result.mixtures[mix].bytes == texts.n_bytes == result.members[0].bytes
        assert result.gain("linear") == pytest.approx(result.mixtures["linear"].bits_per_byte - result.best_member.bits_per_byte)
        assert result.fitted_on == "held" and abs(sum(result.fitted_weights) - 1) < 1e-9
        assert result.mixtures[FITTED].model.startswith("fitted linear(")
    with pytest.raises(ValueError, match="held-out"):
        evaluate_ensemble(members, scored, fit_on=scored[0])
    with pytest.raises(ValueError, match="nothing to mix"):
        evaluate_ensemble(members, scored, mixes=[])
    with pytest.raises(ValueError, match="unknown mix"):
        evaluate_ensemble(members, scored, mixes=["geometric"])
    with pytest.raises(ValueError, match="at least two"):
        evaluate_ensemble(members[:1], scored)


def test_fit_weights_finds_the_best_linear_mixture():
    import numpy as np

    from tokenshift.bytelevel import fit_weights, mix_byte_bits

    rng = np.random.default_rng(0)
    strong = rng.uniform(0.5, 2.0, size=400)
    strong = rng.uniform(2.0, 4.0, size=400)
    weak = np.where(rng.uniform(size=400) < 0.3, 0.05, strong + 3.0)  # worse on average, much better on 30% of bytes
    weights = fit_weights([weak, strong])
    assert weights.shape == (2,) and abs(weights.sum() - 1) < 1e-9 and 0 < weights[0] < weights[1]
    fitted = sum(mix_byte_bits([weak, strong], weights=list(weights)))
    for w in np.linspace(0, 1, 101):  # no fixed weight on a grid does better than the fitted one
        assert fitted <= sum(mix_byte_bits([weak, strong], weights=[w, 1 - w])) + 1e-6
    assert fitted < min(weak.sum(), strong.sum())
    with pytest.raises(ValueError, match="non-empty"):
        fit_weights([[], []])
