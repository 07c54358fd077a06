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

DType = Literal["auto", "float32", "bfloat16", "float16"]


@dataclass
class LoadedModel:
    """A causal LM, the tokenizer it is used with, and where it runs."""

    model: Any  # transformers.PreTrainedModel
    tokenizer: Tokenizer
    name: str
    device: str
    dtype: str

    @property
    def embedding_rows(self) -> int:
        return int(self.model.get_input_embeddings().weight.shape[0])


def resolve_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
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


def check_tokenizer_fits(tokenizer: Tokenizer, rows: int, model_name: str) -> None:
    if tokenizer.vocab_size > rows:
        raise ValueError(
            f"tokenizer {tokenizer.name!r} has ids up to {tokenizer.vocab_size - 1} but model {model_name!r} has only "
            f"{rows} embedding rows; use the model's own tokenizer, or transplant the new one first (tokenshift transplant)"
        )


def load_model(
    spec: str,
    *,
    tokenizer: str | Tokenizer | None = None,
    dtype: DType = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load ``spec`` (asset name, folder or model id) with its own tokenizer, or ``tokenizer`` if given.

    Weights load from safetensors only; remote code runs only if ``trust_remote_code`` is set.
    """
    from transformers import AutoModelForCausalLM

    device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, device)
    from ..storage import check_safetensors_folder

    location = model_location(spec)
    if Path(location).is_dir():
        check_safetensors_folder(Path(location))
    # the tokenizer first: it loads in a moment, the weights do not
    if isinstance(tokenizer, Tokenizer):
        tok = tokenizer
    else:
        tok = load_tokenizer(tokenizer if tokenizer is not None else location, trust_remote_code=trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            location, dtype=torch_dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    except OSError as exc:
        from ..assets.registry import ASSETS

        models = ", ".join(n for n, a in ASSETS.items() if a.kind == "model")
        raise ValueError(
            f"could not load model {spec!r} ({str(exc).splitlines()[0]}); pass a local folder with config.json and "
            f"*.safetensors, a reachable model id, or a model asset ({models})"
        ) from exc
    model.to(device)
    model.eval()
    loaded = LoadedModel(model=model, tokenizer=tok, name=spec, device=device, dtype=str(torch_dtype).removeprefix("torch."))
    check_tokenizer_fits(tok, loaded.embedding_rows, spec)
    return loaded
