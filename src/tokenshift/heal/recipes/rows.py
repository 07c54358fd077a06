"""The default recipe: token distillation of the new input rows, then the new output rows fitted on
cached hidden states. Shares of the budget measured on wiki-fr validation (docs/benchmarks/heal.md)."""

from __future__ import annotations

from . import Recipe, register_recipe

DISTILL_SHARE = 0.55

register_recipe(Recipe("rows", (("distill-rows", DISTILL_SHARE), ("fit-head", 1 - DISTILL_SHARE)),
                       "distill-rows, then fit-head: new input rows by token distillation, new output rows on cached states"))
