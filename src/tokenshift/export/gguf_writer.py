"""``tokenshift export``: write a model and its tokenizer as one GGUF file that llama.cpp runs.

    model (asset, folder, hub id)  ──load (fp32, CPU)──▶  tokenizer.* keys (gguf_tokenizer, pre)
                                                          {arch}.* keys, tensors (architectures, dtypes)
                                   ──gguf.GGUFWriter──▶   OUT's folder/.tokenshift-tmp-OUT.gguf-<host>-<pid>-<8 random>  ──rename──▶  OUT.gguf

Everything that can be refused (the output name, the dtype, a ``--pre`` name, the model name, its
architecture) is checked before the weights load; a killed run leaves only a temporary that the next
run beside it removes (:func:`tokenshift.storage.clean_stale_temporaries`).
"""

from __future__ import annotations

import logging
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..modeling.load import LoadedModel
from ..signals import kill_point
from ..storage import check_output_folder, clean_stale_temporaries, temporary_prefix
from .architectures import ArchSpec, check_architecture, gguf_tensors, write_hparams
from .dtypes import GgufDType, bytes_per_weight, encode, get_dtype
from .gguf_tokenizer import build_vocabulary, check_exportable, write_tokenizer
from .pre import check_pre_name, declared_pre

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_gguf` wrote. ``bytes``: the file's size; ``parameters``: weights written
    (a tied output matrix once); ``token_types`` / ``tensor_types``: rows per token type, tensors per ggml type."""

    model: str
    out: str
    architecture: str
    dtype: str
    pre: str
    pre_reason: str
    pre_matches: list[str]
    tokenizer_ids: int
    embedding_rows: int
    token_types: dict[str, int]
    tied: bool
    tensors: int
    tensor_types: dict[str, int]
    parameters: int
    bytes: int
    seconds: float
    warnings: list[str]
    versions: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_output_file(out: str | Path) -> Path:
    """``out`` expanded, after checking it ends in ``.gguf``, does not exist, and its folder can be written."""
    out = Path(out).expanduser()
    if out.suffix != ".gguf":
        raise ValueError(f"--gguf {out}: name the output file NAME.gguf (llama.cpp and transformers look for the suffix)")
    if out.exists() or out.is_symlink():
        raise FileExistsError(f"--gguf {out} already exists; choose another name or remove it")
    check_output_folder(out, option="--gguf")
    return out


@contextmanager
def atomic_file(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final`` (named as :mod:`tokenshift.storage` names temporaries);
    rename it to ``final`` when the body succeeds, remove it when the body raises (Ctrl-C included)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(final.parent)
    handle, name = tempfile.mkstemp(prefix=temporary_prefix(final.name), dir=final.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        if final.exists():  # appeared while we wrote: never overwrite what someone else made
            raise FileExistsError(f"--gguf {final} appeared while the export ran; nothing was overwritten")
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _versions() -> dict[str, str]:
    import importlib.metadata

    from .. import __version__

    found = {"tokenshift": __version__, "python": platform.python_version()}
    for package in ("gguf", "torch", "transformers", "tokenizers"):
        found[package] = importlib.metadata.version(package)
    return found


def _load(model: str | LoadedModel, trust_remote_code: bool) -> tuple[LoadedModel, ArchSpec, str | None]:
    """The model (fp32, CPU), its architecture, and the ``tokenizer.ggml.pre`` its source declared.
    For a name, the architecture is checked from config.json before the weights load."""
    if isinstance(model, LoadedModel):
        return model, check_architecture(model.model.config, model.name), None
    from transformers import AutoConfig

    from ..modeling import load_model
    from ..modeling.load import model_location

    location = model_location(model)
    arch = check_architecture(AutoConfig.from_pretrained(location, trust_remote_code=trust_remote_code), model)
    loaded = load_model(model, dtype="float32", device="cpu", trust_remote_code=trust_remote_code)
    return loaded, arch, declared_pre(location) if Path(location).is_dir() else None


def _tokenizer_warnings(loaded: LoadedModel, pre: str) -> list[str]:
    """What llama.cpp will do differently from a byte-level tokenizer that the pre-tokenizer check cannot
    see (a SentencePiece-style one is checked whole when its vocabulary is built)."""
    import json

    from ..tokenizer.pretokenizers import get_pre_tokenization

    spec = json.loads(loaded.tokenizer.backend.to_str())
    warnings: list[str] = []
    if loaded.tokenizer.kind != "byte-level":
        return warnings
    if spec.get("normalizer"):
        warnings.append(f"the tokenizer normalizes text first ({spec['normalizer'].get('type')}); llama.cpp does not, "
                        "so text that normalization changes is tokenized differently there")
    if bool(spec["model"].get("ignore_merges")) != get_pre_tokenization(pre).ignore_merges:
        warnings.append(f"the tokenizer has ignore_merges={bool(spec['model'].get('ignore_merges'))} but llama.cpp's {pre!r} "
                        "does the opposite: a piece that is a whole token may be merged differently")
    return warnings


def export_gguf(
    model: str | LoadedModel,
    out: str | Path,
    *,
    dtype: GgufDType = "f32",
    pre: str | None = None,
    trust_remote_code: bool = False,
) -> ExportReport:
    """Write ``model`` (asset name, model folder, hub id, or an already loaded model) with its tokenizer
    to the new GGUF file ``out``; return what was written.

    ``dtype``: format of the weight matrices (norms and biases stay f32). ``pre``: force this
    ``tokenizer.ggml.pre`` instead of the checked choice (see :mod:`tokenshift.export.pre`).
    """
    import gguf

    started = time.perf_counter()
    spec = get_dtype(dtype)
    if pre is not None:
        check_pre_name(pre)  # an unknown or unfit name fails before anything loads
    out = check_output_file(out)
    loaded, arch, declared = _load(model, trust_remote_code)
    choice = check_exportable(loaded.tokenizer).pre(loaded.tokenizer, declared, pre)
    extra = _tokenizer_warnings(loaded, choice.name)
    for warning in extra:
        logger.warning(warning)
    warnings = [*choice.warnings, *extra]
    rows = loaded.embedding_rows
    vocabulary = build_vocabulary(loaded.tokenizer, rows)
    config = loaded.model.config
    tied = bool(getattr(config, "tie_word_embeddings", False))
    tensors = list(gguf_tensors(loaded.model, arch, tied=tied))
    parameters = sum(t.numel() for _, t in tensors)
    check_output_folder(out, need_bytes=int(parameters * bytes_per_weight(spec)), option="--gguf")

    types: Counter[str] = Counter()
    with atomic_file(out) as tmp:
        writer = gguf.GGUFWriter(tmp, arch.gguf_arch)
        try:
            writer.add_name(Path(loaded.name).name or loaded.name)
            write_hparams(writer, config, arch, rows=rows)
            writer.add_file_type(int(gguf.LlamaFileType[spec.file_type]))
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
            write_tokenizer(writer, loaded.tokenizer, vocabulary, pre=choice.name)
            for name, tensor in tensors:
                data, kind = encode(name, tensor.numpy(), spec)
                types[kind] += 1
                writer.add_tensor(name, data, raw_dtype=gguf.GGMLQuantizationType[kind])
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_tensors_to_file(progress=False)
        finally:
            writer.close()
        kill_point("export:written")
    if types.get("F16") and spec.quantization not in ("F16", "F32"):
        warnings.append(f"{types['F16']} matrices kept in f16: their rows are not whole {spec.name} blocks")
    return ExportReport(
        model=loaded.name, out=str(out.resolve()), architecture=arch.gguf_arch, dtype=spec.name, pre=choice.name,
        pre_reason=choice.reason, pre_matches=list(choice.matches), tokenizer_ids=loaded.tokenizer.vocab_size,
        embedding_rows=rows, token_types=vocabulary.type_counts(), tied=tied, tensors=len(tensors),
        tensor_types=dict(sorted(types.items())), parameters=parameters, bytes=out.stat().st_size,
        seconds=round(time.perf_counter() - started, 3), warnings=warnings, versions=_versions(),
    )
