import json

import pytest

from tokenshift.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_is_fast_to_import():
    import subprocess
    import sys

    probe = "import sys, tokenshift.cli; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_evaluate_json(capsys, tiny_model_dir, tmp_path):
    (tmp_path / "t.txt").write_text("le chat mange une pomme et le chat dort", encoding="utf-8")
    code, out, _ = run(capsys, "evaluate", str(tiny_model_dir), "--text", str(tmp_path / "t.txt"), "--json", "--device", "cpu")
    assert code == 0
    [result] = json.loads(out)
    assert result["bytes"] == 39 and result["bits_per_byte"] > 0


@pytest.mark.parametrize(
    "argv_tail, expected",
    [
        (["--text", "missing.txt"], "not found"),
        (["--text", "wiki-fx:test"], "did you mean wiki-fr"),
    ],
)
def test_errors_are_one_line(capsys, tiny_model_dir, argv_tail, expected):
    code, _, err = run(capsys, "evaluate", str(tiny_model_dir), *argv_tail)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("tokenshift: error:") and expected in err
    assert "Traceback" not in err


def test_non_utf8_and_oversized_tokenizer(capsys, tiny_model_dir, tmp_path):
    from conftest import train_byte_level_bpe

    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    code, _, err = run(capsys, "evaluate", str(tiny_model_dir), "--text", str(tmp_path / "latin1.txt"))
    assert code == 2 and "not UTF-8" in err and "iconv" in err
    train_byte_level_bpe(vocab_size=400).save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "ok.txt").write_text("ok")
    code, _, err = run(capsys, "evaluate", str(tiny_model_dir), "--tokenizer", str(tmp_path / "tokenizer.json"), "--text", str(tmp_path / "ok.txt"))
    assert code == 2 and "embedding rows" in err and "transplant" in err


def test_unknown_asset(capsys):
    code, _, err = run(capsys, "assets", "gemma3-27m")
    assert code == 2 and "did you mean gemma3-270m" in err


def test_measure_compare_and_train_commands(capsys, tiny_tokenizer, tmp_path):
    tiny_tokenizer.save(tmp_path / "tok")
    (tmp_path / "en.jsonl").write_text('{"text": "the cat sat"}\n{"text": "the dog 12345"}\n')
    (tmp_path / "fr.jsonl").write_text('{"text": "le chat est assis"}\n{"text": "le chien 12345"}\n')
    code, out, _ = run(capsys, "measure", str(tmp_path / "tok"), "--text", str(tmp_path / "fr.jsonl"), "--reference", str(tmp_path / "en.jsonl"), "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["measurements"][0]["documents"] == 2 and payload["premiums"][0]["premium"] > 0
    code, out, _ = run(capsys, "compare", str(tmp_path / "tok"), str(tmp_path / "tok"), "--json")
    assert code == 0 and json.loads(out)["shared_share_a"] == 1.0
    code, out, _ = run(capsys, "train", "--text", str(tmp_path / "en.jsonl"), str(tmp_path / "fr.jsonl"), "--vocab-size", "270",
                       "--out", str(tmp_path / "trained"), "--json")
    assert code == 0 and json.loads(out)["documents"] == 4 and (tmp_path / "trained" / "tokenizer.json").is_file()
    (tmp_path / "one.jsonl").write_text('{"text": "un"}\n')
    code, _, err = run(capsys, "measure", str(tmp_path / "tok"), "--text", str(tmp_path / "fr.jsonl"), "--reference", str(tmp_path / "one.jsonl"))
    assert code == 2 and "parallel text" in err


def test_public_api_resolves_every_name_and_import_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys, tokenshift; assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'; "
            "names = [n for n in tokenshift.__all__ if n != '__version__']; "
            "assert all(getattr(tokenshift, n) is not None for n in names); print(len(names))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(done.stdout) >= 25
    # the CLI's parser (every subcommand, its choices read from the registries) imports no torch either
    code = ("import sys; from tokenshift.cli import build_parser; build_parser(); "
            "assert 'torch' not in sys.modules, 'heavy import'; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "ok"


def test_registry_refuses_duplicates_and_suggests_close_names():
    from tokenshift.registry import Registry
    from tokenshift.transplant.methods import METHODS
    from tokenshift.heal.recipes import RECIPES

    table = Registry("widget", {"spanner": 1})
    with pytest.raises(ValueError, match="widget 'spanner' is registered twice"):
        table.add("spanner", 2)
    with pytest.raises(ValueError, match="unknown widget 'spaner'; did you mean spanner"):
        table.find("spaner")
    assert table.find("spanner") == 1 and table.names() == ["spanner"]
    for registry in (METHODS, RECIPES):  # the stage tables are registries: a second registration fails
        name = registry.names()[0]
        with pytest.raises(ValueError, match="registered twice"):
            registry.add(name, registry[name])
