"""The documentation cannot rot: every ``tokenshift …`` command in README.md and docs/ parses with the real
argument parser; the commands of the README's recipe and of the tutorial run, in order, on the tiny models
(those that take minutes by design, heal and adapt, are parsed only); README's links reach a page and an
anchor of the built site; and (slow) the site opens in headless Chromium with its tables laid out and
its images loaded, and the browser logs no warning or error.

Commands are read from fenced code blocks: a line continued with ``\\`` is joined, ``#`` comments are
dropped, ``[--option value]`` brackets (optional parts) are opened, and a line that runs the CLI through
``python -m tokenshift.cli`` (``accelerate launch``) counts too."""

from __future__ import annotations

import ast
import contextlib
import functools
import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import synthetic_corpus

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
TUTORIAL = DOCS / "tutorial.md"
DOC_FILES = [README, *sorted(DOCS.rglob("*.md"))]

# Subcommands that finish in seconds on the tiny models; heal and adapt run on a clock (--minutes) by design.
CHEAP = {"measure", "compare", "train", "transplant", "evaluate", "export"}


def code_blocks(path: Path) -> list[tuple[str, str, int]]:
    """(language, text, first line number) of each fenced block of a Markdown file."""
    blocks, lines = [], path.read_text(encoding="utf-8").split("\n")
    fence, language, start, body = None, "", 0, []
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if fence is None and stripped.startswith("```"):
            fence, language, start, body = "```", stripped[3:].strip(), number + 1, []
        elif fence is not None and stripped.startswith(fence):
            blocks.append((language, "\n".join(body), start))
            fence = None
        elif fence is not None:
            body.append(line)
    assert fence is None, f"{path}: a code block opened on line {start - 1} is never closed"
    return blocks


def cli_argv(line: str) -> list[str] | None:
    """The arguments after ``tokenshift`` (or ``-m tokenshift.cli``) in a shell line, else None."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError as exc:
        raise AssertionError(f"not a shell line ({exc}): {line}") from None
    if words[:1] == ["tokenshift"]:
        argv = words[1:]
    elif "tokenshift.cli" in words and words[words.index("tokenshift.cli") - 1] == "-m":
        argv = words[words.index("tokenshift.cli") + 1:]
    else:
        return None
    return [word.removeprefix("[").removesuffix("]") for word in argv if word not in ("[", "]")]


def commands(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, the line, its argv) of every CLI command in the shell blocks of ``path``."""
    found = []
    for language, text, start in code_blocks(path):
        if language not in ("", "bash", "sh", "shell", "console"):
            continue
        joined, first = "", None
        for offset, line in enumerate(text.split("\n")):
            first = start + offset if first is None else first
            if line.rstrip().endswith("\\"):
                joined += line.rstrip()[:-1] + " "
                continue
            joined += line
            argv = cli_argv(joined.removeprefix("$ "))
            if argv is not None:
                found.append((first, joined.strip(), argv))
            joined, first = "", None
    return found


ALL_COMMANDS = [(path, number, line, argv) for path in DOC_FILES for number, line, argv in commands(path)]


def test_the_readme_and_the_tutorial_hold_commands():
    names = {path.name for path, *_ in ALL_COMMANDS}
    assert {"README.md", "tutorial.md"} <= names
    assert len(ALL_COMMANDS) >= 40, len(ALL_COMMANDS)


@pytest.mark.parametrize("path, number, line, argv", ALL_COMMANDS,
                         ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _, _ in ALL_COMMANDS])
def test_each_command_parses_with_the_real_parser(path, number, line, argv, tmp_path, monkeypatch, capsys):
    from tokenshift.cli import build_parser

    monkeypatch.chdir(tmp_path)  # --report pages are checked where they would be written: a fresh folder
    try:
        args = build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{path.relative_to(ROOT)}:{number}: {line}\n{capsys.readouterr().err}")
    assert callable(args.func)


def python_blocks(path: Path) -> list[tuple[str, int]]:
    return [(text, start) for language, text, start in code_blocks(path) if language in ("python", "py")]


@pytest.mark.parametrize("path", [p for p in DOC_FILES if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_compile_and_import_real_names(path):
    import importlib

    for text, start in python_blocks(path):
        tree = ast.parse(text, filename=f"{path.name}:{start}")
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tokenshift"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{path.name}:{start}: {node.module} has no {alias.name}"


# --- the recipe and the tutorial, run on the tiny models -------------------------------------------------

@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory, tiny_backend, tiny_model_dir):
    """What each asset or user path in the README's recipe and the tutorial stands for here."""
    from tokenshift.tokenizer.core import Tokenizer, roles_from_names

    root = tmp_path_factory.mktemp("stand-ins")
    tokenizer = root / "tiny-tok"
    Tokenizer(tiny_backend, name="tiny-bpe", special=roles_from_names(tiny_backend, adds_bos=False)).save(tokenizer)
    docs = root / "my-docs"
    docs.mkdir()
    corpus = synthetic_corpus(lines=300, seed=3)
    (docs / "train.jsonl").write_text("".join(json.dumps({"text": " ".join(corpus[i:i + 6])}) + "\n"
                                              for i in range(0, 240, 6)), encoding="utf-8")
    test = root / "my-docs-test"
    test.mkdir()
    (test / "test.jsonl").write_text("".join(json.dumps({"text": line}) + "\n" for line in corpus[240:]), encoding="utf-8")
    english = root / "english.jsonl"
    english.write_text("".join(json.dumps({"text": line}) + "\n" for line in synthetic_corpus(lines=60, seed=4)), encoding="utf-8")
    return {"smollm2-135m": str(tiny_model_dir), "./my-model": str(tiny_model_dir), "smollm2": str(tokenizer),
            "my-pages/": str(docs), "my-docs/": str(docs), "my-pages-test.jsonl": str(test / "test.jsonl"),
            "my-docs-test/": str(test), "wiki-en:test": str(english), "wiki-en:train": str(english)}


def run_in_order(path: Path, stand_ins: dict[str, str], tmp_path: Path, monkeypatch, capsys) -> list[str]:
    """Run the cheap CLI commands of ``path`` in order in ``tmp_path``; a skipped command's output folder
    stands for its input model, so the commands after it still run. Returns the commands run."""
    from tokenshift.cli import main

    monkeypatch.chdir(tmp_path)
    aliases = dict(stand_ins)
    ran = []
    for number, line, argv in commands(path):
        argv = [aliases.get(word, word) for word in argv]
        if argv[0] not in CHEAP:
            if argv[0] in ("heal", "adapt") and "--out" in argv:
                aliases[argv[argv.index("--out") + 1]] = argv[1]
            continue
        if argv[0] == "train" and "--extend" in argv and "--protect" not in argv:
            argv += ["--protect", stand_ins["wiki-en:train"]]  # the default protects the real wiki-en:train
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, f"{path.name}:{number}: {line}\n-> tokenshift {shlex.join(argv)}\n{out}\n{err}"
        ran.append(argv[0])
    return ran


@pytest.mark.usefixtures("one_thread")
def test_the_tutorial_runs_on_the_tiny_models(stand_ins, tmp_path, monkeypatch, capsys):
    ran = run_in_order(TUTORIAL, stand_ins, tmp_path, monkeypatch, capsys)
    assert {"measure", "evaluate", "train", "transplant", "export"} <= set(ran), ran
    assert (tmp_path / "my-model" / "transplant.json").is_file() and (tmp_path / "my-model.gguf").is_file()


@pytest.mark.usefixtures("one_thread")
def test_the_readme_recipe_runs_on_the_tiny_models(stand_ins, tmp_path, monkeypatch, capsys):
    ran = run_in_order(README, stand_ins, tmp_path, monkeypatch, capsys)
    assert {"train", "transplant", "evaluate", "export"} <= set(ran), ran


# --- links -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site built as `make docs` builds it (--strict: a broken link or anchor inside docs/ fails here)."""
    pytest.importorskip("mkdocs", reason="the docs tools are not installed: `make docs` installs .[docs]")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return out


def test_readme_links_reach_a_page_and_an_anchor_of_the_site(site):
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text(encoding="utf-8"))
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert len(local) >= 20
    for link in local:
        target, _, anchor = link.partition("#")
        assert (ROOT / target).is_file(), f"README links to {target}, which does not exist"
        if target.startswith("docs/") and anchor:
            page = site / Path(target).relative_to("docs").with_suffix(".html")
            assert f'id="{anchor}"' in page.read_text(encoding="utf-8"), f"README links to {link}: no such anchor"


# --- the built site in a real browser ----------------------------------------------------------------------

@contextlib.contextmanager
def serving(folder: Path):
    """The folder over HTTP on 127.0.0.1 (the site's search index is fetched, which file:// refuses)."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


PAGES = {"index.html": "tokenshift", "tutorial.html": "Tutorial", "benchmarks/adapt.html": "adapt"}


@pytest.mark.slow
@pytest.mark.parametrize("page", list(PAGES))
def test_the_site_renders_its_tables_and_images_in_chromium(site, page, tmp_path):
    from test_report_browser import CHROMIUM, SKIP_REASON, Chromium

    if CHROMIUM is None:
        pytest.skip(SKIP_REASON)
    browser = Chromium(tmp_path / "profile")
    try:
        with serving(site) as address:
            browser.open(f"{address}/{page}")
            problems = browser.problems()
            title = browser.evaluate("document.title")
            tables = browser.evaluate("[...document.querySelectorAll('article table')].map(t => { const r = t.getBoundingClientRect(); "
                                      "return {width: r.width, height: r.height, rows: t.rows.length}; })")
            images = browser.evaluate("[...document.querySelectorAll('article img')].map(i => "
                                      "({src: i.src, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))")
            (tmp_path / "page.png").write_bytes(browser.screenshot())
    finally:
        browser.close()
    print(f"screenshot: {tmp_path / 'page.png'}")
    assert problems == [], problems
    assert PAGES[page] in title, title
    assert tables, f"{page}: no table"
    for table in tables:
        assert table["rows"] >= 2 and table["width"] > 100 and table["height"] > 20, (page, table)
    if page == "index.html":
        assert images, "the home page shows the pipeline"
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, (page, image)

