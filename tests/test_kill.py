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
import time
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
    # a live process (this one) writing the same folder: the run is refused, nothing touched
    live = tmp_path / f"{temporary_prefix('tok')}abc123de"
    live.mkdir()
    refused = run(args, cwd=tmp_path)
    assert refused.returncode == 2 and f"is being written by another tokenshift process (pid {os.getpid()})" in refused.stderr
    live.rmdir()
    # a temporary of a live process writing another folder, and a name not of our shape, are not touched
    live = tmp_path / f"{temporary_prefix('other')}abc123de"
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
    # the temporary and the claim on the output, both naming the dead process: the next run removes them
    assert killed.returncode == -9 and not out.exists() and [t[:17] for t in temporaries(tmp_path)] == [".tokenshift-lock-", ".tokenshift-tmp-m"]
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
    [lock, partial] = temporaries(checkpoints)
    assert partial.startswith(".tokenshift-tmp-step-00000001-") and lock.startswith(".tokenshift-lock-checkpoints-")
    # no complete checkpoint: --resume starts over, and the partial one is removed
    resumed = run([*args, "--resume"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "model.safetensors").is_file() and not checkpoints.exists() and temporaries(tmp_path) == []


def test_heal_killed_after_training_keeps_nothing_half_written(tmp_path, tiny_model_dir, corpus):
    out = tmp_path / "healed"
    args = ["heal", str(tiny_model_dir), "--text", str(corpus), *HEAL, "--out", str(out)]
    killed = run(args, at="heal:written", cwd=tmp_path)
    assert killed.returncode == -9 and not out.exists()
    assert [t[:17] for t in temporaries(tmp_path)] == [".tokenshift-lock-", ".tokenshift-tmp-h"]
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


def test_sigterm_is_handled_like_ctrl_c(tmp_path, tiny_model_dir, corpus):
    """What schedulers, Docker and systemd send: a clean exit 143 in one line, no debris, and heal's
    last checkpoint kept and named."""
    out = tmp_path / "moved"
    args = ["transplant", str(tiny_model_dir), str(tiny_model_dir), "--out", str(out), "--device", "cpu"]
    terminated = run(args, at="transplant:written", signal="TERM", cwd=tmp_path)
    assert terminated.returncode == 143, terminated.stderr
    assert terminated.stderr.strip().splitlines()[-1] == "tokenshift: terminated (SIGTERM); nothing was written"
    assert "Traceback" not in terminated.stderr and not out.exists() and temporaries(tmp_path) == []
    healed = tmp_path / "healed"
    args = ["heal", str(tiny_model_dir), "--text", str(corpus), *HEAL, "--out", str(healed)]
    terminated = run(args, at="heal:step-3", signal="TERM", cwd=tmp_path)
    assert terminated.returncode == 143, terminated.stderr
    last = terminated.stderr.strip().splitlines()[-1]
    assert last.startswith("tokenshift: terminated (SIGTERM); checkpoint of step 2 written") and "--resume" in last, last
    assert sorted(p.name for p in (tmp_path / "healed.checkpoints").iterdir()) == ["step-00000001", "step-00000002"]
    assert not healed.exists() and temporaries(tmp_path) == []


def _paused_at(args: list[str], point: str, cwd: Path) -> subprocess.Popen:
    """Start ``tokenshift ARGS`` and wait until it stops itself (SIGSTOP) at kill point ``point``."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENSHIFT_HOME": str(cwd / "home"), "OMP_NUM_THREADS": "1",
           "TOKENSHIFT_SIGNAL_AT": point, "TOKENSHIFT_SIGNAL": "STOP"}
    process = subprocess.Popen([sys.executable, "-m", "tokenshift.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=cwd)
    deadline = time.monotonic() + 300
    while Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert process.poll() is None and time.monotonic() < deadline, "the run never reached its kill point"
        time.sleep(0.05)
    return process


@pytest.mark.parametrize("command", ["transplant", "export"])
def test_an_output_that_appears_during_the_run_is_never_touched(tmp_path, tiny_model_dir, command):
    """Another process (or a user's mkdir) creates the --out while the run works: what it holds stays
    as it is, and the run's result is kept beside it under a name the last line gives."""
    if command == "transplant":
        out = tmp_path / "moved"
        args, point = ["transplant", str(tiny_model_dir), str(tiny_model_dir), "--out", str(out), "--device", "cpu"], "transplant:written"
    else:
        out = tmp_path / "model.gguf"
        args, point = ["export", str(tiny_model_dir), "--gguf", str(out)], "export:written"
    process = _paused_at(args, point, tmp_path)
    if command == "transplant":
        out.mkdir()
        (out / "notes.txt").write_text("a user's own file")
    else:
        out.write_text("a user's own file")
    os.kill(process.pid, signals.SIGCONT)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr
    last = stderr.strip().splitlines()[-1]
    assert "appeared while" in last and "was left as it is" in last and "Traceback" not in stderr, stderr
    if command == "transplant":
        assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "a user's own file"
        [kept] = [p for p in tmp_path.iterdir() if p.name.startswith("moved-")]
        assert (kept / "model.safetensors").is_file()
    else:
        assert out.read_text() == "a user's own file"
        [kept] = [p for p in tmp_path.iterdir() if p.name.startswith("model") and p != out]
        assert kept.read_bytes()[:4] == b"GGUF"
    assert str(kept) in last
    assert temporaries(tmp_path) == []


def test_rescued_results_are_listed_with_their_size_and_how_to_remove_them(tmp_path, monkeypatch, capsys):
    from tokenshift.cli import main

    import tempfile

    monkeypatch.setenv("TOKENSHIFT_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the second rescue place: this test's, empty
    kept = tmp_path / "home" / "rescued" / "healed-20261207-101010-42"
    kept.mkdir(parents=True)
    (kept / "model.safetensors").write_bytes(b"\0" * 2_000_000)
    assert main(["assets", "--list"]) == 0
    printed = capsys.readouterr().out
    assert "rescued results: 1, 2.0 MB" in printed and f"2.0 MB  {kept}" in printed
    assert main(["assets", "--list", "--json"]) == 0
    [row] = [r for r in json.loads(capsys.readouterr().out) if r["kind"] == "rescued"]
    assert row["bytes"] == 2_000_000 and f"rm -r {kept}" in row["description"]
