"""The staged trainer (:mod:`tokenshift.heal.loop`): next-token loss and/or cross-tokenizer
distillation over the stages of ``--stages`` (new rows, every embedding row, the whole body, LoRA), on
accelerate (one GPU, several, or the CPU), with checkpoints and exact resume."""

from __future__ import annotations

from . import Recipe, register_recipe

register_recipe(Recipe("stages", (), "the staged trainer of --stages: next-token loss and/or distillation, any parameters, GPUs, resume"))
