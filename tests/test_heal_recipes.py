"""Heal recipes on tiny models: each lowers its own objective, frozen rows stay bit-identical, the
never-worse rule keeps the start when training only hurts, ``minutes`` stops at the budget (an
injected clock, not a timed test), the untied head reloads from a plain HF folder."""

import json
from dataclasses import replace

import pytest
import torch

from conftest import synthetic_corpus
from tokenshift.heal import HealConfig, Stage, heal
from tokenshift.heal.budget import Deadline
from tokenshift.heal.guard import NeverWorse
from tokenshift.heal.rows import RowAdam, ids_from_runs, new_row_ids


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def extended(tmp_path_factory, tiny_model_dir):
    """A tiny model transplanted onto an extension of its own tokenizer (30 new merges), and a corpus
    that uses them."""
    from tokenshift.train import TrainConfig, train_tokenizer
    from tokenshift.transplant import transplant
    from tokenshift.modeling import load_model

    root = tmp_path_factory.mktemp("recipes")
    lines = [f"{line} anticonstitutionnellement développement" for line in synthetic_corpus(300, seed=3)]
    (root / "new.txt").write_text("\n".join(lines))
    corpus = root / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": " ".join(lines[i: i + 10])}) for i in range(0, 300, 10)) + "\n")
    vocab = load_model(str(tiny_model_dir), device="cpu").tokenizer.vocab_size
    train_tokenizer([str(root / "new.txt")], TrainConfig(vocab_size=vocab + 30, extend=str(tiny_model_dir), protect=()), out=root / "ext")
    transplant(str(tiny_model_dir), str(root / "ext"), out=root / "student")
    return {"student": str(root / "student"), "corpus": str(corpus), "original": str(tiny_model_dir)}


def cfg(extended, **options):
    base = dict(text=(extended["corpus"],), tokens=3000, eval_bytes=1500, keep_last=True, distill_batch=4, distill_piece_bytes=60,
                head_piece_bytes=120, seq_len=32, mixed_precision="no")
    return HealConfig(**{**base, **options})


def weights(folder):
    from tokenshift.modeling import load_model

    return load_model(folder, device="cpu", dtype="float32")


@pytest.mark.parametrize("recipe", ["distill-rows", "distill-body", "fit-head", "lora-distill", "lora-ntp"])
def test_each_recipe_lowers_its_own_objective(recipe, extended):
    _, _, report = heal(extended["student"], config=cfg(extended, recipe=recipe, row_lr=1e-2, head_lr=1e-2, lora_lr=3e-3))
    (phase,) = report.phases
    assert phase["name"] == recipe and phase["tokens"] > 0
    assert phase["objective_end"] < phase["objective_start"], phase
    assert report.recipe == recipe and [p["phase"] for p in report.curve] == ["start", recipe]


def test_rows_keeps_copied_rows_and_body_bit_identical_and_reloads(extended, tmp_path):
    before = weights(extended["student"])
    copied = ids_from_runs(json.loads(open(f"{extended['student']}/transplant.json").read())["copied_ids"])
    lm, tokenizer, report = heal(extended["student"], config=cfg(extended, recipe="rows", row_lr=1e-2, head_lr=1e-2), out=tmp_path / "out")
    assert [p["name"] for p in report.phases] == ["distill-rows", "fit-head"]
    old_in, new_in = before.model.get_input_embeddings().weight, lm.get_input_embeddings().weight
    assert torch.equal(old_in[copied], new_in[copied])
    new_ids = new_row_ids(copied, tokenizer.vocab_size)
    assert not torch.equal(old_in[new_ids], new_in[new_ids])
    body_old = {k: v for k, v in before.model.state_dict().items() if "embed" not in k and "lm_head" not in k}
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in body_old.items())
    assert report.untied and report.added_parameters == new_in.numel()
    head = lm.get_output_embeddings().weight
    assert torch.equal(head[copied], old_in[copied])  # the old output rows are the original's
    reloaded = weights(str(tmp_path / "out"))
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["tie_word_embeddings"] is False
    assert reloaded.model.get_output_embeddings().weight is not reloaded.model.get_input_embeddings().weight
    ids = torch.tensor([[1, 5, 9, int(new_ids[0])]])
    assert torch.allclose(reloaded.model(ids).logits, lm(ids).logits, atol=1e-5)
    saved = json.loads((tmp_path / "out" / "heal.json").read_text())
    assert saved["recipe"] == "rows" and saved["kept"]["state"] == "fit-head" and "minutes" in saved["curve"][0]


def test_domain_recipe_trains_rows_then_the_body_on_the_text_and_reloads(extended, tmp_path):
    """adapt's recipe: the new rows (distilled input rows, the head tied), then LoRA with the next-token
    loss, merged; the old input rows stay the original's."""
    before = weights(extended["student"])
    copied = ids_from_runs(json.loads(open(f"{extended['student']}/transplant.json").read())["copied_ids"])
    lm, tokenizer, report = heal(extended["student"], config=cfg(extended, recipe="domain", row_lr=1e-2, head_lr=1e-2, lora_lr=3e-3),
                                 out=tmp_path / "out")
    assert [p["name"] for p in report.phases] == ["distill-rows", "lora-ntp"] and not report.untied
    assert report.phases[1]["objective"].startswith("next-token") and report.phases[1]["details"]["lora_layers"] > 0
    assert torch.equal(before.model.get_input_embeddings().weight[copied], lm.get_input_embeddings().weight[copied])
    reloaded = weights(str(tmp_path / "out"))
    ids = torch.tensor([[1, 5, 9, int(new_row_ids(copied, tokenizer.vocab_size)[0])]])
    assert torch.allclose(reloaded.model(ids).logits, lm(ids).logits, atol=1e-5)


def test_lora_ntp_runs_its_softmax_over_the_texts_tokens_where_they_are_few(extended, monkeypatch):
    """The shortlist softmax (a large vocabulary's head is most of a CPU step): forced on for the tiny
    model, whose text uses most of its vocabulary; the objective still falls."""
    from tokenshift.heal.recipes import lora_distill

    monkeypatch.setattr(lora_distill, "SHORTLIST_SHARE", 1.0)
    _, tokenizer, report = heal(extended["student"], config=cfg(extended, recipe="lora-ntp", lora_lr=3e-3))
    (phase,) = report.phases
    rows = phase["details"]["softmax_rows"]
    assert 0 < rows <= tokenizer.vocab_size and "softmax over the text's" in phase["objective"]
    assert phase["objective_end"] < phase["objective_start"], phase


def test_lora_distill_merges_into_a_plain_folder_and_keeps_copied_rows(extended, tmp_path):
    before = weights(extended["student"])
    copied = ids_from_runs(json.loads(open(f"{extended['student']}/transplant.json").read())["copied_ids"])
    lm, tokenizer, report = heal(extended["student"], config=cfg(extended, recipe="rows-lora", row_lr=1e-2, lora_lr=3e-3), out=tmp_path / "out")
    assert [p["name"] for p in report.phases] == ["distill-rows", "lora-distill"]
    assert report.phases[1]["details"]["lora_layers"] > 0 and not report.untied
    old_in, new_in = before.model.get_input_embeddings().weight, lm.get_input_embeddings().weight
    assert torch.equal(old_in[copied], new_in[copied])  # trainable tokens move the new rows only
    assert lm.get_output_embeddings().weight is new_in  # still tied
    body_old = {k: v for k, v in before.model.state_dict().items() if "embed" not in k and "lm_head" not in k}
    assert any(not torch.equal(v, lm.state_dict()[k]) for k, v in body_old.items())  # the adapters were merged into the body
    assert set(lm.state_dict()) == set(before.model.state_dict())  # no adapter left behind
    reloaded = weights(str(tmp_path / "out"))
    ids = torch.tensor([[1, 5, 9, int(new_row_ids(copied, tokenizer.vocab_size)[0])]])
    assert torch.allclose(reloaded.model(ids).logits, lm(ids).logits, atol=1e-5)


def test_distill_body_adapts_only_the_layers_below_its_target_and_merges(extended, tmp_path):
    before = weights(extended["student"])
    copied = ids_from_runs(json.loads(open(f"{extended['student']}/transplant.json").read())["copied_ids"])
    lm, _, report = heal(extended["student"], config=cfg(extended, recipe="distill-body", row_lr=1e-2, lora_lr=3e-3, distill_layer=1),
                         out=tmp_path / "out")
    (phase,) = report.phases
    assert phase["details"]["layers"] == 1 and phase["details"]["lora_layers"] > 0 and not report.untied
    changed = {k for k, v in before.model.state_dict().items() if "embed" not in k and "lm_head" not in k and not torch.equal(v, lm.state_dict()[k])}
    assert changed and all(".layers.0." in k for k in changed), changed  # LoRA merged into the first layer only
    assert set(lm.state_dict()) == set(before.model.state_dict())  # no adapter left behind
    old_in, new_in = before.model.get_input_embeddings().weight, lm.get_input_embeddings().weight
    assert torch.equal(old_in[copied], new_in[copied])
    reloaded = weights(str(tmp_path / "out"))
    ids = torch.tensor([[1, 5, 9, 12]])
    assert torch.allclose(reloaded.model(ids).logits, lm(ids).logits, atol=1e-5)


def test_never_worse_restores_the_body_after_a_harmful_lora_phase(extended):
    before = weights(extended["student"])
    lm, _, report = heal(extended["student"], config=cfg(extended, recipe="lora-distill", lora_lr=100.0, keep_last=False))
    assert report.kept["state"] == "start", report.kept
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in before.model.state_dict().items())


def test_never_worse_keeps_the_start_when_training_only_hurts(extended):
    before = weights(extended["student"])
    harm = cfg(extended, recipe="distill-rows", row_lr=50.0, keep_last=False)
    lm, _, report = heal(extended["student"], config=harm)
    assert report.kept["state"] == "start" and "worse than the start" in report.kept["reason"]
    assert torch.equal(lm.get_input_embeddings().weight, before.model.get_input_embeddings().weight)
    last, _, kept_last = heal(extended["student"], config=replace(harm, keep_last=True))
    assert kept_last.kept["state"] == "distill-rows" and "--keep-last" in kept_last.kept["reason"]
    assert not torch.equal(last.get_input_embeddings().weight, before.model.get_input_embeddings().weight)


def test_minutes_stop_at_the_budget_with_an_injected_clock(extended):
    now = [0.0]

    def clock():  # every reading advances a second: the budget runs out after a bounded amount of work
        now[0] += 1.0
        return now[0]

    _, _, report = heal(extended["student"], config=cfg(extended, recipe="rows", tokens=None, minutes=1.0), clock=clock)
    assert report.curve[-1]["minutes"] <= 1.5
    distill, head = report.phases
    assert 0 < distill["details"]["steps"] < 40 and head["details"]["epochs"] < 50  # both stopped by the clock, not by their caps


def test_fit_head_without_time_left_is_skipped_not_fatal(extended, monkeypatch):
    from tokenshift.heal.recipes import PHASES

    now = [0.0]

    def clock():
        now[0] += 0.01
        return now[0]

    distill = PHASES["distill-rows"]

    def distill_spending_the_budget(ctx, *, seconds, tokens):
        result = distill(ctx, seconds=seconds, tokens=tokens)
        now[0] += 1000.0  # distill-rows trained, then ran past the whole budget: fit-head finds none left
        return result

    monkeypatch.setitem(PHASES, "distill-rows", distill_spending_the_budget)
    _, _, report = heal(extended["student"], config=cfg(extended, recipe="rows", tokens=None, minutes=1.0), clock=clock)
    assert report.phases[0]["tokens"] > 0
    head = report.phases[-1]
    assert head["name"] == "fit-head" and "no time left" in head["details"]["skipped"]
    assert not report.untied and report.added_parameters == 0  # the head was left tied, as it was


def test_stages_recipe_stops_at_the_minutes_budget(extended):
    now = [0.0]

    def clock():
        now[0] += 5.0
        return now[0]

    config = cfg(extended, recipe="stages", tokens=None, steps=50, minutes=1.0, batch_size=2, log_every=0)
    _, _, report = heal(extended["student"], config=config, clock=clock)
    assert 0 < report.steps < 50


def test_budget_and_recipe_mistakes_answer_with_the_fix(extended):
    with pytest.raises(ValueError, match="give a budget"):
        HealConfig(text=("x",)).check()
    with pytest.raises(ValueError, match="not --steps"):
        HealConfig(text=("x",), recipe="rows", steps=3).check()
    with pytest.raises(ValueError, match="unknown recipe 'row'"):
        HealConfig(text=("x",), recipe="row", minutes=1).check()
    with pytest.raises(ValueError, match="transplant.json"):
        heal(extended["original"], config=cfg(extended, recipe="rows"))
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        heal(extended["student"] + "-missing", config=cfg(extended, recipe="rows"))


def test_auto_recipe_is_rows_for_a_transplant_and_stages_for_steps(extended):
    from tokenshift.heal.run import resolve_recipe

    assert resolve_recipe(HealConfig(text=("x",), minutes=1), extended["student"])[0] == "rows"
    assert resolve_recipe(HealConfig(text=("x",), steps=3), extended["student"])[0] == "stages"
    assert resolve_recipe(HealConfig(text=("x",), minutes=1), extended["original"])[0] == "stages"


def test_auto_recipe_for_a_replacement_tokenizer_trains_the_body(tmp_path):
    from tokenshift.heal.run import resolve_recipe

    (tmp_path / "transplant.json").write_text(json.dumps({"model": "m", "copied_ids": [[0, 5]], "extension": False}))
    recipe, why = resolve_recipe(HealConfig(text=("x",), minutes=1), str(tmp_path))
    assert recipe == "rows-lora" and "replacement" in why


def test_row_adam_moves_only_rows_with_a_gradient():
    rows = torch.nn.Parameter(torch.zeros(4, 3))
    optimizer = RowAdam(rows, lr=0.1)
    rows.grad = torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, -2.0, 0], [0, 0, 0]])
    assert optimizer.step() == 2
    first = rows.detach().clone()
    assert torch.allclose(first[0], torch.tensor([-0.1, 0, 0])) and torch.equal(first[1], torch.zeros(3))
    rows.grad = torch.tensor([[0.0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1.0]])
    optimizer.step()  # row 0 had momentum; plain Adam would move it again
    assert torch.equal(rows.detach()[0], first[0]) and torch.allclose(rows.detach()[3], torch.tensor([0, 0, -0.1]))


def test_guard_keeps_the_best_state_no_worse_than_the_start():
    states = {"value": 0}
    guard = NeverWorse(lambda: states["value"], lambda state: states.update(value=state))
    guard.offer("start", {"a": 2.0, "b": 1.0})
    states["value"] = 1
    guard.offer("one", {"a": 1.5, "b": 1.0})
    states["value"] = 2
    guard.offer("two", {"a": 1.0, "b": 1.1})  # better on a, worse than the start on b
    kept = guard.finish(keep_last=False)
    assert kept["state"] == "one" and states["value"] == 1 and "b 1.1000 > 1.0000" in kept["reason"]


def test_guard_rewinds_a_phase_that_did_not_pay_so_the_next_starts_from_the_best():
    states = {"value": 0}
    guard = NeverWorse(lambda: states["value"], lambda state: states.update(value=state))
    guard.offer("start", {"a": 2.0})
    assert guard.rewind() is None  # the model holds the best state already
    states["value"] = 1
    guard.offer("rows", {"a": 2.2})  # worse: the next phase must not train from it
    assert guard.rewind() == "start" and states["value"] == 0
    states["value"] = 2
    guard.offer("body", {"a": 1.5})
    assert guard.rewind() is None and guard.finish(keep_last=False)["state"] == "body" and states["value"] == 2


def test_deadline_counts_on_its_clock():
    now = [10.0]
    deadline = Deadline(60, clock=lambda: now[0])
    now[0] = 40.0
    assert deadline.elapsed() == 30 and deadline.remaining() == 30 and not deadline.expired()
    now[0] = 71.0
    assert deadline.expired() and Deadline(None).remaining() == float("inf")


def test_a_phase_that_harms_is_undone_before_the_next_phase(extended):
    harm = cfg(extended, recipe="domain", keep_last=False, row_lr=50.0, lora_lr=1e-3)  # rows at lr 50: distill-rows harms
    _, _, report = heal(extended["student"], config=harm)
    first, *rest = report.phases
    assert first["name"] == "distill-rows" and first["undone"].startswith("did not improve on start"), report.curve
    assert [p["name"] for p in rest] == ["lora-ntp"]


def test_stages_never_worse_reloads_the_input_model(extended):
    before = weights(extended["student"])
    harm = cfg(extended, recipe="stages", tokens=None, steps=3, batch_size=2, log_every=0, keep_last=False,
               stages=(Stage("all", lr=50.0, warmup=0),))
    lm, _, report = heal(extended["student"], config=harm)
    assert report.kept["state"] == "start" and "worse than the start" in report.kept["reason"]
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in before.model.state_dict().items())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("recipe", ["distill-rows", "fit-head", "lora-distill"])
def test_each_recipe_on_cuda_lowers_its_own_objective_and_writes_a_cpu_loadable_folder(recipe, extended, tmp_path):
    config = cfg(extended, recipe=recipe, device="cuda", row_lr=1e-2, head_lr=1e-2, lora_lr=3e-3)
    _, _, report = heal(extended["student"], config=config, out=tmp_path / "healed")
    (phase,) = report.phases
    assert phase["objective_end"] < phase["objective_start"], phase
    reloaded = weights(tmp_path / "healed")  # written from the GPU, read back on the CPU
    assert all(torch.isfinite(p).all() for p in reloaded.model.parameters())
