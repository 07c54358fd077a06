"""``tokenshift export``: write a model and its tokenizer as one GGUF file that llama.cpp runs.

    model (asset, folder, hub id)  ──headers, config──▶   tokenizer.* keys (gguf_tokenizer, pre)
                                                          {arch}.* keys, tensor infos (architectures, dtypes)
                                   ──one tensor at a time: read, float32, transform, encode, write──▶
                                   OUT's folder/.tokenshift-tmp-OUT.gguf-<host>-<pid>-<8 random>  ──rename──▶  OUT.gguf

The file's layout (every tensor's name, type, shape and size) follows from the config and the
safetensors headers alone, so the header is written first and the tensors streamed after it: memory
holds one tensor (the embedding matrix, for the largest) and its encoding, whatever the model's size.

Everything that can be refused (the output name, the dtype, a ``--pre`` name, the model name, its
architecture) is checked before the weights load; a killed run leaves only a temporary that the next
run beside it removes (:func:`tokenshift.storage.clean_stale_temporaries`).
"""

from __future__ import annotations

import logging
import math
import os
import platform
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..modeling.load import LoadedModel
from ..signals import kill_point
from ..storage import check_output_folder, clean_stale_temporaries, temporary_prefix
from ..tokenizer import Tokenizer
from .architectures import ArchSpec, check_architecture, extra_tensor, gguf_tensor, plan_tensors, write_hparams
from .dtypes import GgufDType, encode, encoded_bytes, get_dtype, target_type
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
    peak_rss_mb: float = 0.0

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
        if final.exists() or final.is_symlink():  # appeared while we wrote: never overwrite what someone else made
            from ..storage import OutputAppeared, _unused

            kept = _unused(final.with_name(f"{final.stem}-{time.strftime('%Y%m%d-%H%M%S')}{final.suffix}"))
            os.replace(tmp, kept)
            raise OutputAppeared(f"--gguf {final} appeared while the export ran and was left as it is; the export is in {kept}")
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


@dataclass
class _Source:
    """Where the tensors come from: a checkpoint read one tensor at a time, or a model in memory.
    ``shapes``: every HF tensor the model holds, in the model's order; ``read(name)``: one of them."""

    name: str
    tokenizer: Tokenizer
    config: Any
    arch: ArchSpec
    shapes: dict[str, tuple[int, ...]]
    read: Callable[[str], Any]
    tied: bool
    rows: int
    declared_pre: str | None


def _from_loaded(loaded: LoadedModel) -> _Source:
    state = loaded.model.state_dict()
    config = loaded.model.config
    return _Source(name=loaded.name, tokenizer=loaded.tokenizer, config=config, arch=check_architecture(config, loaded.name),
                   shapes={k: tuple(v.shape) for k, v in state.items()}, read=state.__getitem__,
                   tied=bool(getattr(config, "tie_word_embeddings", False)), rows=loaded.embedding_rows, declared_pre=None)


def _from_folder(model: str, trust_remote_code: bool) -> _Source:
    """The checkpoint of ``model``: config, tokenizer and headers; the architecture and the weights
    checked against the config before any tensor is read."""
    from transformers import AutoConfig

    from ..modeling.load import check_tokenizer_fits, local_model_folder
    from ..tokenizer import load_tokenizer
    from ..weights import Checkpoint, check_weights, model_layout

    folder = local_model_folder(model)
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    arch = check_architecture(config, model)
    checkpoint = Checkpoint.open(folder)
    layout = model_layout(config, name=model, trust_remote_code=trust_remote_code)
    check_weights(layout, checkpoint, name=model)
    tokenizer = load_tokenizer(str(folder), trust_remote_code=trust_remote_code)
    rows = checkpoint.entries[layout.embed].shape[0]
    check_tokenizer_fits(tokenizer, rows, model)
    shapes = {name: checkpoint.entries[name].shape for name in layout.tensors}
    return _Source(name=model, tokenizer=tokenizer, config=config, arch=arch, shapes=shapes, read=checkpoint.read,
                   tied=layout.head is None, rows=rows, declared_pre=declared_pre(folder))


def _tokenizer_warnings(tokenizer: Tokenizer, pre: str) -> list[str]:
    """What llama.cpp will do differently from a byte-level tokenizer that the pre-tokenizer check cannot
    see (a SentencePiece-style one is checked whole when its vocabulary is built)."""
    import json

    from ..tokenizer.pretokenizers import get_pre_tokenization

    spec = json.loads(tokenizer.backend.to_str())
    warnings: list[str] = []
    if tokenizer.kind != "byte-level":
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
    import numpy as np

    started = time.perf_counter()
    spec = get_dtype(dtype)
    if pre is not None:
        check_pre_name(pre)  # an unknown or unfit name fails before anything loads
    out = check_output_file(out)
    source = _from_loaded(model) if isinstance(model, LoadedModel) else _from_folder(model, trust_remote_code)
    if source.tokenizer.chat_template:  # llama.cpp renders it at the first chat: a broken one fails here instead
        from ..tokenizer.load import check_chat_template

        check_chat_template(source.tokenizer.chat_template, f"tokenizer of {source.name}")
    choice = check_exportable(source.tokenizer).pre(source.tokenizer, source.declared_pre, pre)
    extra = _tokenizer_warnings(source.tokenizer, choice.name)
    for warning in extra:
        logger.warning(warning)
    warnings = [*choice.warnings, *extra]
    vocabulary = build_vocabulary(source.tokenizer, source.rows)
    planned = plan_tensors(source.shapes, source.arch, source.config, tied=source.tied)
    kinds = [target_type(t.name, t.shape, spec) for t in planned]
    sizes = [encoded_bytes(t.shape, kind) for t, kind in zip(planned, kinds)]
    parameters = sum(math.prod(t.shape) for t in planned)
    check_output_folder(out, need_bytes=sum(sizes), option="--gguf")

    types: Counter[str] = Counter(kinds)
    with atomic_file(out) as tmp:
        writer = gguf.GGUFWriter(tmp, source.arch.gguf_arch)
        try:
            writer.add_name(Path(source.name).name or source.name)
            write_hparams(writer, source.config, source.arch, rows=source.rows)
            writer.add_file_type(int(gguf.LlamaFileType[spec.file_type]))
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
            write_tokenizer(writer, source.tokenizer, vocabulary, pre=choice.name)
            for tensor, kind, size in zip(planned, kinds, sizes):
                writer.add_tensor_info(tensor.name, tensor.shape, np.dtype(np.float32), size, raw_dtype=gguf.GGMLQuantizationType[kind])
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for index, tensor in enumerate(planned):
                values = (extra_tensor(tensor.name, source.arch, source.config) if tensor.source is None
                          else gguf_tensor(tensor.name, source.read(tensor.source), source.arch, source.config))
                data, _ = encode(tensor.name, values.numpy(), spec)
                del values
                writer.write_tensor_data(data)
                del data
                if index == len(planned) // 2:
                    kill_point("export:halfway")
        finally:
            writer.close()
        kill_point("export:written")
    if types.get("F16") and spec.quantization not in ("F16", "F32"):
        warnings.append(f"{types['F16']} matrices kept in f16: their rows are not whole {spec.name} blocks")
    return ExportReport(
        model=source.name, out=str(out.resolve()), architecture=source.arch.gguf_arch, dtype=spec.name, pre=choice.name,
        pre_reason=choice.reason, pre_matches=list(choice.matches), tokenizer_ids=source.tokenizer.vocab_size,
        embedding_rows=source.rows, token_types=vocabulary.type_counts(), tied=source.tied, tensors=len(planned),
        tensor_types=dict(sorted(types.items())), parameters=parameters, bytes=out.stat().st_size,
        seconds=round(time.perf_counter() - started, 3), warnings=warnings, versions=_versions(),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
