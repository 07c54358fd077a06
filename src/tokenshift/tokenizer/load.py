"""Load a :class:`Tokenizer` from whatever a user names: an asset, a file, a folder or a model id."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .core import SpecialTokens, Tokenizer, roles_from_names

logger = logging.getLogger(__name__)


def _token_name(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def _json_file(path: Path, problem: Callable[[str], str]) -> Any:
    """``path`` parsed as JSON; a file that is not UTF-8 or not JSON raises ``problem(what is wrong)``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(problem("not UTF-8 text")) from None
    except json.JSONDecodeError as exc:
        raise ValueError(problem(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})")) from None


def _check_tokenizer_json(path: Path) -> None:
    """Say what is wrong with a file that is not a tokenizer.json before the Rust parser does, since
    for valid JSON of another shape it reports a syntax error at some column."""
    spec = _json_file(path, lambda what: f"{path} is not a tokenizer.json: {what}")
    if not isinstance(spec, dict) or not isinstance(spec.get("model"), dict):
        found = f"keys {', '.join(list(spec)[:6])}" if isinstance(spec, dict) else f"a {type(spec).__name__}"
        raise ValueError(f"{path} is JSON but not a Hugging Face tokenizer.json: it has no \"model\" table (found {found}); "
                         "pass the tokenizer.json that tokenizers or transformers saved")


# An id may lie past the number of tokens by this much (reserved ids left unused, as Llama-3 keeps
# 256 for special tokens) before the file counts as damaged: every stage sizes tables by the top id.
ID_SLACK = 4096


def check_vocabulary(backend: Any, source: str) -> None:
    """Refuse a vocabulary no stage can size from: empty, or with an id far past its number of tokens
    (one edited line, id 2^31-1, would make every per-id table 2 billion entries); warn about two
    tokens sharing one id (decoding that id gives only one of them)."""
    vocab = backend.get_vocab(with_added_tokens=True)
    if not vocab:
        raise ValueError(f"{source} has no tokens: an empty vocabulary encodes nothing; pass a trained tokenizer")
    top_token, top = max(vocab.items(), key=lambda item: item[1])
    if top + 1 > 2 * len(vocab) + ID_SLACK:
        raise ValueError(f"{source}: token {top_token!r} has id {top:,}, but the vocabulary holds {len(vocab):,} tokens; ids number "
                         "the vocabulary from 0, so this file is damaged or hand-edited: give that token its own id below "
                         f"{len(vocab) + ID_SLACK:,}")
    if len(set(vocab.values())) < len(vocab):
        by_id: dict[int, list[str]] = {}
        for token, idx in vocab.items():
            by_id.setdefault(idx, []).append(token)
        shared = [(idx, names) for idx, names in by_id.items() if len(names) > 1]
        idx, names = shared[0]
        logger.warning("%s: %d id(s) are shared by several tokens (id %d: %s); decoding such an id gives only one of them",
                       source, len(shared), idx, ", ".join(repr(n) for n in names[:3]))


# Text shapes that make a backtracking regex run without end: long runs of one kind of character, then
# one that does not fit. A linear pattern (every shipped tokenizer's) takes about a millisecond on all.
REGEX_PROBES = tuple(c * 512 + end for c in ("a", "A", " ", "1", ".", "é", "\n", "'") for end in ("", "!", "\x00"))


@contextmanager
def _stderr_silenced() -> Iterator[None]:
    """File descriptor 2 points at /dev/null for the block: a Rust panic prints there itself, before
    Python sees the exception, and this check answers it in its own line."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check_pre_tokenizer(backend: Any, source: str) -> None:
    """Run the normalizer and pre-tokenizer on :data:`REGEX_PROBES` once: a regex that backtracks
    catastrophically (onig gives up after its retry limit, and tokenizers panics) is refused here in one
    line, not deep inside a run with a Rust backtrace."""
    steps = [step for step in (backend.normalizer, backend.pre_tokenizer) if step is not None]
    if not steps:
        return
    with _stderr_silenced():
        for probe in REGEX_PROBES:
            try:
                text = probe
                for step in steps:
                    if hasattr(step, "normalize_str"):
                        text = step.normalize_str(text)
                    else:
                        step.pre_tokenize_str(text)
            except BaseException as exc:
                if type(exc).__name__ != "PanicException":  # pyo3's, for a Rust panic
                    raise
                raise ValueError(f"{source}: its {'normalizer' if hasattr(step, 'normalize_str') else 'pre-tokenizer'} stops on "
                                 f"a run of {len(probe)} characters {probe[0]!r} ({' '.join(str(exc).split())[:120]}); a regex in "
                                 "it backtracks without end: fix the pattern in the tokenizer.json") from None


def read_tokenizer_config(path: Path) -> dict[str, Any]:
    """``tokenizer_config.json`` as a table; one line naming the file otherwise."""
    fix = "fix it or remove it (tokenshift then guesses the special tokens from their names)"
    config = _json_file(path, lambda what: f"{path} is {what}; {fix}")
    if not isinstance(config, dict):
        raise ValueError(f"{path} is a JSON {type(config).__name__}, not a table of settings; {fix}")
    return config


def chat_template_of(config: dict[str, Any], source: Path) -> str | None:
    """The chat template of a tokenizer config: a string, or the ``default`` of a list of named
    templates (transformers' form); anything else is refused in one line."""
    template = config.get("chat_template")
    if template is None or isinstance(template, str):
        return template
    if isinstance(template, list) and all(isinstance(t, dict) and isinstance(t.get("template"), str) for t in template):
        named = {t.get("name"): t["template"] for t in template}
        return named.get("default", template[0]["template"] if template else None)
    raise ValueError(f"{source}: chat_template is a {type(template).__name__}, not a Jinja template (text); fix or remove it")


def check_chat_template(template: str, source: str) -> None:
    """Compile ``template`` in a sandboxed Jinja environment and render it on a sample conversation, as
    transformers and llama.cpp will: a template that cannot be parsed is refused in one line before it
    is written anywhere. A template that refuses the sample itself (``raise_exception``: a role it does
    not take) is fine."""
    from jinja2 import TemplateError, TemplateSyntaxError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Refused(Exception):
        pass

    def raise_exception(message: str) -> None:
        raise Refused(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    environment.filters["tojson"] = lambda value, **kwargs: json.dumps(value, ensure_ascii=False)
    environment.globals.update(raise_exception=raise_exception, strftime_now=lambda fmt: "")
    try:
        compiled = environment.from_string(template)
    except TemplateSyntaxError as exc:
        raise ValueError(f"{source}: its chat_template is not valid Jinja ({exc.message} at line {exc.lineno}); llama.cpp and "
                         "transformers would fail on the first chat: fix the template or remove it") from None
    messages = [{"role": "user", "content": "Bonjour"}, {"role": "assistant", "content": "Salut"}]
    try:
        compiled.render(messages=messages, add_generation_prompt=True, bos_token="", eos_token="")
    except Refused:
        return
    except (TemplateError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(f"{source}: its chat_template fails on a sample conversation ({type(exc).__name__}: {exc}); "
                         "fix the template or remove it") from None


def from_tokenizer_json(path: Path, *, name: str | None = None) -> Tokenizer:
    """A ``tokenizer.json``; roles come from a ``tokenizer_config.json`` beside it, else from token names."""
    from tokenizers import Tokenizer as Backend

    path = Path(path)
    _check_tokenizer_json(path)
    try:
        backend = Backend.from_file(str(path))
    except Exception as exc:  # the Rust side raises a bare Exception with its parse error
        raise ValueError(f"{path} is not a valid Hugging Face tokenizer.json ({exc})") from exc
    check_vocabulary(backend, str(path))
    check_pre_tokenizer(backend, str(path))
    config_path = path.parent / "tokenizer_config.json"
    config: dict[str, Any] = {}
    if config_path.is_file():
        config = read_tokenizer_config(config_path)
    vocab = backend.get_vocab(with_added_tokens=True)
    for role in ("bos", "eos", "pad", "unk"):
        named = _token_name(config.get(f"{role}_token"))
        if named is not None and named not in vocab:
            logger.warning("%s names %s_token %r, which is not in the vocabulary: the tokenizer has no %s", config_path, role, named,
                           role.upper())
    adds_bos = config.get("add_bos_token")
    special = roles_from_names(
        backend,
        bos=_token_name(config.get("bos_token")),
        eos=_token_name(config.get("eos_token")),
        pad=_token_name(config.get("pad_token")),
        unk=_token_name(config.get("unk_token")),
        adds_bos=adds_bos if isinstance(adds_bos, bool) else None,
        guess=not config_path.is_file(),
    )
    template = chat_template_of(config, config_path)
    jinja = path.parent / "chat_template.jinja"
    if template is None and jinja.is_file():
        try:
            template = jinja.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{jinja} is not UTF-8 text; fix it or remove it") from None
    default_name = path.parent.name if path.name == "tokenizer.json" else path.stem  # a folder's, or the file's own
    return Tokenizer(backend, name=name or default_name, special=special, source=str(path), chat_template=template)


def from_transformers(tokenizer: Any, *, name: str, source: str) -> Tokenizer:
    """Wrap a ``transformers`` fast tokenizer (its Rust backend does the work)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ValueError(f"{source} has only a slow (Python) tokenizer; tokenshift needs a fast one (a tokenizer.json)")
    check_vocabulary(backend, source)
    check_pre_tokenizer(backend, source)
    vocab = backend.get_vocab(with_added_tokens=True)

    def role(attr: str) -> int | None:
        token = getattr(tokenizer, attr, None)
        return vocab.get(str(token)) if token is not None else None

    bos = role("bos_token")
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    adds_bos = bool(probe) and bos is not None and probe[0] == bos
    base = roles_from_names(backend, adds_bos=adds_bos)
    special = SpecialTokens(
        bos=bos, eos=role("eos_token"), pad=role("pad_token"), unk=role("unk_token"), adds_bos=adds_bos,
        chat=base.chat, all_special=base.all_special,
    )
    template = getattr(tokenizer, "chat_template", None)
    return Tokenizer(backend, name=name, special=special, source=source, chat_template=template if isinstance(template, str) else None)


def with_gguf_pre_tokenizer(backend: Any, gguf: Path) -> Any:
    """``backend`` (a ``tokenizers.Tokenizer`` built from ``gguf``) with the pre-tokenizer llama.cpp runs
    for the file's ``tokenizer.ggml.pre``.

    transformers' GGUF reader gives every byte-level BPE vocabulary a plain ``ByteLevel`` (GPT-2
    regex) pre-tokenizer whatever the file names, so SmolLM2's ``smollm`` (every digit alone first)
    is lost: harmless for its own vocabulary, which has no multi-digit token, but an extension or a
    ``--like`` tokenizer built on it would learn multi-digit tokens the model never saw. SentencePiece
    vocabularies (``tokenizer.ggml.model = llama``) have no split and are returned unchanged.
    """
    from tokenizers import Tokenizer as Backend

    from .pretokenizers import gguf_pre_tokenization, gguf_tokenizer_kind, pre_tokenizer_json

    model, pre = gguf_tokenizer_kind(gguf)
    if model != "gpt2":
        return backend
    entry = gguf_pre_tokenization(model, pre)
    spec = json.loads(backend.to_str())
    spec["pre_tokenizer"] = pre_tokenizer_json(entry.name)
    if entry.ignore_merges:
        spec["model"]["ignore_merges"] = True
    return Backend.from_str(json.dumps(spec, ensure_ascii=False))


def save_gguf_tokenizer(gguf: Path, out: Path) -> int:
    """Write the GGUF's tokenizer (``tokenizer.json`` and its configs, as transformers saves them) into
    ``out`` with llama.cpp's pre-tokenizer for the file (see :func:`with_gguf_pre_tokenizer`); returns
    the number of ids."""
    from transformers import AutoTokenizer

    gguf = Path(gguf)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.save_pretrained(str(out))
    backend = with_gguf_pre_tokenizer(tokenizer.backend_tokenizer, gguf)
    backend.save(str(Path(out) / "tokenizer.json"))
    return len(tokenizer)


def from_gguf(path: Path, *, name: str | None = None) -> Tokenizer:
    """The vocabulary stored in a GGUF file, converted by ``transformers``' GGUF reader, with the
    pre-tokenizer llama.cpp runs for it (:func:`with_gguf_pre_tokenizer`)."""
    import tempfile

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="tokenshift-gguf-") as scratch:
        save_gguf_tokenizer(path, Path(scratch))
        tokenizer = from_tokenizer_json(Path(scratch) / "tokenizer.json", name=name or path.stem)
    return Tokenizer(tokenizer.backend, name=tokenizer.name, special=tokenizer.special, source=str(path),
                     chat_template=tokenizer.chat_template)


def load_tokenizer(spec: str | Path, *, trust_remote_code: bool = False) -> Tokenizer:
    """Load a tokenizer from an asset name (``tokenshift assets --list``), a ``tokenizer.json``, a folder,
    a tiktoken ranks file (``.tiktoken``/``.tiktoken.gz``), a ``.gguf`` file, or a Hugging Face model id."""
    from ..assets.registry import ASSETS, prepare_asset

    text = str(spec)
    asset = ASSETS.get(text)
    if asset is not None:
        if asset.kind not in ("tokenizer", "model"):
            raise ValueError(f"asset {text!r} is {asset.kind} text, not a tokenizer; pass a tokenizer or model asset")
        folder = prepare_asset(text)
        return from_tokenizer_json(folder / "tokenizer.json", name=text)
    path = Path(text).expanduser()
    if path.is_file():
        if path.name.endswith((".tiktoken", ".tiktoken.gz")):
            from .tiktoken_ranks import load_tiktoken_file

            name, backend = load_tiktoken_file(path)
            special = roles_from_names(backend, adds_bos=False)
            return Tokenizer(backend, name=name, special=special, source=str(path))
        if path.suffix == ".gguf":
            return from_gguf(path)
        if path.suffix == ".json":
            return from_tokenizer_json(path)
        raise ValueError(f"{path}: unknown tokenizer file type; expected tokenizer.json, .tiktoken(.gz) or .gguf")
    if path.is_dir():
        if (path / "tokenizer.json").is_file():
            return from_tokenizer_json(path / "tokenizer.json", name=path.name)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return from_gguf(ggufs[0])
    if path.exists():
        raise FileNotFoundError(f"{text}: no tokenizer found there (no tokenizer.json, .tiktoken or single .gguf file); check the path")
    from ..names import check_hub_id, in_hub_cache, looks_like_hub_id, looks_like_path, unknown_name

    files = ("tokenizer.json", "tokenizer_config.json")
    if looks_like_hub_id(text):
        check_hub_id(text, what="tokenizer", filenames=files)
    elif looks_like_path(text) or not in_hub_cache(text, files):  # an owner-less id may be used once downloaded
        raise unknown_name(text, what="tokenizer", kinds=("tokenizer", "model"))
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(text, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        known = ", ".join(sorted(n for n, a in ASSETS.items() if a.kind in ("tokenizer", "model")))
        raise ValueError(
            f"{text!r} is not a tokenizer asset, a local path, or a model id that could be loaded ({type(exc).__name__}); "
            f"known assets: {known}"
        ) from exc
    return from_transformers(tokenizer, name=text, source=text)
