"""Load a causal LM from an asset name, a local folder or a Hugging Face model id."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..tokenizer import Tokenizer, load_tokenizer

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DType = Literal["auto", "stored", "float32", "bfloat16", "float16"]


@dataclass
class LoadedModel:
    """A causal LM, the tokenizer it is used with, and where it runs."""

    model: Any  # transformers.PreTrainedModel
    tokenizer: Tokenizer
    name: str
    device: str
    dtype: str
    dtype_reason: str = ""

    @property
    def embedding_rows(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[0])


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device {device!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but no CUDA device is available; use --device cpu")
    return device


def resolve_dtype(dtype: DType, device: str) -> torch.dtype:
    """``auto``: bfloat16 on a GPU that supports it, float32 elsewhere."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; choose auto, float32, bfloat16 or float16") from None


def model_location(spec: str) -> str:
    """Where model ``spec`` is: an asset's prepared folder, a local model folder, or a hub id that can be
    fetched (checked at once, see :mod:`tokenshift.names`). Anything else fails in one line with
    "did you mean"."""
    from ..assets.registry import ASSETS, prepare_asset
    from ..names import check_hub_id, in_hub_cache, looks_like_hub_id, looks_like_path, unknown_name

    asset = ASSETS.get(spec)
    if asset is not None:
        if asset.kind != "model":
            models = ", ".join(n for n, a in ASSETS.items() if a.kind == "model")
            raise ValueError(f"asset {spec!r} is a {asset.kind}, not a model; model assets: {models}")
        return str(prepare_asset(spec))
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{spec}: a folder without config.json, so not a model folder; pass the folder a "
                                    "model was saved in (config.json and *.safetensors), an asset name or a model id")
        return str(path)
    if path.exists():
        raise ValueError(f"{spec} is a file; pass the model's folder (config.json and *.safetensors), an asset name or a model id")
    if looks_like_hub_id(spec):
        check_hub_id(spec, what="model")
        return spec
    if not looks_like_path(spec) and in_hub_cache(spec, ("config.json",)):  # an owner-less id, already downloaded
        return spec
    raise unknown_name(spec, what="model", kinds=("model",))


# What a streaming stage needs of a hub model: its config, weights and tokenizer (never pickled weights).
HUB_FILES = ("*.json", "*.safetensors", "tokenizer*", "*.jinja", "*.model", "*.tiktoken", "merges.txt", "vocab.*")


def local_model_folder(spec: str) -> Path:
    """The local folder of model ``spec``: an asset's, a local folder, or a hub id's snapshot (config,
    safetensors and tokenizer files only), fetched into the Hugging Face cache when not there yet."""
    location = model_location(spec)
    if Path(location).is_dir():
        return Path(location)
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(location, allow_patterns=list(HUB_FILES)))


# Past this share of ids spelled differently, a tokenizer is not the model's (an extension or another
# file of the same tokenizer differs in none of the shared ids).
FOREIGN_IDS = 0.5


def check_same_ids(tokenizer: Tokenizer, own: Tokenizer, model_name: str) -> None:
    """Refuse a tokenizer whose ids mean other bytes than the model's own tokenizer's: its ids may fit
    the embedding rows, but the model never read them, and bits per byte would measure nothing."""
    mine, theirs = tokenizer.vocab_bytes(), own.vocab_bytes()
    shared = [(a, b) for a, b in zip(mine, theirs) if a is not None and b is not None]
    if not shared:
        return
    differ = sum(a != b for a, b in shared) / len(shared)
    if differ > FOREIGN_IDS:
        raise ValueError(f"tokenizer {tokenizer.name!r} spells {differ:.0%} of its ids differently from {model_name!r}'s own tokenizer: "
                         f"the model never read these ids; transplant it first (tokenshift transplant {model_name} {tokenizer.name} --out DIR)")


def check_tokenizer_fits(tokenizer: Tokenizer, rows: int, model_name: str) -> None:
    if tokenizer.vocab_size > rows:
        raise ValueError(
            f"tokenizer {tokenizer.name!r} has ids up to {tokenizer.vocab_size - 1} but model {model_name!r} has only "
            f"{rows} embedding rows; use the model's own tokenizer, or transplant the new one first (tokenshift transplant)"
        )


def _stored_weights(location: str, name: str, trust_remote_code: bool) -> tuple[int, int, str] | None:
    """(parameters, stored bytes, stored dtype) of a local model folder, its weights checked against its
    config first (a missing head or a layer too many is refused, not filled with random weights);
    None for a hub id not downloaded yet."""
    if not Path(location).is_dir():
        return None
    from ..weights import Checkpoint, check_weights, load_layout

    checkpoint = Checkpoint.open(Path(location))
    layout = load_layout(location, name=name, trust_remote_code=trust_remote_code)
    check_weights(layout, checkpoint, name=name)
    return layout.parameters, checkpoint.nbytes, checkpoint.main_dtype()


def choose_dtype(dtype: DType, device: str, stored: tuple[int, int, str] | None, *, extra_bytes: int = 0) -> tuple[str, str]:
    """(dtype to load in, why). ``auto``: on a GPU, bfloat16 where supported; on a CPU, float32 where it
    fits in the available memory with a margin, else the stored dtype (:func:`tokenshift.weights.memory.choose_cpu_dtype`)."""
    from ..weights.memory import choose_cpu_dtype

    if dtype == "stored":
        return (stored[2], "the stored dtype: frozen weights are not converted") if stored is not None else ("float32", "stored: unknown, float32")
    if dtype != "auto":
        resolve_dtype(dtype, device)  # an unknown name fails here
        return dtype, "asked for"
    if device.startswith("cuda") or stored is None:
        chosen = str(resolve_dtype("auto", device)).removeprefix("torch.")
        return chosen, "auto: bfloat16 on a GPU that supports it" if device.startswith("cuda") else "auto: float32 on the CPU"
    choice = choose_cpu_dtype(*stored, extra=extra_bytes)
    return choice.dtype, f"auto: {choice.reason}"


def check_load_memory(name: str, stored: tuple[int, int, str] | None, dtype: str, device: str, *, extra_bytes: int = 0,
                      what: str = "loading") -> None:
    """Refuse in one line, before loading, a model that cannot fit in the CPU memory available (a GPU
    run holds its weights on the GPU and is not checked here)."""
    if stored is None or not device.startswith("cpu"):
        return
    from ..weights.memory import MemoryEstimate, available_bytes, check_memory, load_bytes

    parameters, stored_bytes, stored_dtype = stored
    parts = {f"weights as {dtype}": load_bytes(parameters, stored_bytes, stored_dtype, dtype), "the run": extra_bytes}
    estimate = MemoryEstimate(f"{what} {name}", parts, available_bytes())
    smaller = stored_dtype if stored_dtype != dtype and load_bytes(parameters, stored_bytes, stored_dtype, stored_dtype) < parts[f"weights as {dtype}"] else None
    fix = (f"--dtype {smaller} would load the stored weights without a copy ({stored_bytes / 1e9:.1f} GB)" if smaller
           else "use a machine with more memory, or a GPU (--device cuda)")
    check_memory(estimate, fix=fix)


def load_model(
    spec: str,
    *,
    tokenizer: str | Tokenizer | None = None,
    dtype: DType = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
    extra_bytes: int = 0,
) -> LoadedModel:
    """Load ``spec`` (asset name, folder or model id) with its own tokenizer, or ``tokenizer`` if given.

    Weights load from safetensors only; remote code runs only if ``trust_remote_code`` is set. A local
    folder's weights are checked against its config first, the dtype is chosen (:func:`choose_dtype`:
    ``auto`` keeps float32 on the CPU where it fits) and the memory checked (``extra_bytes``: what the
    run needs besides the weights), all before any weight loads. Weights in their stored dtype load
    without a copy (mapped from the file); on a GPU they load straight onto it (``device_map``).
    """
    import torch
    from transformers import AutoModelForCausalLM

    device = resolve_device(device)
    location = model_location(spec)
    stored = _stored_weights(location, spec, trust_remote_code)
    chosen, reason = choose_dtype(dtype, device, stored, extra_bytes=extra_bytes)
    if stored is not None and chosen != "float32" and chosen == stored[2] and dtype == "auto":
        logger.warning("loading %s in %s: %s", spec, chosen, reason.removeprefix("auto: "))
    else:
        logger.info("loading %s in %s (%s)", spec, chosen, reason)
    check_load_memory(spec, stored, chosen, device, extra_bytes=extra_bytes)
    torch_dtype = getattr(torch, chosen)
    # the tokenizer first: it loads in a moment, the weights do not
    if isinstance(tokenizer, Tokenizer):
        tok = tokenizer
    else:
        tok = load_tokenizer(tokenizer if tokenizer is not None else location, trust_remote_code=trust_remote_code)
        if tokenizer is not None and (Path(location) / "tokenizer.json").is_file():
            check_same_ids(tok, load_tokenizer(location), spec)
    placement = {"device_map": device} if device.startswith("cuda") else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            location, dtype=torch_dtype, use_safetensors=True, trust_remote_code=trust_remote_code, **placement
        )
    except OSError as exc:
        from ..assets.registry import ASSETS

        models = ", ".join(n for n, a in ASSETS.items() if a.kind == "model")
        raise ValueError(
            f"could not load model {spec!r} ({str(exc).splitlines()[0]}); pass a local folder with config.json and "
            f"*.safetensors, a reachable model id, or a model asset ({models})"
        ) from exc
    if not placement:
        model.to(device)
    model.eval()
    if device == "cpu" and chosen in ("bfloat16", "float16"):
        from .compute import compute_in_float32, cpu_has_bf16

        if not cpu_has_bf16() and compute_in_float32(model):
            reason += "; computed in float32 (this CPU has no native bf16: float32 products are ~4x faster)"
    loaded = LoadedModel(model=model, tokenizer=tok, name=spec, device=device, dtype=chosen, dtype_reason=reason)
    check_tokenizer_fits(tok, loaded.embedding_rows, spec)
    return loaded
