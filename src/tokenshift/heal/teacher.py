"""The original model as a teacher without a second copy of its body.

A transplant copies every tensor but the embedding and head byte for byte, so the original model is
the student's body read through the original embedding. For the phases that leave the body frozen
(``distill-rows``, ``fit-head``) the teacher is that: :class:`SharedBodyTeacher` holds only the
original embedding matrix (read from its checkpoint, stored dtype) and runs the student's decoder on
it. For a Llama-3.2-1B-shaped model that is 0.5 GB instead of a second 2.5 GB model.

Whether the bodies are the same is checked, not assumed: same tensor names, dtypes and shapes, and the
same bytes at 16 places in every tensor (the whole of every tensor under 64 KB).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)

def same_body(student_dir: str | Path, original_dir: str | Path, *, skip: set[str]) -> bool:
    """Whether two checkpoints hold the same tensors apart from ``skip`` (the embeddings and heads):
    names, dtypes, shapes, and sampled bytes (see the module docstring)."""
    from ..weights import Checkpoint
    from ..weights.files import sample_bytes as _sample

    a, b = Checkpoint.open(Path(student_dir)), Checkpoint.open(Path(original_dir))
    names = set(a.entries) - skip
    if names != set(b.entries) - skip:
        return False
    for name in sorted(names):
        x, y = a.entries[name], b.entries[name]
        if x.dtype != y.dtype or x.shape != y.shape or _sample(x) != _sample(y):
            return False
    return True


class _TeacherDecoder(nn.Module):
    """The student's decoder fed the original embedding: ``forward(input_ids=...)`` as a decoder's."""

    def __init__(self, decoder: nn.Module, embedding: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder
        self.embedding = embedding

    @property
    def layers(self) -> Any:
        return self.decoder.layers

    def forward(self, input_ids: torch.Tensor, **kwargs: Any) -> Any:
        with torch.no_grad():
            embeds = self.embedding(input_ids)
        return self.decoder(inputs_embeds=embeds, **kwargs)


class SharedBodyTeacher(nn.Module):
    """The original model = ``student``'s body + ``original_embedding`` (V_old, D). Exposes what the
    row phases call: ``get_decoder()`` and ``get_input_embeddings()``; ``body_of`` is the student."""

    def __init__(self, student: nn.Module, original_embedding: torch.Tensor) -> None:
        super().__init__()
        module = student.get_input_embeddings()
        embedding = copy.copy(module)  # same class and scale (Gemma multiplies by sqrt(hidden)), same hooks
        embedding._parameters = dict(module._parameters)
        embedding.weight = nn.Parameter(original_embedding, requires_grad=False)
        embedding.num_embeddings = original_embedding.shape[0]
        self.embedding = embedding
        self.body_of = [student]  # a list: not registered as a submodule (no second owner of its weights)
        self.decoder = _TeacherDecoder(student.get_decoder(), embedding)

    @property
    def student(self) -> nn.Module:
        return self.body_of[0]

    def get_decoder(self) -> nn.Module:
        return self.decoder

    def get_input_embeddings(self) -> nn.Module:
        return self.embedding


def shares_body(teacher: Any, model: Any) -> bool:
    """Whether ``teacher`` runs ``model``'s own decoder (the model itself, or a :class:`SharedBodyTeacher` of it)."""
    return teacher is model or (isinstance(teacher, SharedBodyTeacher) and teacher.student is model)


def shared_teacher(student: nn.Module, student_dir: str | Path, original_dir: str | Path, *, name: str,
                   trust_remote_code: bool = False) -> SharedBodyTeacher | None:
    """A :class:`SharedBodyTeacher` of the original model at ``original_dir`` when its body is the
    student's (see :func:`same_body`), else None (the caller loads the original whole)."""
    from ..weights import Checkpoint, load_layout

    layout = load_layout(original_dir, name=name, trust_remote_code=trust_remote_code)
    student_layout = load_layout(student_dir, name=str(student_dir), trust_remote_code=trust_remote_code)
    skip = {layout.embed, *([layout.head] if layout.head else []), *layout.tied,
            student_layout.embed, *([student_layout.head] if student_layout.head else []), *student_layout.tied}
    if not same_body(student_dir, original_dir, skip=skip):
        logger.info("%s's body differs from %s's: the teacher is loaded whole", name, student_dir)
        return None
    weight = student.get_input_embeddings().weight
    checkpoint = Checkpoint.open(Path(original_dir))
    if weight.device.type == "cpu" and checkpoint.entries[layout.embed].torch_dtype == str(weight.dtype).removeprefix("torch."):
        embedding = checkpoint.map(layout.embed)  # only the rows the text looks up become resident
    else:
        embedding = checkpoint.read(layout.embed, weight.dtype).to(weight.device)
    return SharedBodyTeacher(student, embedding)
