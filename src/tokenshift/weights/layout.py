"""What a model folder's weights must hold, from its config alone: the model is built on PyTorch's
``meta`` device (shapes, no storage), which names every tensor, its shape, the input embedding, the
output head and whether the two are tied. Checked against the checkpoint's headers
(:class:`~tokenshift.weights.files.Checkpoint`), a folder whose config and weights disagree (a missing
head, a layer too many, another vocabulary size) is refused before anything loads, instead of being
filled with random weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import Checkpoint, CheckpointError


@dataclass(frozen=True)
class ModelLayout:
    """``tensors``: every tensor the checkpoint must hold, with its shape; ``tied``: names that may be
    absent because they share another's storage (a tied head); ``embed``/``head``: the input embedding's
    and the output head's names (``head`` is None when it is tied to the embedding)."""

    config: Any
    tensors: dict[str, tuple[int, ...]]
    tied: dict[str, str]
    embed: str
    head: str | None

    @property
    def parameters(self) -> int:
        return sum(math.prod(shape) for shape in self.tensors.values())


def meta_model(config: Any, *, trust_remote_code: bool = False) -> Any:
    """``config``'s causal LM on the meta device: every parameter with its shape, no memory."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)


def check_causal(config: Any, *, name: str) -> None:
    """Refuse in one line a config that declares no causal LM (a masked LM such as ``BertForMaskedLM``,
    an encoder-decoder): scored or transplanted as one, it would give numbers that mean nothing."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    declared = [str(a) for a in (getattr(config, "architectures", None) or [])]
    remote = "AutoModelForCausalLM" in (getattr(config, "auto_map", None) or {})
    if getattr(config, "is_encoder_decoder", False):
        raise ValueError(f"model {name!r} is an encoder-decoder ({', '.join(declared) or config.model_type}); tokenshift works on "
                         "decoder-only causal LMs (...ForCausalLM)")
    if declared and not remote and not set(declared) & set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()):
        raise ValueError(f"model {name!r} declares {', '.join(declared)}, not a causal language model (one that predicts the next "
                         "token); tokenshift works on decoder-only causal LMs (...ForCausalLM)")


def model_layout(config: Any, *, name: str, trust_remote_code: bool = False) -> ModelLayout:
    """The layout of ``config``'s causal LM (see :class:`ModelLayout`). ``name``: the model, for errors."""
    check_causal(config, name=name)
    try:
        model = meta_model(config, trust_remote_code=trust_remote_code)
    except ValueError as exc:
        raise ValueError(f"model {name!r}: transformers has no causal LM for its config ({str(exc).splitlines()[0]}); "
                         "tokenshift works on causal LMs (ForCausalLM)") from None
    embedding = model.get_input_embeddings()
    output = model.get_output_embeddings()
    if embedding is None or output is None:
        raise ValueError(f"model {name!r} ({type(model).__name__}) exposes no input embedding or output head; "
                         "tokenshift works on causal LMs with both")
    state = model.state_dict()
    tied = {str(k): str(v) for k, v in (getattr(model, "all_tied_weights_keys", None) or {}).items()}
    embed = _name_of(model, embedding.weight)
    head = None if output.weight is embedding.weight else _name_of(model, output.weight)
    return ModelLayout(config=config, tensors={n: tuple(t.shape) for n, t in state.items() if n not in tied},
                       tied=tied, embed=embed, head=head)


def _name_of(model: Any, parameter: Any) -> str:
    for name, p in model.named_parameters(remove_duplicate=False):
        if p is parameter:
            return name
    raise AssertionError("parameter not in the model")


def load_layout(location: str | Path, *, name: str, trust_remote_code: bool = False) -> ModelLayout:
    """The layout of the model folder ``location`` (its config.json)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(location), trust_remote_code=trust_remote_code)
    return model_layout(config, name=name, trust_remote_code=trust_remote_code)


def weight_problems(layout: ModelLayout, checkpoint: Checkpoint) -> list[str]:
    """Every way ``checkpoint`` differs from what ``layout`` needs: missing tensors, tensors the model
    has no place for, shapes that disagree."""
    stored = checkpoint.entries
    missing = [n for n in layout.tensors if n not in stored]
    unexpected = [n for n in stored if n not in layout.tensors and n not in layout.tied]
    shapes = [f"{n} is {list(stored[n].shape)}, the config makes it {list(s)}" for n, s in layout.tensors.items()
              if n in stored and tuple(stored[n].shape) != s]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensor(s) the config needs are not in the weights ({_listed(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensor(s) in the weights have no place in the model the config describes ({_listed(unexpected)})")
    if shapes:
        problems.append(f"{len(shapes)} tensor(s) have another shape than the config's ({_listed(shapes)})")
    return problems


def check_weights(layout: ModelLayout, checkpoint: Checkpoint, *, name: str) -> None:
    """Raise one :class:`CheckpointError` listing every problem :func:`weight_problems` finds."""
    problems = weight_problems(layout, checkpoint)
    if problems:
        raise CheckpointError(f"model {name!r}: its config.json and its weights disagree: {'; '.join(problems)}; "
                              "a model loaded from them would be partly random: fix config.json or fetch the whole checkpoint")


def _listed(items: list[str], shown: int = 4) -> str:
    return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")
