"""Text sets: what ``--text`` names. An asset split (``wiki-fr:test``), a file, a folder or a glob."""

from __future__ import annotations

import glob
import json
import logging
from dataclasses import dataclass
from collections.abc import Callable, Iterator
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextSet:
    """Documents scored or measured independently of one another."""

    name: str
    documents: list[str]

    @property
    def n_bytes(self) -> int:
        """Total UTF-8 bytes over all documents."""
        return sum(len(doc.encode("utf-8")) for doc in self.documents)

    def limit_bytes(self, max_bytes: int) -> TextSet:
        """The leading documents whose bytes add up to at most ``max_bytes`` (at least one document)."""
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive number of bytes, got {max_bytes}")
        kept: list[str] = []
        total = 0
        for doc in self.documents:
            size = len(doc.encode("utf-8"))
            if kept and total + size > max_bytes:
                break
            kept.append(doc)
            total += size
        return TextSet(self.name, kept)


def _decoded(data: bytes, path: Path, where: str = "") -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}{where} is not UTF-8 text (invalid byte at offset {exc.start}); convert it first, "
                         "e.g. `iconv -f latin1 -t utf-8`") from None
    return text


def _checked_text(text: str, path: Path, where: str) -> str:
    """``text`` unless it holds a lone surrogate (JSON's ``\\ud800`` escapes decode to one), which no
    tokenizer can encode as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{path}{where}: the text holds a lone surrogate (U+{ord(text[exc.start]):04X} at character "
                         f"{exc.start}), which is not a character; fix the escape in the file") from None
    return text


def read_documents(path: Path, *, max_bytes: int | None = None) -> list[str]:
    """``.jsonl``: one document per line, from its ``"text"`` field; any other file: one document.

    With ``max_bytes``, reading stops once the documents read hold that many bytes: a file is never
    read further than the caller keeps (a plain file is read to ``max_bytes``, cut at a character)."""
    path = Path(path)
    if path.suffix != ".jsonl":
        if max_bytes is None:
            return [_decoded(path.read_bytes(), path)]
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 4)
        if len(data) > max_bytes:  # cut at the last whole character within max_bytes
            data = data[:max_bytes]
            while data and (data[-1] & 0xC0) == 0x80:
                data = data[:-1]
            if data and data[-1] >= 0xC0:
                data = data[:-1]
        return [_decoded(data, path)]
    documents = []
    total = 0
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            line = _decoded(raw, path, f":{number}")
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number} is not valid JSON ({exc.msg}); each .jsonl line must be an object with a \"text\" field") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise ValueError(f"{path}:{number} has no string \"text\" field; each .jsonl line must be an object with one")
            documents.append(_checked_text(row["text"], path, f":{number}"))
            total += len(row["text"].encode("utf-8"))
            if max_bytes is not None and total >= max_bytes:
                break
    return documents


def _asset_texts_check(name: str, split: str | None) -> None:
    from ..assets.registry import ASSETS
    from .wiki import SPLITS

    if ASSETS[name].kind != "text":
        raise ValueError(f"asset {name!r} is a {ASSETS[name].kind}, not text; text assets: "
                         + ", ".join(n for n, a in ASSETS.items() if a.kind == "text"))
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r} in '{name}:{split}'; choose one of {', '.join(SPLITS)}")


def _asset_texts(name: str, split: str | None, max_bytes: int | None = None) -> TextSet:
    from ..assets.registry import prepare_asset
    from .wiki import SPLITS

    _asset_texts_check(name, split)
    folder = prepare_asset(name)
    return TextSet(f"{name}:{split}" if split else name,
                   _read_until([folder / f"{part}.jsonl" for part in ([split] if split else list(SPLITS))], max_bytes))


def _read_until(files: list[Path], max_bytes: int | None) -> list[str]:
    """The documents of ``files`` in order, reading no further than ``max_bytes`` of them need."""
    documents: list[str] = []
    left = max_bytes
    for file in files:
        if left is not None and any(documents) and file.suffix != ".jsonl" and file.stat().st_size > left:
            break  # a later whole-file document that passes the limit is dropped, as limit_bytes would
        found = read_documents(file, max_bytes=left)
        documents.extend(found)
        if left is not None:
            left -= sum(len(doc.encode("utf-8")) for doc in found)
            if left <= 0:
                break
    return documents


def _spec_files(spec: str) -> list[Path]:
    path = Path(spec).expanduser()
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
    elif any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
    else:
        from ..assets.registry import unknown_asset_error

        if "/" not in spec and "." not in spec:
            raise unknown_asset_error(spec.partition(":")[0])
        raise FileNotFoundError(f"text {spec!r} not found: not a file, folder, glob or text asset (e.g. wiki-fr:test)")
    if not files:
        raise FileNotFoundError(f"text {spec!r} matched no files")
    return files


def _sources(specs: list[str]) -> list[Path]:
    from ..assets.registry import ASSETS, prepare_asset
    from .wiki import SPLITS

    sources: list[Path] = []
    for spec in specs:
        name, _, split = spec.partition(":")
        if name in ASSETS:
            _asset_texts_check(name, split or None)
            folder = prepare_asset(name)
            sources.extend(folder / f"{part}.jsonl" for part in ([split] if split else SPLITS))
        else:
            sources.extend(_spec_files(spec))
    return sources


def count_documents(specs: list[str]) -> int:
    """How many documents ``iter_documents`` will yield at most (lines of .jsonl files, one per other
    file), counted without parsing, for progress bars."""
    total = 0
    for source in _sources(specs):
        if source.suffix == ".jsonl":
            with source.open("rb") as handle:
                total += sum(1 for line in handle if line.strip())
        else:
            total += 1
    return total


def iter_documents(specs: list[str], *, on_spec: Callable[[int], None] | None = None) -> Iterator[str]:
    """Stream the non-empty documents of several text specs, one file at a time (for corpora larger
    than memory). Every spec is resolved before the first document is yielded, so a bad one fails fast.
    ``on_spec(i)`` is called before the first document of ``specs[i]`` is yielded."""
    sources = [(index, source) for index, spec in enumerate(specs) for source in _sources([spec])]
    current = None
    for index, source in sources:
        for doc in read_documents(source):
            if doc:
                if on_spec is not None and index != current:
                    on_spec(index)
                    current = index
                yield doc


# Bytes of memory per byte of text read whole: the file's bytes, the decoded str (up to 4 bytes a
# character), and the copies the tokenizers' encoders and trainers make.
TEXT_MEMORY_FACTOR = 4


def _check_text_memory(spec: str, files: list[Path]) -> None:
    """Refuse, before reading, text files that cannot be read whole into the memory available."""
    from ..weights.memory import MemoryEstimate, check_memory

    size = sum(file.stat().st_size for file in files)
    if size < 1 << 30:  # under 1 GB: always read
        return
    from ..weights.memory import available_bytes

    estimate = MemoryEstimate(f"reading {spec} ({size / 1e9:.1f} GB) whole", {"the text decoded and encoded": TEXT_MEMORY_FACTOR * size},
                              available_bytes())
    check_memory(estimate, fix="pass --max-bytes N to read only the first N bytes")


def load_texts(spec: str, *, max_bytes: int | None = None) -> TextSet:
    """Resolve ``spec``: ``ASSET[:SPLIT]`` (``wiki-fr:test``), a file, a folder (its files, sorted) or a glob.

    Empty documents are dropped. ``max_bytes`` keeps the leading documents up to that many bytes (a
    first document longer than that is cut at a character), and nothing past them is read.
    """
    from ..assets.registry import ASSETS

    name, _, split = spec.partition(":")
    if name in ASSETS:
        texts = _asset_texts(name, split or None, max_bytes)
    else:
        files = _spec_files(spec)
        if max_bytes is None:
            _check_text_memory(spec, files)
        texts = TextSet(spec, _read_until(files, max_bytes))
    kept = [doc for doc in texts.documents if doc]
    if len(kept) < len(texts.documents):
        logger.info("dropped %d empty documents from %s", len(texts.documents) - len(kept), spec)
    if not kept:
        raise ValueError(f"text {spec!r} has no non-empty document")
    texts = TextSet(texts.name, kept)
    return texts.limit_bytes(max_bytes) if max_bytes is not None else texts
