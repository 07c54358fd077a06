"""Checkpoints without pickle: model and optimizer tensors in safetensors, everything else in JSON.

    CHECKPOINT_DIR/step-00000200/   (written as .tokenshift-tmp-step-00000200-<host>-<pid>-*, then renamed)
        model.safetensors        the model's state dict (tied weights stored once, see state.json)
        optimizer.safetensors    "state.<param index>.<key>" for every tensor of the optimizer state
        rng.safetensors          the random generators' states (uint8 tensors), for dropout and the like
        state.json               step, stage, counters, curve, config, optimizer scalars and groups

A folder named ``step-*`` is always complete: a run killed while writing leaves only a temporary, which the next run removes.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from ..storage import atomic_folder, clean_stale_temporaries, write_json

logger = logging.getLogger(__name__)

_STEP = re.compile(r"^step-(\d+)$")


def _unique_tensors(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Contiguous CPU copies of the tensors, each storage once; ``aliases`` maps a dropped name to
    the kept name sharing its memory (tied embeddings)."""
    kept: dict[str, Any] = {}
    aliases: dict[str, str] = {}
    seen: dict[tuple[int, int, tuple[int, ...]], str] = {}
    for name, tensor in state.items():
        key = (tensor.data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if tensor.numel() and key in seen:
            aliases[name] = seen[key]
            continue
        seen[key] = name
        kept[name] = tensor.detach().to("cpu").contiguous()
    return kept, aliases


def optimizer_tensors(state_dict: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors (for safetensors) and a JSON-able rest."""
    import torch

    tensors: dict[str, Any] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state_dict["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"scalars": scalars, "param_groups": state_dict["param_groups"]}


def optimizer_state(tensors: dict[str, Any], rest: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`optimizer_tensors`."""
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for index, values in rest["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    return {"state": state, "param_groups": rest["param_groups"]}


def save_checkpoint(root: Path, step: int, *, model_state: dict[str, Any], optimizer_state_dict: dict[str, Any],
                    state: dict[str, Any], rng: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically under ``root`` and delete all but the newest ``keep``."""
    from safetensors.torch import save_file

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    model_tensors, aliases = _unique_tensors(model_state)
    opt_tensors, opt_rest = optimizer_tensors(optimizer_state_dict)
    with atomic_folder(final, overwrite=True, point="heal:checkpoint-written") as tmp:
        save_file(model_tensors, str(tmp / "model.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        save_file({k: v.contiguous() for k, v in rng.items()}, str(tmp / "rng.safetensors"))
        write_json(tmp / "state.json", {**state, "step": step, "aliases": aliases, "optimizer": opt_rest})
    for old in list_checkpoints(root)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _STEP.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint (removing temporaries a killed run left), or None."""
    if Path(root).is_dir():
        removed = clean_stale_temporaries(Path(root))
        if removed:
            logger.info("removed %d incomplete checkpoint folders from %s", removed, root)
    found = list_checkpoints(root)
    return found[-1] if found else None


def read_checkpoint(folder: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(model state dict with aliases restored, optimizer state dict, state.json, rng states)."""
    from safetensors.torch import load_file

    from ..storage import check_safetensors_folder

    folder = Path(folder)
    check_safetensors_folder(folder)
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    model_state = load_file(str(folder / "model.safetensors"))
    for alias, source in state.pop("aliases").items():
        model_state[alias] = model_state[source]
    opt = optimizer_state(load_file(str(folder / "optimizer.safetensors")), state.pop("optimizer"))
    return model_state, opt, state, load_file(str(folder / "rng.safetensors"))
