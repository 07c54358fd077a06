"""Inputs made by a hostile user: folders that lie, files edited by hand, options sized to exhaust the
machine, environments that point nowhere. Each case runs in its own process (forked from a warm one,
see ``forkrun.py``) under a memory limit (its address space may grow by ``MEMORY_BYTES``) and a time
limit, and is checked for its exit code, one line on standard error (for a refusal) naming the
problem, no traceback, and no debris: nothing appears or vanishes in the model, the inputs or the
folder the command runs in, and no output is written.

The cases that a crafted input once turned into a 24 GB allocation, a 3 GB read or a Rust backtrace
are here to stay fixed; the file-system races and signals (an ``--out`` that appears mid-run, SIGTERM)
are in ``test_kill.py``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import save_tiny_model, synthetic_corpus, train_byte_level_bpe
from tokenshift.storage import temporary_prefix

MEMORY_BYTES = 3 << 30  # beyond what the warm parent maps: a model of this size never needs more
PEAK_RSS_LIMIT = 2 << 30  # a case whose process grew past this read or allocated what it should not have
SECONDS = 120

HEAL = "--steps 4 --batch-size 2 --seq-len 16 --objective ntp --stages all:lr=1e-3 --eval-bytes 0 --mixed-precision no --device cpu"

# (command line, expected exit code, words the last line of standard error must hold, extra environment)
# {M}: the tiny model, {M2}: another one with the same tokenizer, {D}: the hostile inputs, {T}: a text,
# {C}: a heal corpus, {O}: an output path that must stay absent.
CASES: list[tuple[str, int, str, dict[str, str]]] = [
    # 1. folders whose config and weights disagree, or that hold no causal LM
    ("evaluate {D}/headless --text {T}", 2, "1 tensor(s) the config needs are not in the weights (lm_head.weight)", {}),
    ("export {D}/headless --gguf {O}.gguf", 2, "1 tensor(s) the config needs are not in the weights (lm_head.weight)", {}),
    ("evaluate {D}/extra-layer --text {T}", 2, "the config needs are not in the weights (model.layers.2.", {}),
    ("transplant {D}/extra-layer {M} --out {O}", 2, "the config needs are not in the weights (model.layers.2.", {}),
    ("export {D}/fewer-layers --gguf {O}.gguf", 2, "9 tensor(s) in the weights have no place in the model the config describes", {}),
    ("evaluate {D}/masked-lm --text {T}", 2, "declares BertForMaskedLM, not a causal language model", {}),
    ("transplant {D}/masked-lm {M} --out {O}", 2, "declares BertForMaskedLM, not a causal language model", {}),
    ("evaluate {D}/encoder-decoder --text {T}", 2, "is an encoder-decoder (T5ForConditionalGeneration)", {}),
    ("evaluate {D}/two-shards --text {T}", 2, "tensor 'model.embed_tokens.weight' is stored in model-00002-of-00002.safetensors and in model-00001", {}),
    ("evaluate {D}/vocab-size --text {T}", 2, "model.embed_tokens.weight", {}),
    ("evaluate {D}/overlap --text {T}", 2, "overlaps the tensor before it", {}),
    ("evaluate {D}/relabelled --text {T}", 2, "is BF16 of shape", {}),
    ("evaluate {D}/unknown-dtype --text {T}", 2, "has dtype 'F12', which safetensors does not define", {}),
    ("evaluate {D}/negative-shape --text {T}", 2, "has shape [-1, 32]: not a list of sizes", {}),
    ("evaluate {D}/huge-shape --text {T}", 2, "not a list of sizes from 0 to 2^48", {}),
    ("evaluate {D}/long-header --text {T}", 2, "its header claims", {}),
    ("evaluate {D}/nan --text {T}", 2, "32 of its weights are NaN or inf (a damaged checkpoint", {}),
    # 2. small inputs that once asked for the whole machine
    ("measure {D}/huge-id.json --text {T}", 2, "has id 2,147,483,647, but the vocabulary holds", {}),
    ("measure {M} --text {D}/huge.txt --max-bytes 1000", 0, "", {}),
    ("measure {M} --text {D}/huge.txt", 2, "huge.txt (3.0 GB) whole needs about 12.0 GB (the text decoded and encoded 12.0 GB) plus",
     {"TOKENSHIFT_MEMORY_BYTES": "8000000000"}),
    ("heal {M} --text {C} --batch-size 1000000000 --steps 1 --out {O}", 2, "argument --batch-size", {}),
    ("heal {M} --text {C} --seq-len 1000000000 --steps 1 --out {O}", 2, "argument --seq-len", {}),
    ("heal {M} --text {C} --minutes 1e300 --out {O}", 2, "argument --minutes", {}),
    ("heal {M} --text {C} --tokens 1e30 --out {O}", 2, "argument --tokens", {}),
    ("heal {M} --text {C} --steps 1000000000000 --out {O}", 2, "argument --steps", {}),
    ("heal {M} --text {C} --lora --lora-rank 100000000 --steps 1 --out {O}", 2, "argument --lora-rank", {}),
    ("transplant {M} {M} --pad-to-multiple-of 1000000000 --out {O}", 2, "argument --pad-to-multiple-of", {}),
    ("evaluate {M} --text {T} --batch-tokens 1000000000000", 2, "argument --batch-tokens", {}),
    # 3. malformed files: the file, what is wrong, the fix
    ("measure {D}/empty-vocabulary.json --text {T}", 2, "has no tokens: an empty vocabulary encodes nothing", {}),
    ("measure {D}/regex.json --text {T}", 2, "a regex in it backtracks without end", {}),
    ("evaluate {D}/config-list --text {T}", 2, "tokenizer_config.json is a JSON list, not a table of settings", {}),
    ("evaluate {D}/config-latin1 --text {T}", 2, "tokenizer_config.json is not UTF-8 text", {}),
    ("evaluate {D}/config-syntax --text {T}", 2, "tokenizer_config.json is not valid JSON", {}),
    ("evaluate {D}/template-number --text {T}", 2, "chat_template is a int, not a Jinja template", {}),
    ("measure {M} --text {D}/surrogate.jsonl", 2, "surrogate.jsonl:1: the text holds a lone surrogate (U+D800", {}),
    # 4. quiet acceptances, now refused or warned about
    ("evaluate {M} --text {T} --context 100000", 2, "--context 100,000 is beyond the 64 positions of this model", {}),
    ("transplant {M} {D}/template-syntax --out {O}", 2, "its chat_template is not valid Jinja", {}),
    ("export {D}/template-syntax --gguf {O}.gguf", 2, "its chat_template is not valid Jinja", {}),
    ("evaluate {D}/bos-missing --text {T} --max-bytes 200", 0, "names bos_token '<nosuch>', which is not in the vocabulary", {}),
    ("measure {D}/shared-id.json --text {T}", 0, "id(s) are shared by several tokens", {}),
    ("heal {M} --text {C} --teacher {M} --minutes 0.0001 --out {O}", 2, "heal trained nothing within --minutes 0.0001", {}),
    ("heal {M} --text {C} --minutes 0.0001 --objective ntp --stages all:lr=1e-3 --out {O}", 2, "heal trained nothing", {}),
    ("evaluate {M} --tokenizer {D}/lossy.json --text {T}", 2, "tokenizer 'lossy' does not give back 61.8% of the bytes", {}),
    ("evaluate {M} --tokenizer {D}/unrelated.json --text {T}", 2, "tokenizer 'unrelated' spells 88% of its ids differently from", {}),
    ("evaluate {M} --text {T} --device banana", 2, "banana", {}),
    ("assets --list", 2, "TOKENSHIFT_HOME=relative/cache is a relative path", {"TOKENSHIFT_HOME": "relative/cache"}),
    ("assets --list", 2, "is a file, not a folder", {"TOKENSHIFT_HOME": "{T}"}),
    # 5. what another run owns
    ("heal {M2} --text {C} " + HEAL + " --checkpoint-dir {D}/checkpoints-of-M --resume --out {O}", 2,
     "belong to a heal of another student", {}),
    ("heal {M} --text {C} " + HEAL + " --checkpoint-every 1 --checkpoint-dir {D}/held-checkpoints --out {O}", 2,
     "is in use by another heal (pid {PID})", {}),
    ("transplant {M} {M} --out {D}/held/out", 2, "is being written by another tokenshift process (pid {PID})", {}),
]


def _with_config(source: Path, folder: Path, **change) -> Path:
    shutil.copytree(source, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **change}))
    return folder


def _tampered(source: Path, folder: Path, change) -> Path:
    """A copy of ``source`` whose model.safetensors header ``change(header)`` edits in place."""
    shutil.copytree(source, folder)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    change(header)
    encoded = json.dumps(header).encode()
    weights.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + length :])
    return folder


def _in_offset_order(header: dict) -> list[str]:
    return sorted((n for n in header if n != "__metadata__"), key=lambda n: header[n]["data_offsets"][0])


def _overlap(header: dict) -> None:
    """The second tensor starts inside the first one (its size kept)."""
    first, second = _in_offset_order(header)[:2]
    begin, end = header[second]["data_offsets"]
    start = header[first]["data_offsets"][0] + 4
    header[second]["data_offsets"] = [start, start + end - begin]


def _relabel(header: dict) -> None:
    header[_in_offset_order(header)[0]]["dtype"] = "BF16"


def _unknown_dtype(header: dict) -> None:
    header[_in_offset_order(header)[0]]["dtype"] = "F12"


def _shape(shape: list[int]):
    def change(header: dict) -> None:
        header["model.embed_tokens.weight"]["shape"] = shape

    return change


def _tokenizer_file(source: Path, target: Path, change) -> Path:
    spec = json.loads((source / "tokenizer.json").read_text())
    change(spec)
    target.write_text(json.dumps(spec))
    return target


def _huge_id(spec: dict) -> None:
    vocab = spec["model"]["vocab"]
    vocab[next(t for t in vocab if len(t) > 2)] = 2**31 - 1


def _empty_vocabulary(spec: dict) -> None:
    spec["model"]["vocab"], spec["model"]["merges"], spec["added_tokens"] = {}, [], []


def _catastrophic_regex(spec: dict) -> None:
    spec["pre_tokenizer"] = {"type": "Split", "pattern": {"Regex": "(a|a)+b"}, "behavior": "Isolated", "invert": False}


def _shared_id(spec: dict) -> None:
    vocab = spec["model"]["vocab"]
    vocab["b"] = vocab["a"]  # one edited line: two tokens, one id


def _build_inputs(folder: Path, model: Path, backend) -> None:
    (folder / "text.txt").write_text("le chat mange une pomme et le chat dort dans la maison\n" * 20, encoding="utf-8")
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({"text": " ".join(synthetic_corpus(4, seed=i))}) for i in range(24)) + "\n")
    # 1. folders that lie
    _with_config(model, folder / "headless", tie_word_embeddings=False)
    _with_config(model, folder / "extra-layer", num_hidden_layers=3)
    _with_config(model, folder / "fewer-layers", num_hidden_layers=1)
    _with_config(model, folder / "vocab-size", vocab_size=json.loads((model / "config.json").read_text())["vocab_size"] + 7)
    from transformers import BertConfig, BertForMaskedLM, T5Config, T5ForConditionalGeneration

    vocab = backend.get_vocab_size(with_added_tokens=True)
    for name, built in (("masked-lm", BertForMaskedLM(BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=1,
                                                                   num_attention_heads=4, intermediate_size=64))),
                        ("encoder-decoder", T5ForConditionalGeneration(T5Config(vocab_size=vocab, d_model=32, d_ff=64, d_kv=8,
                                                                                num_layers=1, num_heads=4)))):
        built.save_pretrained(folder / name, safe_serialization=True)
        shutil.copy(model / "tokenizer.json", folder / name / "tokenizer.json")
    from safetensors.torch import load_file, save_file

    tensors = load_file(model / "model.safetensors")
    shards = folder / "two-shards"
    _with_config(model, shards)
    (shards / "model.safetensors").unlink()
    first = {name: t for name, t in tensors.items() if name != "model.norm.weight"}
    save_file(first, shards / "model-00001-of-00002.safetensors", metadata={"format": "pt"})
    # the second shard holds the final norm (as the index says) and a stale copy of the embedding
    save_file({"model.norm.weight": tensors["model.norm.weight"], "model.embed_tokens.weight": tensors["model.embed_tokens.weight"] * 2},
              shards / "model-00002-of-00002.safetensors", metadata={"format": "pt"})
    weight_map = {name: "model-00001-of-00002.safetensors" for name in first} | {"model.norm.weight": "model-00002-of-00002.safetensors"}
    (shards / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    _tampered(model, folder / "overlap", _overlap)
    _tampered(model, folder / "relabelled", _relabel)
    _tampered(model, folder / "unknown-dtype", _unknown_dtype)
    _tampered(model, folder / "negative-shape", _shape([-1, 32]))
    _tampered(model, folder / "huge-shape", _shape([2**62, 2**62]))
    long_header = shutil.copytree(model, folder / "long-header")
    data = (long_header / "model.safetensors").read_bytes()
    (long_header / "model.safetensors").write_bytes(struct.pack("<Q", 2**60) + data[8:])
    nan = shutil.copytree(model, folder / "nan")
    poisoned = dict(tensors)
    poisoned["model.norm.weight"] = tensors["model.norm.weight"] * float("nan")
    save_file(poisoned, nan / "model.safetensors", metadata={"format": "pt"})
    # 2-3. tokenizers and texts edited by hand
    _tokenizer_file(model, folder / "huge-id.json", _huge_id)
    _tokenizer_file(model, folder / "empty-vocabulary.json", _empty_vocabulary)
    _tokenizer_file(model, folder / "regex.json", _catastrophic_regex)
    _tokenizer_file(model, folder / "shared-id.json", _shared_id)
    with open(folder / "huge.txt", "wb") as handle:  # 3 GB, nearly all a hole: costs no disk
        handle.write(("le chat dort. " * 200).encode())
        handle.truncate(3 * 10**9)
    (folder / "surrogate.jsonl").write_text('{"text": "a\\ud800b"}\n')
    for name, config in (("config-list", b"[]"), ("config-latin1", '{"eos_token": "café"}'.encode("latin-1")),
                         ("config-syntax", b"{not json"), ("template-number", b'{"chat_template": 42}'),
                         ("template-syntax", json.dumps({"chat_template": "{% if messages %}{{ messages[0]['content'] }"}).encode()),
                         ("bos-missing", json.dumps({"bos_token": "<nosuch>", "eos_token": "<|endoftext|>"}).encode())):
        shutil.copytree(model, folder / name)
        (folder / name / "tokenizer_config.json").write_bytes(config)
    # 4. tokenizers that do not fit the text or the model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    # the model's own ids and spellings, read word by word: a word the vocabulary lacks becomes <|endoftext|>
    lossy = Tokenizer(models.WordLevel(backend.get_vocab(), unk_token="<|endoftext|>"))
    lossy.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    lossy.decoder = decoders.ByteLevel()
    lossy.save(str(folder / "lossy.json"))
    unrelated = train_byte_level_bpe(vocab_size=300, specials=("<s>",))  # another corpus order, another merge list
    spec = json.loads(unrelated.to_str())
    shuffled = sorted(spec["model"]["vocab"], key=lambda token: token[::-1])  # the same pieces, other ids
    spec["model"]["vocab"] = {token: index for index, token in enumerate(shuffled)}
    spec["added_tokens"] = []
    (folder / "unrelated.json").write_text(json.dumps(spec))
    # 5. another run's checkpoint folder, and folders held by a live process (this test's)
    (folder / "held-checkpoints").mkdir()
    (folder / "held-checkpoints" / f"{temporary_prefix('checkpoints', 'lock')}abcd1234").touch()
    (folder / "held").mkdir()
    (folder / "held" / f"{temporary_prefix('out', 'lock')}abcd1234").touch()


def _run(cases: list[dict]) -> list[dict]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parent)}
    env.pop("TOKENSHIFT_SIGNAL_AT", None)
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "forkrun.py")], input=json.dumps(cases), capture_output=True,
                          text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _tree(*roots: Path) -> set[str]:
    return {str(p) for root in roots for p in root.rglob("*")}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, tiny_model_dir, tiny_backend) -> dict:
    """Build the inputs, write a heal checkpoint of {M} (interrupted at step 3), then run every case."""
    root = tmp_path_factory.mktemp("hostile")
    inputs, work = root / "inputs", root / "work"
    inputs.mkdir()
    work.mkdir()
    other = save_tiny_model(root / "other-model", tiny_backend, seed=1)
    _build_inputs(inputs, tiny_model_dir, tiny_backend)
    values = {"M": str(tiny_model_dir), "M2": str(other), "D": str(inputs), "T": str(inputs / "text.txt"),
              "C": str(inputs / "corpus.jsonl"), "O": str(work / "out"), "PID": str(os.getpid())}
    checkpoints = inputs / "checkpoints-of-M"
    [setup] = _run([{
        "argv": ["heal", values["M"], "--text", values["C"], *HEAL.split(), "--checkpoint-every", "1", "--checkpoint-dir",
                 str(checkpoints), "--out", str(root / "healed")],
        "cwd": str(work), "env": {"TOKENSHIFT_SIGNAL_AT": "heal:step-3", "TOKENSHIFT_SIGNAL": "INT",
                                  "TOKENSHIFT_HOME": str(root / "home")},
        "stdout": str(root / "setup.out"), "stderr": str(root / "setup.err"), "seconds": SECONDS, "memory_bytes": MEMORY_BYTES}])
    assert setup["code"] == 130 and any(checkpoints.iterdir()), (root / "setup.err").read_text()
    before = _tree(tiny_model_dir, inputs, work)
    requests = []
    for number, (line, _, _, env) in enumerate(CASES):
        own = {**values, "O": f"{values['O']}-{number}"}  # cases run two at a time: each its own output
        requests.append({"argv": [part.format(**own) for part in line.split()], "cwd": str(work),
                         "env": {"TOKENSHIFT_HOME": str(root / "home"), **{k: v.format(**own) for k, v in env.items()}},
                         "stdout": str(root / f"{number}.out"), "stderr": str(root / f"{number}.err"), "seconds": SECONDS,
                         "memory_bytes": MEMORY_BYTES})
    results = _run(requests)
    for number, result in enumerate(results):
        result["stderr"] = (root / f"{number}.err").read_text(errors="replace")
    return {"values": values, "results": results, "before": before, "after": _tree(tiny_model_dir, inputs, work)}


def test_the_table_has_forty_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("number", range(len(CASES)), ids=[f"{n:02d}-{line.split(' --out')[0][:50]}" for n, (line, *_) in enumerate(CASES)])
def test_hostile_input(number, hostile):
    line, code, expected, _ = CASES[number]
    result = hostile["results"][number]
    err = result["stderr"]
    assert not result["timed_out"], f"ran past {SECONDS} s"
    assert result["code"] == code, (result["code"], err[-2000:])
    assert "Traceback" not in err and "panicked" not in err, err[-2000:]
    lines = [entry for entry in err.splitlines() if entry.strip()]
    if code == 2:
        assert len(lines) == 1, err
        assert re.match(r"tokenshift( [a-z-]+)?: error: ", lines[0]), lines[0]
    found = lines[0] if code == 2 else err
    assert expected.format(**hostile["values"]) in found, found
    assert result["peak_rss_bytes"] < PEAK_RSS_LIMIT, f"peak {result['peak_rss_bytes'] / 1e9:.2f} GB"
    out = f"{hostile['values']['O']}-{number}"
    assert not Path(out).exists() and not Path(f"{out}.gguf").exists()


def test_hostile_inputs_leave_nothing_behind(hostile):
    appeared, vanished = hostile["after"] - hostile["before"], hostile["before"] - hostile["after"]
    assert not appeared and not vanished, (sorted(appeared)[:5], sorted(vanished)[:5])
