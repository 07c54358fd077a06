"""The shared chunked log-prob module: the head check, and what evaluate and heal do when it fails."""

import logging

import pytest
import torch
from transformers import AutoModelForCausalLM

from tokenshift.evaluate import scoring
from tokenshift.evaluate.windows import document_windows
from tokenshift.heal.forward import check_head
from tokenshift.modeling import load_model
from tokenshift.modeling.logprobs import Shortlist, head_reproduces_logits, scored_logprobs

pytestmark = pytest.mark.usefixtures("one_thread")

IDS = torch.tensor([[1, 5, 9, 250, 12, 300, 7, 201, 40, 41]])


def double_the_head(model) -> None:
    """Make the model's own logits twice what body + head weight give, as a head with a scale would."""
    model.get_output_embeddings().register_forward_hook(lambda module, args, output: output * 2)


@pytest.fixture(params=["llama", "gemma2"])
def model_dir(request, tiny_model_dir, tiny_gemma2_dir):
    return {"llama": tiny_model_dir, "gemma2": tiny_gemma2_dir}[request.param]


def test_an_unmodified_model_agrees(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    assert head_reproduces_logits(model, IDS)


def test_a_half_precision_model_agrees_within_its_rounding(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    assert head_reproduces_logits(model, IDS)


def test_a_modified_head_disagrees(model_dir):
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    double_the_head(model)
    assert not head_reproduces_logits(model, IDS)


def test_the_check_keeps_the_training_mode(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).train()
    assert head_reproduces_logits(model, IDS)
    assert model.training


def test_scored_logprobs_are_the_models_log_softmax_in_chunks(tiny_gemma2_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma2_dir).eval()
    ids = torch.cat([IDS, IDS.flip(1)])
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    targets, scored = ids.roll(-1, 1), mask.bool()
    with torch.no_grad():
        chunked = scored_logprobs(model, ids, mask, targets, scored, logit_bytes=4 * model.config.vocab_size * 3)  # 3 rows per chunk
        reference = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits, -1)[scored].gather(-1, targets[scored][:, None])
    assert torch.allclose(chunked, reference.flatten(), atol=1e-5)


def test_a_shortlist_normalises_over_its_ids_only_and_refuses_a_target_outside_it(tiny_gemma2_dir):
    """lora-ntp's shortlist softmax: log p(target) renormalised over the listed ids (soft cap included),
    gradients reaching the head's listed rows only."""
    model = AutoModelForCausalLM.from_pretrained(tiny_gemma2_dir).eval()
    ids, mask = IDS, torch.ones_like(IDS)
    targets, scored = ids.roll(-1, 1), mask.bool()
    listed = sorted(set(IDS.flatten().tolist()) | {2, 3, 77})
    shortlist = Shortlist.of(listed, model.config.vocab_size)
    short = scored_logprobs(model, ids, mask, targets, scored, shortlist=shortlist)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[scored][:, listed]
        reference = torch.log_softmax(logits, -1).gather(-1, shortlist.position[targets[scored]][:, None]).flatten()
    assert torch.allclose(short.detach(), reference, atol=1e-5)
    short.sum().backward()
    grad = model.get_output_embeddings().weight.grad.abs().sum(-1)
    outside = torch.ones_like(grad, dtype=torch.bool)
    outside[listed] = False
    # the tied input rows of the inputs get gradient through the body; no other row outside the list does
    outside[IDS.flatten()] = False
    assert grad[outside].sum() == 0 and grad[listed].sum() > 0
    with pytest.raises(ValueError, match="not in the softmax shortlist"):
        scored_logprobs(model, ids, mask, targets, scored, shortlist=Shortlist.of([2, 3], model.config.vocab_size))


def test_evaluate_falls_back_to_full_forwards_with_a_warning(tiny_model_dir, documents, caplog):
    loaded = load_model(str(tiny_model_dir), device="cpu")
    windows = [w for d in documents for w in document_windows(loaded.tokenizer.conditioning_token(), loaded.tokenizer.encode(d), context=16)]
    double_the_head(loaded.model)
    scorer = scoring.WindowScorer(loaded.model, device="cpu")
    with caplog.at_level(logging.WARNING, logger=scoring.__name__):
        nats = scorer.nll_nats(windows, pad_id=0)
    assert "disagrees" in caplog.text
    assert scorer.checked and not scorer.use_chunked_head
    full = scoring.WindowScorer(loaded.model, device="cpu")
    full.use_chunked_head = False
    assert nats == pytest.approx(full.nll_nats(windows, pad_id=0), rel=1e-6)  # scored with the model's real (doubled) logits


def test_heal_refuses_a_model_whose_head_disagrees(tiny_model_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    check_head(model, "tiny")
    double_the_head(model)
    with pytest.raises(ValueError, match="output head does something besides a linear layer"):
        check_head(model, "tiny")


def test_the_head_check_runs_once_per_model_structure(tiny_model_dir, monkeypatch):
    import tokenshift.modeling.logprobs as logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    calls = []
    real = logprobs.head_logits
    monkeypatch.setattr(logprobs, "head_logits", lambda *args, **kwargs: calls.append(1) or real(*args, **kwargs))
    ids = torch.tensor([[1, 2, 3, 4]])
    assert logprobs.head_reproduces_logits(model, ids) and logprobs.head_reproduces_logits(model, ids)
    assert len(calls) == 1  # asked again (every evaluation of a heal run asks): answered from the first time
    double_the_head(model)  # a new hook is a new structure: checked again
    assert not logprobs.head_reproduces_logits(model, ids) and len(calls) == 2
