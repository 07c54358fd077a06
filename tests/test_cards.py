"""Model cards: every train, transplant and heal folder holds a README.md the hub parses, with facts
carried from the base only where a source states them, and numbers only from the report."""

import json
import shutil
import sys
import types
from dataclasses import replace

import pytest
from huggingface_hub import ModelCard

from conftest import synthetic_corpus
from tokenshift.cards import BaseFacts, base_facts, card_for_heal, card_for_train, command_line, text_languages

pytestmark = pytest.mark.usefixtures("one_thread")

BASE_CARD = "---\nlicense: mit\nbase_model: some-org/tiny-base\nlanguage:\n- fr\n---\n\n# tiny base\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("cards-corpus") / "corpus.jsonl"
    path.write_text("\n".join(json.dumps({"text": " ".join(synthetic_corpus(6, seed=i))}) for i in range(30)) + "\n")
    return path


@pytest.fixture(scope="module")
def carded_model_dir(tmp_path_factory, tiny_model_dir):
    """The tiny model, with a card that states its license, hub id and language."""
    folder = tmp_path_factory.mktemp("carded") / "base"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "README.md").write_text(BASE_CARD)
    return folder


def test_base_facts_come_only_from_sources_that_state_them(tmp_path, carded_model_dir):
    assert base_facts("smollm2-135m").hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert base_facts("smollm2-135m").license == "apache-2.0"
    assert base_facts("cl100k").license is None  # the registry records none: none is claimed
    assert base_facts("nobody-here/no-such-model-xyz") == BaseFacts(hub_id="nobody-here/no-such-model-xyz")
    assert base_facts(str(carded_model_dir)).license == "mit" and base_facts(str(carded_model_dir)).languages == ("fr",)
    assert base_facts(str(tmp_path)).license is None
    assert text_languages(["wiki-fr:train", "wiki-en", "corpus.jsonl", "wiki-fr:validation"]) == ("fr", "en")


def test_train_folder_has_a_card_with_the_command_and_the_measured_changes(tiny_tokenizer, tmp_path, monkeypatch):
    from tokenshift.train import TrainConfig, train_tokenizer

    tiny_tokenizer.save(tmp_path / "base")
    (tmp_path / "base" / "README.md").write_text(BASE_CARD)
    (tmp_path / "new.txt").write_text("\n".join(synthetic_corpus(200, seed=4)), encoding="utf-8")
    argv = ["tokenshift", "train", str(tmp_path / "new.txt"), "--extend", str(tmp_path / "base"), "--out", str(tmp_path / "extended")]
    monkeypatch.setattr(sys, "argv", argv)
    _, report = train_tokenizer([str(tmp_path / "new.txt")], TrainConfig(vocab_size=tiny_tokenizer.vocab_size + 30,
                                extend=str(tmp_path / "base"), protect=()), out=tmp_path / "extended")
    card = ModelCard.load(tmp_path / "extended" / "README.md")
    assert card.data.library_name == "tokenizers"
    assert card.data.base_model == "some-org/tiny-base" and card.data.license == "mit" and card.data.language == ["fr"]
    assert "vocabulary-extension" in card.data.tags and "tokenshift" in card.data.tags
    assert " ".join(argv) in card.text
    [share] = report.token_changes.values()
    assert f"{share:.2%}" in card.text and f"{report.vocab_size:,} ids" in card.text


def test_a_tokenizer_trained_from_scratch_claims_no_base_or_license(corpus, tmp_path):
    from tokenshift.train import TrainConfig, train_tokenizer

    _, report = train_tokenizer([str(corpus)], TrainConfig(vocab_size=300), out=tmp_path / "tok")
    card = ModelCard.load(tmp_path / "tok" / "README.md")
    assert card.data.library_name == "tokenizers" and "tokenizer-training" in card.data.tags
    assert card.data.base_model is None and card.data.license is None
    assert "`tokenshift.train.train_tokenizer(...)` from Python" in card.text and f"{report.documents:,} documents" in card.text
    assert card_for_train(report, name="x", command="tokenshift train corpus --vocab-size 300").text.count("--vocab-size 300") == 1


def test_transplant_of_a_base_without_a_license_gets_no_license(tiny_model_dir, tmp_path):
    from test_transplant import other_tokenizer
    from tokenshift.transplant import transplant

    _, _, report = transplant(str(tiny_model_dir), str(other_tokenizer(tmp_path / "newtok")), out=tmp_path / "out")
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.library_name == "transformers" and "tokenizer-transplant" in card.data.tags
    assert card.data.license is None and card.data.base_model is None
    assert "license" not in card.content.split("---")[1] and "base_model" not in card.content.split("---")[1]
    assert f"`{report.method}`" in card.text and "`tokenshift.transplant.transplant(...)`" in card.text
    assert all(f"{n:,} {kind}" in card.text for kind, n in report.counts.items())


def test_transplant_then_heal_carry_the_base_and_report_bits_per_byte(carded_model_dir, corpus, tmp_path, monkeypatch):
    from test_transplant import other_tokenizer
    from tokenshift.heal import HealConfig, Stage, heal
    from tokenshift.transplant import transplant

    transplant(str(carded_model_dir), str(other_tokenizer(tmp_path / "newtok")), out=tmp_path / "student")
    card = ModelCard.load(tmp_path / "student" / "README.md")
    assert card.data.base_model == "some-org/tiny-base" and card.data.license == "mit" and card.data.language == ["fr"]
    assert card.data.to_dict().get("base_model_relation") is None

    argv = ["tokenshift", "heal", str(tmp_path / "student"), "--text", str(corpus), "--steps", "2", "--out", str(tmp_path / "healed")]
    monkeypatch.setattr(sys, "argv", argv)
    config = HealConfig(text=(str(corpus),), steps=2, batch_size=2, seq_len=16, eval_bytes=2000, mixed_precision="no",
                        stages=(Stage("all", lr=1e-3, warmup=0),))
    _, _, report = heal(str(tmp_path / "student"), config=config, out=tmp_path / "healed")
    card = ModelCard.load(tmp_path / "healed" / "README.md")
    assert card.data.library_name == "transformers" and "heal" in card.data.tags
    assert card.data.base_model == "some-org/tiny-base" and card.data.license == "mit"
    assert card.data.to_dict()["base_model_relation"] == "finetune"
    assert " ".join(argv) in card.text
    [(text, start)] = report.curve[0]["bits_per_byte"].items()
    assert f"| {text} | {start:.4f} | {report.curve[-1]['bits_per_byte'][text]:.4f} |" in card.text
    assert f"`{report.kept['state']}`" in card.text
    phases = [{"phase": "start", "bits_per_byte": {text: 3.5}}, {"phase": "fit-head", "bits_per_byte": {text: 2.25}}]
    rows = replace(report, recipe="rows", objective={"name": "rows", "phases": ["distill-rows", "fit-head"]}, stages=[], curve=phases,
                   kept={"state": "fit-head", "reason": "best", "bits_per_byte": {text: 2.25}})
    assert f"| {text} | 3.5000 | 2.2500 | 2.2500 |" in card_for_heal(rows, name="healed").text


def test_the_command_is_the_cli_line_only_when_the_process_is_the_cli(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/tokenshift", "heal", "my model", "--out", "x"])
    assert command_line() == "tokenshift heal 'my model' --out x"
    monkeypatch.setitem(sys.modules, "__main__", types.SimpleNamespace(__spec__=types.SimpleNamespace(name="tokenshift.cli")))
    monkeypatch.setattr(sys, "argv", ["/src/tokenshift/cli.py", "heal", "m"])
    assert command_line() == "python -m tokenshift.cli heal m"
    monkeypatch.setitem(sys.modules, "__main__", types.SimpleNamespace(__spec__=None))
    monkeypatch.setattr(sys, "argv", ["script.py"])
    assert command_line() is None
