"""Heal: alignment, chunked loss, objectives, stages/freezing, checkpoint + resume, output folder, CLI."""

import argparse
import functools
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import WORDS, save_tiny_model, synthetic_corpus
from tokenshift.heal import HealConfig, Stage, align, heal, parse_stages
from tokenshift.heal.config import stage_steps
from tokenshift.heal.data import batch_indices, cut_pieces, make_batch
from tokenshift.heal.losses import DISTANCES, chunk_logprobs, distillation_loss, resolve_loss_impl, target_logprobs
from tokenshift.heal.stages import STAGE_KINDS, StageContext, finish_stage


pytestmark = pytest.mark.usefixtures("one_thread")


def other_backend(vocab_size: int = 360, seed: int = 7):
    """A byte-level BPE trained on other text: many tokens shared with the tiny one, many not."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    corpus = [line.replace("cat", "chat").replace("the", "la") for line in synthetic_corpus(300, seed=seed)]
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                                            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return backend


def wrap(backend, name):
    from tokenshift.tokenizer.core import Tokenizer, roles_from_names

    return Tokenizer(backend, name=name, special=roles_from_names(backend, adds_bos=False))


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_backend):
    """teacher: a tiny llama over the tiny BPE; student: its transplant onto another BPE; a corpus."""
    from tokenshift.transplant import transplant

    root = tmp_path_factory.mktemp("heal")
    corpus = root / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": " ".join(synthetic_corpus(6, seed=i))}) for i in range(30)) + "\n")
    # The teacher is first trained on the corpus (heal works on any causal LM), so that it knows the
    # text better than chance and distilling from it agrees with next-token training.
    torch.set_num_threads(1)
    random_lm = save_tiny_model(root / "random", tiny_backend, seed=1)
    pretrain = HealConfig(text=(str(corpus),), steps=40, batch_size=8, seq_len=24, stages=(Stage("all", lr=2e-2, warmup=0),), mixed_precision="no")
    heal(str(random_lm), config=pretrain, out=root / "teacher")
    newtok = root / "newtok"
    newtok.mkdir()
    other_backend().save(str(newtok / "tokenizer.json"))
    (newtok / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    transplant(str(root / "teacher"), str(newtok), out=root / "student")
    return {"root": root, "teacher": root / "teacher", "student": root / "student", "corpus": str(corpus)}


def config(setup, **options):
    base = dict(text=(setup["corpus"],), steps=8, batch_size=4, seq_len=24, log_every=1, eval_bytes=2000, keep_last=True, mixed_precision="no",
                stages=(Stage("new-rows", share=0.5, lr=1e-2), Stage("all", share=0.5, lr=3e-3, warmup=0)))
    return HealConfig(**{**base, **options})


# --- alignment ---------------------------------------------------------------------------------


def spans(pieces: list[bytes]) -> tuple[list[int], list[int]]:
    starts, ends, pos = [], [], 0
    for piece in pieces:
        starts.append(pos)
        pos += len(piece)
        ends.append(pos)
    return starts, ends


def test_alignment_of_the_documented_example():
    student = spans([b"le", b" chat", b" mange"])
    teacher = spans([b"l", b"e", b" ch", b"at", b" m", b"ange"])
    result = align(*student, *teacher)
    assert result.boundaries == [0, 2, 7, 13]
    assert result.student_chunk == [0, 1, 2]
    assert result.teacher_chunk == [0, 0, 1, 1, 2, 2]


def test_alignment_of_straddling_tokens_merges_them_into_one_chunk():
    # student "ab|cd|ef", teacher "a|bc|de|f": no common boundary inside, one chunk for all
    result = align(*spans([b"ab", b"cd", b"ef"]), *spans([b"a", b"bc", b"de", b"f"]))
    assert result.boundaries == [0, 6]
    assert result.student_chunk == [0, 0, 0] and result.teacher_chunk == [0, 0, 0, 0]


def test_alignment_of_multibyte_characters_split_differently():
    # "café 北京": the student splits é (2 bytes) and 北 (3 bytes) into byte tokens, the teacher keeps them
    s = [b"caf", b"\xc3", b"\xa9", b" ", b"\xe5", b"\x8c\x97", b"\xe4\xba\xac"]
    t = [b"ca", b"f\xc3\xa9", b" \xe5\x8c\x97", b"\xe4\xba", b"\xac"]
    assert b"".join(s) == b"".join(t) == "café 北京".encode()
    result = align(*spans(s), *spans(t))
    assert result.boundaries == [0, 5, 9, 12]  # after "café", after " 北", after "京"
    assert result.student_chunk == [0, 0, 0, 1, 1, 1, 2]
    assert result.teacher_chunk == [0, 0, 1, 2, 2]


def test_alignment_stops_where_one_side_was_truncated():
    result = align(*spans([b"ab", b"cd", b"ef"]), *spans([b"ab", b"c"]))  # the teacher covers 3 bytes
    assert result.boundaries == [0, 2]
    assert result.student_chunk == [0, -1, -1] and result.teacher_chunk == [0, -1]


def test_alignment_of_inexact_shared_spans():
    # three byte-fallback tokens sharing one character's span [2, 5): one chunk with both sides present
    result = align([0, 2, 2, 2], [2, 5, 5, 5], [0, 1, 2], [1, 2, 5])
    assert result.boundaries == [0, 2, 5]
    assert result.student_chunk == [0, 1, 1, 1] and result.teacher_chunk == [0, 0, 1]


@functools.lru_cache(maxsize=1)
def other_tokenizer():
    return wrap(other_backend(), "other")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([*WORDS, "  ", "\n", "é", "😀x"]), min_size=1, max_size=25))
def test_aligned_chunks_spell_the_same_bytes_on_both_sides(tiny_tokenizer, words):
    """Property: with two real tokenizers, every chunk is the same bytes under both, and the chunks
    tile the whole text."""
    text = " ".join(words)
    other = other_tokenizer()
    student, teacher = tiny_tokenizer.encode_with_offsets(text), other.encode_with_offsets(text)
    result = align(student.starts, student.ends, teacher.starts, teacher.ends)
    assert result.boundaries[-1] == len(text.encode("utf-8"))
    assert -1 not in result.student_chunk and -1 not in result.teacher_chunk
    for c in range(result.n_chunks):
        s_bytes = b"".join(tiny_tokenizer.token_bytes(i) for i, k in zip(student.ids, result.student_chunk) if k == c)
        t_bytes = b"".join(other.token_bytes(i) for i, k in zip(teacher.ids, result.teacher_chunk) if k == c)
        assert s_bytes == t_bytes == text.encode("utf-8")[result.boundaries[c] : result.boundaries[c + 1]]


# --- losses ------------------------------------------------------------------------------------


@pytest.mark.parametrize("softcap", [None, 5.0])
def test_chunked_loss_equals_the_full_loss_and_its_gradient(softcap):
    torch.manual_seed(0)
    hidden = torch.randn(37, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(101, 16, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 101, (37,))
    upstream = torch.randn(37, dtype=torch.float64)  # any downstream use, not just the mean

    def run(logit_bytes):
        hidden.grad = weight.grad = None
        out = target_logprobs(hidden, weight, targets, softcap=softcap, logit_bytes=logit_bytes)
        (out * upstream).sum().backward()
        return out.detach(), hidden.grad.clone(), weight.grad.clone()

    chunked = run(4 * 101 * 5)  # 5 rows at a time: 8 checkpointed chunks
    logits = torch.nn.functional.linear(hidden, weight)
    if softcap:
        logits = softcap * torch.tanh(logits / softcap)
    reference = torch.log_softmax(logits, -1).gather(-1, targets[:, None]).squeeze(-1)
    assert torch.allclose(chunked[0], reference.detach(), atol=1e-10)
    full = run(1 << 30)  # one piece
    for a, b in zip(chunked, full):
        assert torch.allclose(a, b, atol=1e-10)


def test_loss_implementation_falls_back_to_chunked_without_cut_cross_entropy():
    from tokenshift.heal.losses import cce_available

    assert resolve_loss_impl("auto", "cpu") == "chunked"
    if not cce_available():
        assert resolve_loss_impl("auto", "cuda") == "chunked"
        with pytest.raises(ValueError, match="pip install cut-cross-entropy"):
            resolve_loss_impl("cce", "cuda")


def test_chunk_sums_and_distances():
    logprobs = torch.tensor([-1.0, -2.0, -0.5, -3.0])
    sums, counts = chunk_logprobs(logprobs, torch.tensor([0, 0, 1, -1]), 2)
    assert sums.tolist() == [-3.0, -0.5] and counts.tolist() == [2, 1]
    s, t = torch.tensor([-0.3, -2.0, -7.0]), torch.tensor([-1.0, -2.0, -0.01])
    for distance in DISTANCES.values():
        values = distance.fn(s, t)
        assert torch.isfinite(values).all() and (values >= -1e-7).all()
        assert torch.allclose(distance.fn(t, t), torch.zeros(3), atol=1e-6)  # zero when they agree
    # binary KL by hand for the first chunk
    p_t, p_s = torch.exp(t[0]), torch.exp(s[0])
    expected = p_t * torch.log(p_t / p_s) + (1 - p_t) * torch.log((1 - p_t) / (1 - p_s))
    assert torch.allclose(DISTANCES["binary-kl"].fn(s[:1], t[:1]), expected[None], atol=1e-6)
    # chunks missing on one side are left out
    loss = distillation_loss(torch.tensor([-1.0, -1.0]), torch.tensor([0, 1]), torch.tensor([-1.0]), torch.tensor([0]), 2)
    assert float(loss) == pytest.approx(0.0, abs=1e-6)


# --- data --------------------------------------------------------------------------------------


def test_pieces_tile_documents_and_respect_the_size():
    docs = [" ".join(synthetic_corpus(5, seed=2)), "北京" * 40, "x"]
    pieces = cut_pieces(docs, target_bytes=30)
    assert all(len(p.encode()) <= 30 for p in pieces)
    assert "".join(pieces) == "".join(docs).replace("\n", "")  # nothing lost (no blank piece in these docs)


def test_batch_order_is_a_function_of_the_step_only():
    one = [batch_indices(s, n_pieces=10, batch_size=4, rank=0, world=1, seed=3) for s in range(5)]
    assert one == [batch_indices(s, n_pieces=10, batch_size=4, rank=0, world=1, seed=3) for s in range(5)]
    assert sorted(one[0] + one[1] + one[2][:2]) == list(range(10))  # the first epoch covers every piece once
    two = [batch_indices(0, n_pieces=10, batch_size=2, rank=r, world=2, seed=3) for r in range(2)]
    assert two[0] + two[1] == one[0]  # two processes split the same global batch


def test_batch_rows_and_chunks(tiny_tokenizer):
    other = other_tokenizer()
    batch = make_batch(["le chat mange une pomme", "café 😀"], tiny_tokenizer, other, seq_len=4)
    s, t = batch.student, batch.teacher
    assert s.input_ids.shape[1] <= 4 and batch.truncated > 0
    assert s.input_ids[0, 0] == tiny_tokenizer.conditioning_token()
    assert torch.equal(s.input_ids[:, 1:][s.scored[:, 1:]], s.targets[:, :-1][s.scored[:, 1:]])  # inputs shifted by one
    chunks = set(s.chunk[s.scored].tolist()) - {-1}
    assert chunks and chunks == set(t.chunk[t.scored].tolist()) - {-1}


# --- stages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(STAGE_KINDS))
def test_every_stage_kind_trains_something_and_finishes_cleanly(kind, setup):
    from tokenshift.modeling import load_model

    lm = load_model(str(setup["student"]), device="cpu").model
    names_before = set(lm.state_dict())
    trainable = STAGE_KINDS[kind].apply(lm, StageContext(copied_rows=torch.tensor([0, 1, 2]), lora_rank=2))
    params = [p for g in trainable.groups for p in g["params"]]
    assert params and all(p.requires_grad for p in params)
    assert {id(p) for p in lm.parameters() if p.requires_grad} <= {id(p) for p in params}
    finish_stage(lm, trainable)
    assert set(lm.state_dict()) == names_before  # LoRA merged away: a plain model again


def test_frozen_rows_and_body_stay_frozen(setup):
    from tokenshift.heal.run import copied_rows
    from tokenshift.modeling import load_model

    before = load_model(str(setup["student"]), device="cpu")
    rows = copied_rows(str(setup["teacher"]), before.tokenizer, trust_remote_code=False)
    cfg = config(setup, stages=(Stage("new-rows", lr=5e-2),), steps=4, log_every=0)
    lm, _, report = heal(str(setup["student"]), config=cfg)
    assert report.frozen_rows == len(rows) > 50
    old, new = before.model.get_input_embeddings().weight, lm.get_input_embeddings().weight
    assert torch.equal(old[rows], new[rows])  # bit-identical
    trained = torch.ones(old.shape[0], dtype=torch.bool)
    trained[rows] = False
    assert not torch.equal(old[trained], new[trained])
    body_old = {k: v for k, v in before.model.state_dict().items() if "embed" not in k and "lm_head" not in k}
    body_new = lm.state_dict()
    assert all(torch.equal(v, body_new[k]) for k, v in body_old.items())


# --- objectives --------------------------------------------------------------------------------


def objective_losses(student, teacher, pieces) -> dict[str, float]:
    """Next-token and distillation loss (abs-log) of ``student`` on a fixed batch."""
    from tokenshift.heal.forward import TokenLogprobs
    from tokenshift.heal.losses import next_token_loss

    batch = make_batch(pieces, student.tokenizer, teacher.tokenizer, seq_len=24)
    s, t = batch.student, batch.teacher
    with torch.no_grad():
        student_lp = TokenLogprobs(student.model)(s.input_ids, s.attention_mask, s.targets, s.scored)
        teacher_lp = TokenLogprobs(teacher.model)(t.input_ids, t.attention_mask, t.targets, t.scored)
    distill = distillation_loss(student_lp, s.chunk[s.scored], teacher_lp, t.chunk[t.scored], batch.n_chunks, distance="abs-log")
    return {"ntp": float(next_token_loss(student_lp)), "distill": float(distill)}


@pytest.mark.parametrize("objective", ["ntp", "distill", "both"])
def test_each_objective_decreases_its_loss(objective, setup):
    from tokenshift.modeling import load_model
    from tokenshift.modeling.load import LoadedModel

    pieces = [json.loads(line)["text"] for line in Path(setup["corpus"]).read_text().splitlines()[:6]]
    before = load_model(str(setup["student"]), device="cpu")
    teacher = load_model(str(setup["teacher"]), device="cpu")
    cfg = config(setup, steps=24, eval_text=(setup["corpus"],), eval_bytes=1000, distance="abs-log",
                 stages=(Stage("embeddings", share=0.25, lr=5e-2, warmup=0), Stage("all", share=0.75, lr=2e-2, warmup=0)))
    lm, _, report = heal(str(setup["student"]), config=cfg.with_objective(objective))
    after = LoadedModel(model=lm, tokenizer=before.tokenizer, name="healed", device="cpu", dtype="float32")
    start, end = objective_losses(before, teacher, pieces), objective_losses(after, teacher, pieces)
    for key in {"ntp": ["ntp"], "distill": ["distill"], "both": ["ntp", "distill"]}[objective]:
        assert end[key] < 0.9 * start[key], (key, start, end)
    assert len(report.losses) == 24 and all(row["loss"] > 0 for row in report.losses)
    assert report.teacher == (None if objective == "ntp" else str(setup["teacher"]))
    assert [p["step"] for p in report.curve] == [0, 24]
    if objective == "ntp":
        bpb = report.curve[-1]["bits_per_byte"][setup["corpus"]]
        assert bpb < report.curve[0]["bits_per_byte"][setup["corpus"]]


# --- checkpoints and resume --------------------------------------------------------------------


class Kill(Exception):
    pass


def test_killed_and_resumed_run_ends_with_the_same_weights(setup, tmp_path):
    cfg = config(setup, steps=6, checkpoint_every=2, stages=(Stage("new-rows", share=0.5, lr=1e-2), Stage("lora", share=0.5, lr=1e-2)),
                 eval_every=3).with_objective("both")
    straight, _, straight_report = heal(str(setup["student"]), config=cfg, out=tmp_path / "straight")

    def kill_at_5(status):
        if status.step == 5:
            raise Kill

    with pytest.raises(Kill):
        heal(str(setup["student"]), config=cfg, out=tmp_path / "resumed", progress=kill_at_5)
    assert not (tmp_path / "resumed").exists()  # nothing written until the run ends
    checkpoints = sorted(p.name for p in (tmp_path / "resumed.checkpoints").iterdir())
    assert checkpoints == ["step-00000002", "step-00000004"]
    with pytest.raises(FileExistsError, match="--resume"):
        heal(str(setup["student"]), config=cfg, out=tmp_path / "resumed")
    with pytest.raises(ValueError, match="seed"):
        heal(str(setup["student"]), config=replace(cfg, resume=True, seed=9), out=tmp_path / "resumed")
    resumed, _, report = heal(str(setup["student"]), config=replace(cfg, resume=True), out=tmp_path / "resumed")
    assert report.resumed_at == [4] and report.steps == 6 and report.tokens == straight_report.tokens
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert [p["step"] for p in report.curve] == [p["step"] for p in straight_report.curve] == [0, 3, 6]
    assert not (tmp_path / "resumed.checkpoints").exists()  # removed once the output is written


def test_output_is_a_plain_hf_folder_with_a_report(setup, tmp_path):
    from tokenshift.modeling import load_model

    cfg = config(setup, steps=3, stages=(Stage("lora", lr=1e-2),))
    lm, _, report = heal(str(setup["student"]), config=cfg, out=tmp_path / "out")
    folder = tmp_path / "out"
    assert {"config.json", "model.safetensors", "tokenizer.json", "heal.json", "transplant.json"} <= {p.name for p in folder.iterdir()}
    saved = json.loads((folder / "heal.json").read_text())
    assert saved["objective"]["name"] == "ntp" and saved["steps"] == 3 and saved["tokens"] > 0
    assert saved["stages"][0]["train"] == "lora" and saved["curve"][0]["step"] == 0
    reloaded = load_model(str(folder), device="cpu").model
    assert not any("lora" in k for k in reloaded.state_dict())
    ids = torch.tensor([[1, 5, 9, 12]])
    assert torch.allclose(reloaded(ids).logits, lm(ids).logits, atol=1e-5)


# --- LoRA through PEFT --------------------------------------------------------------------------


def test_lora_stage_writes_a_plain_folder_changed_only_where_it_trained(setup, tmp_path):
    """The healed folder loads with plain transformers; copied rows and norms are bit-identical, new
    rows moved, and every body linear moved by a delta of rank <= the LoRA rank."""
    from transformers import AutoModelForCausalLM

    from tokenshift.heal.rows import copied_ids_from_report, ids_from_runs

    rank = 2
    cfg = config(setup, steps=3, eval_bytes=0, lora_rank=rank, stages=(Stage("lora", lr=1e-2, warmup=0),))
    heal(str(setup["student"]), config=cfg, out=tmp_path / "out")
    before = AutoModelForCausalLM.from_pretrained(setup["student"])
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert not any(type(m).__module__.startswith("peft") for m in after.modules())
    assert after.config.tie_word_embeddings and after.get_output_embeddings().weight is after.get_input_embeddings().weight
    old, new = before.state_dict(), after.state_dict()
    assert old.keys() == new.keys()

    copied = ids_from_runs(copied_ids_from_report(setup["student"]))
    fresh = torch.ones(old["model.embed_tokens.weight"].shape[0], dtype=torch.bool)
    fresh[copied] = False
    assert 50 < len(copied) and fresh.sum() > 50
    e_old, e_new = old["model.embed_tokens.weight"], new["model.embed_tokens.weight"]
    assert torch.equal(e_old[copied], e_new[copied])
    assert (e_old[fresh] != e_new[fresh]).any(dim=1).all()  # every new row moved (the tied head reaches them all)

    linears = {f"{name}.weight" for name, m in before.get_decoder().named_modules() if isinstance(m, torch.nn.Linear)}
    linears = {f"model.{name}" for name in linears}
    assert len(linears) == 2 * 7
    for key in old.keys() - linears - {"model.embed_tokens.weight", "lm_head.weight"}:
        assert torch.equal(old[key], new[key]), key
    for key in linears:
        singular = torch.linalg.svdvals((new[key] - old[key]).double())
        assert singular[0] > 0 and singular[rank:].max() < 1e-4 * singular[0], (key, singular[: rank + 2])


@pytest.mark.parametrize("tie", [True, False])
def test_merged_lora_gives_the_logits_of_the_peft_model(tie, tiny_backend, tmp_path):
    """PEFT-wrapped (adapters and new rows moved off their start) vs merged vs saved and reloaded: the
    same logits; the adapter holds the new rows only, and tied embeddings stay tied."""
    from transformers import AutoModelForCausalLM

    from tokenshift.heal.forward import TokenLogprobs

    # float64: in float32, W + BA and the separate products round apart by ~2e-6 of the logits (up to ~12 here)
    lm = AutoModelForCausalLM.from_pretrained(save_tiny_model(tmp_path / "in", tiny_backend, tie=tie), dtype=torch.float64)
    lm.eval()
    copied = torch.arange(0, 200)
    vocab, width = lm.get_input_embeddings().weight.shape
    names_before = set(lm.state_dict())
    trainable = STAGE_KINDS["lora"].apply(lm, StageContext(copied_rows=copied, lora_rank=2))
    rows = trainable.adapters.rows
    assert [tuple(p.shape) for p in rows] == [(vocab - 200, width)] * (1 if tie else 2)
    torch.manual_seed(3)
    with torch.no_grad():
        for group in trainable.groups:
            for p in group["params"]:
                p.add_(0.1 * torch.randn_like(p))
    ids = torch.tensor([[1, 5, 9, 250, 12, 300, 7, 201]])
    with torch.no_grad():
        wrapped = lm(ids).logits
        targets, scored = ids.roll(-1, 1), torch.ones_like(ids, dtype=torch.bool)
        chunked = TokenLogprobs(lm)(ids, torch.ones_like(ids), targets, scored)
    assert torch.allclose(chunked, torch.log_softmax(wrapped, -1).gather(-1, targets[..., None]).flatten(), atol=1e-5)  # the trainer's path
    finish_stage(lm, trainable)
    assert set(lm.state_dict()) == names_before
    assert not any(type(m).__module__.startswith("peft") for m in lm.modules())
    assert (lm.get_output_embeddings().weight is lm.get_input_embeddings().weight) == tie == lm.config.tie_word_embeddings
    with torch.no_grad():
        merged = lm(ids).logits
    assert torch.allclose(merged, wrapped, atol=1e-5), (merged - wrapped).abs().max()
    lm.save_pretrained(tmp_path / "out")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float64).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, wrapped, atol=1e-5)


# --- config and CLI ----------------------------------------------------------------------------


def test_stage_parsing_schedules_and_errors():
    stages = parse_stages("embeddings:share=0.25:lr=1e-3,all:schedule=linear:warmup=2")
    assert stages[0] == Stage("embeddings", share=0.25, lr=1e-3) and stages[1].schedule == "linear"
    assert stage_steps(stages, 10) == [2, 8] and stage_steps((Stage("a", share=0.01), Stage("b")), 5) == [1, 4]
    linear = stages[1]
    factors = [linear.lr_factor(i, 8) for i in range(8)]
    assert factors[:2] == [0.5, 1.0] and factors[-1] == pytest.approx(0.1) and factors == sorted(factors[:2]) + sorted(factors[2:], reverse=True)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_stages("all:rate=3")
    with pytest.raises(ValueError, match="give a budget.*weights"):
        HealConfig(text=("x",), ntp_weight=0).check()


def test_user_mistakes_fail_early_with_the_fix(setup, tmp_path):
    with pytest.raises(ValueError, match="did you mean embeddings"):
        heal(str(setup["student"]), config=config(setup, stages=(Stage("embedings"),)))
    with pytest.raises(ValueError, match="--teacher ORIGINAL"):  # no transplant.json names the original
        heal(str(setup["teacher"]), config=config(setup, stages=(Stage("new-rows"),)))
    with pytest.raises(ValueError, match="--teacher ORIGINAL"):
        heal(str(setup["teacher"]), config=config(setup, stages=(Stage("all"),)).with_objective("distill"))


def test_cli_heals_and_writes_the_report(setup, tmp_path, capsys):
    from tokenshift.heal.cli import add_parsers

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    out = tmp_path / "cli-out"
    args = parser.parse_args(["heal", str(setup["student"]), "--text", setup["corpus"], "--steps", "2", "--batch-size", "2",
                              "--seq-len", "16", "--stages", "new-rows,all", "--lora", "--lora-rank", "2", "--out", str(out), "--json"])
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["objective"]["name"] == "both" and [s["train"] for s in printed["stages"]] == ["new-rows", "lora"]
    assert json.loads((out / "heal.json").read_text())["steps"] == 2
    args = parser.parse_args(["heal", str(setup["student"]), "--text", setup["corpus"], "--steps", "2", "--batch-size", "2",
                              "--seq-len", "16", "--objective", "ntp", "--log-every", "1", "--out", str(tmp_path / "plain")])
    assert args.func(args) == 0
    summary = capsys.readouterr().out
    assert summary.startswith("healed ") and "(held out)" in summary and "bpb" in summary
