"""Model size: checkpoints read a tensor at a time, transplant and export streamed, the dtype chosen by
memory and the memory guard (tiny sharded models standing in for 8B ones; bench/scale.py measures the
real shapes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import save_tiny_model, synthetic_corpus, train_byte_level_bpe
from test_transplant import other_tokenizer
from tokenshift.modeling import load_model
from tokenshift.transplant import TransplantConfig, transplant, transplant_folder
from tokenshift.weights import Checkpoint, CheckpointError

pytestmark = pytest.mark.usefixtures("one_thread")


def sharded_model(folder: Path, *, tie: bool, dtype: torch.dtype, seed: int = 0) -> Path:
    """A tiny llama in several safetensors shards (with an index), stored in ``dtype``."""
    from transformers import AutoModelForCausalLM

    plain = save_tiny_model(folder.with_name(folder.name + "-plain"), train_byte_level_bpe(), tie=tie, seed=seed)
    model = AutoModelForCausalLM.from_pretrained(plain, dtype=dtype)
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="24KB")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((plain / name).read_bytes())
    assert len(list(folder.glob("*.safetensors"))) >= 3 and (folder / "model.safetensors.index.json").is_file()
    return folder


@pytest.fixture(scope="module")
def new_tokenizer(tmp_path_factory) -> Path:
    return other_tokenizer(tmp_path_factory.mktemp("newtok"))


@pytest.fixture(scope="module", params=[(True, torch.bfloat16), (False, torch.bfloat16), (True, torch.float32), (False, torch.float32)],
                ids=["tied-bf16", "untied-bf16", "tied-f32", "untied-f32"])
def model_dir(request, tmp_path_factory) -> Path:
    tie, dtype = request.param
    return sharded_model(tmp_path_factory.mktemp("sharded") / "model", tie=tie, dtype=dtype, seed=3)


def _logits(folder: Path, text: str) -> torch.Tensor:
    loaded = load_model(str(folder), dtype="float32", device="cpu")
    ids = torch.tensor([loaded.tokenizer.encode(text)])
    with torch.no_grad():
        return loaded.model(ids).logits


@pytest.mark.parametrize("pad", [64, 1])
def test_streamed_transplant_is_the_in_memory_one_in_the_stored_dtype(model_dir, new_tokenizer, tmp_path, pad):
    config = TransplantConfig(pad_to_multiple_of=pad)
    lm, new, memory_report = transplant(str(model_dir), str(new_tokenizer), config=config)
    out = tmp_path / "streamed"
    _, report = transplant_folder(str(model_dir), str(new_tokenizer), out, config=config)
    source, written = Checkpoint.open(model_dir), Checkpoint.open(out)
    stored = getattr(torch, source.main_dtype())
    # every tensor but the embedding and head: same name, dtype, shape and bytes
    changed = {"model.embed_tokens.weight", "lm_head.weight"}
    assert set(written.entries) == set(source.entries)
    for name, entry in source.entries.items():
        if name not in changed:
            assert written.entries[name].dtype == entry.dtype and written.read(name).view(torch.uint8).equal(source.read(name).view(torch.uint8))
    # the new rows: the in-memory path's float32 rows, rounded once to the stored dtype
    assert written.read("model.embed_tokens.weight").dtype == stored
    assert written.read("model.embed_tokens.weight").equal(lm.get_input_embeddings().weight.detach().to(stored))
    if not report.tied:
        assert written.read("lm_head.weight").equal(lm.get_output_embeddings().weight.detach().to(stored))
    assert report.embedding_rows == memory_report.embedding_rows == -(-new.vocab_size // pad) * pad
    assert report.dtype == str(stored).removeprefix("torch.") and report.counts == memory_report.counts
    # the index, config and generation config agree with the weights
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(written.entries) and index["metadata"]["total_size"] == written.nbytes
    config_json = json.loads((out / "config.json").read_text())
    assert config_json["vocab_size"] == report.embedding_rows and config_json["dtype"] == report.dtype
    assert config_json["eos_token_id"] == new.special.eos == json.loads((out / "generation_config.json").read_text())["eos_token_id"]
    # transformers loads it, and its logits are the in-memory model's (exactly, where nothing was rounded)
    text = " ".join(synthetic_corpus(2))
    ids = torch.tensor([new.encode(text)])
    with torch.no_grad():
        expected = lm(ids).logits
    got = _logits(out, text)
    if stored == torch.float32:
        assert torch.equal(got, expected)
    else:
        assert torch.allclose(got, expected, atol=0.05, rtol=0.05)
    assert report.rewritten_files and report.copied_files and not report.linked_files


def test_shards_without_embeddings_are_hard_linked_when_asked(new_tokenizer, tmp_path):
    model = sharded_model(tmp_path / "model", tie=False, dtype=torch.bfloat16)
    out = tmp_path / "linked"
    _, report = transplant_folder(str(model), str(new_tokenizer), out, config=TransplantConfig(link=True))
    assert report.linked_files and not report.copied_files
    for name in report.linked_files:
        assert os.stat(out / name).st_ino == os.stat(model / name).st_ino
    for name in report.rewritten_files:
        assert os.stat(out / name).st_ino != os.stat(model / name).st_ino
    load_model(str(out), device="cpu")


def test_a_donor_is_read_by_its_embeddings_only(new_tokenizer, tmp_path):
    from tokenizers import Tokenizer

    backend = Tokenizer.from_file(str(new_tokenizer / "tokenizer.json"))
    donor = save_tiny_model(tmp_path / "donor", backend, seed=4)
    model = sharded_model(tmp_path / "model", tie=True, dtype=torch.bfloat16)
    config = TransplantConfig(method="blend", donor=str(donor))
    lm, _, _ = transplant(str(model), str(new_tokenizer), config=config)
    transplant_folder(str(model), str(new_tokenizer), tmp_path / "out", config=config)
    assert Checkpoint.open(tmp_path / "out").read("model.embed_tokens.weight").equal(lm.get_input_embeddings().weight.detach().to(torch.bfloat16))


def test_streamed_export_is_the_in_memory_export(tmp_path):
    from tokenshift.export import export_gguf

    model = sharded_model(tmp_path / "model", tie=False, dtype=torch.bfloat16)
    for dtype in ("q8_0", "f32"):
        streamed = export_gguf(str(model), tmp_path / f"streamed-{dtype}.gguf", dtype=dtype)
        loaded = export_gguf(load_model(str(model), dtype="float32", device="cpu"), tmp_path / f"loaded-{dtype}.gguf", dtype=dtype)
        assert (tmp_path / f"streamed-{dtype}.gguf").read_bytes() == (tmp_path / f"loaded-{dtype}.gguf").read_bytes()
        assert streamed.tensors == loaded.tensors and not streamed.tied


def test_a_checkpoint_reads_one_tensor_converted_in_chunks(tmp_path, monkeypatch):
    import tokenshift.weights.files as files

    model = sharded_model(tmp_path / "model", tie=True, dtype=torch.bfloat16)
    checkpoint = Checkpoint.open(model)
    whole = checkpoint.read("model.embed_tokens.weight")
    monkeypatch.setattr(files, "READ_CHUNK_BYTES", 100)  # many chunks, one ending mid-row
    assert whole.dtype == torch.bfloat16 and checkpoint.read("model.embed_tokens.weight", torch.float32).equal(whole.float())
    assert checkpoint.main_dtype() == "bfloat16" and checkpoint.nbytes < checkpoint.file_bytes


def test_folders_whose_weights_and_index_disagree_are_refused(tmp_path, new_tokenizer):
    import shutil

    model = sharded_model(tmp_path / "model", tie=False, dtype=torch.float32)
    index = json.loads((model / "model.safetensors.index.json").read_text())
    # an index naming a missing shard
    broken = tmp_path / "missing-shard"
    shutil.copytree(model, broken)
    (broken / index["weight_map"]["lm_head.weight"]).unlink()
    with pytest.raises(CheckpointError, match="names 1 file.* not in .*fetch every shard"):
        Checkpoint.open(broken)
    # an untied model without its head: refused, not given a random one
    headless = tmp_path / "headless"
    shutil.copytree(model, headless)
    data = json.loads((headless / "model.safetensors.index.json").read_text())
    file = data["weight_map"].pop("lm_head.weight")
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(headless / file))
    tensors.pop("lm_head.weight")
    save_file(tensors, str(headless / file), metadata={"format": "pt"})
    (headless / "model.safetensors.index.json").write_text(json.dumps(data))
    for call in (lambda: load_model(str(headless), device="cpu"),
                 lambda: transplant_folder(str(headless), str(new_tokenizer), tmp_path / "never")):
        with pytest.raises(CheckpointError, match=r"config.json and its weights disagree: 1 tensor\(s\) the config needs are not in the weights \(lm_head.weight\)"):
            call()
    assert not (tmp_path / "never").exists()
    # the embedding stored a second time in another shard: refused, not silently taken from either
    twice = tmp_path / "twice"
    shutil.copytree(model, twice)
    named = index["weight_map"]["model.embed_tokens.weight"]
    other = next(f for f in sorted(set(index["weight_map"].values())) if f != named)
    tensors = load_file(str(twice / other))
    tensors["model.embed_tokens.weight"] = torch.zeros(3)
    save_file(tensors, str(twice / other), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=f"'model.embed_tokens.weight' is stored in {other} and in {named}; the index names {named}"):
        load_model(str(twice), device="cpu")


def test_the_dtype_is_chosen_by_memory_and_a_model_that_cannot_fit_is_refused(tmp_path, monkeypatch):
    from tokenshift.cli import main
    from tokenshift.weights.memory import RESERVE_BYTES, MemoryEstimate, NotEnoughMemory

    model = sharded_model(tmp_path / "model", tie=True, dtype=torch.bfloat16)
    checkpoint = Checkpoint.open(model)
    float32_need = 2 * checkpoint.nbytes + checkpoint.nbytes  # the float32 copy and the stored file it comes from
    monkeypatch.setenv("TOKENSHIFT_MEMORY_BYTES", str(RESERVE_BYTES + float32_need + 10**5))
    assert load_model(str(model), device="cpu").dtype == "float32"
    monkeypatch.setenv("TOKENSHIFT_MEMORY_BYTES", str(RESERVE_BYTES + checkpoint.nbytes + 10**4))
    loaded = load_model(str(model), device="cpu")
    assert loaded.dtype == "bfloat16" and "float32 would need" in loaded.dtype_reason and "computed in float32" in loaded.dtype_reason
    assert loaded.model.get_input_embeddings().weight.dtype == torch.bfloat16
    monkeypatch.setenv("TOKENSHIFT_MEMORY_BYTES", "1MB")
    with pytest.raises(NotEnoughMemory, match=r"loading .* needs about 0\.0 GB .* but 0\.0 GB are available; use a machine with more memory"):
        load_model(str(model), device="cpu")
    with pytest.raises(NotEnoughMemory, match="--dtype bfloat16 would load the stored weights without a copy"):
        load_model(str(model), device="cpu", dtype="float32")
    text = tmp_path / "t.txt"
    text.write_text("le chat mange une pomme")
    assert main(["evaluate", str(model), "--text", str(text)]) == 2
    assert MemoryEstimate("x", {"a": 1}, available=10**12).fits


def test_half_weights_computed_in_float32_score_like_float32(tmp_path):
    from tokenshift.evaluate import evaluate_loaded
    from tokenshift.data import TextSet
    from tokenshift.modeling.compute import compute_in_float32

    model = sharded_model(tmp_path / "model", tie=False, dtype=torch.bfloat16)
    texts = TextSet("t", synthetic_corpus(6))
    full = evaluate_loaded(load_model(str(model), dtype="float32", device="cpu"), texts)
    half = load_model(str(model), dtype="bfloat16", device="cpu")
    compute_in_float32(half.model)
    assert half.model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert evaluate_loaded(half, texts).bits_per_byte == pytest.approx(full.bits_per_byte, rel=1e-6)


@pytest.mark.parametrize("point", ["transplant:shard-2", "transplant:written"])
def test_a_transplant_killed_between_shards_leaves_nothing_the_next_run_keeps(tmp_path, new_tokenizer, point):
    model = sharded_model(tmp_path / "model", tie=False, dtype=torch.bfloat16)
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENSHIFT_SIGNAL_AT": point, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "tokenshift.cli", "transplant", str(model), str(new_tokenizer), "--out", str(out)]
    killed = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert killed.returncode == -9 and not out.exists()
    [left] = [p for p in tmp_path.iterdir() if p.name.startswith(".tokenshift-tmp-out-")]
    env.pop("TOKENSHIFT_SIGNAL_AT")
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not left.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".tokenshift-")] == []
    load_model(str(out), device="cpu")


def test_a_full_disk_mid_stream_leaves_nothing(tmp_path, new_tokenizer, monkeypatch):
    import tokenshift.weights.write as write

    model = sharded_model(tmp_path / "model", tie=False, dtype=torch.bfloat16)
    copy = write.copy_file
    calls = []

    def full(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return copy(*args, **kwargs)

    monkeypatch.setattr(write, "copy_file", full)
    with pytest.raises(OSError, match=r"could not write .*out \(No space left on device\); nothing was left behind: it needs"):
        transplant_folder(str(model), str(new_tokenizer), tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "model-plain"]


def test_the_space_check_counts_what_the_stream_writes(tmp_path, new_tokenizer, monkeypatch):
    import shutil

    import tokenshift.storage as storage

    model = sharded_model(tmp_path / "model", tie=True, dtype=torch.bfloat16)
    out = tmp_path / "out"
    _, report = transplant_folder(str(model), str(new_tokenizer), out)
    weights = sum(p.stat().st_size for p in out.glob("*.safetensors")) + (out / "model.safetensors.index.json").stat().st_size
    seen = []
    real = shutil.disk_usage

    def usage(path):
        seen.append(path)
        return real(path)._replace(free=weights)  # a byte short of the margin

    monkeypatch.setattr(storage.shutil, "disk_usage", usage)
    with pytest.raises(ValueError, match="has .* MB free, the output needs about"):
        transplant_folder(str(model), str(new_tokenizer), tmp_path / "again")
    assert seen and not (tmp_path / "again").exists()


def test_a_frozen_half_linear_keeps_gradients_and_not_the_float32_copy():
    from tokenshift.modeling.compute import _FrozenHalfLinear

    torch.manual_seed(0)
    weight = torch.randn(8, 6).to(torch.bfloat16)
    bias = torch.randn(8).to(torch.bfloat16)
    x = torch.randn(3, 6, requires_grad=True)
    y = _FrozenHalfLinear.apply(x, weight, bias)
    assert [t.dtype for t in y.grad_fn.saved_tensors] == [torch.bfloat16]  # the half weight, no float32 copy
    y.pow(2).sum().backward()
    x2 = x.detach().clone().requires_grad_(True)
    torch.nn.functional.linear(x2, weight.float(), bias.float()).pow(2).sum().backward()
    assert torch.equal(y, torch.nn.functional.linear(x.detach(), weight.float(), bias.float()))
    assert torch.allclose(x.grad, x2.grad)


@pytest.fixture(scope="module")
def replaced(tmp_path_factory, new_tokenizer) -> dict[str, str]:
    """A bf16 sharded model transplanted onto another tokenizer, and text in that tokenizer's words."""
    root = tmp_path_factory.mktemp("heal-scale")
    original = sharded_model(root / "original", tie=True, dtype=torch.bfloat16)
    transplant_folder(str(original), str(new_tokenizer), root / "student")
    lines = [line.replace("cat", "chat").replace("the", "la") + " superlongword" for line in synthetic_corpus(200, seed=9)]
    corpus = root / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": " ".join(lines[i: i + 8])}) for i in range(0, 200, 8)) + "\n")
    return {"student": str(root / "student"), "corpus": str(corpus), "original": str(original)}


def _heal_config(replaced, **options):
    from tokenshift.heal import HealConfig

    base = dict(text=(replaced["corpus"],), tokens=1500, eval_bytes=800, keep_last=True, distill_batch=4, distill_piece_bytes=60,
                seq_len=32, mixed_precision="no", recipe="distill-rows", row_lr=1e-2)
    return HealConfig(**{**base, **options})


def test_heal_keeps_the_body_in_its_stored_dtype_and_shares_it_with_the_teacher(replaced, monkeypatch):
    import tokenshift.heal.teacher as teacher_module
    from tokenshift.heal import heal

    lm, _, report = heal(replaced["student"], config=_heal_config(replaced))
    assert report.dtype == "bfloat16" and report.teacher_shares_body and report.tokens > 0
    assert lm.model.layers[0].mlp.up_proj.weight.dtype == torch.bfloat16
    # the same run with the original loaded whole: the same rows, to the bit
    monkeypatch.setattr(teacher_module, "same_body", lambda *args, **kwargs: False)
    whole_lm, _, whole = heal(replaced["student"], config=_heal_config(replaced))
    assert not whole.teacher_shares_body
    assert whole.phases[0]["objective_end"] == report.phases[0]["objective_end"]
    assert torch.equal(whole_lm.get_input_embeddings().weight, lm.get_input_embeddings().weight)


def test_a_changed_body_is_not_shared(replaced, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file
    from tokenshift.heal.teacher import same_body

    changed = tmp_path / "changed"
    shutil.copytree(replaced["student"], changed)
    index = json.loads((changed / "model.safetensors.index.json").read_text())
    file = index["weight_map"]["model.layers.1.mlp.down_proj.weight"]
    tensors = load_file(str(changed / file))
    tensors["model.layers.1.mlp.down_proj.weight"][-1, -1] += 1
    save_file(tensors, str(changed / file), metadata={"format": "pt"})
    skip = {"model.embed_tokens.weight", "lm_head.weight"}
    assert same_body(replaced["student"], replaced["original"], skip=skip)
    assert not same_body(changed, replaced["original"], skip=skip)


def test_the_held_out_evaluation_is_sized_to_the_budget():
    from tokenshift.heal.budget import EVAL_SHARE, MIN_EVAL_BYTES, evaluation_bytes

    # 100 bytes/s, 2 minutes, start + one phase: a quarter of the budget reads 1,500 bytes per evaluation
    assert evaluation_bytes(100.0, 32_000, 2, seconds=120, evaluations=2) == int(100 * EVAL_SHARE * 120 / 2) // 2
    assert evaluation_bytes(10_000.0, 32_000, 2, seconds=120, evaluations=2) is None
    with pytest.raises(ValueError, match=r"--minutes 0.5 leaves 4 s for each of 2 held-out evaluations.*ask for at least .* minutes"):
        evaluation_bytes(100.0, 32_000, 2, seconds=30, evaluations=2)
    assert MIN_EVAL_BYTES * 2 * 2 / 100 / EVAL_SHARE / 60 > 0.5


def test_a_budget_that_trains_nothing_writes_nothing(replaced, tmp_path):
    from tokenshift.heal import heal

    now = [0.0]

    def clock():  # every reading advances 30 s: the budget is gone before the first step
        now[0] += 30.0
        return now[0]

    config = _heal_config(replaced, tokens=None, minutes=1.0, eval_bytes=0)
    with pytest.raises(ValueError, match=r"heal trained nothing within --minutes 1: .* nothing was written"):
        heal(replaced["student"], config=config, out=tmp_path / "out", clock=clock)
    assert list(tmp_path.iterdir()) == []


def test_micro_batches_give_the_whole_batch_gradient(replaced):
    from tokenshift.heal.recipes import PhaseContext
    from tokenshift.heal.recipes.distill_rows import distill_backward, distill_example, distill_loss, micro_batches
    from tokenshift.heal.budget import Deadline
    from tokenshift.heal.rows import NewRowEmbedding, new_row_ids, ids_from_runs
    from tokenshift.heal.teacher import shared_teacher

    student = load_model(replaced["student"], dtype="float32", device="cpu")
    copied = ids_from_runs(json.loads((Path(replaced["student"]) / "transplant.json").read_text())["copied_ids"])
    new_ids = new_row_ids(copied, student.tokenizer.vocab_size)
    teacher = shared_teacher(student.model, replaced["student"], replaced["original"], name="original")
    ctx = PhaseContext(config=_heal_config(replaced), model=student.model.requires_grad_(False), tokenizer=student.tokenizer,
                       teacher=teacher, teacher_tokenizer=load_model(replaced["original"], device="cpu").tokenizer, documents=[],
                       new_ids=new_ids, device="cpu", mixed="no", deadline=Deadline(None))
    is_new = torch.zeros(student.embedding_rows, dtype=torch.bool)
    is_new[new_ids] = True
    texts = [line.replace("cat", "chat") + " superlongword" for line in synthetic_corpus(40, seed=2)]
    batch = sorted([e for e in (distill_example(t, ctx, is_new) for t in texts) if e is not None], key=lambda e: len(e.student_ids))[:8]
    embedding = NewRowEmbedding(student.model, new_ids)
    distill_loss(ctx, embedding, batch).backward()
    whole = embedding.rows.grad.clone()
    embedding.rows.grad = None
    parts = micro_batches(batch, max_positions=2 * len(batch[-1].student_ids))
    assert len(parts) == 4 and [e for part in parts for e in part] == batch
    distill_backward(ctx, embedding, batch, teacher, max_positions=2 * len(batch[-1].student_ids))
    assert torch.allclose(embedding.rows.grad, whole, rtol=1e-5, atol=1e-9)


def test_lora_on_a_half_precision_body_trains_float32_adapters_and_merges(replaced, tmp_path):
    from tokenshift.heal import heal

    lm, _, report = heal(replaced["student"], config=_heal_config(replaced, recipe="rows-lora", tokens=3000, lora_lr=3e-3),
                         out=tmp_path / "out")
    assert [p["name"] for p in report.phases] == ["distill-rows", "lora-distill"] and report.phases[1]["tokens"] > 0
    assert report.phases[1]["details"]["lora_layers"] > 0 and report.dtype == "bfloat16"
    assert Checkpoint.open(tmp_path / "out").main_dtype() == "bfloat16"  # written in the stored dtype, adapters merged
    assert set(Checkpoint.open(tmp_path / "out").entries) == set(Checkpoint.open(replaced["student"]).entries)
