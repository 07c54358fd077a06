"""Heal on several processes through accelerate: DDP over two CPU processes (gloo) writes the folder a
single process writes, and only the first process prints; FSDP's merged weights are written as
``save_pretrained`` writes them (the FSDP launch itself needs GPUs: accelerate runs FSDP on none else)."""

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
from tokenshift.weights import Checkpoint


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> dict[str, Path]:
    from tokenshift.transplant import transplant_folder

    root = tmp_path_factory.mktemp("distributed")
    model = save_tiny_model(root / "model", train_byte_level_bpe())
    transplant_folder(str(model), str(other_tokenizer(root / "newtok")), root / "student")
    corpus = root / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": " ".join(synthetic_corpus(6, seed=i))}) for i in range(40)) + "\n")
    return {"student": root / "student", "corpus": corpus, "root": root}


def _heal_args(student: dict[str, Path], out: Path, device: str = "cpu") -> list[str]:
    return ["heal", str(student["student"]), "--recipe", "stages", "--steps", "4", "--text", str(student["corpus"]), "--device", device,
            "--out", str(out), "--batch-size", "2", "--seq-len", "32", "--eval-bytes", "500"]


def _launch(config: str, args: list[str], *, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    from tokenshift.heal.launch import launch_config

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--config_file", str(launch_config(config)), *extra, "-m", "tokenshift.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def _layout(folder: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {name: (e.dtype, e.shape) for name, e in Checkpoint.open(folder).entries.items()}


def test_ddp_on_two_cpu_processes_writes_the_single_process_folder_and_prints_once(student):
    from tokenshift.cli import main

    single = student["root"] / "single"
    assert main(_heal_args(student, single)) == 0
    launched = student["root"] / "ddp"
    done = _launch("ddp-cpu", _heal_args(student, launched))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("healed ") == 1, done.stdout  # the first process prints; the second is silent
    assert sorted(p.name for p in launched.iterdir()) == sorted(p.name for p in single.iterdir())
    assert _layout(launched) == _layout(single)
    report = json.loads((launched / "heal.json").read_text())
    assert report["processes"] == 2 and report["steps"] == 4
    assert report["tokens"] > json.loads((single / "heal.json").read_text())["tokens"]  # two processes read twice the text
    assert [p.name for p in student["root"].iterdir() if p.name.startswith(".tokenshift-") or p.name.endswith(".checkpoints")] == []


def test_merged_fsdp_weights_are_written_as_save_pretrained_writes_them(tmp_path):
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    from tokenshift.heal.run import _write_merged

    model_dir = save_tiny_model(tmp_path / "model", train_byte_level_bpe(), tie=True)
    lm = AutoModelForCausalLM.from_pretrained(model_dir)
    reference = tmp_path / "reference"
    lm.save_pretrained(reference)
    merged = tmp_path / "merged"
    merged.mkdir()  # what merge_fsdp_weights writes: the full state dict, the tied head included
    save_file({k: v.clone() for k, v in lm.state_dict().items()}, str(merged / "model.safetensors"))
    written = tmp_path / "written"
    written.mkdir()
    _write_merged(lm, merged / "model.safetensors", written)
    assert _layout(written) == _layout(reference) and "lm_head.weight" not in _layout(written)
    for name in _layout(reference):
        assert Checkpoint.open(written).read(name).equal(Checkpoint.open(reference).read(name))
    assert json.loads((written / "config.json").read_text()) == json.loads((reference / "config.json").read_text())
    reloaded = AutoModelForCausalLM.from_pretrained(written)
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(reloaded(ids).logits, lm(ids).logits)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fsdp2_on_a_gpu_writes_the_single_process_folder(student):
    single = student["root"] / "single-gpu"
    from tokenshift.cli import main

    assert main(_heal_args(student, single, device="cuda")) == 0
    launched = student["root"] / "fsdp"
    done = _launch("fsdp2", _heal_args(student, launched, device="cuda"), extra=("--num_processes", str(torch.cuda.device_count())))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("healed ") == 1
    assert _layout(launched) == _layout(single)
    assert json.loads((launched / "heal.json").read_text())["processes"] == torch.cuda.device_count()
