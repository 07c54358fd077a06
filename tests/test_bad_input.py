"""Every bad input gets one clear line: a table of cases across every command.

Each case runs the CLI in-process and checks the exit code (2: bad input), that standard error is
exactly one line, naming the problem (the expected words), with no traceback, and that nothing was
left behind: no file or folder appeared or vanished in the model folder, the inputs or the place
the output would have gone. docs/guide/bad-input.md counts the cases per command (see ``CASES_PER_COMMAND``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from tokenshift.cli import main

# (command line with {M} model folder, {D} inputs folder, {T} text file, {O} output path; expected words)
CASES: list[tuple[str, str]] = [
    # evaluate
    ("evaluate {M} --text {T} --max-bytes 0", "argument --max-bytes: must be a positive integer, got '0'"),
    ("evaluate {M} --text {T} --max-bytes -5", "argument --max-bytes: must be a positive integer, got '-5'"),
    ("evaluate {M} --text {T} --context 0", "argument --context: must be an integer from 2 to 1,048,576, got '0'"),
    ("evaluate {M} --text {T} --stride 0", "argument --stride: must be a positive integer"),
    ("evaluate {M} --text {T} --batch-tokens 0", "argument --batch-tokens"),
    ("evaluate {M} --text {T} --dtype float64", "argument --dtype: invalid choice"),
    ("evaluate {M} --text {T} --encoder least-token", "argument --encoder: unknown encoder 'least-token'; did you mean least-tokens"),
    ("evaluate smolm2 --text {T}", "model 'smolm2': not an asset, a local path, or a Hugging Face id (OWNER/NAME); did you mean smollm2-135m"),
    ("evaluate ./no-such-model --text {T}", "no such file or folder"),
    ("evaluate {D} --text {T}", "a folder without config.json, so not a model folder"),
    ("evaluate {D}/truncated --text {T}", "model.safetensors is damaged"),
    ("evaluate {D}/headless --text {T}", "its config.json and its weights disagree: 1 tensor(s) the config needs are not in the weights (lm_head.weight)"),
    ("evaluate {M} --tokenizer {D}/shape.json --text {T}", 'is JSON but not a Hugging Face tokenizer.json: it has no "model" table'),
    ("evaluate {M} --tokenizer {D}/syntax.json --text {T}", "is not a tokenizer.json: not valid JSON"),
    ("evaluate {M} --text {D}/missing.txt", "not found"),
    ("evaluate {M} --text wiki-fx:test", "did you mean wiki-fr"),
    ("evaluate {M} --text {D}/latin1.txt", "not UTF-8"),
    ("evaluate {M} --text {T} --bos-token <nosuch>", "token '<nosuch>' is not in the vocabulary"),
    ("evaluate {M} --text {T} --device cuda:7", "no CUDA device is available"),
    ("evaluate {M} --text {T} --report {D}/no-such-folder/r.html",
     "argument --report: {D}/no-such-folder/r.html: the folder {D}/no-such-folder does not exist; create it first"),
    ("evaluate {M} --text {T} --report {D}", "argument --report: {D} is a folder; name the page to write in it, e.g. {D}/report.html"),
    ("evaluate {M} --text {T} --dynamic-merges -1", "argument --dynamic-merges: must be an integer >= 0, got '-1'"),
    ("evaluate {M} --text {T} --dynamic-reduction 1.5", "argument --dynamic-reduction: must be in [0, 1), got '1.5'"),
    ("evaluate {M} --text {T} --dynamic-merges 8 --dynamic-method omp", "argument --dynamic-method: invalid choice: 'omp'"),
    ("evaluate {M} --text {T} --dynamic-merges 8 --encoder least-tokens", "drop --encoder, --stride and --report"),
    # measure
    ("measure smolm2 --text {T}", "did you mean smollm2"),
    ("measure {M} --text {T} --renyi-alpha 0", "argument --renyi-alpha: must be a positive number"),
    ("measure {M} --text {T} --max-bytes 0", "argument --max-bytes"),
    ("measure {M} --text {T} --encoder stochastok:2", "argument --encoder: stochastok:P needs P in [0, 1), got 2.0"),
    ("measure {M} --text {T} --reference {D}/missing.txt", "not found"),
    ("measure {M} --text {T} --report {O}.png", "argument --report: {O}.png: name the page FILE.html"),
    ("measure {M} --text {T} --report {D}/written/page.html", "argument --report: {D}/written/page.html already exists; choose another name"),
    # compare
    ("compare {M} no-such-tokenizer", "tokenizer 'no-such-tokenizer': not an asset"),
    ("compare {M} someone/no-such-tokenizer", "is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"),
    ("compare {M}", "the following arguments are required: tokenizer_b"),
    # train
    ("train --text {T} --vocab-size 0 --out {O}", "argument --vocab-size: must be a positive integer"),
    ("train --text {T} --vocab-size 10 --out {O}", "--vocab-size 10 is too small"),
    ("train --text {T} --vocab-size 2.5e2x --out {O}", "argument --vocab-size: must be a number"),
    ("train --text {T} --vocab-size 300 --out /proc/no-such/out", "cannot write in /proc"),
    ("train --text {T} --vocab-size 1e9 --out {O}", "is larger than tokenshift trains"),
    ("train --text {T} --vocab-size 300 --out=", "argument --out: is empty"),
    ("train --text {T} --vocab-size 300 --out {T}/out", "is a file, not a folder"),
    ("train --text {T} --vocab-size 300 --out {D}", "already exists"),
    ("train --text {T} --vocab-size 400 --extend smolm2 --out {O}", "did you mean smollm2"),
    ("train --text {T} --vocab-size 300 --extend {M} --out {O}", "must exceed the extended tokenizer's"),
    ("train --text {T} --vocab-size 300 --min-frequency 0 --out {O}", "argument --min-frequency"),
    ("train --text {T} --vocab-size 300 --kind superbpe --max-words 0 --out {O}", "argument --max-words"),
    ("train --text {T} --vocab-size 300 --kind superbpe --transition 1.5 --out {O}", "argument --transition"),
    ("train --text {T} --vocab-size 300 --kind superbpe --transition often --out {O}", "argument --transition: transition must be auto"),
    ("train --text {T} --vocab-size 300 --kind superbpe --held-out 0.7 --out {O}", "--held-out 0.7 must be a share between 0 and 0.5"),
    ("train --text {T} --vocab-size 300 --kind superbpe --held-out 0 --out {O}", "pass a --held-out share or a fixed --transition"),
    ("train --text {T} --vocab-size 300 --kind superbpe --out {O}", "no text was held out"),
    ("train --text {D}/empty.txt --vocab-size 300 --out {O}", "has no non-empty document"),
    # transplant
    ("transplant {M} {M} --option nosuch=3 --out {O}", "no option 'nosuch'"),
    ("transplant {M} {M} --method scaled --option scale=abc --out {O}", "option 'scale' must be a number"),
    ("transplant {M} {M} --option scale --out {O}", "must look like NAME=VALUE"),
    ("transplant {M} {M} --pad-to-multiple-of 0 --out {O}", "argument --pad-to-multiple-of"),
    ("transplant {M} {M} --out {M}/inside", "lies inside the input folder"),
    ("transplant {M} {M} --out /proc/no-such/out", "cannot write in /proc"),
    ("transplant {D}/truncated {M} --out {O}", "model.safetensors is damaged"),
    ("transplant {D}/headless {M} --out {O}", "its config.json and its weights disagree"),
    ("transplant {M} {D}/shape.json --out {O}", 'has no "model" table'),
    ("transplant {M} {M} --method nosuch --out {O}", "argument --method: invalid choice"),
    ("transplant {M} {M} --method blend --donor ./no-such-donor --out {O}", "no such file or folder"),
    ("transplant {M} {M} --method subword --donor {M} --out {O}", "does not use a donor"),
    ("transplant {M} {M}", "the following arguments are required: --out"),
    # heal
    ("heal {D}/no-such-model --text {T} --steps 1 --out {O}", "no such file or folder"),
    ("heal {M} --text {T} --minutes 0 --out {O}", "argument --minutes: must be a number of minutes above 0 and at most 10,080 (a week)"),
    ("heal {M} --text {T} --minutes -1 --out {O}", "argument --minutes"),
    ("heal {M} --text {T} --stages all:lr=abc --steps 1 --out {O}", "stage 'all', option lr: must be a number, got 'abc'"),
    ("heal {M} --text {T} --stages nosuch --steps 1 --out {O}", "unknown stage 'nosuch'"),
    ("heal {M} --text {T} --batch-size 0 --out {O}", "argument --batch-size"),
    ("heal {M} --text {T} --seq-len 1 --out {O}", "argument --seq-len: must be an integer from 2 to 1,048,576, got '1'"),
    ("heal {M} --text {T} --eval-bytes -1 --out {O}", "argument --eval-bytes"),
    ("heal {M} --text {T} --steps 1 --out /proc/no-such/out", "cannot write in /proc"),
    ("heal {M} --text {T} --steps 1 --out {M}/inside", "lies inside the input folder"),
    ("heal {M} --text {T} --steps 1 --checkpoint-dir {M}/checkpoints --out {O}", "--checkpoint-dir {M}/checkpoints lies inside"),
    ("heal {M} --text {T} --steps 1 --checkpoint-dir {T} --out {O}", "is a file, not a folder"),
    ("heal {M} --text {T} --recipe rows --steps 2 --out {O}", "takes --minutes or --tokens, not --steps"),
    ("heal {M} --text {T} --out {O}", "give a budget"),
    ("heal {M} --text {T} --steps 1 --stochastok 1 --out {O}", "argument --stochastok: must be in [0, 1)"),
    ("heal {M} --text {T} --minutes 1 --recipe rows --stochastok 0.1 --out {O}", "--stochastok splits the training tokens of the stages recipe"),
    ("heal {M} --text {T} --steps 1 --out {O} --report {D}", "argument --report: {D} is a folder"),
    ("heal {M} --text {T} --steps 1 --out {O} --report {O}/heal.html", "argument --report: {O}/heal.html: the folder {O} does not exist"),
    # generate
    ("generate {M} --prompt hi --temperature -1", "argument --temperature: must be a number >= 0"),
    ("generate {M} --prompt hi --max-bytes 0", "argument --max-bytes"),
    ("generate {M} --prompt hi --byte-level --beam 0", "argument --beam"),
    ("generate {M} --prompt hi --byte-level --threshold 1.5", "argument --threshold: must be in [0, 1)"),
    ("generate {M} --prompt hi --back-off 2", "add --byte-level"),
    ("generate {M}", "give the text to continue with --prompt TEXT or --prompt-file FILE"),
    ("generate {M} --prompt-file {D}/missing.txt", "--prompt-file {D}/missing.txt: not found"),
    ("generate {M} --prompt hi --dynamic --byte-level", "--dynamic decodes greedily in tokens; drop --byte-level"),
    # ensemble
    ("ensemble {M} --text {T}", "an ensemble needs at least two models"),
    ("ensemble {M} {M} --weights 1 --text {T}", "1 weights for 2 models"),
    ("ensemble {M} {M}", "nothing to do"),
    # export
    ("export {D}/extra-layer --gguf {O}.gguf", "tensor(s) the config needs are not in the weights (model.layers.2."),
    ("export smolm2 --gguf {O}.gguf", "model 'smolm2': not an asset, a local path, or a Hugging Face id (OWNER/NAME); did you mean smollm2-135m"),
    ("export {M} --gguf {O}.gguf --dtype q4_k", "argument --dtype: invalid choice"),
    ("export {M} --gguf {O}.gguf --pre smolm", "unknown llama.cpp pre-tokenizer (tokenizer.ggml.pre) 'smolm'; did you mean smollm"),
    ("export {M} --gguf {O}.gguf --pre gemma4", "not a byte-level BPE pre-tokenization"),
    ("export {M} --gguf {D}/written/model.gguf", "--gguf {D}/written/model.gguf already exists"),
    ("export {M} --gguf {O}.bin", "name the output file NAME.gguf"),
    ("export {D}/truncated --gguf {O}.gguf", "model.safetensors is damaged"),
    ("export {M}", "the following arguments are required: --gguf"),
    ("export {D}/spm-extended --gguf {O}.gguf", "cannot be written as a SentencePiece vocabulary that llama.cpp tokenizes as the BPE does"),
    # infer-mixture
    ("infer-mixture {M} --category en", "argument --category: must look like NAME=TEXT"),
    ("infer-mixture {M} --category en={T}", "needs at least two categories"),
    ("infer-mixture {M} --category en={T} en={T}", "--category en is given twice"),
    ("infer-mixture {M} --category en={T} fr={D}/missing.txt", "not found"),
    ("infer-mixture {M} --category en={T} fr={T} --merges 0", "argument --merges: must be a positive integer"),
    ("infer-mixture smolm2 --category en={T} fr={T}", "did you mean smollm2"),
    # assets
    ("assets gemma3-27m", "did you mean gemma3-270m"),
    ("assets --list no-such-asset", "unknown asset 'no-such-asset'"),
    # demo
    ("demo --minutes 0", "argument --minutes"),
    ("demo --max-bytes 0", "argument --max-bytes"),
    ("demo --report {D}/no-such-folder/demo.html", "the folder {D}/no-such-folder does not exist"),
]

CASES += [
    # adapt
    ("adapt {M} --text {T} --out {O}", "the domain text holds 400 bytes; adapt needs at least 50,000"),
    ("adapt {M} --text {T} --out {O} --minutes 0", "argument --minutes"),
    ("adapt {M} --text {T} --out {O} --new-tokens 5 --vocab-size 500", "argument --vocab-size: not allowed with argument --new-tokens"),
    ("adapt {M} --text {D}/missing.txt --out {O}", "not found"),
    ("adapt {M} --text {T} --out {O} --max-bytes 1000", "--max-bytes 1,000 reads less than adapt needs (50,000 bytes)"),
    # launch-config
    ("launch-config fsdp3", "argument name: invalid choice: 'fsdp3'"),
    ("launch-config", "the following arguments are required: name"),
]
CASES_PER_COMMAND = Counter(line.split()[0] for line, _ in CASES)


def _tree(*roots: Path) -> set[str]:
    return {str(p) for root in roots for p in root.rglob("*")} | {str(p) for root in roots for p in root.glob(".*")}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_model_dir) -> Path:
    folder = tmp_path_factory.mktemp("bad-inputs")
    (folder / "text.txt").write_text("le chat mange une pomme et le chat dort\n" * 10, encoding="utf-8")
    (folder / "shape.json").write_text(json.dumps({"hello": [1, 2]}))
    (folder / "syntax.json").write_text("{not json")
    (folder / "empty.txt").write_text("")
    (folder / "latin1.txt").write_bytes("café crème".encode("latin-1"))
    (folder / "written").mkdir()
    (folder / "written" / "model.gguf").write_bytes(b"GGUF")  # an export that exists already
    (folder / "written" / "page.html").write_text("<!DOCTYPE html>")  # a report that exists already
    from conftest import spm_extension_pair, spm_style_backend

    _, pieces = spm_style_backend(learned=50)  # a SentencePiece-style BPE plus a merge llama.cpp would not follow
    extended, _ = spm_style_backend(pieces, extra_merges=(spm_extension_pair(pieces, unique=False),))
    assert extended.get_vocab_size(with_added_tokens=True) <= 320  # fits the tiny model's embedding rows
    shutil.copytree(tiny_model_dir, folder / "spm-extended")
    extended.save(str(folder / "spm-extended" / "tokenizer.json"))
    # config.json claims what the weights do not hold: an untied head, a third layer
    for name, change in (("headless", {"tie_word_embeddings": False}), ("extra-layer", {"num_hidden_layers": 3})):
        shutil.copytree(tiny_model_dir, folder / name)
        config = json.loads((folder / name / "config.json").read_text())
        (folder / name / "config.json").write_text(json.dumps({**config, **change}))
    truncated = folder / "truncated"
    shutil.copytree(tiny_model_dir, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return folder


def test_the_table_covers_every_command():
    from tokenshift.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # noqa: SLF001
    assert commands <= set(CASES_PER_COMMAND), commands - set(CASES_PER_COMMAND)
    assert len(CASES) >= 40


@pytest.mark.parametrize("line, expected", CASES, ids=[line.split(" --out")[0][:60] for line, _ in CASES])
def test_bad_input_is_one_clear_line(line, expected, inputs, tiny_model_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    values = {"M": str(tiny_model_dir), "D": str(inputs), "T": str(inputs / "text.txt"), "O": str(tmp_path / "out")}
    argv = [part.format(**values) for part in line.split()]
    before = _tree(tiny_model_dir, inputs, tmp_path)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, (code, err)
    lines = [entry for entry in err.splitlines() if entry.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error:" in lines[0]
    assert expected.format(**values) in lines[0], lines[0]
    assert _tree(tiny_model_dir, inputs, tmp_path) == before, "the run left something behind or removed something"
    assert not os.path.exists(values["O"])
