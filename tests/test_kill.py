"""Runs stopped on purpose at named points (``TOKENSHIFT_SIGNAL_AT``, see :mod:`tokenshift.signals`):
kill -9 leaves only a temporary that names its process, which the next run removes (and nothing else);
Ctrl-C (SIGINT) exits 130 with nothing left behind, except the checkpoint heal writes first.

Kill points tested: ``train:written``, ``transplant:written``, ``export:written``, ``heal:checkpoint-written``,
``heal:step-N`` (SIGINT) and ``heal:written``.
"""

from __future__ import annotations

import json
import os
import signal as signals
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import synthetic_corpus
from tokenshift.storage import temporary_prefix


def run(args: list[str], *, at: str | None = None, signal: str = "KILL", cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENSHIFT_HOME": str(cwd / "home"), "OMP_NUM_THREADS": "1"}
    env.pop("TOKENSHIFT_SIGNAL_AT", None)
    if at is not None:
        env.update(TOKENSHIFT_SIGNAL_AT=at, TOKENSHIFT_SIGNAL=signal)
    # A shell that starts a job in the background (`make test &`) makes it ignore SIGINT, and Python
    # keeps an inherited SIG_IGN: give the child Ctrl-C's default back so the test sees what a user does.
    return subprocess.run(
        [sys.executable, "-m", "tokenshift.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
        preexec_fn=lambda: signals.signal(signals.SIGINT, signals.SIG_DFL),
    )


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tokenshift-"))


@pytest.fixture
def corpus(tmp_path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join(json.dumps({"text": " ".join(synthetic_corpus(4, seed=i))}) for i in range(24)) + "\n")
    return path


def test_train_killed_while_writing_leaves_a_temporary_the_next_run_removes(tmp_path, corpus):
    out = tmp_path / "tok"
    args = ["train", "--text", str(corpus), "--vocab-size", "300", "--out", str(out)]
    killed = run(args, at="train:written", cwd=tmp_path)
    assert killed.returncode == -9
    assert not out.exists()
    [left] = temporaries(tmp_path)
    assert left.startswith(".tokenshift-tmp-tok-")
    # a temporary of a live process (this one) and a name not of our shape are not touched
    live = tmp_path / f"{temporary_prefix('tok')}abc123de"
    live.mkdir()
    (tmp_path / ".tokenshift-tmp-notours").mkdir()
    done = run(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "tokenizer.json").is_file() and (out / "train.json").is_file()
    assert temporaries(tmp_path) == sorted([live.name, ".tokenshift-tmp-notours"])


def test_transplant_killed_or_interrupted_while_saving(tmp_path, tiny_model_dir):
    out = tmp_path / "moved"
    args = ["transplant", str(tiny_model_dir), str(tiny_model_dir), "--out", str(out), "--device", "cpu"]
    interrupted = run(args, at="transplant:written", signal="INT", cwd=tmp_path)
    assert interrupted.returncode == 130, interrupted.stderr
    assert interrupted.stderr.strip().splitlines()[-1].startswith("tokenshift: interrupted")
    assert "Traceback" not in interrupted.stderr
    assert not out.exists() and temporaries(tmp_path) == []
    killed = run(args, at="transplant:written", cwd=tmp_path)
    assert killed.returncode == -9 and not out.exists() and len(temporaries(tmp_path)) == 1
    done = run(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (out / "model.safetensors").is_file() and temporaries(tmp_path) == []


def test_export_killed_or_interrupted_while_writing(tmp_path, tiny_model_dir):
    out = tmp_path / "model.gguf"
    args = ["export", str(tiny_model_dir), "--gguf", str(out)]
    interrupted = run(args, at="export:written", signal="INT", cwd=tmp_path)
    assert interrupted.returncode == 130, interrupted.stderr
    assert not out.exists() and temporaries(tmp_path) == []
    killed = run(args, at="export:written", cwd=tmp_path)
    assert killed.returncode == -9 and not out.exists()
    [left] = temporaries(tmp_path)
    assert left.startswith(".tokenshift-tmp-model.gguf-")
    done = run(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:4] == b"GGUF" and temporaries(tmp_path) == []


HEAL = ["--steps", "4", "--batch-size", "2", "--seq-len", "16", "--objective", "ntp", "--stages", "all:lr=1e-3",
        "--eval-bytes", "0", "--mixed-precision", "no", "--device", "cpu", "--checkpoint-every", "1"]


def test_heal_interrupted_writes_a_checkpoint_and_resumes_from_it(tmp_path, tiny_model_dir, corpus):
    out = tmp_path / "healed"
    args = ["heal", str(tiny_model_dir), "--text", str(corpus), *HEAL, "--out", str(out)]
    interrupted = run(args, at="heal:step-3", signal="INT", cwd=tmp_path)
    assert interrupted.returncode == 130, interrupted.stderr
    last = interrupted.stderr.strip().splitlines()[-1]
    assert last.startswith("tokenshift: interrupted; checkpoint of step 2 written") and "--resume" in last
    checkpoints = tmp_path / "healed.checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-00000001", "step-00000002"]
    assert not out.exists() and temporaries(tmp_path) == []
    resumed = run([*args, "--resume"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr and "step 2 of 4" in resumed.stderr
    assert json.loads((out / "heal.json").read_text())["resumed_at"] == [2]
    assert not checkpoints.exists()


def test_heal_killed_while_checkpointing_then_resumed_leaves_nothing(tmp_path, tiny_model_dir, corpus):
    out = tmp_path / "healed"
    args = ["heal", str(tiny_model_dir), "--text", str(corpus), *HEAL, "--out", str(out)]
    killed = run(args, at="heal:checkpoint-written", cwd=tmp_path)
    assert killed.returncode == -9
    checkpoints = tmp_path / "healed.checkpoints"
    [partial] = temporaries(checkpoints)
    assert partial.startswith(".tokenshift-tmp-step-00000001-")
    # no complete checkpoint: --resume starts over, and the partial one is removed
    resumed = run([*args, "--resume"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "model.safetensors").is_file() and not checkpoints.exists() and temporaries(tmp_path) == []


def test_heal_killed_after_training_keeps_nothing_half_written(tmp_path, tiny_model_dir, corpus):
    out = tmp_path / "healed"
    args = ["heal", str(tiny_model_dir), "--text", str(corpus), *HEAL, "--out", str(out)]
    killed = run(args, at="heal:written", cwd=tmp_path)
    assert killed.returncode == -9 and not out.exists()
    assert len(temporaries(tmp_path)) == 1
    resumed = run([*args, "--resume"], cwd=tmp_path)  # the checkpoints are still there: the run ends from the last one
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "heal.json").is_file() and temporaries(tmp_path) == []


def test_heal_interrupted_while_checkpointing_still_leaves_a_checkpoint(tmp_path, tiny_model_dir, corpus):
    out = tmp_path / "healed"
    args = ["heal", str(tiny_model_dir), "--text", str(corpus), *HEAL, "--out", str(out)]
    interrupted = run(args, at="heal:checkpoint-written", signal="INT", cwd=tmp_path)
    assert interrupted.returncode == 130, interrupted.stderr
    assert "checkpoint of step 1 written" in interrupted.stderr.strip().splitlines()[-1]
    checkpoints = tmp_path / "healed.checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["step-00000001"]  # whole, and no temporary beside it
    resumed = run([*args, "--resume"], cwd=tmp_path)
    assert resumed.returncode == 0 and "step 1 of 4" in resumed.stderr, resumed.stderr
