"""The default recipe: token distillation of the new input rows, then the new output rows fitted on
cached hidden states. Shares of the budget measured on wiki-fr validation (README).

The head is untied before distillation, so distill-rows moves only input rows. Tied, each distilled
input row was also the token's output row: on the extension, 15 minutes of that took
wiki-es:validation (a language heal never saw) from 2.0362 to 2.0747 bits per byte; the same input
rows with the zero-shot output rows gave 2.0137, and French 2.1689 instead of 2.1571 before
fit-head refits the output rows anyway."""

from __future__ import annotations

from . import Recipe, register_recipe

DISTILL_SHARE = 0.55

register_recipe(Recipe("rows", (("distill-rows", DISTILL_SHARE), ("fit-head", 1 - DISTILL_SHARE)),
                       "distill-rows, then fit-head: new input rows by token distillation, new output rows on cached states",
                       untie=True))
