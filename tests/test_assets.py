import json

import pytest

from tokenshift.assets import registry
from tokenshift.assets.registry import Asset, prepare_asset
from tokenshift.data import load_texts
from tokenshift.data.wiki import build_wiki_splits, split_of


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKENSHIFT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def register(monkeypatch, name, build, packages=()):
    monkeypatch.setitem(registry.ASSETS, name, Asset(name, "text", "test asset", packages, build))


def test_preparation_is_idempotent(home, monkeypatch):
    calls = []

    def build(out):
        calls.append(out)
        (out / "train.jsonl").write_text('{"text": "x"}\n')
        return {"rows": 1}

    register(monkeypatch, "toy", build)
    first = prepare_asset("toy")
    second = prepare_asset("toy")
    assert first == second == home / "text" / "toy"
    assert len(calls) == 1
    assert json.loads((first / "asset.json").read_text())["rows"] == 1


def test_killed_preparation_leaves_nothing_trusted(home, monkeypatch):
    def broken(out):
        (out / "train.jsonl").write_text("half")
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-build

    register(monkeypatch, "toy", broken)
    with pytest.raises(KeyboardInterrupt):
        prepare_asset("toy")
    assert not (home / "text" / "toy").exists()
    assert list((home / "text").iterdir()) == []

    def good(out):
        (out / "train.jsonl").write_text('{"text": "ok"}\n')
        return {}

    register(monkeypatch, "toy", good)
    assert (prepare_asset("toy") / "train.jsonl").read_text() == '{"text": "ok"}\n'


def test_missing_package_says_how_to_install(home, monkeypatch):
    register(monkeypatch, "toy", lambda out: {}, packages=("surely-not-installed-pkg==1.0",))
    with pytest.raises(FileNotFoundError, match="tokenshift assets --install toy"):
        prepare_asset("toy")


def test_unknown_asset_suggests_names(home):
    with pytest.raises(ValueError, match="did you mean smollm2-135m"):
        prepare_asset("smollm2-13m")


def test_wiki_split_rule_is_fixed_and_disjoint(tmp_path):
    articles = {f"Article {i}": {"title": f"Article {i}", "extract": f"Text number {i}."} for i in range(300)}
    articles["Empty"] = {"title": "Empty", "extract": ""}
    source = tmp_path / "summaries.json"
    source.write_text(json.dumps(articles), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    info = build_wiki_splits(source, out)
    assert info["skipped_empty"] == 1
    titles = {split: [json.loads(line)["title"] for line in (out / f"{split}.jsonl").read_text().splitlines()] for split in ("train", "validation", "test")}
    assert sum(len(t) for t in titles.values()) == 300
    for split, names in titles.items():
        assert all(split_of(name) == split for name in names)
    assert 0.8 < len(titles["train"]) / 300 < 0.97
    assert split_of("Julie Andrews") == split_of("Julie Andrews")


def test_text_specs_and_errors(tmp_path, home, monkeypatch):
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8"):
        load_texts(str(tmp_path / "latin1.txt"))
    (tmp_path / "bad.jsonl").write_text('{"title": "no text"}\n')
    with pytest.raises(ValueError, match='bad.jsonl:1 has no string "text"'):
        load_texts(str(tmp_path / "bad.jsonl"))
    with pytest.raises(FileNotFoundError, match="not found"):
        load_texts(str(tmp_path / "missing.txt"))
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(3):
        (docs / f"{i}.txt").write_text("x" * 10 * (i + 1))
    assert len(load_texts(str(docs)).documents) == 3
    assert load_texts(str(docs), max_bytes=35).documents == ["x" * 10, "x" * 20]
    register(monkeypatch, "toy", lambda out: (out / "test.jsonl").write_text('{"text": "t"}\n') and {})
    with pytest.raises(ValueError, match="unknown split 'tst'"):
        load_texts("toy:tst")
