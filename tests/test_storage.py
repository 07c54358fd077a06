"""Output checks before any work, rescue of finished results, damaged safetensors, names answered offline."""

from __future__ import annotations

import errno
import os
from collections import namedtuple

import pytest

from tokenshift import storage
from tokenshift.storage import check_output_folder, check_safetensors, clean_stale_temporaries, write_folder


def test_output_checks(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    check_output_folder(tmp_path / "new" / "deeper")  # missing parents are fine
    with pytest.raises(FileExistsError, match="already exists"):
        check_output_folder(tmp_path / "model")
    with pytest.raises(ValueError, match="lies inside the input folder"):
        check_output_folder(tmp_path / "model" / "sub", inputs=[tmp_path / "model"])
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "file" / "out")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(ValueError, match="1 MB free, the output needs about 105 MB"):
        check_output_folder(tmp_path / "out", need_bytes=10**8)
    check_output_folder(tmp_path / "out", need_bytes=10**5)


def test_a_finished_result_that_cannot_be_written_is_rescued(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENSHIFT_HOME", str(tmp_path / "home"))
    calls = []

    def write(folder):
        calls.append(folder)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        (folder / "weights").write_text("kept")

    with pytest.raises(RuntimeError, match="No space left on device.*the finished result is kept in") as caught:
        write_folder(tmp_path / "out", write)
    assert not (tmp_path / "out").exists()
    [kept] = (tmp_path / "home" / "rescued").iterdir()
    assert str(kept) in str(caught.value) and (kept / "weights").read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["home"]  # the failed temporary is gone


def test_stale_temporaries_only_of_dead_owners(tmp_path):
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    host = storage._host()
    (tmp_path / f".tokenshift-tmp-out-{host}-{dead}-abc123de").mkdir()
    (tmp_path / f".tokenshift-tmp-x.json-{host}-{dead}-zz9_0000").write_text("{}")
    kept = [f".tokenshift-tmp-out-{host}-{os.getpid()}-abc123de",  # a live owner
            f".tokenshift-tmp-out-otherhost-{dead}-abc123de",  # another machine on a shared disk
            f".tokenshift-tmp-x-{host}-99999999999999999999-abcdefgh",  # not a process id
            ".tmp-2024-05-backup", ".old-report-2023-final", "out"]  # the user's own names
    for name in kept:
        (tmp_path / name).mkdir()
    assert clean_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_damaged_safetensors_are_named(tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(path))
    check_safetensors(path)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(ValueError, match="model.safetensors is damaged: its tensors need .* it was cut short"):
        check_safetensors(path)
    path.write_bytes(data[:20])
    with pytest.raises(ValueError, match="header claims"):
        check_safetensors(path)
    path.write_bytes(b"\x05")
    with pytest.raises(ValueError, match="too short"):
        check_safetensors(path)


def test_names_are_answered_offline_and_at_once(monkeypatch, tmp_path):
    from tokenshift.modeling.load import model_location
    from tokenshift.names import looks_like_hub_id
    from tokenshift.tokenizer import load_tokenizer

    assert looks_like_hub_id("HuggingFaceTB/SmolLM2-135M") and not looks_like_hub_id("smolm2")
    assert not looks_like_hub_id("./a/b") and not looks_like_hub_id("a/b/c") and not looks_like_hub_id("a/tokenizer.json")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-model").mkdir()
    with pytest.raises(FileNotFoundError, match="did you mean smollm2-135m"):
        model_location("smolm2")
    with pytest.raises(FileNotFoundError, match="without config.json"):
        model_location("my-model")
    with pytest.raises(FileNotFoundError, match="did you mean my-model"):
        model_location("my-modle")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE is set"):
        load_tokenizer("someone/no-such-tokenizer")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "https://nonexistent.invalid")
    with pytest.raises(ValueError, match="nonexistent.invalid cannot be reached"):  # one connection try, no retries
        model_location("someone/no-such-model")
